/*
 * block/vdi.c: the vdi format driver: VirtualBox disk images, static
 * (every block preallocated) and dynamic (blocks appended as they are
 * first written), read and write, as QEMU's block/vdi.c.
 *
 * Layout (little endian): a 512-byte header at 0 (signature 0xbeda107f at
 * 0x40, version 1.1), a block map of `blocks_in_image` 32-bit entries at
 * `offset_bmap`, and data blocks of `block_size` (1 MiB) bytes from
 * `offset_data`: map entry i is the index of guest block i's data block,
 * or 0xffffffff (never written) / 0xfffffffe (discarded), both of which
 * read as zeroes.  `blocks_allocated` in the header is the count of data
 * blocks, so the next block is appended at index `blocks_allocated`.
 *
 * Everything the header claims is bounded by the image file before
 * anything is allocated: the block map must lie inside the file, so a
 * corrupt count can never make us allocate more than the file's size.
 *
 * Concurrency: reads and writes of allocated blocks take no lock (map
 * entries are loaded atomically).  Allocation takes s->lock, so two
 * writers never append the same block; the entry is published only after
 * the block's data is written, so a reader never sees a block whose
 * contents are not there yet.
 *
 * Consistency: VDI has no journal and QEMU promises nothing across a
 * crash.  This driver appends the data block, writes the header's count
 * and flushes, then writes the map entry, so a crash between them leaks a
 * block at worst (the next append goes past it) and never maps two guest
 * blocks onto one data block; flush makes everything written before it
 * durable.
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

#define VDI_HEADER_SIZE		512
#define VDI_SECTOR_SIZE		512
#define VDI_SIGNATURE		0xbeda107fU
#define VDI_VERSION_1_1		0x00010001U
#define VDI_TYPE_DYNAMIC	1
#define VDI_TYPE_STATIC		2
#define VDI_BLOCK_SIZE		(1024 * 1024)
#define VDI_UNALLOCATED		0xffffffffU
#define VDI_DISCARDED		0xfffffffeU
#define VDI_BLOCKS_MAX		0x3fffffffU
#define VDI_DISK_SIZE_MAX	((uint64_t)VDI_BLOCKS_MAX * VDI_BLOCK_SIZE)

/* Header field offsets. */
#define VDI_OFF_SIGNATURE	0x40
#define VDI_OFF_VERSION		0x44
#define VDI_OFF_TYPE		0x4c
#define VDI_OFF_BMAP		0x154
#define VDI_OFF_DATA		0x158
#define VDI_OFF_SECTOR_SIZE	0x168
#define VDI_OFF_DISK_SIZE	0x170
#define VDI_OFF_BLOCK_SIZE	0x178
#define VDI_OFF_BLOCK_EXTRA	0x17c
#define VDI_OFF_BLOCKS		0x180
#define VDI_OFF_ALLOCATED	0x184
#define VDI_OFF_UUID_LINK	0x1a8
#define VDI_OFF_UUID_PARENT	0x1b8

struct vdi {
	char *name;			/* the image, for messages */
	uint64_t disk_size;
	uint32_t type;
	uint32_t blocks;		/* blocks_in_image */
	uint64_t offset_bmap;
	uint64_t offset_data;
	uint32_t *bmap;			/* host order; atomic loads and stores */
	pthread_mutex_t lock;		/* allocation: header, allocated, map writes */
	uint32_t allocated;		/* blocks_allocated (under lock) */
	uint8_t header[VDI_HEADER_SIZE];	/* as on disk (under lock) */
};

static bool vdi_is_allocated(uint32_t entry)
{
	return entry < VDI_DISCARDED;
}

static uint32_t vdi_entry(struct vdi *s, uint64_t block)
{
	return __atomic_load_n(&s->bmap[block], __ATOMIC_ACQUIRE);
}

static uint64_t vdi_data_offset(struct vdi *s, uint32_t entry, uint64_t in_block)
{
	return s->offset_data + (uint64_t)entry * VDI_BLOCK_SIZE + in_block;
}

/* A data block that lies past the end of the file is corruption, not EINVAL. */
static int vdi_io_error(int ret)
{
	return ret == -EINVAL ? -EIO : ret;
}

