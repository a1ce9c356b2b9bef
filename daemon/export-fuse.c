/*
 * export-fuse.c: the FUSE export driver: a block node appears as a regular
 * file, with the semantics of qemu-storage-daemon 7.2's block/export/fuse.c.
 *
 * Design, and why:
 * - libfuse3 (Debian's 3.14) only mounts: fuse_session_new() +
 *   fuse_session_mount() with QEMU's options (max_read, default_permissions,
 *   allow_other when asked).  We then take the session fd and never run
 *   libfuse's loop, as QEMU 10 does, because 3.14 can neither negotiate
 *   FUSE passthrough (7.40) nor let us answer from several threads without
 *   its own locking and copies.  fuse-proto.c owns the wire format.
 * - Each export has N request threads (num-threads, default = CPUs, at most
 *   8), each on its own /dev/fuse fd cloned with FUSE_DEV_IOC_CLONE (the
 *   kernel matches a reply to the fd its request was read from, so a
 *   thread answers on its own fd).  A thread reads a request, calls the
 *   block layer directly and replies with writev(): no queue, no hand-off,
 *   no global lock on the hot path.  The main loop never touches I/O.
 * - Buffers: each thread reads into a page-aligned buffer at an offset
 *   chosen so that WRITE data starts page-aligned; pwrite() uses it in
 *   place, READ data is pread() into the same aligned area.  max_write and
 *   max_read are 1 MiB (FUSE_MAX_PAGES, the kernel's default page limit).
 * - Stopping: fds are non-blocking; a thread that finds nothing to read
 *   poll()s its fd together with the export's eventfd, which teardown
 *   makes readable once, for good.  So a thread is never stuck in read(),
 *   whatever the kernel does; ENODEV/POLLERR (unmounted from outside,
 *   connection aborted) also ends the thread and, if nobody asked for it,
 *   the export.
 * - Teardown (main thread): request_shutdown unmounts (lazily: clients
 *   with the file open then get errors, never a hang) and wakes the
 *   threads; each thread drops its export reference as it leaves; delete
 *   joins them and closes the fds, which aborts the connection.
 * - Safe removal counts OPEN/RELEASE.  RELEASE is sent asynchronously
 *   after close() returns, so in_use() waits a short grace period for the
 *   count to drop before it answers "in use".
 * - Passthrough (kernel 6.9+): where the node is a whole regular file and
 *   the export is read-only (block_node_get_passthrough), INIT negotiates
 *   FUSE_PASSTHROUGH, the image is registered with
 *   FUSE_DEV_IOC_BACKING_OPEN (a read-only fd of its own) and OPEN answers
 *   FOPEN_PASSTHROUGH: reads then never reach us.  Not for writable
 *   exports: a passthrough write past the end would grow the image, which
 *   a fixed-size export must refuse, and nothing in the kernel can bound
 *   it; and once an inode has a passthrough handle, the kernel refuses
 *   any other kind of handle (EIO), so writers cannot be served here
 *   beside passthrough readers.  The kernel takes regular files only as
 *   backing files, so block devices use the userspace path too.
 */
#include "config.h"

#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export.h"
#include "fuse-mountpoint.h"
#include "fuse-proto.h"
#include "log.h"
#include "main-loop.h"
#include "util.h"

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

/*
 * Per-export statistics, kept per thread (each thread writes only its own,
 * so the hot path shares no cache line) and summed by queries.
 */
enum fuse_stat_op {
	FUSE_STAT_READ,
	FUSE_STAT_WRITE,
	FUSE_STAT_FLUSH,	/* FLUSH and FSYNC */
	FUSE_STAT_FALLOCATE,
	FUSE_STAT_OTHER,	/* everything else the kernel asks */
	FUSE_STAT_NOPS,
};

static const char *const fuse_stat_names[FUSE_STAT_NOPS] = {
	"read", "write", "flush", "fallocate", "other",
};

/* Latency buckets: [0, 1us), [1us, 2us), [2us, 4us), ..., [2^30us, inf). */
#define FUSE_STAT_BUCKETS 32

struct fuse_op_stats {
	atomic_uint_least64_t requests, bytes, errors;
	atomic_uint_least64_t latency[FUSE_STAT_BUCKETS];
};

struct fuse_thread {
	struct fuse_export *fe;
	int fd;
	pthread_t tid;
	bool started;
	char *buf;		/* FUSE_EXPORT_BUF_SIZE, page-aligned */
	/* Outcome of the request being handled, for the statistics. */
	int last_err;
	uint64_t last_bytes;
	struct fuse_op_stats stats[FUSE_STAT_NOPS];
};

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

/* Mounted FUSE exports (main thread): what "ours" means for mountpoints. */
static LIST_HEAD(, fuse_export) fuse_mounts = LIST_HEAD_INITIALIZER(fuse_mounts);

static inline struct fuse_export *fuse_export_of(struct export *exp)
{
	return (struct fuse_export *)exp;
}

static bool fuse_mountpoint_is_ours(const char *canon, void *opaque)
{
	struct fuse_export *fe;

	(void)opaque;
	LIST_FOREACH(fe, &fuse_mounts, link)
		if (!strcmp(fe->mountpoint, canon))
			return true;
	return false;
}

/* libfuse's own messages (mount errors) go to our log. */
static void fuse_export_libfuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);
	size_t n = strlen(msg);

	if (n && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	if (level <= FUSE_LOG_WARNING)
		log_warnx("libfuse: %s", msg);
	else
		log_debug("libfuse: %s", msg);
	free(msg);
}

