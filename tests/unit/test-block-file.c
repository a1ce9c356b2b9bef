/*
 * test-block-file.c: the file/host_device driver on real temporary files:
 * I/O and bounds, EOF zeroes, punch/zero, SEEK_DATA/SEEK_HOLE block
 * status, truncate, O_DIRECT bounce buffers under concurrency, a full
 * tmpfs (ENOSPC) and a loop block device.
 */
#include "config.h"

#include <pthread.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "unit.h"
#include "block-helpers.h"

#define MiB (1024 * 1024)

static bool buf_is_byte(const unsigned char *buf, size_t len, unsigned char c)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != c)
			return false;
	}
	return true;
}

static void test_open_errors(void)
{
	struct error *err = NULL;
	char *missing = test_path("missing.img");
	char *img = test_image("reg.img", 4096);
	char *msg = xasprintf("Could not open '%s': No such file or directory", missing);

	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"f\","
			  "\"filename\":\"%s\"}", missing), -1);
	CHECK(test_err_is(err, msg));
	CHECK(block_node_find("f") == NULL);
	error_free(err);
	err = NULL;
	free(msg);

	msg = xasprintf("Could not open '%s': Is a directory", test_dir);
	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"f\","
			  "\"filename\":\"%s\"}", test_dir), -1);
	CHECK(test_err_is(err, msg));
	error_free(err);
	err = NULL;
	free(msg);

	msg = xasprintf("'host_device' driver requires '%s' to be either a character "
			"or block device", img);
	CHECK_EQ(test_add(&err, "{\"driver\":\"host_device\",\"node-name\":\"h\","
			  "\"filename\":\"%s\"}", img), -1);
	CHECK(test_err_is(err, msg));
	error_free(err);
	err = NULL;
	free(msg);

	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"n\","
			  "\"filename\":\"%s\",\"aio\":\"native\"}", img), -1);
	CHECK(test_err_is(err, "aio=native was specified, but it requires "
			  "cache.direct=on, which was not specified."));
	error_free(err);
	free(img);
	free(missing);
}

static void test_read_write(void)
{
	char *img = test_image("rw.img", 1 * MiB);
	struct block_node *bs;
	unsigned char buf[8192], back[8192];

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	bs = node("f");
	CHECK_EQ(block_node_length(bs), 1 * MiB);
	CHECK_EQ(block_node_pread(bs, buf, sizeof(buf), 12345), 0);
	CHECK(buf_is_pattern(buf, sizeof(buf), 12345));
	memset(buf, 0xab, sizeof(buf));
	CHECK_EQ(block_node_pwrite(bs, buf, sizeof(buf), 1 * MiB - sizeof(buf)), 0);
	CHECK_EQ(block_node_flush(bs), 0);
	CHECK_EQ(block_node_pread(bs, back, sizeof(back), 1 * MiB - sizeof(back)), 0);
	CHECK(buf_is_byte(back, sizeof(back), 0xab));
	/* The bytes are in the file, not just in the node. */
	{
		int fd = open(img, O_RDONLY);

		CHECK(pread(fd, back, 1, 1 * MiB - 1) == 1 && back[0] == 0xab);
		close(fd);
	}
	test_del("f");
	free(img);
}

