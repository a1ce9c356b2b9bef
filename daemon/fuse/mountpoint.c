/*
 * fuse/mountpoint.c: canonical mountpoints for FUSE exports.
 *
 * A FUSE export is mounted over a regular file, and a second export on
 * the same file must be refused however the path is spelled (relative or
 * absolute, with "..", through a symlink).  qemu-storage-daemon 7.2
 * compares the strings and then stat()s the path; when the path is an
 * existing export spelled differently, that stat() is a FUSE request to
 * the daemon itself, which is busy in the stat: a deadlock.
 *
 * So exportd never asks the kernel about a path it serves.  The path is
 * walked component by component like the kernel's own lookup: each prefix
 * is compared with the canonical mountpoints of our exports *before* it is
 * lstat()ed or readlink()ed, symlinks are spliced into the rest of the
 * walk, ".." drops the last resolved component (safe, because what is
 * resolved so far never contains a symlink).  The result is the path
 * that mount(2) will cover, which is what the export remembers.
 *
 * The daemon runs as root and mounts where it is told, possibly in a
 * directory that a user can write.  So the walk is made of
 * openat(O_PATH | O_NOFOLLOW) calls from one directory fd to the next,
 * never of path look-ups, and hands back an O_PATH fd of the file it
 * checked: the mount goes through that fd, and swapping a component after
 * the check changes nothing.  A symbolic link is followed only when
 * neither it nor the directory holding it belongs to another user (see
 * link_is_trusted): otherwise a user could point root's mount at any file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse/mountpoint.h"
#include "util.h"

/* Linux's limit on symlinks followed in one lookup. */
#define MOUNTPOINT_MAX_LINKS 40

/*
 * Copy the next component of *rest (skipping slashes) into comp and
 * leave *rest on the separator after it.  0 at the end, 1 for a
 * component, -ENAMETOOLONG.
 */
static int next_component(const char **rest, char *comp, size_t size)
{
	const char *p = *rest, *start;

	while (*p == '/')
		p++;
	if (*p == '\0') {
		*rest = p;
		return 0;
	}
	start = p;
	while (*p && *p != '/')
		p++;
	if ((size_t)(p - start) >= size)
		return -ENAMETOOLONG;
	memcpy(comp, start, p - start);
	comp[p - start] = '\0';
	*rest = p;
	return 1;
}

/* Whether *rest holds no further component; *slash: only slashes are left. */
static bool at_end(const char *rest, bool *slash)
{
	const char *p = rest;

	while (*p == '/')
		p++;
	*slash = p != rest;
	return *p == '\0';
}

/*
 * Whether root may follow the symlink (link) found in directory (dir):
 * both must belong to root or to the user the daemon runs as.  A link
 * that another user planted, or any link in a directory another user
 * owns (who could swap it), could point the mount at a file that user
 * must not cover.  Like the kernel's protected_symlinks, for every
 * directory and not only sticky ones.
 */
static bool link_is_trusted(const struct stat *link, const struct stat *dir)
{
	uid_t self = geteuid();

	return (link->st_uid == 0 || link->st_uid == self) &&
	       (dir->st_uid == 0 || dir->st_uid == self);
}

/* Replace *fd by nfd. */
static void fd_replace(int *fd, int nfd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = nfd;
}

char *fuse_mountpoint_resolve(const char *path, fuse_mountpoint_ours_fn ours, void *opaque,
			      bool *is_ours, struct stat *st, int *fdp, int *dirfdp,
			      struct error **errp)
{
	char *resolved = NULL, *work = NULL, *cand = NULL;
	const char *rest;
	char comp[NAME_MAX + 1], linkbuf[PATH_MAX];
	struct stat sb, dir_sb;
	int links = 0, err = 0, r;
	int dirfd = -1, fd = -1;
	bool slash;