static void fuse_export_set_reason(struct fuse_export *fe, enum fuse_data_path path,
				   const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fuse_export_set_reason(struct fuse_export *fe, enum fuse_data_path path,
				   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	free(fe->data_path_reason);
	fe->data_path_reason = xvasprintf(fmt, ap);
	fe->data_path = path;
	va_end(ap);
}

/* ---- the request threads ---------------------------------------------- */

/* Stop serving on a fatal condition: ask the main thread to shut us down. */
static void fuse_export_halt_cb(void *opaque)
{
	struct fuse_export *fe = opaque;

	export_request_shutdown(&fe->common);
	export_unref(&fe->common);
}

static void fuse_export_wake_threads(struct fuse_export *fe)
{
	uint64_t one = 1;

	atomic_store(&fe->stopping, true);
	if (write(fe->stop_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("export '%s': cannot wake request threads", fe->common.id);
}

static void fuse_export_halt(struct fuse_export *fe, const char *why)
{
	bool defer;

	pthread_mutex_lock(&fe->lock);
	if (fe->halted) {
		pthread_mutex_unlock(&fe->lock);
		return;
	}
	fe->halted = true;
	defer = fe->created;
	if (defer)
		export_ref(&fe->common);
	pthread_mutex_unlock(&fe->lock);
	if (!atomic_load(&fe->stopping))
		log_warnx("export '%s': %s: stopping the export", fe->common.id, why);
	fuse_export_wake_threads(fe);
	if (defer)
		main_loop_defer(fuse_export_halt_cb, fe);
}

/* Reply with an error (or 0), remembering it for the statistics. */
static int fuse_thread_reply_err(struct fuse_thread *t, uint64_t unique, int err)
{
	t->last_err = err;
	return fuse_proto_reply_err(t->fd, unique, err);
}

static int fuse_export_reply_attr(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;
	struct block_node *bs = fe->common.node;
	struct fuse_attr_out out;
	int64_t len, alloc, blocks;
	uint64_t now = (uint64_t)time(NULL);
	size_t outlen = sizeof(out);

	len = block_node_length(bs);
	if (len < 0)
		return fuse_thread_reply_err(t, req->unique, (int)-len);
	alloc = block_node_allocated_size(bs);
	/* As QEMU: without an allocated size, claim the whole length. */
	blocks = alloc <= 0 ? DIV_ROUND_UP(len, 512) : DIV_ROUND_UP(alloc, 512);

	memset(&out, 0, sizeof(out));
	out.attr_valid = 1;
	out.attr.ino = FUSE_ROOT_ID;
	out.attr.mode = atomic_load(&fe->st_mode);
	out.attr.nlink = 1;
	out.attr.uid = atomic_load(&fe->st_uid);
	out.attr.gid = atomic_load(&fe->st_gid);
	out.attr.size = (uint64_t)len;
	out.attr.blocks = (uint64_t)blocks;
	/* QEMU reports the node's request alignment: 1 without O_DIRECT. */
	out.attr.blksize = 1;
	out.attr.atime = out.attr.mtime = out.attr.ctime = now;
	if (fe->proto_minor < 9)
		outlen = FUSE_COMPAT_ATTR_OUT_SIZE;
	return fuse_proto_reply(t->fd, req->unique, &out, outlen);
}

/* Change the size under resize_lock; grow_only: never shrink. */
static int fuse_export_resize(struct fuse_export *fe, uint64_t size, bool grow_only)
{
	struct block_node *bs = fe->common.node;
	int64_t len;
	int ret = 0;

	if (size > INT64_MAX)
		return -EFBIG;
	pthread_mutex_lock(&fe->resize_lock);
	len = block_node_length(bs);
	if (len < 0)
		ret = (int)len;
	else if ((uint64_t)len != size && (!grow_only || (uint64_t)len < size))
		ret = block_node_truncate(bs, size);
	pthread_mutex_unlock(&fe->resize_lock);
	return ret;
}

static int fuse_op_setattr(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;
	struct fuse_setattr_in in;
	uint32_t to_set, supported;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	/* What libfuse hands QEMU: FH and LOCKOWNER are not attributes. */
	to_set = in.valid & (FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME |
			     FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW | FATTR_CTIME);
	supported = FATTR_SIZE | FATTR_MODE;
	if (fe->allow_other)
		supported |= FATTR_UID | FATTR_GID;
	if (to_set & ~supported)
		return fuse_thread_reply_err(t, req->unique, ENOTSUP);

	if (to_set & FATTR_MODE) {
		/* Without allow_other, nobody but the owner can get in anyway. */
		if (!fe->allow_other && (in.mode & (S_IRWXG | S_IRWXO)))
			return fuse_thread_reply_err(t, req->unique, EPERM);
		/* +w makes no sense on a read-only export. */
		if (!fe->common.writable && (in.mode & (S_IWUSR | S_IWGRP | S_IWOTH)))
			return fuse_thread_reply_err(t, req->unique, EROFS);
	}
	if (to_set & FATTR_SIZE) {
		if (!fe->common.writable)
			return fuse_thread_reply_err(t, req->unique, EACCES);
		ret = fuse_export_resize(fe, in.size, false);
		if (ret < 0)
			return fuse_thread_reply_err(t, req->unique, -ret);
	}
	if (to_set & FATTR_MODE)
		atomic_store(&fe->st_mode, (in.mode & 07777) | S_IFREG);
	if (to_set & FATTR_UID)
		atomic_store(&fe->st_uid, in.uid);
	if (to_set & FATTR_GID)
		atomic_store(&fe->st_gid, in.gid);
	return fuse_export_reply_attr(t, req);
}

static int fuse_op_open(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;
	struct exportd_fuse_open_out out;
	struct fuse_open_in in;
	bool wants_write;

	memcpy(&in, req->arg, sizeof(in));
	wants_write = (in.flags & O_ACCMODE) != O_RDONLY;
	memset(&out, 0, sizeof(out));

	pthread_mutex_lock(&fe->lock);
	if (fe->data_path == FUSE_PATH_PASSTHROUGH && fe->backing_id > 0) {
		if (wants_write) {
			/*
			 * Only CAP_DAC_OVERRIDE gets here (a read-only export
			 * has no w bit).  Every handle of a passthrough inode
			 * must be passthrough, and ours could not write:
			 * refuse, as the mode says.
			 */
			pthread_mutex_unlock(&fe->lock);
			return fuse_thread_reply_err(t, req->unique, EACCES);
		}
		out.open_flags = FOPEN_PASSTHROUGH;
		out.backing_id = fe->backing_id;
	}
	fe->open_handles++;
	pthread_mutex_unlock(&fe->lock);
	return fuse_proto_reply(t->fd, req->unique, &out, sizeof(out));
}

static int fuse_op_release(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;

	pthread_mutex_lock(&fe->lock);
	if (fe->open_handles > 0)
		fe->open_handles--;
	pthread_cond_broadcast(&fe->cond);
	pthread_mutex_unlock(&fe->lock);
	return fuse_thread_reply_err(t, req->unique, 0);
}

static int fuse_op_read(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;
	struct fuse_read_in in;
	char *data = t->buf + FUSE_EXPORT_PAGE;
	int64_t len;
	uint32_t size;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	if (in.size > FUSE_EXPORT_MAX_IO)
		return fuse_thread_reply_err(t, req->unique, EINVAL);
	len = block_node_length(fe->common.node);
	if (len < 0)
		return fuse_thread_reply_err(t, req->unique, (int)-len);
	/* Clients expect short reads at EOF. */
	if (in.offset >= (uint64_t)len)
		size = 0;
	else
		size = (uint32_t)MIN((uint64_t)in.size, (uint64_t)len - in.offset);
	if (size) {
		ret = block_node_pread(fe->common.node, data, size, in.offset);
		if (ret < 0)
			return fuse_thread_reply_err(t, req->unique, -ret);
	}
	t->last_bytes = size;
	return fuse_proto_reply(t->fd, req->unique, data, size);
}

static int fuse_op_write(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;
	struct block_node *bs = fe->common.node;
	struct fuse_write_out out;
	struct fuse_write_in in;
	uint64_t size;
	int64_t len;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	if (!fe->common.writable)
		return fuse_thread_reply_err(t, req->unique, EACCES);
	size = in.size;
	if (size > FUSE_EXPORT_MAX_IO || in.offset > (uint64_t)INT64_MAX - size)
		return fuse_thread_reply_err(t, req->unique, EINVAL);
	len = block_node_length(bs);
	if (len < 0)
		return fuse_thread_reply_err(t, req->unique, (int)-len);
	if (in.offset + size > (uint64_t)len) {
		if (fe->common.growable) {
			ret = fuse_export_resize(fe, in.offset + size, true);
			if (ret < 0)
				return fuse_thread_reply_err(t, req->unique, -ret);
		} else if (in.offset >= (uint64_t)len) {
			/* qsd 7.2 answers a write at or past EOF with EIO. */
			return fuse_thread_reply_err(t, req->unique, EIO);
		} else {
			/* A short write up to EOF. */
			size = (uint64_t)len - in.offset;
		}
	}
	if (size) {
		ret = block_node_pwrite(bs, req->data, size, in.offset);
		if (ret == 0 && fe->writethrough)
			ret = block_node_flush(bs);
		if (ret < 0)
			return fuse_thread_reply_err(t, req->unique, -ret);
	}
	t->last_bytes = size;
	memset(&out, 0, sizeof(out));
	out.size = (uint32_t)size;
	return fuse_proto_reply(t->fd, req->unique, &out, sizeof(out));
}

static int fuse_export_fallocate(struct fuse_export *fe, uint64_t offset, uint64_t length,
				 uint32_t mode)
{
	struct block_node *bs = fe->common.node;
	int64_t len;
	int ret;

	if (!fe->common.writable)
		return -EACCES;
	if (offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset)
		return -EFBIG;
	len = block_node_length(bs);
	if (len < 0)
		return (int)len;
	if (mode & FALLOC_FL_KEEP_SIZE) {
		if (offset >= (uint64_t)len)
			length = 0;
		else
			length = MIN(length, (uint64_t)len - offset);
	}

	if (mode == 0) {
		/* Only growing at EOF can be done (by truncating). */
		if (offset < (uint64_t)len)
			return -EOPNOTSUPP;
		ret = fuse_export_resize(fe, offset + length, true);
		if (ret < 0 || length == 0)
			return ret;
		/* Allocate the new range, as QEMU's PREALLOC_MODE_FALLOC. */
		return block_node_write_zeroes(bs, offset, length, 0);
	}
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (!(mode & FALLOC_FL_KEEP_SIZE))
			return -EINVAL;
		/*
		 * Unlike qsd 7.2 (QEMU #1507), the range must read back as
		 * zeroes afterwards: write_zeroes guarantees that.
		 */
		if (length == 0)
			return 0;
		ret = block_node_write_zeroes(bs, offset, length, BLOCK_ZERO_MAY_UNMAP);
		return ret == -ENOTSUP ? -EOPNOTSUPP : ret;
	}
	if (mode & FALLOC_FL_ZERO_RANGE) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + length > (uint64_t)len) {
			ret = fuse_export_resize(fe, offset + length, true);
			if (ret < 0)
				return ret;
		}
		if (length == 0)
			return 0;
		ret = block_node_write_zeroes(bs, offset, length, 0);
		return ret == -ENOTSUP ? -EOPNOTSUPP : ret;
	}
	return -EOPNOTSUPP;
}

