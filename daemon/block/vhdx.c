/*
 * block/vhdx.c: the vhdx format driver: Hyper-V's VHDX images, dynamic and
 * fixed, read and write, with the log replayed when a dirty image is
 * opened writable, as QEMU's block/vhdx*.c.
 *
 * Layout (little endian, Microsoft's [MS-VHDX]): a file identifier at 0,
 * two 4 KiB headers at 64 and 128 KiB (the valid one with the higher
 * sequence number is current; CRC-32C), two copies of the region table at
 * 192 and 256 KiB naming the BAT and metadata regions, a metadata table
 * (block size, virtual disk size, sector sizes), and the BAT: 64-bit
 * entries, a state in bits 0-2 and the block's file offset in MiB from bit
 * 20, one per payload block with a sector-bitmap entry after every
 * chunk_ratio of them.  The log is a circular buffer of entries, each a
 * header, descriptors and 4 KiB data sectors, that must be replayed
 * before the image is used when the current header names a log GUID.
 *
 * Bounds: every region must lie inside the file; the BAT is read into
 * memory only once its region is known to be in the file and big enough;
 * every present block must lie inside the file, outside the headers and
 * regions, and overlap no other; a log entry is bounded by the log.
 *
 * Writes: a new block is appended at the end of the file (1 MiB aligned),
 * its data written and flushed, then its BAT entry written in place (not
 * through the log: the image never needs a replay for our writes, and a
 * crash leaves at worst an unused block).  Opening writable gives the
 * headers new file and data write GUIDs first, as the spec asks and QEMU
 * does.  Concurrency as block/vdi.c: BAT entries are loaded atomically,
 * s->lock serialises appends.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "block/block.h"
#include "block/byteorder.h"
#include "log.h"
#include "util.h"

#define KiB			1024ULL
#define MiB			(1024 * KiB)
#define VHDX_HEADER1		(64 * KiB)
#define VHDX_HEADER2		(128 * KiB)
#define VHDX_HEADER_SIZE	(4 * KiB)
#define VHDX_REGION1		(192 * KiB)
#define VHDX_REGION2		(256 * KiB)
#define VHDX_REGION_SIZE	(64 * KiB)
#define VHDX_MAX_TABLE_ENTRIES	2047
#define VHDX_METADATA_MAX	(1 * MiB)
#define VHDX_MAX_BLOCK		(256 * MiB)
#define VHDX_MAX_SIZE		(64ULL * 1024 * 1024 * MiB)	/* 64 TiB */
#define VHDX_LOG_SECTOR		(4 * KiB)

#define VHDX_BAT_STATE(e)	((e) & 7)
#define VHDX_BAT_OFFSET(e)	((e) & ~(MiB - 1))
#define VHDX_BLOCK_NOT_PRESENT	0
#define VHDX_BLOCK_UNDEFINED	1
#define VHDX_BLOCK_ZERO		2
#define VHDX_BLOCK_UNMAPPED	3
#define VHDX_BLOCK_FULL		6
#define VHDX_BLOCK_PARTIAL	7

/* GUIDs in their text form; vhdx_guid() lays them out as on disk. */
#define VHDX_GUID_BAT		"2DC27766-F623-4200-9D64-115E9BFD4A08"
#define VHDX_GUID_METADATA	"8B7CA206-4790-4B9A-B8FE-575F050F886E"
#define VHDX_GUID_FILE_PARAMS	"CAA16737-FA36-4D43-B3B6-33F0AA44E76B"
#define VHDX_GUID_DISK_SIZE	"2FA54224-CD1B-4876-B211-5DBED83BF4B8"
#define VHDX_GUID_PAGE83	"BECA12AB-B2E6-4523-93EF-C309E000C746"
#define VHDX_GUID_LOGICAL	"8141BF1D-A96F-4709-BA47-F233A8FAAB5F"
#define VHDX_GUID_PHYSICAL	"CDA348C7-445D-4471-9CC9-E9885251C556"
#define VHDX_GUID_PARENT	"A8D35F2D-B30B-454D-ABF7-D3D84834AB0C"

struct vhdx {
	char *name;
	uint64_t size;
	uint32_t block_size;
	uint32_t logical_sector;
	uint64_t chunk_ratio;
	uint64_t data_blocks;
	uint64_t bat_entries;
	uint64_t bat_offset, bat_len;
	uint64_t meta_offset, meta_len;
	uint64_t *bat;			/* atomic loads and stores */
	uint8_t header[VHDX_HEADER_SIZE];	/* the current header */
	uint64_t header_pos;		/* where it is */
	pthread_mutex_t lock;		/* appends */
};

