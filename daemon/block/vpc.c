/*
 * block/vpc.c: the vpc format driver: Microsoft's VHD (Virtual PC,
 * Hyper-V), fixed and dynamic, read and write, with QEMU's driver name and
 * its rules for the disk size.
 *
 * Layout (big endian, Microsoft's "Virtual Hard Disk Image Format
 * Specification"): a 512-byte footer ("conectix") at the end of the file;
 * a fixed disk is its data followed by that footer.  A dynamic disk also
 * keeps a copy of the footer at 0, a dynamic header ("cxsparse") at the
 * footer's data_offset, and a block allocation table (BAT) of 32-bit
 * sector numbers, one per block (2 MiB by default), each pointing at a
 * sector bitmap followed by the block's data; 0xffffffff is a block never
 * written, which reads as zeroes.
 *
 * The size: Virtual PC sizes a disk by its CHS geometry, Hyper-V and most
 * others by the footer's current_size.  As QEMU 11 (vpc_ignore_current_size),
 * the geometry counts only for images made by Virtual PC ("vpc ") and by
 * QEMU without force_size ("qemu"), and never when it is the maximum
 * geometry, which cannot express a bigger disk.
 *
 * Which footer: the one at the end when it is valid (cookie and checksum),
 * else the copy at 0 (a dynamic image whose end was cut by a crash while a
 * block was appended).  QEMU looks at 0 first; the end comes first here
 * because sector 0 of a fixed disk belongs to its guest, who could plant a
 * footer there.
 *
 * Bounds: the BAT must lie inside the file and every block it maps must
 * lie between the BAT and the end of the file without overlapping another,
 * so nothing is allocated beyond the file's size and no write through one
 * block lands in another or in the metadata.
 *
 * Concurrency as block/vdi.c: BAT entries are loaded atomically, s->lock
 * serialises appends.  Consistency: as QEMU, an append writes the block's
 * bitmap and the footer at the new end, flushes, then writes the BAT
 * entry: a crash leaves at worst an unused block, never a BAT entry
 * pointing past the end.  Data writes are durable after flush.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "block/byteorder.h"
#include "log.h"
#include "util.h"

#define VPC_FOOTER_SIZE		512
#define VPC_DYN_HEADER_SIZE	1024
#define VPC_SECTOR		512
#define VPC_TYPE_FIXED		2
#define VPC_TYPE_DYNAMIC	3
#define VPC_TYPE_DIFFERENCING	4
#define VPC_BAT_UNUSED		0xffffffffU
/* QEMU's limits: 2040 GiB, and the largest CHS geometry. */
#define VPC_MAX_SECTORS		0xff000000ULL
#define VPC_MAX_GEOMETRY	(65535ULL * 16 * 255)
/* A block bigger than this is no VHD anyone makes (the spec's is 2 MiB). */
#define VPC_MAX_BLOCK_SIZE	(256U * 1024 * 1024)

/* Footer field offsets. */
#define VPC_F_DATA_OFFSET	16
#define VPC_F_CREATOR_APP	28
#define VPC_F_CURRENT_SIZE	48
#define VPC_F_CYLS		56
#define VPC_F_HEADS		58
#define VPC_F_SECS		59
#define VPC_F_TYPE		60
#define VPC_F_CHECKSUM		64
/* Dynamic header field offsets. */
#define VPC_D_TABLE_OFFSET	16
#define VPC_D_MAX_ENTRIES	28
#define VPC_D_BLOCK_SIZE	32

struct vpc {
	char *name;
	uint64_t size;			/* guest bytes */
	uint32_t type;			/* VPC_TYPE_FIXED or _DYNAMIC */
	uint8_t footer[VPC_FOOTER_SIZE];
	/* Dynamic disks. */
	uint32_t block_size;
	uint32_t bitmap_size;
	uint32_t entries;		/* max_table_entries */
	uint64_t bat_offset;
	uint32_t *bat;			/* host order; atomic loads and stores */
	pthread_mutex_t lock;		/* appends: free_offset, BAT writes */
	uint64_t free_offset;		/* where the next block goes (under lock) */
};

static uint32_t vpc_checksum(const uint8_t *footer)
{
	uint32_t sum = 0;

	for (int i = 0; i < VPC_FOOTER_SIZE; i++) {
		if (i < VPC_F_CHECKSUM || i >= VPC_F_CHECKSUM + 4)
			sum += footer[i];
	}
	return ~sum;
}

