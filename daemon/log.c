/*
 * log.c: logging to stderr (foreground), syslog (daemonized) or a file
 * (--log-file, or daemonized where no syslog listens).  errno is
 * preserved across every call so that callers can log and then still
 * return -errno.
 *
 * When stderr is the journal (systemd sets JOURNAL_STREAM to its device
 * and inode), each line starts with the syslog priority, "<3>", which
 * journald reads as the message's priority (sd-daemon(3)).  A log file
 * is reopened on SIGHUP, after logrotate moved it away.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static bool log_foreground = true;
static bool log_journal;	/* stderr is journald's stream: "<N>" prefixes */
static enum log_level log_current_level = LOG_LEVEL_INFO;
/* --log-file: its path and fd, swapped under the lock on SIGHUP. */
static pthread_mutex_t log_file_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_file_path;
static int log_file_fd = -1;

/* Whether JOURNAL_STREAM ("dev:ino") names the file stderr is. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(bool foreground, enum log_level level)
{
	log_foreground = foreground;
	log_current_level = level;
	log_journal = foreground && stderr_is_journal();
	if (!foreground)
		openlog("exportd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

bool log_syslog_available(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, rc;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", _PATH_LOG);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return rc == 0;
}

static int log_file_open(const char *path, struct error **errp)
{
	/* Not through a link someone planted: we are root, and append. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);

	if (fd < 0)
		error_setg_errno(errp, errno, "Cannot open log file '%s'", path);
	return fd;
}

int log_set_file(const char *path, struct error **errp)
{
	int fd = log_file_open(path, errp), old;

	if (fd < 0)
		return -1;
	pthread_mutex_lock(&log_file_lock);
	old = log_file_fd;
	log_file_fd = fd;
	free(log_file_path);
	log_file_path = xstrdup(path);
	pthread_mutex_unlock(&log_file_lock);
	if (old >= 0)
		close(old);
	return 0;
}

const char *log_file(void)
{
	return log_file_path;
}

int log_level_parse(const char *name)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

void log_set_level(enum log_level level)
{
	log_current_level = level;
}

void log_reopen(void)
{
	if (log_file_path) {
		struct error *err = NULL;
		int fd = log_file_open(log_file_path, &err), old;

		if (fd < 0) {
			/* Keep writing to the old file: better than to nowhere. */
			log_error("%s; still logging to the file opened before", err->msg);
			error_free(err);
			return;
		}
		pthread_mutex_lock(&log_file_lock);
		old = log_file_fd;
		log_file_fd = fd;
		pthread_mutex_unlock(&log_file_lock);
		close(old);
		return;
	}
	if (!log_foreground) {
		closelog();
		openlog("exportd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
}

static void log_vmsg(enum log_level level, int errnum, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char buf[1024];
	int saved = errno;

	if (level > log_current_level) {
		errno = saved;
		return;
	}
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (log_file_fd >= 0) {
		char line[1400], stamp[40];
		struct timespec now;
		struct tm tm;
		int n;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ exportd[%ld]: %s: %s%s%s\n", stamp,
			     now.tv_nsec / 1000000, (long)getpid(), tag[level], buf,
			     errnum ? ": " : "", errnum ? strerror(errnum) : "");
		if (n >= (int)sizeof(line))
			n = (int)sizeof(line) - 1, line[n - 1] = '\n';
		/* One write of one line: O_APPEND keeps lines whole. */
		pthread_mutex_lock(&log_file_lock);
		if (write(log_file_fd, line, (size_t)n) < 0) {
			/* Nowhere better to say it. */
		}
		pthread_mutex_unlock(&log_file_lock);
	} else if (log_foreground) {
		char pfx[8] = "";

		if (log_journal)
			snprintf(pfx, sizeof(pfx), "<%d>", prio[level]);
		if (errnum)
			fprintf(stderr, "%sexportd: %s: %s: %s\n", pfx, tag[level], buf,
				strerror(errnum));
		else
			fprintf(stderr, "%sexportd: %s: %s\n", pfx, tag[level], buf);
	} else {
		if (errnum)
			syslog(prio[level], "%s: %s", buf, strerror(errnum));
		else
			syslog(prio[level], "%s", buf);
	}
	errno = saved;
}

#define LOG_FN(name, level, with_errno)				\
	void name(const char *fmt, ...)				\
	{							\
		int e = errno;					\
		va_list ap;					\
		va_start(ap, fmt);				\
		log_vmsg(level, with_errno ? e : 0, fmt, ap);	\
		va_end(ap);					\
	}

LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_error, LOG_LEVEL_ERROR, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