/* ---- CRC-32C (Castagnoli), as the headers, tables and log use it ---- */

static uint32_t vhdx_crc_table[256];
static pthread_once_t vhdx_crc_once = PTHREAD_ONCE_INIT;

static void vhdx_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78U : c >> 1;
		vhdx_crc_table[i] = c;
	}
}

static uint32_t vhdx_crc32c(const uint8_t *buf, size_t len, size_t skip_at)
{
	uint32_t crc = 0xffffffffU;

	pthread_once(&vhdx_crc_once, vhdx_crc_init);
	for (size_t i = 0; i < len; i++) {
		/* The checksum field itself counts as zeroes. */
		uint8_t b = i >= skip_at && i < skip_at + 4 ? 0 : buf[i];

		crc = vhdx_crc_table[(crc ^ b) & 0xff] ^ (crc >> 8);
	}
	return crc ^ 0xffffffffU;
}

static bool vhdx_crc_ok(const uint8_t *buf, size_t len, size_t at)
{
	return ld_le32(buf + at) == vhdx_crc32c(buf, len, at);
}

/* "2DC27766-F623-..." to its 16 bytes on disk (first three fields little endian). */
static void vhdx_guid(const char *text, uint8_t *out)
{
	uint8_t be[16];
	int n = 0;

	for (const char *p = text; *p && n < 32; p++) {
		int v;

		if (*p == '-')
			continue;
		v = *p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10;
		if (n % 2 == 0)
			be[n / 2] = (uint8_t)(v << 4);
		else
			be[n / 2] |= (uint8_t)v;
		n++;
	}
	out[0] = be[3], out[1] = be[2], out[2] = be[1], out[3] = be[0];
	out[4] = be[5], out[5] = be[4];
	out[6] = be[7], out[7] = be[6];
	memcpy(out + 8, be + 8, 8);
}

static bool vhdx_guid_is(const uint8_t *p, const char *text)
{
	uint8_t g[16];

	vhdx_guid(text, g);
	return !memcmp(p, g, 16);
}