static int fuse_op_fallocate(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_fallocate_in in;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	ret = fuse_export_fallocate(t->fe, in.offset, in.length, in.mode);
	if (ret == 0 && t->fe->writethrough)
		ret = block_node_flush(t->fe->common.node);
	return fuse_thread_reply_err(t, req->unique, ret < 0 ? -ret : 0);
}

/* SEEK_DATA/SEEK_HOLE from block status, with qsd's EOF semantics. */
static int64_t fuse_export_lseek(struct fuse_export *fe, uint64_t offset, uint32_t whence)
{
	struct block_node *bs = fe->common.node;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	for (;;) {
		int64_t len = block_node_length(bs);
		uint64_t pnum = 0;
		int ret;

		if (len < 0)
			return len;
		if (offset >= (uint64_t)len) {
			/* A hole at EOF; nothing (ENXIO) beyond it. */
			if (offset > (uint64_t)len || whence == SEEK_DATA)
				return -ENXIO;
			return (int64_t)offset;
		}
		ret = block_node_block_status(bs, offset, (uint64_t)len - offset, &pnum);
		if (ret < 0)
			return ret;
		if (ret & BLOCK_STATUS_DATA) {
			if (whence == SEEK_DATA)
				return (int64_t)offset;
		} else if (whence == SEEK_HOLE) {
			return (int64_t)offset;
		}
		if (pnum == 0)
			return -ENXIO;	/* a driver that makes no progress */
		offset += pnum;
	}
}

