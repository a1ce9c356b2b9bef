/*
 * log.c: logging to stderr (foreground) or syslog (daemonized).
 * errno is preserved across every call so that callers can log and then
 * still return -errno.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static bool log_foreground = true;
static enum log_level log_current_level = LOG_LEVEL_INFO;

void log_init(bool foreground, enum log_level level)
{
	log_foreground = foreground;
	log_current_level = level;
	if (!foreground)
		openlog("exportd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
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
	if (log_foreground) {
		if (errnum)
			fprintf(stderr, "exportd: %s: %s: %s\n", tag[level], buf, strerror(errnum));
		else
			fprintf(stderr, "exportd: %s: %s\n", tag[level], buf);
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
