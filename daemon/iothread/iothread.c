/*
 * iothread/iothread.c: I/O loops, each a thread running its own libevent
 * event_base (see iothread.h for why).
 *
 * A loop runs with EVLOOP_NO_EXIT_ON_EMPTY, so it idles without events
 * and leaves only when iothread_stop() breaks it (libevent is set up with
 * pthreads by main_loop_init(), so another thread may add events, free
 * them with a finalizer, or break the loop, and the loop wakes up).  The
 * list of loops (pool and named) is the main thread's alone.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "iothread/iothread.h"
#include "log.h"
#include "util.h"

struct iothread {
	char *name;
	bool named;		/* an object, not one of the default pool */
	struct event_base *base;
	struct event *stop_ev;	/* activated once: leave the loop */
	pthread_t tid;
	void *scratch;		/* the loop's thread only */
	size_t scratch_size;
	TAILQ_ENTRY(iothread) link;
};

static TAILQ_HEAD(, iothread) iothreads = TAILQ_HEAD_INITIALIZER(iothreads);
static struct iothread **pool;
static int pool_size;

/*
 * Break the loop from inside: event_base_loopbreak() from another thread
 * is lost if it comes before the thread enters event_base_loop(), which
 * clears the flag; an activated event waits for the loop instead.
 */
static void iothread_stop_cb(evutil_socket_t fd, short what, void *opaque)
{
	struct iothread *it = opaque;

	(void)fd, (void)what;
	event_base_loopbreak(it->base);
}

static void *iothread_run(void *opaque)
{
	struct iothread *it = opaque;

	event_base_loop(it->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static struct iothread *iothread_start(const char *name, bool named, struct error **errp)
{
	struct iothread *it = xcalloc(1, sizeof(*it));
	int err;

	it->name = xstrdup(name);
	it->named = named;
	/*
	 * Other threads add, finalize and activate events on this base: it
	 * needs libevent's locking, which a base only gets if it was turned
	 * on before the base was made (main_loop_init() does; a unit test
	 * may not have called it).  Setting the same callbacks again is a
	 * no-op.
	 */
	if (evthread_use_pthreads() < 0) {
		error_setg(errp, "libevent has no pthreads support");
		goto fail;
	}
	it->base = event_base_new();
	if (!it->base) {
		error_setg(errp, "Cannot create the event loop of iothread '%s'", name);
		goto fail;
	}
	it->stop_ev = event_new(it->base, -1, 0, iothread_stop_cb, it);
	if (!it->stop_ev) {
		error_setg(errp, "Cannot create the event loop of iothread '%s'", name);
		goto fail;
	}
	err = thread_create_without_signals(&it->tid, iothread_run, it);
	if (err) {
		error_setg_errno(errp, err, "Cannot start iothread '%s'", name);
		goto fail;
	}
	TAILQ_INSERT_TAIL(&iothreads, it, link);
	return it;
fail:
	if (it->stop_ev)
		event_free(it->stop_ev);
	if (it->base)
		event_base_free(it->base);
	free(it->name);
	free(it);
	return NULL;
}

static void iothread_stop(struct iothread *it)
{
	event_active(it->stop_ev, 0, 0);
	pthread_join(it->tid, NULL);
	TAILQ_REMOVE(&iothreads, it, link);
	event_free(it->stop_ev);
	/* Finalizers still queued run now, on this thread: nobody else is left. */
	event_base_free(it->base);
	free(it->scratch);
	free(it->name);
	free(it);
}

int iothread_pool_init(int n, struct error **errp)
{
	if (n <= 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = cpus < 1 ? 1 : (int)cpus;
	}
	pool = xcalloc((size_t)n, sizeof(*pool));
	for (int i = 0; i < n; i++) {
		char name[32];

		snprintf(name, sizeof(name), "pool-%d", i);
		pool[i] = iothread_start(name, false, errp);
		if (!pool[i])
			return -1;
		pool_size++;
	}
	return 0;
}

void iothread_stop_all(void)
{
	struct iothread *it;

	while ((it = TAILQ_FIRST(&iothreads)))
		iothread_stop(it);
	free(pool);
	pool = NULL;
	pool_size = 0;
}

int iothread_pool_size(void)
{
	return pool_size;
}

struct iothread *iothread_pool_get(int i)
{
	if (pool_size == 0)
		return NULL;
	return pool[(unsigned)i % (unsigned)pool_size];
}

struct iothread *iothread_new(const char *id, struct error **errp)
{
	return iothread_start(id, true, errp);
}

void iothread_free(struct iothread *it)
{
	if (it)
		iothread_stop(it);
}

const char *iothread_name(const struct iothread *it)
{
	return it->name;
}

struct event_base *iothread_base(struct iothread *it)
{
	return it->base;
}

void *iothread_scratch(struct iothread *it, size_t size, size_t align)
{
	if (it->scratch && it->scratch_size >= size)
		return it->scratch;
	free(it->scratch);
	it->scratch = NULL;
	it->scratch_size = 0;
	if (posix_memalign(&it->scratch, align, size)) {
		it->scratch = NULL;
		return NULL;
	}
	it->scratch_size = size;
	return it->scratch;
}
