/*
 * runtime-dir.c: the directory that holds root's default QMP socket
 * (/run/exportd).
 *
 * The daemon creates it 0700 if it is missing.  If something is already
 * there, it must be what exportd would have made: a real directory (not a
 * link to somewhere else, where the socket would then be created and
 * later removed), owned by exportd's user, that nobody else can write
 * (else another user could swap the socket for a file of theirs, and
 * clients would talk to it).  Anything else is refused with the reason,
 * never repaired silently.
 */
#include "config.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime-dir.h"

int runtime_dir_ensure(const char *path, struct error **errp)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		error_setg_errno(errp, errno, "Failed to create '%s'", path);
		return -1;
	}
	if (lstat(path, &st) < 0) {
		error_setg_errno(errp, errno, "Failed to stat '%s'", path);
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		error_setg(errp, "'%s' is a symbolic link; exportd keeps its socket in a "
			   "directory of its own: remove the link", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		error_setg(errp, "'%s' is not a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		error_setg(errp, "'%s' is owned by uid %u, not by exportd's user (uid %u)",
			   path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		error_setg(errp, "'%s' can be written by other users (mode %04o); it must "
			   "not be", path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}
