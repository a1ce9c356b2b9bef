/*
 * export/export.c: the export registry (see export/export.h): block-export-add/-del,
 * query-block-exports, refcounts and the two-phase teardown.
 *
 * Everything here runs on the main thread except export_ref/export_unref,
 * which request threads call.  An export is born with one reference, the
 * registry's.  export_request_shutdown() asks the driver to stop (a FUSE
 * export unmounts and wakes its threads) and drops the registry's
 * reference; the threads drop theirs as they leave; the last unref, on
 * whatever thread, defers export_finish() to the main loop, which lets the
 * driver free its resources, releases the node, sends BLOCK_EXPORT_DELETED
 * and frees the export.
 *
 * The order of BLOCK_EXPORT_DELETED and the reply of the command that
 * caused it is QEMU's (10 and later; iotests 308, file-io-error): block-
 * export-del replies first and the event follows once the export is gone;
 * quit sends the events of the exports it ends before its reply.  So quit
 * waits, briefly and bounded, for the request threads to leave and
 * finishes the exports itself before it returns; an export that cannot go
 * at once (a request still running past the bound) is finished later, its
 * event after the reply.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"
#include "export/owned-nodes.h"
#include "log.h"
#include "main-loop.h"
#include "util.h"

static TAILQ_HEAD(, export) exports = TAILQ_HEAD_INITIALIZER(exports);
static int export_live;

/*
 * How long quit waits for the exports' last references:
 * idle request threads leave within microseconds of being woken, so this
 * only bounds how long a slow in-flight request can hold the main loop.
 */
#define EXPORT_FINISH_INLINE_MS 500

/* Guards finish_inline/unreferenced of every export; signals the last unref. */
static pthread_mutex_t export_gone_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t export_gone_cond = PTHREAD_COND_INITIALIZER;

static const struct export_driver *const export_drivers[] = {
	&export_driver_fuse,
};

/* export_shutdown_all(): called once the last export is gone. */
static void (*shutdown_done)(void *opaque);
static void *shutdown_opaque;


static const struct export_driver *export_driver_find(const char *type)
{
	for (size_t i = 0; i < ARRAY_SIZE(export_drivers); i++)
		if (!strcmp(export_drivers[i]->type, type))
			return export_drivers[i];
	return NULL;
}

struct export *export_find(const char *id)
{
	struct export *exp;

	TAILQ_FOREACH(exp, &exports, next)
		if (!strcmp(exp->id, id))
			return exp;
	return NULL;
}

struct export *export_next(struct export *prev)
{
	return prev ? TAILQ_NEXT(prev, next) : TAILQ_FIRST(&exports);
}

int export_count(void)
{
	return export_live;
}

static bool json_bool_default(json_t *options, const char *key, bool dflt)
{
	json_t *v = json_object_get(options, key);

	return v ? json_is_true(v) : dflt;
}

int export_add(json_t *options, struct error **errp)
{
	const char *type = json_string_value(json_object_get(options, "type"));
	const char *id = json_string_value(json_object_get(options, "id"));
	const char *node_name = json_string_value(json_object_get(options, "node-name"));
	const struct export_driver *drv;
	struct block_node *node;
	struct export *exp;
	bool writable, growable, resize;

	if (!type || !id || !node_name) {
		error_setg(errp, "block-export-add needs 'type', 'id' and 'node-name'");
		return -1;
	}
	/*
	 * QEMU 11 checks this first: a multi-threaded export has no single
	 * context to pin the node to.
	 */
	if (json_is_true(json_object_get(options, "fixed-iothread")) &&
	    json_is_array(json_object_get(options, "iothread"))) {
		error_setg(errp, "Cannot use fixed-iothread for a multi-threaded export");
		return -1;
	}
	drv = export_driver_find(type);
	if (!drv) {
		error_setg(errp, "Unknown export type '%s'", type);
		return -1;
	}
	if (export_find(id)) {
		error_setg(errp, "Block export id '%s' is already in use", id);
		return -1;
	}
	node = block_node_find(node_name);
	if (!node) {
		error_setg(errp, "Cannot find device='' nor node-name='%s'", node_name);
		return -1;
	}
	if (export_owned_nodes_check(json_object_get(options, "x-delete-nodes"), errp) < 0)
		return -1;
	writable = json_bool_default(options, "writable", false);
	growable = json_bool_default(options, "growable", false);
	/* As QEMU: writable and growable exports may resize (truncate, fallocate). */
	resize = writable || growable;
	{
		char *who = xasprintf("export '%s'", id);
		int ret = block_perm_acquire_as(node, who, writable, resize, errp);

		free(who);
		if (ret < 0)
			return -1;
	}
	block_node_ref(node);

	exp = xcalloc(1, drv->instance_size);
	exp->id = xstrdup(id);
	exp->drv = drv;
	exp->node = node;
	exp->writable = writable;
	exp->growable = growable;
	atomic_init(&exp->refcnt, 1);
	exp->delete_nodes = json_incref(json_object_get(options, "x-delete-nodes"));
	if (drv->create(exp, options, errp) < 0) {
		json_decref(exp->delete_nodes);
		block_perm_release(node, writable, resize);
		block_node_unref(node);
		free(exp->id);
		free(exp);
		return -1;
	}
	TAILQ_INSERT_TAIL(&exports, exp, next);
	export_live++;
	log_info("export '%s' added (node '%s', %s)", id, node_name,
		 writable ? "writable" : "read-only");
	return 0;
}

