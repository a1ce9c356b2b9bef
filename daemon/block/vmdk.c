/*
 * block/vmdk.c: the vmdk format driver: VMware's disk images, as QEMU's
 * block/vmdk.c opens them: a hosted sparse extent ("KDMV": monolithicSparse,
 * and streamOptimized with its zlib-compressed grains), or a text
 * descriptor listing extents in other files (monolithicFlat,
 * twoGbMaxExtentSparse, twoGbMaxExtentFlat, vmfs), each FLAT, SPARSE or
 * ZERO.  Reads everywhere; writes where QEMU writes: flat extents and
 * uncompressed sparse extents (a new grain is appended to its extent
 * file, then its grain table entry, both copies, is written).
 *
 * A sparse extent (VMware's "Virtual Disk Format 1.1", little endian): a
 * 512-byte header with the capacity and grain size in sectors, a grain
 * directory (GD) of 32-bit sector offsets of grain tables (GT), each GT
 * numGTEsPerGT 32-bit sector offsets of grains; 0 is a grain never
 * written (zeroes), 1 a zeroed grain when the header says so.  The GD is
 * read at open (it must lie inside the file, which bounds it); GT entries
 * are read from the file on each lookup, so the file is the one copy of
 * the mapping and allocation needs no cache to keep coherent.
 *
 * Extent files are named by the descriptor, that is, by image content:
 * they open as regular files only, relative to the descriptor's folder,
 * and never when the format was probed (a probed image may not name
 * other files).  Images with a parent (parentFileNameHint) are refused.
 *
 * Concurrency: grain allocation in an extent takes its lock and re-reads
 * the entry, so two writers never append the same grain; an entry is
 * written only after its grain's data.  Consistency: as QEMU, no
 * journal; a crash can leak an appended grain, never map a grain to
 * bytes that were not written.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HAVE_ZLIB
#include <zlib.h>
#endif

#include "block/block.h"
#include "block/byteorder.h"
#include "log.h"
#include "util.h"

#define VMDK_SECTOR		((uint64_t)512)
#define VMDK_MAGIC		"KDMV"
#define VMDK_FLAG_RGD		(1U << 1)
#define VMDK_FLAG_ZERO_GRAIN	(1U << 2)
#define VMDK_FLAG_COMPRESS	(1U << 16)
#define VMDK_FLAG_MARKER	(1U << 17)
#define VMDK_GD_AT_END		0xffffffffffffffffULL
#define VMDK_MARKER_EOS		0
#define VMDK_MARKER_FOOTER	3
/* Bounds on what a header may claim (QEMU's, or tighter where ours allocates). */
#define VMDK_MAX_GRAIN_SECTORS	4096		/* 2 MiB grains */
#define VMDK_MAX_GTES		512
#define VMDK_MAX_DESCRIPTOR	(64 * 1024)
#define VMDK_MAX_EXTENTS	1024
/* Header field offsets. */
#define VMDK_H_VERSION		4
#define VMDK_H_FLAGS		8
#define VMDK_H_CAPACITY		12
#define VMDK_H_GRAIN		20
#define VMDK_H_DESC_OFFSET	28
#define VMDK_H_DESC_SIZE	36
#define VMDK_H_GTES		44
#define VMDK_H_RGD_OFFSET	48
#define VMDK_H_GD_OFFSET	56
#define VMDK_H_COMPRESS_ALGO	77

enum vmdk_extent_type { VMDK_FLAT, VMDK_SPARSE, VMDK_ZERO };

struct vmdk_extent {
	enum vmdk_extent_type type;
	struct block_node *file;	/* NULL for ZERO */
	bool own_file;			/* opened here (else it is bs->file) */
	bool read_only;			/* RDONLY in the descriptor */
	uint64_t start, len;		/* guest bytes */
	uint64_t flat_offset;		/* FLAT: bytes into file */
	/* SPARSE */
	uint64_t grain;			/* bytes */
	uint32_t gtes;			/* entries per GT */
	uint32_t gd_len;		/* GD entries */
	uint32_t *gd, *rgd;		/* sector offsets of the GTs (rgd: copies) */
	bool compressed, zero_grain;
	pthread_mutex_t lock;		/* grain allocation */
};

struct vmdk {
	char *name;
	uint64_t size;
	size_t n;
	struct vmdk_extent *extents;
};

static int vmdk_io_error(int ret)
{
	return ret == -EINVAL ? -EIO : ret;
}

static struct vmdk_extent *vmdk_find(struct vmdk *s, uint64_t offset)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (offset < s->extents[mid].start)
			hi = mid;
		else if (offset >= s->extents[mid].start + s->extents[mid].len)
			lo = mid + 1;
		else
			return &s->extents[mid];
	}
	return NULL;
}

