/*
 * block/qcow2.h: internals of the qcow2 format driver, shared by its
 * files: block/qcow2-header.c (header and extension parsing, layout
 * validation; pure, no I/O), block/qcow2-cache.c (the L2 and refcount
 * block caches), block/qcow2-refcount.c (refcounts, cluster allocation and
 * freeing, refcount table growth), block/qcow2-cluster.c (L1/L2 mapping,
 * L2 table allocation, L1 growth), block/qcow2-compress.c (inflating
 * compressed clusters), block/qcow2-overlap.c (the set of metadata
 * clusters, overlap checks, the corrupt bit), block/qcow2-snapshot.c (the
 * snapshot table, read and checked at open) and block/qcow2.c (the driver
 * table and I/O).
 *
 * The on-disk format is QEMU's docs/interop/qcow2.txt; every number on
 * disk is big-endian, every number in these structs is host-endian.
 *
 * Consistency model: refcounts are kept consistent at all times, the dirty
 * bit is never used.  A new cluster gets its refcount written first, then
 * its contents, then (after a flush barrier of the file child) the L2 entry
 * that points at it, and a new L2 table is likewise complete and counted
 * before the L1 entry points at it.  A crash at any point leaks clusters
 * at worst and never leaves an entry pointing at a free cluster.  Freeing
 * runs the other way: the pointer goes first, the refcount after.
 */
#ifndef EXPORTD_BLOCK_QCOW2_H
#define EXPORTD_BLOCK_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "block/block.h"
#include "rpc/error.h"

#define QCOW2_MAGIC		0x514649fbU	/* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN	72
#define QCOW2_V3_HEADER_LEN	104
#define QCOW2_MIN_CLUSTER_BITS	9
#define QCOW2_MAX_CLUSTER_BITS	21		/* 2 MiB, QEMU's limit too */
#define QCOW2_MAX_L1_BYTES	(32u << 20)	/* QEMU's implementation limits */
#define QCOW2_MAX_RT_BYTES	(8u << 20)
#define QCOW2_MAX_SNAPSHOTS	65536
#define QCOW2_MAX_BACKING_NAME	1023
#define QCOW2_MAX_VIRTUAL_SIZE	(1ULL << 56)
#define QCOW2_MAX_BITMAPS	65535
#define QCOW2_MAX_BITMAP_DIR	(1024u * QCOW2_MAX_BITMAPS)
#define QCOW2_AUTOCLEAR_BITMAPS	(1ULL << 0)
/* A LUKS1 header with 8 slots of 64-byte keys takes about 2 MiB. */
#define QCOW2_MAX_CRYPTO_HDR	(8u << 20)

/* incompatible_features bits */
#define QCOW2_INCOMPAT_DIRTY		(1ULL << 0)
#define QCOW2_INCOMPAT_CORRUPT		(1ULL << 1)
#define QCOW2_INCOMPAT_DATA_FILE	(1ULL << 2)
#define QCOW2_INCOMPAT_COMPRESSION	(1ULL << 3)
#define QCOW2_INCOMPAT_EXTL2		(1ULL << 4)
#define QCOW2_INCOMPAT_KNOWN		0x1fULL

/* header extension types */
#define QCOW2_EXT_END			0x00000000U
#define QCOW2_EXT_BACKING_FORMAT	0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE		0x6803f857U
#define QCOW2_EXT_BITMAPS		0x23852875U
#define QCOW2_EXT_CRYPTO		0x0537be77U
#define QCOW2_EXT_DATA_FILE		0x44415441U

/* crypt_method */
#define QCOW2_CRYPT_NONE	0
#define QCOW2_CRYPT_AES		1
#define QCOW2_CRYPT_LUKS	2

#define QCOW2_COMPRESSION_ZLIB	0
#define QCOW2_COMPRESSION_ZSTD	1

