/*
 * block/block.c: the node registry (blockdev-add, blockdev-del,
 * query-named-block-nodes) and the bounds-checked I/O wrappers that every
 * user of a node goes through.
 *
 * The registry is a list owned by the main thread.  Nodes created by
 * blockdev-add at the top level are "owned by the monitor" and deleted by
 * blockdev-del; children given inline (`file: {driver: file, ...}`) are
 * implicit nodes with generated names ("#block123", as QEMU) that live as
 * long as their parent holds them.  The I/O wrappers run on any thread;
 * they read only what does not change after open (driver, read-only,
 * options) and take no lock, so I/O on one node scales with threads.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "log.h"
#include "util.h"

static TAILQ_HEAD(block_node_list_head, block_node) block_nodes =
	TAILQ_HEAD_INITIALIZER(block_nodes);
static unsigned long block_name_counter;

const struct block_driver *block_driver_find(const char *name)
{
	static const struct block_driver *const drivers[] = {
		&block_driver_file,
		&block_driver_host_device,
		&block_driver_raw,
		&block_driver_qcow2,
		&block_driver_null_co,
		&block_driver_blkdebug,
	};

	if (!name)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(drivers); i++) {
		if (!strcmp(drivers[i]->name, name))
			return drivers[i];
	}
	return NULL;
}

bool block_node_name_wellformed(const char *name)
{
	if (!name || !isalpha((unsigned char)name[0]))
		return false;
	for (const char *p = name + 1; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("-._", *p))
			return false;
	}
	return true;
}

char *block_node_generate_name(void)
{
	return xasprintf("#block%03lu", block_name_counter++);
}

struct block_node *block_node_find(const char *node_name)
{
	struct block_node *bs;

	if (!node_name)
		return NULL;
	TAILQ_FOREACH(bs, &block_nodes, next) {
		if (!strcmp(bs->node_name, node_name))
			return bs;
	}
	return NULL;
}

static const char *opt_str(json_t *options, const char *key)
{
	return json_string_value(json_object_get(options, key));
}

static void node_free(struct block_node *bs)
{
	if (!bs)
		return;
	if (!TAILQ_EMPTY(&bs->users))
		log_warnx("node '%s' freed while it still has users", bs->node_name);
	free(bs->node_name);
	free(bs->filename);
	free(bs->opaque);
	free(bs);
}

static void node_detach_children(struct block_node *bs)
{
	if (bs->backing)
		block_perm_detach_child(bs, bs->backing);
	if (bs->file)
		block_perm_detach_child(bs, bs->file);
}

/* Close a node that nobody uses; its driver drops its children. */
static void node_register(struct block_node *bs)
{
	if (bs->registered)
		return;
	TAILQ_INSERT_TAIL(&block_nodes, bs, next);
	bs->registered = true;
}

static void node_unregister(struct block_node *bs)
{
	if (!bs->registered)
		return;
	TAILQ_REMOVE(&block_nodes, bs, next);
	bs->registered = false;
}

static void node_close(struct block_node *bs)
{
	node_unregister(bs);
	node_detach_children(bs);
	bs->drv->close(bs);
	log_debug("closed block node '%s'", bs->node_name);
	node_free(bs);
}

/* Longest path from bs down to a leaf, from its (open) children. */
static int node_height(struct block_node *bs)
{
	int h = 0;

	if (bs->file)
		h = MAX(h, bs->file->height + 1);
	if (bs->backing)
		h = MAX(h, bs->backing->height + 1);
	return h;
}

/* How many nodes are opening, one inside the other, from bs up. */
static int node_nesting(const struct block_node *bs)
{
	int n = 0;

	for (; bs; bs = bs->opener)
		n++;
	return n;
}

