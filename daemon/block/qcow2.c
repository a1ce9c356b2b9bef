/*
 * block/qcow2.c: the qcow2 format driver: a node over a `file` child that
 * maps guest offsets through L1/L2 tables to host clusters, with an
 * optional read-only backing chain.  This file holds the driver table:
 * open (header, tables, caches, backing chain), query, and the I/O
 * callbacks; the format's pieces live in block/qcow2-*.c (see
 * block/qcow2.h, which also states the consistency model: refcounts are
 * always consistent, the dirty bit is never used).
 *
 * Concurrency: one mutex (s->lock) protects the metadata (L1, refcount
 * table, both caches, allocation state); it is never held across guest
 * data I/O.  A writer that must allocate registers the guest cluster range
 * it works on (s->allocs) so that two writers never allocate the same
 * guest cluster; the second one waits and then finds the cluster
 * allocated.  s->free_lock is held shared by every read and write and
 * exclusively by whatever frees clusters, so no request in flight can
 * read or write a host cluster after it was freed and reused.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "log.h"
#include "util.h"

enum qcow2_type {
	QCOW2_UNALLOC,
	QCOW2_ZERO,
	QCOW2_NORMAL,
	QCOW2_COMPRESSED,
};

/* A run of guest bytes with the same mapping. */
struct qcow2_run {
	enum qcow2_type type;
	uint64_t len;
	uint64_t host;		/* NORMAL: host offset of the first byte */
	uint64_t l2e;		/* entry of the first cluster */
	uint64_t file_len;
};

/* Most qcow2 images opening one inside the other (a backing chain). */
#define QCOW2_MAX_CHAIN_DEPTH 64

static uint64_t qcow2_size(struct qcow2 *s)
{
	return __atomic_load_n(&s->size, __ATOMIC_ACQUIRE);
}

/* Classify an L2 entry; -EIO on a corrupt one. */
static int qcow2_classify(struct qcow2 *s, uint64_t l2e, uint64_t *host)
{
	uint64_t off;

	*host = 0;
	if (l2e & QCOW2_OFLAG_COMPRESSED) {
		if (l2e & QCOW2_OFLAG_COPIED)
			return qcow2_corrupt(s, "compressed L2 entry 0x%" PRIx64
					     " has the COPIED flag", l2e);
		*host = l2e & s->coffset_mask;
		return QCOW2_COMPRESSED;
	}
	off = l2e & QCOW2_L2E_OFFSET_MASK;
	if (l2e & QCOW2_L2E_RESERVED)
		return qcow2_corrupt(s, "L2 entry 0x%" PRIx64 " has reserved bits set "
				     "or an unaligned offset", l2e);
	if (off % s->cluster_size)
		return qcow2_corrupt(s, "L2 entry 0x%" PRIx64 " points at an unaligned "
				     "cluster", l2e);
	if (l2e & QCOW2_OFLAG_ZERO) {
		if (s->hdr.version < 3)
			return qcow2_corrupt(s, "L2 entry 0x%" PRIx64 " has the zero flag "
					     "in a version 2 image", l2e);
		*host = off;
		return QCOW2_ZERO;
	}
	if (off) {
		if (off < s->cluster_size)
			return qcow2_corrupt(s, "L2 entry 0x%" PRIx64 " points at the header",
					     l2e);
		*host = off;
		return QCOW2_NORMAL;
	}
	if (l2e & QCOW2_OFLAG_COPIED)
		return qcow2_corrupt(s, "L2 entry 0x%" PRIx64 " has the COPIED flag "
				     "without an offset", l2e);
	return QCOW2_UNALLOC;
}

/*
 * Describe the run of guest bytes at [off, off+len) that share a mapping
 * (same type; contiguous host clusters with the same COPIED flag for
 * NORMAL; one cluster for COMPRESSED).  Lock held.
 */
static int qcow2_map_run(struct qcow2 *s, uint64_t off, uint64_t len, struct qcow2_run *r)
{
	uint64_t cl = off >> s->cluster_bits, in = off & (s->cluster_size - 1);
	uint64_t l1i = cl >> s->l2_bits, l2i = cl & (s->l2_entries - 1);
	uint64_t max, n, host0, *table;
	int err, type;

	table = qcow2_l2_get(s, l1i, &err);
	if (err)
		return err;
	max = MIN(len, ((s->l2_entries - l2i) << s->cluster_bits) - in);
	r->l2e = table ? table[l2i] : 0;
	type = qcow2_classify(s, r->l2e, &host0);
	if (type < 0)
		return type;
	r->type = type;
	r->file_len = s->file_len;
	r->host = host0 + in;
	n = MIN(s->cluster_size - in, max);
	if (type != QCOW2_COMPRESSED) {
		for (uint64_t k = 1; n < max; k++) {
			uint64_t e = table ? table[l2i + k] : 0, h;
			int t = qcow2_classify(s, e, &h);

			if (t != type)
				break;
			if (type == QCOW2_NORMAL &&
			    (h != host0 + (k << s->cluster_bits) ||
			     (e & QCOW2_OFLAG_COPIED) != (r->l2e & QCOW2_OFLAG_COPIED)))
				break;
			n += MIN(s->cluster_size, max - n);
		}
	}
	r->len = n;
	return 0;
}

/* Read host bytes, as zeroes past the end of the file child. */
static int qcow2_host_read(struct qcow2 *s, void *buf, uint64_t len, uint64_t off,
			   uint64_t file_len)
{
	uint64_t n = off >= file_len ? 0 : MIN(len, file_len - off);
	int ret = 0;

	if (n)
		ret = block_node_pread(s->bs->file, buf, n, off);
	if (n < len)
		memset((char *)buf + n, 0, len - n);
	return ret;
}

/* Guest bytes that this image does not hold: from the backing chain or zero. */
static int qcow2_backing_read(struct qcow2 *s, void *buf, uint64_t len, uint64_t off)
{
	int64_t blen;
	uint64_t n = 0;
	int ret = 0;

	if (s->bs->backing) {
		blen = block_node_length(s->bs->backing);
		if (blen < 0)
			return (int)blen;
		if (off < (uint64_t)blen)
			n = MIN(len, (uint64_t)blen - off);
		if (n)
			ret = block_node_pread(s->bs->backing, buf, n, off);
	}
	if (n < len)
		memset((char *)buf + n, 0, len - n);
	return ret;
}

