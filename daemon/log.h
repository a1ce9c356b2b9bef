/*
 * log.h: the one logging API of the daemon, after OpenBSD's log.c.
 * log_warn appends strerror(errno); log_warnx does not.  Messages go to
 * stderr in the foreground and to syslog once daemonized.  Safe to call
 * from any thread.
 */
#ifndef EXPORTD_LOG_H
#define EXPORTD_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_init(bool foreground, enum log_level level);
/* Parse "error|warn|info|debug"; -1 if unknown. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
/* Called on SIGHUP: reopen syslog (stderr needs nothing). */
void log_reopen(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