/* The GT entry of the grain holding extent offset `off`: 0 if no GT. */
static int vmdk_gte(struct vmdk_extent *e, uint64_t off, uint32_t *gte, uint64_t *gte_pos)
{
	uint64_t grain = off / e->grain;
	uint64_t gd_index = grain / e->gtes;
	uint8_t buf[4];
	int ret;

	*gte_pos = 0;
	if (gd_index >= e->gd_len || !e->gd[gd_index]) {
		*gte = 0;
		return 0;
	}
	*gte_pos = (uint64_t)e->gd[gd_index] * VMDK_SECTOR + grain % e->gtes * 4;
	ret = block_node_pread(e->file, buf, 4, *gte_pos);
	if (ret < 0)
		return vmdk_io_error(ret);
	*gte = ld_le32(buf);
	return 0;
}

static bool vmdk_gte_is_zero(struct vmdk_extent *e, uint32_t gte)
{
	return gte == 0 || (gte == 1 && e->zero_grain);
}

#if HAVE_ZLIB
/* A compressed grain: a marker (LBA u64, size u32) then a zlib stream. */
static int vmdk_read_compressed(struct vmdk_extent *e, uint32_t gte, uint8_t *grain)
{
	int64_t file_len = block_node_length(e->file);
	uint64_t pos = (uint64_t)gte * VMDK_SECTOR, clen;
	uint8_t marker[12], *cbuf;
	z_stream z;
	int ret;

	if (file_len < 0)
		return (int)file_len;
	ret = block_node_pread(e->file, marker, sizeof(marker), pos);
	if (ret < 0)
		return vmdk_io_error(ret);
	clen = ld_le32(marker + 8);
	/* Deflate never grows data by more than a little: bound by the grain too. */
	if (clen == 0 || clen > e->grain * 2 + 1024 ||
	    pos + sizeof(marker) + clen > (uint64_t)file_len)
		return -EIO;
	cbuf = xmalloc(clen);
	ret = block_node_pread(e->file, cbuf, clen, pos + sizeof(marker));
	if (ret < 0) {
		free(cbuf);
		return vmdk_io_error(ret);
	}
	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK) {
		free(cbuf);
		return -ENOMEM;
	}
	z.next_in = cbuf;
	z.avail_in = (uInt)clen;
	z.next_out = grain;
	z.avail_out = (uInt)e->grain;
	ret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	free(cbuf);
	/* The last grain of a disk may be short; the rest reads as zeroes. */
	if (ret != Z_STREAM_END && !(ret == Z_BUF_ERROR && z.avail_out == 0))
		return -EIO;
	memset(grain + (e->grain - z.avail_out), 0, z.avail_out);
	return 0;
}
#else
static int vmdk_read_compressed(struct vmdk_extent *e, uint32_t gte, uint8_t *grain)
{
	(void)e;
	(void)gte;
	(void)grain;
	return -ENOTSUP;
}
#endif