static struct block_node *node_open(json_t *options, const char *name,
				    struct block_node *opener, bool generated_name,
				    unsigned flags, struct error **errp)
{
	const char *drvname = opt_str(options, "driver");
	const char *discard = opt_str(options, "discard");
	const char *dz = opt_str(options, "detect-zeroes");
	json_t *cache = json_object_get(options, "cache");
	const struct block_driver *drv;
	struct block_node *bs;
	bool implicit = opener != NULL;
	int ret;

	if (!generated_name && !block_node_name_wellformed(name)) {
		error_setg(errp, "Invalid node-name: '%s'", name);
		return NULL;
	}
	if (block_node_find(name)) {
		error_setg(errp, "Duplicate nodes with node-name='%s'", name);
		return NULL;
	}
	/* QEMU keeps node names in 32 bytes. */
	if (strlen(name) >= 32) {
		error_setg(errp, "Node name too long");
		return NULL;
	}
	drv = block_driver_find(drvname);
	if (!drv) {
		error_setg(errp, "Driver '%s' is not available in this build",
			   drvname ? drvname : "");
		return NULL;
	}

	/* Inline children nest on the stack: bound them before they recurse. */
	if (node_nesting(opener) > BLOCK_MAX_HEIGHT) {
		error_setg(errp, "Node '%s': block graph nested deeper than %d levels",
			   name, BLOCK_MAX_HEIGHT);
		return NULL;
	}

	bs = xcalloc(1, sizeof(*bs));
	bs->node_name = xstrdup(name);
	bs->drv = drv;
	bs->implicit = implicit;
	bs->open_flags = flags;
	bs->opaque = xcalloc(1, drv->state_size ? drv->state_size : 1);
	TAILQ_INIT(&bs->users);
	bs->perm = 0;
	bs->shared = BLOCK_PERM_ALL;
	bs->read_only = json_is_true(json_object_get(options, "read-only"));
	bs->force_share = json_is_true(json_object_get(options, "force-share"));
	bs->direct = json_is_true(json_object_get(cache, "direct"));
	bs->no_flush = json_is_true(json_object_get(cache, "no-flush"));
	bs->discard_unmap = discard && !strcmp(discard, "unmap");
	if (dz && !strcmp(dz, "on"))
		bs->detect_zeroes = BLOCK_DETECT_ZEROES_ON;
	else if (dz && !strcmp(dz, "unmap"))
		bs->detect_zeroes = BLOCK_DETECT_ZEROES_UNMAP;

	if (bs->force_share && !bs->read_only) {
		error_setg(errp, "force-share=on can only be used with read-only images");
		goto fail;
	}
	if (bs->detect_zeroes == BLOCK_DETECT_ZEROES_UNMAP && !bs->discard_unmap) {
		error_setg(errp, "setting detect-zeroes to unmap is not allowed "
			   "without setting discard operation to unmap");
		goto fail;
	}

	bs->opener = opener;
	bs->opening = true;
	ret = drv->open(bs, options, errp);
	bs->opening = false;
	bs->opener = NULL;
	bs->height = node_height(bs);
	if (ret < 0) {
		node_unregister(bs);
		goto fail;
	}
	if (!bs->filename)
		bs->filename = xstrdup(bs->file && bs->file->filename ?
				       bs->file->filename : "");
	/* An inline child may have taken the name meanwhile. */
	if (!bs->registered && block_node_find(name)) {
		error_setg(errp, "Duplicate nodes with node-name='%s'", name);
		bs->drv->close(bs);
		goto fail;
	}
	if (bs->file && block_perm_attach_child(bs, bs->file, "file", errp) < 0) {
		node_unregister(bs);
		bs->drv->close(bs);
		goto fail;
	}
	if (bs->backing &&
	    block_perm_attach_child(bs, bs->backing, "backing", errp) < 0) {
		if (bs->file)
			block_perm_detach_child(bs, bs->file);
		node_unregister(bs);
		bs->drv->close(bs);
		goto fail;
	}
	node_register(bs);
	log_debug("opened block node '%s' (driver %s%s)", bs->node_name, drv->name,
		  implicit ? ", implicit" : "");
	return bs;

fail:
	node_free(bs);
	return NULL;
}

int blockdev_add(json_t *options, struct error **errp)
{
	const char *name = opt_str(options, "node-name");

	if (!name) {
		error_setg(errp, "'node-name' must be specified for the root node");
		return -1;
	}
	return node_open(options, name, NULL, false, 0, errp) ? 0 : -1;
}

/*
 * Options an inline child inherits from its parent unless it sets them,
 * as QEMU's bdrv_inherited_options: read-only, cache, force-share; and
 * lower layers honour discards (the parent decides whether to send them).
 */
static void node_inherit_options(struct block_node *parent, json_t *child, bool read_only)
{
	json_t *cache = json_object_get(child, "cache");

	if (!json_object_get(child, "read-only"))
		json_object_set_new(child, "read-only", json_boolean(read_only));
	if (!json_object_get(child, "discard"))
		json_object_set_new(child, "discard", json_string("unmap"));
	if (!json_object_get(child, "force-share") && parent->force_share &&
	    json_is_true(json_object_get(child, "read-only")))
		json_object_set_new(child, "force-share", json_true());
	if (!cache) {
		cache = json_object();
		json_object_set_new(child, "cache", cache);
	}
	if (!json_object_get(cache, "direct"))
		json_object_set_new(cache, "direct", json_boolean(parent->direct));
	if (!json_object_get(cache, "no-flush"))
		json_object_set_new(cache, "no-flush", json_boolean(parent->no_flush));
}

