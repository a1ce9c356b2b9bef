/*
 * block/qcow2-overlap.c: the overlap checks of a qcow2 image (QEMU's
 * qcow2_check_metadata_overlap): which host clusters hold metadata (the
 * header, the L1 table, L2 tables, the refcount table, refcount blocks,
 * the snapshot table, the snapshots' L1 tables, the bitmap directory and
 * the LUKS encryption header),
 * so that guest data is never written over them, and a cluster whose
 * refcount says free while it holds metadata is never handed out.  An
 * image where that happened is corrupt: it is marked so on disk (the
 * corrupt incompatible bit, as QEMU does), the request fails with EIO, and
 * every later write is refused.
 *
 * The set is a bitmap of host clusters up to the highest metadata cluster,
 * kept up to date wherever a table is allocated or freed, so that the
 * check on the write path is a few word loads under the metadata lock it
 * already holds.  Which kind of metadata was hit is only worked out for
 * the log line.  Metadata never overlaps other metadata: open checks the
 * tables, and every new table comes from an allocation checked here.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "log.h"
#include "util.h"

void qcow2_meta_mark(struct qcow2 *s, uint64_t off, uint64_t len, bool on)
{
	uint64_t first, last;

	if (!len)
		return;
	first = off >> s->cluster_bits;
	last = (off + len - 1) >> s->cluster_bits;
	if (on && last >= s->meta_clusters) {
		uint64_t words = s->meta_clusters / 64, want = MAX(last + 1, s->meta_clusters * 2);
		uint64_t nwords = DIV_ROUND_UP(want, 64);

		s->meta_map = xrealloc(s->meta_map, nwords * sizeof(uint64_t));
		memset(s->meta_map + words, 0, (nwords - words) * sizeof(uint64_t));
		s->meta_clusters = nwords * 64;
	}
	last = MIN(last, s->meta_clusters - 1);
	for (uint64_t c = first; c <= last && c < s->meta_clusters; c++) {
		if (on)
			s->meta_map[c / 64] |= 1ULL << (c % 64);
		else
			s->meta_map[c / 64] &= ~(1ULL << (c % 64));
	}
}

bool qcow2_meta_hit(const struct qcow2 *s, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!len || !s->meta_clusters)
		return false;
	first = off >> s->cluster_bits;
	last = MIN((off + len - 1) >> s->cluster_bits, s->meta_clusters - 1);
	for (uint64_t c = first; c <= last;) {
		uint64_t word = s->meta_map[c / 64] >> (c % 64);
		uint64_t span = MIN(64 - c % 64, last - c + 1);

		if (span < 64)
			word &= (1ULL << span) - 1;
		if (word)
			return true;
		c += span;
	}
	return false;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return alen && blen && a < b + blen && b < a + alen;
}

/* The kind of metadata in [off, off+len), in QEMU's words (slow: for messages). */
static const char *qcow2_meta_kind(const struct qcow2 *s, uint64_t off, uint64_t len)
{
	uint64_t cs = s->cluster_size;

	if (overlap(off, len, 0, cs))
		return "qcow2_header";
	if (overlap(off, len, s->l1_offset, ROUND_UP((uint64_t)s->l1_size * 8, cs)))
		return "active L1 table";
	if (overlap(off, len, s->rt_offset, (uint64_t)s->rt_clusters << s->cluster_bits))
		return "refcount table";
	for (uint64_t i = 0; i < s->rt_entries; i++)
		if (overlap(off, len, s->rt[i] & QCOW2_RTE_OFFSET_MASK, cs))
			return "refcount block";
	for (uint64_t i = 0; i < s->l1_size; i++)
		if (overlap(off, len, s->l1[i] & QCOW2_L1E_OFFSET_MASK, cs))
			return "active L2 table";
	if (s->nb_snap_extents && overlap(off, len, s->snap_extents[0].off,
					  s->snap_extents[0].len))
		return "snapshot table";
	for (size_t i = 1; i < s->nb_snap_extents; i++)
		if (overlap(off, len, s->snap_extents[i].off, s->snap_extents[i].len))
			return "inactive L1 table";
	if (overlap(off, len, s->bitmap_dir_offset, s->bitmap_dir_size))
		return "bitmap directory";
	if (s->hdr.has_crypto_ext &&
	    overlap(off, len, s->hdr.crypto_offset, s->hdr.crypto_length))
		return "encryption header";
	return "metadata";
}

