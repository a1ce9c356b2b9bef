/*
 * block/qcow2-header.c: parse and validate a qcow2 header, its extensions
 * and the layout of its top-level tables, from a buffer holding the first
 * cluster of the image.  No I/O here, so that the unit tests and the fuzz
 * target can feed it anything: every field that could make a later step
 * overflow, read past the end or write over metadata is refused with a
 * message naming the image and the field.
 */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "util.h"

static const struct {
	unsigned type, bit;
	const char *name;
} qcow2_known_features[] = {
	{ 0, 0, "dirty bit" },
	{ 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" },
	{ 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" },
	{ 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },
	{ 2, 1, "raw external data" },
};

const char *qcow2_feature_name(const struct qcow2_header *h, unsigned type, unsigned bit)
{
	for (size_t i = 0; i < h->nb_features; i++)
		if (h->features[i].type == type && h->features[i].bit == bit &&
		    h->features[i].name[0])
			return h->features[i].name;
	for (size_t i = 0; i < ARRAY_SIZE(qcow2_known_features); i++)
		if (qcow2_known_features[i].type == type && qcow2_known_features[i].bit == bit)
			return qcow2_known_features[i].name;
	return NULL;
}

void qcow2_header_clear(struct qcow2_header *h)
{
	free(h->backing_file);
	free(h->backing_format);
	free(h->features);
	memset(h, 0, sizeof(*h));
}

uint64_t qcow2_l1_entries_for(uint64_t size, unsigned cluster_bits)
{
	unsigned shift = cluster_bits + (cluster_bits - 3);	/* bytes per L2 table */

	if (shift >= 64)
		return size ? 1 : 0;
	return (size >> shift) + ((size & ((1ULL << shift) - 1)) != 0);
}

/* A printable copy of a string extension or name (NULs end it early). */
static char *qcow2_strndup(const uint8_t *p, size_t len)
{
	char *s = xmalloc(len + 1);

	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static int qcow2_parse_extensions(const uint8_t *buf, size_t end, struct qcow2_header *h,
				  const char *name, struct error **errp)
{
	size_t off = h->version == 2 ? QCOW2_V2_HEADER_LEN : h->header_length;

	while (off < end) {
		uint32_t type, len;

		if (end - off < 8) {
			error_setg(errp, "Image '%s' is corrupt: header extension at offset %zu "
				   "is cut off by the end of the header area", name, off);
			return -1;
		}
		type = qcow2_be32(buf + off);
		len = qcow2_be32(buf + off + 4);
		off += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - off) {
			error_setg(errp, "Image '%s' is corrupt: header extension 0x%08x is %u "
				   "bytes long, past the end of the header area", name, type, len);
			return -1;
		}
		switch (type) {
		case QCOW2_EXT_BACKING_FORMAT:
			if (len > 1023) {
				error_setg(errp, "Image '%s' is corrupt: backing format name is "
					   "%u bytes long", name, len);
				return -1;
			}
			free(h->backing_format);
			h->backing_format = qcow2_strndup(buf + off, len);
			break;
		case QCOW2_EXT_FEATURE_TABLE: {
			size_t n = len / 48;

			free(h->features);
			h->features = xcalloc(n ? n : 1, sizeof(*h->features));
			h->nb_features = n;
			for (size_t i = 0; i < n; i++) {
				const uint8_t *e = buf + off + i * 48;

				h->features[i].type = e[0];
				h->features[i].bit = e[1];
				memcpy(h->features[i].name, e + 2, 46);
				h->features[i].name[46] = '\0';
			}
			break;
		}
		case QCOW2_EXT_CRYPTO:
			if (len != 16) {
				error_setg(errp, "Image '%s' is corrupt: the crypto header "
					   "extension is %u bytes long (16 expected)", name, len);
				return -1;
			}
			h->has_crypto_ext = true;
			h->crypto_offset = qcow2_be64(buf + off);
			h->crypto_length = qcow2_be64(buf + off + 8);
			break;
		case QCOW2_EXT_DATA_FILE:
			h->has_data_file_ext = true;
			break;
		case QCOW2_EXT_BITMAPS:
			if (len < 24) {
				error_setg(errp, "Image '%s' is corrupt: the bitmaps extension is "
					   "%u bytes long (at least 24)", name, len);
				return -1;
			}
			h->has_bitmaps_ext = true;
			h->nb_bitmaps = qcow2_be32(buf + off);
			h->bitmap_dir_size = qcow2_be64(buf + off + 8);
			h->bitmap_dir_offset = qcow2_be64(buf + off + 16);
			break;
		default:
			/* Unknown extensions can be safely ignored (spec). */
			break;
		}
		off += ROUND_UP((size_t)len, 8);
	}
	return 0;
}

int qcow2_header_parse(const uint8_t *buf, size_t len, struct qcow2_header *h,
		       const char *name, struct error **errp)
{
	uint64_t cluster_size, unknown;
	size_t area_end;

	memset(h, 0, sizeof(*h));
	if (len < QCOW2_V2_HEADER_LEN || qcow2_be32(buf) != QCOW2_MAGIC) {
		error_setg(errp, "Image '%s' is not in qcow2 format (bad magic)", name);
		return -1;
	}
	h->version = qcow2_be32(buf + 4);
	if (h->version != 2 && h->version != 3) {
		error_setg(errp, "Image '%s' has unsupported qcow2 version %u "
			   "(only 2 and 3 are supported)", name, h->version);
		return -1;
	}
	h->backing_file_offset = qcow2_be64(buf + 8);
	h->backing_file_size = qcow2_be32(buf + 16);
	h->cluster_bits = qcow2_be32(buf + 20);
	h->size = qcow2_be64(buf + 24);
	h->crypt_method = qcow2_be32(buf + 32);
	h->l1_size = qcow2_be32(buf + 36);
	h->l1_table_offset = qcow2_be64(buf + 40);
	h->refcount_table_offset = qcow2_be64(buf + 48);
	h->refcount_table_clusters = qcow2_be32(buf + 56);
	h->nb_snapshots = qcow2_be32(buf + 60);
	h->snapshots_offset = qcow2_be64(buf + 64);

	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
	    h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
		error_setg(errp, "Image '%s' has unsupported cluster_bits %u "
			   "(cluster size must be 512 bytes to 2 MiB)", name, h->cluster_bits);
		return -1;
	}
	cluster_size = 1ULL << h->cluster_bits;

	if (h->version == 2) {
		h->refcount_order = 4;
		h->header_length = QCOW2_V2_HEADER_LEN;
	} else {
		if (len < QCOW2_V3_HEADER_LEN) {
			error_setg(errp, "Image '%s' is truncated: the version 3 header "
				   "needs %d bytes", name, QCOW2_V3_HEADER_LEN);
			return -1;
		}
		h->incompatible_features = qcow2_be64(buf + 72);
		h->compatible_features = qcow2_be64(buf + 80);
		h->autoclear_features = qcow2_be64(buf + 88);
		h->refcount_order = qcow2_be32(buf + 96);
		h->header_length = qcow2_be32(buf + 100);
		if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length % 8 ||
		    h->header_length > cluster_size) {
			error_setg(errp, "Image '%s' is corrupt: invalid header_length %u "
				   "(must be a multiple of 8, at least %d and at most the "
				   "cluster size)", name, h->header_length, QCOW2_V3_HEADER_LEN);
			return -1;
		}
		if (h->header_length > len) {
			error_setg(errp, "Image '%s' is truncated: header_length %u is past "
				   "the end of the file", name, h->header_length);
			return -1;
		}
		if (h->header_length > QCOW2_V3_HEADER_LEN)
			h->compression_type = buf[104];
	}
	if (h->refcount_order > 6) {
		error_setg(errp, "Image '%s' is corrupt: refcount_order %u is larger "
			   "than 6 (64-bit refcounts)", name, h->refcount_order);
		return -1;
	}

	/* Refusals: what this driver does not implement must not open. */
	unknown = h->incompatible_features & ~QCOW2_INCOMPAT_KNOWN;
	if (h->crypt_method == QCOW2_CRYPT_AES) {
		/* QEMU's words; its system emulators refuse these too. */
		error_setg(errp, "Use of AES-CBC encrypted qcow2 images is no longer "
			   "supported in system emulators. You can use 'qemu-img convert' "
			   "to convert your image to an alternative supported format, such "
			   "as unencrypted qcow2, or raw with the LUKS format instead.");
		return -1;
	}
	if (h->crypt_method > QCOW2_CRYPT_LUKS) {
		error_setg(errp, "Unsupported encryption method: %u", h->crypt_method);
		return -1;
	}

	/* Extensions run from the end of the header to the backing name. */
	area_end = MIN(len, (size_t)cluster_size);
	if (h->backing_file_offset && h->backing_file_offset < area_end)
		area_end = h->backing_file_offset;
	if (qcow2_parse_extensions(buf, area_end, h, name, errp) < 0)
		goto fail;

	if (unknown) {
		unsigned bit = (unsigned)__builtin_ctzll(unknown);
		const char *fname = qcow2_feature_name(h, 0, bit);

		error_setg(errp, "Image '%s' uses unsupported incompatible feature bit %u%s%s%s",
			   name, bit, fname ? " (" : "", fname ? fname : "", fname ? ")" : "");
		goto fail;
	}
	if ((h->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) || h->has_data_file_ext) {
		error_setg(errp, "Image '%s' uses an external data file, which is not "
			   "supported", name);
		goto fail;
	}
	if (h->incompatible_features & QCOW2_INCOMPAT_EXTL2) {
		error_setg(errp, "Image '%s' uses extended L2 entries (subclusters), which "
			   "are not supported", name);
		goto fail;
	}
	if (h->has_crypto_ext != (h->crypt_method == QCOW2_CRYPT_LUKS)) {
		error_setg(errp, "Image '%s' is corrupt: %s", name, h->has_crypto_ext ?
			   "a crypto header extension without LUKS encryption" :
			   "LUKS encryption without a crypto header extension");
		goto fail;
	}
	if (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION) {
		if (h->header_length <= QCOW2_V3_HEADER_LEN || h->compression_type == 0) {
			error_setg(errp, "Image '%s' is corrupt: the compression type bit is set "
				   "but no compression type is given", name);
			goto fail;
		}
	} else if (h->compression_type != 0) {
		error_setg(errp, "Image '%s' is corrupt: compression type %u is set without "
			   "the compression type feature bit", name, h->compression_type);
		goto fail;
	}
	if (h->compression_type > QCOW2_COMPRESSION_ZSTD) {
		error_setg(errp, "Image '%s' uses unknown compression type %u", name,
			   h->compression_type);
		goto fail;
	}

	if (h->backing_file_offset) {
		if (h->backing_file_size > QCOW2_MAX_BACKING_NAME || h->backing_file_size == 0) {
			error_setg(errp, "Image '%s' is corrupt: backing file name length %u "
				   "(must be 1 to %d)", name, h->backing_file_size,
				   QCOW2_MAX_BACKING_NAME);
			goto fail;
		}
		if (h->backing_file_offset > cluster_size ||
		    h->backing_file_size > cluster_size - h->backing_file_offset) {
			error_setg(errp, "Image '%s' is corrupt: the backing file name at offset "
				   "%" PRIu64 " is not inside the first cluster", name,
				   h->backing_file_offset);
			goto fail;
		}
		if (h->backing_file_offset + h->backing_file_size > len) {
			error_setg(errp, "Image '%s' is truncated: the backing file name is past "
				   "the end of the file", name);
			goto fail;
		}
		h->backing_file = qcow2_strndup(buf + h->backing_file_offset,
						h->backing_file_size);
		if (strlen(h->backing_file) != h->backing_file_size) {
			error_setg(errp, "Image '%s' is corrupt: the backing file name contains "
				   "a NUL byte", name);
			goto fail;
		}
	}
	return 0;

fail:
	qcow2_header_clear(h);
	return -1;
}