/*
 * May parent (opening now) take bs, found by name, as its `role` child?
 * Edges are only made while a parent opens, and point either to a node
 * that was complete before (so is no ancestor) or to a new inline node: a
 * cycle needs an edge to a node that is still opening, i.e. to an
 * ancestor, the parent itself included.
 */
static int node_check_child_ref(struct block_node *parent, struct block_node *bs,
				const char *role, struct error **errp)
{
	if (bs->opening) {
		error_setg(errp, "Making '%s' a %s child of '%s' would create a cycle",
			   bs->node_name, role, parent->node_name);
		return -1;
	}
	if (node_nesting(parent) + bs->height > BLOCK_MAX_HEIGHT) {
		error_setg(errp, "Making '%s' a %s child of '%s' would nest the block "
			   "graph deeper than %d levels", bs->node_name, role,
			   parent->node_name, BLOCK_MAX_HEIGHT);
		return -1;
	}
	return 0;
}

struct block_node *block_node_open_child(struct block_node *parent, json_t *ref,
					 const char *role, bool read_only, unsigned flags,
					 struct error **errp)
{
	struct block_node *bs;
	json_t *opts;
	bool generated = false;
	char *name;

	/*
	 * QEMU lists a node after its file child and before its backing
	 * chain: once a parent has its file, it enters the registry before
	 * any further child is opened.
	 */
	if (parent->file && !parent->registered && !block_node_find(parent->node_name))
		node_register(parent);

	if (json_is_string(ref)) {
		const char *r = json_string_value(ref);

		bs = block_node_find(r);
		if (!bs) {
			error_setg(errp, "Cannot find device='%s' nor node-name='%s'", r, r);
			return NULL;
		}
		if (node_check_child_ref(parent, bs, role, errp) < 0)
			return NULL;
		block_node_ref(bs);
		return bs;
	}
	if (!json_is_object(ref)) {
		error_setg(errp, "Node '%s': a child must be a node name or a "
			   "block device definition", parent->node_name);
		return NULL;
	}
	opts = json_deep_copy(ref);
	node_inherit_options(parent, opts, read_only);
	if (json_is_string(json_object_get(opts, "node-name")))
		name = xstrdup(opt_str(opts, "node-name"));
	else {
		name = block_node_generate_name();
		generated = true;
	}
	/* What an image named, everything below it was named by the image too. */
	if (parent->open_flags & BLOCK_OPEN_FROM_IMAGE)
		flags |= BLOCK_OPEN_FROM_IMAGE;
	bs = node_open(opts, name, parent, generated, flags, errp);
	free(name);
	json_decref(opts);
	if (!bs)
		return NULL;
	bs->refcnt = 1;
	return bs;
}

void block_node_ref(struct block_node *bs)
{
	bs->refcnt++;
}

void block_node_unref(struct block_node *bs)
{
	if (!bs)
		return;
	if (bs->refcnt <= 0) {
		log_warnx("node '%s': reference dropped that nobody held",
			  bs->node_name);
		return;
	}
	if (--bs->refcnt == 0 && bs->implicit)
		node_close(bs);
}

int blockdev_del(const char *node_name, struct error **errp)
{
	struct block_node *bs = block_node_find(node_name);
	char *users;

	if (!bs) {
		error_setg(errp, "Failed to find node with node-name='%s'",
			   node_name ? node_name : "");
		return -1;
	}
	if (bs->implicit) {
		error_setg(errp, "Node %s is not owned by the monitor", node_name);
		return -1;
	}
	users = block_node_describe_users(bs);
	if (users) {
		error_setg(errp, "Node '%s' is in use by %s", node_name, users);
		free(users);
		return -1;
	}
	if (bs->refcnt > 0) {
		error_setg(errp, "Node '%s' is in use", node_name);
		return -1;
	}
	node_close(bs);
	return 0;
}

void block_close_all(void)
{
	bool progress = true;

	/* Parents first: closing one may free the last user of another. */
	while (progress) {
		struct block_node *bs;

		progress = false;
		TAILQ_FOREACH_REVERSE(bs, &block_nodes, block_node_list_head, next) {
			if (!bs->implicit && bs->refcnt == 0 && TAILQ_EMPTY(&bs->users)) {
				node_close(bs);
				progress = true;
				break;
			}
		}
	}
}

/* ---- query-named-block-nodes ---- */

static json_t *node_info(struct block_node *bs, bool flat);

