/*
 * block/null.c: QEMU's null-co protocol driver: a node of `size` bytes
 * (1 GiB by default) that stores nothing.  Writes, flushes, discards and
 * zeroing succeed at once, after `latency-ns` if given; reads return
 * zeroes.
 *
 * It has two uses: `make bench` exports it to measure exportd's own cost
 * with no storage below, and tests stack blkdebug on it to inject errors
 * (QEMU's iotest file-io-error does the same).
 *
 * QEMU leaves the read buffer alone unless `read-zeroes` is on, so that its
 * reads are undefined.  exportd zeroes it either way: a reader of the
 * export must never see memory the daemon used for something else, and
 * zeroes are one of the things "undefined" allows.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "block/block.h"
#include "util.h"

/* QEMU's default size of a null-co node. */
#define NULL_DEFAULT_SIZE (1ll << 30)

struct null_state {
	int64_t size;
	uint64_t latency_ns;
	bool read_zeroes;
};

static struct null_state *null_state(struct block_node *bs)
{
	return bs->opaque;
}

static int null_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct null_state *s = null_state(bs);
	json_t *size = json_object_get(options, "size");
	json_t *latency = json_object_get(options, "latency-ns");

	s->size = size ? json_integer_value(size) : NULL_DEFAULT_SIZE;
	if (s->size < 0) {
		error_setg(errp, "Parameter 'size' expects a non-negative number");
		return -1;
	}
	if (latency && json_integer_value(latency) < 0) {
		error_setg(errp, "latency-ns is invalid");
		return -1;
	}
	s->latency_ns = latency ? (uint64_t)json_integer_value(latency) : 0;
	s->read_zeroes = json_is_true(json_object_get(options, "read-zeroes"));
	bs->filename = xstrdup("null-co://");
	return 0;
}

static void null_close(struct block_node *bs)
{
	(void)bs;
}

/* QEMU delays every request but block status by latency-ns. */
static void null_delay(struct block_node *bs)
{
	uint64_t ns = null_state(bs)->latency_ns;
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	if (!ns)
		return;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t null_get_length(struct block_node *bs)
{
	return null_state(bs)->size;
}

static int64_t null_get_allocated_size(struct block_node *bs)
{
	(void)bs;
	return 0;
}

static int null_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	(void)offset;
	null_delay(bs);
	memset(buf, 0, len);
	return 0;
}

static int null_pwrite(struct block_node *bs, const void *buf, size_t len,
		       uint64_t offset)
{
	(void)buf, (void)len, (void)offset;
	null_delay(bs);
	return 0;
}

static int null_flush(struct block_node *bs)
{
	null_delay(bs);
	return 0;
}

static int null_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	(void)offset, (void)len;
	null_delay(bs);
	return 0;
}

static int null_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
			     int flags)
{
	(void)offset, (void)len, (void)flags;
	null_delay(bs);
	return 0;
}

/*
 * QEMU's null-co cannot be resized either; having the callback lets
 * writable exports, which may resize, use the node (as QEMU's iotest
 * file-io-error does), with a truncation failing as in QEMU.
 */
static int null_truncate(struct block_node *bs, uint64_t length)
{
	(void)bs, (void)length;
	return -ENOTSUP;
}

/* As QEMU: zeroes with read-zeroes, else data of no particular value. */
static int null_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			     uint64_t *pnum)
{
	(void)offset;
	*pnum = len;
	return null_state(bs)->read_zeroes ? BLOCK_STATUS_ZERO : BLOCK_STATUS_DATA;
}

const struct block_driver block_driver_null_co = {
	.name = "null-co",
	.is_format = false,
	.state_size = sizeof(struct null_state),
	.open = null_open,
	.close = null_close,
	.get_length = null_get_length,
	.get_allocated_size = null_get_allocated_size,
	.pread = null_pread,
	.pwrite = null_pwrite,
	.flush = null_flush,
	.discard = null_discard,
	.write_zeroes = null_write_zeroes,
	.truncate = null_truncate,
	.block_status = null_block_status,
};
