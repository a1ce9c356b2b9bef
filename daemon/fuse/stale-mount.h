/*
 * fuse/stale-mount.h: what is already mounted on a mountpoint, checked
 * before an export mounts there (see stale-mount.c).
 */
#ifndef EXPORTD_FUSE_STALE_MOUNT_H
#define EXPORTD_FUSE_STALE_MOUNT_H

#include "fuse/mountpoint.h"
#include "rpc/error.h"

/* The fsname and subtype exportd gives its FUSE mounts ("fuse.exportd"). */
#define FUSE_EXPORT_FSNAME "exportd"
#define FUSE_EXPORT_FSTYPE "fuse.exportd"

/*
 * Before mounting on path: a dead FUSE mount of an exportd there (its
 * daemon died: ENOTCONN) is lazily unmounted, with a log line; a live
 * mount of another exportd, or anything else mounted there, is refused,
 * the error naming what is mounted.  Our own exports (ours) are left to
 * the caller's check.  0 when path may be mounted on.
 */
int fuse_stale_mount_recover(const char *path, fuse_mountpoint_ours_fn ours,
			     struct error **errp);

#endif
