/*
 * ctl-util.c: allocation, messages and time for exportctl (see ctl-util.h).
 * exportctl is a short-lived program: running out of memory ends it with
 * a message rather than threading NULL checks through every command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl-util.h"

void *ctl_xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		ctl_exitx(EXIT_FAILED, "out of memory");
	return p;
}

void *ctl_xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (!p)
		ctl_exitx(EXIT_FAILED, "out of memory");
	return p;
}

char *ctl_xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		ctl_exitx(EXIT_FAILED, "out of memory");
	return p;
}

char *ctl_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		ctl_exitx(EXIT_FAILED, "out of memory");
	va_end(ap);
	return s;
}

static void vwarnx(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("exportctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ctl_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
}

void ctl_exitx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	exit(status);
}

long long ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
