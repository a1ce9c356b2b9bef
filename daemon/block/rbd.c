/*
 * block/rbd.c: the rbd protocol driver: a Ceph RBD image as a block node,
 * through librbd, with QEMU's options (BlockdevOptionsRbd), semantics and
 * error messages (block/rbd.c).
 *
 * Every request goes through librbd's asynchronous API (rbd_aio_*): the
 * calling thread submits it and sleeps in rbd_aio_wait_for_complete()
 * until librbd's own threads have the reply, so no CPU is spent waiting
 * and every request thread of every export has its request on the wire
 * at once; librbd sends them to the OSDs in parallel.  The block layer's
 * callbacks are synchronous (one request per calling thread), which is
 * what bounds the requests in flight, not this driver.
 *
 * Semantics as QEMU's: a 'snapshot' is read-only (so the node must be
 * read-only or auto-read-only); reads past the end of an image that
 * shrank under us read zeroes; write zeroes maps to rbd_aio_write_zeroes,
 * thick-provisioned unless unmapping is allowed; resizing (growable
 * exports, qcow2 growing its file) is rbd_resize.  The connection itself
 * (conf, user, auth, pool, namespace) is rbd-connect.c's.
 */
#include "config.h"

#include "block/block.h"

#if HAVE_LIBRBD

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <rbd/features.h>
#include <rbd/librbd.h>

#include "block/rbd.h"
#include "log.h"
#include "util.h"

struct rbd_state {
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	atomic_ullong size;		/* last size librbd told us */
	pthread_mutex_t resize_lock;	/* one rbd_resize at a time */
};

enum rbd_op {
	RBD_OP_READ,
	RBD_OP_WRITE,
	RBD_OP_DISCARD,
	RBD_OP_WRITE_ZEROES,
	RBD_OP_FLUSH,
};

static struct rbd_state *rbd_state(struct block_node *bs)
{
	return bs->opaque;
}