static bool vhdx_guid_is_null(const uint8_t *p)
{
	for (int i = 0; i < 16; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/* ---- I/O ---- */

static int vhdx_io_error(int ret)
{
	return ret == -EINVAL ? -EIO : ret;
}

static uint64_t vhdx_bat_index(struct vhdx *s, uint64_t block)
{
	return block + block / s->chunk_ratio;
}

static uint64_t vhdx_entry(struct vhdx *s, uint64_t block)
{
	return __atomic_load_n(&s->bat[vhdx_bat_index(s, block)], __ATOMIC_ACQUIRE);
}

static bool vhdx_present(uint64_t e)
{
	return VHDX_BAT_STATE(e) == VHDX_BLOCK_FULL;
}

static int vhdx_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	struct vhdx *s = bs->opaque;
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t block = offset / s->block_size, in_block = offset % s->block_size;
		size_t n = (size_t)MIN((uint64_t)len, s->block_size - in_block);
		uint64_t e = vhdx_entry(s, block);

		if (vhdx_present(e)) {
			int ret = block_node_pread(bs->file, p, n, VHDX_BAT_OFFSET(e) + in_block);

			if (ret < 0)
				return vhdx_io_error(ret);
		} else {
			memset(p, 0, n);
		}
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

/* Append a block for `block` (s->lock held, not present): data, flush, BAT entry. */
static int vhdx_allocate(struct block_node *bs, struct vhdx *s, uint64_t block,
			 const uint8_t *buf, size_t n, uint64_t in_block, uint64_t *entry)
{
	int64_t file_len = block_node_length(bs->file);
	uint64_t start, idx = vhdx_bat_index(s, block);
	uint8_t le[8];
	int ret;

	if (file_len < 0)
		return (int)file_len;
	start = ((uint64_t)file_len + MiB - 1) / MiB * MiB;
	if (start > (UINT64_MAX >> 20 << 20) - s->block_size)
		return -ENOSPC;
	ret = block_node_truncate(bs->file, start + s->block_size);
	if (ret == 0)
		ret = block_node_pwrite(bs->file, buf, n, start + in_block);
	if (ret == 0)
		ret = block_node_flush(bs->file);
	if (ret < 0)
		return ret;
	*entry = start | VHDX_BLOCK_FULL;
	st_le64(le, *entry);
	ret = block_node_pwrite(bs->file, le, 8, s->bat_offset + idx * 8);
	if (ret == 0)
		__atomic_store_n(&s->bat[idx], *entry, __ATOMIC_RELEASE);
	return ret;
}

static int vhdx_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset)
{
	struct vhdx *s = bs->opaque;
	const uint8_t *p = buf;

	while (len > 0) {
		uint64_t block = offset / s->block_size, in_block = offset % s->block_size;
		size_t n = (size_t)MIN((uint64_t)len, s->block_size - in_block);
		uint64_t e = vhdx_entry(s, block);
		bool written = false;
		int ret = 0;

		if (!vhdx_present(e)) {
			pthread_mutex_lock(&s->lock);
			e = vhdx_entry(s, block);
			if (!vhdx_present(e)) {
				ret = vhdx_allocate(bs, s, block, p, n, in_block, &e);
				written = true;
			}
			pthread_mutex_unlock(&s->lock);
		}
		if (ret == 0 && !written)
			ret = block_node_pwrite(bs->file, p, n, VHDX_BAT_OFFSET(e) + in_block);
		if (ret < 0)
			return vhdx_io_error(ret);
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

static int vhdx_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len, int flags)
{
	struct vhdx *s = bs->opaque;

	while (len > 0) {
		uint64_t block = offset / s->block_size, in_block = offset % s->block_size;
		uint64_t n = MIN(len, s->block_size - in_block);
		uint64_t e = vhdx_entry(s, block);

		if (vhdx_present(e)) {
			int ret = block_node_write_zeroes(bs->file, VHDX_BAT_OFFSET(e) + in_block,
							  n, flags);
			if (ret < 0)
				return vhdx_io_error(ret);
		}
		offset += n;
		len -= n;
	}
	return 0;
}

static int vhdx_flush(struct block_node *bs)
{
	return block_node_flush(bs->file);
}

static int vhdx_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			     uint64_t *pnum)
{
	struct vhdx *s = bs->opaque;
	uint64_t block = offset / s->block_size;
	bool present = vhdx_present(vhdx_entry(s, block));
	uint64_t run = MIN(len, s->block_size - offset % s->block_size);

	while (run < len && vhdx_present(vhdx_entry(s, block + 1)) == present) {
		block++;
		run = MIN(len, run + s->block_size);
	}
	*pnum = run;
	return present ? BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED : BLOCK_STATUS_ZERO;
}

static int vhdx_truncate(struct block_node *bs, uint64_t length)
{
	return length == ((struct vhdx *)bs->opaque)->size ? 0 : -ENOTSUP;
}

static int64_t vhdx_get_length(struct block_node *bs)
{
	return (int64_t)((struct vhdx *)bs->opaque)->size;
}

static int64_t vhdx_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

/* ---- headers ---- */

#define VHDX_H_CHECKSUM		4
#define VHDX_H_SEQUENCE		8
#define VHDX_H_FILE_GUID	16
#define VHDX_H_DATA_GUID	32
#define VHDX_H_LOG_GUID		48
#define VHDX_H_LOG_VERSION	64
#define VHDX_H_VERSION		66
#define VHDX_H_LOG_LENGTH	68
#define VHDX_H_LOG_OFFSET	72

static bool vhdx_header_valid(const uint8_t *h)
{
	return !memcmp(h, "head", 4) && vhdx_crc_ok(h, VHDX_HEADER_SIZE, VHDX_H_CHECKSUM) &&
	       ld_le16(h + VHDX_H_VERSION) == 1;
}

static int vhdx_read_headers(struct block_node *bs, struct vhdx *s, struct error **errp)
{
	uint8_t h1[VHDX_HEADER_SIZE], h2[VHDX_HEADER_SIZE];
	bool ok1, ok2;
	int ret;

	ret = block_node_pread(bs->file, h1, sizeof(h1), VHDX_HEADER1);
	if (ret == 0)
		ret = block_node_pread(bs->file, h2, sizeof(h2), VHDX_HEADER2);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not read the VHDX headers of '%s'", s->name);
		return -1;
	}
	ok1 = vhdx_header_valid(h1);
	ok2 = vhdx_header_valid(h2);
	if (!ok1 && !ok2) {
		error_setg(errp, "No valid VHDX header found");
		return -1;
	}
	if (ok1 && (!ok2 || ld_le64(h1 + VHDX_H_SEQUENCE) >= ld_le64(h2 + VHDX_H_SEQUENCE))) {
		memcpy(s->header, h1, sizeof(h1));
		s->header_pos = VHDX_HEADER1;
	} else {
		memcpy(s->header, h2, sizeof(h2));
		s->header_pos = VHDX_HEADER2;
	}
	return 0;
}

/*
 * Write the header twice, to the other slot then to this one, each with
 * the next sequence number, so both are current (as QEMU's
 * vhdx_update_headers).  new_guids: fresh file and data write GUIDs.
 */
