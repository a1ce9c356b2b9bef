/*
 * test-qcow2-header.c: qcow2 header parsing and layout validation against
 * hand-built headers in memory: a good header opens, and every corrupt or
 * malicious one (overflowing sizes, tables past the end, overlaps, unknown
 * or unsupported features) is refused with a message naming the problem.
 * Also the sub-byte and multi-byte refcount entry arithmetic.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "rpc/error.h"
#include "unit.h"

#define CS 65536
#define FILE_LEN (4 * CS)

static uint8_t img[CS];

/* A valid version 3 image: L1 at cluster 3, refcount table at cluster 1. */
static void build(void)
{
	memset(img, 0, sizeof(img));
	qcow2_put_be32(img, QCOW2_MAGIC);
	qcow2_put_be32(img + 4, 3);
	qcow2_put_be32(img + 20, 16);			/* cluster_bits */
	qcow2_put_be64(img + 24, 1 << 30);		/* size */
	qcow2_put_be32(img + 36, 2);			/* l1_size */
	qcow2_put_be64(img + 40, 3 * CS);		/* l1_table_offset */
	qcow2_put_be64(img + 48, 1 * CS);		/* refcount_table_offset */
	qcow2_put_be32(img + 56, 1);			/* refcount_table_clusters */
	qcow2_put_be32(img + 96, 4);			/* refcount_order */
	qcow2_put_be32(img + 100, 112);			/* header_length */
}

static void put_ext(size_t *off, uint32_t type, const void *data, uint32_t len)
{
	qcow2_put_be32(img + *off, type);
	qcow2_put_be32(img + *off + 4, len);
	memcpy(img + *off + 8, data, len);
	*off += 8 + ((len + 7) & ~7u);
}

/* Parse and check layout; returns the error message (static) or NULL. */
static const char *try_open(size_t len, uint64_t file_len)
{
	static char msg[512];
	struct error *err = NULL;
	struct qcow2_header h;
	int ret;

	ret = qcow2_header_parse(img, len, &h, "t.qcow2", &err);
	if (ret == 0) {
		ret = qcow2_header_check_layout(&h, file_len, "t.qcow2", &err);
		qcow2_header_clear(&h);
	}
	if (ret == 0)
		return NULL;
	snprintf(msg, sizeof(msg), "%s", err ? err->msg : "(no message)");
	error_free(err);
	return msg;
}

static bool refused_with(const char *word)
{
	const char *m = try_open(sizeof(img), FILE_LEN);

	if (!m) {
		fprintf(stderr, "    expected an error with '%s', image opened\n", word);
		return false;
	}
	if (!strstr(m, word)) {
		fprintf(stderr, "    error '%s' lacks '%s'\n", m, word);
		return false;
	}
	return true;
}

static void test_valid(void)
{
	struct error *err = NULL;
	struct qcow2_header h;
	size_t off = 112;

	build();
	put_ext(&off, QCOW2_EXT_BACKING_FORMAT, "qcow2", 5);
	qcow2_put_be64(img + 8, 4096);
	qcow2_put_be32(img + 16, 8);
	memcpy(img + 4096, "base.img", 8);
	CHECK(qcow2_header_parse(img, sizeof(img), &h, "t", &err) == 0);
	CHECK(err == NULL);
	CHECK_EQ(h.version, 3u);
	CHECK_EQ(h.cluster_bits, 16u);
	CHECK_EQ(h.size, (uint64_t)1 << 30);
	CHECK_STREQ(h.backing_file, "base.img");
	CHECK_STREQ(h.backing_format, "qcow2");
	CHECK(qcow2_header_check_layout(&h, FILE_LEN, "t", &err) == 0);
	qcow2_header_clear(&h);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);
}

static void test_v2(void)
{
	struct error *err = NULL;
	struct qcow2_header h;

	build();
	qcow2_put_be32(img + 4, 2);
	/* Version 2 has no fields past 72: garbage there must not matter. */
	qcow2_put_be64(img + 72, ~0ULL);
	qcow2_put_be32(img + 96, 99);
	memset(img + 72, 0, 8);		/* end-of-extensions marker at 72 */
	CHECK(qcow2_header_parse(img, sizeof(img), &h, "t", &err) == 0);
	CHECK_EQ(h.refcount_order, 4u);
	CHECK_EQ(h.header_length, 72u);
	CHECK_EQ(h.incompatible_features, 0u);
	qcow2_header_clear(&h);
}

static void test_bad_magic_version(void)
{
	build();
	img[0] = 'X';
	CHECK(refused_with("not in qcow2 format"));
	build();
	qcow2_put_be32(img + 4, 4);
	CHECK(refused_with("unsupported qcow2 version 4"));
	build();
	CHECK(try_open(40, FILE_LEN) != NULL);
}