static const char *opt_str(json_t *options, const char *key)
{
	json_t *v = json_object_get(options, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "rbd:pool/[namespace/]image[@snapshot]", the spelling qemu-img users know. */
static char *rbd_filename(json_t *options)
{
	const char *ns = opt_str(options, "namespace");
	const char *snap = opt_str(options, "snapshot");

	return xasprintf("rbd:%s/%s%s%s%s%s", opt_str(options, "pool"),
			 ns && ns[0] ? ns : "", ns && ns[0] ? "/" : "",
			 opt_str(options, "image"), snap ? "@" : "", snap ? snap : "");
}

static int rbd_node_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct rbd_state *s = rbd_state(bs);
	const char *image = opt_str(options, "image");
	const char *snap = opt_str(options, "snapshot");
	json_t *auto_ro = json_object_get(options, "auto-read-only");
	uint64_t size;
	int r;

	/* As QEMU's bdrv_apply_auto_read_only, before touching the cluster. */
	if (snap && !bs->read_only) {
		if (!json_is_true(auto_ro)) {
			error_setg(errp, "rbd snapshots are read-only");
			return -1;
		}
		bs->read_only = true;
	}
	if (rbd_connect(options, !bs->direct, &s->cluster, &s->ioctx, errp) < 0)
		return -1;
	/*
	 * Read-write even for a read-only node, as QEMU: librbd then watches
	 * the image header and so sees a resize by another client, where a
	 * read-only open keeps its first size.  The exclusive lock is taken
	 * on the first write only, which a read-only node never sends.
	 */
	r = rbd_open(s->ioctx, image, &s->image, snap);
	if (r < 0) {
		error_setg_errno(errp, -r, "error reading header from %s", image);
		goto fail;
	}
	r = rbd_get_size(s->image, &size);
	if (r < 0) {
		error_setg_errno(errp, -r, "error getting image info from %s", image);
		rbd_close(s->image);
		goto fail;
	}
	atomic_store(&s->size, size);
	pthread_mutex_init(&s->resize_lock, NULL);
	bs->filename = rbd_filename(options);
	return 0;

fail:
	rados_ioctx_destroy(s->ioctx);
	rados_shutdown(s->cluster);
	return -1;
}

static void rbd_node_close(struct block_node *bs)
{
	struct rbd_state *s = rbd_state(bs);
	int r;

	/* rbd_close writes back librbd's cache: say so if that fails. */
	r = rbd_close(s->image);
	if (r < 0)
		log_warnx("closing rbd image '%s' failed: %s", bs->filename, strerror(-r));
	rados_ioctx_destroy(s->ioctx);
	rados_shutdown(s->cluster);
	pthread_mutex_destroy(&s->resize_lock);
}

/*
 * The image's length as librbd knows it now (another client may have
 * resized it, as `rbd resize` does); the last one seen if librbd fails.
 */
static int64_t rbd_node_length(struct block_node *bs)
{
	struct rbd_state *s = rbd_state(bs);
	uint64_t size;

	if (rbd_get_size(s->image, &size) == 0)
		atomic_store(&s->size, size);
	else
		size = atomic_load(&s->size);
	return (int64_t)size;
}

/*
 * Submit one request with librbd's asynchronous API and wait for its
 * completion.  Returns librbd's result: bytes for reads and writes, 0 for
 * the others, or -errno.
 */
static ssize_t rbd_submit(struct rbd_state *s, enum rbd_op op, void *buf,
			  uint64_t offset, uint64_t len, int zero_flags)
{
	rbd_completion_t c;
	ssize_t ret;
	int r;

	r = rbd_aio_create_completion(NULL, NULL, &c);
	if (r < 0)
		return r;
	switch (op) {
	case RBD_OP_READ:
		r = rbd_aio_read(s->image, offset, len, buf, c);
		break;
	case RBD_OP_WRITE:
		r = rbd_aio_write(s->image, offset, len, buf, c);
		break;
	case RBD_OP_DISCARD:
		r = rbd_aio_discard(s->image, offset, len, c);
		break;
	case RBD_OP_WRITE_ZEROES:
		r = rbd_aio_write_zeroes(s->image, offset, len, c, zero_flags, 0);
		break;
	case RBD_OP_FLUSH:
		r = rbd_aio_flush(s->image, c);
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0) {
		rbd_aio_release(c);
		return r;
	}
	rbd_aio_wait_for_complete(c);
	ret = rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	return ret;
}

static int rbd_node_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	ssize_t ret = rbd_submit(rbd_state(bs), RBD_OP_READ, buf, offset, len, 0);

	if (ret < 0)
		return (int)ret;
	/* Short only past the end of an image that shrank meanwhile. */
	if ((size_t)ret < len)
		memset((char *)buf + ret, 0, len - (size_t)ret);
	return 0;
}

static int rbd_node_pwrite(struct block_node *bs, const void *buf, size_t len,
		      uint64_t offset)
{
	ssize_t ret = rbd_submit(rbd_state(bs), RBD_OP_WRITE, (void *)buf, offset, len, 0);

	/* librbd reports 0 for a whole write, not the length. */
	return ret < 0 ? (int)ret : 0;
}

static int rbd_node_flush(struct block_node *bs)
{
	ssize_t ret = rbd_submit(rbd_state(bs), RBD_OP_FLUSH, NULL, 0, 0, 0);

	return ret < 0 ? (int)ret : 0;
}

static int rbd_node_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	ssize_t ret = rbd_submit(rbd_state(bs), RBD_OP_DISCARD, NULL, offset, len, 0);

	return ret < 0 ? (int)ret : 0;
}

static int rbd_node_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
				 int flags)
{
	/* Keep the space allocated unless the caller lets us unmap it. */
	int zero_flags = (flags & BLOCK_ZERO_MAY_UNMAP) ? 0 :
			 RBD_WRITE_ZEROES_FLAG_THICK_PROVISION;
	ssize_t ret = rbd_submit(rbd_state(bs), RBD_OP_WRITE_ZEROES, NULL, offset, len,
				 zero_flags);

	return ret < 0 ? (int)ret : 0;
}

static int rbd_node_truncate(struct block_node *bs, uint64_t length)
{
	struct rbd_state *s = rbd_state(bs);
	int r;

	pthread_mutex_lock(&s->resize_lock);
	r = rbd_resize(s->image, length);
	if (r == 0)
		atomic_store(&s->size, length);
	pthread_mutex_unlock(&s->resize_lock);
	return r;
}