static bool vpc_footer_valid(const uint8_t *footer)
{
	return !memcmp(footer, "conectix", 8) &&
	       ld_be32(footer + VPC_F_CHECKSUM) == vpc_checksum(footer);
}

static uint32_t vpc_entry(struct vpc *s, uint64_t block)
{
	return __atomic_load_n(&s->bat[block], __ATOMIC_ACQUIRE);
}

static uint64_t vpc_data_offset(struct vpc *s, uint32_t entry, uint64_t in_block)
{
	return (uint64_t)entry * VPC_SECTOR + s->bitmap_size + in_block;
}

static int vpc_io_error(int ret)
{
	return ret == -EINVAL ? -EIO : ret;
}

static int vpc_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	struct vpc *s = bs->opaque;
	uint8_t *p = buf;

	if (s->type == VPC_TYPE_FIXED)
		return vpc_io_error(block_node_pread(bs->file, buf, len, offset));
	while (len > 0) {
		uint64_t block = offset / s->block_size, in_block = offset % s->block_size;
		size_t n = (size_t)MIN((uint64_t)len, s->block_size - in_block);
		uint32_t entry = vpc_entry(s, block);

		if (entry != VPC_BAT_UNUSED) {
			int ret = block_node_pread(bs->file, p, n,
						   vpc_data_offset(s, entry, in_block));
			if (ret < 0)
				return vpc_io_error(ret);
		} else {
			memset(p, 0, n);
		}
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

/*
 * Append a block for guest block `block` (s->lock held, entry unused):
 * bitmap (all ones, as QEMU: every sector of an allocated block is
 * data), zeroed data, the footer at the new end, a flush, the BAT entry.
 */
static int vpc_allocate(struct block_node *bs, struct vpc *s, uint64_t block,
			uint32_t *entry_out)
{
	uint64_t start = s->free_offset, end = start + s->bitmap_size + s->block_size;
	int64_t file_len = block_node_length(bs->file);
	uint8_t *bitmap, sector[VPC_SECTOR];
	uint64_t first;
	int ret;

	if (file_len < 0)
		return (int)file_len;
	if (start / VPC_SECTOR > UINT32_MAX - 1 || end > INT64_MAX - VPC_FOOTER_SIZE)
		return -ENOSPC;
	if ((uint64_t)file_len < end + VPC_FOOTER_SIZE) {
		ret = block_node_truncate(bs->file, end + VPC_FOOTER_SIZE);
		if (ret < 0)
			return ret;
	}
	/* Bytes that were there before (an old footer, a leaked block) go. */
	if ((uint64_t)file_len > start + s->bitmap_size) {
		ret = block_node_write_zeroes(bs->file, start + s->bitmap_size,
					      MIN((uint64_t)file_len, end) - start -
					      s->bitmap_size, 0);
		if (ret < 0)
			return ret;
	}
	bitmap = xmalloc(s->bitmap_size);
	memset(bitmap, 0xff, s->bitmap_size);
	ret = block_node_pwrite(bs->file, bitmap, s->bitmap_size, start);
	free(bitmap);
	if (ret == 0)
		ret = block_node_pwrite(bs->file, s->footer, VPC_FOOTER_SIZE, end);
	if (ret == 0)
		ret = block_node_flush(bs->file);
	if (ret < 0)
		return ret;
	s->free_offset = end;
	__atomic_store_n(&s->bat[block], (uint32_t)(start / VPC_SECTOR), __ATOMIC_RELEASE);
	/* The BAT's 512-byte sector holding the entry, from memory. */
	first = block / (VPC_SECTOR / 4) * (VPC_SECTOR / 4);
	memset(sector, 0xff, sizeof(sector));
	for (uint64_t i = first; i < s->entries && i < first + VPC_SECTOR / 4; i++)
		st_be32(sector + (i - first) * 4, vpc_entry(s, i));
	ret = block_node_pwrite(bs->file, sector,
				(size_t)MIN((uint64_t)VPC_SECTOR, (s->entries - first) * 4),
				s->bat_offset + first * 4);
	*entry_out = (uint32_t)(start / VPC_SECTOR);
	return ret;
}

static int vpc_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset)
{
	struct vpc *s = bs->opaque;
	const uint8_t *p = buf;

	if (s->type == VPC_TYPE_FIXED)
		return vpc_io_error(block_node_pwrite(bs->file, buf, len, offset));
	while (len > 0) {
		uint64_t block = offset / s->block_size, in_block = offset % s->block_size;
		size_t n = (size_t)MIN((uint64_t)len, s->block_size - in_block);
		uint32_t entry = vpc_entry(s, block);
		int ret = 0;

		if (entry == VPC_BAT_UNUSED) {
			pthread_mutex_lock(&s->lock);
			entry = vpc_entry(s, block);
			if (entry == VPC_BAT_UNUSED)
				ret = vpc_allocate(bs, s, block, &entry);
			pthread_mutex_unlock(&s->lock);
		}
		if (ret == 0)
			ret = block_node_pwrite(bs->file, p, n, vpc_data_offset(s, entry, in_block));
		if (ret < 0)
			return vpc_io_error(ret);
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

static int vpc_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len, int flags)
{
	struct vpc *s = bs->opaque;

	if (s->type == VPC_TYPE_FIXED)
		return vpc_io_error(block_node_write_zeroes(bs->file, offset, len, flags));
	while (len > 0) {
		uint64_t block = offset / s->block_size, in_block = offset % s->block_size;
		uint64_t n = MIN(len, s->block_size - in_block);
		uint32_t entry = vpc_entry(s, block);

		if (entry != VPC_BAT_UNUSED) {
			int ret = block_node_write_zeroes(bs->file,
							  vpc_data_offset(s, entry, in_block),
							  n, flags);
			if (ret < 0)
				return vpc_io_error(ret);
		}
		offset += n;
		len -= n;
	}
	return 0;
}

static int vpc_flush(struct block_node *bs)
{
	return block_node_flush(bs->file);
}

static int vpc_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum)
{
	struct vpc *s = bs->opaque;
	uint64_t block, run;
	bool allocated;

	/* A fixed disk is its file: the file's holes are the disk's. */
	if (s->type == VPC_TYPE_FIXED) {
		return block_node_block_status(bs->file, offset, len, pnum);
	}
	block = offset / s->block_size;
	allocated = vpc_entry(s, block) != VPC_BAT_UNUSED;
	run = MIN(len, s->block_size - offset % s->block_size);
	while (run < len && (vpc_entry(s, block + 1) != VPC_BAT_UNUSED) == allocated) {
		block++;
		run = MIN(len, run + s->block_size);
	}
	*pnum = run;
	return allocated ? BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED : BLOCK_STATUS_ZERO;
}

