/*
 * block/qcow2-refcount.c: qcow2 refcounts: reading and updating entries of
 * refcount blocks, finding and allocating free clusters, creating refcount
 * blocks and growing the refcount table, and freeing clusters.
 *
 * Refcounts are always consistent on disk (no dirty bit): an increment is
 * written before anything points at the cluster, a decrement after the
 * last pointer is gone.  A new refcount block is written complete (it
 * counts itself) before the refcount table entry points at it, and a new
 * refcount table is written complete, with the blocks that count it,
 * before the header switches to it.  Every function here runs with the
 * driver's metadata lock held.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "log.h"
#include "util.h"

int qcow2_file_ensure_len(struct qcow2 *s, uint64_t end)
{
	int ret;

	if (end <= s->file_len)
		return 0;
	ret = block_node_truncate(s->bs->file, end);
	if (ret < 0)
		return ret;
	s->file_len = end;
	return 0;
}

/* The refcount block for table index i (NULL and *err = 0 when none). */
static uint8_t *qcow2_refblock_load(struct qcow2 *s, uint64_t i, int *err)
{
	uint64_t rte = s->rt[i], off = rte & QCOW2_RTE_OFFSET_MASK;
	uint8_t *block;
	int ret;

	*err = 0;
	if (!rte)
		return NULL;
	if ((rte & QCOW2_RTE_RESERVED) || off % s->cluster_size ||
	    qcow2_overlaps_metadata(s, off, s->cluster_size) ||
	    off > s->file_len || s->cluster_size > s->file_len - off) {
		*err = qcow2_corrupt(s, "refcount table entry %" PRIu64 " (0x%" PRIx64
				     ") is invalid", i, rte);
		return NULL;
	}
	block = qcow2_cache_lookup(&s->rb_cache, off);
	if (block)
		return block;
	block = qcow2_cache_insert(&s->rb_cache, off);
	ret = block_node_pread(s->bs->file, block, s->cluster_size, off);
	if (ret < 0) {
		qcow2_cache_drop(&s->rb_cache, off);
		*err = ret;
		return NULL;
	}
	return block;
}

int qcow2_refcount_get(struct qcow2 *s, uint64_t cluster, uint64_t *value)
{
	uint64_t i = cluster >> s->rb_bits;
	uint8_t *block;
	int err;

	*value = 0;
	if (i >= s->rt_entries)
		return 0;
	block = qcow2_refblock_load(s, i, &err);
	if (!block)
		return err;
	*value = qcow2_refblock_get(block, s->refcount_order,
				    cluster & ((1ULL << s->rb_bits) - 1));
	return 0;
}

/* Write the aligned 8 bytes of a cached block that hold entry idx. */
static int qcow2_refblock_write_entry(struct qcow2 *s, uint64_t block_off, uint8_t *block,
				      uint64_t idx)
{
	uint64_t byte = ROUND_DOWN((idx << s->refcount_order) / 8, 8);

	return block_node_pwrite(s->bs->file, block + byte, 8, block_off + byte);
}

int qcow2_refcount_update(struct qcow2 *s, uint64_t cluster, int64_t delta)
{
	uint64_t i = cluster >> s->rb_bits, idx = cluster & ((1ULL << s->rb_bits) - 1);
	uint64_t old, val, off;
	uint8_t *block;
	int err, ret;

	if (i >= s->rt_entries || !s->rt[i])
		return qcow2_corrupt(s, "cluster %" PRIu64 " has no refcount block", cluster);
	block = qcow2_refblock_load(s, i, &err);
	if (!block)
		return err;
	off = s->rt[i] & QCOW2_RTE_OFFSET_MASK;
	old = qcow2_refblock_get(block, s->refcount_order, idx);
	if (delta < 0 && old < (uint64_t)-delta)
		return qcow2_corrupt(s, "refcount of cluster %" PRIu64 " would drop below 0",
				     cluster);
	if (delta > 0 && s->refcount_max - old < (uint64_t)delta) {
		log_warnx("qcow2 '%s': refcount of cluster %" PRIu64 " would overflow",
			  s->name, cluster);
		return -ERANGE;
	}
	val = old + (uint64_t)delta;
	qcow2_refblock_set(block, s->refcount_order, idx, val);
	ret = qcow2_refblock_write_entry(s, off, block, idx);
	if (ret < 0) {
		/* The disk may hold either value: reload it next time. */
		qcow2_cache_drop(&s->rb_cache, off);
		return ret;
	}
	if (val == 0 && cluster < s->free_hint)
		s->free_hint = cluster;
	return 0;
}