static int vhdx_update_headers(struct block_node *bs, struct vhdx *s, bool new_guids,
			       bool clear_log)
{
	int ret = 0;

	if (new_guids &&
	    (getrandom(s->header + VHDX_H_FILE_GUID, 16, 0) != 16 ||
	     getrandom(s->header + VHDX_H_DATA_GUID, 16, 0) != 16))
		return -EIO;
	if (clear_log)
		memset(s->header + VHDX_H_LOG_GUID, 0, 16);
	for (int i = 0; i < 2 && ret == 0; i++) {
		uint64_t pos = s->header_pos == VHDX_HEADER1 ? VHDX_HEADER2 : VHDX_HEADER1;

		st_le64(s->header + VHDX_H_SEQUENCE, ld_le64(s->header + VHDX_H_SEQUENCE) + 1);
		st_le32(s->header + VHDX_H_CHECKSUM,
			vhdx_crc32c(s->header, VHDX_HEADER_SIZE, VHDX_H_CHECKSUM));
		ret = block_node_pwrite(bs->file, s->header, VHDX_HEADER_SIZE, pos);
		if (ret == 0)
			ret = block_node_flush(bs->file);
		s->header_pos = pos;
	}
	return ret;
}

/* ---- log replay ---- */

struct vhdx_log {
	struct block_node *file;
	uint64_t offset, length;	/* the log region */
	const uint8_t *guid;
};

/* Read len bytes at `pos` of the circular log. */
static int vhdx_log_read(struct vhdx_log *log, uint64_t pos, uint8_t *buf, uint64_t len)
{
	while (len > 0) {
		uint64_t n = MIN(len, log->length - pos);
		int ret = block_node_pread(log->file, buf, n, log->offset + pos);

		if (ret < 0)
			return ret;
		buf += n;
		len -= n;
		pos = 0;
	}
	return 0;
}

#define VHDX_LE_CHECKSUM	4
#define VHDX_LE_LENGTH		8
#define VHDX_LE_TAIL		12
#define VHDX_LE_SEQUENCE	16
#define VHDX_LE_DESC_COUNT	24
#define VHDX_LE_GUID		32
#define VHDX_LE_FLUSHED		48
#define VHDX_LE_LAST		56
#define VHDX_LE_HEADER		64

/*
 * The entry at `pos` if it is valid (signature, GUID, length, CRC,
 * descriptors and data sectors agreeing): a malloc'd copy, else NULL.
 */
static uint8_t *vhdx_log_entry(struct vhdx_log *log, uint64_t pos)
{
	uint8_t h[VHDX_LE_HEADER];
	uint64_t len, descs, desc_bytes, data = 0;
	uint8_t *e;

	if (vhdx_log_read(log, pos, h, sizeof(h)) < 0 || memcmp(h, "loge", 4) ||
	    memcmp(h + VHDX_LE_GUID, log->guid, 16))
		return NULL;
	len = ld_le32(h + VHDX_LE_LENGTH);
	descs = ld_le32(h + VHDX_LE_DESC_COUNT);
	desc_bytes = (VHDX_LE_HEADER + descs * 32 + VHDX_LOG_SECTOR - 1) /
		     VHDX_LOG_SECTOR * VHDX_LOG_SECTOR;
	if (!len || len % VHDX_LOG_SECTOR || len > log->length || desc_bytes > len)
		return NULL;
	e = xmalloc(len);
	if (vhdx_log_read(log, pos, e, len) < 0 || !vhdx_crc_ok(e, len, VHDX_LE_CHECKSUM))
		goto bad;
	for (uint64_t i = 0; i < descs; i++) {
		const uint8_t *d = e + VHDX_LE_HEADER + i * 32;

		if (ld_le64(d + 24) != ld_le64(e + VHDX_LE_SEQUENCE))
			goto bad;
		if (!memcmp(d, "desc", 4)) {
			const uint8_t *sec = e + desc_bytes + data * VHDX_LOG_SECTOR;

			if (desc_bytes + (data + 1) * VHDX_LOG_SECTOR > len ||
			    memcmp(sec, "data", 4) ||
			    ((uint64_t)ld_le32(sec + 4) << 32 | ld_le32(sec + 4092)) !=
			    ld_le64(e + VHDX_LE_SEQUENCE))
				goto bad;
			data++;
		} else if (memcmp(d, "zero", 4)) {
			goto bad;
		}
	}
	if (desc_bytes + data * VHDX_LOG_SECTOR != len)
		goto bad;
	return e;
bad:
	free(e);
	return NULL;
}