static int fuse_op_lseek(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_lseek_in in;
	struct fuse_lseek_out out;
	int64_t ret;

	memcpy(&in, req->arg, sizeof(in));
	ret = fuse_export_lseek(t->fe, in.offset, in.whence);
	if (ret < 0)
		return fuse_thread_reply_err(t, req->unique, (int)-ret);
	memset(&out, 0, sizeof(out));
	out.offset = (uint64_t)ret;
	return fuse_proto_reply(t->fd, req->unique, &out, sizeof(out));
}

static int fuse_op_statfs(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_statfs_out out;
	size_t outlen = sizeof(out);

	/* What libfuse answers for a file system without statfs (as qsd). */
	memset(&out, 0, sizeof(out));
	out.st.bsize = 512;
	out.st.namelen = 255;
	if (t->fe->proto_minor < 4)
		outlen = FUSE_COMPAT_STATFS_SIZE;
	return fuse_proto_reply(t->fd, req->unique, &out, outlen);
}

/* Register the backing file with the kernel (after INIT agreed to it). */
static void fuse_export_backing_open(struct fuse_thread *t)
{
	struct fuse_export *fe = t->fe;
	struct exportd_fuse_backing_map map;
	int id;

	memset(&map, 0, sizeof(map));
	map.fd = fe->pt_fd;
	id = ioctl(t->fd, EXPORTD_FUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id <= 0) {
		int err = id < 0 ? errno : EINVAL;

		fuse_export_set_reason(fe, FUSE_PATH_USERSPACE,
				       "the kernel refused the backing file "
				       "(FUSE_DEV_IOC_BACKING_OPEN: %s)", strerror(err));
		log_warnx("export '%s': passthrough unavailable: %s", fe->common.id,
			  fe->data_path_reason);
		return;
	}
	fe->backing_id = id;
	fe->backing_dev_fd = t->fd;
	fuse_export_set_reason(fe, FUSE_PATH_PASSTHROUGH,
			       "the kernel serves reads from the image directly");
}

static int fuse_op_init(struct fuse_thread *t, const struct fuse_request *req)
{
	struct fuse_export *fe = t->fe;
	struct fuse_init_params p = {
		.max_write = FUSE_EXPORT_MAX_IO,
		.max_pages = FUSE_EXPORT_MAX_IO / FUSE_EXPORT_PAGE,
		.max_background = FUSE_EXPORT_MAX_BACKGROUND,
	};
	struct exportd_fuse_init_out out;
	struct fuse_init_result res;
	int len, ret;

	pthread_mutex_lock(&fe->lock);
	p.want_passthrough = fe->pt_wanted;
	len = fuse_proto_init(req, &p, &out, &res);
	if (len < 0) {
		pthread_mutex_unlock(&fe->lock);
		fuse_thread_reply_err(t, req->unique, EPROTO);
		return -EPROTO;
	}
	fe->proto_minor = res.minor;
	ret = fuse_proto_reply(t->fd, req->unique, &out, (size_t)len);
	/*
	 * The kernel took the reply during write(), so it knows about
	 * passthrough now.  Other threads may already have an OPEN; they
	 * wait on lock for the outcome.
	 */
	if (ret == 0 && !res.retry) {
		if (fe->pt_wanted) {
			if (res.passthrough)
				fuse_export_backing_open(t);
			else
				fuse_export_set_reason(fe, FUSE_PATH_USERSPACE,
						       "the kernel did not offer FUSE_PASSTHROUGH "
						       "(needs Linux 6.9+)");
		}
		fe->initialized = true;
		pthread_cond_broadcast(&fe->cond);
	}
	pthread_mutex_unlock(&fe->lock);
	return 0;
}

static void fuse_thread_account(struct fuse_thread *t, uint32_t opcode, uint64_t ns)
{
	struct fuse_op_stats *st;
	uint64_t us = ns / 1000;
	int b = 0;

	switch (opcode) {
	case FUSE_READ:
		st = &t->stats[FUSE_STAT_READ];
		break;
	case FUSE_WRITE:
		st = &t->stats[FUSE_STAT_WRITE];
		break;
	case FUSE_FLUSH:
	case FUSE_FSYNC:
		st = &t->stats[FUSE_STAT_FLUSH];
		break;
	case FUSE_FALLOCATE:
		st = &t->stats[FUSE_STAT_FALLOCATE];
		break;
	default:
		st = &t->stats[FUSE_STAT_OTHER];
		break;
	}
	while (us && b < FUSE_STAT_BUCKETS - 1) {
		us >>= 1;
		b++;
	}
	/* Only this thread writes: relaxed is enough, queries just sum. */
	atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->bytes, t->last_bytes, memory_order_relaxed);
	if (t->last_err)
		atomic_fetch_add_explicit(&st->errors, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->latency[b], 1, memory_order_relaxed);
}