/* Inflate the compressed cluster of entry l2e into cluster (cluster_size bytes). */
static int qcow2_read_compressed(struct qcow2 *s, uint64_t l2e, uint64_t file_len,
				 uint8_t *cluster)
{
	uint64_t coff = l2e & s->coffset_mask;
	uint64_t nsec = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
	uint64_t csize = nsec * 512 - (coff & 511);
	uint8_t *cbuf;
	int ret;

	if (coff < s->cluster_size || coff >= file_len)
		return qcow2_corrupt(s, "compressed cluster at 0x%" PRIx64 " is outside "
				     "the file", coff);
	csize = MIN(csize, file_len - coff);
	cbuf = xmalloc(csize);
	ret = block_node_pread(s->bs->file, cbuf, csize, coff);
	if (ret == 0) {
		ret = qcow2_decompress(s->hdr.compression_type, cbuf, csize, cluster,
				       s->cluster_size);
		if (ret == -EIO)
			ret = qcow2_corrupt(s, "compressed cluster at 0x%" PRIx64 " does not "
					    "inflate to a whole cluster", coff);
	}
	free(cbuf);
	return ret;
}

/* Guest read of one run; no lock held. */
static int qcow2_read_run(struct qcow2 *s, struct qcow2_run *r, uint8_t *buf, uint64_t off)
{
	uint8_t *cluster;
	int ret;

	switch (r->type) {
	case QCOW2_NORMAL:
		return qcow2_host_read(s, buf, r->len, r->host, r->file_len);
	case QCOW2_ZERO:
		memset(buf, 0, r->len);
		return 0;
	case QCOW2_UNALLOC:
		return qcow2_backing_read(s, buf, r->len, off);
	case QCOW2_COMPRESSED:
		cluster = xmalloc(s->cluster_size);
		ret = qcow2_read_compressed(s, r->l2e, r->file_len, cluster);
		if (ret == 0)
			memcpy(buf, cluster + (off & (s->cluster_size - 1)), r->len);
		free(cluster);
		return ret;
	}
	return -EIO;
}

static int qcow2_do_pread(struct qcow2 *s, uint8_t *buf, uint64_t len, uint64_t off)
{
	while (len) {
		struct qcow2_run r;
		int ret;

		pthread_mutex_lock(&s->lock);
		ret = qcow2_map_run(s, off, len, &r);
		pthread_mutex_unlock(&s->lock);
		if (ret < 0)
			return ret;
		ret = qcow2_read_run(s, &r, buf, off);
		if (ret < 0)
			return ret;
		buf += r.len;
		off += r.len;
		len -= r.len;
	}
	return 0;
}

static int qcow2_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	pthread_rwlock_rdlock(&s->free_lock);
	ret = qcow2_do_pread(s, buf, len, offset);
	pthread_rwlock_unlock(&s->free_lock);
	return ret;
}

/* ---- writes ---- */

/*
 * The spec lets a program that does not maintain an autoclear feature
 * (bitmaps) write to the image only after clearing its bit, which marks
 * the bitmaps inconsistent.  Done at the first modification, not at open,
 * so that a writable export nobody writes to leaves them intact.
 */
/*
 * Every modification starts here: refused on a read-only image, and the
 * first one clears the autoclear bits (bitmaps become inconsistent).
 */