static int vmdk_read_sparse(struct vmdk_extent *e, uint8_t *buf, uint64_t len,
			    uint64_t off)
{
	while (len > 0) {
		uint64_t in_grain = off % e->grain, n = MIN(len, e->grain - in_grain), pos;
		uint32_t gte;
		int ret = vmdk_gte(e, off, &gte, &pos);

		if (ret < 0)
			return ret;
		if (vmdk_gte_is_zero(e, gte)) {
			memset(buf, 0, n);
		} else if (e->compressed) {
			uint8_t *grain = xmalloc(e->grain);

			ret = vmdk_read_compressed(e, gte, grain);
			if (ret == 0)
				memcpy(buf, grain + in_grain, n);
			free(grain);
		} else {
			ret = block_node_pread(e->file, buf, n,
					       (uint64_t)gte * VMDK_SECTOR + in_grain);
		}
		if (ret < 0)
			return vmdk_io_error(ret);
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Calls fn on each extent piece of [offset, offset+len). */
static int vmdk_each(struct vmdk *s, uint64_t offset, uint64_t len, void *arg,
		     int (*fn)(struct vmdk_extent *e, uint64_t off, uint64_t n,
			       uint64_t done, void *arg))
{
	uint64_t done = 0;

	while (done < len) {
		struct vmdk_extent *e = vmdk_find(s, offset + done);
		uint64_t off, n;
		int ret;

		if (!e)
			return -EIO;
		off = offset + done - e->start;
		n = MIN(len - done, e->len - off);
		ret = fn(e, off, n, done, arg);
		if (ret < 0)
			return ret;
		done += n;
	}
	return 0;
}

static int vmdk_read_piece(struct vmdk_extent *e, uint64_t off, uint64_t n, uint64_t done,
			   void *arg)
{
	uint8_t *buf = (uint8_t *)arg + done;

	switch (e->type) {
	case VMDK_ZERO:
		memset(buf, 0, n);
		return 0;
	case VMDK_FLAT:
		return vmdk_io_error(block_node_pread(e->file, buf, n, e->flat_offset + off));
	default:
		return vmdk_read_sparse(e, buf, n, off);
	}
}

static int vmdk_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	return vmdk_each(bs->opaque, offset, len, buf, vmdk_read_piece);
}

/* Write both copies of a GT entry (the redundant one when there is one). */
static int vmdk_set_gte(struct vmdk_extent *e, uint64_t off, uint32_t value)
{
	uint64_t grain = off / e->grain, gd_index = grain / e->gtes;
	uint8_t buf[4];
	int ret;

	st_le32(buf, value);
	ret = block_node_pwrite(e->file, buf, 4, (uint64_t)e->gd[gd_index] * VMDK_SECTOR +
				grain % e->gtes * 4);
	if (ret == 0 && e->rgd && e->rgd[gd_index])
		ret = block_node_pwrite(e->file, buf, 4, (uint64_t)e->rgd[gd_index] *
					VMDK_SECTOR + grain % e->gtes * 4);
	return ret;
}

/*
 * Append a grain at the end of the extent file holding buf at in_grain
 * and zeroes elsewhere (no backing file: an unwritten grain is zeroes).
 */
static int vmdk_allocate(struct vmdk_extent *e, uint64_t off, const uint8_t *buf,
			 uint64_t n)
{
	int64_t file_len = block_node_length(e->file);
	uint64_t start, in_grain = off % e->grain;
	int ret;

	if (file_len < 0)
		return (int)file_len;
	start = ((uint64_t)file_len + VMDK_SECTOR - 1) / VMDK_SECTOR * VMDK_SECTOR;
	if (start / VMDK_SECTOR > UINT32_MAX)
		return -ENOSPC;		/* a GT entry holds 32 bits of sectors */
	ret = block_node_truncate(e->file, start + e->grain);
	if (ret == 0)
		ret = block_node_pwrite(e->file, buf, n, start + in_grain);
	if (ret == 0)
		ret = vmdk_set_gte(e, off, (uint32_t)(start / VMDK_SECTOR));
	return ret;
}

static int vmdk_write_sparse(struct vmdk_extent *e, const uint8_t *buf, uint64_t len,
			     uint64_t off)
{
	while (len > 0) {
		uint64_t in_grain = off % e->grain, n = MIN(len, e->grain - in_grain), pos;
		uint32_t gte;
		int ret = vmdk_gte(e, off, &gte, &pos);

		if (ret == 0 && !pos)
			ret = -EIO;	/* no grain table: QEMU cannot write there either */
		if (ret == 0 && vmdk_gte_is_zero(e, gte)) {
			pthread_mutex_lock(&e->lock);
			ret = vmdk_gte(e, off, &gte, &pos);
			if (ret == 0 && vmdk_gte_is_zero(e, gte)) {
				ret = vmdk_allocate(e, off, buf, n);
				gte = 0;
			}
			pthread_mutex_unlock(&e->lock);
		}
		if (ret == 0 && gte)
			ret = block_node_pwrite(e->file, buf, n,
						(uint64_t)gte * VMDK_SECTOR + in_grain);
		if (ret < 0)
			return vmdk_io_error(ret);
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int vmdk_write_piece(struct vmdk_extent *e, uint64_t off, uint64_t n, uint64_t done,
			    void *arg)
{
	const uint8_t *buf = (const uint8_t *)arg + done;

	if (e->read_only || e->type == VMDK_ZERO || e->compressed)
		return -EROFS;
	if (e->type == VMDK_FLAT)
		return vmdk_io_error(block_node_pwrite(e->file, buf, n, e->flat_offset + off));
	return vmdk_write_sparse(e, buf, n, off);
}

static int vmdk_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset)
{
	return vmdk_each(bs->opaque, offset, len, (void *)(uintptr_t)buf, vmdk_write_piece);
}

static int vmdk_zero_piece(struct vmdk_extent *e, uint64_t off, uint64_t n, uint64_t done,
			   void *arg)
{
	int flags = *(int *)arg;

	(void)done;
	if (e->type == VMDK_ZERO)
		return 0;
	if (e->read_only || e->compressed)
		return -EROFS;
	if (e->type == VMDK_FLAT)
		return vmdk_io_error(block_node_write_zeroes(e->file, e->flat_offset + off, n,
							     flags));
	/* Unwritten grains already read as zeroes; written ones are zeroed in place. */
	while (n > 0) {
		uint64_t in_grain = off % e->grain, piece = MIN(n, e->grain - in_grain), pos;
		uint32_t gte;
		int ret = vmdk_gte(e, off, &gte, &pos);

		if (ret == 0 && !vmdk_gte_is_zero(e, gte))
			ret = block_node_write_zeroes(e->file, (uint64_t)gte * VMDK_SECTOR +
						      in_grain, piece, flags);
		if (ret < 0)
			return vmdk_io_error(ret);
		off += piece;
		n -= piece;
	}
	return 0;
}

static int vmdk_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len, int flags)
{
	return vmdk_each(bs->opaque, offset, len, &flags, vmdk_zero_piece);
}

static int vmdk_flush_extents(struct vmdk *s, struct block_node *bs)
{
	int ret = block_node_flush(bs->file);

	for (size_t i = 0; i < s->n && ret == 0; i++) {
		if (s->extents[i].own_file)
			ret = block_node_flush(s->extents[i].file);
	}
	return ret;
}

static int vmdk_flush(struct block_node *bs)
{
	return vmdk_flush_extents(bs->opaque, bs);
}

static int vmdk_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			     uint64_t *pnum)
{
	struct vmdk *s = bs->opaque;
	struct vmdk_extent *e = vmdk_find(s, offset);
	uint64_t off, max, run, pos;
	uint32_t gte;
	bool zero;
	int ret;

	if (!e)
		return -EIO;
	off = offset - e->start;
	max = MIN(len, e->len - off);
	if (e->type != VMDK_SPARSE) {
		*pnum = max;
		return e->type == VMDK_ZERO ? BLOCK_STATUS_ZERO :
		       BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	}
	ret = vmdk_gte(e, off, &gte, &pos);
	if (ret < 0)
		return ret;
	zero = vmdk_gte_is_zero(e, gte);
	run = MIN(max, e->grain - off % e->grain);
	while (run < max) {
		ret = vmdk_gte(e, off + run, &gte, &pos);
		if (ret < 0 || vmdk_gte_is_zero(e, gte) != zero)
			break;
		run = MIN(max, run + e->grain);
	}
	*pnum = run;
	return zero ? BLOCK_STATUS_ZERO : BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
}