static int vdi_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	struct vdi *s = bs->opaque;
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t block = offset / VDI_BLOCK_SIZE, in_block = offset % VDI_BLOCK_SIZE;
		size_t n = (size_t)MIN((uint64_t)len, VDI_BLOCK_SIZE - in_block);
		uint32_t entry = vdi_entry(s, block);

		if (vdi_is_allocated(entry)) {
			int ret = block_node_pread(bs->file, p, n,
						   vdi_data_offset(s, entry, in_block));
			if (ret < 0)
				return vdi_io_error(ret);
		} else {
			memset(p, 0, n);
		}
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

/* Write the 512-byte sector of the block map that holds `block`'s entry. */
static int vdi_write_bmap_sector(struct block_node *bs, struct vdi *s, uint64_t block)
{
	uint8_t sector[VDI_SECTOR_SIZE];
	uint64_t first = block / (VDI_SECTOR_SIZE / 4) * (VDI_SECTOR_SIZE / 4);

	memset(sector, 0xff, sizeof(sector));
	for (uint64_t i = first; i < s->blocks && i < first + VDI_SECTOR_SIZE / 4; i++)
		st_le32(sector + (i - first) * 4, vdi_entry(s, i));
	/* The map's last sector may end inside the file's first data block. */
	return block_node_pwrite(bs->file, sector,
				 (size_t)MIN((uint64_t)VDI_SECTOR_SIZE,
					     (s->blocks - first) * 4),
				 s->offset_bmap + first * 4);
}

/*
 * Give guest block `block` a data block holding buf at in_block (n bytes)
 * and zeroes elsewhere.  Called with s->lock held, the entry unallocated.
 */
static int vdi_allocate(struct block_node *bs, struct vdi *s, uint64_t block,
			const uint8_t *buf, size_t n, uint64_t in_block)
{
	uint32_t index = s->allocated;
	uint64_t start = vdi_data_offset(s, index, 0);
	int64_t file_len = block_node_length(bs->file);
	int ret;

	if (index >= s->blocks)
		return -EIO;	/* the header's count is corrupt: never overwrite */
	if (file_len < 0)
		return (int)file_len;
	if ((uint64_t)file_len <= start) {
		/* Appending: growing the file gives the zeroes around buf. */
		ret = block_node_truncate(bs->file, start + VDI_BLOCK_SIZE);
		if (ret == 0)
			ret = block_node_pwrite(bs->file, buf, n, start + in_block);
	} else {
		/* Old bytes there (a block leaked by a crash): overwrite them all. */
		uint8_t *data = xcalloc(1, VDI_BLOCK_SIZE);

		memcpy(data + in_block, buf, n);
		if ((uint64_t)file_len < start + VDI_BLOCK_SIZE)
			ret = block_node_truncate(bs->file, start + VDI_BLOCK_SIZE);
		else
			ret = 0;
		if (ret == 0)
			ret = block_node_pwrite(bs->file, data, VDI_BLOCK_SIZE, start);
		free(data);
	}
	if (ret < 0)
		return ret;
	s->allocated = index + 1;
	st_le32(s->header + VDI_OFF_ALLOCATED, s->allocated);
	ret = block_node_pwrite(bs->file, s->header, VDI_HEADER_SIZE, 0);
	/* The count must be on disk before any map entry that uses it. */
	if (ret == 0)
		ret = block_node_flush(bs->file);
	if (ret < 0)
		return ret;
	__atomic_store_n(&s->bmap[block], index, __ATOMIC_RELEASE);
	return vdi_write_bmap_sector(bs, s, block);
}