static int qcow2_before_modify(struct qcow2 *s)
{
	uint8_t zero[8] = { 0 };
	int ret = 0;

	if (!s->writable)
		return -EROFS;
	/* As QEMU: an image marked corrupt is not written any more. */
	if (__atomic_load_n(&s->corrupt, __ATOMIC_ACQUIRE))
		return -EIO;
	if (!__atomic_load_n(&s->autoclear_pending, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&s->lock);
	if (s->autoclear_pending) {
		ret = block_node_pwrite(s->bs->file, zero, 8, 88);
		if (ret == 0)
			ret = qcow2_flush_barrier(s);
		if (ret == 0) {
			log_info("qcow2 '%s': autoclear features 0x%" PRIx64 " cleared before "
				 "the first write (bitmaps are now inconsistent)", s->name,
				 s->hdr.autoclear_features);
			s->hdr.autoclear_features = 0;
			__atomic_store_n(&s->autoclear_pending, false, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* A cluster rewritten to a new place; its L2 entry is set after the barrier. */
struct qcow2_pending {
	uint64_t cluster;	/* guest cluster index */
	uint64_t new_l2e;
	uint64_t old_l2e;	/* to free afterwards (0: nothing) */
};

/* Wait until no other writer allocates in [first, last], then claim it. Lock held. */
static void qcow2_claim_range(struct qcow2 *s, struct qcow2_alloc_range *ar,
			      uint64_t first, uint64_t last)
{
	struct qcow2_alloc_range *o;

	ar->first = first;
	ar->last = last;
again:
	TAILQ_FOREACH(o, &s->allocs, next) {
		if (o->first <= last && first <= o->last) {
			pthread_cond_wait(&s->alloc_cond, &s->lock);
			goto again;
		}
	}
	TAILQ_INSERT_TAIL(&s->allocs, ar, next);
}

/* Host range a (non-zero) entry holds a reference on, for freeing. */
static void qcow2_entry_extent(struct qcow2 *s, uint64_t l2e, uint64_t *off, uint64_t *len)
{
	*off = 0;
	*len = 0;
	if (l2e & QCOW2_OFLAG_COMPRESSED) {
		uint64_t coff = l2e & s->coffset_mask;
		uint64_t nsec = ((l2e >> s->csize_shift) & s->csize_mask) + 1;

		*off = coff;
		*len = nsec * 512 - (coff & 511);
		return;
	}
	*off = l2e & QCOW2_L2E_OFFSET_MASK;
	if (*off)
		*len = s->cluster_size;
}

/*
 * Drop the references of replaced entries.  Lock held, free_lock
 * exclusive.  punch: also punch the freed clusters out of the file.
 */
static int qcow2_free_entries(struct qcow2 *s, const uint64_t *entries, size_t n,
			      bool punch)
{
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t off, len;
		int r;

		qcow2_entry_extent(s, entries[i], &off, &len);
		if (!len)
			continue;
		/*
		 * A data entry that points into metadata: dropping its reference
		 * would leave the table with a refcount of 0, free for reuse.
		 */
		r = qcow2_check_write(s, off, len, "free of a data cluster");
		if (r == 0)
			r = qcow2_free_range(s, off, len, punch);
		if (r < 0)
			ret = r;
	}
	return ret;
}

/*
 * Prepare the rewrite of one guest cluster that is not a plain writable
 * cluster: allocate (or reuse) its host cluster and write its whole new
 * contents (old contents with buf over [in, in+n)).  Called with the lock
 * held and the cluster claimed; drops and retakes the lock around I/O.
 * Sets *pend->new_l2e == 0 when the cluster turned out to be plain
 * writable (then the caller writes it directly).
 */
static int qcow2_rewrite_cluster(struct qcow2 *s, uint64_t cl, const uint8_t *buf,
				 uint64_t in, uint64_t n, struct qcow2_pending *pend)
{
	uint64_t l1i = cl >> s->l2_bits, l2i = cl & (s->l2_entries - 1);
	uint64_t *table, l2e, host, target, val, file_len = s->file_len;
	uint8_t *data = NULL;
	bool reuse = false;
	int ret, err, type;

	pend->cluster = cl;
	pend->new_l2e = 0;
	pend->old_l2e = 0;
	ret = qcow2_l2_ensure(s, l1i);
	if (ret < 0)
		return ret;
	table = qcow2_l2_get(s, l1i, &err);
	if (!table)
		return err ? err : -EIO;
	l2e = table[l2i];
	type = qcow2_classify(s, l2e, &host);
	if (type < 0)
		return type;
	if (type == QCOW2_NORMAL && (l2e & QCOW2_OFLAG_COPIED))
		return 0;	/* plain writable now */
	if (type == QCOW2_NORMAL) {
		/* No COPIED flag: shared unless its refcount says 1. */
		ret = qcow2_refcount_get(s, host >> s->cluster_bits, &val);
		if (ret < 0)
			return ret;
		if (val == 1) {
			ret = qcow2_l2_set(s, l1i, l2i, l2e | QCOW2_OFLAG_COPIED);
			return ret;
		}
	}
	if (type == QCOW2_ZERO && host && (l2e & QCOW2_OFLAG_COPIED)) {
		/* A preallocated zero cluster: write it in place. */
		ret = qcow2_check_write(s, host, s->cluster_size, "write of guest data");
		if (ret < 0)
			return ret;
		target = host;
		reuse = true;
	} else {
		ret = qcow2_alloc_cluster(s, &target);
		if (ret < 0)
			return ret;
		file_len = s->file_len;
	}
	pend->new_l2e = target | QCOW2_OFLAG_COPIED;
	pend->old_l2e = reuse ? 0 : l2e;
	pthread_mutex_unlock(&s->lock);

	data = xmalloc(s->cluster_size);
	ret = 0;
	if (n < s->cluster_size) {
		/* Copy-on-write: the rest of the cluster keeps what reads returned. */
		switch (type) {
		case QCOW2_UNALLOC:
			ret = qcow2_backing_read(s, data, s->cluster_size,
						 cl << s->cluster_bits);
			break;
		case QCOW2_ZERO:
			memset(data, 0, s->cluster_size);
			break;
		case QCOW2_NORMAL:
			ret = qcow2_host_read(s, data, s->cluster_size, host, file_len);
			break;
		case QCOW2_COMPRESSED:
			ret = qcow2_read_compressed(s, l2e, file_len, data);
			break;
		}
	}
	if (ret == 0) {
		memcpy(data + in, buf, n);
		ret = block_node_pwrite(s->bs->file, data, s->cluster_size, target);
	}
	free(data);
	pthread_mutex_lock(&s->lock);
	if (ret < 0) {
		/* Nothing points at a new cluster yet: give it back. */
		if (!reuse)
			qcow2_free_range(s, target, s->cluster_size, false);
		pend->new_l2e = 0;
		pend->old_l2e = 0;
	}
	return ret;
}

/*
 * The write path.  excl: the caller holds free_lock exclusively (truncate),
 * else shared.
 */
static int qcow2_do_pwrite(struct qcow2 *s, const uint8_t *buf, uint64_t len,
			   uint64_t off, bool excl)
{
	uint64_t last = (off + len - 1) >> s->cluster_bits;
	struct qcow2_pending *pend = NULL;
	struct qcow2_alloc_range ar;
	bool claimed = false;
	size_t npend = 0;
	uint64_t *frees = NULL;
	size_t nfrees = 0;
	int ret = 0;

	if (!len)
		return 0;
	pthread_mutex_lock(&s->lock);
	while (len) {
		uint64_t cl = off >> s->cluster_bits, in = off & (s->cluster_size - 1);
		struct qcow2_run r;

		ret = qcow2_map_run(s, off, len, &r);
		if (ret < 0)
			break;
		if (r.type == QCOW2_NORMAL && (r.l2e & QCOW2_OFLAG_COPIED)) {
			ret = qcow2_check_write(s, r.host, r.len, "write of guest data");
			if (ret < 0)
				break;
			pthread_mutex_unlock(&s->lock);
			ret = block_node_pwrite(s->bs->file, buf, r.len, r.host);
			pthread_mutex_lock(&s->lock);
			if (ret < 0)
				break;
			buf += r.len;
			off += r.len;
			len -= r.len;
			continue;
		}
		/* Needs allocation or COW: claim what is left of the request. */
		if (!claimed) {
			qcow2_claim_range(s, &ar, cl, last);
			claimed = true;
			pend = xcalloc(last - cl + 1, sizeof(*pend));
			continue;	/* another writer may have allocated it meanwhile */
		}
		{
			uint64_t n = MIN(len, s->cluster_size - in);
			struct qcow2_pending *p = &pend[npend];

			ret = qcow2_rewrite_cluster(s, cl, buf, in, n, p);
			if (ret < 0)
				break;
			if (!p->new_l2e)
				continue;	/* became plain writable: write directly */
			npend++;
			buf += n;
			off += n;
			len -= n;
		}
	}

	if (npend) {
		int r;

		/* Data and refcounts must be durable before the L2 entries. */
		pthread_mutex_unlock(&s->lock);
		r = qcow2_flush_barrier(s);
		pthread_mutex_lock(&s->lock);
		if (r < 0) {
			/* Leak the new clusters rather than risk pointing at them. */
			ret = r;
			npend = 0;
		}
		frees = xcalloc(npend ? npend : 1, sizeof(*frees));
		for (size_t i = 0; i < npend; i++) {
			uint64_t cl = pend[i].cluster;

			r = qcow2_l2_set(s, cl >> s->l2_bits, cl & (s->l2_entries - 1),
					 pend[i].new_l2e);
			if (r < 0) {
				ret = r;
				continue;
			}
			if (pend[i].old_l2e)
				frees[nfrees++] = pend[i].old_l2e;
		}
	}
	if (claimed) {
		TAILQ_REMOVE(&s->allocs, &ar, next);
		pthread_cond_broadcast(&s->alloc_cond);
	}
	pthread_mutex_unlock(&s->lock);
	free(pend);

	if (nfrees) {
		/*
		 * The old clusters (compressed or shared) are unreferenced now;
		 * the L2 update must be durable before their refcounts drop, and
		 * no reader may still be using them.
		 */
		int r = qcow2_flush_barrier(s);

		if (r == 0) {
			if (!excl) {
				pthread_rwlock_unlock(&s->free_lock);
				pthread_rwlock_wrlock(&s->free_lock);
			}
			pthread_mutex_lock(&s->lock);
			r = qcow2_free_entries(s, frees, nfrees, false);
			pthread_mutex_unlock(&s->lock);
			if (!excl) {
				pthread_rwlock_unlock(&s->free_lock);
				pthread_rwlock_rdlock(&s->free_lock);
			}
		}
		if (r < 0)
			log_warnx("qcow2 '%s': could not free replaced clusters (leaked): %s",
				  s->name, strerror(-r));
	}
	free(frees);
	return ret;
}

static int qcow2_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	ret = qcow2_before_modify(s);
	if (ret < 0)
		return ret;
	pthread_rwlock_rdlock(&s->free_lock);
	ret = qcow2_do_pwrite(s, buf, len, offset, false);
	pthread_rwlock_unlock(&s->free_lock);
	return ret;
}

static int qcow2_flush(struct block_node *bs)
{
	struct qcow2 *s = bs->opaque;

	if (!s->writable)
		return 0;
	return block_node_flush(bs->file);
}

/* ---- zeroes, discard, resize ---- */

enum qcow2_zero_mode {
	QCOW2_MODE_ZERO,	/* reads return zeroes; keep allocations */
	QCOW2_MODE_ZERO_UNMAP,	/* reads return zeroes; free allocations */
	QCOW2_MODE_DISCARD,	/* free; reads may return backing data */
	QCOW2_MODE_DEALLOCATE,	/* shrink: entries become unallocated */
};

/*
 * Change the L2 entries of whole guest clusters [cl, cl+n) for mode.
 * free_lock held exclusively.  Returns -ENOTSUP when the format cannot
 * express zeroes here (version 2 over a backing file): the caller then
 * writes zeroes.
 */
static int qcow2_zero_clusters(struct qcow2 *s, uint64_t cl, uint64_t n,
			       enum qcow2_zero_mode mode)
{
	uint64_t *frees = xcalloc(MIN(n, s->l2_entries) + 1, sizeof(uint64_t));
	int ret = 0;

	if ((mode == QCOW2_MODE_ZERO || mode == QCOW2_MODE_ZERO_UNMAP) &&
	    s->hdr.version < 3 && s->has_backing) {
		free(frees);
		return -ENOTSUP;
	}
	pthread_mutex_lock(&s->lock);
	while (n && ret == 0) {
		uint64_t l1i = cl >> s->l2_bits, l2i = cl & (s->l2_entries - 1);
		uint64_t cnt = MIN(n, s->l2_entries - l2i), *table;
		size_t nfrees = 0;
		int err;

		table = qcow2_l2_get(s, l1i, &err);
		if (err) {
			ret = err;
			break;
		}
		/*
		 * No L2 table: every entry is unallocated already, and only zeroes
		 * over a backing file need one.  Skipping it whole keeps a shrink
		 * or discard of a huge sparse range from walking every cluster.
		 */
		if (!table && !((mode == QCOW2_MODE_ZERO || mode == QCOW2_MODE_ZERO_UNMAP) &&
				 s->hdr.version >= 3 && s->has_backing)) {
			cl += cnt;
			n -= cnt;
			continue;
		}
		for (uint64_t k = 0; k < cnt && ret == 0; k++) {
			uint64_t e = table ? table[l2i + k] : 0, host, ne;
			int type = qcow2_classify(s, e, &host);

			if (type < 0) {
				ret = type;
				break;
			}
			switch (mode) {
			case QCOW2_MODE_ZERO:
			case QCOW2_MODE_ZERO_UNMAP:
				if (s->hdr.version < 3) {
					/* No backing: unallocated reads as zeroes. */
					ne = 0;
				} else if (type == QCOW2_UNALLOC && !s->has_backing) {
					continue;
				} else if (mode == QCOW2_MODE_ZERO && host &&
					   (type == QCOW2_NORMAL || type == QCOW2_ZERO) &&
					   (e & QCOW2_OFLAG_COPIED)) {
					ne = host | QCOW2_OFLAG_COPIED | QCOW2_OFLAG_ZERO;
				} else {
					ne = QCOW2_OFLAG_ZERO;
				}
				break;
			case QCOW2_MODE_DISCARD:
				if (type == QCOW2_UNALLOC)
					continue;
				ne = s->hdr.version >= 3 && s->has_backing ? QCOW2_OFLAG_ZERO : 0;
				break;
			default:
				ne = 0;
				break;
			}
			if (ne == e)
				continue;
			if (!table) {
				ret = qcow2_l2_ensure(s, l1i);
				if (ret < 0)
					break;
				table = qcow2_l2_get(s, l1i, &err);
				if (!table) {
					ret = err ? err : -EIO;
					break;
				}
			}
			ret = qcow2_l2_set(s, l1i, l2i + k, ne);
			if (ret < 0)
				break;
			{
				uint64_t eo, el;

				qcow2_entry_extent(s, e, &eo, &el);
				if (el && !(ne & QCOW2_L2E_OFFSET_MASK))
					frees[nfrees++] = e;
			}
		}
		if (nfrees) {
			/* The entries must be durable before the refcounts drop. */
			int r = qcow2_flush_barrier(s);

			if (r == 0)
				r = qcow2_free_entries(s, frees, nfrees, s->pass_discard);
			if (r < 0 && ret == 0)
				ret = r;
		}
		cl += cnt;
		n -= cnt;
	}
	pthread_mutex_unlock(&s->lock);
	free(frees);
	return ret;
}

/* A cluster of zeroes, whatever the cluster size. */
static const uint8_t qcow2_zeroes[1 << QCOW2_MAX_CLUSTER_BITS];

/* Write literal zeroes over [off, off+len); excl as for qcow2_do_pwrite. */
static int qcow2_write_zero_bytes(struct qcow2 *s, uint64_t off, uint64_t len, bool excl)
{
	while (len) {
		uint64_t n = MIN(len, s->cluster_size - (off & (s->cluster_size - 1)));
		int ret = qcow2_do_pwrite(s, qcow2_zeroes, n, off, excl);

		if (ret < 0)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

/* Zeroes (or discard) over a byte range; free_lock held exclusively. */
static int qcow2_do_zero(struct qcow2 *s, uint64_t off, uint64_t len, enum qcow2_zero_mode mode)
{
	uint64_t start = ROUND_UP(off, s->cluster_size);
	uint64_t end = ROUND_DOWN(off + len, s->cluster_size);
	uint64_t size = qcow2_size(s);
	int ret;

	/* A cluster that ends at the end of the image counts as whole. */
	if (off + len == size)
		end = ROUND_UP(size, s->cluster_size);
	if (start >= end) {
		if (mode == QCOW2_MODE_DISCARD)
			return 0;
		return qcow2_write_zero_bytes(s, off, len, true);
	}
	if (mode != QCOW2_MODE_DISCARD) {
		ret = qcow2_write_zero_bytes(s, off, start - off, true);
		if (ret == 0 && off + len > end)
			ret = qcow2_write_zero_bytes(s, end, off + len - end, true);
		if (ret < 0)
			return ret;
	}
	ret = qcow2_zero_clusters(s, start >> s->cluster_bits,
				  (end - start) >> s->cluster_bits, mode);
	if (ret == -ENOTSUP)
		ret = qcow2_write_zero_bytes(s, start, MIN(end, off + len) - start, true);
	return ret;
}

static int qcow2_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len, int flags)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	ret = qcow2_before_modify(s);
	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&s->free_lock);
	ret = qcow2_do_zero(s, offset, len, (flags & BLOCK_ZERO_MAY_UNMAP) ?
			    QCOW2_MODE_ZERO_UNMAP : QCOW2_MODE_ZERO);
	pthread_rwlock_unlock(&s->free_lock);
	return ret;
}

static int qcow2_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	struct qcow2 *s = bs->opaque;
	int ret;

	ret = qcow2_before_modify(s);
	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&s->free_lock);
	ret = qcow2_do_zero(s, offset, len, QCOW2_MODE_DISCARD);
	pthread_rwlock_unlock(&s->free_lock);
	return ret;
}