static json_t *node_image_info(struct block_node *bs, bool flat)
{
	json_t *image = json_object();
	int64_t len = block_node_length(bs);
	int64_t alloc = block_node_allocated_size(bs);

	json_object_set_new(image, "filename", json_string(bs->filename));
	json_object_set_new(image, "format", json_string(bs->drv->name));
	json_object_set_new(image, "virtual-size", json_integer(len < 0 ? 0 : len));
	if (alloc >= 0)
		json_object_set_new(image, "actual-size", json_integer(alloc));
	json_object_set_new(image, "dirty-flag", json_false());
	if (bs->backing) {
		json_object_set_new(image, "backing-filename",
				    json_string(bs->backing->filename));
		if (!flat) {
			/* The backing node's own image, with its driver's members. */
			json_t *binfo = node_info(bs->backing, flat);

			json_object_set(image, "backing-image",
					json_object_get(binfo, "image"));
			json_decref(binfo);
		}
	}
	return image;
}

static const char *node_detect_zeroes_name(struct block_node *bs)
{
	switch (bs->detect_zeroes) {
	case BLOCK_DETECT_ZEROES_ON:
		return "on";
	case BLOCK_DETECT_ZEROES_UNMAP:
		return "unmap";
	default:
		return "off";
	}
}

static json_t *node_info(struct block_node *bs, bool flat)
{
	static const char *const zero_members[] = {
		"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr",
		"write_threshold",
	};
	json_t *info = json_object(), *cache = json_object(), *children;
	int depth = 0;

	/* Bounded like every walk of the graph, whatever it holds. */
	for (struct block_node *b = bs->backing; b && depth < BLOCK_MAX_HEIGHT;
	     b = b->backing)
		depth++;
	json_object_set_new(info, "file", json_string(bs->filename));
	json_object_set_new(info, "node-name", json_string(bs->node_name));
	json_object_set_new(info, "ro", json_boolean(bs->read_only));
	json_object_set_new(info, "drv", json_string(bs->drv->name));
	if (bs->backing)
		json_object_set_new(info, "backing_file",
				    json_string(bs->backing->filename));
	json_object_set_new(info, "backing_file_depth", json_integer(depth));
	json_object_set_new(info, "encrypted", json_false());
	json_object_set_new(info, "detect_zeroes",
			    json_string(node_detect_zeroes_name(bs)));
	for (size_t i = 0; i < ARRAY_SIZE(zero_members); i++)
		json_object_set_new(info, zero_members[i], json_integer(0));
	json_object_set_new(info, "image", node_image_info(bs, flat));
	json_object_set_new(cache, "writeback", json_true());
	json_object_set_new(cache, "direct", json_boolean(bs->direct));
	json_object_set_new(cache, "no-flush", json_boolean(bs->no_flush));
	json_object_set_new(info, "cache", cache);
	if (bs->file || bs->backing) {
		children = json_array();
		if (bs->file)
			json_array_append_new(children, json_string(bs->file->node_name));
		if (bs->backing)
			json_array_append_new(children,
					      json_string(bs->backing->node_name));
		json_object_set_new(info, "x-children", children);
	}
	if (bs->drv->query)
		bs->drv->query(bs, info);
	return info;
}

json_t *block_query_nodes(bool flat)
{
	json_t *list = json_array();
	struct block_node *bs;

	/* Newest first, as QEMU lists them. */
	TAILQ_FOREACH_REVERSE(bs, &block_nodes, block_node_list_head, next)
		json_array_append_new(list, node_info(bs, flat));
	return list;
}

json_t *block_query_named_nodes(void)
{
	return block_query_nodes(false);
}

/* ---- I/O wrappers (any thread) ---- */

/* 0 if [offset, offset+len) lies inside the node, else -EINVAL. */
static int block_check_request(struct block_node *bs, uint64_t offset, uint64_t len)
{
	int64_t size;

	if (offset > INT64_MAX || len > INT64_MAX - offset)
		return -EINVAL;
	size = block_node_length(bs);
	if (size < 0)
		return (int)size;
	if (offset + len > (uint64_t)size)
		return -EINVAL;
	return 0;
}

int64_t block_node_length(struct block_node *bs)
{
	return bs->drv->get_length(bs);
}

int64_t block_node_allocated_size(struct block_node *bs)
{
	if (!bs->drv->get_allocated_size)
		return -ENOTSUP;
	return bs->drv->get_allocated_size(bs);
}

int block_node_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	int ret;

	if (len == 0)
		return 0;
	ret = block_check_request(bs, offset, len);
	if (ret < 0)
		return ret;
	return bs->drv->pread(bs, buf, len, offset);
}

