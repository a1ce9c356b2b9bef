/*
 * export/export.h: the export registry and the export driver interface, after
 * QEMU's BlockExportDriver.
 *
 * An export presents a block node to the outside (today: as a file through
 * FUSE).  Exports are refcounted: the registry holds one reference while
 * the export is live, and the data plane holds one per request thread (or
 * in-flight request).  Teardown is two-phase: export_request_shutdown()
 * asks the driver to stop taking requests; when the last reference is
 * dropped the driver's delete() runs on the main thread, the export leaves
 * the registry and BLOCK_EXPORT_DELETED is sent.  Nothing is freed while a
 * request runs.
 */
#ifndef EXPORTD_EXPORT_H
#define EXPORTD_EXPORT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>

#include "block/block.h"
#include "rpc/error.h"
#include "export/stats.h"

struct export;

struct export_driver {
	const char *type;	/* "fuse": the `type` value of block-export-add */
	size_t instance_size;	/* allocation size; struct export comes first */
	/* Main thread.  options: validated block-export-add dict. */
	int (*create)(struct export *exp, json_t *options, struct error **errp);
	/* Stop taking new requests; in-flight ones complete.  Main thread. */
	void (*request_shutdown)(struct export *exp);
	/* Free driver resources; no request runs any more.  Main thread. */
	void (*delete)(struct export *exp);
	/* Whether a client still uses the export (safe mode refuses then). */
	bool (*in_use)(struct export *exp);
	/* Add driver-specific members to a query-block-exports entry. */
	void (*query)(struct export *exp, json_t *info);
};

struct export {
	char *id;
	const struct export_driver *drv;
	struct block_node *node;
	bool writable;
	bool growable;
	bool shutting_down;
	/*
	 * Made by the driver's create() with one slot per request thread,
	 * freed by its delete(); NULL if the driver keeps none.
	 */
	struct export_stats *stats;
	/* x-delete-nodes: deleted when the export ends; NULL for none. */
	json_t *delete_nodes;
	atomic_int refcnt;
	/*
	 * Under export/export.c's lock: the main thread waits for the last
	 * reference to finish the export itself (finish_inline), and the
	 * last unref says so (unreferenced) instead of deferring.
	 */
	bool finish_inline;
	bool unreferenced;
	TAILQ_ENTRY(export) next;
};

/* block-export-add: options validated against BlockExportOptions. */
int export_add(json_t *options, struct error **errp);
/* block-export-del: hard=false refuses while in use. */
int export_del(const char *id, bool hard, struct error **errp);
struct export *export_find(const char *id);
/* The export after prev (the first if prev is NULL), in the order added. */
struct export *export_next(struct export *prev);
/* query-block-exports: array of BlockExportInfo. */
json_t *export_query_all(void);
/* Any thread. */
void export_ref(struct export *exp);
/* Any thread; the last unref schedules deletion on the main thread. */
void export_unref(struct export *exp);
/* Ask the driver to stop (idempotent).  Main thread. */
void export_request_shutdown(struct export *exp);
/* Shut every export down; done() runs on the main thread once all are gone. */
void export_shutdown_all(void (*done)(void *opaque), void *opaque);
/*
 * quit: shut every export down and delete, before returning, those whose
 * requests end within a short bound, so that their BLOCK_EXPORT_DELETED
 * precede quit's reply as in qemu-storage-daemon.  Main thread.
 */
void export_shutdown_all_now(void);
/*
 * hook(id) runs on the main thread when an export is gone for good: how
 * the layers above learn it (exportd.c sends BLOCK_EXPORT_DELETED), since
 * the registry knows nothing of them.
 */
void export_set_deleted_hook(void (*hook)(const char *id));
/* Number of live (not yet deleted) exports. */
int export_count(void);

extern const struct export_driver export_driver_fuse;

#endif
