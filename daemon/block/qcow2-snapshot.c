/*
 * block/qcow2-snapshot.c: the snapshot table of a qcow2 image, read and
 * checked at open.  This driver neither reads nor writes snapshots (an
 * image that has some opens read-only), but the table and each
 * snapshot's L1 table are metadata that no write may overwrite, and the
 * counts and sizes in them come from the file: every one is bounded
 * (QEMU's limits: 65536 snapshots, 1 KiB of extra data each, a 64 MiB
 * table, 32 MiB L1 tables) before it is used, and every table must lie
 * inside the file.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "util.h"

#define QCOW2_SNAPSHOT_HEADER_LEN	40
#define QCOW2_MAX_SNAPSHOT_EXTRA	1024
#define QCOW2_MAX_SNAPSHOT_TABLE	(64u << 20)

int qcow2_snapshots_load(struct qcow2 *s, struct error **errp)
{
	uint32_t n = s->hdr.nb_snapshots;
	uint64_t off = s->hdr.snapshots_offset, end;
	uint8_t h[QCOW2_SNAPSHOT_HEADER_LEN];
	struct qcow2_extent *ext;
	int ret;

	if (!n)
		return 0;
	ext = xcalloc((size_t)n + 1, sizeof(*ext));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t l1_off, l1_bytes;
		uint32_t extra, id_len, name_len;

		/* Entries start 8-aligned; the last one's padding need not exist. */
		off = ROUND_UP(off, 8);
		if (off > s->file_len || s->file_len - off < sizeof(h)) {
			error_setg(errp, "Image '%s' is corrupt: snapshot table entry %u is past "
				   "the end of the file", s->name, i);
			goto fail;
		}
		ret = block_node_pread(s->bs->file, h, sizeof(h), off);
		if (ret < 0) {
			error_setg_errno(errp, -ret, "Failed to read the snapshot table of '%s'",
					 s->name);
			goto fail;
		}
		l1_off = qcow2_be64(h);
		l1_bytes = (uint64_t)qcow2_be32(h + 8) * 8;
		id_len = qcow2_be16(h + 12);
		name_len = qcow2_be16(h + 14);
		extra = qcow2_be32(h + 36);
		if (extra > QCOW2_MAX_SNAPSHOT_EXTRA) {
			error_setg(errp, "Image '%s' is corrupt: too much extra metadata in "
				   "snapshot table entry %u (%u bytes)", s->name, i, extra);
			goto fail;
		}
		if (l1_bytes > QCOW2_MAX_L1_BYTES) {
			error_setg(errp, "Image '%s' is corrupt: snapshot %u has an L1 table "
				   "of %" PRIu64 " entries, too large", s->name, i, l1_bytes / 8);
			goto fail;
		}
		if (l1_bytes && (l1_off % s->cluster_size || l1_off == 0 ||
				 l1_off > s->file_len || l1_bytes > s->file_len - l1_off)) {
			error_setg(errp, "Image '%s' is corrupt: the L1 table of snapshot %u "
				   "(offset %" PRIu64 ") is unaligned or not inside the file",
				   s->name, i, l1_off);
			goto fail;
		}
		ext[i + 1].off = l1_bytes ? l1_off : 0;
		ext[i + 1].len = l1_bytes;
		off += sizeof(h) + (uint64_t)extra + id_len + name_len;
		if (off - s->hdr.snapshots_offset > QCOW2_MAX_SNAPSHOT_TABLE) {
			error_setg(errp, "Image '%s' is corrupt: the snapshot table is larger "
				   "than %u bytes", s->name, QCOW2_MAX_SNAPSHOT_TABLE);
			goto fail;
		}
	}
	end = off;
	if (end > s->file_len) {
		error_setg(errp, "Image '%s' is corrupt: the snapshot table is past the end "
			   "of the file", s->name);
		goto fail;
	}
	ext[0].off = s->hdr.snapshots_offset;
	ext[0].len = end - s->hdr.snapshots_offset;
	s->snap_extents = ext;
	s->nb_snap_extents = (size_t)n + 1;
	return 0;

fail:
	free(ext);
	return -1;
}