static bool block_buffer_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	/* Cheap early exit on the first bytes, then compare with itself. */
	if (len == 0)
		return true;
	for (size_t i = 0; i < MIN(len, (size_t)16); i++) {
		if (p[i])
			return false;
	}
	return len <= 16 || !memcmp(p, p + 16, len - 16);
}

int block_node_pwrite(struct block_node *bs, const void *buf, size_t len,
		      uint64_t offset)
{
	int ret;

	if (bs->read_only)
		return -EROFS;
	if (len == 0)
		return 0;
	ret = block_check_request(bs, offset, len);
	if (ret < 0)
		return ret;
	if (bs->detect_zeroes != BLOCK_DETECT_ZEROES_OFF &&
	    block_buffer_is_zero(buf, len))
		return block_node_write_zeroes(bs, offset, len,
					       bs->detect_zeroes == BLOCK_DETECT_ZEROES_UNMAP ?
					       BLOCK_ZERO_MAY_UNMAP : 0);
	return bs->drv->pwrite(bs, buf, len, offset);
}

int block_node_flush(struct block_node *bs)
{
	if (bs->no_flush || !bs->drv->flush)
		return 0;
	return bs->drv->flush(bs);
}

int block_node_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	int ret;

	if (bs->read_only)
		return -EROFS;
	ret = block_check_request(bs, offset, len);
	if (ret < 0)
		return ret;
	/* discard=ignore (QEMU's default at the top): a valid no-op. */
	if (len == 0 || !bs->discard_unmap)
		return 0;
	if (!bs->drv->discard)
		return -ENOTSUP;
	return bs->drv->discard(bs, offset, len);
}

/*
 * The one emulation of write_zeroes: the driver's own pwrite of a zeroed
 * buffer, for drivers without the callback and for the cases a driver's
 * callback cannot do otherwise (no BLKZEROOUT, no fallocate).  Page-aligned
 * so that an O_DIRECT file takes it without a bounce copy.
 */
int block_emulate_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len)
{
	size_t piece = (size_t)MIN(len, (uint64_t)(1024 * 1024));
	size_t alloc = ROUND_UP(piece, 4096);
	void *zero = NULL;
	int ret = 0;

	if (posix_memalign(&zero, 4096, alloc) != 0)
		return -ENOMEM;
	memset(zero, 0, alloc);
	while (len > 0 && ret == 0) {
		size_t n = (size_t)MIN(len, (uint64_t)piece);

		ret = bs->drv->pwrite(bs, zero, n, offset);
		offset += n;
		len -= n;
	}
	free(zero);
	return ret;
}

int block_node_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
			    int flags)
{
	int ret;

	if (bs->read_only)
		return -EROFS;
	ret = block_check_request(bs, offset, len);
	if (ret < 0)
		return ret;
	if (len == 0)
		return 0;
	/* Deallocating is a discard: only when this node passes them on. */
	if (!bs->discard_unmap)
		flags &= ~BLOCK_ZERO_MAY_UNMAP;
	if (!bs->drv->write_zeroes)
		return block_emulate_write_zeroes(bs, offset, len);
	return bs->drv->write_zeroes(bs, offset, len, flags);
}

int block_node_truncate(struct block_node *bs, uint64_t length)
{
	if (bs->read_only)
		return -EROFS;
	if (length > INT64_MAX)
		return -EINVAL;
	if (!bs->drv->truncate)
		return -ENOTSUP;
	return bs->drv->truncate(bs, length);
}

int block_node_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum)
{
	int ret;

	if (len == 0)
		return -EINVAL;
	ret = block_check_request(bs, offset, len);
	if (ret < 0)
		return ret;
	if (!bs->drv->block_status) {
		*pnum = len;
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	}
	ret = bs->drv->block_status(bs, offset, len, pnum);
	if (ret >= 0 && (*pnum == 0 || *pnum > len))
		return -EIO;	/* a driver bug: never loop on it */
	return ret;
}

int block_node_get_passthrough(struct block_node *bs, struct block_passthrough *pt,
			       const char **why)
{
	if (!bs->drv->get_passthrough) {
		*why = "the driver cannot hand its file to the kernel";
		return -ENOTSUP;
	}
	/* The kernel writes what it is given, zeroes included. */
	if (pt->writes && bs->detect_zeroes != BLOCK_DETECT_ZEROES_OFF) {
		*why = "detect-zeroes is on (the kernel would write zeroes as data)";
		return -ENOTSUP;
	}
	return bs->drv->get_passthrough(bs, pt, why);
}
