/*
 * fuse/channel.c: the /dev/fuse channel of an export: one cloned fd,
 * registered as a persistent read event on one I/O loop (iothread/),
 * drained until EAGAIN at each wake-up; each request read is parsed,
 * answered by fuse/ops.c, counted and replied to with writev() on the fd
 * it came from (the kernel matches a reply to the fd of its request).
 *
 * Why events and not threads: a loop serves every channel placed on it,
 * so exports cost an fd each per loop, not threads.  A channel's callback
 * runs on its loop's thread only, one at a time, so the channel's stats
 * slot has one writer and the request buffer can be the loop's (see
 * iothread_scratch): WRITE data is read so that it lands page-aligned and
 * pwrite() uses it in place; READ data is read into the same area.
 *
 * Stopping: each started channel holds a reference on its export.
 * fexp_channel_stop() (main thread) frees the event with a finalizer that
 * libevent runs on the loop once no callback of the event runs any more;
 * the finalizer drops the reference, so the export is deleted only after
 * its last callback, and the main thread never waits for a loop.  A
 * channel that finds its connection gone (ENODEV: unmounted from outside)
 * or cannot trust it any more removes its own event and halts the export.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse/internal.h"
#include "fuse/proto.h"
#include "iothread/iothread.h"
#include "log.h"
#include "util.h"

int fexp_channel_handle(struct fexp_channel *ch, char *buf, const void *in, size_t n)
{
	struct fuse_export *fe = ch->fe;
	struct fexp_request req;
	struct fexp_reply rep;
	struct iovec iov;
	const char *why;
	char opbuf[16];
	int ret;

	uint64_t start = clock_monotonic_ns();

	if (fuse_proto_parse(in, n, &req, &why) < 0) {
		log_warnx("export '%s': malformed FUSE request: %s", fe->common.id, why);
		return -EPROTO;
	}
	if (req.opcode == FUSE_INIT)
		return fexp_op_init(fe, ch->fd, &req);
	rep.data = buf + FUSE_EXPORT_PAGE;
	fexp_serve(fe, &req, &rep);
	if (rep.none)
		return 0;
	/*
	 * Counted before it is answered, as the io_uring path does: a client
	 * that has its reply and then asks for statistics must find it there.
	 */
	fexp_account(fe, ch->slot, &req, &rep, start);
	iov.iov_base = (void *)rep.body;
	iov.iov_len = rep.len;
	ret = fuse_proto_reply_iov(ch->fd, req.unique, rep.err, &iov, rep.len ? 1 : 0);
	/* ENOENT: the request was interrupted and is gone; not our problem. */
	if (ret < 0 && ret != -ENOENT && !atomic_load(&fe->stopping))
		log_debug("export '%s': cannot reply to %s: %s", fe->common.id,
			  fuse_proto_opname(req.opcode, opbuf, sizeof(opbuf)), strerror(-ret));
	return 0;
}

/* On the loop: stop listening to this fd, and stop the export. */
static void fexp_channel_fail(struct fexp_channel *ch, const char *why)
{
	/* Our own event, from its own callback: event_del() does not wait. */
	event_del(ch->ev);
	fuse_export_halt(ch->fe, why);
}

static void fexp_channel_ready(evutil_socket_t fd, short what, void *opaque)
{
	struct fexp_channel *ch = opaque;
	struct fuse_export *fe = ch->fe;
	char *buf = iothread_scratch(ch->loop, FUSE_EXPORT_BUF_SIZE, FUSE_EXPORT_PAGE);
	/* Read so that WRITE data lands page-aligned at buf + PAGE. */
	char *in = buf + FUSE_EXPORT_PAGE - FUSE_PROTO_WRITE_HEADER;
	size_t insize = FUSE_PROTO_WRITE_HEADER + FUSE_EXPORT_MAX_IO;

	(void)what;
	if (!buf) {
		fexp_channel_fail(ch, "out of memory for request buffers");
		return;
	}
	while (!atomic_load_explicit(&fe->stopping, memory_order_relaxed)) {
		ssize_t n = read(fd, in, insize);

		if (n < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			if (errno == EAGAIN)
				return;
			if (errno == ENODEV || errno == ECONNABORTED) {
				fexp_channel_fail(ch, "the FUSE connection ended (unmounted?)");
				return;
			}
			log_warn("export '%s': reading /dev/fuse", fe->common.id);
			fexp_channel_fail(ch, "cannot read requests");
			return;
		}
		if (fexp_channel_handle(ch, buf, in, (size_t)n) < 0) {
			fexp_channel_fail(ch, "protocol error");
			return;
		}
	}
	/* Teardown began: the event is being finalized; do not spin on it. */
	event_del(ch->ev);
}