static int vdi_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset)
{
	struct vdi *s = bs->opaque;
	const uint8_t *p = buf;

	while (len > 0) {
		uint64_t block = offset / VDI_BLOCK_SIZE, in_block = offset % VDI_BLOCK_SIZE;
		size_t n = (size_t)MIN((uint64_t)len, VDI_BLOCK_SIZE - in_block);
		uint32_t entry = vdi_entry(s, block);
		int ret = 0;

		if (!vdi_is_allocated(entry)) {
			pthread_mutex_lock(&s->lock);
			entry = vdi_entry(s, block);
			if (!vdi_is_allocated(entry))
				ret = vdi_allocate(bs, s, block, p, n, in_block);
			pthread_mutex_unlock(&s->lock);
		}
		if (ret == 0 && vdi_is_allocated(entry))
			ret = block_node_pwrite(bs->file, p, n,
						vdi_data_offset(s, entry, in_block));
		if (ret < 0)
			return vdi_io_error(ret);
		p += n;
		offset += n;
		len -= n;
	}
	return 0;
}

/* Zeroes: allocated blocks are zeroed in place, others already read zeroes. */
static int vdi_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len, int flags)
{
	struct vdi *s = bs->opaque;

	while (len > 0) {
		uint64_t block = offset / VDI_BLOCK_SIZE, in_block = offset % VDI_BLOCK_SIZE;
		uint64_t n = MIN(len, VDI_BLOCK_SIZE - in_block);
		uint32_t entry = vdi_entry(s, block);

		if (vdi_is_allocated(entry)) {
			int ret = block_node_write_zeroes(bs->file,
							  vdi_data_offset(s, entry, in_block),
							  n, flags);
			if (ret < 0)
				return vdi_io_error(ret);
		}
		offset += n;
		len -= n;
	}
	return 0;
}

static int vdi_flush(struct block_node *bs)
{
	return block_node_flush(bs->file);
}

static int vdi_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum)
{
	struct vdi *s = bs->opaque;
	uint64_t block = offset / VDI_BLOCK_SIZE;
	bool allocated = vdi_is_allocated(vdi_entry(s, block));
	uint64_t run = MIN(len, VDI_BLOCK_SIZE - offset % VDI_BLOCK_SIZE);

	while (run < len && vdi_is_allocated(vdi_entry(s, block + 1)) == allocated) {
		block++;
		run = MIN(len, run + VDI_BLOCK_SIZE);
	}
	*pnum = run;
	return allocated ? BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED : BLOCK_STATUS_ZERO;
}

/*
 * As QEMU's vdi: the size is fixed at creation.  The callback exists so
 * that a writable export (which may resize) can take the node; any
 * change of size fails.
 */
static int vdi_truncate(struct block_node *bs, uint64_t length)
{
	return length == ((struct vdi *)bs->opaque)->disk_size ? 0 : -ENOTSUP;
}

static int64_t vdi_get_length(struct block_node *bs)
{
	return (int64_t)((struct vdi *)bs->opaque)->disk_size;
}

static int64_t vdi_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

static bool vdi_uuid_is_null(const uint8_t *uuid)
{
	for (int i = 0; i < 16; i++) {
		if (uuid[i])
			return false;
	}
	return true;
}

/* QEMU's checks and wording, then the bounds QEMU leaves to luck. */
static int vdi_check_header(struct vdi *s, const uint8_t *h, uint64_t file_len,
			    struct error **errp)
{
	uint32_t sig = ld_le32(h + VDI_OFF_SIGNATURE), ver = ld_le32(h + VDI_OFF_VERSION);
	uint32_t bmap = ld_le32(h + VDI_OFF_BMAP), data = ld_le32(h + VDI_OFF_DATA);
	uint32_t sector = ld_le32(h + VDI_OFF_SECTOR_SIZE);
	uint32_t bsize = ld_le32(h + VDI_OFF_BLOCK_SIZE);
	uint64_t size = ld_le64(h + VDI_OFF_DISK_SIZE), bmap_end;

