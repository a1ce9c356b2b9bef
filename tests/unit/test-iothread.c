/*
 * test-iothread.c: the I/O loops.  Each loop of the pool and each named
 * loop runs callbacks on a thread of its own (not the caller's, not
 * another loop's), and everything stops cleanly.  (Named loops by id, and
 * object-del of one in use: the object registry, tested over QMP.)
 */
#include "config.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "iothread/iothread.h"
#include "main-loop.h"
#include "util.h"
#include "unit.h"

struct probe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t ran_on;
	bool done;
};

static void probe_cb(evutil_socket_t fd, short what, void *opaque)
{
	struct probe *p = opaque;

	(void)fd, (void)what;
	pthread_mutex_lock(&p->lock);
	p->ran_on = pthread_self();
	p->done = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Run a callback on its loop: the thread it ran on; false after 5 s. */
static bool run_on(struct iothread *it, pthread_t *tid)
{
	struct probe p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };
	struct event *ev = event_new(iothread_base(it), -1, 0, probe_cb, &p);
	struct timespec deadline;
	bool done;

	deadline_after_ms(&deadline, 5000);
	event_active(ev, 0, 0);
	pthread_mutex_lock(&p.lock);
	while (!p.done && pthread_cond_timedwait(&p.cond, &p.lock, &deadline) == 0)
		;
	done = p.done;
	pthread_mutex_unlock(&p.lock);
	event_free(ev);
	*tid = p.ran_on;
	return done;
}

static void test_pool_loops_are_threads(void)
{
	struct error *err = NULL;
	pthread_t a, b;

	CHECK_EQ(iothread_pool_init(2, &err), 0);
	CHECK_EQ(iothread_pool_size(), 2);
	CHECK_STREQ(iothread_name(iothread_pool_get(1)), "pool-1");
	CHECK(iothread_pool_get(2) == iothread_pool_get(0));
	CHECK(run_on(iothread_pool_get(0), &a));
	CHECK(run_on(iothread_pool_get(1), &b));
	CHECK(!pthread_equal(a, pthread_self()));
	CHECK(!pthread_equal(a, b));
	iothread_stop_all();
	CHECK_EQ(iothread_pool_size(), 0);
}

static void test_named_loops(void)
{
	struct error *err = NULL;
	struct iothread *it = iothread_new("io0", &err);
	pthread_t t, p;

	CHECK(it);
	CHECK_STREQ(iothread_name(it), "io0");
	CHECK_EQ(iothread_pool_init(1, &err), 0);
	CHECK(run_on(it, &t));
	CHECK(run_on(iothread_pool_get(0), &p));
	CHECK(!pthread_equal(t, p));
	iothread_free(it);
	iothread_stop_all();
}

/* A stop that comes before the thread reached its loop is not lost (hang). */
static void test_stop_right_after_start(void)
{
	struct error *err = NULL;

	for (int i = 0; i < 200; i++) {
		struct iothread *it = iothread_new("quick", &err);

		CHECK(it);
		iothread_free(it);
	}
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "pool loops are threads of their own", test_pool_loops_are_threads },
		{ "named loops", test_named_loops },
		{ "stop right after start", test_stop_right_after_start },
		{ NULL, NULL },
	};

	main_loop_init();
	return unit_run("iothread", tests);
}