int export_del(const char *id, bool hard, struct error **errp)
{
	struct export *exp = export_find(id);

	if (!exp) {
		error_setg(errp, "Export '%s' is not found", id);
		return -1;
	}
	if (exp->shutting_down) {
		error_setg(errp, "Export '%s' is already shutting down", id);
		return -1;
	}
	if (!hard && exp->drv->in_use && exp->drv->in_use(exp)) {
		error_setg(errp, "export '%s' still in use (its file is open; "
			   "use mode=hard to force client disconnect)", id);
		return -1;
	}
	/* The reply goes out first, BLOCK_EXPORT_DELETED once it is gone (QEMU 10+). */
	export_request_shutdown(exp);
	return 0;
}

json_t *export_query_all(void)
{
	json_t *list = json_array();
	struct export *exp;

	TAILQ_FOREACH(exp, &exports, next) {
		json_t *info = json_pack("{s:s, s:s, s:s, s:b}", "id", exp->id,
					 "type", exp->drv->type,
					 "node-name", exp->node->node_name,
					 "shutting-down", exp->shutting_down);

		if (exp->drv->query)
			exp->drv->query(exp, info);
		json_array_append_new(list, info);
	}
	return list;
}

void export_ref(struct export *exp)
{
	atomic_fetch_add(&exp->refcnt, 1);
}

static void export_shutdown_check_done(void *opaque)
{
	void (*done)(void *opaque) = shutdown_done;

	(void)opaque;
	if (!done || export_live > 0)
		return;
	shutdown_done = NULL;
	done(shutdown_opaque);
}

static void (*export_deleted_hook)(const char *id);

void export_set_deleted_hook(void (*hook)(const char *id))
{
	export_deleted_hook = hook;
}

/* Main thread, once nobody references exp any more. */
static void export_finish(void *opaque)
{
	struct export *exp = opaque;
	bool resize = exp->writable || exp->growable;

	exp->drv->delete(exp);
	TAILQ_REMOVE(&exports, exp, next);
	export_live--;
	block_perm_release(exp->node, exp->writable, resize);
	block_node_unref(exp->node);
	log_info("export '%s' deleted", exp->id);
	/* Before the event: whoever hears it may re-add nodes of the same names. */
	export_owned_nodes_delete(exp->id, exp->delete_nodes);
	json_decref(exp->delete_nodes);
	if (export_deleted_hook)
		export_deleted_hook(exp->id);
	free(exp->id);
	free(exp);
	export_shutdown_check_done(NULL);
}

void export_unref(struct export *exp)
{
	bool inline_wanted;

	if (atomic_fetch_sub(&exp->refcnt, 1) != 1)
		return;
	pthread_mutex_lock(&export_gone_lock);
	inline_wanted = exp->finish_inline;
	if (inline_wanted) {
		exp->unreferenced = true;
		pthread_cond_broadcast(&export_gone_cond);
	}
	pthread_mutex_unlock(&export_gone_lock);
	if (!inline_wanted)
		main_loop_defer(export_finish, exp);
}

void export_request_shutdown(struct export *exp)
{
	if (exp->shutting_down)
		return;
	exp->shutting_down = true;
	exp->drv->request_shutdown(exp);
	/* The registry's reference. */
	export_unref(exp);
}

/*
 * Shut exp down, its last unref to signal rather than defer the finish
 * (export_shutdown_end() then does it).  Main thread.
 */
static void export_shutdown_begin(struct export *exp)
{
	pthread_mutex_lock(&export_gone_lock);
	exp->finish_inline = true;
	pthread_mutex_unlock(&export_gone_lock);
	/* Drops the registry's reference: possibly the last, then unreferenced is set. */
	export_request_shutdown(exp);
}

/*
 * Wait until deadline for the last reference of an export given to
 * export_shutdown_begin(); delete it now if it went (BLOCK_EXPORT_DELETED
 * included), else leave that to the last unref.  Main thread.
 */
static void export_shutdown_end(struct export *exp, const struct timespec *deadline)
{
	bool gone;

	pthread_mutex_lock(&export_gone_lock);
	while (!exp->unreferenced &&
	       pthread_cond_timedwait(&export_gone_cond, &export_gone_lock, deadline) != ETIMEDOUT)
		;
	gone = exp->unreferenced;
	/* Too slow: the last unref, whenever it comes, defers the finish. */
	exp->finish_inline = false;
	pthread_mutex_unlock(&export_gone_lock);
	if (gone)
		export_finish(exp);
	else
		log_debug("export '%s': requests still running; deleted when they end",
			  exp->id);
}

void export_shutdown_all_now(void)
{
	struct export *exp, *tmp;
	struct timespec deadline;

	/* All at once, so that slow exports share one bounded wait. */
	TAILQ_FOREACH(exp, &exports, next) {
		if (!exp->shutting_down)
			export_shutdown_begin(exp);
	}
	deadline_after_ms(&deadline, EXPORT_FINISH_INLINE_MS);
	/* export_finish() takes exp off the list: find the next one first. */
	for (exp = TAILQ_FIRST(&exports); exp; exp = tmp) {
		tmp = TAILQ_NEXT(exp, next);
		if (exp->finish_inline)
			export_shutdown_end(exp, &deadline);
	}
}

void export_shutdown_all(void (*done)(void *opaque), void *opaque)
{
	struct export *exp;

	shutdown_done = done;
	shutdown_opaque = opaque;
	/* Safe: exports leave the list only in export_finish(), deferred. */
	TAILQ_FOREACH(exp, &exports, next)
		export_request_shutdown(exp);
	/* Deferred, so that done() never runs inside its caller. */
	main_loop_defer(export_shutdown_check_done, NULL);
}