static int vmdk_truncate(struct block_node *bs, uint64_t length)
{
	return length == ((struct vmdk *)bs->opaque)->size ? 0 : -ENOTSUP;
}

static int64_t vmdk_get_length(struct block_node *bs)
{
	return (int64_t)((struct vmdk *)bs->opaque)->size;
}

static int64_t vmdk_get_allocated_size(struct block_node *bs)
{
	struct vmdk *s = bs->opaque;
	int64_t total = block_node_allocated_size(bs->file);

	for (size_t i = 0; i < s->n && total >= 0; i++) {
		if (s->extents[i].own_file) {
			int64_t n = block_node_allocated_size(s->extents[i].file);

			total = n < 0 ? n : total + n;
		}
	}
	return total;
}

/* ---- opening ---- */

static struct vmdk_extent *vmdk_add_extent(struct vmdk *s, enum vmdk_extent_type type,
					   uint64_t len)
{
	struct vmdk_extent *e;

	s->extents = xrealloc(s->extents, (s->n + 1) * sizeof(*s->extents));
	e = &s->extents[s->n++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->start = s->size;
	e->len = len;
	pthread_mutex_init(&e->lock, NULL);
	s->size += len;
	return e;
}

static int vmdk_read_gd(struct vmdk_extent *e, uint64_t sector, uint64_t file_len,
			uint32_t **out, const char *name, const char *what, struct error **errp)
{
	uint64_t off = sector * VMDK_SECTOR, bytes = (uint64_t)e->gd_len * 4;
	uint8_t *raw;
	uint32_t *gd;
	int ret;

	if (sector > file_len / VMDK_SECTOR || bytes > file_len - off) {
		error_setg(errp, "VMDK extent '%s' is corrupt: its %s (%" PRIu32 " entries at "
			   "sector %" PRIu64 ") extends beyond the end of the file", name, what,
			   e->gd_len, sector);
		return -1;
	}
	raw = xmalloc(bytes + 4);
	ret = bytes ? block_node_pread(e->file, raw, bytes, off) : 0;
	if (ret < 0) {
		free(raw);
		error_setg_errno(errp, -ret, "Could not read the %s of '%s'", what, name);
		return -1;
	}
	gd = (uint32_t *)raw;
	for (uint32_t i = 0; i < e->gd_len; i++) {
		gd[i] = ld_le32(raw + 4 * (size_t)i);
		/* A GT must lie inside the file, past the header. */
		if (gd[i] && ((uint64_t)gd[i] * VMDK_SECTOR + (uint64_t)e->gtes * 4 > file_len)) {
			error_setg(errp, "VMDK extent '%s' is corrupt: %s entry %" PRIu32
				   " points past the end of the file", name, what, i);
			free(raw);
			return -1;
		}
	}
	*out = gd;
	return 0;
}

/* streamOptimized: the real header is in the footer, 1536 bytes from the end. */
static int vmdk_read_footer_header(struct block_node *file, uint64_t file_len, uint8_t *h,
				   const char *name, struct error **errp)
{
	uint8_t f[1536];
	int ret;

	if (file_len < sizeof(f)) {
		error_setg(errp, "VMDK extent '%s' has its grain directory at the end but no "
			   "footer", name);
		return -1;
	}
	ret = block_node_pread(file, f, sizeof(f), file_len - sizeof(f));
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not read the footer of '%s'", name);
		return -1;
	}
	if (ld_le32(f + 12) != VMDK_MARKER_FOOTER || memcmp(f + 512, VMDK_MAGIC, 4) ||
	    ld_le32(f + 1024 + 12) != VMDK_MARKER_EOS) {
		error_setg(errp, "Invalid VMDK footer in '%s'", name);
		return -1;
	}
	memcpy(h, f + 512, 512);
	return 0;
}