static void test_bounds(void)
{
	char *img = test_image("bounds.img", 65536);
	struct block_node *bs;
	unsigned char buf[4096];
	uint64_t pnum;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	bs = node("f");
	CHECK_EQ(block_node_pread(bs, buf, 4096, 65536 - 4096), 0);
	CHECK_EQ(block_node_pread(bs, buf, 4096, 65536 - 4095), -EINVAL);
	CHECK_EQ(block_node_pread(bs, buf, 1, 65536), -EINVAL);
	CHECK_EQ(block_node_pread(bs, buf, 0, 65536), 0);
	CHECK_EQ(block_node_pread(bs, buf, 16, UINT64_MAX - 8), -EINVAL);
	CHECK_EQ(block_node_pread(bs, buf, 16, (uint64_t)INT64_MAX), -EINVAL);
	CHECK_EQ(block_node_pwrite(bs, buf, 2, 65535), -EINVAL);
	CHECK_EQ(block_node_write_zeroes(bs, 65000, 1000, 0), -EINVAL);
	CHECK_EQ(block_node_discard(bs, UINT64_MAX, 2), -EINVAL);
	CHECK_EQ(block_node_block_status(bs, 65536, 1, &pnum), -EINVAL);
	CHECK_EQ(block_node_truncate(bs, (uint64_t)INT64_MAX + 1), -EINVAL);
	/* Nothing was written past the end. */
	{
		struct stat st;

		CHECK(stat(img, &st) == 0 && st.st_size == 65536);
	}
	test_del("f");
	free(img);
}

static void test_read_only(void)
{
	char *img = test_image("ro.img", 65536);
	struct block_node *bs;
	unsigned char buf[512] = { 0 };
	struct error *err = NULL;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\","
	       "\"read-only\":true}", img);
	bs = node("f");
	CHECK(bs->read_only);
	CHECK_EQ(block_node_pwrite(bs, buf, sizeof(buf), 0), -EROFS);
	CHECK_EQ(block_node_write_zeroes(bs, 0, 512, 0), -EROFS);
	CHECK_EQ(block_node_discard(bs, 0, 512), -EROFS);
	CHECK_EQ(block_node_truncate(bs, 4096), -EROFS);
	CHECK_EQ(block_node_pread(bs, buf, sizeof(buf), 0), 0);
	CHECK(buf_is_pattern(buf, sizeof(buf), 0));
	CHECK_EQ(block_perm_acquire(bs, true, false, &err), -1);
	CHECK(test_err_is(err, "Block node 'f' is read-only"));
	error_free(err);
	err = NULL;
	CHECK_EQ(block_perm_acquire(bs, false, false, &err), 0);
	block_perm_release(bs, false, false);
	test_del("f");
	free(img);
}

/* A file that shrinks under the node: reads past its EOF give zeroes. */
static void test_eof_zeroes(void)
{
	char *img = test_image("eof.img", 65536);
	struct block_node *bs;
	unsigned char buf[8192];

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	bs = node("f");
	CHECK(truncate(img, 60000) == 0);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ(block_node_pread(bs, buf, sizeof(buf), 65536 - 8192), 0);
	CHECK(buf_is_pattern(buf, 60000 - (65536 - 8192), 65536 - 8192));
	CHECK(buf_is_byte(buf + (60000 - (65536 - 8192)), 65536 - 60000, 0));
	test_del("f");
	free(img);
}

static int64_t file_blocks(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int64_t)st.st_blocks * 512 : -1;
}

