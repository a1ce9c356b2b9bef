/*
 * fuse/uring.c: FUSE over io_uring (Linux 6.14+) for a FUSE export
 * that asked for it ('io-uring': true).
 *
 * After INIT agreed to FUSE_OVER_IO_URING, the kernel expects one queue
 * per possible CPU (fs/fuse/dev_uring.c: qid = the CPU of the client that
 * made the request) and switches from /dev/fuse to the ring once every
 * queue has an entry registered; until then new requests wait.  So this
 * file sets up one io_uring per queue (SQE128, a /dev/fuse clone
 * registered as its fixed file) with a few entries, each a header buffer
 * and a 1 MiB payload buffer.  A request is the completion of an entry's
 * REGISTER or COMMIT_AND_FETCH command; it is parsed in place
 * (fuse_proto_parse_ring), answered with the handlers the /dev/fuse
 * channels use (fexp_serve: READ data is read straight into the
 * payload), and the reply is queued as the entry's next COMMIT_AND_FETCH,
 * which also re-arms it.
 *
 * No thread of its own: each ring signals an eventfd
 * (io_uring_register_eventfd) that is a persistent read event on one of
 * the export's I/O loops, as its /dev/fuse channels are.  At each wake-up
 * the loop handles every completion there is, then submits the commits
 * of the batch in one system call.  The REGISTER commands are submitted
 * by the main thread at set-up; the kernel completes a command in the
 * task that submitted it, so the first request of each entry wakes the
 * main thread briefly, and every later one (the fetch of a commit the
 * loop submitted) stays on the loop.
 *
 * What stays on /dev/fuse (fuse/channel.c): INIT, anything before the
 * ring is ready, and what the kernel never sends over the ring (FORGET,
 * INTERRUPT).
 *
 * Stopping: teardown frees each ring's event with a finalizer, which
 * runs on the loop once no callback runs and closes the ring there (the
 * kernel cancels the entries still registered, completing them with
 * -ENOTCONN), then drops the queue's export reference; the export's
 * /dev/fuse fds are closed by delete, which aborts whatever the kernel
 * still holds.  A ring command that fails because the connection went
 * away (unmounted from outside) halts the export as a failed read of
 * /dev/fuse does.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "fuse/internal.h"
#include "fuse/proto.h"
#include "iothread/iothread.h"
#include "log.h"
#include "util.h"

#if HAVE_LIBURING

#include <liburing.h>

/* Entries per queue: requests a queue holds at once. */
#define FUSE_RING_DEPTH 4

struct fuse_ring_queue;

struct fuse_ring_ent {
	struct fuse_ring_queue *q;
	struct exportd_fuse_uring_req_header *hdr;	/* page-aligned */
	char *payload;			/* FUSE_EXPORT_MAX_IO, page-aligned */
	struct iovec iov[2];		/* what REGISTER hands the kernel */
};

struct fuse_ring_queue {
	struct fuse_ring *ring;
	int qid;
	int fd;				/* a /dev/fuse clone, or -1 */
	struct io_uring uring;
	bool uring_ok;			/* closed by whoever frees the event */
	int event_fd;			/* the ring's completions signal it, or -1 */
	struct iothread *loop;
	struct event *ev;		/* persistent read of event_fd on loop */
	bool started;			/* ev added: holds an export reference */
	bool freed;			/* ev freed or being finalized (main thread) */
	struct fuse_ring_ent ents[FUSE_RING_DEPTH];
};

struct fuse_ring {
	struct fuse_export *fe;
	int nqueues;
	struct fuse_ring_queue *queues;
};