/* Return the value of `key="..."` or key=... in a descriptor, or NULL. */
static char *vmdk_desc_value(const char *desc, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = desc; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *q = p, *end;

		while (*q == ' ' || *q == '\t')
			q++;
		if (strncmp(q, key, klen))
			continue;
		q += klen;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '"') {
			q++;
			end = strchr(q, '"');
		} else {
			end = q + strcspn(q, " \t\r\n");
		}
		if (!end)
			return NULL;
		return xasprintf("%.*s", (int)(end - q), q);
	}
	return NULL;
}

/* Images with a parent name it: refused (no backing support, and never probed). */
static int vmdk_check_parent(const char *desc, const char *name, struct error **errp)
{
	char *hint = vmdk_desc_value(desc, "parentFileNameHint");
	char *cid = vmdk_desc_value(desc, "parentCID");
	bool has_parent = hint && (!cid || strcmp(cid, "ffffffff"));

	if (has_parent)
		error_setg(errp, "VMDK image '%s' names a parent image '%s' "
			   "(parentFileNameHint): backing images are not supported", name, hint);
	free(hint);
	free(cid);
	return has_parent ? -1 : 0;
}

static int vmdk_open_sparse(struct vmdk *s, struct block_node *file, const char *name,
			    uint64_t desc_len, bool writable, struct error **errp)
{
	int64_t file_len = block_node_length(file);
	uint8_t h[512];
	uint64_t capacity, grain_sectors, gd_off, rgd_off, len;
	uint32_t version, flags, gtes;
	struct vmdk_extent *e;
	int ret;

	if (file_len < 0) {
		error_setg_errno(errp, (int)-file_len, "Could not get the size of '%s'", name);
		return -1;
	}
	ret = file_len >= 512 ? block_node_pread(file, h, sizeof(h), 0) : -EIO;
	if (ret < 0 || memcmp(h, VMDK_MAGIC, 4)) {
		error_setg(errp, "VMDK extent '%s' is not a hosted sparse extent (no KDMV "
			   "header)", name);
		return -1;
	}
	if (ld_le64(h + VMDK_H_GD_OFFSET) == VMDK_GD_AT_END &&
	    vmdk_read_footer_header(file, (uint64_t)file_len, h, name, errp) < 0)
		return -1;
	version = ld_le32(h + VMDK_H_VERSION);
	flags = ld_le32(h + VMDK_H_FLAGS);
	capacity = ld_le64(h + VMDK_H_CAPACITY);
	grain_sectors = ld_le64(h + VMDK_H_GRAIN);
	gtes = ld_le32(h + VMDK_H_GTES);
	gd_off = ld_le64(h + VMDK_H_GD_OFFSET);
	rgd_off = ld_le64(h + VMDK_H_RGD_OFFSET);
	if (version > 3) {
		error_setg(errp, "Unsupported VMDK version %" PRIu32, version);
		return -1;
	}
	if (version == 3 && writable) {
		error_setg(errp, "VMDK version 3 must be read only");
		return -1;
	}
	if (!grain_sectors || grain_sectors > VMDK_MAX_GRAIN_SECTORS ||
	    (grain_sectors & (grain_sectors - 1))) {
		error_setg(errp, "Invalid granularity, image may be corrupt");
		return -1;
	}
	if (!gtes || gtes > VMDK_MAX_GTES) {
		error_setg(errp, "L2 table size too big");
		return -1;
	}
	if ((flags & VMDK_FLAG_COMPRESS) && ld_le16(h + VMDK_H_COMPRESS_ALGO) != 1) {
		error_setg(errp, "VMDK extent '%s' uses compression algorithm %u (only "
			   "deflate, 1, exists)", name, ld_le16(h + VMDK_H_COMPRESS_ALGO));
		return -1;
	}
	if ((flags & VMDK_FLAG_COMPRESS) && writable) {
		error_setg(errp, "VMDK extent '%s' has compressed grains (streamOptimized), "
			   "which are read-only", name);
		return -1;
	}
	if (capacity > INT64_MAX / VMDK_SECTOR) {
		error_setg(errp, "VMDK extent '%s' is too big (%" PRIu64 " sectors)", name,
			   capacity);
		return -1;
	}
	/* The descriptor's length is the guest's; the header's capacity the table's. */
	len = desc_len ? desc_len : capacity * VMDK_SECTOR;
	if (len > capacity * VMDK_SECTOR) {
		error_setg(errp, "VMDK extent '%s' holds %" PRIu64 " sectors, its descriptor "
			   "says %" PRIu64, name, capacity, len / VMDK_SECTOR);
		return -1;
	}
	if (s->n >= VMDK_MAX_EXTENTS) {
		error_setg(errp, "VMDK image '%s' has too many extents", s->name);
		return -1;
	}
	e = vmdk_add_extent(s, VMDK_SPARSE, len);
	e->file = file;
	e->grain = grain_sectors * VMDK_SECTOR;
	e->gtes = gtes;
	e->compressed = flags & VMDK_FLAG_COMPRESS;
	e->zero_grain = flags & VMDK_FLAG_ZERO_GRAIN;
	{
		uint64_t per_gt = (uint64_t)gtes * e->grain;
		uint64_t gd_len = (capacity * VMDK_SECTOR + per_gt - 1) / per_gt;

		/* Bounded by the file below; this only keeps the count in 32 bits. */
		if (gd_len > (uint64_t)file_len / 4) {
			error_setg(errp, "VMDK extent '%s' is corrupt: a grain directory of %"
				   PRIu64 " entries cannot fit in its %" PRId64 " bytes", name,
				   gd_len, file_len);
			return -1;
		}
		e->gd_len = (uint32_t)gd_len;
	}
	if (vmdk_read_gd(e, gd_off, (uint64_t)file_len, &e->gd, name, "grain directory",
			 errp) < 0)
		return -1;
	if ((flags & VMDK_FLAG_RGD) && rgd_off && writable &&
	    vmdk_read_gd(e, rgd_off, (uint64_t)file_len, &e->rgd, name,
			 "redundant grain directory", errp) < 0)
		return -1;
	return 0;
}

