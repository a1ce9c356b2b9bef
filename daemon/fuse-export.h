/*
 * fuse-export.h: what the FUSE export driver (export-fuse.c: set-up,
 * request threads, teardown) and its request handlers (fuse-ops.c) share.
 * Not a public interface: other modules use export.h.
 */
#ifndef EXPORTD_FUSE_EXPORT_H
#define EXPORTD_FUSE_EXPORT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "export.h"

#define FUSE_EXPORT_MAX_IO	(1u << 20)	/* max_read and max_write */
#define FUSE_EXPORT_PAGE	4096u
#define FUSE_EXPORT_BUF_SIZE	(FUSE_EXPORT_PAGE + FUSE_EXPORT_MAX_IO)
#define FUSE_EXPORT_MAX_THREADS	64
#define FUSE_EXPORT_DEFAULT_THREADS_CAP 8
#define FUSE_EXPORT_MAX_BACKGROUND 512	/* libfuse's default is 12 */
#define FUSE_EXPORT_RELEASE_GRACE_MS 250
#define FUSE_EXPORT_INIT_WAIT_MS 1000

enum fuse_data_path {
	FUSE_PATH_USERSPACE,
	FUSE_PATH_PASSTHROUGH,
};

struct fuse_export;

struct fuse_thread {
	struct fuse_export *fe;
	int fd;
	pthread_t tid;
	bool started;
	char *buf;		/* FUSE_EXPORT_BUF_SIZE, page-aligned */
	/*
	 * Outcome of the request being handled, for the statistics (kept
	 * in the export's stats slot of the same index as this thread).
	 */
	int last_err;
	uint64_t last_bytes;
} __attribute__((aligned(64)));	/* written per request: no line shared */

struct fuse_export {
	struct export common;
	struct fuse_session *se;
	char *mountpoint;	/* canonical */
	bool mounted;		/* listed in fuse_mounts */
	bool allow_other;
	bool writethrough;
	int num_threads;
	struct fuse_thread *threads;
	int stop_fd;		/* eventfd: readable once teardown began */
	atomic_bool stopping;
	/*
	 * Under lock: created once create() succeeded; halted once a thread
	 * gave up.  A thread asks the main loop to shut the export down only
	 * if it was created, else create() sees `halted` and fails: the
	 * export is never shut down twice nor freed under a pending request.
	 */
	bool created;
	bool halted;
	/* What stat() shows; SETATTR changes them. */
	_Atomic uint32_t st_mode, st_uid, st_gid;

	/* lock: INIT state, passthrough state, open_handles. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* INIT done, a handle released */
	bool initialized;
	uint32_t proto_minor;
	int open_handles;

	/* Serialises size changes (grow on write, truncate, fallocate). */
	pthread_mutex_t resize_lock;

	/* Passthrough. */
	bool pt_wanted;		/* eligible and not disabled */
	bool pt_required;	/* passthrough: on */
	int pt_fd;		/* backing fd handed to the kernel, or -1 */
	int32_t backing_id;	/* > 0 once registered */
	int backing_dev_fd;	/* the fd the id was registered on */
	enum fuse_data_path data_path;
	char *data_path_reason;

	LIST_ENTRY(fuse_export) link;	/* in fuse_mounts while mounted */
};

/*
 * fuse-ops.c: handle the n bytes of one request read by thread t and
 * reply on t's fd.  < 0 when the channel cannot be trusted any more.
 */
int fuse_export_handle(struct fuse_thread *t, const void *buf, size_t n);
/* fuse-ops.c: x-stats of query-block-exports (export-stats.h's ops JSON). */
json_t *fuse_export_stats(struct fuse_export *fe);
/* export-fuse.c: which data path serves the export, and why (under lock). */
void fuse_export_set_reason(struct fuse_export *fe, enum fuse_data_path path,
			    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