/* Handle one request; < 0 means the channel cannot be trusted any more. */
static int fuse_export_handle(struct fuse_thread *t, const void *buf, size_t n)
{
	struct fuse_export *fe = t->fe;
	struct fuse_request req;
	const char *why;
	char opbuf[16];
	int ret;

	uint64_t start = clock_monotonic_ns();

	if (fuse_proto_parse(buf, n, &req, &why) < 0) {
		log_warnx("export '%s': malformed FUSE request: %s", fe->common.id, why);
		return -EPROTO;
	}
	t->last_err = 0;
	t->last_bytes = 0;
	switch (req.opcode) {
	case FUSE_INIT:
		return fuse_op_init(t, &req);
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:	/* requests are short; let them finish */
		return 0;
	case FUSE_LOOKUP:	/* the root is the only node */
		ret = fuse_thread_reply_err(t, req.unique, ENOENT);
		break;
	case FUSE_GETATTR:
		ret = fuse_export_reply_attr(t, &req);
		break;
	case FUSE_SETATTR:
		ret = fuse_op_setattr(t, &req);
		break;
	case FUSE_OPEN:
		ret = fuse_op_open(t, &req);
		break;
	case FUSE_RELEASE:
		ret = fuse_op_release(t, &req);
		break;
	case FUSE_READ:
		ret = fuse_op_read(t, &req);
		break;
	case FUSE_WRITE:
		ret = fuse_op_write(t, &req);
		break;
	case FUSE_FALLOCATE:
		ret = fuse_op_fallocate(t, &req);
		break;
	case FUSE_FLUSH:	/* close(): qsd flushes there too */
	case FUSE_FSYNC:
		ret = block_node_flush(fe->common.node);
		ret = fuse_thread_reply_err(t, req.unique, ret < 0 ? -ret : 0);
		break;
	case FUSE_LSEEK:
		ret = fuse_op_lseek(t, &req);
		break;
	case FUSE_STATFS:
		ret = fuse_op_statfs(t, &req);
		break;
	case FUSE_DESTROY:
		ret = fuse_thread_reply_err(t, req.unique, 0);
		break;
	default:
		log_debug("export '%s': %s not implemented", fe->common.id,
			  fuse_proto_opname(req.opcode, opbuf, sizeof(opbuf)));
		ret = fuse_thread_reply_err(t, req.unique, ENOSYS);
		break;
	}
	/* ENOENT: the request was interrupted and is gone; not our problem. */
	if (ret < 0 && ret != -ENOENT && !atomic_load(&fe->stopping))
		log_debug("export '%s': cannot reply to %s: %s", fe->common.id,
			  fuse_proto_opname(req.opcode, opbuf, sizeof(opbuf)), strerror(-ret));
	fuse_thread_account(t, req.opcode, clock_monotonic_ns() - start);
	return 0;
}

/* Wait for a request or for teardown; false when the thread must leave. */
static bool fuse_thread_wait(struct fuse_thread *t)
{
	struct fuse_export *fe = t->fe;
	struct pollfd pfd[2] = {
		{ .fd = t->fd, .events = POLLIN },
		{ .fd = fe->stop_fd, .events = POLLIN },
	};

	for (;;) {
		int n = poll(pfd, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_warn("export '%s': poll", fe->common.id);
			return false;
		}
		if (pfd[1].revents)
			return false;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			fuse_export_halt(fe, "the FUSE connection ended (unmounted?)");
			return false;
		}
		return true;
	}
}

static void *fuse_thread_run(void *opaque)
{
	struct fuse_thread *t = opaque;
	struct fuse_export *fe = t->fe;
	/* Read so that WRITE data lands page-aligned at buf + PAGE. */
	char *in = t->buf + FUSE_EXPORT_PAGE - FUSE_PROTO_WRITE_HEADER;
	size_t insize = FUSE_PROTO_WRITE_HEADER + FUSE_EXPORT_MAX_IO;

	while (!atomic_load_explicit(&fe->stopping, memory_order_relaxed)) {
		ssize_t n = read(t->fd, in, insize);

		if (n < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			if (errno == EAGAIN) {
				if (!fuse_thread_wait(t))
					break;
				continue;
			}
			if (errno == ENODEV || errno == ECONNABORTED) {
				fuse_export_halt(fe, "the FUSE connection ended (unmounted?)");
				break;
			}
			log_warn("export '%s': reading /dev/fuse", fe->common.id);
			fuse_export_halt(fe, "cannot read requests");
			break;
		}
		if (fuse_export_handle(t, in, (size_t)n) < 0) {
			fuse_export_halt(fe, "protocol error");
			break;
		}
	}
	export_unref(&fe->common);
	return NULL;
}

/* ---- set-up and teardown (main thread) -------------------------------- */

