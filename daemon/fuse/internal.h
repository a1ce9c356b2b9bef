/*
 * fuse/internal.h: what the FUSE export driver's files share: set-up and
 * teardown (fuse/export.c), the /dev/fuse channels (fuse/channel.c), the
 * request handlers (fuse/ops.c), io_uring (fuse/uring.c).
 * Not a public interface: other modules use export/export.h.
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

#include "export/export.h"
#include "fuse/proto.h"

#define FUSE_EXPORT_MAX_IO	(1u << 20)	/* max_read and max_write */
#define FUSE_EXPORT_PAGE	4096u
#define FUSE_EXPORT_BUF_SIZE	(FUSE_EXPORT_PAGE + FUSE_EXPORT_MAX_IO)
#define FUSE_EXPORT_MAX_CHANNELS	64
#define FUSE_EXPORT_DEFAULT_CHANNELS_CAP 8
#define FUSE_EXPORT_MAX_BACKGROUND 512	/* libfuse's default is 12 */
#define FUSE_EXPORT_RELEASE_GRACE_MS 250
/* Teardown: how long the main loop waits for passthrough handles to be revoked. */
#define FUSE_EXPORT_REVOKE_WAIT_MS 1000
#define FUSE_EXPORT_INIT_WAIT_MS 1000
#define FUSE_EXPORT_URING_INIT_WAIT_MS 10000

enum fuse_data_path {
	FUSE_PATH_USERSPACE,
	FUSE_PATH_PASSTHROUGH,
	FUSE_PATH_URING,	/* userspace, requests over io_uring */
};

struct fuse_export;

struct iothread;
struct event;

/*
 * One /dev/fuse fd of an export and the loop that serves it
 * (fuse/channel.c).  Its statistics are the export's stats slot `slot`,
 * which only that loop's thread writes.
 */
struct fexp_channel {
	struct fuse_export *fe;
	int fd;
	int slot;
	struct iothread *loop;
	struct event *ev;	/* persistent read event on loop, or NULL */
	bool freed;		/* ev freed (or being finalized): main thread */
	bool started;		/* event added: holds an export reference */
} __attribute__((aligned(64)));	/* one line each: no line shared */

/*
 * A reply as a handler leaves it, for the path that took the request to
 * send: writev() on /dev/fuse, or the payload of an io_uring entry.  The
 * body is one contiguous area: READ data in `data` (which the path
 * provides, so that data is read where it will be sent from), every
 * other reply struct in `u`.
 */
struct fexp_reply {
	int err;		/* positive errno, or 0 */
	bool none;		/* the kernel expects no reply (FORGET, ...) */
	const void *body;	/* NULL: the header alone */
	size_t len;
	uint64_t bytes;		/* data moved, for the statistics */
	char *data;		/* in: FUSE_EXPORT_MAX_IO bytes, page-aligned */
	union {
		struct fuse_attr_out attr;
		struct exportd_fuse_open_out open;
		struct fuse_write_out write;
		struct fuse_lseek_out lseek;
		struct fuse_statfs_out statfs;
	} u;
};

struct fuse_ring;

struct fuse_export {
	struct export common;
	struct fuse_session *se;
	char *mountpoint;	/* canonical */
	int mountpoint_fd;	/* O_PATH fd of the file mounted on, or -1 */
	int mountpoint_dir_fd;	/* O_PATH fd of the directory holding it, or -1 */
	bool mounted;		/* listed in fuse_mounts */
	bool allow_other;
	bool writethrough;
	int nchannels;
	struct fexp_channel *channels;
	/* The iothread objects the export named (object_use'd), or none. */
	char **iothread_ids;
	int n_iothread_ids;
	atomic_bool stopping;
	/*
	 * Under lock: created once create() succeeded; halted once a channel
	 * gave up.  A channel asks the main loop to shut the export down only
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
	bool pt_writes;		/* growable: writers passed through as well */
	atomic_bool revoking;	/* teardown: GETATTR poisons the inode */
	bool revoke_started;	/* revoke_tid runs (main thread) */
	bool revoke_done;	/* under lock */
	pthread_t revoke_tid;
	int pt_fd;		/* backing fd handed to the kernel, or -1 */
	int32_t backing_id;	/* > 0 once registered */
	int backing_dev_fd;	/* the fd the id was registered on */
	enum fuse_data_path data_path;
	char *data_path_reason;

