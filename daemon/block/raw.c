/*
 * block/raw.c: the raw format driver: a window of `size` bytes at
 * `offset` over its file child, or the whole child when neither is given.
 *
 * The block_node_* wrappers have already checked every request against
 * this node's length, so the driver only shifts offsets; the child's
 * wrappers check again against the child.  Without a window, the node is a
 * pure filter: it resizes with its child and can hand the child's fd to
 * the kernel for FUSE passthrough.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "block/block.h"
#include "util.h"

struct raw_state {
	uint64_t offset;
	uint64_t size;
	bool has_size;
};

static struct raw_state *raw_state(struct block_node *bs)
{
	return bs->opaque;
}

static int raw_opt_uint(json_t *options, const char *key, uint64_t *out,
			bool *present, struct error **errp)
{
	json_t *v = json_object_get(options, key);

	*present = v != NULL;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		error_setg(errp, "Parameter '%s' expects a non-negative number "
			   "below 2^64", key);
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int raw_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct raw_state *s = raw_state(bs);
	bool has_offset;
	int64_t child_len;

	if (raw_opt_uint(options, "offset", &s->offset, &has_offset, errp) < 0 ||
	    raw_opt_uint(options, "size", &s->size, &s->has_size, errp) < 0)
		return -1;
	if (s->has_size && s->size % 512) {
		error_setg(errp, "Specified size is not multiple of 512");
		return -1;
	}
	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, 0, errp);
	if (!bs->file)
		return -1;
	child_len = block_node_length(bs->file);
	if (child_len < 0) {
		error_setg_errno(errp, (int)-child_len, "Could not get the size of "
				 "'%s'", bs->file->node_name);
		goto fail;
	}
	if (s->offset > (uint64_t)child_len) {
		error_setg(errp, "Offset (%" PRIu64 ") cannot be greater than size "
			   "of the containing file (%" PRId64 ")", s->offset,
			   child_len);
		goto fail;
	}
	/* QEMU's wording, double space included. */
	if (s->has_size && (s->size > UINT64_MAX - s->offset ||
			    s->offset + s->size > (uint64_t)child_len)) {
		error_setg(errp, "The sum of offset (%" PRIu64 ") and size (%" PRIu64
			   ") has to be smaller or equal to the  actual size of the "
			   "containing file (%" PRId64 ")", s->offset, s->size,
			   child_len);
		goto fail;
	}
	return 0;

fail:
	block_node_unref(bs->file);
	bs->file = NULL;
	return -1;
}

static void raw_close(struct block_node *bs)
{
	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
}

static int64_t raw_get_length(struct block_node *bs)
{
	struct raw_state *s = raw_state(bs);
	int64_t len;

	if (s->has_size)
		return (int64_t)s->size;
	len = block_node_length(bs->file);
	if (len < 0)
		return len;
	/* A child that shrank below the offset leaves an empty window. */
	return (uint64_t)len > s->offset ? len - (int64_t)s->offset : 0;
}

static int64_t raw_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

static int raw_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	return block_node_pread(bs->file, buf, len, offset + raw_state(bs)->offset);
}

static int raw_pwrite(struct block_node *bs, const void *buf, size_t len,
		      uint64_t offset)
{
	return block_node_pwrite(bs->file, buf, len, offset + raw_state(bs)->offset);
}

static int raw_flush(struct block_node *bs)
{
	return block_node_flush(bs->file);
}

static int raw_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	return block_node_discard(bs->file, offset + raw_state(bs)->offset, len);
}

static int raw_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
			    int flags)
{
	return block_node_write_zeroes(bs->file, offset + raw_state(bs)->offset, len,
				       flags);
}

static bool raw_is_window(struct block_node *bs)
{
	return raw_state(bs)->offset || raw_state(bs)->has_size;
}

static int raw_truncate(struct block_node *bs, uint64_t length)
{
	if (raw_is_window(bs))
		return -ENOTSUP;
	return block_node_truncate(bs->file, length);
}

static int raw_check_resize(struct block_node *bs, struct error **errp)
{
	if (raw_is_window(bs)) {
		error_setg(errp, "Node '%s' cannot be resized: it is a window "
			   "(offset/size) over '%s'", bs->node_name,
			   bs->file->node_name);
		return -1;
	}
	if (!bs->file->drv->truncate) {
		error_setg(errp, "Node '%s' cannot be resized: its file '%s' cannot",
			   bs->node_name, bs->file->node_name);
		return -1;
	}
	if (bs->file->drv->check_resize)
		return bs->file->drv->check_resize(bs->file, errp);
	return 0;
}

static int raw_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum)
{
	return block_node_block_status(bs->file, offset + raw_state(bs)->offset, len,
				       pnum);
}

static int raw_get_passthrough(struct block_node *bs, struct block_passthrough *pt,
			       const char **why)
{
	struct raw_state *s = raw_state(bs);

	if (s->offset) {
		*why = "the raw node starts at an offset into its file";
		return -ENOTSUP;
	}
	if (s->has_size && (int64_t)s->size != block_node_length(bs->file)) {
		*why = "the raw node is a window smaller than its file";
		return -ENOTSUP;
	}
	/* It cannot grow (QEMU: "Cannot resize fixed-size raw disks"). */
	if (s->has_size && pt->writes) {
		*why = "the raw node has a fixed size, which a kernel write past the "
		       "end would not respect";
		return -ENOTSUP;
	}
	return block_node_get_passthrough(bs->file, pt, why);
}

/*
 * As QEMU's raw_child_perm: a filter without a window; with one, others
 * must not resize the file under it.
 */
static void raw_child_perm(struct block_node *bs, struct block_node *child,
			   uint64_t perm, uint64_t shared,
			   uint64_t *child_perm, uint64_t *child_shared)
{
	(void)child;
	*child_perm = perm;
	*child_shared = shared;
	if (raw_state(bs)->has_size)
		*child_shared &= ~(uint64_t)BLOCK_PERM_RESIZE;
}

const struct block_driver block_driver_raw = {
	.name = "raw",
	.is_format = true,
	.state_size = sizeof(struct raw_state),
	.open = raw_open,
	.close = raw_close,
	.get_length = raw_get_length,
	.get_allocated_size = raw_get_allocated_size,
	.pread = raw_pread,
	.pwrite = raw_pwrite,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.truncate = raw_truncate,
	.block_status = raw_block_status,
	.get_passthrough = raw_get_passthrough,
	.child_perm = raw_child_perm,
	.check_resize = raw_check_resize,
};