static int qcow2_write_size(struct qcow2 *s, uint64_t size)
{
	uint8_t be[8];
	int ret;

	qcow2_put_be64(be, size);
	ret = block_node_pwrite(s->bs->file, be, 8, 24);
	if (ret == 0)
		ret = qcow2_flush_barrier(s);
	return ret;
}

static int qcow2_truncate(struct block_node *bs, uint64_t length)
{
	struct qcow2 *s = bs->opaque;
	uint64_t old, need;
	int ret = 0;

	/* Read-only is the first answer, before the size is looked at. */
	if (!s->writable)
		return -EROFS;
	/* qcow2 sizes are whole sectors; QEMU refuses any other size (EINVAL). */
	if (length % 512) {
		log_warnx("qcow2 '%s': cannot resize to %" PRIu64 " bytes: the new size must "
			  "be a multiple of 512", s->name, length);
		return -EINVAL;
	}
	if (length > QCOW2_MAX_VIRTUAL_SIZE)
		return -EFBIG;
	ret = qcow2_before_modify(s);
	if (ret < 0)
		return ret;
	pthread_rwlock_wrlock(&s->free_lock);
	old = qcow2_size(s);
	if (length > old) {
		int64_t blen = s->bs->backing ? block_node_length(s->bs->backing) : 0;
		uint64_t zero_end = old;

		need = qcow2_l1_entries_for(length, s->cluster_bits);
		pthread_mutex_lock(&s->lock);
		if (need > s->l1_size)
			ret = qcow2_l1_grow(s, need);
		pthread_mutex_unlock(&s->lock);
		/*
		 * The new area must read as zeroes: the tail of the old last
		 * cluster may hold stale bytes from before a shrink, and a
		 * longer backing file must not show through.
		 */
		if (old % s->cluster_size)
			zero_end = MIN(length, ROUND_UP(old, s->cluster_size));
		if (blen > 0 && (uint64_t)blen > old)
			zero_end = MAX(zero_end, MIN(length, (uint64_t)blen));
		if (ret == 0 && zero_end > old) {
			__atomic_store_n(&s->size, zero_end, __ATOMIC_RELEASE);
			ret = qcow2_do_zero(s, old, zero_end - old, QCOW2_MODE_ZERO_UNMAP);
			__atomic_store_n(&s->size, old, __ATOMIC_RELEASE);
		}
		if (ret == 0)
			ret = qcow2_write_size(s, length);
		if (ret == 0)
			__atomic_store_n(&s->size, length, __ATOMIC_RELEASE);
	} else if (length < old) {
		ret = qcow2_write_size(s, length);
		if (ret == 0) {
			uint64_t from = ROUND_UP(length, s->cluster_size);
			uint64_t to = ROUND_UP(old, s->cluster_size);

			__atomic_store_n(&s->size, length, __ATOMIC_RELEASE);
			if (to > from)
				ret = qcow2_zero_clusters(s, from >> s->cluster_bits,
							  (to - from) >> s->cluster_bits,
							  QCOW2_MODE_DEALLOCATE);
			if (ret < 0) {
				log_warnx("qcow2 '%s': clusters past the new end could not be "
					  "freed (leaked): %s", s->name, strerror(-ret));
				ret = 0;
			}
		}
	}
	pthread_rwlock_unlock(&s->free_lock);
	return ret;
}