static int vhdx_log_apply(struct block_node *bs, const uint8_t *e, uint64_t max_end)
{
	uint64_t descs = ld_le32(e + VHDX_LE_DESC_COUNT), data = 0;
	uint64_t desc_bytes = (VHDX_LE_HEADER + descs * 32 + VHDX_LOG_SECTOR - 1) /
			      VHDX_LOG_SECTOR * VHDX_LOG_SECTOR;
	int ret = 0;

	for (uint64_t i = 0; i < descs && ret == 0; i++) {
		const uint8_t *d = e + VHDX_LE_HEADER + i * 32;
		uint64_t off = ld_le64(d + 16);

		if (!memcmp(d, "zero", 4)) {
			uint64_t n = ld_le64(d + 8);

			if (off % VHDX_LOG_SECTOR || n % VHDX_LOG_SECTOR || off > max_end ||
			    n > max_end - off)
				return -EIO;
			ret = block_node_write_zeroes(bs->file, off, n, 0);
		} else {
			const uint8_t *sec = e + desc_bytes + data++ * VHDX_LOG_SECTOR;
			uint8_t out[VHDX_LOG_SECTOR];

			if (off % VHDX_LOG_SECTOR || off > max_end - VHDX_LOG_SECTOR)
				return -EIO;
			memcpy(out, d + 8, 8);		/* leading bytes */
			memcpy(out + 8, sec + 8, 4084);
			memcpy(out + 4092, d + 4, 4);	/* trailing bytes */
			ret = block_node_pwrite(bs->file, out, sizeof(out), off);
		}
	}
	return ret;
}

/*
 * Replay the active sequence: the valid entry with the highest sequence
 * number is the head; its tail field is where the sequence starts, and
 * every entry from there to the head must be valid and numbered one more
 * than the one before.  Then grow the file to the head's last file offset
 * and clear the log GUID from the headers.
 */
static int vhdx_replay(struct block_node *bs, struct vhdx *s, uint64_t file_len,
		       struct error **errp)
{
	struct vhdx_log log = {
		.file = bs->file,
		.offset = ld_le64(s->header + VHDX_H_LOG_OFFSET),
		.length = ld_le32(s->header + VHDX_H_LOG_LENGTH),
		.guid = s->header + VHDX_H_LOG_GUID,
	};
	uint8_t *head = NULL, *e;
	uint64_t head_pos = 0, pos, seq, last;
	int ret;

	if (!log.length || log.length % MiB || log.offset % MiB || log.offset > file_len ||
	    log.length > file_len - log.offset || log.offset < 1 * MiB) {
		error_setg(errp, "VHDX image '%s' is corrupt: its log (%" PRIu64 " bytes at %"
			   PRIu64 ") is not inside the file", s->name, log.length, log.offset);
		return -1;
	}
	for (pos = 0; pos < log.length; pos += VHDX_LOG_SECTOR) {
		e = vhdx_log_entry(&log, pos);
		if (e && (!head || ld_le64(e + VHDX_LE_SEQUENCE) > ld_le64(head + VHDX_LE_SEQUENCE))) {
			free(head);
			head = e;
			head_pos = pos;
		} else {
			free(e);
		}
	}
	if (!head) {
		/* A log GUID with no valid entry: nothing was ever logged. */
		return vhdx_update_headers(bs, s, false, true) < 0 ? -1 : 0;
	}
	last = ld_le64(head + VHDX_LE_LAST);
	pos = ld_le32(head + VHDX_LE_TAIL);
	seq = 0;
	for (uint64_t steps = 0;; steps++) {
		e = pos % VHDX_LOG_SECTOR || pos >= log.length || steps > log.length / VHDX_LOG_SECTOR ?
		    NULL : vhdx_log_entry(&log, pos);
		if (!e || (seq && ld_le64(e + VHDX_LE_SEQUENCE) != seq + 1)) {
			free(e);
			free(head);
			error_setg(errp, "VHDX image '%s' is corrupt: its log's active sequence "
				   "is broken", s->name);
			return -1;
		}
		seq = ld_le64(e + VHDX_LE_SEQUENCE);
		/* Entries may extend the file up to the head's last file offset. */
		ret = vhdx_log_apply(bs, e, MAX(last, file_len));
		if (ret == 0 && pos == head_pos) {
			free(e);
			break;
		}
		pos = (pos + ld_le32(e + VHDX_LE_LENGTH)) % log.length;
		free(e);
		if (ret < 0) {
			free(head);
			error_setg_errno(errp, -ret, "Could not replay the VHDX log of '%s'",
					 s->name);
			return -1;
		}
	}
	free(head);
	ret = 0;
	if (last > file_len)
		ret = block_node_truncate(bs->file, last);
	if (ret == 0)
		ret = block_node_flush(bs->file);
	if (ret == 0)
		ret = vhdx_update_headers(bs, s, false, true);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not replay the VHDX log of '%s'", s->name);
		return -1;
	}
	return 0;
}

