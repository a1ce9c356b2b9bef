/*
 * block/qcow2-cluster.c: the guest-to-host mapping of a qcow2 image: the
 * L1 table (kept in memory), L2 tables (through the L2 cache), allocation
 * of new L2 tables and growth of the L1 table, overlap checks against the
 * top-level metadata, and the flush barrier that orders writes.
 *
 * Write ordering: a new L2 table is written (zeroed) and flushed before
 * the L1 entry points at it; a new L1 table is written and flushed before
 * the header points at it, and the old one is freed only after that.
 * Everything but qcow2_flush_barrier runs with the metadata lock held.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "log.h"
#include "util.h"

int qcow2_corrupt(struct qcow2 *s, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("qcow2 '%s' is corrupt: %s", s->name, msg);
	return -EIO;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

bool qcow2_overlaps_metadata(struct qcow2 *s, uint64_t offset, uint64_t len)
{
	return overlap(offset, len, 0, s->cluster_size) ||
	       overlap(offset, len, s->l1_offset, (uint64_t)s->l1_size * 8) ||
	       overlap(offset, len, s->rt_offset, (uint64_t)s->rt_clusters << s->cluster_bits);
}

uint64_t *qcow2_l2_get(struct qcow2 *s, uint64_t l1_index, int *err)
{
	uint64_t l1e, off, *table;
	uint8_t *raw;
	int ret;

	*err = 0;
	if (l1_index >= s->l1_size)
		return NULL;
	l1e = s->l1[l1_index];
	off = l1e & QCOW2_L1E_OFFSET_MASK;
	if (l1e & QCOW2_L1E_RESERVED) {
		*err = qcow2_corrupt(s, "L1 entry %" PRIu64 " (0x%" PRIx64 ") has reserved "
				     "bits set", l1_index, l1e);
		return NULL;
	}
	if (!off)
		return NULL;
	if (off % s->cluster_size || qcow2_overlaps_metadata(s, off, s->cluster_size) ||
	    off > s->file_len || s->cluster_size > s->file_len - off) {
		*err = qcow2_corrupt(s, "L2 table offset 0x%" PRIx64 " of L1 entry %" PRIu64
				     " is unaligned, past the end or over metadata", off, l1_index);
		return NULL;
	}
	table = qcow2_cache_lookup(&s->l2_cache, off);
	if (table)
		return table;
	table = qcow2_cache_insert(&s->l2_cache, off);
	ret = block_node_pread(s->bs->file, table, s->cluster_size, off);
	if (ret < 0) {
		qcow2_cache_drop(&s->l2_cache, off);
		*err = ret;
		return NULL;
	}
	raw = (uint8_t *)table;
	for (uint64_t i = 0; i < s->l2_entries; i++)
		table[i] = qcow2_be64(raw + i * 8);
	return table;
}

int qcow2_l2_set(struct qcow2 *s, uint64_t l1_index, uint64_t l2_index, uint64_t entry)
{
	uint64_t off = s->l1[l1_index] & QCOW2_L1E_OFFSET_MASK, *table;
	uint8_t be[8];
	int err, ret;

	table = qcow2_l2_get(s, l1_index, &err);
	if (!table)
		return err ? err : -EIO;
	qcow2_put_be64(be, entry);
	ret = block_node_pwrite(s->bs->file, be, 8, off + l2_index * 8);
	if (ret < 0) {
		qcow2_cache_drop(&s->l2_cache, off);
		return ret;
	}
	table[l2_index] = entry;
	return 0;
}

int qcow2_l2_ensure(struct qcow2 *s, uint64_t l1_index)
{
	uint64_t off, *table, val;
	uint8_t be[8], *zero;
	int err, ret;

	if (l1_index >= s->l1_size) {
		ret = qcow2_l1_grow(s, l1_index + 1);
		if (ret < 0)
			return ret;
	}
	table = qcow2_l2_get(s, l1_index, &err);
	if (err)
		return err;
	if (table) {
		if (s->l1[l1_index] & QCOW2_OFLAG_COPIED)
			return 0;
		/* Shared with a snapshot unless the refcount says otherwise. */
		off = s->l1[l1_index] & QCOW2_L1E_OFFSET_MASK;
		ret = qcow2_refcount_get(s, off >> s->cluster_bits, &val);
		if (ret < 0)
			return ret;
		if (val != 1) {
			log_warnx("qcow2 '%s': L2 table at 0x%" PRIx64 " is shared (refcount %"
				  PRIu64 "); writing to it is not supported", s->name, off, val);
			return -ENOTSUP;
		}
		return 0;
	}

	ret = qcow2_alloc_cluster(s, &off);
	if (ret < 0)
		return ret;
	zero = xcalloc(1, s->cluster_size);
	ret = block_node_pwrite(s->bs->file, zero, s->cluster_size, off);
	free(zero);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret == 0) {
		qcow2_put_be64(be, off | QCOW2_OFLAG_COPIED);
		ret = block_node_pwrite(s->bs->file, be, 8, s->l1_offset + l1_index * 8);
	}
	if (ret < 0)
		return ret;	/* the cluster leaks: never a dangling pointer */
	s->l1[l1_index] = off | QCOW2_OFLAG_COPIED;
	qcow2_meta_mark(s, off, s->cluster_size, true);
	table = qcow2_cache_insert(&s->l2_cache, off);
	memset(table, 0, s->cluster_size);
	return 0;
}