/* ---- status, length ---- */

static int qcow2_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			      uint64_t *pnum)
{
	struct qcow2 *s = bs->opaque;
	struct qcow2_run r;
	int64_t blen;
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = qcow2_map_run(s, offset, len, &r);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0)
		return ret;
	*pnum = r.len;
	switch (r.type) {
	case QCOW2_NORMAL:
	case QCOW2_COMPRESSED:
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	case QCOW2_ZERO:
		return BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED;
	case QCOW2_UNALLOC:
		break;
	}
	if (!bs->backing)
		return BLOCK_STATUS_ZERO;
	blen = block_node_length(bs->backing);
	if (blen < 0)
		return (int)blen;
	if (offset >= (uint64_t)blen)
		return BLOCK_STATUS_ZERO;
	ret = block_node_block_status(bs->backing, offset, MIN(r.len, (uint64_t)blen - offset),
				      pnum);
	if (ret < 0)
		return ret;
	return ret & (BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO);
}

static int64_t qcow2_get_length(struct block_node *bs)
{
	return (int64_t)qcow2_size(bs->opaque);
}

static int64_t qcow2_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

/* ---- open / close / query ---- */

static int qcow2_opt_size(json_t *options, const char *key, uint64_t *val,
			  struct error **errp)
{
	json_t *v = json_object_get(options, key);