static int fuse_export_mount(struct fuse_export *fe, bool allow_other, struct error **errp)
{
	static const struct fuse_lowlevel_ops no_ops;
	char *opts = xasprintf("max_read=%u,default_permissions%s", FUSE_EXPORT_MAX_IO,
			       allow_other ? ",allow_other" : "");
	char *argv[] = { (char *)"exportd", (char *)"-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);

	/* No ops: libfuse never sees a request, we only use it to mount. */
	fe->se = fuse_session_new(&args, &no_ops, sizeof(no_ops), fe);
	fuse_opt_free_args(&args);
	free(opts);
	if (!fe->se) {
		error_setg(errp, "Failed to set up FUSE session");
		return -1;
	}
	if (fuse_session_mount(fe->se, fe->mountpoint) != 0) {
		fuse_session_destroy(fe->se);
		fe->se = NULL;
		error_setg(errp, "Failed to mount FUSE session to export");
		return -1;
	}
	return 0;
}

static int fuse_clone_fd(int fd, struct error **errp)
{
	uint32_t src = (uint32_t)fd;
	int nfd = open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);

	if (nfd < 0) {
		error_setg_errno(errp, errno, "Failed to open /dev/fuse");
		return -1;
	}
	if (ioctl(nfd, FUSE_DEV_IOC_CLONE, &src) < 0) {
		error_setg_errno(errp, errno, "Failed to clone the FUSE fd");
		close(nfd);
		return -1;
	}
	return nfd;
}

/* Decide whether the kernel may serve this export's I/O itself. */
static int fuse_export_plan_passthrough(struct fuse_export *fe, const char *mode,
					struct error **errp)
{
	struct block_passthrough pt;
	const char *why = NULL;
	struct stat st;
	int flags;

	fe->pt_fd = -1;
	fe->backing_dev_fd = -1;
	if (!strcmp(mode, "off")) {
		fuse_export_set_reason(fe, FUSE_PATH_USERSPACE, "disabled (passthrough: off)");
		return 0;
	}
	fe->pt_required = !strcmp(mode, "on");
	if (fe->common.growable) {
		why = "the export is growable (the kernel would not grow it through us)";
	} else if (block_node_get_passthrough(fe->common.node, &pt, &why) < 0) {
		if (!why)
			why = "the node is not a whole file";
	} else if (pt.offset != 0) {
		why = "the node starts at an offset into its file";
	} else if (fstat(pt.fd, &st) < 0) {
		why = "cannot stat the image";
	} else if (fe->common.writable) {
		why = "the export is writable (a passthrough write past the end would "
		      "grow the image, which a fixed-size export must refuse)";
	} else if (S_ISBLK(st.st_mode)) {
		why = "the image is a block device (the kernel passes through regular "
		      "files only)";
	} else if (!S_ISREG(st.st_mode)) {
		why = "the image is not a regular file";
	}
	if (why) {
		if (fe->pt_required) {
			error_setg(errp, "Cannot use FUSE passthrough for export '%s': %s",
				   fe->common.id, why);
			return -1;
		}
		fuse_export_set_reason(fe, FUSE_PATH_USERSPACE, "%s", why);
		return 0;
	}
	/* Hand the kernel a read-only fd of its own, whatever the node has. */
	flags = fcntl(pt.fd, F_GETFL);
	{
		char *proc = xasprintf("/proc/self/fd/%d", pt.fd);

		fe->pt_fd = open(proc, O_RDONLY | O_CLOEXEC |
				 (flags >= 0 ? (flags & O_DIRECT) : 0));
		free(proc);
	}
	if (fe->pt_fd < 0) {
		if (fe->pt_required) {
			error_setg_errno(errp, errno, "Cannot reopen the image of export '%s' "
					 "for passthrough", fe->common.id);
			return -1;
		}
		fuse_export_set_reason(fe, FUSE_PATH_USERSPACE,
				       "cannot reopen the image for the kernel: %s",
				       strerror(errno));
		return 0;
	}
	fe->pt_wanted = true;
	fuse_export_set_reason(fe, FUSE_PATH_PASSTHROUGH, "waiting for FUSE INIT");
	return 0;
}

/* Unmount and forget the mountpoint (idempotent). */
static void fuse_export_unmount(struct fuse_export *fe)
{
	if (fe->mounted) {
		LIST_REMOVE(fe, link);
		fe->mounted = false;
	}
	if (fe->se) {
		/* Lazy (MNT_DETACH): never waits for clients; closes the session fd. */
		fuse_session_unmount(fe->se);
	}
}

/* Free everything; threads must not run any more. */
static void fuse_export_free_resources(struct fuse_export *fe)
{
	for (int i = 0; i < fe->num_threads && fe->threads; i++) {
		struct fuse_thread *t = &fe->threads[i];

		if (t->started)
			pthread_join(t->tid, NULL);
	}
	if (fe->backing_id > 0 && fe->backing_dev_fd >= 0) {
		uint32_t id = (uint32_t)fe->backing_id;

		if (ioctl(fe->backing_dev_fd, EXPORTD_FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0)
			log_debug("export '%s': FUSE_DEV_IOC_BACKING_CLOSE: %s",
				  fe->common.id, strerror(errno));
		fe->backing_id = 0;
	}
	for (int i = 0; i < fe->num_threads && fe->threads; i++) {
		struct fuse_thread *t = &fe->threads[i];

		/* The last fd of the connection going away aborts it. */
		if (t->fd >= 0)
			close(t->fd);
		free(t->buf);
	}
	free(fe->threads);
	fe->threads = NULL;
	if (fe->se) {
		fuse_session_destroy(fe->se);
		fe->se = NULL;
	}
	if (fe->pt_fd >= 0)
		close(fe->pt_fd);
	fe->pt_fd = -1;
	if (fe->stop_fd >= 0)
		close(fe->stop_fd);
	fe->stop_fd = -1;
	pthread_mutex_destroy(&fe->lock);
	pthread_mutex_destroy(&fe->resize_lock);
	pthread_cond_destroy(&fe->cond);
	free(fe->mountpoint);
	fe->mountpoint = NULL;
	free(fe->data_path_reason);
	fe->data_path_reason = NULL;
}

static int fuse_export_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return (int)MIN(n, FUSE_EXPORT_DEFAULT_THREADS_CAP);
}

