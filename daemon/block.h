/*
 * block.h: the block layer: a graph of named nodes, each served by a driver.
 *
 * A node is what `blockdev-add` creates: a protocol node ("file": a POSIX
 * file or block device) or a format node ("raw", "qcow2") stacked on a
 * child node.  Exports and parent nodes hold references to a node; a node
 * with users cannot be deleted.
 *
 * Drivers are `static const struct block_driver` tables of callbacks.  I/O
 * callbacks run on worker threads, many at once on the same node; a driver
 * that keeps shared metadata (qcow2) protects it itself.  I/O callbacks
 * return 0 or -errno.  Control callbacks (open, close, query) run on the
 * main thread and use struct error.
 *
 * The block_node_* I/O wrappers check bounds and permissions before calling
 * the driver, so drivers can trust offset/length they are given.
 */
#ifndef EXPORTD_BLOCK_H
#define EXPORTD_BLOCK_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "error.h"

struct block_node;

/* block_status flags */
#define BLOCK_STATUS_DATA	0x1	/* reads return data from this node or below */
#define BLOCK_STATUS_ZERO	0x2	/* reads return zeroes */
#define BLOCK_STATUS_ALLOCATED	0x4	/* allocated in this node (not backing) */

/* write_zeroes flags */
#define BLOCK_ZERO_MAY_UNMAP	0x1	/* deallocating is fine (punch hole) */

/* Information for the FUSE passthrough fast path (kernel serves I/O). */
struct block_passthrough {
	int fd;			/* backing fd, borrowed from the node */
	uint64_t offset;	/* must be 0 for passthrough */
};

struct block_driver {
	const char *name;	/* "file", "raw", "qcow2": the `driver` value */
	bool is_format;		/* has a `file` child */
	size_t state_size;	/* bytes of zeroed driver state at node->opaque */

	/* Control path (main thread). options: validated blockdev-add dict. */
	int (*open)(struct block_node *bs, json_t *options, struct error **errp);
	void (*close)(struct block_node *bs);
	/* Add driver-specific members to a query-named-block-nodes entry. */
	void (*query)(struct block_node *bs, json_t *info);

	/* I/O path (any thread), 0 or -errno unless said otherwise. */
	int64_t (*get_length)(struct block_node *bs);
	/* Bytes allocated on the host for this node (and its children). */
	int64_t (*get_allocated_size)(struct block_node *bs);
	/* Whole reads: a driver returns exactly len bytes or an error. */
	int (*pread)(struct block_node *bs, void *buf, size_t len, uint64_t offset);
	int (*pwrite)(struct block_node *bs, const void *buf, size_t len, uint64_t offset);
	int (*flush)(struct block_node *bs);
	/* Deallocate; later reads return zeroes or old data (see write_zeroes). */
	int (*discard)(struct block_node *bs, uint64_t offset, uint64_t len);
	/* After this, reads of the range return zeroes. flags: BLOCK_ZERO_*. */
	int (*write_zeroes)(struct block_node *bs, uint64_t offset, uint64_t len, int flags);
	int (*truncate)(struct block_node *bs, uint64_t length);
	/*
	 * Status of [offset, offset+len): sets *pnum to the length (> 0,
	 * <= len) of the run starting at offset that has the same status and
	 * returns the BLOCK_STATUS_* flags of that run, or -errno.
	 */
	int (*block_status)(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum);
	/*
	 * Optional: whether the node is a plain window onto a file that the
	 * kernel can serve directly.  Fills *pt and returns 0, or returns
	 * -ENOTSUP with *why set to a static reason.
	 */
	int (*get_passthrough)(struct block_node *bs, struct block_passthrough *pt,
			       const char **why);
};

struct block_node {
	char *node_name;
	const struct block_driver *drv;
	void *opaque;			/* driver state, drv->state_size bytes */
	struct block_node *file;	/* format nodes: the protocol child */
	struct block_node *backing;	/* qcow2: backing image, if any */
	char *filename;			/* for queries: the image path */
	bool read_only;
	bool implicit;			/* created inline by a parent, deleted with it */
	/* Users: parents and exports.  Protected by the main thread only. */
	int refcnt;
	int write_users;		/* users that write (blocks read-only) */
	int resize_users;		/* users that resize */
	TAILQ_ENTRY(block_node) next;
};

/* Registry (main thread). */
int blockdev_add(json_t *options, struct error **errp);
int blockdev_del(const char *node_name, struct error **errp);
struct block_node *block_node_find(const char *node_name);
/* query-named-block-nodes: array of BlockDeviceInfo-like objects. */
json_t *block_query_named_nodes(void);
/* Close every node that nobody uses any more (at shutdown). */
void block_close_all(void);

/*
 * For format drivers: open the child named by `ref` (a node-name string or
 * an inline BlockdevOptions object) and take a reference on it.
 */
struct block_node *block_node_open_child(json_t *ref, bool read_only,
					 const char *parent_name, struct error **errp);
/* Drop a reference taken by block_node_open_child or block_node_ref. */
void block_node_unref(struct block_node *bs);
void block_node_ref(struct block_node *bs);
/*
 * Take a user's permissions on a node: writing needs a writable node,
 * resizing needs a node whose driver can truncate.  Fails with a clear
 * message ("Node 'x' is read-only").  Release with block_node_release.
 */
int block_node_acquire(struct block_node *bs, bool write, bool resize,
		       struct error **errp);
void block_node_release(struct block_node *bs, bool write, bool resize);

/* I/O (any thread): bounds-checked wrappers around the driver. */
int64_t block_node_length(struct block_node *bs);
int64_t block_node_allocated_size(struct block_node *bs);
int block_node_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset);
int block_node_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset);
int block_node_flush(struct block_node *bs);
int block_node_discard(struct block_node *bs, uint64_t offset, uint64_t len);
int block_node_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len, int flags);
int block_node_truncate(struct block_node *bs, uint64_t length);
int block_node_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum);
int block_node_get_passthrough(struct block_node *bs, struct block_passthrough *pt,
			       const char **why);

extern const struct block_driver block_driver_file;
extern const struct block_driver block_driver_raw;
extern const struct block_driver block_driver_qcow2;

#endif