	s->type = ld_le32(h + VDI_OFF_TYPE);
	s->blocks = ld_le32(h + VDI_OFF_BLOCKS);
	s->allocated = ld_le32(h + VDI_OFF_ALLOCATED);
	if (sig != VDI_SIGNATURE) {
		error_setg(errp, "Image not in VDI format (bad signature %08" PRIx32 ")", sig);
		return -1;
	}
	if (size > VDI_DISK_SIZE_MAX) {
		error_setg(errp, "Unsupported VDI image size (size is 0x%" PRIx64
			   ", max supported is 0x%" PRIx64 ")", size, VDI_DISK_SIZE_MAX);
		return -1;
	}
	/* VBoxManage convertfromraw makes odd sizes; QEMU rounds them up. */
	size = (size + VDI_SECTOR_SIZE - 1) / VDI_SECTOR_SIZE * VDI_SECTOR_SIZE;
	if (ver != VDI_VERSION_1_1) {
		error_setg(errp, "unsupported VDI image (version %" PRIu32 ".%" PRIu32 ")",
			   ver >> 16, ver & 0xffff);
		return -1;
	}
	if (s->type != VDI_TYPE_DYNAMIC && s->type != VDI_TYPE_STATIC) {
		error_setg(errp, "unsupported VDI image (image type %" PRIu32 ")", s->type);
		return -1;
	}
	if (bmap % VDI_SECTOR_SIZE) {
		error_setg(errp, "unsupported VDI image (unaligned block map offset 0x%"
			   PRIx32 ")", bmap);
		return -1;
	}
	if (data % VDI_SECTOR_SIZE) {
		error_setg(errp, "unsupported VDI image (unaligned data offset 0x%" PRIx32 ")",
			   data);
		return -1;
	}
	if (sector != VDI_SECTOR_SIZE) {
		error_setg(errp, "unsupported VDI image (sector size %" PRIu32 " is not %u)",
			   sector, VDI_SECTOR_SIZE);
		return -1;
	}
	if (bsize != VDI_BLOCK_SIZE) {
		error_setg(errp, "unsupported VDI image (block size %" PRIu32 " is not %u)",
			   bsize, VDI_BLOCK_SIZE);
		return -1;
	}
	if (ld_le32(h + VDI_OFF_BLOCK_EXTRA)) {
		error_setg(errp, "unsupported VDI image (block extra %" PRIu32 " is not 0)",
			   ld_le32(h + VDI_OFF_BLOCK_EXTRA));
		return -1;
	}
	if (size > (uint64_t)s->blocks * VDI_BLOCK_SIZE) {
		error_setg(errp, "unsupported VDI image (disk size %" PRIu64 ", image "
			   "bitmap has room for %" PRIu64 ")", size,
			   (uint64_t)s->blocks * VDI_BLOCK_SIZE);
		return -1;
	}
	if (!vdi_uuid_is_null(h + VDI_OFF_UUID_LINK)) {
		error_setg(errp, "unsupported VDI image (non-NULL link UUID)");
		return -1;
	}
	if (!vdi_uuid_is_null(h + VDI_OFF_UUID_PARENT)) {
		error_setg(errp, "unsupported VDI image (non-NULL parent UUID)");
		return -1;
	}
	if (s->blocks > VDI_BLOCKS_MAX) {
		error_setg(errp, "unsupported VDI image (too many blocks %" PRIu32
			   ", max is %u)", s->blocks, VDI_BLOCKS_MAX);
		return -1;
	}
	bmap_end = (uint64_t)bmap + (uint64_t)s->blocks * 4;
	if (bmap < VDI_HEADER_SIZE || bmap_end > file_len) {
		error_setg(errp, "VDI image '%s' is corrupt: its block map (%" PRIu32
			   " entries at offset %" PRIu32 ") does not lie between the header "
			   "and the end of the file (%" PRIu64 " bytes)", s->name, s->blocks,
			   bmap, file_len);
		return -1;
	}
	if (data < bmap_end) {
		error_setg(errp, "VDI image '%s' is corrupt: its data offset 0x%" PRIx32
			   " lies inside its block map (which ends at 0x%" PRIx64 ")",
			   s->name, data, bmap_end);
		return -1;
	}
	if (s->allocated > s->blocks) {
		error_setg(errp, "VDI image '%s' is corrupt: %" PRIu32 " blocks allocated "
			   "of %" PRIu32, s->name, s->allocated, s->blocks);
		return -1;
	}
	s->disk_size = size;
	s->offset_bmap = bmap;
	s->offset_data = data;
	return 0;
}

/*
 * Every entry must name a data block below the header's count, and no
 * two entries the same one: otherwise a write through one guest block
 * would change another, or the next append would overwrite live data.
 */