static void test_cluster_bits(void)
{
	build();
	qcow2_put_be32(img + 20, 8);
	CHECK(refused_with("cluster_bits 8"));
	build();
	qcow2_put_be32(img + 20, 22);
	CHECK(refused_with("cluster_bits 22"));
	build();
	qcow2_put_be32(img + 20, 0xffffffff);
	CHECK(refused_with("cluster_bits"));
}

static void test_header_length_and_order(void)
{
	build();
	qcow2_put_be32(img + 100, 100);
	CHECK(refused_with("header_length 100"));
	build();
	qcow2_put_be32(img + 100, 107);
	CHECK(refused_with("header_length"));
	build();
	qcow2_put_be32(img + 100, 0x80000000);
	CHECK(refused_with("header_length"));
	build();
	qcow2_put_be32(img + 96, 7);
	CHECK(refused_with("refcount_order 7"));
}

static void test_features(void)
{
	uint8_t ft[48] = { 0 };
	size_t off = 112;

	/* The old AES with QEMU's message; LUKS needs its crypto extension. */
	build();
	qcow2_put_be32(img + 32, 1);
	CHECK(refused_with("Use of AES-CBC encrypted qcow2 images is no longer supported"));
	build();
	qcow2_put_be32(img + 32, 2);
	CHECK(refused_with("LUKS encryption without a crypto header extension"));
	build();
	qcow2_put_be32(img + 32, 3);
	CHECK(refused_with("Unsupported encryption method: 3"));

	build();
	qcow2_put_be64(img + 72, 1ULL << 40);
	CHECK(refused_with("incompatible feature bit 40"));
	/* The image's own feature name table names it. */
	build();
	ft[0] = 0;
	ft[1] = 40;
	memcpy(ft + 2, "frobnication", 12);
	put_ext(&off, QCOW2_EXT_FEATURE_TABLE, ft, 48);
	qcow2_put_be64(img + 72, 1ULL << 40);
	CHECK(refused_with("frobnication"));

	build();
	qcow2_put_be64(img + 72, QCOW2_INCOMPAT_DATA_FILE);
	CHECK(refused_with("external data file"));
	build();
	off = 112;
	put_ext(&off, QCOW2_EXT_DATA_FILE, "data.raw", 8);
	CHECK(refused_with("external data file"));
	build();
	qcow2_put_be64(img + 72, QCOW2_INCOMPAT_EXTL2);
	CHECK(refused_with("extended L2"));
	build();
	off = 112;
	put_ext(&off, QCOW2_EXT_CRYPTO, ft, 16);
	CHECK(refused_with("encryption"));

	build();
	qcow2_put_be64(img + 72, QCOW2_INCOMPAT_COMPRESSION);
	CHECK(refused_with("no compression type"));
	build();
	img[104] = 1;
	CHECK(refused_with("without the compression type feature bit"));
	build();
	img[104] = 2;
	qcow2_put_be64(img + 72, QCOW2_INCOMPAT_COMPRESSION);
	CHECK(refused_with("unknown compression type 2"));
	build();
	img[104] = 1;
	qcow2_put_be64(img + 72, QCOW2_INCOMPAT_COMPRESSION);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);

	/* Dirty and corrupt bits parse; the driver refuses them for writing. */
	build();
	qcow2_put_be64(img + 72, QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);
}

static void test_extensions(void)
{
	size_t off = 112;

	build();
	qcow2_put_be32(img + off, 0x12345678);
	qcow2_put_be32(img + off + 4, CS);	/* longer than the cluster */
	CHECK(refused_with("past the end of the header area"));

	/* Extension header cut off by the backing file name. */
	build();
	qcow2_put_be64(img + 8, 116);
	qcow2_put_be32(img + 16, 4);
	qcow2_put_be32(img + 112, 0x12345678);
	CHECK(refused_with("cut off"));

	/* Unknown extensions are skipped. */
	build();
	off = 112;
	put_ext(&off, 0x77777777, "abcdefghij", 10);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);
}

/* Put a bitmaps extension at 112 and set (or not) its autoclear bit. */
static void put_bitmaps(uint32_t nb, uint64_t dir_size, uint64_t dir_off, bool autoclear)
{
	uint8_t e[24] = { 0 };
	size_t off = 112;

	build();
	qcow2_put_be32(e, nb);
	qcow2_put_be64(e + 8, dir_size);
	qcow2_put_be64(e + 16, dir_off);
	put_ext(&off, QCOW2_EXT_BITMAPS, e, sizeof(e));
	if (autoclear)
		qcow2_put_be64(img + 88, 1);	/* autoclear bit 0: bitmaps */
}

