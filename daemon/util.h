/*
 * util.h: small helpers used everywhere: allocation that never returns
 * NULL (exportd cannot do anything useful once malloc fails, so it dies
 * loudly), string formatting, and time.
 */
#ifndef EXPORTD_UTIL_H
#define EXPORTD_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ROUND_UP(n, d) (DIV_ROUND_UP(n, d) * (d))
#define ROUND_DOWN(n, d) ((n) / (d) * (d))

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t clock_monotonic_ns(void);

/* The CLOCK_REALTIME instant ms from now, for pthread_cond_timedwait(). */
void deadline_after_ms(struct timespec *deadline, long ms);

/*
 * pthread_create() for a thread that takes no signals (the main loop
 * handles them all): it inherits a full signal mask.  Returns 0 or the
 * pthread_create() error.
 */
int thread_create_without_signals(pthread_t *tid, void *(*fn)(void *), void *arg);

#endif