/* The kernel's num_possible_cpus(): the queues it expects. */
int fuse_ring_nqueues(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	char line[256];
	int n = 0;

	if (f && fgets(line, sizeof(line), f)) {
		char *p = line;

		/* "0-3,8-11": count every CPU of every range. */
		while (*p && *p != '\n') {
			char *end;
			long a = strtol(p, &end, 10), b;

			if (end == p)
				break;
			b = a;
			if (*end == '-') {
				p = end + 1;
				b = strtol(p, &end, 10);
			}
			n += (int)(b - a + 1);
			p = *end == ',' ? end + 1 : end;
		}
	}
	if (f)
		fclose(f);
	if (n < 1)
		n = get_nprocs_conf();
	return n < 1 ? 1 : n;
}

/* Fill an SQE for a FUSE ring command of ent (fixed file 0 = /dev/fuse). */
static void fuse_ring_prep_cmd(struct io_uring_sqe *sqe, struct fuse_ring_ent *ent,
			       uint32_t cmd_op, uint64_t commit_id)
{
	struct exportd_fuse_uring_cmd_req *cmd;

	/* SQE128: the command area is the 80 bytes after the 64-byte SQE. */
	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->fd = 0;
	sqe->cmd_op = cmd_op;
	io_uring_sqe_set_data(sqe, ent);
	cmd = (struct exportd_fuse_uring_cmd_req *)sqe->cmd;
	cmd->qid = (uint16_t)ent->q->qid;
	cmd->commit_id = commit_id;
	if (cmd_op == EXPORTD_FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)ent->iov;
		sqe->len = 2;
	}
}

/* Set up the queue's ring and register its entries; 0 or -errno. */
static int fuse_ring_queue_setup(struct fuse_ring_queue *q, const char **what)
{
	struct io_uring_params params;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int ret;

	/*
	 * A plain ring: SINGLE_ISSUER/DEFER_TASKRUN measured no better here
	 * (libfuse saw them slower), and change how cancellation runs.
	 */
	memset(&params, 0, sizeof(params));
	params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
	params.cq_entries = 4 * FUSE_RING_DEPTH;
	*what = "io_uring_queue_init";
	ret = io_uring_queue_init_params(FUSE_RING_DEPTH, &q->uring, &params);
	if (ret < 0)
		return ret;
	q->uring_ok = true;
	*what = "io_uring_register_files";
	ret = io_uring_register_files(&q->uring, &q->fd, 1);
	if (ret < 0)
		return ret;
	*what = "io_uring_register_eventfd";
	ret = io_uring_register_eventfd(&q->uring, q->event_fd);
	if (ret < 0)
		return ret;

	*what = "FUSE_IO_URING_CMD_REGISTER";
	for (int i = 0; i < FUSE_RING_DEPTH; i++) {
		struct fuse_ring_ent *ent = &q->ents[i];

		sqe = io_uring_get_sqe(&q->uring);
		if (!sqe)
			return -EIO;
		fuse_ring_prep_cmd(sqe, ent, EXPORTD_FUSE_IO_URING_CMD_REGISTER, 0);
	}
	ret = io_uring_submit(&q->uring);
	if (ret < 0)
		return ret;
	if (ret != FUSE_RING_DEPTH)
		return -EIO;
	/*
	 * A registration the kernel refuses completes at once, with the
	 * error; one it accepts stays queued until a request comes.
	 */
	if (io_uring_peek_cqe(&q->uring, &cqe) == 0 && cqe && cqe->res < 0) {
		ret = cqe->res;
		io_uring_cqe_seen(&q->uring, cqe);
		return ret;
	}
	return 0;
}

