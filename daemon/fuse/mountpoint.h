/*
 * fuse/mountpoint.h: resolving a FUSE export's mountpoint to one canonical
 * path, and an fd of the file to mount on, without ever looking through a
 * mount that this daemon serves nor following a link another user planted.
 */
#ifndef EXPORTD_FUSE_MOUNTPOINT_H
#define EXPORTD_FUSE_MOUNTPOINT_H

#include <stdbool.h>
#include <sys/stat.h>

#include "rpc/error.h"

/* Whether canon (absolute, canonical) is the mountpoint of one of our exports. */
typedef bool (*fuse_mountpoint_ours_fn)(const char *canon, void *opaque);

/*
 * Resolve path (relative to the current directory) to an absolute path
 * without ".", ".." or symbolic links, walking it one component at a time
 * and asking ours() about each prefix before touching it: a prefix that
 * we serve is never looked at.  Symbolic links are followed only when
 * they and their directory belong to root (or to the daemon's user).
 * Returns the path (free it), with *is_ours set when it is one of our
 * mountpoints (then *st is untouched and *fdp is -1), else *st describes
 * the file it names and *fdp is an O_PATH fd of that very file (close
 * it), to mount through; *dirfdp (if not NULL) is one of the directory
 * that holds it, or -1 when the path names a directory.  NULL with
 * "Failed to stat 'path': ..." (or why a link was refused) in *errp when
 * the path cannot be resolved.
 */
char *fuse_mountpoint_resolve(const char *path, fuse_mountpoint_ours_fn ours,
			      void *opaque, bool *is_ours, struct stat *st,
			      int *fdp, int *dirfdp, struct error **errp);

#endif