/*
 * Block status from the object map, as QEMU's: only where the image has
 * a valid fast-diff map (else everything is data), and, because librbd
 * before 1.17 reports wrong offsets for a scan that does not start on an
 * object boundary (Ceph tracker 53784), only where rounding the start
 * down to an object is safe: default striping and no parent image.
 */
struct rbd_scan {
	uint64_t offset;	/* the run asked about starts here */
	uint64_t end;		/* and the request ends here */
	uint64_t data_end;	/* end of the data run found so far, or 0 */
	uint64_t hole_end;	/* end of the hole run, once data follows it */
};

/* Stop rbd_diff_iterate2 once the run is known (any negative value). */
#define RBD_SCAN_DONE (-9000)

static int rbd_scan_extent(uint64_t offs, size_t len, int exists, void *opaque)
{
	struct rbd_scan *scan = opaque;
	uint64_t start = offs, stop = offs + len;

	if (!exists || stop <= scan->offset)
		return 0;
	if (start < scan->offset)
		start = scan->offset;
	if (scan->data_end) {
		if (start > scan->data_end)
			return RBD_SCAN_DONE;	/* a hole ends the data run */
		scan->data_end = stop;
		return 0;
	}
	if (start > scan->offset) {
		scan->hole_end = start;		/* a hole, then this data */
		return RBD_SCAN_DONE;
	}
	scan->data_end = stop;
	return 0;
}

static bool rbd_scan_is_exact(struct rbd_state *s)
{
	rbd_linked_image_spec_t parent;
	rbd_snap_spec_t parent_snap;
	uint64_t features, flags;
	int r;

	if (rbd_get_features(s->image, &features) < 0 ||
	    !(features & RBD_FEATURE_FAST_DIFF) || (features & RBD_FEATURE_STRIPINGV2))
		return false;
	if (rbd_get_flags(s->image, &flags) < 0 || (flags & RBD_FLAG_FAST_DIFF_INVALID))
		return false;
	r = rbd_get_parent(s->image, &parent, &parent_snap);
	if (r == 0) {
		rbd_linked_image_spec_cleanup(&parent);
		rbd_snap_spec_cleanup(&parent_snap);
	}
	return r == -ENOENT;
}

static int rbd_node_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
				 uint64_t *pnum)
{
	struct rbd_state *s = rbd_state(bs);
	struct rbd_scan scan = { .offset = offset, .end = offset + len };
	rbd_image_info_t info;
	uint64_t start;
	int r;

	*pnum = len;
	if (!rbd_scan_is_exact(s) || rbd_stat(s->image, &info, sizeof(info)) < 0 ||
	    !info.obj_size)
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	start = offset - offset % info.obj_size;
	r = rbd_diff_iterate2(s->image, NULL, start, scan.end - start, 1, 1,
			      rbd_scan_extent, &scan);
	if (r < 0 && r != RBD_SCAN_DONE)
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	if (scan.data_end) {
		*pnum = (scan.data_end < scan.end ? scan.data_end : scan.end) - offset;
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	}
	/* No object, so zeroes, up to the next data or the end asked about. */
	if (scan.hole_end && scan.hole_end < scan.end)
		*pnum = scan.hole_end - offset;
	return BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED;
}

static int rbd_node_passthrough(struct block_node *bs, struct block_passthrough *pt,
			       const char **why)
{
	(void)bs;
	(void)pt;
	*why = "the node is a Ceph RBD image (the kernel passes through local files only)";
	return -ENOTSUP;
}

const struct block_driver block_driver_rbd = {
	.name = "rbd",
	.is_format = false,
	.state_size = sizeof(struct rbd_state),
	.open = rbd_node_open,
	.close = rbd_node_close,
	.get_length = rbd_node_length,
	.pread = rbd_node_pread,
	.pwrite = rbd_node_pwrite,
	.flush = rbd_node_flush,
	.discard = rbd_node_discard,
	.write_zeroes = rbd_node_write_zeroes,
	.truncate = rbd_node_truncate,
	.block_status = rbd_node_block_status,
	.get_passthrough = rbd_node_passthrough,
};

#endif