/* As QEMU: the size is fixed at creation; only a no-op resize succeeds. */
static int vpc_truncate(struct block_node *bs, uint64_t length)
{
	return length == ((struct vpc *)bs->opaque)->size ? 0 : -ENOTSUP;
}

static int64_t vpc_get_length(struct block_node *bs)
{
	return (int64_t)((struct vpc *)bs->opaque)->size;
}

static int64_t vpc_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

/* QEMU 11's vpc_ignore_current_size: whose images are sized by geometry. */
static bool vpc_sized_by_geometry(const uint8_t *footer)
{
	const uint8_t *app = footer + VPC_F_CREATOR_APP;

	return !memcmp(app, "vpc ", 4) || !memcmp(app, "qemu", 4);
}

static int vpc_read_footer(struct block_node *bs, struct vpc *s, uint64_t file_len,
			   bool *at_end, struct error **errp)
{
	int ret;

	if (file_len < VPC_FOOTER_SIZE) {
		error_setg(errp, "File too small for a VHD header");
		return -1;
	}
	ret = block_node_pread(bs->file, s->footer, VPC_FOOTER_SIZE,
			       file_len - VPC_FOOTER_SIZE);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Unable to read VHD header");
		return -1;
	}
	*at_end = vpc_footer_valid(s->footer);
	if (*at_end)
		return 0;
	ret = block_node_pread(bs->file, s->footer, VPC_FOOTER_SIZE, 0);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Unable to read VHD header");
		return -1;
	}
	if (memcmp(s->footer, "conectix", 8)) {
		error_setg(errp, "invalid VPC image");
		return -1;
	}
	if (!vpc_footer_valid(s->footer)) {
		error_setg(errp, "Incorrect header checksum");
		return -1;
	}
	return 0;
}