/* The embedded descriptor of a sparse extent: only to look for a parent. */
static int vmdk_check_embedded(struct block_node *file, const char *name, struct error **errp)
{
	int64_t file_len = block_node_length(file);
	uint8_t h[512];
	uint64_t off, size;
	char *desc;
	int ret;

	if (file_len < 512 || block_node_pread(file, h, sizeof(h), 0) < 0)
		return 0;	/* vmdk_open_sparse says what is wrong */
	off = ld_le64(h + VMDK_H_DESC_OFFSET) * VMDK_SECTOR;
	size = ld_le64(h + VMDK_H_DESC_SIZE) * VMDK_SECTOR;
	if (!off || !size)
		return 0;
	if (size > VMDK_MAX_DESCRIPTOR || off > (uint64_t)file_len ||
	    size > (uint64_t)file_len - off) {
		error_setg(errp, "VMDK extent '%s' is corrupt: its embedded descriptor (%"
			   PRIu64 " bytes at %" PRIu64 ") is too big or past the end", name,
			   size, off);
		return -1;
	}
	desc = xcalloc(1, size + 1);
	ret = block_node_pread(file, desc, size, off);
	if (ret == 0)
		ret = vmdk_check_parent(desc, name, errp);
	else
		ret = 0;
	free(desc);
	return ret;
}

static char *vmdk_extent_path(const char *desc_path, const char *fname)
{
	char *copy, *path;

	if (fname[0] == '/')
		return xstrdup(fname);
	copy = xstrdup(desc_path);
	path = xasprintf("%s/%s", dirname(copy), fname);
	free(copy);
	return path;
}