static int fuse_export_start_threads(struct fuse_export *fe, struct error **errp)
{
	sigset_t all, old;
	int session_fd = fuse_session_fd(fe->se);

	fe->threads = xcalloc((size_t)fe->num_threads, sizeof(*fe->threads));
	for (int i = 0; i < fe->num_threads; i++) {
		struct fuse_thread *t = &fe->threads[i];

		t->fe = fe;
		/*
		 * Every thread gets a clone, even the first: libfuse closes
		 * the session fd when it unmounts, while threads may still
		 * be finishing a request.
		 */
		t->fd = fuse_clone_fd(session_fd, errp);
		if (t->fd < 0)
			return -1;
		if (posix_memalign((void **)&t->buf, FUSE_EXPORT_PAGE, FUSE_EXPORT_BUF_SIZE)) {
			error_setg(errp, "Cannot allocate FUSE request buffers");
			return -1;
		}
	}
	/* Request threads take no signals: the main loop handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < fe->num_threads; i++) {
		struct fuse_thread *t = &fe->threads[i];
		int err;

		export_ref(&fe->common);
		err = pthread_create(&t->tid, NULL, fuse_thread_run, t);
		if (err) {
			export_unref(&fe->common);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			error_setg_errno(errp, err, "Cannot start FUSE request threads");
			return -1;
		}
		t->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

/* Wait (bounded) for INIT so that queries report the settled data path. */
static void fuse_export_wait_init(struct fuse_export *fe)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += (long)FUSE_EXPORT_INIT_WAIT_MS % 1000 * 1000000L;
	deadline.tv_sec += FUSE_EXPORT_INIT_WAIT_MS / 1000 + deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&fe->lock);
	while (!fe->initialized) {
		if (pthread_cond_timedwait(&fe->cond, &fe->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&fe->lock);
}

/* Whether the kernel serves FUSE over io_uring (Linux 6.14+, opt-in). */
static bool fuse_kernel_uring_enabled(void)
{
	char c = 'N';
	FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "re");

	if (!f)
		return false;
	if (fread(&c, 1, 1, f) != 1)
		c = 'N';
	fclose(f);
	return c == 'Y' || c == '1';
}

static int fuse_export_create(struct export *exp, json_t *options, struct error **errp)
{
	static bool log_hooked;
	struct fuse_export *fe = fuse_export_of(exp);
	const char *mountpoint = json_string_value(json_object_get(options, "mountpoint"));
	const char *allow_other = json_string_value(json_object_get(options, "allow-other"));
	const char *passthrough = json_string_value(json_object_get(options, "passthrough"));
	json_t *num_threads = json_object_get(options, "num-threads");
	json_t *iothread = json_object_get(options, "iothread");
	struct stat st;
	bool ours = false;

	if (!log_hooked) {
		fuse_set_log_func(fuse_export_libfuse_log);
		log_hooked = true;
	}
	fe->stop_fd = -1;
	fe->pt_fd = -1;
	fe->backing_dev_fd = -1;
	pthread_mutex_init(&fe->lock, NULL);
	pthread_mutex_init(&fe->resize_lock, NULL);
	pthread_cond_init(&fe->cond, NULL);

	if (!mountpoint) {
		error_setg(errp, "Parameter 'mountpoint' is missing");
		goto fail;
	}
	if (json_is_true(json_object_get(options, "io-uring"))) {
		if (!fuse_kernel_uring_enabled())
			error_setg(errp, "FUSE-over-io_uring is disabled in this kernel (fuse "
				   "module parameter enable_uring is off); leave 'io-uring' "
				   "out to use request threads");
		else
			error_setg(errp, "FUSE-over-io_uring is not implemented by this "
				   "exportd yet; leave 'io-uring' out to use request threads");
		goto fail;
	}
	if (num_threads) {
		json_int_t n = json_integer_value(num_threads);

		if (n < 1 || n > FUSE_EXPORT_MAX_THREADS) {
			error_setg(errp, "'num-threads' must be between 1 and %d, not %lld",
				   FUSE_EXPORT_MAX_THREADS, (long long)n);
			goto fail;
		}
		fe->num_threads = (int)n;
	} else {
		fe->num_threads = fuse_export_default_threads();
	}
	if (iothread)
		log_info("export '%s': iothread '%s' ignored: exportd serves each FUSE export "
			 "on its own request threads (num-threads)", exp->id,
			 json_string_value(iothread));
	fe->writethrough = json_is_true(json_object_get(options, "writethrough"));

	/* Never stat through one of our own mounts (qsd 7.2 deadlocks there). */
	fe->mountpoint = fuse_mountpoint_resolve(mountpoint, fuse_mountpoint_is_ours, NULL,
						 &ours, &st, errp);
	if (!fe->mountpoint)
		goto fail;
	if (ours) {
		error_setg(errp, "There already is a FUSE export on '%s'", mountpoint);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		error_setg(errp, "'%s' is not a regular file", mountpoint);
		goto fail;
	}

	if (fuse_export_plan_passthrough(fe, passthrough ? passthrough : "auto", errp) < 0)
		goto fail;

	atomic_init(&fe->st_mode, S_IFREG | S_IRUSR | (exp->writable ? S_IWUSR : 0));
	atomic_init(&fe->st_uid, getuid());
	atomic_init(&fe->st_gid, getgid());

	if (!allow_other || !strcmp(allow_other, "auto")) {
		/* allow_other fails for users when /etc/fuse.conf forbids it. */
		fe->allow_other = true;
		if (fuse_export_mount(fe, true, NULL) < 0) {
			fe->allow_other = false;
			if (fuse_export_mount(fe, false, errp) < 0)
				goto fail;
		}
	} else {
		fe->allow_other = !strcmp(allow_other, "on");
		if (fuse_export_mount(fe, fe->allow_other, errp) < 0)
			goto fail;
	}
	LIST_INSERT_HEAD(&fuse_mounts, fe, link);
	fe->mounted = true;

	fe->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fe->stop_fd < 0) {
		error_setg_errno(errp, errno, "Cannot create an eventfd");
		goto fail_unmount;
	}
	if (fuse_export_start_threads(fe, errp) < 0)
		goto fail_unmount;
	fuse_export_wait_init(fe);
	pthread_mutex_lock(&fe->lock);
	if (fe->halted) {
		pthread_mutex_unlock(&fe->lock);
		error_setg(errp, "The FUSE session of export '%s' failed right after mounting",
			   exp->id);
		goto fail_unmount;
	}
	fe->created = true;
	pthread_mutex_unlock(&fe->lock);
	log_info("export '%s' mounted on '%s' (%d threads, allow_other %s, %s: %s)",
		 exp->id, fe->mountpoint, fe->num_threads, fe->allow_other ? "on" : "off",
		 fe->data_path == FUSE_PATH_PASSTHROUGH ? "passthrough" : "userspace",
		 fe->data_path_reason);
	return 0;

