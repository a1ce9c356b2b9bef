/*
 * fuse-mountpoint.c: canonical mountpoints for FUSE exports.
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
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse-mountpoint.h"
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

char *fuse_mountpoint_resolve(const char *path, fuse_mountpoint_ours_fn ours, void *opaque,
			bool *is_ours, struct stat *st, struct error **errp)
{
	char *resolved = NULL, *work = NULL, *cand = NULL;
	const char *rest;
	char comp[NAME_MAX + 1], linkbuf[PATH_MAX];
	struct stat sb;
	int links = 0, err = 0, r;
	bool slash;

	*is_ours = false;
	if (path[0] == '\0') {
		err = ENOENT;
		goto fail;
	}
	if (path[0] == '/') {
		resolved = xstrdup("");
	} else {
		char *cwd = getcwd(NULL, 0);

		if (!cwd) {
			err = errno;
			goto fail;
		}
		/* "" stands for "/", so that appending "/comp" works. */
		resolved = xstrdup(strcmp(cwd, "/") ? cwd : "");
		free(cwd);
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

			if (s)
				*s = '\0';
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
		if (lstat(cand, &sb) < 0) {
			err = errno;
			goto fail;
		}
		if (S_ISLNK(sb.st_mode)) {
			ssize_t n;
			char *spliced;

			if (++links > MOUNTPOINT_MAX_LINKS) {
				err = ELOOP;
				goto fail;
			}
			n = readlink(cand, linkbuf, sizeof(linkbuf) - 1);
			if (n < 0) {
				err = errno;
				goto fail;
			}
			if (n == 0) {
				err = ENOENT;
				goto fail;
			}
			linkbuf[n] = '\0';
			if (linkbuf[0] == '/')
				resolved[0] = '\0';
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
			goto done;
		}
	}
	/* The path named a directory ("/", "x/..", ...). */
	if (resolved[0] == '\0') {
		free(resolved);
		resolved = xstrdup("/");
	}
	if (lstat(resolved, st) < 0) {
		err = errno;
		goto fail;
	}
done:
	free(cand);
	free(work);
	return resolved;
fail:
	error_setg_errno(errp, err, "Failed to stat '%s'", path);
	free(cand);
	free(work);
	free(resolved);
	return NULL;
}