static void test_zeroes_and_discard(void)
{
	char *img = test_image("zero.img", 4 * MiB);
	struct block_node *bs;
	unsigned char *buf = xmalloc(MiB);
	int64_t before;

	/* discard=unmap: the layer passes discards and unmaps on. */
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\","
	       "\"discard\":\"unmap\"}", img);
	bs = node("f");
	before = file_blocks(img);
	CHECK_EQ(block_node_allocated_size(bs), before);

	/* Punch (MAY_UNMAP): zeroes, and the space goes away. */
	CHECK_EQ(block_node_write_zeroes(bs, 0, MiB, BLOCK_ZERO_MAY_UNMAP), 0);
	CHECK_EQ(block_node_pread(bs, buf, MiB, 0), 0);
	CHECK(buf_is_byte(buf, MiB, 0));
	CHECK(file_blocks(img) <= before - MiB);

	/* Zero range, unaligned edges: exactly those bytes become zero. */
	CHECK_EQ(block_node_write_zeroes(bs, MiB + 100, 5000, 0), 0);
	CHECK_EQ(block_node_pread(bs, buf, 8192, MiB), 0);
	CHECK(buf_is_pattern(buf, 100, MiB));
	CHECK(buf_is_byte(buf + 100, 5000, 0));
	CHECK(buf_is_pattern(buf + 5100, 8192 - 5100, MiB + 5100));

	/* Discard on a regular file punches: reads back zeroes. */
	CHECK_EQ(block_node_discard(bs, 2 * MiB, MiB), 0);
	CHECK_EQ(block_node_pread(bs, buf, MiB, 2 * MiB), 0);
	CHECK(buf_is_byte(buf, MiB, 0));
	CHECK_EQ(block_node_length(bs), 4 * MiB);
	test_del("f");

	/* discard=ignore (the default at the top): discard keeps the data. */
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"g\",\"filename\":\"%s\"}", img);
	bs = node("g");
	CHECK_EQ(block_node_discard(bs, 3 * MiB, 4096), 0);
	CHECK_EQ(block_node_pread(bs, buf, 4096, 3 * MiB), 0);
	CHECK(buf_is_pattern(buf, 4096, 3 * MiB));
	/* ...and write_zeroes still zeroes, without unmapping. */
	CHECK_EQ(block_node_write_zeroes(bs, 3 * MiB, 4096, BLOCK_ZERO_MAY_UNMAP), 0);
	CHECK_EQ(block_node_pread(bs, buf, 4096, 3 * MiB), 0);
	CHECK(buf_is_byte(buf, 4096, 0));
	test_del("g");
	free(buf);
	free(img);
}

static void test_detect_zeroes(void)
{
	char *img = test_image("dz.img", 2 * MiB);
	struct block_node *bs;
	unsigned char *buf = xcalloc(1, MiB);
	int64_t before = file_blocks(img);

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\","
	       "\"discard\":\"unmap\",\"detect-zeroes\":\"unmap\"}", img);
	bs = node("f");
	CHECK_EQ(block_node_pwrite(bs, buf, MiB, 0), 0);
	CHECK(file_blocks(img) <= before - MiB);
	memset(buf, 1, MiB);
	CHECK_EQ(block_node_pread(bs, buf, MiB, 0), 0);
	CHECK(buf_is_byte(buf, MiB, 0));
	test_del("f");
	free(buf);
	free(img);
}

/* Data 0-64k, hole, data at 1M-1M+64k, hole to the 2M EOF. */
static void test_block_status(void)
{
	char *img = test_path("sparse.img");
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
	unsigned char data[65536];
	struct block_node *bs;
	uint64_t pnum;
	int st;

	memset(data, 0x5a, sizeof(data));
	CHECK(pwrite(fd, data, sizeof(data), 0) == sizeof(data));
	CHECK(pwrite(fd, data, sizeof(data), MiB) == sizeof(data));
	CHECK(ftruncate(fd, 2 * MiB) == 0);
	fsync(fd);
	close(fd);

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	bs = node("f");
	st = block_node_block_status(bs, 0, 2 * MiB, &pnum);
	CHECK(st & BLOCK_STATUS_DATA);
	CHECK_EQ(pnum, 65536);
	st = block_node_block_status(bs, 4096, 2 * MiB - 4096, &pnum);
	CHECK(st & BLOCK_STATUS_DATA);
	CHECK_EQ(pnum, 65536 - 4096);
	st = block_node_block_status(bs, 65536, 2 * MiB - 65536, &pnum);
	CHECK(!(st & BLOCK_STATUS_DATA) && (st & BLOCK_STATUS_ZERO));
	CHECK_EQ(pnum, MiB - 65536);
	/* pnum never exceeds the request. */
	st = block_node_block_status(bs, 65536, 100, &pnum);
	CHECK(st & BLOCK_STATUS_ZERO);
	CHECK_EQ(pnum, 100);
	st = block_node_block_status(bs, MiB, MiB, &pnum);
	CHECK(st & BLOCK_STATUS_DATA);
	CHECK_EQ(pnum, 65536);
	/* The hole at EOF: SEEK_DATA says ENXIO. */
	st = block_node_block_status(bs, MiB + 65536, MiB - 65536, &pnum);
	CHECK(st & BLOCK_STATUS_ZERO);
	CHECK_EQ(pnum, MiB - 65536);
	test_del("f");
	free(img);
}