/* L1/L2/refcount table entries */
#define QCOW2_OFLAG_COPIED	(1ULL << 63)
#define QCOW2_OFLAG_COMPRESSED	(1ULL << 62)
#define QCOW2_OFLAG_ZERO	(1ULL << 0)
#define QCOW2_L1E_OFFSET_MASK	0x00fffffffffffe00ULL
#define QCOW2_L1E_RESERVED	0x7f000000000001ffULL
#define QCOW2_L2E_OFFSET_MASK	0x00fffffffffffe00ULL
#define QCOW2_L2E_RESERVED	0x3f000000000001feULL
#define QCOW2_RTE_OFFSET_MASK	0xfffffffffffffe00ULL
#define QCOW2_RTE_RESERVED	0x00000000000001ffULL

/* One entry of the feature name table extension. */
struct qcow2_feature_name {
	uint8_t type;		/* 0 incompatible, 1 compatible, 2 autoclear */
	uint8_t bit;
	char name[47];		/* NUL-terminated copy */
};

/* The header as parsed from the first cluster of the image. */
struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;

	/* From the area after the header (malloc'ed, NULL when absent). */
	char *backing_file;
	char *backing_format;
	bool has_crypto_ext;
	uint64_t crypto_offset;		/* the LUKS header area (crypto extension) */
	uint64_t crypto_length;
	bool has_data_file_ext;
	bool has_bitmaps_ext;
	uint32_t nb_bitmaps;		/* bitmaps extension, when present */
	uint64_t bitmap_dir_size;
	uint64_t bitmap_dir_offset;
	struct qcow2_feature_name *features;
	size_t nb_features;
};

/* Big-endian helpers. */
static inline uint16_t qcow2_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t qcow2_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t qcow2_be64(const uint8_t *p)
{
	return (uint64_t)qcow2_be32(p) << 32 | qcow2_be32(p + 4);
}

static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
	qcow2_put_be32(p, v >> 32);
	qcow2_put_be32(p + 4, (uint32_t)v);
}

/*
 * Header (block/qcow2-header.c, no I/O).  buf holds the first
 * min(cluster size, file length) bytes of the image, or at least the
 * fixed header when only the cluster size is wanted; `name` names the
 * image in messages.  Parse fills *h (free with qcow2_header_clear) and
 * checks the fields one by one; check validates the layout against the
 * file length: alignment, tables inside the file, no overlaps.
 */
int qcow2_header_parse(const uint8_t *buf, size_t len, struct qcow2_header *h,
		       const char *name, struct error **errp);
int qcow2_header_check_layout(const struct qcow2_header *h, uint64_t file_len,
			      const char *name, struct error **errp);
/* Bytes of the fixed header that must be read to know the cluster size. */
#define QCOW2_HEADER_PROBE_LEN	QCOW2_V3_HEADER_LEN
void qcow2_header_clear(struct qcow2_header *h);
/* Name of an incompatible feature bit (from the image's table or ours). */
const char *qcow2_feature_name(const struct qcow2_header *h, unsigned type, unsigned bit);
/* Minimum number of L1 entries for a virtual size. */
uint64_t qcow2_l1_entries_for(uint64_t size, unsigned cluster_bits);

/* Refcount block entry access (pure): width 1 << order bits. */
uint64_t qcow2_refblock_get(const uint8_t *block, unsigned order, uint64_t index);
void qcow2_refblock_set(uint8_t *block, unsigned order, uint64_t index, uint64_t value);

/*
 * A set-associative cache of cluster-sized tables (L2 tables, refcount
 * blocks) in host order for L2 (converted on load/store by the caller) or
 * raw bytes for refcount blocks.  Protected by the owner's metadata lock.
 */
struct qcow2_cache_entry {
	uint64_t offset;	/* host offset of the table, 0 = empty slot */
	uint64_t lru;
	void *data;
};

struct qcow2_cache {
	size_t table_size;
	size_t nsets, ways;
	uint64_t tick;
	struct qcow2_cache_entry *entries;	/* nsets * ways */
};