	if (!v)
		return 0;
	if (json_integer_value(v) < 0) {
		error_setg(errp, "'%s' must not be negative", key);
		return -1;
	}
	*val = (uint64_t)json_integer_value(v);
	return 1;
}

static int qcow2_setup_caches(struct qcow2 *s, json_t *options, struct error **errp)
{
	uint64_t l2_bytes = 0, rb_bytes = 0, total = 0, entry = 0;
	uint64_t cover = qcow2_l1_entries_for(s->hdr.size, s->cluster_bits) * s->cluster_size;
	int has_l2, has_rb, has_total;
	size_t nl2, nrb;

	if ((has_l2 = qcow2_opt_size(options, "l2-cache-size", &l2_bytes, errp)) < 0 ||
	    (has_rb = qcow2_opt_size(options, "refcount-cache-size", &rb_bytes, errp)) < 0 ||
	    (has_total = qcow2_opt_size(options, "cache-size", &total, errp)) < 0 ||
	    qcow2_opt_size(options, "l2-cache-entry-size", &entry, errp) < 0)
		return -1;
	/*
	 * l2-cache-entry-size is accepted for QEMU compatibility; entries are
	 * always whole L2 tables here, so only the valid range is checked.
	 */
	if (entry && (entry < 512 || entry > s->cluster_size || (entry & (entry - 1)))) {
		error_setg(errp, "l2-cache-entry-size must be a power of two between 512 "
			   "and the cluster size (%" PRIu64 ")", s->cluster_size);
		return -1;
	}
	/* Defaults as QEMU: L2 cache covering the whole disk, up to 32 MiB. */
	if (!has_l2)
		l2_bytes = MIN(cover, (uint64_t)32 << 20);
	if (!has_rb)
		rb_bytes = MAX((uint64_t)256 << 10, 4 * s->cluster_size);
	if (has_total && !has_l2)
		l2_bytes = total > rb_bytes ? total - rb_bytes : total / 2;
	if (has_total && has_l2 && has_rb && l2_bytes + rb_bytes > total) {
		error_setg(errp, "l2-cache-size + refcount-cache-size exceed cache-size");
		return -1;
	}
	nl2 = (size_t)MIN(MAX(l2_bytes / s->cluster_size, (uint64_t)2), (uint64_t)1 << 20);
	nrb = (size_t)MIN(MAX(rb_bytes / s->cluster_size, (uint64_t)2), (uint64_t)1 << 20);
	qcow2_cache_init(&s->l2_cache, s->cluster_size, nl2);
	qcow2_cache_init(&s->rb_cache, s->cluster_size, nrb);
	return 0;
}

/* Read a table of n big-endian uint64_t at off into a host-order array. */
static int qcow2_read_table(struct qcow2 *s, uint64_t off, uint64_t n, uint64_t **out,
			    struct error **errp)
{
	uint64_t *t = xcalloc(n ? n : 1, sizeof(uint64_t));
	int ret = n ? block_node_pread(s->bs->file, t, n * 8, off) : 0;

	if (ret < 0) {
		error_setg_errno(errp, -ret, "Failed to read table at offset %" PRIu64
				 " of '%s'", off, s->name);
		free(t);
		return -1;
	}
	for (uint64_t i = 0; i < n; i++)
		t[i] = qcow2_be64((uint8_t *)&t[i]);
	*out = t;
	return 0;
}

/* "dir/of/image" + "name" unless name is absolute. */
static char *qcow2_backing_path(const char *image, const char *name)
{
	char *copy, *path;

	if (name[0] == '/' || !image)
		return xstrdup(name);
	copy = xstrdup(image);
	path = xasprintf("%s/%s", dirname(copy), name);
	free(copy);
	return path;
}

/* Format of a backing file without a format extension: qcow2 magic or raw. */
static int qcow2_probe_format(struct block_node *bs, const char *path, const char **fmt,
			      struct error **errp)
{
	json_t *opts = json_pack("{s:s, s:s, s:b}", "driver", "file", "filename", path,
				 "read-only", 1);
	struct block_node *f = block_node_open_child(bs, opts, "backing", true,
						     BLOCK_OPEN_FROM_IMAGE, errp);
	uint8_t magic[4];
	int64_t len;

	json_decref(opts);
	if (!f)
		return -1;
	len = block_node_length(f);
	*fmt = "raw";
	if (len >= 4 && block_node_pread(f, magic, 4, 0) == 0 &&
	    qcow2_be32(magic) == QCOW2_MAGIC)
		*fmt = "qcow2";
	block_node_unref(f);
	return 0;
}

/*
 * The qcow2 images opening now from bs up (bs included), one inside the
 * other: how many there are, and whether one of them is the file `real`
 * (a backing chain that loops back).
 */
static int qcow2_chain_above(struct block_node *bs, const char *real, bool *found)
{
	int n = 0;

	*found = false;
	for (struct block_node *p = bs; p; p = p->opener) {
		struct qcow2 *ps = p->opaque;
		char *r;

		if (p->drv != &block_driver_qcow2)
			continue;
		n++;
		if (!real || *found)
			continue;
		r = realpath(ps->name, NULL);
		*found = r && !strcmp(r, real);
		free(r);
	}
	return n;
}

static int qcow2_open_backing(struct block_node *bs, struct qcow2 *s, json_t *options,
			      struct error **errp)
{
	json_t *ref = json_object_get(options, "backing"), *opts;
	const char *fmt = s->hdr.backing_format;
	unsigned flags = BLOCK_OPEN_FROM_IMAGE;
	bool loop;
	char *path, *real;

