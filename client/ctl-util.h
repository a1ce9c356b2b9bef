/*
 * ctl-util.h: exportctl's small helpers: allocation that exits on failure,
 * messages in the "exportctl: ..." form, and the exit statuses every
 * command shares (0 ok, 1 the daemon or the system failed, 2 usage).
 */
#ifndef EXPORTCTL_UTIL_H
#define EXPORTCTL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

void *ctl_xmalloc(size_t size);
void *ctl_xrealloc(void *ptr, size_t size);
char *ctl_xstrdup(const char *s);
char *ctl_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "exportctl: message" on stderr. */
void ctl_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_warnx, then exit(status). */
void ctl_exitx(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* Monotonic time in milliseconds. */
long long ctl_now_ms(void);

#endif