	/* FUSE over io_uring (fuse/uring.c). */
	bool uring_wanted;	/* io-uring: on */
	bool uring_agreed;	/* INIT agreed to FUSE_OVER_IO_URING */
	/* Ring queue q counts in stats slot nchannels + q. */
	struct fuse_ring *ring;

	LIST_ENTRY(fuse_export) link;	/* in fuse_mounts while mounted */
};

/*
 * fuse/channel.c: handle the n bytes of one request read into `in` (inside
 * buf, the FUSE_EXPORT_BUF_SIZE buffer whose second page on holds READ
 * data) and reply on ch's fd.  < 0 when the channel cannot be trusted
 * any more.
 */
int fexp_channel_handle(struct fexp_channel *ch, char *buf, const void *in, size_t n);
/* fuse/channel.c: clone session_fd for a channel served by loop (not yet listening). */
int fexp_channel_open(struct fexp_channel *ch, struct fuse_export *fe, int slot,
		      struct iothread *loop, int session_fd, struct error **errp);
/* fuse/channel.c: start listening (takes an export reference). */
int fexp_channel_start(struct fexp_channel *ch, struct error **errp);
/*
 * fuse/channel.c: stop listening without waiting (main thread); the
 * reference goes once the loop is done with the channel.
 */
void fexp_channel_stop(struct fexp_channel *ch);
/* fuse/channel.c: stop listening now, waiting for a running callback (create failed). */
void fexp_channel_abort(struct fexp_channel *ch);
/* fuse/channel.c: close the fd (delete: no callback runs any more). */
void fexp_channel_close(struct fexp_channel *ch);
/*
 * fuse/channel.c: count a request answered since start_ns in the export's
 * stats slot `slot`, which only the calling thread writes.
 */
void fexp_account(struct fuse_export *fe, int slot, const struct fexp_request *req,
		  const struct fexp_reply *rep, uint64_t start_ns);
/*
 * fuse/ops.c: answer one parsed request (not INIT, which only comes
 * through /dev/fuse) into *rep; rep->data must be set by the caller.
 */
void fexp_serve(struct fuse_export *fe, const struct fexp_request *req,
		struct fexp_reply *rep);
/* fuse/ops.c: answer INIT, read from (and replied to on) fd; < 0: protocol error. */
int fexp_op_init(struct fuse_export *fe, int fd, const struct fexp_request *req);
/* fuse/ops.c: x-stats of query-block-exports (export/stats.h's ops JSON). */
json_t *fuse_export_stats(struct fuse_export *fe);
/* fuse/uring.c: how many ring queues (= threads) the kernel expects. */
int fuse_ring_nqueues(void);
/* fuse/uring.c: serve the export over io_uring (after INIT agreed). */
int fuse_ring_start(struct fuse_export *fe, struct error **errp);
/* fuse/uring.c: stop the rings' events without waiting (main thread). */
void fuse_ring_stop(struct fuse_export *fe);
/* fuse/uring.c: stop them now, waiting for a running callback (create failed). */
void fuse_ring_abort(struct fuse_export *fe);
/* fuse/uring.c: free the rings (delete: no callback runs any more). */
void fuse_ring_free(struct fuse_export *fe);
/* fuse/export.c: stop serving the export after a fatal error (any thread). */
void fuse_export_halt(struct fuse_export *fe, const char *why);
/* fuse/export.c: which data path serves the export, and why (under lock). */
void fuse_export_set_reason(struct fuse_export *fe, enum fuse_data_path path,
			    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