void qcow2_cache_init(struct qcow2_cache *c, size_t table_size, size_t ntables);
void qcow2_cache_destroy(struct qcow2_cache *c);
/* The cached table at offset, or NULL. */
void *qcow2_cache_lookup(struct qcow2_cache *c, uint64_t offset);
/* A slot for offset (evicting the least recently used of its set). */
void *qcow2_cache_insert(struct qcow2_cache *c, uint64_t offset);
void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset);

/* A host byte range (snapshot table, a snapshot's L1 table). */
struct qcow2_extent {
	uint64_t off, len;
};

/* A guest cluster range being allocated by one writer. */
struct qcow2_alloc_range {
	uint64_t first, last;	/* guest cluster indices, inclusive */
	TAILQ_ENTRY(qcow2_alloc_range) next;
};

struct qcow2 {
	struct block_node *bs;
	struct qcow2_header hdr;
	char *name;			/* image file name for messages */

	unsigned cluster_bits;
	uint64_t cluster_size;
	unsigned l2_bits;		/* log2 of L2 entries per table */
	uint64_t l2_entries;
	unsigned refcount_order;
	unsigned rb_bits;		/* log2 of refcount entries per block */
	uint64_t refcount_max;
	unsigned csize_shift;		/* compressed descriptor layout */
	uint64_t csize_mask;
	uint64_t coffset_mask;

	bool writable;
	bool has_backing;
	bool pass_discard;		/* discards punch holes in the file */
	bool autoclear_pending;		/* clear autoclear bits before writing */
	bool corrupt;			/* an overlap was caught: no more writes */

	/* The snapshot table, then each snapshot's L1 table (read-only). */
	struct qcow2_extent *snap_extents;
	size_t nb_snap_extents;
	/*
	 * LUKS encryption (block/qcow2-crypt.c): the payload cipher, NULL for
	 * a plain image.  Sector n of a data cluster at host offset h is
	 * encrypted with IV h / 512 + n, as QEMU does for LUKS.  Writers that
	 * cover part of a sector hold crypt_rmw_lock exclusively, the others
	 * shared; it is taken before free_lock.
	 */
	struct crypto_cipher *crypto;
	pthread_rwlock_t crypt_rmw_lock;

	/* The bitmap directory (kept after the autoclear bit is cleared). */
	uint64_t bitmap_dir_offset, bitmap_dir_size;

	/* Everything below is protected by lock. */
	pthread_mutex_t lock;
	uint64_t *l1;			/* host order */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *rt;			/* host order */
	uint64_t rt_entries;
	uint64_t rt_offset;
	uint32_t rt_clusters;
	struct qcow2_cache l2_cache;	/* host-order uint64_t tables */
	struct qcow2_cache rb_cache;	/* raw refcount blocks */
	uint64_t free_hint;		/* cluster index to start searching at */
	uint64_t host_end;		/* bytes: end of the highest used cluster */
	uint64_t file_len;		/* length of the file child */
	uint64_t size;			/* virtual size; read atomically */
	uint64_t *meta_map;		/* bit per host cluster holding metadata */
	uint64_t meta_clusters;		/* clusters meta_map covers */
	TAILQ_HEAD(, qcow2_alloc_range) allocs;
	pthread_cond_t alloc_cond;

	/*
	 * Writers hold free_lock shared across their data I/O; anything that
	 * frees clusters (discard, COW of compressed clusters, shrink) holds it
	 * exclusively, so no in-flight request can see a freed cluster reused.
	 */
	pthread_rwlock_t free_lock;

	/* Group commit of flush barriers. */
	pthread_mutex_t flush_lock;
	pthread_cond_t flush_cond;
	uint64_t flush_req, flush_done, flush_err_gen;
	int flush_err;
	bool flushing;
};