	if (ref && json_is_null(ref))
		return 0;
	if (!ref && !s->hdr.backing_file)
		return 0;
	if (qcow2_chain_above(bs, NULL, &loop) > QCOW2_MAX_CHAIN_DEPTH) {
		error_setg(errp, "Backing chain of '%s' is deeper than %d images (a loop?)",
			   s->name, QCOW2_MAX_CHAIN_DEPTH);
		return -1;
	}
	if (ref) {
		bs->backing = block_node_open_child(bs, ref, "backing", true, 0, errp);
		if (!bs->backing)
			return -1;
		s->has_backing = true;
		return 0;
	}
	if (!strncmp(s->hdr.backing_file, "json:", 5) ||
	    strstr(s->hdr.backing_file, "://")) {
		error_setg(errp, "Backing file name '%s' of '%s' is not a plain file name "
			   "(give the backing node with the 'backing' option)",
			   s->hdr.backing_file, s->name);
		return -1;
	}
	path = qcow2_backing_path(bs->file->filename, s->hdr.backing_file);
	real = realpath(path, NULL);
	qcow2_chain_above(bs, real, &loop);
	free(real);
	if (loop) {
		error_setg(errp, "Backing file '%s' of '%s' loops back into its own "
			   "backing chain", path, s->name);
		free(path);
		return -1;
	}
	if (!fmt) {
		if (qcow2_probe_format(bs, path, &fmt, errp) < 0) {
			error_prepend(errp, "Could not open backing file of '%s'", s->name);
			free(path);
				return -1;
		}
		flags |= BLOCK_OPEN_PROBED;
	}
	if (strcmp(fmt, "qcow2") && strcmp(fmt, "raw")) {
		error_setg(errp, "Backing file '%s' of '%s' has unsupported format '%s'",
			   path, s->name, fmt);
		free(path);
		return -1;
	}
	opts = json_pack("{s:s, s:b, s:{s:s, s:s, s:b}}", "driver", fmt, "read-only", 1,
			 "file", "driver", "file", "filename", path, "read-only", 1);
	bs->backing = block_node_open_child(bs, opts, "backing", true, flags, errp);
	json_decref(opts);
	if (!bs->backing) {
		error_prepend(errp, "Could not open backing file '%s' of '%s'", path, s->name);
		free(path);
		return -1;
	}
	free(path);
	s->has_backing = true;
	return 0;
}

static int qcow2_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Check every table pointer of the L1 and refcount tables: aligned, in
 * the file, off the top-level metadata, and no table used twice (two
 * refcount table entries sharing a block would let refcount updates of
 * one range change another, and double-allocate).
 */
static int qcow2_check_tables(struct qcow2 *s, struct error **errp)
{
	const struct {
		const char *what;
		const uint64_t *t;
		uint64_t n, mask, reserved;
	} tabs[2] = {
		{ "L1 table", s->l1, s->l1_size, QCOW2_L1E_OFFSET_MASK, QCOW2_L1E_RESERVED },
		{ "refcount table", s->rt, s->rt_entries, QCOW2_RTE_OFFSET_MASK,
		  QCOW2_RTE_RESERVED },
	};
	uint64_t *offs = xcalloc(s->l1_size + s->rt_entries + 1, sizeof(uint64_t));
	size_t n = 0;
	int ret = 0;

	for (size_t k = 0; k < ARRAY_SIZE(tabs) && ret == 0; k++) {
		for (uint64_t i = 0; i < tabs[k].n; i++) {
			uint64_t e = tabs[k].t[i], off = e & tabs[k].mask;

			if (!off && !(e & tabs[k].reserved))
				continue;
			if ((e & tabs[k].reserved) || off % s->cluster_size ||
			    qcow2_overlaps_metadata(s, off, s->cluster_size) ||
			    off > s->file_len || s->cluster_size > s->file_len - off) {
				error_setg(errp, "Image '%s' is corrupt: %s entry %" PRIu64
					   " (0x%" PRIx64 ") is invalid, past the end of the file "
					   "or points at metadata", s->name, tabs[k].what, i, e);
				ret = -1;
				break;
			}
			offs[n++] = off;
		}
	}
	if (ret == 0 && n > 1) {
		qsort(offs, n, sizeof(*offs), qcow2_cmp_u64);
		for (size_t i = 1; i < n; i++) {
			if (offs[i] == offs[i - 1]) {
				error_setg(errp, "Image '%s' is corrupt: the table at offset %"
					   PRIu64 " is used twice", s->name, offs[i]);
				ret = -1;
				break;
			}
		}
	}
	free(offs);
	return ret;
}

/* Read and check the header, the L1 and refcount tables. */
static int qcow2_load(struct qcow2 *s, struct error **errp)
{
	struct block_node *file = s->bs->file;
	int64_t flen = block_node_length(file);
	uint8_t probe[QCOW2_HEADER_PROBE_LEN], *buf;
	size_t n;
	uint32_t cbits;
	int ret;

	if (flen < 0) {
		error_setg_errno(errp, (int)-flen, "Failed to get the length of '%s'", s->name);
		return -1;
	}
	n = (size_t)MIN((uint64_t)flen, sizeof(probe));
	if (n < QCOW2_V2_HEADER_LEN) {
		error_setg(errp, "Image '%s' is not in qcow2 format (only %zu bytes long)",
			   s->name, n);
		return -1;
	}
	ret = block_node_pread(file, probe, n, 0);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Failed to read the header of '%s'", s->name);
		return -1;
	}
	cbits = qcow2_be32(probe + 20);
	if (qcow2_be32(probe) == QCOW2_MAGIC &&
	    cbits >= QCOW2_MIN_CLUSTER_BITS && cbits <= QCOW2_MAX_CLUSTER_BITS)
		n = (size_t)MIN((uint64_t)flen, 1ULL << cbits);
	buf = xmalloc(n);
	ret = block_node_pread(file, buf, n, 0);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Failed to read the header of '%s'", s->name);
		free(buf);
		return -1;
	}
	ret = qcow2_header_parse(buf, n, &s->hdr, s->name, errp);
	free(buf);
	if (ret < 0)
		return -1;
	if (qcow2_header_check_layout(&s->hdr, (uint64_t)flen, s->name, errp) < 0)
		return -1;

	s->file_len = (uint64_t)flen;
	s->cluster_bits = s->hdr.cluster_bits;
	s->cluster_size = 1ULL << s->cluster_bits;
	s->l2_bits = s->cluster_bits - 3;
	s->l2_entries = 1ULL << s->l2_bits;
	s->refcount_order = s->hdr.refcount_order;
	s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
	s->refcount_max = s->refcount_order == 6 ? UINT64_MAX :
			  (1ULL << (1u << s->refcount_order)) - 1;
	s->csize_shift = 62 - (s->cluster_bits - 8);
	s->csize_mask = (1ULL << (s->cluster_bits - 8)) - 1;
	s->coffset_mask = (1ULL << s->csize_shift) - 1;
	s->size = s->hdr.size;
	s->l1_size = s->hdr.l1_size;
	s->l1_offset = s->hdr.l1_table_offset;
	s->rt_offset = s->hdr.refcount_table_offset;
	s->rt_clusters = s->hdr.refcount_table_clusters;
	s->rt_entries = ((uint64_t)s->rt_clusters << s->cluster_bits) / 8;
	s->host_end = ROUND_UP((uint64_t)flen, s->cluster_size);

	if (s->hdr.compression_type == QCOW2_COMPRESSION_ZSTD && !HAVE_ZSTD) {
		error_setg(errp, "Image '%s' uses zstd compression, which this build of "
			   "exportd lacks", s->name);
		return -1;
	}
	if (s->writable) {
		if (s->hdr.incompatible_features & QCOW2_INCOMPAT_CORRUPT) {
			error_setg(errp, "Image '%s' is marked corrupt: it can only be opened "
				   "read-only (repair it with 'qemu-img check -r all')", s->name);
			return -1;
		}
		if (s->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY) {
			error_setg(errp, "Image '%s' has the dirty bit set (refcounts may be "
				   "stale): open it read-only or repair it with "
				   "'qemu-img check -r all'", s->name);
			return -1;
		}
		if (s->hdr.nb_snapshots) {
			error_setg(errp, "Image '%s' has %u internal snapshots: writing to such "
				   "images is not supported, open it read-only", s->name,
				   s->hdr.nb_snapshots);
			return -1;
		}
	}
	if (qcow2_read_table(s, s->l1_offset, s->l1_size, &s->l1, errp) < 0 ||
	    qcow2_read_table(s, s->rt_offset, s->rt_entries, &s->rt, errp) < 0 ||
	    qcow2_check_tables(s, errp) < 0 || qcow2_snapshots_load(s, errp) < 0)
		return -1;
	return qcow2_meta_build(s);
}