/*
 * Create the refcount block for table index i at cluster `at` (which lies
 * in the range that block covers, so the block counts itself).
 */
static int qcow2_refblock_create(struct qcow2 *s, uint64_t i, uint64_t at)
{
	uint64_t off = at << s->cluster_bits;
	uint8_t be[8], *block;
	int ret;

	ret = qcow2_file_ensure_len(s, off + s->cluster_size);
	if (ret < 0)
		return ret;
	block = qcow2_cache_insert(&s->rb_cache, off);
	memset(block, 0, s->cluster_size);
	qcow2_refblock_set(block, s->refcount_order, at & ((1ULL << s->rb_bits) - 1), 1);
	ret = block_node_pwrite(s->bs->file, block, s->cluster_size, off);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret < 0) {
		qcow2_cache_drop(&s->rb_cache, off);
		return ret;
	}
	qcow2_put_be64(be, off);
	ret = block_node_pwrite(s->bs->file, be, 8, s->rt_offset + i * 8);
	if (ret < 0) {
		qcow2_cache_drop(&s->rb_cache, off);
		return ret;
	}
	s->rt[i] = off;
	qcow2_meta_mark(s, off, s->cluster_size, true);
	s->host_end = MAX(s->host_end, off + s->cluster_size);
	return 0;
}

/* Count refcount blocks missing for clusters [first, end). */
static uint64_t qcow2_missing_blocks(struct qcow2 *s, uint64_t first, uint64_t end)
{
	uint64_t n = 0;

	for (uint64_t b = first >> s->rb_bits; b <= (end - 1) >> s->rb_bits; b++)
		if (b >= s->rt_entries || !s->rt[b])
			n++;
	return n;
}

/*
 * Write a new refcount block for table index b at host offset `at`,
 * counting once every cluster of [start, end) in the range b covers (the
 * clusters of a new area, which include the new blocks themselves).
 */
static int qcow2_area_block_write(struct qcow2 *s, uint8_t *buf, uint64_t b, uint64_t start,
				  uint64_t end, uint64_t at)
{
	uint64_t lo = MAX(start, b << s->rb_bits), hi = MIN(end, (b + 1) << s->rb_bits);

	memset(buf, 0, s->cluster_size);
	for (uint64_t c = lo; c < hi; c++)
		qcow2_refblock_set(buf, s->refcount_order, c & ((1ULL << s->rb_bits) - 1), 1);
	return block_node_pwrite(s->bs->file, buf, s->cluster_size, at);
}

/*
 * Grow the refcount table to at least `need` entries.  The new table goes
 * past the end of everything in use, followed by the refcount blocks that
 * cover the new table and themselves; then the header switches to it and
 * the old table is freed.
 */