static void test_bitmaps_extension(void)
{
	put_bitmaps(1, 64, 2 * CS, true);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);
	put_bitmaps(0, 64, 2 * CS, true);
	CHECK(refused_with("bitmaps extension"));
	put_bitmaps(70000, 64, 2 * CS, true);
	CHECK(refused_with("bitmaps extension"));
	put_bitmaps(1, 1ULL << 40, 2 * CS, true);
	CHECK(refused_with("bitmaps extension"));
	put_bitmaps(1, 64, 2 * CS + 8, true);
	CHECK(refused_with("bitmap directory at offset"));
	put_bitmaps(1, 2 * CS, 3 * CS, true);
	CHECK(refused_with("bitmap directory at offset"));
	put_bitmaps(1, 64, 1ULL << 62, true);
	CHECK(refused_with("bitmap directory at offset"));
	/* Without its autoclear bit the extension is stale: ignored, as by QEMU. */
	put_bitmaps(0, 1ULL << 40, 1ULL << 62, false);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);
	/* Too short to hold the fields. */
	{
		size_t off = 112;

		build();
		put_ext(&off, QCOW2_EXT_BITMAPS, "abcdefgh", 8);
		CHECK(refused_with("bitmaps extension"));
	}
}

static void test_backing_name(void)
{
	build();
	qcow2_put_be64(img + 8, CS - 4);
	qcow2_put_be32(img + 16, 8);
	CHECK(refused_with("not inside the first cluster"));
	build();
	qcow2_put_be64(img + 8, 4096);
	qcow2_put_be32(img + 16, 1024);
	CHECK(refused_with("backing file name length 1024"));
	build();
	qcow2_put_be64(img + 8, 4096);
	qcow2_put_be32(img + 16, 8);
	memcpy(img + 4096, "ab\0cdefg", 8);
	CHECK(refused_with("NUL"));
	build();
	qcow2_put_be64(img + 8, ~0ULL - 2);
	qcow2_put_be32(img + 16, 8);
	CHECK(refused_with("not inside the first cluster"));
	/* Name past the end of a short file. */
	build();
	qcow2_put_be64(img + 8, 4096);
	qcow2_put_be32(img + 16, 8);
	CHECK(try_open(1024, FILE_LEN) != NULL);
}

static void test_layout(void)
{
	build();
	qcow2_put_be64(img + 24, 1ULL << 62);
	CHECK(refused_with("virtual size"));
	build();
	qcow2_put_be64(img + 24, ~0ULL);
	CHECK(refused_with("virtual size"));
	build();
	qcow2_put_be64(img + 24, 1ULL << 40);	/* needs 2048 L1 entries */
	CHECK(refused_with("too small"));
	build();
	qcow2_put_be32(img + 36, 0xffffffff);
	CHECK(refused_with("too large"));
	build();
	qcow2_put_be64(img + 40, 4 * CS);
	CHECK(refused_with("L1 table at offset"));
	build();
	qcow2_put_be64(img + 40, 3 * CS + 8);
	CHECK(refused_with("L1 table at offset"));
	build();
	qcow2_put_be64(img + 40, ~0ULL & ~(uint64_t)(CS - 1));
	CHECK(refused_with("L1 table at offset"));
	build();
	qcow2_put_be64(img + 40, 0);
	CHECK(refused_with("L1 table at offset"));
	build();
	qcow2_put_be64(img + 48, 4 * CS);
	CHECK(refused_with("refcount table at offset"));
	build();
	qcow2_put_be64(img + 48, 0);
	CHECK(refused_with("refcount table at offset"));
	build();
	qcow2_put_be32(img + 56, 0);
	CHECK(refused_with("refcount table of 0 clusters"));
	build();
	qcow2_put_be32(img + 56, 0x80000000);
	CHECK(refused_with("refcount table of"));
	build();
	qcow2_put_be32(img + 56, 3);		/* clusters 1..3 cover the L1 */
	CHECK(refused_with("overlap"));
	build();
	qcow2_put_be32(img + 56, 3);
	CHECK(try_open(sizeof(img), 8 * CS) != NULL);
	build();
	qcow2_put_be32(img + 60, 1);
	qcow2_put_be64(img + 64, 3 * CS);
	CHECK(refused_with("snapshot table overlaps"));
	build();
	qcow2_put_be32(img + 60, 1000000);
	qcow2_put_be64(img + 64, 2 * CS);
	CHECK(refused_with("snapshots"));
	build();
	qcow2_put_be32(img + 60, 1);
	qcow2_put_be64(img + 64, 2 * CS);
	CHECK(try_open(sizeof(img), FILE_LEN) == NULL);
}

