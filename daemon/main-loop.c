/*
 * main-loop.c: the daemon's event_base and the one way other threads talk
 * to it, main_loop_defer().  Deferred calls go through a mutex-protected
 * FIFO and one libevent event that is activated from any thread (libevent
 * is built with pthreads support, so event_active() wakes the loop).
 */
#include "config.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "log.h"
#include "main-loop.h"
#include "util.h"

struct deferred {
	void (*fn)(void *opaque);
	void *opaque;
	STAILQ_ENTRY(deferred) next;
};

static struct event_base *base;
static struct event *defer_event;
static pthread_t main_thread;
static pthread_mutex_t defer_lock = PTHREAD_MUTEX_INITIALIZER;
static STAILQ_HEAD(, deferred) defer_queue = STAILQ_HEAD_INITIALIZER(defer_queue);

static void main_loop_run_deferred(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	for (;;) {
		struct deferred *d;

		pthread_mutex_lock(&defer_lock);
		d = STAILQ_FIRST(&defer_queue);
		if (d)
			STAILQ_REMOVE_HEAD(&defer_queue, next);
		pthread_mutex_unlock(&defer_lock);
		if (!d)
			break;
		d->fn(d->opaque);
		free(d);
	}
}

int main_loop_init(void)
{
	if (evthread_use_pthreads() < 0)
		fatalx("libevent has no pthreads support");
	base = event_base_new();
	if (!base)
		fatalx("cannot create the libevent event base");
	defer_event = event_new(base, -1, 0, main_loop_run_deferred, NULL);
	main_thread = pthread_self();
	return 0;
}

struct event_base *main_loop_base(void)
{
	return base;
}

bool main_loop_is_main_thread(void)
{
	return pthread_equal(pthread_self(), main_thread);
}

void main_loop_defer(void (*fn)(void *opaque), void *opaque)
{
	struct deferred *d = xmalloc(sizeof(*d));

	d->fn = fn;
	d->opaque = opaque;
	pthread_mutex_lock(&defer_lock);
	STAILQ_INSERT_TAIL(&defer_queue, d, next);
	pthread_mutex_unlock(&defer_lock);
	event_active(defer_event, 0, 0);
}

void main_loop_run(void)
{
	event_base_dispatch(base);
}

void main_loop_exit(void)
{
	event_base_loopexit(base, NULL);
}

void main_loop_cleanup(void)
{
	/* Run what is still queued (e.g. final unrefs) before freeing the base. */
	main_loop_run_deferred(-1, 0, NULL);
	event_free(defer_event);
	event_base_free(base);
	base = NULL;
	libevent_global_shutdown();
}