static void test_truncate(void)
{
	char *img = test_image("trunc.img", 65536);
	struct block_node *bs;
	unsigned char buf[4096];
	struct stat st;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	bs = node("f");
	CHECK_EQ(block_node_truncate(bs, 1 * MiB), 0);
	CHECK_EQ(block_node_length(bs), 1 * MiB);
	CHECK(stat(img, &st) == 0 && st.st_size == 1 * MiB);
	memset(buf, 0xff, sizeof(buf));
	CHECK_EQ(block_node_pread(bs, buf, sizeof(buf), MiB - 4096), 0);
	CHECK(buf_is_byte(buf, sizeof(buf), 0));
	CHECK_EQ(block_node_truncate(bs, 1000), 0);
	CHECK_EQ(block_node_length(bs), 1000);
	CHECK_EQ(block_node_pread(bs, buf, 1000, 0), 0);
	CHECK(buf_is_pattern(buf, 1000, 0));
	CHECK_EQ(block_node_pread(bs, buf, 1, 1000), -EINVAL);
	test_del("f");
	free(img);
}

static void test_passthrough(void)
{
	char *img = test_image("pt.img", 65536);
	struct block_passthrough pt = { .fd = -1 };
	const char *why = NULL;
	struct stat a, b;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	CHECK_EQ(block_node_get_passthrough(node("f"), &pt, &why), 0);
	CHECK(pt.fd >= 0 && pt.offset == 0);
	CHECK(fstat(pt.fd, &a) == 0 && stat(img, &b) == 0 && a.st_ino == b.st_ino);
	test_del("f");
	free(img);
}

/* Once the kernel may write the file, a growth behind our back is seen. */
static void test_passthrough_writes_refresh_length(void)
{
	char *img = test_image("ptw.img", 65536);
	struct block_passthrough pt = { .writes = false };
	const char *why = NULL;
	int fd;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	fd = open(img, O_RDWR);
	CHECK(fd >= 0);
	/* Read-only passthrough: the cached length stays (nobody else writes). */
	CHECK_EQ(block_node_get_passthrough(node("f"), &pt, &why), 0);
	CHECK_EQ(ftruncate(fd, 131072), 0);
	CHECK_EQ(block_node_length(node("f")), 65536);
	pt.writes = true;
	CHECK_EQ(block_node_get_passthrough(node("f"), &pt, &why), 0);
	CHECK_EQ(block_node_length(node("f")), 131072);
	CHECK_EQ(ftruncate(fd, 196608), 0);
	CHECK_EQ(block_node_length(node("f")), 196608);
	close(fd);
	test_del("f");
	free(img);
}

/* ---- O_DIRECT with unaligned requests, from several threads ---- */

struct direct_job {
	struct block_node *bs;
	int id;
	int ret;
};

/* Each thread owns bytes id, id+8, id+16, ...: all inside shared blocks. */
static void *direct_writer(void *opaque)
{
	struct direct_job *job = opaque;

	for (int i = 0; i < 2000 && job->ret == 0; i++) {
		unsigned char c = (unsigned char)(job->id + 1);
		uint64_t off = (uint64_t)i * 8 + (uint64_t)job->id;

		job->ret = block_node_pwrite(job->bs, &c, 1, off);
	}
	return NULL;
}

