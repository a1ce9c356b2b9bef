/*
 * block/block.h: the block layer: a graph of named nodes, each served by a driver.
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

#include "rpc/error.h"

struct block_node;

/* block_status flags */
#define BLOCK_STATUS_DATA	0x1	/* reads return data from this node or below */
#define BLOCK_STATUS_ZERO	0x2	/* reads return zeroes */
#define BLOCK_STATUS_ALLOCATED	0x4	/* allocated in this node (not backing) */

/* write_zeroes flags */
#define BLOCK_ZERO_MAY_UNMAP	0x1	/* deallocating is fine (punch hole) */

/*
 * Permissions, with QEMU's bit values: they are what the image locks of
 * the file driver encode (byte 100 + bit for a permission held, byte 200
 * + bit for one not shared), so they must match QEMU's BLK_PERM_*.
 */
#define BLOCK_PERM_CONSISTENT_READ	0x1
#define BLOCK_PERM_WRITE		0x2
#define BLOCK_PERM_WRITE_UNCHANGED	0x4
#define BLOCK_PERM_RESIZE		0x8
#define BLOCK_PERM_ALL			0xf

/*
 * One user of a node: a parent node (through bs->file or bs->backing) or
 * an export.  It holds `perm` and lets other users have `shared`.
 */
struct block_user {
	struct block_node *parent;	/* NULL for an export */
	char *who;			/* "export 'e'", "node 'r'" for messages */
	const char *role;		/* "file", "backing", "export" */
	uint64_t perm;
	uint64_t shared;
	TAILQ_ENTRY(block_user) next;
};

/* Information for the FUSE passthrough fast path (kernel serves I/O). */
struct block_passthrough {
	bool writes;		/* in: the kernel will write (and may grow) it */
	int fd;			/* out: backing fd, borrowed from the node */
	uint64_t offset;	/* out: must be 0 for passthrough */
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
	 * -ENOTSUP with *why set to a static reason.  With pt->writes the
	 * kernel will write the file too (and may grow it): the node must
	 * stop trusting any length it cached.
	 */
	int (*get_passthrough)(struct block_node *bs, struct block_passthrough *pt,
			       const char **why);

	/*
	 * Optional, control path.  Permissions: what this node asks of its
	 * child `child` (bs->file or bs->backing) when its own users hold
	 * `perm` and share `shared`.  NULL gives QEMU's defaults: a format
	 * driver's file child is read always, written and resized whenever
	 * the node is writable, and shares neither write nor resize (its
	 * metadata must not change under it); the backing child only needs
	 * consistent reads.  raw passes permissions through instead.
	 */
	void (*child_perm)(struct block_node *bs, struct block_node *child,
			   uint64_t perm, uint64_t shared,
			   uint64_t *child_perm, uint64_t *child_shared);
	/*
	 * Optional, control path: the node's users now hold `perm` and share
	 * `shared` (cumulative).  The file driver checks and takes image
	 * locks here.  Fails without side effect.
	 */
	int (*set_perm)(struct block_node *bs, uint64_t perm, uint64_t shared,
			struct error **errp);
	/* Optional, control path: can a user resize this node?  0 or -1. */
	int (*check_resize)(struct block_node *bs, struct error **errp);
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
	bool registered;		/* in the registry (main thread) */
	/*
	 * Its driver's open is running: the node is already in the registry
	 * (QEMU lists a node after its file child) but a reference to it now
	 * would close a cycle, since every node still opening is an ancestor
	 * of the one being opened.
	 */
	bool opening;
	/*
	 * While its driver's open runs: the node whose open created this one
	 * as an inline child (NULL for blockdev-add's node).  Walking it up
	 * gives the chain of nodes opening, one inside the other: its length
	 * bounds the nesting, and qcow2 finds backing-file loops on it.
	 */
	struct block_node *opener;
	unsigned open_flags;		/* BLOCK_OPEN_*, inherited by inline children */
	int height;			/* longest path down to a leaf: 0 for a file node */
	/* Users: parents and exports.  Protected by the main thread only. */
	int refcnt;
	int write_users;		/* users that write (blocks read-only) */
	int resize_users;		/* users that resize */
	bool force_share;		/* share every permission (read-only) */
	bool no_flush;			/* cache.no-flush: flush is a no-op */
	bool direct;			/* cache.direct: O_DIRECT */
	bool discard_unmap;		/* discard=unmap (else discards are ignored) */
	int detect_zeroes;		/* BLOCK_DETECT_ZEROES_* */
	/* Permission graph (main thread): users, and what they add up to. */
	TAILQ_HEAD(, block_user) users;
	uint64_t perm;			/* union of the users' perm */
	uint64_t shared;		/* intersection of the users' shared */
	TAILQ_ENTRY(block_node) next;
};

#define BLOCK_DETECT_ZEROES_OFF		0
#define BLOCK_DETECT_ZEROES_ON		1
#define BLOCK_DETECT_ZEROES_UNMAP	2

