/*
 * fuse/stale-mount.c: recovery of the mounts a dead exportd left behind.
 *
 * When exportd dies without unmounting (kill -9, a crash), each of its
 * mountpoints stays a FUSE mount whose daemon is gone: every access fails
 * with ENOTCONN, and a new export there would fail to stat it.  Before
 * mounting, the mountpoint's entry in /proc/self/mountinfo says what is
 * mounted there: exportd's own mounts are "fuse.exportd" from "exportd"
 * (the fsname and subtype it mounts with), so a dead one is recognised
 * and lazily unmounted (MNT_DETACH: a process may still hold it open).
 * Anything else mounted there is someone else's to remove: refused, and
 * the error says what it is.
 *
 * The path is never looked up as a whole: its directory is resolved by
 * fuse_mountpoint_resolve() (which never stats our own mounts), the last
 * component is examined relative to that directory's fd, and the unmount
 * goes through the same fd, so that swapping a component of the path
 * cannot point root's unmount elsewhere.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse/stale-mount.h"
#include "log.h"
#include "util.h"

struct mount_entry {
	char *fstype;
	char *source;
};

/* Undo mountinfo's octal escapes (\040 for a space...) in place. */
static void mountinfo_unescape(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/*
 * The topmost mount on canon (the last listed: later mounts stack on
 * earlier ones).  1 found, 0 none, -1 with errp set.
 */
static int mount_find(const char *canon, struct mount_entry *me, struct error **errp)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f) {
		error_setg_errno(errp, errno, "Failed to read /proc/self/mountinfo");
		return -1;
	}
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root MOUNTPOINT options... - fstype source super */
		char *save = NULL, *tok, *mnt = NULL, *fstype = NULL, *source = NULL;
		int field = 0;
		bool after_dash = false;

		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
			if (field == 4)
				mnt = tok;
			if (after_dash) {
				if (!fstype)
					fstype = tok;
				else if (!source)
					source = tok;
			} else if (field > 5 && !strcmp(tok, "-")) {
				after_dash = true;
			}
			field++;
		}
		if (!mnt || !fstype || !source)
			continue;
		mountinfo_unescape(mnt);
		if (strcmp(mnt, canon))
			continue;
		mountinfo_unescape(source);
		free(me->fstype);
		free(me->source);
		me->fstype = xstrdup(fstype);
		me->source = xstrdup(source);
		found = 1;
	}
	free(line);
	fclose(f);
	return found;
}

int fuse_stale_mount_recover(const char *path, fuse_mountpoint_ours_fn ours,
			     struct error **errp)
{
	struct mount_entry me = { 0 };
	char *dir, *base, *canon = NULL, *dir_canon = NULL, *target = NULL;
	const char *slash;
	struct stat st;
	bool is_ours;
	int dirfd = -1, rc = 0, found;

	slash = strrchr(path, '/');
	/* "x/" or "." or "..": not a file; the resolver says what is wrong. */
	base = xstrdup(slash ? slash + 1 : path);
	dir = slash ? xasprintf("%.*s", (int)(slash == path ? 1 : slash - path), path) :
	      xstrdup(".");
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		goto out;
	/* A directory that does not resolve: the resolver reports it. */
	dir_canon = fuse_mountpoint_resolve(dir, ours, NULL, &is_ours, &st, &dirfd, NULL, NULL);
	if (!dir_canon || is_ours || !S_ISDIR(st.st_mode))
		goto out;
	canon = xasprintf("%s/%s", strcmp(dir_canon, "/") ? dir_canon : "", base);
	if (ours && ours(canon, NULL))
		goto out;
	found = mount_find(canon, &me, errp);
	if (found <= 0) {
		rc = found;
		goto out;
	}
	if (strcmp(me.fstype, FUSE_EXPORT_FSTYPE) || strcmp(me.source, FUSE_EXPORT_FSNAME)) {
		error_setg(errp, "Cannot mount on '%s': a %s file system from '%s' is mounted "
			   "there already (unmount it first)", path, me.fstype, me.source);
		rc = -1;
		goto out;
	}
	/* Another exportd's mount: it answers unless its daemon is gone. */
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOTCONN) {
		error_setg(errp, "Cannot mount on '%s': another exportd serves a FUSE export "
			   "there", path);
		rc = -1;
		goto out;
	}
	target = xasprintf("/proc/self/fd/%d/%s", dirfd, base);
	if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
		error_setg_errno(errp, errno, "Cannot mount on '%s': it is the dead FUSE mount "
				 "of an exportd that ended without unmounting, and unmounting "
				 "it failed", path);
		rc = -1;
		goto out;
	}
	log_warnx("'%s' was the dead FUSE mount of an exportd that ended without "
		  "unmounting (Transport endpoint is not connected): unmounted it", canon);
out:
	if (dirfd >= 0)
		close(dirfd);
	free(me.fstype);
	free(me.source);
	free(target);
	free(canon);
	free(dir_canon);
	free(dir);
	free(base);
	return rc;
}
