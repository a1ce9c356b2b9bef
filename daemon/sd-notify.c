/*
 * sd-notify.c: tell systemd (or whoever set NOTIFY_SOCKET) how the daemon
 * is doing, and take the sockets it passed (socket activation).
 *
 * The notify protocol is one datagram of newline-separated KEY=VALUE
 * lines on the AF_UNIX socket named by NOTIFY_SOCKET ('@' at its start
 * stands for the abstract namespace).  A failed send is logged once and
 * otherwise ignored: systemd's absence must never stop the daemon.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sd-notify.h"
#include "util.h"

static char *notify_path;
static bool notify_failed_logged;

void sd_notify_init(void)
{
	const char *p = getenv("NOTIFY_SOCKET");

	if (p && *p && (p[0] == '/' || p[0] == '@'))
		notify_path = xstrdup(p);
	else if (p && *p)
		log_warnx("NOTIFY_SOCKET '%s' is neither a path nor an abstract socket; "
			  "not notifying", p);
	unsetenv("NOTIFY_SOCKET");
}

void sd_notify_send(const char *state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	socklen_t salen;
	int fd;

	if (!notify_path)
		return;
	len = strlen(notify_path);
	if (len >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	memcpy(sun.sun_path, notify_path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, salen) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		goto fail;
	}
	close(fd);
	log_debug("notified %s: %s", notify_path, state);
	return;
fail:
	if (!notify_failed_logged) {
		notify_failed_logged = true;
		log_warn("cannot notify '%s' (NOTIFY_SOCKET) of '%s'", notify_path, state);
	}
}

void sd_notify_sendf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	sd_notify_send(s);
	free(s);
}

/* Parse a decimal environment value; -1 if absent or malformed. */
static long env_number(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < 0)
		return -1;
	return n;
}

int sd_listen_fds_take(struct error **errp)
{
	long pid = env_number("LISTEN_PID"), n = env_number("LISTEN_FDS");
	int rc = 0;

	if (!getenv("LISTEN_FDS"))
		goto out;
	/* Meant for another process (we were started by one that was activated). */
	if (pid != (long)getpid())
		goto out;
	if (n < 0 || n > 64) {
		error_setg(errp, "LISTEN_FDS='%s' is not a number of sockets",
			   getenv("LISTEN_FDS"));
		rc = -1;
		goto out;
	}
	for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
		int type = 0, listening = 0;
		socklen_t sl = sizeof(type);

		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0 || type != SOCK_STREAM ||
		    (sl = sizeof(listening),
		     getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0) ||
		    !listening) {
			error_setg(errp, "Socket activation: fd %d is not a listening stream "
				   "socket (ListenStream= in the .socket unit)", fd);
			rc = -1;
			goto out;
		}
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
		    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
			error_setg_errno(errp, errno, "Socket activation: cannot set up fd %d", fd);
			rc = -1;
			goto out;
		}
	}
	rc = (int)n;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return rc;
}