static int qcow2_rt_grow(struct qcow2 *s, uint64_t need)
{
	uint64_t per_cluster = s->cluster_size / 8;
	uint64_t tclusters = MAX((uint64_t)s->rt_clusters * 2, DIV_ROUND_UP(need, per_cluster));
	uint64_t start = DIV_ROUND_UP(s->host_end, s->cluster_size), nblocks = 0, end, nentries;
	uint64_t old_off = s->rt_offset, old_clusters = s->rt_clusters, *new_rt = NULL;
	uint8_t *buf = NULL, hdr[12];
	int ret;

	for (;;) {
		uint64_t n;

		if (tclusters * s->cluster_size > QCOW2_MAX_RT_BYTES) {
			log_warnx("qcow2 '%s': refcount table would exceed %u bytes", s->name,
				  QCOW2_MAX_RT_BYTES);
			return -EFBIG;
		}
		end = start + tclusters + nblocks;
		if (((end - 1) >> s->rb_bits) >= tclusters * per_cluster) {
			tclusters++;
			continue;
		}
		n = qcow2_missing_blocks(s, start, end);
		if (n == nblocks)
			break;
		nblocks = n;
	}
	nentries = tclusters * per_cluster;

	ret = qcow2_check_write(s, start << s->cluster_bits, (end - start) << s->cluster_bits,
				"allocation of a refcount table");
	if (ret < 0)
		return ret;
	ret = qcow2_file_ensure_len(s, end << s->cluster_bits);
	if (ret < 0)
		return ret;

	/* The new table: the old entries plus the new blocks. */
	new_rt = xcalloc(nentries, sizeof(uint64_t));
	memcpy(new_rt, s->rt, s->rt_entries * sizeof(uint64_t));
	{
		uint64_t at = start + tclusters;

		for (uint64_t b = start >> s->rb_bits; b <= (end - 1) >> s->rb_bits; b++) {
			if (b < s->rt_entries && s->rt[b])
				continue;
			new_rt[b] = at++ << s->cluster_bits;
		}
	}

	/* Write the new blocks, each counting the clusters of [start, end) it covers. */
	buf = xmalloc(MAX(s->cluster_size, tclusters * s->cluster_size));
	for (uint64_t b = start >> s->rb_bits; b <= (end - 1) >> s->rb_bits; b++) {
		if (b < s->rt_entries && s->rt[b])
			continue;
		ret = qcow2_area_block_write(s, buf, b, start, end, new_rt[b]);
		if (ret < 0)
			goto out;
	}
	/* Clusters of the new area covered by existing blocks. */
	for (uint64_t c = start; c < end; c++) {
		uint64_t b = c >> s->rb_bits;

		if (b < s->rt_entries && s->rt[b]) {
			ret = qcow2_refcount_update(s, c, 1);
			if (ret < 0)
				goto out;
		}
	}
	for (uint64_t e = 0; e < nentries; e++)
		qcow2_put_be64(buf + e * 8, new_rt[e]);
	ret = block_node_pwrite(s->bs->file, buf, tclusters * s->cluster_size,
				start << s->cluster_bits);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret < 0)
		goto out;

	qcow2_put_be64(hdr, start << s->cluster_bits);
	qcow2_put_be32(hdr + 8, (uint32_t)tclusters);
	ret = block_node_pwrite(s->bs->file, hdr, sizeof(hdr), 48);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret < 0)
		goto out;

	qcow2_meta_mark(s, start << s->cluster_bits, tclusters << s->cluster_bits, true);
	for (uint64_t b = start >> s->rb_bits; b <= (end - 1) >> s->rb_bits; b++)
		if (!(b < s->rt_entries && s->rt[b]))
			qcow2_meta_mark(s, new_rt[b], s->cluster_size, true);
	qcow2_meta_mark(s, old_off, old_clusters << s->cluster_bits, false);
	free(s->rt);
	s->rt = new_rt;
	new_rt = NULL;
	s->rt_entries = nentries;
	s->rt_offset = start << s->cluster_bits;
	s->rt_clusters = (uint32_t)tclusters;
	s->host_end = MAX(s->host_end, end << s->cluster_bits);
	log_debug("qcow2 '%s': refcount table grown to %" PRIu64 " clusters", s->name,
		  tclusters);

	/* Nothing points at the old table any more. */
	ret = qcow2_free_range(s, old_off, old_clusters << s->cluster_bits, false);
out:
	free(new_rt);
	free(buf);
	return ret;
}