	*is_ours = false;
	*fdp = -1;
	if (dirfdp)
		*dirfdp = -1;
	if (path[0] == '\0') {
		err = ENOENT;
		goto fail;
	}
	if (path[0] == '/') {
		resolved = xstrdup("");
		dirfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		char *cwd = getcwd(NULL, 0);

		if (!cwd) {
			err = errno;
			goto fail;
		}
		/* "" stands for "/", so that appending "/comp" works. */
		resolved = xstrdup(strcmp(cwd, "/") ? cwd : "");
		free(cwd);
		dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (dirfd < 0) {
		err = errno;
		goto fail;
	}
	work = xstrdup(path);
	rest = work;

	while ((r = next_component(&rest, comp, sizeof(comp))) != 0) {
		bool last;

		if (r < 0) {
			err = -r;
			goto fail;
		}
		last = at_end(rest, &slash);

		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			char *s = strrchr(resolved, '/');

			/* The real parent of a directory we hold: nothing to swap. */
			if (s) {
				*s = '\0';
				fd = openat(dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (fd < 0) {
					err = errno;
					goto fail;
				}
				fd_replace(&dirfd, fd);
				fd = -1;
			}
			continue;
		}
		free(cand);
		cand = xasprintf("%s/%s", resolved, comp);
		if (ours && ours(cand, opaque)) {
			if (!last || slash) {
				/* Our mountpoints are files: nothing lies below. */
				err = ENOTDIR;
				goto fail;
			}
			free(resolved);
			resolved = cand;
			cand = NULL;
			*is_ours = true;
			goto done;
		}
		fd = openat(dirfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) < 0) {
			err = errno;
			goto fail;
		}
		if (S_ISLNK(sb.st_mode)) {
			ssize_t n;
			char *spliced;

			if (fstat(dirfd, &dir_sb) < 0) {
				err = errno;
				goto fail;
			}
			if (!link_is_trusted(&sb, &dir_sb)) {
				bool foreign_link = sb.st_uid != 0 && sb.st_uid != geteuid();

				error_setg(errp, "Refusing mountpoint '%s': '%s' is a symbolic link "
					   "%s uid %u (only links owned by root in directories "
					   "owned by root are followed)", path, cand,
					   foreign_link ? "owned by" : "in a directory owned by",
					   (unsigned)(foreign_link ? sb.st_uid : dir_sb.st_uid));
				goto fail_set;
			}
			if (++links > MOUNTPOINT_MAX_LINKS) {
				err = ELOOP;
				goto fail;
			}
			/* An O_PATH fd of a link: "" reads the link itself. */
			n = readlinkat(fd, "", linkbuf, sizeof(linkbuf) - 1);
			if (n < 0) {
				err = errno;
				goto fail;
			}
			close(fd);
			fd = -1;
			if (n == 0) {
				err = ENOENT;
				goto fail;
			}
			linkbuf[n] = '\0';
			if (linkbuf[0] == '/') {
				resolved[0] = '\0';
				fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (fd < 0) {
					err = errno;
					goto fail;
				}
				fd_replace(&dirfd, fd);
				fd = -1;
			}
			/* rest is empty or starts with its separator. */
			spliced = xasprintf("%s%s", linkbuf, rest);
			free(work);
			work = spliced;
			rest = work;
			continue;
		}
		if ((!last || slash) && !S_ISDIR(sb.st_mode)) {
			err = ENOTDIR;
			goto fail;
		}
		free(resolved);
		resolved = cand;
		cand = NULL;
		if (last) {
			*st = sb;
			*fdp = fd;
			fd = -1;
			if (dirfdp) {
				*dirfdp = dirfd;
				dirfd = -1;
			}
			goto done;
		}
		fd_replace(&dirfd, fd);
		fd = -1;
	}
	/* The path named a directory ("/", "x/..", ...). */
	if (resolved[0] == '\0') {
		free(resolved);
		resolved = xstrdup("/");
	}
	if (fstat(dirfd, st) < 0) {
		err = errno;
		goto fail;
	}
	*fdp = dirfd;
	dirfd = -1;
done:
	if (dirfd >= 0)
		close(dirfd);
	free(cand);
	free(work);
	return resolved;
fail:
	error_setg_errno(errp, err, "Failed to stat '%s'", path);
fail_set:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	free(cand);
	free(work);
	free(resolved);
	return NULL;
}
