/*
 * fuse/export.c: the FUSE export driver: a block node appears as a regular
 * file, with the semantics of qemu-storage-daemon 7.2's block/export/fuse.c.
 *
 * Design, and why:
 * - libfuse3 (Debian's 3.14) only mounts: fuse_session_new() +
 *   fuse_session_mount() with QEMU's options (max_read, default_permissions,
 *   allow_other when asked).  We then take the session fd and never run
 *   libfuse's loop, as QEMU 10 does, because 3.14 can neither negotiate
 *   FUSE passthrough (7.40) nor let us answer from several threads without
 *   its own locking and copies.  fuse/proto.c owns the wire format,
 *   fuse/ops.c answers the requests, fuse/channel.c carries them over
 *   /dev/fuse; this file sets exports up and tears them down.
 * - Each export has N /dev/fuse channels (num-threads, default = one per
 *   loop of the default pool, at most 8), each a fd cloned with
 *   FUSE_DEV_IOC_CLONE and registered as a persistent read event on one
 *   I/O loop (iothread/): fuse/channel.c reads a request, calls the block
 *   layer directly and replies with writev() on the same fd (the kernel
 *   matches a reply to the fd its request was read from).  No queue, no
 *   hand-off, no global lock on the hot path, and no thread of the
 *   export's own: loops are shared by all exports.  The main loop never
 *   touches I/O.
 * - Buffers: the loop's request buffer (one per loop, not per export) is
 *   read into at an offset chosen so that WRITE data starts page-aligned;
 *   pwrite() uses it in place, READ data is pread() into the same aligned
 *   area.  max_write and max_read are 1 MiB (FUSE_MAX_PAGES, the
 *   kernel's default page limit).
 * - Teardown (main thread): request_shutdown unmounts (lazily: clients
 *   with the file open then get errors, never a hang) and frees each
 *   channel's event with a finalizer, which drops the channel's export
 *   reference on its loop once no callback of it runs; delete closes the
 *   fds, which aborts the connection.  ENODEV (unmounted from outside,
 *   connection aborted) makes a channel remove its own event and, if
 *   nobody asked for it, stop the export.
 * - Safe removal counts OPEN/RELEASE.  RELEASE is sent asynchronously
 *   after close() returns, so in_use() waits a short grace period for the
 *   count to drop before it answers "in use".
 * - Passthrough (kernel 6.9+): where the node is a whole regular file
 *   (block_node_get_passthrough), INIT negotiates FUSE_PASSTHROUGH, the
 *   image is registered with FUSE_DEV_IOC_BACKING_OPEN (an fd of its own)
 *   and OPEN answers FOPEN_PASSTHROUGH: reads never reach us.  Writable
 *   exports only with passthrough: on.  On a fixed-size export, handles
 *   that may write get FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO: the kernel
 *   insists that all handles of a passthrough inode are passthrough, but
 *   DIRECT_IO sends their reads and writes here, because a passthrough
 *   write past the end would grow the image (nothing in the kernel bounds
 *   it: backing_file_write_iter applies only the backing file system's
 *   limits) where a fixed-size export must refuse it.  On a growable
 *   export growing is right, so writers are passed through as well and
 *   the file node asks the file for its length from then on.  What
 *   neither covers is a shared writable mmap: the kernel maps it onto the
 *   image itself, and it outlives a hard delete; hence "on", not "auto",
 *   for writable exports, and no write handles at all on read-only
 *   passthrough exports.  Teardown revokes the other handles (see
 *   fuse_export_revoke_passthrough).  The kernel takes regular files only
 *   as backing files: block devices stay here.
 * - FUSE over io_uring ('io-uring': true, Linux 6.14+ with the fuse
 *   module's enable_uring): INIT negotiates FUSE_OVER_IO_URING, then
 *   create() sets up fuse/uring.c's rings, each an eventfd on one of the
 *   export's loops, and fails the export if the kernel refuses them.  The
 *   channels stay: INIT, FORGET and INTERRUPT keep coming through
 *   /dev/fuse.  It is the
 *   userspace path, so passthrough is not planned for such an export
 *   ('on' is refused, 'auto' means off).  Teardown is the same: the
 *   rings' events are freed with finalizers that close the rings on their
 *   loops; delete closes the channels' fds after that.
 */