static int vmdk_open_extent_file(struct block_node *bs, struct vmdk *s, const char *fname,
				 bool read_only, struct block_node **out, struct error **errp)
{
	char *path;
	json_t *opts;
	struct block_node *file;

	if (bs->open_flags & BLOCK_OPEN_PROBED) {
		error_setg(errp, "Image '%s' was probed as a VMDK descriptor and names the "
			   "extent file '%s'; a probed image may not name other files", s->name,
			   fname);
		return -1;
	}
	if (!bs->file->filename) {
		error_setg(errp, "VMDK descriptor node '%s' has no file name to find its "
			   "extent '%s' from", bs->file->node_name, fname);
		return -1;
	}
	path = vmdk_extent_path(bs->file->filename, fname);
	opts = json_pack("{s:s, s:s}", "driver", "file", "filename", path);
	free(path);
	file = block_node_open_child(bs, opts, "file", read_only, BLOCK_OPEN_FROM_IMAGE, errp);
	json_decref(opts);
	if (!file)
		return -1;
	*out = file;
	return 0;
}

static int vmdk_parse_extent_line(struct block_node *bs, struct vmdk *s, const char *line,
				  struct error **errp)
{
	char access[11], type[11], fname[512];
	unsigned long long sectors, offset = 0;
	struct block_node *file;
	struct vmdk_extent *e;
	bool ro;
	int matches;

	matches = sscanf(line, "%10s %llu %10s \"%511[^\n\r\"]\" %llu", access, &sectors,
			 type, fname, &offset);
	if (matches < 3 || (strcmp(access, "RW") && strcmp(access, "RDONLY") &&
			    strcmp(access, "NOACCESS")))
		return 0;	/* not an extent line */
	if (sectors > INT64_MAX / VMDK_SECTOR ||
	    s->size > INT64_MAX - sectors * VMDK_SECTOR || s->n >= VMDK_MAX_EXTENTS) {
		error_setg(errp, "Invalid extent line in '%s': %s", s->name, line);
		return -1;
	}
	if (!strcmp(type, "ZERO")) {
		vmdk_add_extent(s, VMDK_ZERO, sectors * VMDK_SECTOR);
		return 0;
	}
	if (matches < 4 || (strcmp(type, "FLAT") && strcmp(type, "SPARSE") &&
			    strcmp(type, "VMFS"))) {
		error_setg(errp, "Invalid extent line in '%s' (type '%s' is not FLAT, SPARSE, "
			   "VMFS or ZERO, or no file name): %s", s->name, type, line);
		return -1;
	}
	if (!strcmp(type, "FLAT") && matches < 5) {
		error_setg(errp, "Invalid extent line in '%s' (a FLAT extent needs an "
			   "offset): %s", s->name, line);
		return -1;
	}
	ro = bs->read_only || strcmp(access, "RW");
	if (vmdk_open_extent_file(bs, s, fname, ro, &file, errp) < 0)
		return -1;
	if (!strcmp(type, "SPARSE")) {
		if (vmdk_check_embedded(file, fname, errp) < 0 ||
		    vmdk_open_sparse(s, file, fname, sectors * VMDK_SECTOR, !ro, errp) < 0) {
			block_node_unref(file);
			return -1;
		}
		e = &s->extents[s->n - 1];
	} else {
		int64_t flen = block_node_length(file);

		if (offset > INT64_MAX / VMDK_SECTOR || flen < 0 ||
		    offset * VMDK_SECTOR + sectors * VMDK_SECTOR > (uint64_t)flen) {
			error_setg(errp, "VMDK extent '%s' is shorter (%" PRId64 " bytes) than "
				   "its descriptor says (%llu sectors at sector %llu)", fname, flen,
				   sectors, offset);
			block_node_unref(file);
			return -1;
		}
		e = vmdk_add_extent(s, VMDK_FLAT, sectors * VMDK_SECTOR);
		e->file = file;
		e->flat_offset = offset * VMDK_SECTOR;
	}
	e->own_file = true;
	e->read_only = strcmp(access, "RW") != 0;
	return 0;
}

static const char *const vmdk_create_types[] = {
	"monolithicFlat", "vmfs", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
	"monolithicSparse", "streamOptimized",
};

static int vmdk_open_descriptor(struct block_node *bs, struct vmdk *s, uint64_t file_len,
				struct error **errp)
{
	char *desc, *type, *line, *save = NULL;
	bool known = false;
	int ret;