static void test_l1_entries_for(void)
{
	CHECK_EQ(qcow2_l1_entries_for(0, 16), 0u);
	CHECK_EQ(qcow2_l1_entries_for(1, 16), 1u);
	CHECK_EQ(qcow2_l1_entries_for(512ULL << 20, 16), 1u);
	CHECK_EQ(qcow2_l1_entries_for((512ULL << 20) + 1, 16), 2u);
	CHECK_EQ(qcow2_l1_entries_for(1ULL << 20, 9), 32u);
	CHECK_EQ(qcow2_l1_entries_for(~0ULL, 21), 1ULL << 25);
}

static void test_refblock_entries(void)
{
	for (unsigned order = 0; order <= 6; order++) {
		uint8_t block[512];
		unsigned bits = 1u << order;
		uint64_t n = 512 * 8 / bits;
		uint64_t max = bits == 64 ? ~0ULL : (1ULL << bits) - 1;
		bool ok = true;

		memset(block, 0, sizeof(block));
		for (uint64_t i = 0; i < n; i++)
			qcow2_refblock_set(block, order, i, (i * 0x9e3779b97f4a7c15ULL) & max);
		for (uint64_t i = 0; i < n; i++)
			ok &= qcow2_refblock_get(block, order, i) ==
			      ((i * 0x9e3779b97f4a7c15ULL) & max);
		CHECK(ok);
		/* Setting one entry leaves its neighbours alone. */
		qcow2_refblock_set(block, order, 5, 0);
		CHECK_EQ(qcow2_refblock_get(block, order, 5), 0u);
		CHECK_EQ(qcow2_refblock_get(block, order, 4), (4 * 0x9e3779b97f4a7c15ULL) & max);
		CHECK_EQ(qcow2_refblock_get(block, order, 6), (6 * 0x9e3779b97f4a7c15ULL) & max);
	}
	/* Bit layout from the spec: bit 0 is the least significant. */
	{
		uint8_t block[8] = { 0 };

		qcow2_refblock_set(block, 0, 0, 1);
		CHECK_EQ(block[0], 0x01);
		qcow2_refblock_set(block, 1, 1, 3);
		CHECK_EQ(block[0], 0x0d);
		qcow2_refblock_set(block, 4, 1, 0x1234);
		CHECK_EQ(block[2], 0x12);
		CHECK_EQ(block[3], 0x34);
	}
}

static void test_cache(void)
{
	struct qcow2_cache c;
	uint64_t *t;
	int hits = 0;

	qcow2_cache_init(&c, 512, 16);
	for (uint64_t i = 1; i <= 16; i++) {
		t = qcow2_cache_insert(&c, i * 512);
		t[0] = i;
	}
	for (uint64_t i = 1; i <= 16; i++) {
		t = qcow2_cache_lookup(&c, i * 512);
		if (t) {
			hits++;
			CHECK_EQ(t[0], i);
		}
	}
	CHECK(hits >= 8);
	qcow2_cache_drop(&c, 512);
	CHECK(qcow2_cache_lookup(&c, 512) == NULL);
	/* Many more tables than slots: never a wrong table. */
	for (uint64_t i = 1; i <= 1000; i++) {
		t = qcow2_cache_insert(&c, i * 4096);
		t[0] = i;
	}
	for (uint64_t i = 1; i <= 1000; i++) {
		t = qcow2_cache_lookup(&c, i * 4096);
		if (t)
			CHECK_EQ(t[0], i);
	}
	CHECK(qcow2_cache_lookup(&c, 1000 * 4096) != NULL);
	qcow2_cache_destroy(&c);
}

static const struct unit_test tests[] = {
	{ "valid v3 header with backing name and format", test_valid },
	{ "v2 header ignores v3 fields", test_v2 },
	{ "bad magic, version, short file", test_bad_magic_version },
	{ "cluster_bits out of range", test_cluster_bits },
	{ "header_length and refcount_order", test_header_length_and_order },
	{ "encryption, unknown and unsupported features", test_features },
	{ "header extensions past the area", test_extensions },
	{ "backing file name bounds", test_backing_name },
	{ "bitmaps extension bounds", test_bitmaps_extension },
	{ "table layout: sizes, bounds, overlaps", test_layout },
	{ "L1 entries for a size", test_l1_entries_for },
	{ "refcount entries of every width", test_refblock_entries },
	{ "metadata cache", test_cache },
	{ NULL, NULL },
};

int main(void)
{
	return unit_run("qcow2-header", tests);
}