/* ---- regions and metadata ---- */

static int vhdx_read_regions(struct block_node *bs, struct vhdx *s, uint64_t file_len,
			     struct error **errp)
{
	uint8_t *r = xmalloc(VHDX_REGION_SIZE);
	uint32_t count;
	int ret = block_node_pread(bs->file, r, VHDX_REGION_SIZE, VHDX_REGION1);

	/* The second copy when the first is torn. */
	if (ret == 0 && (memcmp(r, "regi", 4) || !vhdx_crc_ok(r, VHDX_REGION_SIZE, 4)))
		ret = block_node_pread(bs->file, r, VHDX_REGION_SIZE, VHDX_REGION2);
	if (ret < 0 || memcmp(r, "regi", 4) || !vhdx_crc_ok(r, VHDX_REGION_SIZE, 4)) {
		error_setg(errp, "VHDX image '%s' has no valid region table", s->name);
		goto fail;
	}
	count = ld_le32(r + 8);
	if (count > VHDX_MAX_TABLE_ENTRIES) {
		error_setg(errp, "VHDX region table of '%s' has too many entries (%" PRIu32 ")",
			   s->name, count);
		goto fail;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *en = r + 16 + 32 * (size_t)i;
		uint64_t off = ld_le64(en + 16), len = ld_le32(en + 24);
		bool bat = vhdx_guid_is(en, VHDX_GUID_BAT);
		bool meta = vhdx_guid_is(en, VHDX_GUID_METADATA);

		if (!bat && !meta) {
			if (ld_le32(en + 28) & 1) {
				error_setg(errp, "Unsupported VHDX region in '%s' (a required "
					   "region of unknown kind)", s->name);
				goto fail;
			}
			continue;
		}
		if (off % MiB || len % MiB || !len || off < 1 * MiB || off > file_len ||
		    len > file_len - off) {
			error_setg(errp, "VHDX image '%s' is corrupt: its %s region (%" PRIu64
				   " bytes at %" PRIu64 ") is not inside the file", s->name,
				   bat ? "BAT" : "metadata", len, off);
			goto fail;
		}
		if (bat) {
			s->bat_offset = off;
			s->bat_len = len;
		} else {
			s->meta_offset = off;
			s->meta_len = len;
		}
	}
	if (!s->bat_len || !s->meta_len) {
		error_setg(errp, "VHDX image '%s' lacks a %s region", s->name,
			   s->bat_len ? "metadata" : "BAT");
		goto fail;
	}
	if (s->bat_offset < s->meta_offset + s->meta_len &&
	    s->meta_offset < s->bat_offset + s->bat_len) {
		error_setg(errp, "VHDX image '%s' is corrupt: its BAT and metadata regions "
			   "overlap", s->name);
		goto fail;
	}
	free(r);
	return 0;
fail:
	free(r);
	return -1;
}

