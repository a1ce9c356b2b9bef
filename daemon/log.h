/*
 * log.h: the one logging API of the daemon, after OpenBSD's log.c.
 * log_warn appends strerror(errno); log_warnx does not.  Messages go to
 * stderr in the foreground and to syslog once daemonized.  Safe to call
 * from any thread.
 */
#ifndef EXPORTD_LOG_H
#define EXPORTD_LOG_H

#include <stdbool.h>

#include "rpc/error.h"

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
/* Called on SIGHUP: reopen the log file or syslog (stderr needs nothing). */
void log_reopen(void);
/* From now on log to the file at path (absolute: it is reopened by name). */
int log_set_file(const char *path, struct error **errp);
/* The log file's path, NULL when there is none. */
const char *log_file(void);
/* Whether a syslog daemon listens on /dev/log. */
bool log_syslog_available(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