static int vpc_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Blocks must lie after the BAT, inside the file, and never overlap. */
static int vpc_check_bat(struct vpc *s, uint64_t meta_end, uint64_t file_len,
			 struct error **errp)
{
	uint32_t *sorted = xmalloc((size_t)s->entries * 4 + 4);
	uint64_t span = (uint64_t)s->bitmap_size + s->block_size, prev_end = meta_end;
	size_t n = 0;
	int ret = 0;

	for (uint32_t i = 0; i < s->entries; i++) {
		if (s->bat[i] != VPC_BAT_UNUSED)
			sorted[n++] = s->bat[i];
	}
	qsort(sorted, n, 4, vpc_cmp_u32);
	s->free_offset = meta_end;
	for (size_t i = 0; i < n; i++) {
		uint64_t start = (uint64_t)sorted[i] * VPC_SECTOR;

		if (start < prev_end) {
			error_setg(errp, "VHD image '%s' is corrupt: the block at sector %" PRIu32
				   " overlaps %s", s->name, sorted[i],
				   i ? "another block" : "the headers or the BAT");
			ret = -1;
			break;
		}
		prev_end = start + span;
	}
	if (ret == 0 && prev_end > file_len) {
		error_setg(errp, "block-vpc: free_data_block_offset points after the end of "
			   "file. The image has been truncated.");
		ret = -1;
	}
	s->free_offset = prev_end;
	free(sorted);
	return ret;
}

static int vpc_load_dynamic(struct block_node *bs, struct vpc *s, uint64_t file_len,
			    struct error **errp)
{
	uint8_t h[VPC_DYN_HEADER_SIZE];
	uint64_t hdr_off = ld_be64(s->footer + VPC_F_DATA_OFFSET), bat_bytes, meta_end;
	uint8_t *raw;
	int ret;

	if (hdr_off > file_len || file_len - hdr_off < VPC_DYN_HEADER_SIZE) {
		error_setg(errp, "Error reading dynamic VHD header: offset %" PRIu64
			   " is past the end of '%s'", hdr_off, s->name);
		return -1;
	}
	ret = block_node_pread(bs->file, h, sizeof(h), hdr_off);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Error reading dynamic VHD header");
		return -1;
	}
	if (memcmp(h, "cxsparse", 8)) {
		error_setg(errp, "Invalid header magic");
		return -1;
	}
	s->block_size = ld_be32(h + VPC_D_BLOCK_SIZE);
	if (s->block_size < VPC_SECTOR || (s->block_size & (s->block_size - 1)) ||
	    s->block_size > VPC_MAX_BLOCK_SIZE) {
		error_setg(errp, "Invalid block size %" PRIu32, s->block_size);
		return -1;
	}
	s->bitmap_size = (s->block_size / (8 * VPC_SECTOR) + 511) & ~511U;
	s->entries = ld_be32(h + VPC_D_MAX_ENTRIES);
	if ((uint64_t)s->entries * s->block_size < s->size) {
		error_setg(errp, "Page table too small");
		return -1;
	}
	s->bat_offset = ld_be64(h + VPC_D_TABLE_OFFSET);
	bat_bytes = (uint64_t)s->entries * 4;
	if (s->bat_offset > file_len || bat_bytes > file_len - s->bat_offset) {
		error_setg(errp, "VHD image '%s' is corrupt: its BAT (%" PRIu32 " entries at "
			   "offset %" PRIu64 ") extends beyond the end of the file (%" PRIu64
			   " bytes)", s->name, s->entries, s->bat_offset, file_len);
		return -1;
	}
	if (s->bat_offset < hdr_off + VPC_DYN_HEADER_SIZE && s->bat_offset + bat_bytes > hdr_off) {
		error_setg(errp, "VHD image '%s' is corrupt: its BAT overlaps its dynamic "
			   "header", s->name);
		return -1;
	}
	s->bat = xmalloc((size_t)bat_bytes + 4);
	raw = (uint8_t *)s->bat;
	ret = bat_bytes ? block_node_pread(bs->file, raw, (size_t)bat_bytes, s->bat_offset) : 0;
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Error reading pagetable");
		return -1;
	}
	for (uint32_t i = 0; i < s->entries; i++)
		s->bat[i] = ld_be32(raw + 4 * (size_t)i);
	/* Blocks go after every piece of metadata (QEMU: after the BAT). */
	meta_end = (s->bat_offset + bat_bytes + 511) & ~511ULL;
	if (meta_end < hdr_off + VPC_DYN_HEADER_SIZE)
		meta_end = hdr_off + VPC_DYN_HEADER_SIZE;
	return vpc_check_bat(s, meta_end, file_len, errp);
}