fail_unmount:
	/* Not created: threads that give up now only stop. */
	atomic_store(&fe->stopping, true);
	fuse_export_unmount(fe);
	if (fe->stop_fd >= 0)
		fuse_export_wake_threads(fe);
fail:
	/* Threads that did start hold references; export_add holds one more. */
	fuse_export_free_resources(fe);
	return -1;
}

static void fuse_export_request_shutdown(struct export *exp)
{
	struct fuse_export *fe = fuse_export_of(exp);

	/* First, so that threads take the unmount's ENODEV as expected. */
	atomic_store(&fe->stopping, true);
	fuse_export_unmount(fe);
	fuse_export_wake_threads(fe);
}

static void fuse_export_delete(struct export *exp)
{
	fuse_export_free_resources(fuse_export_of(exp));
}

static bool fuse_export_in_use(struct export *exp)
{
	struct fuse_export *fe = fuse_export_of(exp);
	struct timespec deadline;
	bool busy;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += FUSE_EXPORT_RELEASE_GRACE_MS * 1000000L;
	deadline.tv_sec += deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&fe->lock);
	/* RELEASE follows close() asynchronously: give it a moment. */
	while (fe->open_handles > 0) {
		if (pthread_cond_timedwait(&fe->cond, &fe->lock, &deadline) == ETIMEDOUT)
			break;
	}
	busy = fe->open_handles > 0;
	pthread_mutex_unlock(&fe->lock);
	return busy;
}

/*
 * {"read": {"requests", "bytes", "errors", "latency-us": [[below, count],
 * ...]}, "write": ...}: latency buckets that are not empty, each with its
 * upper bound in microseconds (null for the last, open one).
 */
static json_t *fuse_export_stats(struct fuse_export *fe)
{
	json_t *all = json_object();

	for (int op = 0; op < FUSE_STAT_NOPS; op++) {
		uint64_t req = 0, bytes = 0, errors = 0, lat[FUSE_STAT_BUCKETS] = { 0 };
		json_t *hist = json_array();

		for (int i = 0; i < fe->num_threads && fe->threads; i++) {
			struct fuse_op_stats *st = &fe->threads[i].stats[op];

			req += atomic_load_explicit(&st->requests, memory_order_relaxed);
			bytes += atomic_load_explicit(&st->bytes, memory_order_relaxed);
			errors += atomic_load_explicit(&st->errors, memory_order_relaxed);
			for (int b = 0; b < FUSE_STAT_BUCKETS; b++)
				lat[b] += atomic_load_explicit(&st->latency[b],
							       memory_order_relaxed);
		}
		for (int b = 0; b < FUSE_STAT_BUCKETS; b++) {
			if (!lat[b])
				continue;
			json_array_append_new(hist, json_pack("[o, I]", b < FUSE_STAT_BUCKETS - 1 ?
							      json_integer((json_int_t)1 << b) :
							      json_null(), (json_int_t)lat[b]));
		}
		json_object_set_new(all, fuse_stat_names[op],
				    json_pack("{s:I, s:I, s:I, s:o}", "requests", (json_int_t)req,
					      "bytes", (json_int_t)bytes, "errors",
					      (json_int_t)errors, "latency-us", hist));
	}
	return all;
}

static void fuse_export_query(struct export *exp, json_t *info)
{
	struct fuse_export *fe = fuse_export_of(exp);

	pthread_mutex_lock(&fe->lock);
	json_object_set_new(info, "x-mountpoint", json_string(fe->mountpoint));
	json_object_set_new(info, "x-writable", json_boolean(exp->writable));
	json_object_set_new(info, "x-growable", json_boolean(exp->growable));
	json_object_set_new(info, "x-allow-other", json_boolean(fe->allow_other));
	json_object_set_new(info, "x-num-threads", json_integer(fe->num_threads));
	json_object_set_new(info, "x-data-path",
			    json_string(fe->data_path == FUSE_PATH_PASSTHROUGH ?
					"passthrough" : "userspace"));
	json_object_set_new(info, "x-data-path-reason",
			    json_string(fe->data_path_reason ? fe->data_path_reason : ""));
	json_object_set_new(info, "x-open-handles", json_integer(fe->open_handles));
	pthread_mutex_unlock(&fe->lock);
	json_object_set_new(info, "x-stats", fuse_export_stats(fe));
}

const struct export_driver export_driver_fuse = {
	.type = "fuse",
	.instance_size = sizeof(struct fuse_export),
	.create = fuse_export_create,
	.request_shutdown = fuse_export_request_shutdown,
	.delete = fuse_export_delete,
	.in_use = fuse_export_in_use,
	.query = fuse_export_query,
};