/* Answer the request that came in ent; false if the queue must stop. */
static bool fuse_ring_serve(struct fuse_ring_queue *q, struct fuse_ring_ent *ent)
{
	struct fuse_export *fe = q->ring->fe;
	struct exportd_fuse_uring_req_header *hdr = ent->hdr;
	uint64_t commit_id = hdr->ring_ent_in_out.commit_id;
	struct fuse_out_header oh;
	struct fexp_request req;
	struct fexp_reply rep;
	struct io_uring_sqe *sqe;
	const char *why;
	uint64_t start = clock_monotonic_ns();

	if (fuse_proto_parse_ring(hdr, ent->payload, FUSE_EXPORT_MAX_IO, &req, &why) < 0) {
		log_warnx("export '%s': malformed FUSE request on ring queue %d: %s",
			  fe->common.id, q->qid, why);
		fuse_export_halt(fe, "protocol error");
		return false;
	}
	rep.data = ent->payload;
	fexp_serve(fe, &req, &rep);
	/* The kernel ends the request at the commit, reply or not. */
	if (rep.len && rep.body != ent->payload)
		memcpy(ent->payload, rep.body, rep.len);
	memset(&oh, 0, sizeof(oh));
	oh.len = (uint32_t)(sizeof(oh) + rep.len);
	oh.error = -rep.err;
	oh.unique = req.unique;
	memcpy(hdr->in_out, &oh, sizeof(oh));
	hdr->ring_ent_in_out.payload_sz = (uint32_t)rep.len;

	sqe = io_uring_get_sqe(&q->uring);
	if (!sqe) {
		/* Cannot happen: an entry has at most one SQE at a time. */
		log_warnx("export '%s': ring queue %d is out of SQEs", fe->common.id, q->qid);
		fuse_export_halt(fe, "io_uring submission queue full");
		return false;
	}
	fuse_ring_prep_cmd(sqe, ent, EXPORTD_FUSE_IO_URING_CMD_COMMIT_AND_FETCH, commit_id);
	fexp_account(fe, fe->nchannels + q->qid, &req, &rep, start);
	return true;
}

/* Handle one completion; false if the queue must stop. */
static bool fuse_ring_complete(struct fuse_ring_queue *q, struct io_uring_cqe *cqe)
{
	struct fuse_export *fe = q->ring->fe;
	struct fuse_ring_ent *ent = io_uring_cqe_get_data(cqe);

	if (cqe->res == 0)
		return fuse_ring_serve(q, ent);
	if (atomic_load(&fe->stopping))
		return false;
	/* ENOENT: a commit for a request the kernel dropped when aborting. */
	if (cqe->res == -ENOTCONN || cqe->res == -ECONNABORTED || cqe->res == -ENODEV ||
	    cqe->res == -ECANCELED || cqe->res == -ENOENT) {
		fuse_export_halt(fe, "the FUSE connection ended (unmounted?)");
		return false;
	}
	log_warnx("export '%s': FUSE io_uring command on queue %d failed: %s",
		  fe->common.id, q->qid, strerror(-cqe->res));
	fuse_export_halt(fe, "FUSE io_uring command failed");
	return false;
}

/*
 * Drop the ring's reference to the export's /dev/fuse clone before the
 * ring is closed.  Closing the ring hands its teardown to a kernel
 * worker that runs after close() has returned, and the registered file
 * keeps the FUSE connection alive until then: a client's request made
 * after the daemon exited would wait for that worker and fail with
 * ECONNABORTED instead of the ENOTCONN of every other data path.
 */
static void fuse_ring_queue_release_fd(struct fuse_ring_queue *q)
{
	int ret = io_uring_unregister_files(&q->uring);

	if (ret < 0)
		log_debug("export '%s': unregistering queue %d's /dev/fuse fd: %s",
			  q->ring->fe->common.id, q->qid, strerror(-ret));
}

/* Close the ring (on its loop, or on the main thread if it never started). */
static void fuse_ring_queue_close(struct fuse_ring_queue *q)
{
	if (q->uring_ok) {
		fuse_ring_queue_release_fd(q);
		io_uring_queue_exit(&q->uring);
		q->uring_ok = false;
	}
}