int qcow2_mark_corrupt(struct qcow2 *s)
{
	uint8_t be[8];
	int ret;

	if (__atomic_exchange_n(&s->corrupt, true, __ATOMIC_ACQ_REL))
		return 0;
	s->hdr.incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
	if (s->hdr.version < 3)
		return 0;	/* no field for it: refused in memory, as QEMU */
	qcow2_put_be64(be, s->hdr.incompatible_features);
	ret = block_node_pwrite(s->bs->file, be, 8, 72);
	if (ret == 0)
		ret = block_node_flush(s->bs->file);
	if (ret < 0)
		log_warnx("qcow2 '%s': could not set the corrupt bit in the header: %s",
			  s->name, strerror(-ret));
	return ret;
}

int qcow2_check_write(struct qcow2 *s, uint64_t off, uint64_t len, const char *what)
{
	if (!qcow2_meta_hit(s, off, len))
		return 0;
	if (!__atomic_load_n(&s->corrupt, __ATOMIC_ACQUIRE))
		log_warnx("qcow2 '%s': Marking image as corrupt: Preventing invalid "
			  "%s at 0x%" PRIx64 " on metadata (overlaps with %s); further "
			  "corruption events will be suppressed", s->name, what, off,
			  qcow2_meta_kind(s, off, len));
	qcow2_mark_corrupt(s);
	return -EIO;
}

int qcow2_meta_build(struct qcow2 *s)
{
	uint64_t cs = s->cluster_size;

	qcow2_meta_mark(s, 0, cs, true);
	qcow2_meta_mark(s, s->l1_offset, ROUND_UP((uint64_t)s->l1_size * 8, cs), true);
	qcow2_meta_mark(s, s->rt_offset, (uint64_t)s->rt_clusters << s->cluster_bits, true);
	for (uint64_t i = 0; i < s->rt_entries; i++)
		qcow2_meta_mark(s, s->rt[i] & QCOW2_RTE_OFFSET_MASK,
				(s->rt[i] & QCOW2_RTE_OFFSET_MASK) ? cs : 0, true);
	for (uint64_t i = 0; i < s->l1_size; i++)
		qcow2_meta_mark(s, s->l1[i] & QCOW2_L1E_OFFSET_MASK,
				(s->l1[i] & QCOW2_L1E_OFFSET_MASK) ? cs : 0, true);
	for (size_t i = 0; i < s->nb_snap_extents; i++)
		qcow2_meta_mark(s, s->snap_extents[i].off,
				ROUND_UP(s->snap_extents[i].len, cs), true);
	if (s->hdr.has_bitmaps_ext && (s->hdr.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
		s->bitmap_dir_offset = s->hdr.bitmap_dir_offset;
		s->bitmap_dir_size = s->hdr.bitmap_dir_size;
		qcow2_meta_mark(s, s->bitmap_dir_offset, ROUND_UP(s->bitmap_dir_size, cs), true);
	}
	if (s->hdr.has_crypto_ext)
		qcow2_meta_mark(s, s->hdr.crypto_offset, ROUND_UP(s->hdr.crypto_length, cs),
				true);
	return 0;
}

void qcow2_meta_free(struct qcow2 *s)
{
	free(s->meta_map);
	s->meta_map = NULL;
	s->meta_clusters = 0;
	free(s->snap_extents);
	s->snap_extents = NULL;
	s->nb_snap_extents = 0;
}