/* Refcounts and allocation (block/qcow2-refcount.c); lock held. */
int qcow2_refcount_get(struct qcow2 *s, uint64_t cluster, uint64_t *value);
int qcow2_refcount_update(struct qcow2 *s, uint64_t cluster, int64_t delta);
/* Allocate one free cluster with refcount 1; returns its host offset. */
int qcow2_alloc_cluster(struct qcow2 *s, uint64_t *offset);
/* Allocate n contiguous clusters past every used one (tables). */
int qcow2_alloc_contiguous(struct qcow2 *s, uint64_t n, uint64_t *offset);
/* Drop one reference from every cluster overlapping [offset, offset+len). */
int qcow2_free_range(struct qcow2 *s, uint64_t offset, uint64_t len, bool discard);

/* Mapping (block/qcow2-cluster.c); lock held. */
/* L2 table for guest cluster's L1 index, host order; NULL on error (-errno in *err). */
uint64_t *qcow2_l2_get(struct qcow2 *s, uint64_t l1_index, int *err);
int qcow2_l2_set(struct qcow2 *s, uint64_t l1_index, uint64_t l2_index,
		 uint64_t entry);
/* Make sure L1 entry l1_index has an L2 table, allocating one if needed. */
int qcow2_l2_ensure(struct qcow2 *s, uint64_t l1_index);
int qcow2_l1_grow(struct qcow2 *s, uint64_t min_entries);
/* Check that a host range does not overlap the header, L1 or refcount table. */
bool qcow2_overlaps_metadata(struct qcow2 *s, uint64_t offset, uint64_t len);
/*
 * Make everything written so far durable before what follows (a flush of
 * the file child, shared by concurrent callers).  Called without lock.
 */
int qcow2_flush_barrier(struct qcow2 *s);
/* Grow the file child so that it is at least `end` bytes long; lock held. */
int qcow2_file_ensure_len(struct qcow2 *s, uint64_t end);
/* Log and refuse a corrupt structure; returns -EIO. */
int qcow2_corrupt(struct qcow2 *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Overlap checks (block/qcow2-overlap.c); lock held. */
/* Add or remove [off, off+len) (whole clusters) to the set of metadata clusters. */
void qcow2_meta_mark(struct qcow2 *s, uint64_t off, uint64_t len, bool on);
/* Whether [off, off+len) touches a metadata cluster (the fast check). */
bool qcow2_meta_hit(const struct qcow2 *s, uint64_t off, uint64_t len);
/*
 * Before `what` ("write of guest data", "allocation of a cluster", "free
 * of a data cluster") over [off, off+len): 0, or -EIO after marking the
 * image corrupt when the range holds metadata.
 */
int qcow2_check_write(struct qcow2 *s, uint64_t off, uint64_t len, const char *what);
/* Set the corrupt bit (once); writes are refused from then on. */
int qcow2_mark_corrupt(struct qcow2 *s);
/* Fill the set from the tables loaded at open. */
int qcow2_meta_build(struct qcow2 *s);
void qcow2_meta_free(struct qcow2 *s);

/* Snapshots (block/qcow2-snapshot.c): read and check the table at open. */
int qcow2_snapshots_load(struct qcow2 *s, struct error **errp);

/*
 * Encryption (block/qcow2-crypt.c).  Open: check the `encrypt` options
 * against the header and unlock the LUKS header (s->crypto).  The I/O
 * helpers en/decrypt whole sectors of host data at host offset `host`.
 */
int qcow2_crypt_open(struct qcow2 *s, json_t *options, struct error **errp);
void qcow2_crypt_close(struct qcow2 *s);
int qcow2_crypt_decrypt(struct qcow2 *s, uint64_t host, uint8_t *buf, uint64_t len);
int qcow2_crypt_encrypt(struct qcow2 *s, uint64_t host, uint8_t *buf, uint64_t len);

/* Compressed clusters (block/qcow2-compress.c). */
int qcow2_decompress(int type, const void *src, size_t src_len, void *dst, size_t dst_len);

#endif
