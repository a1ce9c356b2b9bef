/*
 * pidfile.c: the --pidfile, written and locked for the daemon's life.
 *
 * exportd usually runs as root and the pidfile may sit in a directory
 * that others can write, so the file is opened O_NOFOLLOW (a planted link
 * would have root write through it), must be a regular file of ours with
 * one name (not a hard link to someone else's file), and is locked: a
 * second daemon given the same pidfile refuses to start and names the
 * one that runs.  The lock is an fcntl() lock, which F_GETLK can name the
 * holder of; it belongs to the process that took it, the daemonized child
 * (start-up runs after the fork).  At exit the file is removed only if
 * its name still leads to the file we locked.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pidfile.h"
#include "util.h"

/* Retries when a daemon that exits removes the file between our open and lock. */
#define PIDFILE_MAX_ATTEMPTS 10

struct pidfile {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
};

static struct flock pidfile_whole_file(short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

	return fl;
}

/* The pid that holds the lock on fd, or -1 if unknown. */
static long pidfile_holder(int fd)
{
	struct flock fl = pidfile_whole_file(F_WRLCK);

	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
		return -1;
	return (long)fl.l_pid;
}

/* Open path as a pidfile of ours; -1 with errp set. */
static int pidfile_open_checked(const char *path, struct stat *st, struct error **errp)
{
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0644);

	if (fd < 0) {
		if (errno == ELOOP)
			error_setg(errp, "Cannot open pid file '%s': it is a symbolic link", path);
		else
			error_setg_errno(errp, errno, "Cannot open pid file '%s'", path);
		return -1;
	}
	if (fstat(fd, st) < 0) {
		error_setg_errno(errp, errno, "Cannot stat pid file '%s'", path);
	} else if (!S_ISREG(st->st_mode)) {
		error_setg(errp, "Cannot use pid file '%s': it is not a regular file", path);
	} else if (st->st_uid != geteuid()) {
		error_setg(errp, "Cannot use pid file '%s': it is owned by uid %u, not by "
			   "exportd's user (uid %u)", path, (unsigned)st->st_uid,
			   (unsigned)geteuid());
	} else if (st->st_nlink != 1) {
		error_setg(errp, "Cannot use pid file '%s': it has %lu names (hard links)",
			   path, (unsigned long)st->st_nlink);
	} else {
		return fd;
	}
	close(fd);
	return -1;
}

/* Whether path still names the file st describes. */
static bool pidfile_still_named(const char *path, const struct stat *st)
{
	struct stat now;

	return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

struct pidfile *pidfile_create(const char *path, struct error **errp)
{
	struct pidfile *pf;
	struct stat st;
	char buf[32];
	int fd = -1, n;

	for (int attempt = 0; attempt < PIDFILE_MAX_ATTEMPTS; attempt++) {
		struct flock fl = pidfile_whole_file(F_WRLCK);

		fd = pidfile_open_checked(path, &st, errp);
		if (fd < 0)
			return NULL;
		if (fcntl(fd, F_SETLK, &fl) < 0) {
			long holder = (errno == EAGAIN || errno == EACCES) ? pidfile_holder(fd) : -1;

			if (holder > 0)
				error_setg(errp, "Cannot lock pid file '%s': exportd (pid %ld) is "
					   "already running with it", path, holder);
			else
				error_setg_errno(errp, errno, "Cannot lock pid file '%s'", path);
			close(fd);
			return NULL;
		}
		/* The daemon we waited for may have removed it as it exited. */
		if (pidfile_still_named(path, &st))
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		error_setg(errp, "Cannot lock pid file '%s': it keeps being replaced", path);
		return NULL;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	/* 0644 whatever the umask: others read the pid, nobody else writes it. */
	if (fchmod(fd, 0644) < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		error_setg_errno(errp, errno, "Failed to write pid file '%s'", path);
		if (pidfile_still_named(path, &st))
			unlink(path);
		close(fd);
		return NULL;
	}
	pf = xcalloc(1, sizeof(*pf));
	pf->path = xstrdup(path);
	pf->fd = fd;
	pf->dev = st.st_dev;
	pf->ino = st.st_ino;
	return pf;
}

void pidfile_remove(struct pidfile *pf)
{
	struct stat st;

	if (!pf)
		return;
	st.st_dev = pf->dev;
	st.st_ino = pf->ino;
	/* Unlink while still locked, so that a new daemon retries its open. */
	if (pidfile_still_named(pf->path, &st))
		unlink(pf->path);
	close(pf->fd);
	free(pf->path);
	free(pf);
}