/* On the loop: the ring's eventfd is readable, completions are waiting. */
static void fuse_ring_ready(evutil_socket_t fd, short what, void *opaque)
{
	struct fuse_ring_queue *q = opaque;
	struct fuse_export *fe = q->ring->fe;
	uint64_t count;
	bool run = true;

	(void)what;
	/* Before looking at the ring: a completion after this wakes us again. */
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("export '%s': reading ring queue %d's eventfd: %s",
			  fe->common.id, q->qid, strerror(errno));
	while (run && !atomic_load_explicit(&fe->stopping, memory_order_relaxed)) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int ret;

		io_uring_for_each_cqe(&q->uring, head, cqe) {
			seen++;
			if (run && !fuse_ring_complete(q, cqe))
				run = false;
		}
		io_uring_cq_advance(&q->uring, seen);
		if (!seen)
			return;
		/* The commits of the batch, in one system call. */
		ret = io_uring_submit(&q->uring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			if (!atomic_load(&fe->stopping)) {
				log_warnx("export '%s': io_uring on queue %d: %s", fe->common.id,
					  q->qid, strerror(-ret));
				fuse_export_halt(fe, "io_uring failed");
			}
			run = false;
		}
	}
	/* Stopped: the event is being (or will be) freed; do not spin on it. */
	event_del(q->ev);
}

static void fuse_ring_finalized(struct event *ev, void *opaque)
{
	struct fuse_ring_queue *q = opaque;

	(void)ev;
	/*
	 * Close the ring here, on its loop: the kernel cancels the entries
	 * still registered, then nothing of ours is left in it.
	 */
	fuse_ring_queue_close(q);
	export_unref(&q->ring->fe->common);
}

static int fuse_ring_clone_fd(struct fuse_export *fe, struct error **errp)
{
	uint32_t src = (uint32_t)fe->channels[0].fd;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	/* Blocking: the ring's commands wait in the kernel, never a read(). */

	if (fd < 0) {
		error_setg_errno(errp, errno, "Failed to open /dev/fuse");
		return -1;
	}
	if (ioctl(fd, FUSE_DEV_IOC_CLONE, &src) < 0) {
		error_setg_errno(errp, errno, "Failed to clone the FUSE fd");
		close(fd);
		return -1;
	}
	return fd;
}

static void fuse_ring_setup_error(struct fuse_export *fe, int qid, int err, const char *what,
				  struct error **errp)
{
	if (err == -EOPNOTSUPP)
		error_setg(errp, "FUSE over io_uring is disabled in the kernel (echo Y > "
			   "/sys/module/fuse/parameters/enable_uring)");
	else
		error_setg_errno(errp, -err, "Cannot set up FUSE over io_uring for export '%s' "
				 "(queue %d, %s)", fe->common.id, qid, what);
}