int qcow2_l1_grow(struct qcow2 *s, uint64_t min_entries)
{
	uint64_t new_size = MAX(min_entries, (uint64_t)s->l1_size + s->l1_size / 2);
	uint64_t bytes, nclusters, off, old_off = s->l1_offset, old_bytes;
	uint64_t *l1;
	uint8_t *buf, hdr[12];
	int ret;

	if (min_entries * 8 > QCOW2_MAX_L1_BYTES)
		return -EFBIG;
	new_size = MIN(new_size, (uint64_t)QCOW2_MAX_L1_BYTES / 8);
	bytes = new_size * 8;
	nclusters = DIV_ROUND_UP(bytes, s->cluster_size);
	new_size = nclusters * s->cluster_size / 8;
	new_size = MIN(new_size, (uint64_t)QCOW2_MAX_L1_BYTES / 8);
	old_bytes = ROUND_UP((uint64_t)s->l1_size * 8, s->cluster_size);

	ret = qcow2_alloc_contiguous(s, nclusters, &off);
	if (ret < 0)
		return ret;
	/* Metadata from now on: leaked rather than reused if the switch fails. */
	qcow2_meta_mark(s, off, nclusters << s->cluster_bits, true);
	buf = xcalloc(nclusters, s->cluster_size);
	for (uint64_t i = 0; i < s->l1_size; i++)
		qcow2_put_be64(buf + i * 8, s->l1[i]);
	ret = block_node_pwrite(s->bs->file, buf, nclusters * s->cluster_size, off);
	free(buf);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret < 0)
		return ret;
	qcow2_put_be32(hdr, (uint32_t)new_size);
	qcow2_put_be64(hdr + 4, off);
	ret = block_node_pwrite(s->bs->file, hdr, sizeof(hdr), 36);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	if (ret < 0)
		return ret;

	l1 = xcalloc(new_size, sizeof(uint64_t));
	memcpy(l1, s->l1, (size_t)s->l1_size * sizeof(uint64_t));
	free(s->l1);
	s->l1 = l1;
	s->l1_offset = off;
	s->l1_size = (uint32_t)new_size;
	if (old_off && old_bytes) {
		qcow2_meta_mark(s, old_off, old_bytes, false);
		return qcow2_free_range(s, old_off, old_bytes, false);
	}
	return 0;
}

int qcow2_flush_barrier(struct qcow2 *s)
{
	uint64_t my, target;
	int ret = 0;

	pthread_mutex_lock(&s->flush_lock);
	my = ++s->flush_req;
	while (s->flush_done < my) {
		if (s->flush_err && s->flush_err_gen >= my) {
			ret = s->flush_err;
			break;
		}
		if (s->flushing) {
			pthread_cond_wait(&s->flush_cond, &s->flush_lock);
			continue;
		}
		/* Everyone registered so far has finished writing: one flush covers them. */
		s->flushing = true;
		target = s->flush_req;
		pthread_mutex_unlock(&s->flush_lock);
		ret = block_node_flush(s->bs->file);
		pthread_mutex_lock(&s->flush_lock);
		s->flushing = false;
		if (ret < 0) {
			s->flush_err = ret;
			s->flush_err_gen = target;
		} else {
			s->flush_done = target;
		}
		pthread_cond_broadcast(&s->flush_cond);
		if (ret < 0)
			break;
	}
	pthread_mutex_unlock(&s->flush_lock);
	return ret;
}