static int vhdx_read_metadata(struct block_node *bs, struct vhdx *s, struct error **errp)
{
	uint64_t len = MIN(s->meta_len, VHDX_METADATA_MAX);
	uint8_t *m = xmalloc(len);
	bool have_params = false, have_size = false, have_logical = false;
	uint16_t count;
	int ret = block_node_pread(bs->file, m, len, s->meta_offset);

	if (ret < 0 || memcmp(m, "metadata", 8)) {
		error_setg(errp, "VHDX image '%s' has no valid metadata table", s->name);
		goto fail;
	}
	count = ld_le16(m + 10);
	if (count > VHDX_MAX_TABLE_ENTRIES) {
		error_setg(errp, "VHDX metadata table of '%s' has too many entries", s->name);
		goto fail;
	}
	for (uint16_t i = 0; i < count; i++) {
		const uint8_t *en = m + 32 + 32 * (size_t)i;
		uint64_t off = ld_le32(en + 16), ilen = ld_le32(en + 20);
		uint32_t flags = ld_le32(en + 24);
		const uint8_t *item = m + off;

		if (off > len || ilen > len - off || off < 64 * KiB) {
			error_setg(errp, "VHDX image '%s' is corrupt: metadata item %u lies "
				   "outside its region", s->name, i);
			goto fail;
		}
		if (vhdx_guid_is(en, VHDX_GUID_FILE_PARAMS) && ilen >= 8) {
			s->block_size = ld_le32(item);
			if (ld_le32(item + 4) & 2) {
				error_setg(errp, "VHDX image '%s' is a differencing image, which "
					   "names a parent file: not supported", s->name);
				goto fail;
			}
			have_params = true;
		} else if (vhdx_guid_is(en, VHDX_GUID_DISK_SIZE) && ilen >= 8) {
			s->size = ld_le64(item);
			have_size = true;
		} else if (vhdx_guid_is(en, VHDX_GUID_LOGICAL) && ilen >= 4) {
			s->logical_sector = ld_le32(item);
			have_logical = true;
		} else if (vhdx_guid_is(en, VHDX_GUID_PARENT)) {
			error_setg(errp, "VHDX image '%s' has a parent locator: differencing "
				   "images are not supported", s->name);
			goto fail;
		} else if (!vhdx_guid_is(en, VHDX_GUID_PHYSICAL) &&
			   !vhdx_guid_is(en, VHDX_GUID_PAGE83) && (flags & 4)) {
			error_setg(errp, "Unsupported VHDX metadata item in '%s' (a required "
				   "item of unknown kind)", s->name);
			goto fail;
		}
	}
	if (!have_params || !have_size || !have_logical) {
		error_setg(errp, "VHDX image '%s' lacks required metadata (file parameters, "
			   "virtual disk size or logical sector size)", s->name);
		goto fail;
	}
	if (s->block_size < 1 * MiB || s->block_size > VHDX_MAX_BLOCK ||
	    (s->block_size & (s->block_size - 1))) {
		error_setg(errp, "VHDX image '%s' has an invalid block size %" PRIu32, s->name,
			   s->block_size);
		goto fail;
	}
	if (s->logical_sector != 512 && s->logical_sector != 4096) {
		error_setg(errp, "VHDX image '%s' has an invalid logical sector size %" PRIu32,
			   s->name, s->logical_sector);
		goto fail;
	}
	if (s->size > VHDX_MAX_SIZE || s->size % s->logical_sector) {
		error_setg(errp, "VHDX image '%s' has an invalid virtual disk size %" PRIu64,
			   s->name, s->size);
		goto fail;
	}
	free(m);
	return 0;
fail:
	free(m);
	return -1;
}

static int vhdx_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every present block inside the file, after the fixed headers, clear of the
 * regions and log, and overlapping no other. */
static int vhdx_check_bat(struct vhdx *s, uint64_t file_len, struct error **errp)
{
	uint64_t *starts = xmalloc((size_t)s->data_blocks * 8 + 8), n = 0, prev_end = 0;
	uint64_t log_off = ld_le64(s->header + VHDX_H_LOG_OFFSET);
	uint64_t log_len = ld_le32(s->header + VHDX_H_LOG_LENGTH);
	const uint64_t regions[3][2] = {
		{ s->bat_offset, s->bat_len }, { s->meta_offset, s->meta_len },
		{ log_off, log_len },
	};
	int ret = 0;

	for (uint64_t b = 0; b < s->data_blocks && ret == 0; b++) {
		uint64_t e = s->bat[vhdx_bat_index(s, b)], off = VHDX_BAT_OFFSET(e);

		if (VHDX_BAT_STATE(e) == VHDX_BLOCK_PARTIAL || VHDX_BAT_STATE(e) == 4 ||
		    VHDX_BAT_STATE(e) == 5) {
			error_setg(errp, "VHDX image '%s' is corrupt: block %" PRIu64 " has state "
				   "%" PRIu64, s->name, b, VHDX_BAT_STATE(e));
			ret = -1;
		} else if (vhdx_present(e)) {
			if (off < 1 * MiB || off > file_len || s->block_size > file_len - off) {
				error_setg(errp, "VHDX image '%s' is corrupt: block %" PRIu64 " at %"
					   PRIu64 " is not inside the file", s->name, b, off);
				ret = -1;
			}
			for (int r = 0; r < 3 && ret == 0; r++) {
				if (off < regions[r][0] + regions[r][1] &&
				    regions[r][0] < off + s->block_size) {
					error_setg(errp, "VHDX image '%s' is corrupt: block %" PRIu64
						   " overlaps its metadata", s->name, b);
					ret = -1;
				}
			}
			starts[n++] = off;
		}
	}
	if (ret == 0) {
		qsort(starts, n, 8, vhdx_cmp_u64);
		for (uint64_t i = 0; i < n && ret == 0; i++) {
			if (i && starts[i] < prev_end) {
				error_setg(errp, "VHDX image '%s' is corrupt: two blocks overlap at %"
					   PRIu64, s->name, starts[i]);
				ret = -1;
			}
			prev_end = starts[i] + s->block_size;
		}
	}
	free(starts);
	return ret;
}