/*
 * Make sure cluster c has a refcount block.  Returns 1 when cluster c
 * itself was used for a new block (or the table moved), so that the
 * caller looks again, 0 when c is covered, or -errno.
 */
static int qcow2_refblock_ensure(struct qcow2 *s, uint64_t c)
{
	uint64_t i = c >> s->rb_bits;
	int ret;

	if (i >= s->rt_entries) {
		ret = qcow2_rt_grow(s, i + 1);
		return ret < 0 ? ret : 1;
	}
	if (s->rt[i])
		return 0;
	/* Uncounted, so free, yet holding metadata: the image is corrupt. */
	ret = qcow2_check_write(s, c << s->cluster_bits, s->cluster_size,
				"allocation of a refcount block");
	if (ret < 0)
		return ret;
	ret = qcow2_refblock_create(s, i, c);
	return ret < 0 ? ret : 1;
}

/*
 * Clusters past the end of the file are free in a consistent image; a few
 * may be counted (leaks from a crash), but an image that claims endless
 * used clusters there is corrupt, and scanning them would hang.
 */
#define QCOW2_MAX_USED_PAST_END 65536

static int qcow2_check_scan(struct qcow2 *s, uint64_t c)
{
	uint64_t end = DIV_ROUND_UP(s->host_end, s->cluster_size);

	if ((c << s->cluster_bits) >> s->cluster_bits != c ||
	    (c << s->cluster_bits) >= QCOW2_MAX_VIRTUAL_SIZE)
		return -ENOSPC;
	if (c > end + QCOW2_MAX_USED_PAST_END)
		return qcow2_corrupt(s, "more than %d clusters past the end of the file "
				     "are counted as used", QCOW2_MAX_USED_PAST_END);
	return 0;
}

int qcow2_alloc_cluster(struct qcow2 *s, uint64_t *offset)
{
	uint64_t c = MAX(s->free_hint, (uint64_t)1), val;
	int ret;

	for (;;) {
		ret = qcow2_check_scan(s, c);
		if (ret < 0)
			return ret;
		ret = qcow2_refblock_ensure(s, c);
		if (ret < 0)
			return ret;
		if (ret > 0)
			continue;	/* c may now hold a block or a table: look again */
		ret = qcow2_refcount_get(s, c, &val);
		if (ret < 0)
			return ret;
		if (val) {
			c++;
			continue;
		}
		/* Free by its refcount but holding metadata: the image is corrupt. */
		ret = qcow2_check_write(s, c << s->cluster_bits, s->cluster_size,
					"allocation of a cluster");
		if (ret < 0)
			return ret;
		ret = qcow2_file_ensure_len(s, (c + 1) << s->cluster_bits);
		if (ret < 0)
			return ret;
		ret = qcow2_refcount_update(s, c, 1);
		if (ret < 0)
			return ret;
		s->free_hint = c + 1;
		s->host_end = MAX(s->host_end, (c + 1) << s->cluster_bits);
		*offset = c << s->cluster_bits;
		return 0;
	}
}

/*
 * Allocate n contiguous clusters past every used one (tables).  The
 * refcount blocks that the run lacks go right after it, never inside it:
 * a block planted inside the run breaks it, and a run longer than one
 * block covers then needs a new block at every try (issue 12: the file
 * grew without end).  Each new block counts itself and the part of the
 * run it covers; it is complete on disk before the table points at it.
 * Every retry moves the start forward, and the scan is bounded by
 * qcow2_check_scan and the refcount table's size limit.
 */