static void qcow2_free_state(struct qcow2 *s)
{
	qcow2_cache_destroy(&s->l2_cache);
	qcow2_cache_destroy(&s->rb_cache);
	qcow2_header_clear(&s->hdr);
	qcow2_meta_free(s);
	free(s->l1);
	free(s->rt);
	free(s->name);
	s->l1 = s->rt = NULL;
	s->name = NULL;
}

/* Drop the children and free the state: the end of close, and of a failed open. */
static void qcow2_release(struct block_node *bs, struct qcow2 *s)
{
	if (bs->backing) {
		block_node_unref(bs->backing);
		bs->backing = NULL;
	}
	if (bs->file) {
		block_node_unref(bs->file);
		bs->file = NULL;
	}
	qcow2_free_state(s);
	pthread_rwlock_destroy(&s->free_lock);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->alloc_cond);
	pthread_mutex_destroy(&s->flush_lock);
	pthread_cond_destroy(&s->flush_cond);
}

/*
 * A backing file whose format was probed (its parent has no backing
 * format extension) may be a raw disk whose guest wrote a qcow2 header:
 * that header must not make us open further files, so a probed qcow2
 * image that names a backing file is refused.  External data files are
 * refused for every image by the header parser.
 */
static int qcow2_check_probed(struct block_node *bs, struct qcow2 *s, struct error **errp)
{
	if (!(bs->open_flags & BLOCK_OPEN_PROBED) || !s->hdr.backing_file)
		return 0;
	error_setg(errp, "Image '%s' was probed as qcow2 and names a backing file '%s' "
		   "itself; a probed image may not name other files (record the backing "
		   "format in the image above it: qemu-img rebase -u -F qcow2)",
		   s->name, s->hdr.backing_file);
	return -1;
}

static int qcow2_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct qcow2 *s = bs->opaque;
	pthread_rwlockattr_t attr;

	memset(s, 0, sizeof(*s));
	s->bs = bs;
	s->writable = !bs->read_only;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->alloc_cond, NULL);
	pthread_mutex_init(&s->flush_lock, NULL);
	pthread_cond_init(&s->flush_cond, NULL);
	pthread_rwlockattr_init(&attr);
	/* Frees must not starve behind a steady stream of reads. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->free_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	TAILQ_INIT(&s->allocs);

	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, 0, errp);
	if (!bs->file)
		goto fail;
	s->name = xstrdup(bs->file->filename ? bs->file->filename : bs->file->node_name);
	/* As QEMU: guest discards punch holes in the file unless told otherwise. */
	s->pass_discard = !json_is_false(json_object_get(options, "pass-discard-request"));
	/*
	 * Lazy refcounts trade consistency for speed; this driver keeps
	 * refcounts always consistent, which is what an image opened without
	 * them gets too.
	 */
	if (json_is_true(json_object_get(options, "lazy-refcounts")))
		log_warnx("qcow2 node '%s': lazy-refcounts ignored, refcounts are kept "
			  "consistent", bs->node_name);
	if (qcow2_load(s, errp) < 0 || qcow2_check_probed(bs, s, errp) < 0 ||
	    qcow2_setup_caches(s, options, errp) < 0 ||
	    qcow2_open_backing(bs, s, options, errp) < 0)
		goto fail;
	s->autoclear_pending = s->writable && s->hdr.version >= 3 &&
			       s->hdr.autoclear_features != 0;
	if (!bs->filename)
		bs->filename = xstrdup(s->name);
	return 0;

fail:
	qcow2_release(bs, s);
	return -1;
}

static void qcow2_close(struct block_node *bs)
{
	struct qcow2 *s = bs->opaque;

	if (s->writable && bs->file)
		block_node_flush(bs->file);
	qcow2_release(bs, s);
}

static void qcow2_query(struct block_node *bs, json_t *info)
{
	struct qcow2 *s = bs->opaque;
	json_t *image = json_object_get(info, "image");

	if (!image)
		image = info;
	json_object_set_new(image, "cluster-size", json_integer((json_int_t)s->cluster_size));
	json_object_set_new(image, "dirty-flag",
			    json_boolean(s->hdr.incompatible_features & QCOW2_INCOMPAT_DIRTY));
	if (s->hdr.backing_file)
		json_object_set_new(image, "backing-filename", json_string(s->hdr.backing_file));
}

/* Never: the kernel can only map export offsets 1:1 onto a file. */
static int qcow2_get_passthrough(struct block_node *bs, struct block_passthrough *pt,
				 const char **why)
{
	(void)bs;
	(void)pt;
	*why = "the node is a qcow2 image, whose clusters lie wherever its tables say "
	       "(the kernel passes through raw files only)";
	return -ENOTSUP;
}

const struct block_driver block_driver_qcow2 = {
	.name = "qcow2",
	.is_format = true,
	.state_size = sizeof(struct qcow2),
	.open = qcow2_open,
	.close = qcow2_close,
	.query = qcow2_query,
	.get_length = qcow2_get_length,
	.get_allocated_size = qcow2_get_allocated_size,
	.pread = qcow2_pread,
	.pwrite = qcow2_pwrite,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.truncate = qcow2_truncate,
	.block_status = qcow2_block_status,
	.get_passthrough = qcow2_get_passthrough,
};