static int vhdx_load(struct block_node *bs, struct vhdx *s, struct error **errp)
{
	int64_t file_len = block_node_length(bs->file);
	uint8_t ident[8];
	uint8_t *raw;
	int ret;

	if (file_len < 0) {
		error_setg_errno(errp, (int)-file_len, "Could not get the size of '%s'", s->name);
		return -1;
	}
	if ((uint64_t)file_len < 1 * MiB ||
	    block_node_pread(bs->file, ident, 8, 0) < 0 || memcmp(ident, "vhdxfile", 8)) {
		error_setg(errp, "Image '%s' is not in VHDX format (no 'vhdxfile' identifier)",
			   s->name);
		return -1;
	}
	if (vhdx_read_headers(bs, s, errp) < 0)
		return -1;
	if (!vhdx_guid_is_null(s->header + VHDX_H_LOG_GUID)) {
		if (bs->read_only) {
			/* QEMU's words, its hint folded in. */
			error_setg(errp, "VHDX image file '%s' opened read-only, but contains a "
				   "log that needs to be replayed (open it writable, or run "
				   "qemu-img check -r all '%s')", s->name, s->name);
			return -1;
		}
		if (vhdx_replay(bs, s, (uint64_t)file_len, errp) < 0)
			return -1;
		file_len = block_node_length(bs->file);
		if (file_len < 0) {
			error_setg_errno(errp, (int)-file_len, "Could not get the size of '%s'",
					 s->name);
			return -1;
		}
	}
	if (vhdx_read_regions(bs, s, (uint64_t)file_len, errp) < 0 ||
	    vhdx_read_metadata(bs, s, errp) < 0)
		return -1;
	s->chunk_ratio = ((uint64_t)1 << 23) * s->logical_sector / s->block_size;
	s->data_blocks = (s->size + s->block_size - 1) / s->block_size;
	s->bat_entries = s->data_blocks ? s->data_blocks + (s->data_blocks - 1) / s->chunk_ratio
					: 0;
	if (s->bat_entries * 8 > s->bat_len) {
		error_setg(errp, "VHDX image '%s' is corrupt: its BAT region (%" PRIu64 " bytes) "
			   "cannot hold %" PRIu64 " entries", s->name, s->bat_len, s->bat_entries);
		return -1;
	}
	s->bat = xmalloc((size_t)s->bat_entries * 8 + 8);
	raw = (uint8_t *)s->bat;
	ret = s->bat_entries ? block_node_pread(bs->file, raw, s->bat_entries * 8,
						s->bat_offset) : 0;
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not read the BAT of '%s'", s->name);
		return -1;
	}
	for (uint64_t i = 0; i < s->bat_entries; i++)
		s->bat[i] = ld_le64(raw + 8 * i);
	return vhdx_check_bat(s, (uint64_t)file_len, errp);
}

static void vhdx_release(struct block_node *bs, struct vhdx *s)
{
	free(s->bat);
	free(s->name);
	pthread_mutex_destroy(&s->lock);
	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
}

static int vhdx_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct vhdx *s = bs->opaque;
	int ret;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, 0, errp);
	if (!bs->file)
		goto fail;
	s->name = xstrdup(bs->file->filename ? bs->file->filename : bs->file->node_name);
	if (vhdx_load(bs, s, errp) < 0)
		goto fail;
	if (!bs->read_only) {
		ret = vhdx_update_headers(bs, s, true, false);
		if (ret < 0) {
			error_setg_errno(errp, -ret, "Could not update the VHDX headers of '%s'",
					 s->name);
			goto fail;
		}
	}
	if (!bs->filename)
		bs->filename = xstrdup(s->name);
	return 0;

fail:
	vhdx_release(bs, s);
	return -1;
}

static void vhdx_close(struct block_node *bs)
{
	if (!bs->read_only && bs->file)
		block_node_flush(bs->file);
	vhdx_release(bs, bs->opaque);
}

static void vhdx_query(struct block_node *bs, json_t *info)
{
	struct vhdx *s = bs->opaque;
	json_t *image = json_object_get(info, "image");

	if (!image)
		image = info;
	json_object_set_new(image, "cluster-size", json_integer(s->block_size));
}

const struct block_driver block_driver_vhdx = {
	.name = "vhdx",
	.is_format = true,
	.state_size = sizeof(struct vhdx),
	.open = vhdx_open,
	.close = vhdx_close,
	.query = vhdx_query,
	.get_length = vhdx_get_length,
	.get_allocated_size = vhdx_get_allocated_size,
	.pread = vhdx_pread,
	.pwrite = vhdx_pwrite,
	.flush = vhdx_flush,
	.write_zeroes = vhdx_write_zeroes,
	.truncate = vhdx_truncate,
	.block_status = vhdx_block_status,
};