int qcow2_alloc_contiguous(struct qcow2 *s, uint64_t n, uint64_t *offset)
{
	uint64_t start = DIV_ROUND_UP(s->host_end, s->cluster_size), nblocks, end, val;
	uint64_t first_b, last_b, at, *newb;
	size_t k = 0;
	uint8_t *buf;
	int ret;

	if (!n)
		return -EINVAL;
retry:
	ret = qcow2_check_scan(s, start);
	if (ret < 0)
		return ret;
	/* Blocks for [start, end), where end includes the blocks: a fixed point. */
	nblocks = 0;
	for (;;) {
		uint64_t missing;

		end = start + n + nblocks;
		if (end < start || (end << s->cluster_bits) >> s->cluster_bits != end ||
		    (end << s->cluster_bits) > QCOW2_MAX_VIRTUAL_SIZE)
			return -ENOSPC;
		missing = qcow2_missing_blocks(s, start, end);
		if (missing == nblocks)
			break;
		nblocks = missing;
	}
	first_b = start >> s->rb_bits;
	last_b = (end - 1) >> s->rb_bits;
	if (last_b >= s->rt_entries) {
		/* The table goes past host_end too: everything moves, look again. */
		ret = qcow2_rt_grow(s, last_b + 1);
		if (ret < 0)
			return ret;
		start = MAX(start, DIV_ROUND_UP(s->host_end, s->cluster_size));
		goto retry;
	}
	/* Clusters counted by existing blocks must be free (leaks past the end). */
	for (uint64_t c = start; c < end; c++) {
		if (!s->rt[c >> s->rb_bits])
			continue;
		ret = qcow2_refcount_get(s, c, &val);
		if (ret < 0)
			return ret;
		if (val) {
			start = c + 1;
			goto retry;
		}
	}
	ret = qcow2_check_write(s, start << s->cluster_bits, (end - start) << s->cluster_bits,
				"allocation of a table");
	if (ret < 0)
		return ret;

	ret = qcow2_file_ensure_len(s, end << s->cluster_bits);
	if (ret < 0)
		return ret;
	/* The new blocks, then (after a barrier) the table entries to them. */
	buf = xmalloc(s->cluster_size);
	newb = xcalloc(nblocks + 1, sizeof(*newb));
	at = start + n;
	for (uint64_t b = first_b; b <= last_b && ret == 0; b++) {
		if (s->rt[b])
			continue;
		newb[k++] = b;
		ret = qcow2_area_block_write(s, buf, b, start, end, at++ << s->cluster_bits);
	}
	free(buf);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	for (size_t i = 0; i < k && ret == 0; i++) {
		uint64_t off = (start + n + i) << s->cluster_bits;
		uint8_t be[8];

		qcow2_put_be64(be, off);
		ret = block_node_pwrite(s->bs->file, be, 8, s->rt_offset + newb[i] * 8);
		if (ret == 0) {
			s->rt[newb[i]] = off;
			qcow2_meta_mark(s, off, s->cluster_size, true);
		}
	}
	/* The clusters of the area that blocks from before count. */
	for (uint64_t c = start, j = 0; c < end && ret == 0; c++) {
		uint64_t b = c >> s->rb_bits;

		while (j < k && newb[j] < b)
			j++;
		if (j == k || newb[j] != b)
			ret = qcow2_refcount_update(s, c, 1);
	}
	free(newb);
	if (ret < 0)
		return ret;	/* leaks what was counted: never corrupts */
	s->host_end = MAX(s->host_end, end << s->cluster_bits);
	*offset = start << s->cluster_bits;
	return 0;
}

int qcow2_free_range(struct qcow2 *s, uint64_t offset, uint64_t len, bool discard)
{
	uint64_t first = offset >> s->cluster_bits;
	uint64_t last = (offset + len - 1) >> s->cluster_bits;
	int ret = 0;

	if (!len)
		return 0;
	for (uint64_t c = first; c <= last; c++) {
		uint64_t val;
		int r = qcow2_refcount_update(s, c, -1);

		if (r < 0) {
			ret = r;
			continue;
		}
		if (discard && qcow2_refcount_get(s, c, &val) == 0 && val == 0 &&
		    ((c + 1) << s->cluster_bits) <= s->file_len)
			block_node_discard(s->bs->file, c << s->cluster_bits, s->cluster_size);
	}
	return ret;
}
