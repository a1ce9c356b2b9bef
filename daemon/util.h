/*
 * util.h: small helpers the daemon uses everywhere: time, deadlines and
 * signal-free threads, plus (from rpc/xalloc.h) allocation that never
 * returns NULL.
 */
#ifndef EXPORTD_UTIL_H
#define EXPORTD_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "rpc/xalloc.h"

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