static void test_direct_unaligned(void)
{
	char *img = test_image("direct.img", 65536 + 100);
	struct error *err = NULL;
	struct block_node *bs;
	unsigned char *buf = xmalloc(65536 + 100);
	struct direct_job jobs[8];
	pthread_t th[8];
	struct stat st;
	int ret;

	ret = test_add(&err, "{\"driver\":\"file\",\"node-name\":\"d\","
		       "\"filename\":\"%s\",\"cache\":{\"direct\":true}}", img);
	if (ret < 0) {
		printf("SKIP O_DIRECT test: %s\n", err->msg);
		error_free(err);
		free(img);
		free(buf);
		return;
	}
	bs = node("d");
	CHECK(bs->direct);
	{
		struct block_passthrough pt = { .writes = false };
		const char *why = NULL;

		CHECK_EQ(block_node_get_passthrough(bs, &pt, &why), -ENOTSUP);
		CHECK(why != NULL);
	}
	/* Unaligned read through the bounce buffer. */
	CHECK_EQ(block_node_pread(bs, buf + 1, 10000, 777), 0);
	CHECK(buf_is_pattern(buf + 1, 10000, 777));
	/* Up to the unaligned EOF. */
	CHECK_EQ(block_node_pread(bs, buf, 300, 65536 - 200), 0);
	CHECK(buf_is_pattern(buf, 300, 65536 - 200));
	/* An unaligned write at the unaligned EOF must not grow the file. */
	memset(buf, 0x11, 50);
	CHECK_EQ(block_node_pwrite(bs, buf, 50, 65536 + 50), 0);
	CHECK(stat(img, &st) == 0 && st.st_size == 65536 + 100);
	CHECK_EQ(block_node_pread(bs, buf, 100, 65536), 0);
	CHECK(buf_is_pattern(buf, 50, 65536));
	CHECK(buf_is_byte(buf + 50, 50, 0x11));

	/* 8 threads, 1-byte writes interleaved in the same blocks. */
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct direct_job){ .bs = bs, .id = i };
		pthread_create(&th[i], NULL, direct_writer, &jobs[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(jobs[i].ret, 0);
	}
	CHECK_EQ(block_node_pread(bs, buf, 16000, 0), 0);
	ret = 0;
	for (int i = 0; i < 16000; i++)
		ret += buf[i] != (unsigned char)(i % 8 + 1);
	CHECK_EQ(ret, 0);
	test_del("d");
	free(buf);
	free(img);
}

/* ---- many threads at once, buffered ---- */

static void *parallel_writer(void *opaque)
{
	struct direct_job *job = opaque;
	unsigned char buf[4096];

	memset(buf, job->id + 1, sizeof(buf));
	for (int i = 0; i < 256 && job->ret == 0; i++) {
		uint64_t off = ((uint64_t)i * 8 + (uint64_t)job->id) * sizeof(buf);

		job->ret = block_node_pwrite(job->bs, buf, sizeof(buf), off);
	}
	return NULL;
}

static void test_parallel_writes(void)
{
	char *img = test_image("par.img", 8 * MiB);
	struct direct_job jobs[8];
	pthread_t th[8];
	unsigned char *buf = xmalloc(8 * MiB);
	struct block_node *bs;
	int bad = 0;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"p\",\"filename\":\"%s\"}", img);
	bs = node("p");
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct direct_job){ .bs = bs, .id = i };
		pthread_create(&th[i], NULL, parallel_writer, &jobs[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(jobs[i].ret, 0);
	}
	CHECK_EQ(block_node_pread(bs, buf, 8 * MiB, 0), 0);
	for (size_t i = 0; i < 8 * MiB; i++)
		bad += buf[i] != (unsigned char)((i / 4096) % 8 + 1);
	CHECK_EQ(bad, 0);
	test_del("p");
	free(buf);
	free(img);
}

/* ---- a full filesystem gives ENOSPC, and the node keeps working ---- */

