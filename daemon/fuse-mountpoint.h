/*
 * fuse-mountpoint.h: resolving a FUSE export's mountpoint to one canonical
 * path without ever looking through a mount that this daemon serves.
 */
#ifndef EXPORTD_FUSE_MOUNTPOINT_H
#define EXPORTD_FUSE_MOUNTPOINT_H

#include <stdbool.h>
#include <sys/stat.h>

#include "error.h"

/* Whether canon (absolute, canonical) is the mountpoint of one of our exports. */
typedef bool (*fuse_mountpoint_ours_fn)(const char *canon, void *opaque);

/*
 * Resolve path (relative to the current directory) to an absolute path
 * without ".", ".." or symbolic links, walking it one component at a time
 * and asking ours() about each prefix before touching it: a prefix that
 * we serve is never lstat()ed.  Returns the path (free it), with *is_ours
 * set when it is one of our mountpoints (then *st is untouched), else *st
 * describes the file it names.  NULL with "Failed to stat 'path': ..." in
 * *errp when the path cannot be resolved.
 */
char *fuse_mountpoint_resolve(const char *path, fuse_mountpoint_ours_fn ours,
			      void *opaque, bool *is_ours, struct stat *st,
			      struct error **errp);

#endif