static int vpc_load(struct block_node *bs, struct vpc *s, struct error **errp)
{
	int64_t file_len = block_node_length(bs->file);
	uint64_t sectors;
	bool at_end;

	if (file_len < 0) {
		error_setg_errno(errp, (int)-file_len, "Invalid file size");
		return -1;
	}
	if (vpc_read_footer(bs, s, (uint64_t)file_len, &at_end, errp) < 0)
		return -1;
	s->type = ld_be32(s->footer + VPC_F_TYPE);
	if (s->type == VPC_TYPE_DIFFERENCING) {
		error_setg(errp, "VHD image '%s' is a differencing disk, which names a parent "
			   "file: not supported", s->name);
		return -1;
	}
	if (s->type != VPC_TYPE_FIXED && s->type != VPC_TYPE_DYNAMIC) {
		error_setg(errp, "VHD image '%s' has an unknown disk type %" PRIu32, s->name,
			   s->type);
		return -1;
	}
	if (s->type == VPC_TYPE_FIXED && !at_end) {
		error_setg(errp, "invalid VPC image (a fixed disk without a valid footer at "
			   "its end)");
		return -1;
	}
	sectors = (uint64_t)ld_be16(s->footer + VPC_F_CYLS) * s->footer[VPC_F_HEADS] *
		  s->footer[VPC_F_SECS];
	if (!vpc_sized_by_geometry(s->footer) || sectors == VPC_MAX_GEOMETRY)
		sectors = ld_be64(s->footer + VPC_F_CURRENT_SIZE) / VPC_SECTOR;
	if (sectors > VPC_MAX_SECTORS) {
		error_setg(errp, "VHD image '%s' is too big (%" PRIu64 " sectors, at most %llu)",
			   s->name, sectors, VPC_MAX_SECTORS);
		return -1;
	}
	s->size = sectors * VPC_SECTOR;
	if (s->type == VPC_TYPE_FIXED) {
		if (s->size > (uint64_t)file_len - VPC_FOOTER_SIZE) {
			error_setg(errp, "VHD image '%s' is truncated: its disk is %" PRIu64
				   " bytes, the file holds %" PRId64, s->name, s->size,
				   file_len - VPC_FOOTER_SIZE);
			return -1;
		}
		return 0;
	}
	return vpc_load_dynamic(bs, s, (uint64_t)file_len, errp);
}

static void vpc_release(struct block_node *bs, struct vpc *s)
{
	free(s->bat);
	free(s->name);
	pthread_mutex_destroy(&s->lock);
	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
}

static int vpc_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct vpc *s = bs->opaque;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, 0, errp);
	if (!bs->file)
		goto fail;
	s->name = xstrdup(bs->file->filename ? bs->file->filename : bs->file->node_name);
	if (vpc_load(bs, s, errp) < 0)
		goto fail;
	if (!bs->filename)
		bs->filename = xstrdup(s->name);
	return 0;

fail:
	vpc_release(bs, s);
	return -1;
}

static void vpc_close(struct block_node *bs)
{
	if (!bs->read_only && bs->file)
		block_node_flush(bs->file);
	vpc_release(bs, bs->opaque);
}

static void vpc_query(struct block_node *bs, json_t *info)
{
	struct vpc *s = bs->opaque;
	json_t *image = json_object_get(info, "image");

	if (!image)
		image = info;
	if (s->type == VPC_TYPE_DYNAMIC)
		json_object_set_new(image, "cluster-size", json_integer(s->block_size));
}

const struct block_driver block_driver_vpc = {
	.name = "vpc",
	.is_format = true,
	.state_size = sizeof(struct vpc),
	.open = vpc_open,
	.close = vpc_close,
	.query = vpc_query,
	.get_length = vpc_get_length,
	.get_allocated_size = vpc_get_allocated_size,
	.pread = vpc_pread,
	.pwrite = vpc_pwrite,
	.flush = vpc_flush,
	.write_zeroes = vpc_write_zeroes,
	.truncate = vpc_truncate,
	.block_status = vpc_block_status,
};