#include "config.h"

#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export/export.h"
#include "fuse/internal.h"
#include "fuse/mountpoint.h"
#include "fuse/proto.h"
#include "fuse/stale-mount.h"
#include "iothread/iothread.h"
#include "log.h"
#include "object/object.h"
#include "main-loop.h"
#include "util.h"

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
/*
 * While the main thread mounts, libfuse's complaints are also kept here,
 * so that the QMP error says why the mount failed ("failed to open
 * /dev/fuse: Permission denied"), not only the log that nobody may read.
 */
static __thread bool libfuse_capturing;
static __thread char *libfuse_captured;

static void fuse_export_libfuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char *msg = xvasprintf(fmt, ap);
	size_t n = strlen(msg);

	if (n && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	if (libfuse_capturing && level <= FUSE_LOG_WARNING) {
		char *all = libfuse_captured ? xasprintf("%s; %s", libfuse_captured, msg) :
			    xstrdup(msg);

		free(libfuse_captured);
		libfuse_captured = all;
	}
	if (level <= FUSE_LOG_WARNING)
		log_warnx("libfuse: %s", msg);
	else
		log_debug("libfuse: %s", msg);
	free(msg);
}

void fuse_export_set_reason(struct fuse_export *fe, enum fuse_data_path path,
			    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	free(fe->data_path_reason);
	fe->data_path_reason = xvasprintf(fmt, ap);
	fe->data_path = path;
	va_end(ap);
	/* Passthrough reads (and writes) never reach us: the statistics say so. */
	if (fe->common.stats) {
		export_stats_set_uncounted(fe->common.stats, EXPORT_STATS_READ,
					   path == FUSE_PATH_PASSTHROUGH);
		export_stats_set_uncounted(fe->common.stats, EXPORT_STATS_WRITE,
					   path == FUSE_PATH_PASSTHROUGH && fe->pt_writes);
	}
}

static const char *fuse_data_path_name(enum fuse_data_path path)
{
	switch (path) {
	case FUSE_PATH_PASSTHROUGH:
		return "passthrough";
	case FUSE_PATH_URING:
		return "io_uring";
	default:
		return "userspace";
	}
}

/* ---- stopping on a fatal condition ------------------------------------ */

/* Stop serving on a fatal condition: ask the main thread to shut us down. */
static void fuse_export_halt_cb(void *opaque)
{
	struct fuse_export *fe = opaque;

	export_request_shutdown(&fe->common);
	export_unref(&fe->common);
}

/*
 * From now on channels and rings serve nothing more (each removes its own
 * event when it wakes up).
 */
static void fuse_export_set_stopping(struct fuse_export *fe)
{
	atomic_store(&fe->stopping, true);
}

void fuse_export_halt(struct fuse_export *fe, const char *why)
{
	bool defer;

	pthread_mutex_lock(&fe->lock);
	if (fe->halted) {
		pthread_mutex_unlock(&fe->lock);
		return;
	}
	fe->halted = true;
	pthread_cond_broadcast(&fe->cond);	/* create() may wait for INIT */
	/*
	 * Once the main thread has asked us to stop (the unmount's ENODEV
	 * lands here), there is nobody to tell, and a reference held for
	 * the main loop would keep block-export-del, which waits for the
	 * last one, from deleting the export at once.
	 */
	defer = fe->created && !atomic_load(&fe->stopping);
	if (defer)
		export_ref(&fe->common);
	pthread_mutex_unlock(&fe->lock);
	if (!atomic_load(&fe->stopping))
		log_warnx("export '%s': %s: stopping the export", fe->common.id, why);
	fuse_export_set_stopping(fe);
	if (defer)
		main_loop_defer(fuse_export_halt_cb, fe);
}

/* ---- set-up and teardown (main thread) -------------------------------- */