int fuse_ring_start(struct fuse_export *fe, struct error **errp)
{
	struct fuse_ring *ring = xcalloc(1, sizeof(*ring));

	ring->fe = fe;
	ring->nqueues = fuse_ring_nqueues();
	ring->queues = xcalloc((size_t)ring->nqueues, sizeof(*ring->queues));
	fe->ring = ring;

	for (int i = 0; i < ring->nqueues; i++) {
		struct fuse_ring_queue *q = &ring->queues[i];

		q->ring = ring;
		q->qid = i;
		q->fd = -1;
		q->event_fd = -1;
		/* Queues take the export's loops in turn, as its channels do. */
		q->loop = fe->channels[i % fe->nchannels].loop;
	}
	for (int i = 0; i < ring->nqueues; i++) {
		struct fuse_ring_queue *q = &ring->queues[i];
		const char *what = "";
		int ret;

		q->fd = fuse_ring_clone_fd(fe, errp);
		if (q->fd < 0)
			return -1;
		q->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->event_fd < 0) {
			error_setg_errno(errp, errno, "Cannot create an eventfd");
			return -1;
		}
		for (int j = 0; j < FUSE_RING_DEPTH; j++) {
			struct fuse_ring_ent *ent = &q->ents[j];

			ent->q = q;
			if (posix_memalign((void **)&ent->hdr, FUSE_EXPORT_PAGE, FUSE_EXPORT_PAGE) ||
			    posix_memalign((void **)&ent->payload, FUSE_EXPORT_PAGE,
					   FUSE_EXPORT_MAX_IO)) {
				error_setg(errp, "Cannot allocate FUSE io_uring buffers");
				return -1;
			}
			memset(ent->hdr, 0, FUSE_EXPORT_PAGE);
			ent->iov[0].iov_base = ent->hdr;
			ent->iov[0].iov_len = sizeof(*ent->hdr);
			ent->iov[1].iov_base = ent->payload;
			ent->iov[1].iov_len = FUSE_EXPORT_MAX_IO;
		}
		q->ev = event_new(iothread_base(q->loop), q->event_fd, EV_READ | EV_PERSIST,
				  fuse_ring_ready, q);
		if (!q->ev) {
			error_setg(errp, "Cannot create the event of a FUSE io_uring queue");
			return -1;
		}
		/* Setting up is quick; a registration refused fails at once. */
		ret = fuse_ring_queue_setup(q, &what);
		if (ret < 0) {
			fuse_ring_setup_error(fe, i, ret, what, errp);
			return -1;
		}
	}
	for (int i = 0; i < ring->nqueues; i++) {
		struct fuse_ring_queue *q = &ring->queues[i];

		export_ref(&fe->common);
		if (event_add(q->ev, NULL) < 0) {
			export_unref(&fe->common);
			error_setg(errp, "Cannot add a FUSE io_uring queue to iothread '%s'",
				   iothread_name(q->loop));
			return -1;
		}
		q->started = true;
	}
	return 0;
}

void fuse_ring_stop(struct fuse_export *fe)
{
	struct fuse_ring *ring = fe->ring;

	if (!ring)
		return;
	for (int i = 0; i < ring->nqueues; i++) {
		struct fuse_ring_queue *q = &ring->queues[i];

		if (!q->ev || q->freed)
			continue;
		q->freed = true;
		if (q->started)
			event_free_finalize(0, q->ev, fuse_ring_finalized);
		else
			event_free(q->ev);
	}
}

void fuse_ring_abort(struct fuse_export *fe)
{
	struct fuse_ring *ring = fe->ring;

	if (!ring)
		return;
	for (int i = 0; i < ring->nqueues; i++) {
		struct fuse_ring_queue *q = &ring->queues[i];

		if (!q->ev || q->freed)
			continue;
		q->freed = true;
		/* From another thread, event_free() waits for a running callback. */
		event_free(q->ev);
		if (q->started)
			export_unref(&fe->common);
		q->started = false;
	}
}

void fuse_ring_free(struct fuse_export *fe)
{
	struct fuse_ring *ring = fe->ring;

	if (!ring)
		return;
	for (int i = 0; i < ring->nqueues; i++) {
		struct fuse_ring_queue *q = &ring->queues[i];

		/* Never started (create failed): nobody closed the ring. */
		fuse_ring_queue_close(q);
		if (q->event_fd >= 0)
			close(q->event_fd);
		if (q->fd >= 0)
			close(q->fd);
		for (int j = 0; j < FUSE_RING_DEPTH; j++) {
			free(q->ents[j].hdr);
			free(q->ents[j].payload);
		}
	}
	free(ring->queues);
	free(ring);
	fe->ring = NULL;
}

#else /* !HAVE_LIBURING */

int fuse_ring_nqueues(void)
{
	return 0;
}

int fuse_ring_start(struct fuse_export *fe, struct error **errp)
{
	error_setg(errp, "Cannot serve export '%s' over io_uring: exportd was built "
		   "without liburing", fe->common.id);
	return -1;
}

void fuse_ring_stop(struct fuse_export *fe)
{
	(void)fe;
}

void fuse_ring_abort(struct fuse_export *fe)
{
	(void)fe;
}

void fuse_ring_free(struct fuse_export *fe)
{
	(void)fe;
}

#endif