/* Registry (main thread). */
int blockdev_add(json_t *options, struct error **errp);
int blockdev_del(const char *node_name, struct error **errp);
struct block_node *block_node_find(const char *node_name);
/* query-named-block-nodes: array of BlockDeviceInfo-like objects. */
json_t *block_query_named_nodes(void);
/* The same; flat leaves out the nested backing-image chains. */
json_t *block_query_nodes(bool flat);
/* Close every node that nobody uses any more (at shutdown). */
void block_close_all(void);

/*
 * Every walk of the graph (queries, reads through backing files, block
 * status, permissions) recurses once per level, on the main thread or on
 * an iothread's stack: no node may have more levels below it than this.
 * A qcow2 backing chain of QCOW2's 64 images fits with room to spare.
 */
#define BLOCK_MAX_HEIGHT	128

/* Flags of block_node_open_child. */
/*
 * The child is named by image content (a backing file name in a qcow2
 * header), not by the user: it must be a regular file, never a device or
 * a FIFO.  Inline children of such a node inherit the flag.
 */
#define BLOCK_OPEN_FROM_IMAGE	0x1
/*
 * The child's format was probed, not given: it may not name further files
 * (a backing file or an external data file), since probing must never
 * open what an explicit format would not.
 */
#define BLOCK_OPEN_PROBED	0x2

/*
 * For format drivers, from their open callback: open parent's child `role`
 * ("file", "backing") named by `ref` (a node-name string or an inline
 * BlockdevOptions object, which inherits parent's options) and take
 * a reference on it.  A reference that would close a cycle, or make the
 * graph deeper than BLOCK_MAX_HEIGHT, is refused.  flags: BLOCK_OPEN_*.
 */
struct block_node *block_node_open_child(struct block_node *parent, json_t *ref,
					 const char *role, bool read_only, unsigned flags,
					 struct error **errp);
/*
 * For drivers: write zeroes with the driver's own pwrite (no bounds check),
 * the fallback of a write_zeroes callback that cannot do better.
 */
int block_emulate_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len);
/* Drop a reference taken by block_node_open_child or block_node_ref. */
void block_node_unref(struct block_node *bs);
void block_node_ref(struct block_node *bs);
/*
 * Take a user's permissions on a node: writing needs a writable node,
 * resizing needs a node whose driver can truncate.  Fails with a clear
 * message ("Block node 'x' is read-only").  Release with block_node_release.
 */
int block_node_acquire(struct block_node *bs, bool write, bool resize,
		       struct error **errp);
void block_node_release(struct block_node *bs, bool write, bool resize);
/*
 * block_node_acquire naming the user in messages (e.g. "export 'e'"), so
 * that blockdev-del and permission conflicts say who holds the node.
 */
int block_node_acquire_as(struct block_node *bs, const char *who, bool write,
			  bool resize, struct error **errp);

/* Permission graph (main thread), for the registry and format drivers. */
/* Recompute bs's permissions from its users and pass them to its children. */
int block_perm_refresh(struct block_node *bs, struct error **errp);
/* Register parent as a user of child in `role` ("file", "backing"). */
int block_perm_attach_child(struct block_node *parent, struct block_node *child,
			    const char *role, struct error **errp);
/* Undo block_perm_attach_child (relaxes the child's permissions). */
void block_perm_detach_child(struct block_node *parent, struct block_node *child);
/* "consistent read, write": the names of the bits of perm, into buf. */
const char *block_perm_names(uint64_t perm, char *buf, size_t size);
/* Who uses bs, for "Node 'x' is in use by ...": NULL if nobody. */
char *block_node_describe_users(struct block_node *bs);

/*
 * I/O (any thread): bounds-checked wrappers around the driver, lock-free.
 * A request that does not lie inside [0, length) (or whose offset + len
 * overflows) gets -EINVAL without reaching the driver; writes, discards,
 * zeroing and truncation of a read-only node get -EROFS.  discard is a
 * successful no-op unless the node was opened with discard=unmap (QEMU's
 * default "ignore" at the top; inline children default to "unmap"), and
 * so write_zeroes drops BLOCK_ZERO_MAY_UNMAP on such nodes: to punch a
 * hole that must read back as zeroes, use write_zeroes(MAY_UNMAP), never
 * discard.  detect-zeroes turns all-zero pwrites into write_zeroes.
 */
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

/* Driver lookup by `driver` name ("file", "raw", "qcow2", "null-co", ...). */
const struct block_driver *block_driver_find(const char *name);
/* Implicit node names, "#block123", as QEMU generates them. */
char *block_node_generate_name(void);
/* Node names as QEMU's id_wellformed: a letter, then letters, digits, -._ */
bool block_node_name_wellformed(const char *name);

extern const struct block_driver block_driver_file;
extern const struct block_driver block_driver_host_device;
extern const struct block_driver block_driver_raw;
extern const struct block_driver block_driver_qcow2;
extern const struct block_driver block_driver_null_co;
extern const struct block_driver block_driver_blkdebug;

#endif
