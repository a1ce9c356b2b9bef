/*
 * block/file-uring.c: the io_uring path of the file driver (aio=io_uring).
 *
 * The driver's I/O callbacks are synchronous and run on many worker
 * threads at once.  Each thread gets its own small ring, made on first
 * use and torn down when the thread exits: a request is one submission
 * and one wait on that ring, with no lock and nothing shared between
 * threads.  Unlike pread/pwrite, O_DIRECT requests then go to the device
 * asynchronously in the kernel, and buffered ones that miss the page
 * cache are served by io_uring's own workers.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block/file.h"
#include "util.h"

#if HAVE_LIBURING

#include <liburing.h>

#define URING_DEPTH 4

struct uring_thread {
	struct io_uring ring;
	int err;		/* -errno when the ring could not be made */
};

static pthread_key_t uring_key;
static pthread_once_t uring_once = PTHREAD_ONCE_INIT;

static void uring_thread_free(void *opaque)
{
	struct uring_thread *t = opaque;

	if (!t->err)
		io_uring_queue_exit(&t->ring);
	free(t);
}

static void uring_key_create(void)
{
	if (pthread_key_create(&uring_key, uring_thread_free) != 0)
		abort();
}

/* The calling thread's ring, or NULL with *err set. */
static struct io_uring *uring_get(int *err)
{
	struct uring_thread *t;

	pthread_once(&uring_once, uring_key_create);
	t = pthread_getspecific(uring_key);
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->err = io_uring_queue_init(URING_DEPTH, &t->ring, 0);
		pthread_setspecific(uring_key, t);
	}
	if (t->err) {
		*err = t->err;
		return NULL;
	}
	return &t->ring;
}

/* Submit the one prepared request and wait for its result. */
static int uring_run(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int ret;

	do {
		ret = io_uring_submit_and_wait(ring, 1);
	} while (ret == -EINTR);
	if (ret < 0)
		return ret;
	do {
		ret = io_uring_wait_cqe(ring, &cqe);
	} while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

bool file_uring_available(struct error **errp)
{
	int err = 0;

	if (!uring_get(&err)) {
		error_setg_errno(errp, -err, "Unable to use io_uring: failed to init "
				 "linux io_uring ring");
		return false;
	}
	return true;
}

int file_uring_rw(int fd, bool write, void *buf, size_t len, uint64_t offset)
{
	int err = 0;
	struct io_uring *ring = uring_get(&err);
	size_t done = 0;

	if (!ring)
		return err;
	while (done < len) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		/* One request moves at most INT_MAX bytes (the result is an int). */
		unsigned n = (unsigned)MIN(len - done, (size_t)1 << 30);
		int ret;

		if (!sqe)
			return -EBUSY;	/* cannot happen: one request at a time */
		if (write)
			io_uring_prep_write(sqe, fd, (char *)buf + done, n, offset + done);
		else
			io_uring_prep_read(sqe, fd, (char *)buf + done, n, offset + done);
		ret = uring_run(ring);
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0)
			return ret;
		if (ret == 0) {
			if (write)
				return -EIO;
			/* Past the end of a file that shrank: reads as zeroes. */
			memset((char *)buf + done, 0, len - done);
			break;
		}
		done += (size_t)ret;
	}
	return 0;
}

int file_uring_fdatasync(int fd)
{
	int err = 0;
	struct io_uring *ring = uring_get(&err);
	struct io_uring_sqe *sqe;
	int ret;

	if (!ring)
		return err;
	do {
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		ret = uring_run(ring);
	} while (ret == -EINTR || ret == -EAGAIN);
	return ret < 0 ? ret : 0;
}

#else /* !HAVE_LIBURING */

bool file_uring_available(struct error **errp)
{
	error_setg(errp, "aio=io_uring was specified, but is not supported in "
		   "this build.");
	return false;
}

int file_uring_rw(int fd, bool write, void *buf, size_t len, uint64_t offset)
{
	(void)fd;
	(void)write;
	(void)buf;
	(void)len;
	(void)offset;
	return -ENOTSUP;
}

int file_uring_fdatasync(int fd)
{
	(void)fd;
	return -ENOTSUP;
}

#endif