static int vdi_check_bmap(struct vdi *s, struct error **errp)
{
	uint8_t *seen = xcalloc(1, (size_t)s->allocated / 8 + 1);
	int ret = 0;

	for (uint32_t i = 0; i < s->blocks && ret == 0; i++) {
		uint32_t e = s->bmap[i];

		if (!vdi_is_allocated(e))
			continue;
		if (e >= s->allocated) {
			error_setg(errp, "VDI image '%s' is corrupt: block %" PRIu32 " maps to "
				   "data block %" PRIu32 ", but only %" PRIu32 " are allocated",
				   s->name, i, e, s->allocated);
			ret = -1;
		} else if (seen[e / 8] & (1u << (e % 8))) {
			error_setg(errp, "VDI image '%s' is corrupt: data block %" PRIu32
				   " is used twice (again by block %" PRIu32 ")", s->name, e, i);
			ret = -1;
		} else {
			seen[e / 8] |= (uint8_t)(1u << (e % 8));
		}
	}
	free(seen);
	return ret;
}

static int vdi_load(struct block_node *bs, struct vdi *s, struct error **errp)
{
	int64_t file_len = block_node_length(bs->file);
	uint8_t *raw;
	int ret;

	if (file_len < 0) {
		error_setg_errno(errp, (int)-file_len, "Could not get the size of '%s'", s->name);
		return -1;
	}
	if (file_len < VDI_HEADER_SIZE) {
		error_setg(errp, "Image not in VDI format ('%s' is smaller than a VDI "
			   "header)", s->name);
		return -1;
	}
	ret = block_node_pread(bs->file, s->header, VDI_HEADER_SIZE, 0);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not read the VDI header of '%s'", s->name);
		return -1;
	}
	if (vdi_check_header(s, s->header, (uint64_t)file_len, errp) < 0)
		return -1;
	s->bmap = xmalloc((size_t)s->blocks * 4 + 1);
	raw = (uint8_t *)s->bmap;
	ret = s->blocks ? block_node_pread(bs->file, raw, (size_t)s->blocks * 4,
					   s->offset_bmap) : 0;
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Could not read the VDI block map of '%s'", s->name);
		return -1;
	}
	for (uint32_t i = 0; i < s->blocks; i++)
		s->bmap[i] = ld_le32(raw + 4 * (size_t)i);
	return vdi_check_bmap(s, errp);
}

static void vdi_release(struct block_node *bs, struct vdi *s)
{
	free(s->bmap);
	free(s->name);
	pthread_mutex_destroy(&s->lock);
	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
}

static int vdi_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct vdi *s = bs->opaque;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, 0, errp);
	if (!bs->file)
		goto fail;
	s->name = xstrdup(bs->file->filename ? bs->file->filename : bs->file->node_name);
	if (vdi_load(bs, s, errp) < 0)
		goto fail;
	if (!bs->filename)
		bs->filename = xstrdup(s->name);
	return 0;

fail:
	vdi_release(bs, s);
	return -1;
}

static void vdi_close(struct block_node *bs)
{
	struct vdi *s = bs->opaque;

	if (!bs->read_only && bs->file)
		block_node_flush(bs->file);
	vdi_release(bs, s);
}

static void vdi_query(struct block_node *bs, json_t *info)
{
	json_t *image = json_object_get(info, "image");

	(void)bs;
	if (!image)
		image = info;
	json_object_set_new(image, "cluster-size", json_integer(VDI_BLOCK_SIZE));
}

const struct block_driver block_driver_vdi = {
	.name = "vdi",
	.is_format = true,
	.state_size = sizeof(struct vdi),
	.open = vdi_open,
	.close = vdi_close,
	.query = vdi_query,
	.get_length = vdi_get_length,
	.get_allocated_size = vdi_get_allocated_size,
	.pread = vdi_pread,
	.pwrite = vdi_pwrite,
	.flush = vdi_flush,
	.write_zeroes = vdi_write_zeroes,
	.truncate = vdi_truncate,
	.block_status = vdi_block_status,
};