static void test_enospc(void)
{
	char *mnt = test_path("tmpfs");
	char *img = test_path("tmpfs/full.img");
	unsigned char *buf = xmalloc(MiB);
	struct block_node *bs;
	int ret = 0, fd;

	mkdir(mnt, 0755);
	if (mount("exportd-test", mnt, "tmpfs", 0, "size=1m") < 0) {
		printf("SKIP ENOSPC test: cannot mount a tmpfs: %s\n", strerror(errno));
		goto out;
	}
	/* A sparse 8 MiB image on a 1 MiB filesystem. */
	fd = open(img, O_RDWR | O_CREAT, 0644);
	CHECK(fd >= 0 && ftruncate(fd, 8 * MiB) == 0);
	close(fd);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"full\",\"filename\":\"%s\"}", img);
	bs = node("full");
	memset(buf, 0x77, MiB);
	for (int i = 0; i < 8 && ret == 0; i++)
		ret = block_node_pwrite(bs, buf, MiB, (uint64_t)i * MiB);
	CHECK_EQ(ret, -ENOSPC);
	/* Still usable: reads work, and writes fail cleanly again. */
	CHECK_EQ(block_node_pread(bs, buf, 4096, 0), 0);
	CHECK(buf_is_byte(buf, 4096, 0x77));
	CHECK_EQ(block_node_pwrite(bs, buf, MiB, 7 * MiB), -ENOSPC);
	test_del("full");
	CHECK(umount(mnt) == 0);
out:
	free(buf);
	free(img);
	free(mnt);
}

/* ---- auto-read-only on a read-only filesystem ---- */

static void test_auto_read_only(void)
{
	char *mnt = test_path("rofs");
	char *img = test_path("rofs/ro.img");
	struct error *err = NULL;
	char *msg;
	int fd;

	mkdir(mnt, 0755);
	if (mount("exportd-test", mnt, "tmpfs", 0, "size=1m") < 0) {
		printf("SKIP auto-read-only test: cannot mount a tmpfs: %s\n",
		       strerror(errno));
		goto out;
	}
	fd = open(img, O_RDWR | O_CREAT, 0644);
	CHECK(fd >= 0 && ftruncate(fd, 65536) == 0);
	close(fd);
	CHECK(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0);
	msg = xasprintf("Could not open '%s': Read-only file system", img);
	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"w\","
			  "\"filename\":\"%s\"}", img), -1);
	CHECK(test_err_is(err, msg));
	error_free(err);
	free(msg);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\","
	       "\"auto-read-only\":true}", img);
	CHECK(node("a")->read_only);
	test_del("a");
	CHECK(umount(mnt) == 0);
out:
	free(img);
	free(mnt);
}

/* ---- a loop block device (host_device and file) ---- */

static char *loop_setup(const char *backing)
{
	char *cmd = xasprintf("losetup --find --show '%s' 2>/dev/null", backing);
	FILE *p = popen(cmd, "r");
	char line[64] = "";

	free(cmd);
	if (!p)
		return NULL;
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	if (pclose(p) != 0 || line[0] != '/')
		return NULL;
	line[strcspn(line, "\n")] = '\0';
	return xstrdup(line);
}

static void loop_detach(const char *dev)
{
	char *cmd = xasprintf("losetup -d '%s'", dev);

	if (system(cmd) != 0)
		fprintf(stderr, "    could not detach %s\n", dev);
	free(cmd);
}