	if (file_len > VMDK_MAX_DESCRIPTOR) {
		error_setg(errp, "File too large to be a VMDK descriptor ('%s', %" PRIu64
			   " bytes)", s->name, file_len);
		return -1;
	}
	desc = xcalloc(1, file_len + 1);
	ret = file_len ? block_node_pread(bs->file, desc, file_len, 0) : 0;
	if (ret < 0) {
		free(desc);
		error_setg_errno(errp, -ret, "Could not read '%s'", s->name);
		return -1;
	}
	/*
	 * As QEMU, the descriptor is the text up to its first NUL: descriptors
	 * are padded with NULs, and QEMU's rewrite of a shorter CID leaves
	 * bytes after a NUL.
	 */
	if (!desc[0]) {
		free(desc);
		error_setg(errp, "Image '%s' is not in VMDK format (neither a KDMV header nor "
			   "a text descriptor)", s->name);
		return -1;
	}
	type = vmdk_desc_value(desc, "createType");
	for (size_t i = 0; type && i < ARRAY_SIZE(vmdk_create_types); i++)
		known |= !strcmp(type, vmdk_create_types[i]);
	if (!type || !known) {
		if (type)
			error_setg(errp, "Unsupported image type '%s'", type);
		else
			error_setg(errp, "invalid VMDK image descriptor");
		free(type);
		free(desc);
		return -1;
	}
	free(type);
	ret = vmdk_check_parent(desc, s->name, errp);
	for (line = strtok_r(desc, "\n", &save); line && ret == 0;
	     line = strtok_r(NULL, "\n", &save))
		ret = vmdk_parse_extent_line(bs, s, line, errp);
	free(desc);
	if (ret == 0 && !s->n) {
		error_setg(errp, "VMDK descriptor '%s' lists no extent", s->name);
		ret = -1;
	}
	return ret;
}

static void vmdk_release(struct block_node *bs, struct vmdk *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct vmdk_extent *e = &s->extents[i];

		if (e->own_file)
			block_node_unref(e->file);
		free(e->gd);
		free(e->rgd);
		pthread_mutex_destroy(&e->lock);
	}
	free(s->extents);
	free(s->name);
	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
}

static int vmdk_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct vmdk *s = bs->opaque;
	int64_t file_len;
	uint8_t magic[4] = { 0 };
	int ret;

	memset(s, 0, sizeof(*s));
	if (json_object_get(options, "backing") && !json_is_null(json_object_get(options,
									    "backing"))) {
		error_setg(errp, "VMDK backing images are not supported");
		return -1;
	}
	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, 0, errp);
	if (!bs->file)
		goto fail;
	s->name = xstrdup(bs->file->filename ? bs->file->filename : bs->file->node_name);
	file_len = block_node_length(bs->file);
	if (file_len < 0) {
		error_setg_errno(errp, (int)-file_len, "Could not get the size of '%s'", s->name);
		goto fail;
	}
	ret = file_len >= 4 ? block_node_pread(bs->file, magic, 4, 0) : 0;
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not read '%s'", s->name);
		goto fail;
	}
	if (!memcmp(magic, VMDK_MAGIC, 4)) {
		if (vmdk_check_embedded(bs->file, s->name, errp) < 0 ||
		    vmdk_open_sparse(s, bs->file, s->name, 0, !bs->read_only, errp) < 0)
			goto fail;
	} else if (vmdk_open_descriptor(bs, s, (uint64_t)file_len, errp) < 0) {
		goto fail;
	}
	if (!bs->filename)
		bs->filename = xstrdup(s->name);
	return 0;

fail:
	vmdk_release(bs, s);
	return -1;
}

static void vmdk_close(struct block_node *bs)
{
	struct vmdk *s = bs->opaque;

	if (!bs->read_only && bs->file)
		vmdk_flush_extents(s, bs);
	vmdk_release(bs, s);
}

static void vmdk_query(struct block_node *bs, json_t *info)
{
	struct vmdk *s = bs->opaque;
	json_t *image = json_object_get(info, "image");

	if (!image)
		image = info;
	for (size_t i = 0; i < s->n; i++) {
		if (s->extents[i].type == VMDK_SPARSE) {
			json_object_set_new(image, "cluster-size",
					    json_integer((json_int_t)s->extents[i].grain));
			break;
		}
	}
}

const struct block_driver block_driver_vmdk = {
	.name = "vmdk",
	.is_format = true,
	.state_size = sizeof(struct vmdk),
	.open = vmdk_open,
	.close = vmdk_close,
	.query = vmdk_query,
	.get_length = vmdk_get_length,
	.get_allocated_size = vmdk_get_allocated_size,
	.pread = vmdk_pread,
	.pwrite = vmdk_pwrite,
	.flush = vmdk_flush,
	.write_zeroes = vmdk_write_zeroes,
	.truncate = vmdk_truncate,
	.block_status = vmdk_block_status,
};