/* [a, a+alen) and [b, b+blen) intersect (lengths > 0, no overflow). */
static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int qcow2_header_check_layout(const struct qcow2_header *h, uint64_t file_len,
			      const char *name, struct error **errp)
{
	uint64_t cluster_size = 1ULL << h->cluster_bits;
	uint64_t l1_bytes = (uint64_t)h->l1_size * 8;
	uint64_t rt_bytes = (uint64_t)h->refcount_table_clusters << h->cluster_bits;
	uint64_t need_l1;

	if (h->size > QCOW2_MAX_VIRTUAL_SIZE) {
		error_setg(errp, "Image '%s' is corrupt: virtual size %" PRIu64 " is larger "
			   "than the format allows", name, h->size);
		return -1;
	}
	need_l1 = qcow2_l1_entries_for(h->size, h->cluster_bits);
	if (l1_bytes > QCOW2_MAX_L1_BYTES) {
		error_setg(errp, "Image '%s' is corrupt: L1 table of %u entries is too large",
			   name, h->l1_size);
		return -1;
	}
	if (h->l1_size < need_l1) {
		error_setg(errp, "Image '%s' is corrupt: L1 table of %u entries is too small "
			   "for a virtual size of %" PRIu64 " bytes", name, h->l1_size, h->size);
		return -1;
	}
	if (h->l1_size && (h->l1_table_offset % cluster_size || h->l1_table_offset == 0 ||
			   h->l1_table_offset > file_len ||
			   l1_bytes > file_len - h->l1_table_offset)) {
		error_setg(errp, "Image '%s' is corrupt: L1 table at offset %" PRIu64
			   " is unaligned or not inside the file", name, h->l1_table_offset);
		return -1;
	}
	if (h->refcount_table_clusters == 0 || rt_bytes > QCOW2_MAX_RT_BYTES) {
		error_setg(errp, "Image '%s' is corrupt: refcount table of %u clusters "
			   "(must be 1 to %u bytes)", name, h->refcount_table_clusters,
			   QCOW2_MAX_RT_BYTES);
		return -1;
	}
	if (h->refcount_table_offset % cluster_size || h->refcount_table_offset == 0 ||
	    h->refcount_table_offset > file_len ||
	    rt_bytes > file_len - h->refcount_table_offset) {
		error_setg(errp, "Image '%s' is corrupt: refcount table at offset %" PRIu64
			   " is unaligned or not inside the file", name, h->refcount_table_offset);
		return -1;
	}
	if (h->l1_size && ranges_overlap(h->l1_table_offset, l1_bytes,
					 h->refcount_table_offset, rt_bytes)) {
		error_setg(errp, "Image '%s' is corrupt: the L1 table and the refcount table "
			   "overlap", name);
		return -1;
	}
	if (h->has_crypto_ext) {
		if (h->crypto_offset % cluster_size) {
			error_setg(errp, "Encryption header offset '%" PRIu64 "' is not a "
				   "multiple of cluster size '%" PRIu64 "'", h->crypto_offset,
				   cluster_size);
			return -1;
		}
		if (h->crypto_offset == 0 || h->crypto_offset > file_len ||
		    h->crypto_length > file_len - h->crypto_offset ||
		    h->crypto_length > QCOW2_MAX_CRYPTO_HDR) {
			error_setg(errp, "Image '%s' is corrupt: encryption header of %" PRIu64
				   " bytes at offset %" PRIu64 " is not inside the file (or "
				   "larger than %u bytes)", name, h->crypto_length,
				   h->crypto_offset, QCOW2_MAX_CRYPTO_HDR);
			return -1;
		}
	}
	/* As QEMU, the extension only counts while its autoclear bit is set. */
	if (h->has_bitmaps_ext && (h->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
		if (h->nb_bitmaps == 0 || h->nb_bitmaps > QCOW2_MAX_BITMAPS ||
		    h->bitmap_dir_size == 0 || h->bitmap_dir_size > QCOW2_MAX_BITMAP_DIR) {
			error_setg(errp, "Image '%s' is corrupt: bitmaps extension with %u "
				   "bitmaps and a directory of %" PRIu64 " bytes (1 to %d bitmaps, "
				   "at most %u bytes)", name, h->nb_bitmaps, h->bitmap_dir_size,
				   QCOW2_MAX_BITMAPS, QCOW2_MAX_BITMAP_DIR);
			return -1;
		}
		if (h->bitmap_dir_offset % cluster_size || h->bitmap_dir_offset == 0 ||
		    h->bitmap_dir_offset > file_len ||
		    h->bitmap_dir_size > file_len - h->bitmap_dir_offset) {
			error_setg(errp, "Image '%s' is corrupt: bitmap directory at offset %"
				   PRIu64 " is unaligned or not inside the file", name,
				   h->bitmap_dir_offset);
			return -1;
		}
	}
	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
		error_setg(errp, "Image '%s' is corrupt: %u snapshots (at most %d)", name,
			   h->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
		return -1;
	}
	if (h->nb_snapshots) {
		if (h->snapshots_offset % cluster_size || h->snapshots_offset == 0 ||
		    h->snapshots_offset >= file_len) {
			error_setg(errp, "Image '%s' is corrupt: snapshot table at offset %"
				   PRIu64 " is unaligned or not inside the file", name,
				   h->snapshots_offset);
			return -1;
		}
		if ((h->l1_size && ranges_overlap(h->snapshots_offset, 1, h->l1_table_offset,
						  l1_bytes)) ||
		    ranges_overlap(h->snapshots_offset, 1, h->refcount_table_offset, rt_bytes)) {
			error_setg(errp, "Image '%s' is corrupt: the snapshot table overlaps "
				   "the L1 or refcount table", name);
			return -1;
		}
	}
	return 0;
}

uint64_t qcow2_refblock_get(const uint8_t *block, unsigned order, uint64_t index)
{
	unsigned bits = 1u << order;

	if (bits < 8) {
		uint64_t bit = index << order;

		return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
	}
	{
		const uint8_t *p = block + index * (bits / 8);
		uint64_t v = 0;

		for (unsigned i = 0; i < bits / 8; i++)
			v = v << 8 | p[i];
		return v;
	}
}

void qcow2_refblock_set(uint8_t *block, unsigned order, uint64_t index, uint64_t value)
{
	unsigned bits = 1u << order;

	if (bits < 8) {
		uint64_t bit = index << order;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));

		block[bit / 8] = (uint8_t)((block[bit / 8] & ~mask) |
					   ((value << (bit % 8)) & mask));
		return;
	}
	{
		uint8_t *p = block + index * (bits / 8);

		for (int i = (int)(bits / 8) - 1; i >= 0; i--) {
			p[i] = (uint8_t)value;
			value >>= 8;
		}
	}
}