/*
 * Mount over the file that fuse_mountpoint_resolve() checked and opened,
 * not over whatever its path names by now: as root, the target is the
 * magic link /proc/self/fd/N, which mount(2) (and umount2(2), which
 * libfuse calls with the same string) resolve to that very file, so a
 * user who swaps a component of the path for a symlink after the check
 * cannot move the mount.  A daemon run by a user mounts through the
 * set-uid fusermount3, a process of its own that cannot see our fds: it
 * gets the path, and acts with the user's rights only.
 */
static int fuse_export_mount(struct fuse_export *fe, bool allow_other, struct error **errp)
{
	static const struct fuse_lowlevel_ops no_ops;
	char *target;
	int rc = 0;
	/* fsname and subtype tell our mounts apart, dead ones too (stale-mount.c). */
	char *opts = xasprintf("max_read=%u,default_permissions,fsname=%s,subtype=%s%s",
			       FUSE_EXPORT_MAX_IO, FUSE_EXPORT_FSNAME, FUSE_EXPORT_FSNAME,
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
	if (geteuid() == 0)
		target = xasprintf("/proc/self/fd/%d", fe->mountpoint_fd);
	else
		target = xstrdup(fe->mountpoint);
	libfuse_capturing = true;
	rc = fuse_session_mount(fe->se, target);
	libfuse_capturing = false;
	if (rc != 0) {
		struct stat st;

		fuse_session_destroy(fe->se);
		fe->se = NULL;
		/* The file checked lost its name: mount(2) refuses it, rightly. */
		if (fe->mountpoint_fd >= 0 && fstat(fe->mountpoint_fd, &st) == 0 &&
		    st.st_nlink == 0)
			error_setg(errp, "Failed to mount FUSE session to export: '%s' was "
				   "removed or replaced while it was being mounted",
				   fe->mountpoint);
		else if (libfuse_captured)
			error_setg(errp, "Failed to mount FUSE session to export: %s",
				   libfuse_captured);
		else
			error_setg(errp, "Failed to mount FUSE session to export");
		rc = -1;
	}
	free(libfuse_captured);
	libfuse_captured = NULL;
	free(target);
	return rc;
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
	/*
	 * A growable export's writes may be the kernel's: one past the end
	 * grows the image, exactly what we would do.  (Growable implies
	 * writable, which needs 'on' anyway, see below.)
	 */
	fe->pt_writes = fe->common.growable && fe->pt_required && !fe->writethrough;
	pt.writes = fe->pt_writes;
	if (fe->common.growable && fe->writethrough) {
		why = "the export is growable and writethrough (the kernel's writes "
		      "would not be flushed after each write)";
	} else if (block_node_get_passthrough(fe->common.node, &pt, &why) < 0) {
		if (!why)
			why = "the node is not a whole file";
	} else if (pt.offset != 0) {
		why = "the node starts at an offset into its file";
	} else if (fstat(pt.fd, &st) < 0) {
		why = "cannot stat the image";
	} else if (S_ISBLK(st.st_mode)) {
		why = "the image is a block device (the kernel passes through regular "
		      "files only)";
	} else if (!S_ISREG(st.st_mode)) {
		why = "the image is not a regular file";
	} else if (fe->common.writable && !fe->pt_required) {
		why = fe->common.growable ?
		      "the export is writable: passthrough of its reads and writes "
		      "needs 'passthrough': 'on' (the kernel maps shared writable mmaps "
		      "straight onto the image, even after a hard delete)" :
		      "the export is writable: passthrough of its readers needs "
		      "'passthrough': 'on' (writes are served here either way, but the "
		      "kernel maps shared writable mmaps straight onto the image, even "
		      "after a hard delete)";
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
	/*
	 * Hand the kernel an fd of its own, whatever the node has: read-only
	 * unless the kernel is to write too.
	 */
	flags = fcntl(pt.fd, F_GETFL);
	{
		char *proc = xasprintf("/proc/self/fd/%d", pt.fd);

		fe->pt_fd = open(proc, (fe->pt_writes ? O_RDWR : O_RDONLY) | O_CLOEXEC |
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

/* Free everything; no callback of the export runs any more. */
static void fuse_export_free_resources(struct fuse_export *fe)
{
	/* Before the channels' fds: those keep the connection. */
	fuse_ring_free(fe);
	if (fe->backing_id > 0 && fe->backing_dev_fd >= 0) {
		uint32_t id = (uint32_t)fe->backing_id;

		if (ioctl(fe->backing_dev_fd, EXPORTD_FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0)
			log_debug("export '%s': FUSE_DEV_IOC_BACKING_CLOSE: %s",
				  fe->common.id, strerror(errno));
		fe->backing_id = 0;
	}
	for (int i = 0; i < fe->nchannels && fe->channels; i++)
		fexp_channel_close(&fe->channels[i]);
	free(fe->channels);
	fe->channels = NULL;
	/* No channel is on their loops any more: they may be deleted. */
	for (int i = 0; i < fe->n_iothread_ids; i++) {
		object_unuse(fe->iothread_ids[i]);
		free(fe->iothread_ids[i]);
	}
	free(fe->iothread_ids);
	fe->iothread_ids = NULL;
	fe->n_iothread_ids = 0;
	/* With the connection gone, a stat still waiting has its answer. */
	if (fe->revoke_started) {
		pthread_join(fe->revoke_tid, NULL);
		fe->revoke_started = false;
	}
	if (fe->se) {
		fuse_session_destroy(fe->se);
		fe->se = NULL;
	}
	if (fe->pt_fd >= 0)
		close(fe->pt_fd);
	fe->pt_fd = -1;
	/* After the unmount: libfuse unmounts through /proc/self/fd/N. */
	if (fe->mountpoint_fd >= 0)
		close(fe->mountpoint_fd);
	fe->mountpoint_fd = -1;
	if (fe->mountpoint_dir_fd >= 0)
		close(fe->mountpoint_dir_fd);
	fe->mountpoint_dir_fd = -1;
	pthread_mutex_destroy(&fe->lock);
	pthread_mutex_destroy(&fe->resize_lock);
	pthread_cond_destroy(&fe->cond);
	free(fe->mountpoint);
	fe->mountpoint = NULL;
	free(fe->data_path_reason);
	fe->data_path_reason = NULL;
	export_stats_free(fe->common.stats);
	fe->common.stats = NULL;
}

/*
 * Channels on the default pool: one per loop, at most
 * FUSE_EXPORT_DEFAULT_CHANNELS_CAP (more fds than that buy nothing: the
 * kernel's queue is one per connection).
 */
static int fuse_export_default_channels(void)
{
	return MIN(iothread_pool_size(), FUSE_EXPORT_DEFAULT_CHANNELS_CAP);
}

/*
 * Which loops serve the export, one entry per channel: those of the
 * iothread objects named by 'iothread' (one id: every channel on its loop;
 * a list: one channel per listed loop, as QEMU 11 has one /dev/fuse fd per
 * listed iothread), else the default pool's.  Marks the objects in use.
 */
static int fuse_export_place_channels(struct fuse_export *fe, json_t *iothread,
				      json_t *num_channels, struct iothread **loops,
				      struct error **errp)
{
	static int next_pool_loop;
	json_t *ids, *single = NULL;
	size_t i, n;

	if (num_channels) {
		json_int_t v = json_integer_value(num_channels);

		if (v < 1 || v > FUSE_EXPORT_MAX_CHANNELS) {
			error_setg(errp, "'num-threads' must be between 1 and %d, not %lld",
				   FUSE_EXPORT_MAX_CHANNELS, (long long)v);
			return -1;
		}
	}
	if (!iothread) {
		fe->nchannels = num_channels ? (int)json_integer_value(num_channels) :
			fuse_export_default_channels();
		for (int c = 0; c < fe->nchannels; c++)
			loops[c] = iothread_pool_get(next_pool_loop + c);
		next_pool_loop = (next_pool_loop + 1) % MAX(iothread_pool_size(), 1);
		return 0;
	}
	if (json_is_string(iothread)) {
		single = json_array();
		json_array_append(single, iothread);
		ids = single;
	} else {
		ids = iothread;
	}
	n = json_array_size(ids);
	if (n == 0) {
		error_setg(errp, "The set of I/O threads must not be empty");
		return -1;
	}
	if (n > FUSE_EXPORT_MAX_CHANNELS) {
		error_setg(errp, "An export can be served by at most %d iothreads, not %zu",
			   FUSE_EXPORT_MAX_CHANNELS, n);
		json_decref(single);
		return -1;
	}
	if (num_channels && !single) {
		error_setg(errp, "'num-threads' and an 'iothread' list do not combine: the "
			   "export gets one /dev/fuse fd per listed iothread");
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *id = json_string_value(json_array_get(ids, i));
		struct iothread *it = object_find(id, &object_type_iothread, NULL);

		if (!it) {
			error_setg(errp, "iothread \"%s\" not found", id);
			json_decref(single);
			return -1;
		}
		loops[i] = it;
	}
	fe->nchannels = (int)n;
	/* One id: more fds on one loop only if asked for (num-threads). */
	if (single && num_channels) {
		fe->nchannels = (int)json_integer_value(num_channels);
		for (int c = 1; c < fe->nchannels; c++)
			loops[c] = loops[0];
	}
	fe->iothread_ids = xcalloc(n, sizeof(*fe->iothread_ids));
	for (i = 0; i < n; i++) {
		const char *id = json_string_value(json_array_get(ids, i));

		object_use(id);
		fe->iothread_ids[fe->n_iothread_ids++] = xstrdup(id);
	}
	json_decref(single);
	return 0;
}

/*
 * Open one channel per loop of loops[] (n of them) and start listening.
 * Each export starts one pool loop further than the last, so that
 * exports with fewer channels than the pool has loops spread over it.
 */
static int fuse_export_start_channels(struct fuse_export *fe, struct iothread **loops,
				      struct error **errp)
{
	int session_fd = fuse_session_fd(fe->se);
	void *p;

	/* Aligned: each loop writes its own entry for every request. */
	if (posix_memalign(&p, 64, (size_t)fe->nchannels * sizeof(*fe->channels)))
		fatalx("out of memory");
	memset(p, 0, (size_t)fe->nchannels * sizeof(*fe->channels));
	fe->channels = p;
	for (int i = 0; i < fe->nchannels; i++)
		fe->channels[i].fd = -1;
	for (int i = 0; i < fe->nchannels; i++)
		if (fexp_channel_open(&fe->channels[i], fe, i, loops[i], session_fd, errp) < 0)
			return -1;
	for (int i = 0; i < fe->nchannels; i++)
		if (fexp_channel_start(&fe->channels[i], errp) < 0)
			return -1;
	return 0;
}

/* Stop every channel listening, without waiting for the loops. */
static void fuse_export_stop_channels(struct fuse_export *fe)
{
	for (int i = 0; i < fe->nchannels && fe->channels; i++)
		fexp_channel_stop(&fe->channels[i]);
}

/*
 * With fe->lock held: wait on fe->cond, at most ms, until done(fe);
 * returns done(fe).  fe->cond is broadcast on INIT, halt, RELEASE and
 * the end of a revocation.
 */
static bool fuse_export_wait_locked(struct fuse_export *fe, long ms,
				    bool (*done)(const struct fuse_export *fe))
{
	struct timespec deadline;

	deadline_after_ms(&deadline, ms);
	while (!done(fe)) {
		if (pthread_cond_timedwait(&fe->cond, &fe->lock, &deadline) == ETIMEDOUT)
			break;
	}
	return done(fe);
}

static bool fuse_export_init_settled(const struct fuse_export *fe)
{
	return fe->initialized || fe->halted;
}

static bool fuse_export_no_handles(const struct fuse_export *fe)
{
	return fe->open_handles == 0;
}

static bool fuse_export_revoked(const struct fuse_export *fe)
{
	return fe->revoke_done;
}

/* Wait (bounded) for INIT so that queries report the settled data path. */
static void fuse_export_wait_init(struct fuse_export *fe, long ms)
{
	pthread_mutex_lock(&fe->lock);
	fuse_export_wait_locked(fe, ms, fuse_export_init_settled);
	pthread_mutex_unlock(&fe->lock);
}

/*
 * Whether the kernel can serve FUSE over io_uring (Linux 6.14+ with
 * CONFIG_FUSE_IO_URING, and the fuse module's enable_uring, off by
 * default); the reason why not in errp.
 */
static int fuse_kernel_check_uring(struct error **errp)
{
	char c = 'N';
	FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "re");

	if (!f) {
		error_setg(errp, "FUSE over io_uring is not supported by this kernel (it needs "
			   "Linux 6.14+ built with CONFIG_FUSE_IO_URING: there is no "
			   "/sys/module/fuse/parameters/enable_uring)");
		return -1;
	}
	if (fread(&c, 1, 1, f) != 1)
		c = 'N';
	fclose(f);
	if (c != 'Y' && c != '1') {
		error_setg(errp, "FUSE over io_uring is disabled in the kernel (echo Y > "
			   "/sys/module/fuse/parameters/enable_uring)");
		return -1;
	}
	return 0;
}

/* After INIT: switch the export to io_uring if it asked for it. */
static int fuse_export_start_uring(struct fuse_export *fe, struct error **errp)
{
	bool initialized, agreed;

	pthread_mutex_lock(&fe->lock);
	initialized = fe->initialized;
	agreed = fe->uring_agreed;
	pthread_mutex_unlock(&fe->lock);
	if (!initialized) {
		error_setg(errp, "The kernel did not send FUSE INIT to export '%s' in time; "
			   "cannot set up FUSE over io_uring", fe->common.id);
		return -1;
	}
	if (!agreed) {
		error_setg(errp, "The kernel did not offer FUSE over io_uring to export '%s' "
			   "(is /sys/module/fuse/parameters/enable_uring Y?)", fe->common.id);
		return -1;
	}
	if (fuse_ring_start(fe, errp) < 0)
		return -1;
	pthread_mutex_lock(&fe->lock);
	fuse_export_set_reason(fe, FUSE_PATH_URING, "requests are served in userspace over "
			       "FUSE-over-io_uring ('io-uring': true; passthrough is not used "
			       "with it)");
	pthread_mutex_unlock(&fe->lock);
	return 0;
}

static int fuse_export_create(struct export *exp, json_t *options, struct error **errp)
{
	static bool log_hooked;
	struct fuse_export *fe = fuse_export_of(exp);
	const char *mountpoint = json_string_value(json_object_get(options, "mountpoint"));
	const char *allow_other = json_string_value(json_object_get(options, "allow-other"));
	const char *passthrough = json_string_value(json_object_get(options, "passthrough"));
	json_t *num_channels = json_object_get(options, "num-threads");
	struct iothread *loops[FUSE_EXPORT_MAX_CHANNELS];
	json_t *iothread = json_object_get(options, "iothread");
	struct stat st;
	bool ours = false;

	if (!log_hooked) {
		fuse_set_log_func(fuse_export_libfuse_log);
		log_hooked = true;
	}
	fe->pt_fd = -1;
	fe->backing_dev_fd = -1;
	fe->mountpoint_fd = -1;
	fe->mountpoint_dir_fd = -1;
	pthread_mutex_init(&fe->lock, NULL);
	pthread_mutex_init(&fe->resize_lock, NULL);
	pthread_cond_init(&fe->cond, NULL);

	if (!mountpoint) {
		error_setg(errp, "Parameter 'mountpoint' is missing");
		goto fail;
	}
	fe->uring_wanted = json_is_true(json_object_get(options, "io-uring"));
	if (fe->uring_wanted) {
		if (fuse_kernel_check_uring(errp) < 0)
			goto fail;
		/*
		 * The kernel could combine them, but io_uring would then only
		 * carry what passthrough leaves to userspace: 'io-uring' means
		 * the userspace path, and 'auto' resolves to it.
		 */
		if (passthrough && !strcmp(passthrough, "on")) {
			error_setg(errp, "'passthrough': 'on' and 'io-uring': true do not combine: "
				   "io_uring serves requests in userspace, passthrough lets the "
				   "kernel serve them; choose one");
			goto fail;
		}
	}
	if (fuse_export_place_channels(fe, iothread, num_channels, loops, errp) < 0)
		goto fail;
	/* A stats slot per channel, then one per io_uring queue. */
	exp->stats = export_stats_new(fe->nchannels +
				      (fe->uring_wanted ? fuse_ring_nqueues() : 0));
	fe->writethrough = json_is_true(json_object_get(options, "writethrough"));

	/* A dead exportd's mount there goes; anything else mounted there is refused. */
	if (fuse_stale_mount_recover(mountpoint, fuse_mountpoint_is_ours, errp) < 0)
		goto fail;
	/*
	 * Never stat through one of our own mounts (qsd 7.2 deadlocks there);
	 * keep an fd of the file checked, the mount goes through it.
	 */
	fe->mountpoint = fuse_mountpoint_resolve(mountpoint, fuse_mountpoint_is_ours, NULL,
						 &ours, &st, &fe->mountpoint_fd,
						 &fe->mountpoint_dir_fd, errp);
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

	if (fe->uring_wanted)
		fuse_export_set_reason(fe, FUSE_PATH_URING, "waiting for FUSE INIT");
	else if (fuse_export_plan_passthrough(fe, passthrough ? passthrough : "auto",
						errp) < 0)
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

	if (fuse_export_start_channels(fe, loops, errp) < 0)
		goto fail_unmount;
	/* The rings can only be registered after INIT: wait longer then. */
	fuse_export_wait_init(fe, fe->uring_wanted ? FUSE_EXPORT_URING_INIT_WAIT_MS :
			      FUSE_EXPORT_INIT_WAIT_MS);
	if (fe->uring_wanted && fuse_export_start_uring(fe, errp) < 0)
		goto fail_unmount;
	pthread_mutex_lock(&fe->lock);
	if (fe->halted) {
		pthread_mutex_unlock(&fe->lock);
		error_setg(errp, "The FUSE session of export '%s' failed right after mounting",
			   exp->id);
		goto fail_unmount;
	}
	fe->created = true;
	pthread_mutex_unlock(&fe->lock);
	log_info("export '%s' mounted on '%s' (%d channels, allow_other %s, %s: %s)",
		 exp->id, fe->mountpoint, fe->nchannels, fe->allow_other ? "on" : "off",
		 fuse_data_path_name(fe->data_path), fe->data_path_reason);
	return 0;

fail_unmount:
	/* Not created: channels that give up now only stop. */
	fuse_export_set_stopping(fe);
	fuse_export_unmount(fe);
fail:
	/*
	 * The export is freed as soon as we return: wait for a callback
	 * that may still run (only a request that came before INIT's
	 * outcome), and drop the references the channels took.
	 */
	fuse_ring_abort(fe);
	for (int i = 0; i < fe->nchannels && fe->channels; i++)
		fexp_channel_abort(&fe->channels[i]);
	fuse_export_free_resources(fe);
	return -1;
}

/*
 * Look our mount's root up for revocation: the path may lead elsewhere by
 * now (a directory on it renamed, a link put in its place), the directory
 * we checked does not move, and the name in it cannot while mounted over
 * (rename and unlink of a mountpoint fail with EBUSY), so this reaches
 * our mount and no other file.  (Not held open from the start: an fd of
 * the root would make an outside `umount` fail with EBUSY.)
 */
static int fuse_export_open_root(struct fuse_export *fe)
{
	const char *name = strrchr(fe->mountpoint, '/');

	if (fe->mountpoint_dir_fd < 0 || !name)
		return open(fe->mountpoint, O_PATH | O_CLOEXEC);
	return openat(fe->mountpoint_dir_fd, name + 1, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

static void *fuse_revoke_run(void *opaque)
{
	struct fuse_export *fe = opaque;
	struct statx stx;
	int fd = fuse_export_open_root(fe);

	/* FORCE_SYNC: a GETATTR even while the cached attributes are valid. */
	if (fd >= 0 &&
	    statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) == 0)
		log_warnx("export '%s': the kernel kept the passthrough inode after "
			  "teardown began", fe->common.id);
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&fe->lock);
	fe->revoke_done = true;
	pthread_cond_broadcast(&fe->cond);
	pthread_mutex_unlock(&fe->lock);
	return NULL;
}

/*
 * Passthrough handles reach the image inside the kernel and would go on
 * doing so after the unmount and after the connection is gone: a client
 * that still has the file open could read an image that is no longer
 * exported, and (growable exports) write one that another program may
 * have opened by then.  The seed's handles fail once the export is gone;
 * so do these: we have the kernel fetch the attributes once more and
 * answer with a different file type (fuse/ops.c), which marks the inode
 * bad, and a bad inode's read(), write(), fsync() and new mmap() fail
 * with EIO.  Mappings that already exist stay (the kernel maps the image
 * itself), which is why writable exports need 'passthrough': 'on'.
 * The stat runs on a thread of its own, bounded, so that a stuck request
 * thread can never hold up the main loop.
 */
static void fuse_export_revoke_passthrough(struct fuse_export *fe)
{
	bool active;
	int err;

	pthread_mutex_lock(&fe->lock);
	active = fe->backing_id > 0 && !fe->halted && fe->created;
	pthread_mutex_unlock(&fe->lock);
	if (!active || !fe->mounted)
		return;
	atomic_store(&fe->revoking, true);
	err = thread_create_without_signals(&fe->revoke_tid, fuse_revoke_run, fe);
	if (err) {
		log_warnx("export '%s': cannot revoke passthrough handles: %s", fe->common.id,
			  strerror(err));
		return;
	}
	fe->revoke_started = true;
	pthread_mutex_lock(&fe->lock);
	if (!fuse_export_wait_locked(fe, FUSE_EXPORT_REVOKE_WAIT_MS, fuse_export_revoked))
		log_warnx("export '%s': request threads did not answer in time; open "
			  "passthrough handles may outlive the export", fe->common.id);
	pthread_mutex_unlock(&fe->lock);
}

static void fuse_export_request_shutdown(struct export *exp)
{
	struct fuse_export *fe = fuse_export_of(exp);

	fuse_export_revoke_passthrough(fe);
	/* First, so that channels take the unmount's ENODEV as expected. */
	fuse_export_set_stopping(fe);
	fuse_export_unmount(fe);
	fuse_ring_stop(fe);
	fuse_export_stop_channels(fe);
}

static void fuse_export_delete(struct export *exp)
{
	fuse_export_free_resources(fuse_export_of(exp));
}

static bool fuse_export_in_use(struct export *exp)
{
	struct fuse_export *fe = fuse_export_of(exp);
	bool busy;

	pthread_mutex_lock(&fe->lock);
	/* RELEASE follows close() asynchronously: give it a moment. */
	busy = !fuse_export_wait_locked(fe, FUSE_EXPORT_RELEASE_GRACE_MS,
					fuse_export_no_handles);
	pthread_mutex_unlock(&fe->lock);
	return busy;
}

/* The loops that serve the export, each once, in channel order. */
static json_t *fuse_export_loop_names(struct fuse_export *fe)
{
	json_t *names = json_array();

	for (int i = 0; i < fe->nchannels && fe->channels; i++) {
		const char *name = iothread_name(fe->channels[i].loop);
		bool seen = false;
		size_t j;
		json_t *v;

		json_array_foreach(names, j, v)
			seen = seen || !strcmp(json_string_value(v), name);
		if (!seen)
			json_array_append_new(names, json_string(name));
	}
	return names;
}

static void fuse_export_query(struct export *exp, json_t *info)
{
	struct fuse_export *fe = fuse_export_of(exp);

	pthread_mutex_lock(&fe->lock);
	json_object_set_new(info, "x-mountpoint", json_string(fe->mountpoint));
	json_object_set_new(info, "x-writable", json_boolean(exp->writable));
	json_object_set_new(info, "x-growable", json_boolean(exp->growable));
	json_object_set_new(info, "x-allow-other", json_boolean(fe->allow_other));
	json_object_set_new(info, "x-num-threads", json_integer(fe->nchannels));
	json_object_set_new(info, "x-iothreads", fuse_export_loop_names(fe));
	json_object_set_new(info, "x-data-path", json_string(fuse_data_path_name(fe->data_path)));
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