static void test_block_device(void)
{
	char *img = test_image("loop.img", 4 * MiB);
	char *dev = loop_setup(img);
	struct block_node *bs;
	unsigned char *buf = xmalloc(MiB);
	struct block_passthrough pt = { .writes = false };
	const char *why;
	uint64_t pnum;

	if (!dev) {
		printf("SKIP block device test: losetup failed\n");
		free(img);
		free(buf);
		return;
	}
	ADD_OK("{\"driver\":\"host_device\",\"node-name\":\"b\",\"filename\":\"%s\"}",
	       dev);
	bs = node("b");
	CHECK_EQ(block_node_length(bs), 4 * MiB);
	CHECK_EQ(block_node_pread(bs, buf, 4096, 8192), 0);
	CHECK(buf_is_pattern(buf, 4096, 8192));
	/* BLKZEROOUT in the middle, partial sectors at both ends. */
	CHECK_EQ(block_node_write_zeroes(bs, 1000, 100000, 0), 0);
	CHECK_EQ(block_node_pread(bs, buf, 110000, 0), 0);
	CHECK(buf_is_pattern(buf, 1000, 0));
	CHECK(buf_is_byte(buf + 1000, 100000, 0));
	CHECK(buf_is_pattern(buf + 101000, 9000, 101000));
	/* Block devices keep their size. */
	CHECK_EQ(block_node_truncate(bs, 8 * MiB), -ENOTSUP);
	CHECK_EQ(block_node_truncate(bs, 4 * MiB), 0);
	CHECK(block_node_block_status(bs, 0, MiB, &pnum) & BLOCK_STATUS_DATA);
	CHECK_EQ(pnum, MiB);
	CHECK_EQ(block_node_get_passthrough(bs, &pt, &why), 0);
	CHECK_EQ(block_node_flush(bs), 0);
	test_del("b");
	/* The 'file' driver takes block devices too. */
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"bf\",\"filename\":\"%s\"}", dev);
	CHECK_EQ(block_node_length(node("bf")), 4 * MiB);
	test_del("bf");
	loop_detach(dev);
	free(dev);

	/* A read-only device: refused for writing, or read-only with auto. */
	{
		char *cmd = xasprintf("losetup --find --show --read-only '%s' 2>/dev/null",
				      img);
		FILE *p = popen(cmd, "r");
		char line[64] = "";
		struct error *err = NULL;

		free(cmd);
		if (p && fgets(line, sizeof(line), p) && pclose(p) == 0 && line[0] == '/') {
			line[strcspn(line, "\n")] = '\0';
			CHECK_EQ(test_add(&err, "{\"driver\":\"host_device\","
					  "\"node-name\":\"r\",\"filename\":\"%s\"}",
					  line), -1);
			CHECK(test_err_has(err, "The device is not writable") ||
			      test_err_has(err, "Read-only file system"));
			error_free(err);
			ADD_OK("{\"driver\":\"host_device\",\"node-name\":\"r\","
			       "\"filename\":\"%s\",\"auto-read-only\":true}", line);
			CHECK(node("r")->read_only);
			test_del("r");
			loop_detach(line);
		} else {
			if (p)
				pclose(p);
			printf("SKIP read-only loop device: losetup --read-only failed\n");
		}
	}
	free(buf);
	free(img);
}

static const struct unit_test tests[] = {
	{ "open errors", test_open_errors },
	{ "read and write", test_read_write },
	{ "bounds checks", test_bounds },
	{ "read-only node", test_read_only },
	{ "zeroes past a shrunk EOF", test_eof_zeroes },
	{ "write_zeroes and discard", test_zeroes_and_discard },
	{ "detect-zeroes=unmap", test_detect_zeroes },
	{ "block status from SEEK_DATA/SEEK_HOLE", test_block_status },
	{ "truncate", test_truncate },
	{ "passthrough fd", test_passthrough },
	{ "passthrough writes: length follows the file", test_passthrough_writes_refresh_length },
	{ "O_DIRECT unaligned, concurrent", test_direct_unaligned },
	{ "parallel buffered writes", test_parallel_writes },
	{ "ENOSPC on a full tmpfs", test_enospc },
	{ "auto-read-only on a read-only filesystem", test_auto_read_only },
	{ "loop block device", test_block_device },
	{ NULL, NULL },
};

int main(void)
{
	int ret;

	test_dir_create();
	ret = unit_run("block-file", tests);
	/* Again through the io_uring path, where this kernel has it. */
	{
		struct error *err = NULL;
		char *img = test_image("probe.img", 4096);

		if (test_add(&err, "{\"driver\":\"file\",\"node-name\":\"probe\","
			     "\"filename\":\"%s\",\"aio\":\"io_uring\"}", img) == 0) {
			test_del("probe");
			test_default_aio = "io_uring";
			ret |= unit_run("block-file aio=io_uring", tests);
		} else {
			printf("SKIP aio=io_uring: %s\n", err->msg);
			error_free(err);
		}
		free(img);
	}
	block_close_all();
	test_dir_remove();
	return ret;
}