static int fexp_clone_fd(int fd, struct error **errp)
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

int fexp_channel_open(struct fexp_channel *ch, struct fuse_export *fe, int slot,
		      struct iothread *loop, int session_fd, struct error **errp)
{
	ch->fe = fe;
	ch->slot = slot;
	ch->loop = loop;
	ch->ev = NULL;
	/*
	 * Every channel gets a clone, even the first: libfuse closes the
	 * session fd when it unmounts, while a loop may still be finishing
	 * a request.
	 */
	ch->fd = fexp_clone_fd(session_fd, errp);
	if (ch->fd < 0)
		return -1;
	ch->ev = event_new(iothread_base(loop), ch->fd, EV_READ | EV_PERSIST,
			   fexp_channel_ready, ch);
	if (!ch->ev) {
		error_setg(errp, "Cannot create the event of a FUSE channel");
		return -1;
	}
	return 0;
}

int fexp_channel_start(struct fexp_channel *ch, struct error **errp)
{
	export_ref(&ch->fe->common);
	if (event_add(ch->ev, NULL) < 0) {
		export_unref(&ch->fe->common);
		error_setg(errp, "Cannot add a FUSE channel to iothread '%s'",
			   iothread_name(ch->loop));
		return -1;
	}
	ch->started = true;
	return 0;
}

static void fexp_channel_finalized(struct event *ev, void *opaque)
{
	struct fexp_channel *ch = opaque;

	(void)ev;
	export_unref(&ch->fe->common);
}

/*
 * ch->ev stays set once freed (a callback still running reads it to
 * remove itself, which libevent ignores once the event is finalizing);
 * `freed` says it must not be used again.
 */
void fexp_channel_stop(struct fexp_channel *ch)
{
	if (!ch->ev || ch->freed)
		return;
	ch->freed = true;
	if (ch->started)
		event_free_finalize(0, ch->ev, fexp_channel_finalized);
	else
		event_free(ch->ev);
}

void fexp_channel_abort(struct fexp_channel *ch)
{
	if (!ch->ev || ch->freed)
		return;
	ch->freed = true;
	/* From another thread, event_free() waits for a running callback. */
	event_free(ch->ev);
	if (ch->started)
		export_unref(&ch->fe->common);
	ch->started = false;
}

void fexp_channel_close(struct fexp_channel *ch)
{
	/* The last fd of the connection going away aborts it. */
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

/*
 * The one place where requests are counted: just before the reply, on the
 * calling loop's own stats slot (see export/stats.h), from the opcode and
 * the outcome the handler left in rep.
 */
void fexp_account(struct fuse_export *fe, int slot, const struct fexp_request *req,
		  const struct fexp_reply *rep, uint64_t start_ns)
{
	struct export_stats *stats = fe->common.stats;
	uint64_t bytes = rep->bytes;
	bool failed = rep->err != 0;
	enum export_stats_op op;

	if (!stats || slot < 0 || slot >= stats->nslots)
		return;
	switch (req->opcode) {
	case FUSE_READ:
		op = EXPORT_STATS_READ;
		break;
	case FUSE_WRITE:
		op = EXPORT_STATS_WRITE;
		if (!failed && bytes) {
			struct fuse_write_in in;

			memcpy(&in, req->arg, sizeof(in));
			export_stats_record_write_end(&stats->slots[slot], in.offset + bytes);
		}
		break;
	case FUSE_FLUSH:
	case FUSE_FSYNC:
		op = EXPORT_STATS_FLUSH;
		break;
	case FUSE_FALLOCATE: {
		struct fuse_fallocate_in in;

		memcpy(&in, req->arg, sizeof(in));
		op = in.mode & FALLOC_FL_PUNCH_HOLE ? EXPORT_STATS_DISCARD : EXPORT_STATS_ZERO;
		/* The range asked for (trimmed at EOF with KEEP_SIZE or not). */
		bytes = failed ? 0 : in.length;
		break;
	}
	default:
		op = EXPORT_STATS_OTHER;
		break;
	}
	export_stats_record(&stats->slots[slot], op, bytes, failed, start_ns,
			    clock_monotonic_ns());
}
