/*
 * test-qcow2-io.c: the qcow2 driver against images made by qemu-img, the
 * oracle.  Reads: every cluster size from 512 B to 2 MiB, compat 0.10 and
 * 1.1, refcount widths 1..64, zlib and zstd compressed images, backing
 * chains of depth 3 read back byte-identical to `qemu-img convert -O raw`.
 * Writes: random writes, zeroes, discards and resizes applied both through
 * the driver and to a raw reference, then `qemu-img check` must be clean
 * and `qemu-img compare` must find the images identical.  Also several
 * threads writing into the same clusters at once.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/block.h"
#include "rpc/error.h"
#include "log.h"
#include "unit.h"
#include "util.h"

static char tmpdir[64];
static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int st;

	va_start(ap, fmt);
	cmd = xvasprintf(fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st != 0)
		fprintf(stderr, "    command failed (%d): %s\n", st, cmd);
	free(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Create an encrypted qcow2 image (encrypt.format aes or luks).  LUKS key
 * setup benchmarks PBKDF2 against the thread's CPU time, and qemu-img
 * gives up ("Unable to get accurate CPU usage") when a round happens to
 * measure 0 ms, which the tick-sampled CPU clocks of a busy VM do now and
 * then, whatever iter-time says.  So: a small fixed iter-time, and a
 * bounded number of tries.
 */
static int create_encrypted_qcow2(const char *format, const char *img)
{
	bool luks = strcmp(format, "luks") == 0;
	int st = -1;

	for (int tries = 0; tries < 10 && st != 0; tries++)
		st = sh("qemu-img create -q -f qcow2 -o encrypt.format=%s,encrypt.key-secret=s%s "
			"--object secret,id=s,data=x %s 1M", format,
			luks ? ",encrypt.iter-time=10" : "", img);
	return st;
}

static char *tpath(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

/* Fill a raw file with runs of data and zeroes (holes for the converter). */
static void make_raw(const char *path, uint64_t size)
{
	uint8_t *buf = xmalloc(size);
	int fd;

	for (uint64_t off = 0; off < size; off += 4096) {
		uint64_t r = rnd() % 4;

		for (uint64_t i = 0; i < 4096 && off + i < size; i++)
			buf[off + i] = r == 0 ? 0 : (uint8_t)(rnd() >> 24);
	}
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || pwrite(fd, buf, size, 0) != (ssize_t)size)
		fprintf(stderr, "    cannot write %s\n", path);
	close(fd);
	free(buf);
}

static struct block_node *open_node(const char *name, const char *path, bool ro,
				    const char *backing)
{
	json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:s}}", "driver", "qcow2",
			      "node-name", name, "read-only", ro, "discard", "unmap",
			      "file", "driver", "file", "filename", path);
	struct error *err = NULL;

	if (backing)
		json_object_set_new(o, "backing", json_string(backing));
	if (blockdev_add(o, &err) < 0) {
		fprintf(stderr, "    blockdev-add %s: %s\n", path, err->msg);
		error_free(err);
		json_decref(o);
		return NULL;
	}
	json_decref(o);
	return block_node_find(name);
}

static void close_node(const char *name)
{
	struct error *err = NULL;

	if (blockdev_del(name, &err) < 0) {
		fprintf(stderr, "    blockdev-del %s: %s\n", name, err->msg);
		error_free(err);
	}
}

static uint8_t *read_file(const char *path, uint64_t *size)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	buf = xmalloc(st.st_size + 1);
	if (pread(fd, buf, st.st_size, 0) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*size = st.st_size;
	return buf;
}

/* Read the node in random-sized pieces and compare with a raw file. */
static bool node_matches_raw(struct block_node *bs, const char *raw)
{
	uint64_t size = 0, off = 0;
	uint8_t *ref = read_file(raw, &size), *buf;
	bool ok = true;

	if (!ref || block_node_length(bs) != (int64_t)size) {
		fprintf(stderr, "    size mismatch: node %lld, raw %llu\n",
			(long long)block_node_length(bs), (unsigned long long)size);
		free(ref);
		return false;
	}
	buf = xmalloc(size + 1);
	while (off < size) {
		uint64_t piece = 1 + rnd() % (300 * 1024);
		uint64_t n = MIN(size - off, piece);
		int ret = block_node_pread(bs, buf + off, n, off);

		if (ret < 0) {
			fprintf(stderr, "    pread %llu+%llu: %s\n", (unsigned long long)off,
				(unsigned long long)n, strerror(-ret));
			ok = false;
			break;
		}
		off += n;
	}
	if (ok && memcmp(buf, ref, size)) {
		for (uint64_t i = 0; i < size; i++) {
			if (buf[i] != ref[i]) {
				fprintf(stderr, "    first difference at byte %llu\n",
					(unsigned long long)i);
				break;
			}
		}
		ok = false;
	}
	free(buf);
	free(ref);
	return ok;
}

static bool check_clean(const char *img)
{
	return sh("qemu-img check -q %s", img) == 0;
}

static bool compare(const char *img, const char *raw)
{
	return sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw) == 0;
}

/* Convert a fresh raw file to qcow2 with opts, open it, read it all back. */
static void read_case(const char *opts, bool compressed)
{
	char *raw = tpath("r.raw"), *img = tpath("r.qcow2");
	struct block_node *bs;

	make_raw(raw, (6 << 20) + 3 * 512);
	CHECK(sh("qemu-img convert %s -f raw -O qcow2 -o %s %s %s", compressed ? "-c" : "",
		 opts, raw, img) == 0);
	bs = open_node("r", img, true, NULL);
	CHECK(bs != NULL);
	if (bs) {
		if (!node_matches_raw(bs, raw)) {
			fprintf(stderr, "    with -o %s%s\n", opts, compressed ? " -c" : "");
			CHECK(false);
		}
		close_node("r");
	}
	free(raw);
	free(img);
}

static void test_read_cluster_sizes(void)
{
	static const char *const sizes[] = { "512", "1k", "4k", "64k", "256k", "2M" };

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		char *o = xasprintf("cluster_size=%s,compat=1.1", sizes[i]);

		read_case(o, false);
		free(o);
		o = xasprintf("cluster_size=%s,compat=0.10", sizes[i]);
		read_case(o, false);
		free(o);
	}
}

static void test_read_refcount_bits(void)
{
	for (int b = 1; b <= 64; b *= 2) {
		char *o = xasprintf("cluster_size=4k,refcount_bits=%d", b);

		read_case(o, false);
		free(o);
	}
}

static void test_read_compressed(void)
{
	read_case("cluster_size=64k", true);
	read_case("cluster_size=512", true);
	read_case("cluster_size=2M", true);
	read_case("cluster_size=64k,compat=0.10", true);
	read_case("cluster_size=64k,compression_type=zstd", true);
	read_case("cluster_size=4k,compression_type=zstd", true);
}

/* qemu-io writes a pattern into an image. */
static void qio_write(const char *img, const char *fmt, uint64_t off, uint64_t len, int pat)
{
	CHECK(sh("qemu-io -f %s -c 'write -P %d %llu %llu' %s >/dev/null", fmt, pat,
		 (unsigned long long)off, (unsigned long long)len, img) == 0);
}

/* Hide the backing format extension (an unknown type is skipped). */
static void strip_backing_format(const char *img)
{
	uint8_t h[4096];
	int fd = open(img, O_RDWR);

	CHECK(fd >= 0 && pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h));
	for (size_t off = 104; off + 8 <= sizeof(h); off += 8) {
		if (h[off] == 0xe2 && h[off + 1] == 0x79 && h[off + 2] == 0x2a &&
		    h[off + 3] == 0xca) {
			h[off] = 0x12;
			CHECK(pwrite(fd, h + off, 1, off) == 1);
			break;
		}
	}
	close(fd);
}

static void make_chain(bool with_formats)
{
	char *base = tpath("base.raw");
	const char *F1 = "-F raw", *F2 = "-F qcow2";

	make_raw(base, 5 << 20);
	/* Relative backing names: resolved against the image's directory. */
	CHECK(sh("cd %s && qemu-img create -q -f qcow2 -o cluster_size=4k -b base.raw %s "
		 "l1.qcow2 && qemu-img create -q -f qcow2 -b l1.qcow2 %s l2.qcow2 && "
		 "qemu-img create -q -f qcow2 -o cluster_size=512 -b l2.qcow2 %s top.qcow2 6M",
		 tmpdir, F1, F2, F2) == 0);
	{
		char *l1 = tpath("l1.qcow2"), *l2 = tpath("l2.qcow2"), *top = tpath("top.qcow2");

		qio_write(l1, "qcow2", 4096, 100000, 0x11);
		qio_write(l1, "qcow2", 3 << 20, 12345, 0x12);
		qio_write(l2, "qcow2", 50000, 70000, 0x21);
		qio_write(l2, "qcow2", 0, 512, 0x22);
		CHECK(sh("qemu-io -f qcow2 -c 'write -z 2000000 300000' %s >/dev/null", l2) == 0);
		qio_write(top, "qcow2", 60000, 1000, 0x31);
		qio_write(top, "qcow2", (5 << 20) + 100, 1000, 0x32);
		if (!with_formats) {
			/*
			 * The driver must probe base as raw.  A probed qcow2
			 * may not name a backing file itself, so l2 and top
			 * keep their formats (test_probed_qcow2_backing).
			 */
			strip_backing_format(l1);
		}
		free(l1);
		free(l2);
		free(top);
	}
	free(base);
}

/*
 * Probing must not grant what a format would not: a backing file probed
 * as qcow2 (it could be a raw disk whose guest wrote a qcow2 header) may
 * not name a backing file of its own.
 */
static void test_probed_qcow2_backing(void)
{
	char *top = tpath("top.qcow2");
	json_t *o;
	struct error *err = NULL;

	make_chain(true);
	strip_backing_format(top);
	o = json_pack("{s:s, s:s, s:b, s:{s:s, s:s}}", "driver", "qcow2", "node-name", "top",
		      "read-only", 1, "file", "driver", "file", "filename", top);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "was probed as qcow2 and names a backing file "
			    "'l1.qcow2' itself"));
	CHECK(block_node_find("top") == NULL);
	error_free(err);
	json_decref(o);
	free(top);
}

static void test_read_backing_chain(void)
{
	for (int f = 0; f < 2; f++) {
		char *top = tpath("top.qcow2"), *ref = tpath("top.raw");
		struct block_node *bs;

		make_chain(f);
		CHECK(sh("qemu-img convert -O raw %s %s", top, ref) == 0);
		bs = open_node("top", top, true, NULL);
		CHECK(bs != NULL);
		if (bs) {
			int depth = 0;

			for (struct block_node *b = bs->backing; b; b = b->backing)
				depth++;
			CHECK_EQ(depth, 3);
			CHECK(node_matches_raw(bs, ref));
			close_node("top");
		}
		free(top);
		free(ref);
	}
}

static void test_backing_null_and_ref(void)
{
	char *top = tpath("top.qcow2"), *ref = tpath("top.raw"), *l2 = tpath("l2.qcow2");
	json_t *o;
	struct error *err = NULL;
	struct block_node *bs;

	make_chain(true);
	/* backing: null: no backing, unallocated clusters read as zeroes. */
	o = json_pack("{s:s, s:s, s:b, s:n, s:{s:s, s:s}}", "driver", "qcow2", "node-name",
		      "t", "read-only", 1, "backing", "file", "driver", "file", "filename", top);
	CHECK(blockdev_add(o, &err) == 0);
	json_decref(o);
	bs = block_node_find("t");
	CHECK(bs && !bs->backing);
	if (bs) {
		char *copy = tpath("nob.qcow2");

		/* The oracle: the same image with its backing link removed. */
		CHECK(sh("cp %s %s && qemu-img rebase -q -u -b '' %s && "
			 "qemu-img convert -O raw %s %s", top, copy, copy, copy, ref) == 0);
		CHECK(node_matches_raw(bs, ref));
		close_node("t");
		free(copy);
	}
	/* backing: a node name. */
	CHECK(open_node("mid", l2, true, NULL) != NULL);
	bs = open_node("t2", top, true, "mid");
	CHECK(bs && bs->backing == block_node_find("mid"));
	if (bs) {
		CHECK(sh("qemu-img convert -O raw %s %s", top, ref) == 0);
		CHECK(node_matches_raw(bs, ref));
		close_node("t2");
	}
	close_node("mid");
	free(top);
	free(ref);
	free(l2);
}

/* Apply the same random writes to the node and to a raw file. */
static int apply_writes(struct block_node *bs, int rawfd, uint64_t size, uint64_t cs,
			int n, bool discard)
{
	uint8_t *buf = xmalloc(3 * cs + 70000);
	int ret = 0;

	for (int i = 0; i < n && ret == 0; i++) {
		uint64_t kind = rnd() % 10;
		uint64_t len = 1 + rnd() % (2 * cs + 65536);
		uint64_t off = rnd() % size;
		uint64_t left = size - off;

		if (rnd() % 2)
			off = off / cs * cs;
		if (rnd() % 2)
			len = ROUND_UP(len, 512);
		len = MIN(len, left);
		if (!len)
			continue;
		if (kind < 7) {
			for (uint64_t k = 0; k < len; k++)
				buf[k] = (uint8_t)(rnd() >> 16);
			ret = block_node_pwrite(bs, buf, len, off);
			if (ret < 0)
				fprintf(stderr, "    pwrite: %s\n", strerror(-ret));
		} else if (kind < 9 || !discard) {
			memset(buf, 0, len);
			ret = block_node_write_zeroes(bs, off, len,
						      kind == 8 ? BLOCK_ZERO_MAY_UNMAP : 0);
			if (ret < 0)
				fprintf(stderr, "    write_zeroes: %s\n", strerror(-ret));
		} else {
			/* Without a backing file, discarded clusters read as zeroes. */
			uint64_t s = ROUND_UP(off, cs), e = ROUND_DOWN(off + len, cs);

			if (off + len == size)
				e = size;
			ret = block_node_discard(bs, off, len);
			if (ret < 0)
				fprintf(stderr, "    discard: %s\n", strerror(-ret));
			if (e <= s)
				continue;
			memset(buf, 0, e - s);
			off = s;
			len = e - s;
		}
		if (pwrite(rawfd, buf, len, off) != (ssize_t)len)
			ret = -EIO;
	}
	free(buf);
	return ret;
}

static void write_case(const char *opts, uint64_t cs, bool compressed, int nwrites)
{
	char *raw = tpath("w.raw"), *img = tpath("w.qcow2");
	uint64_t size = (8 << 20) + 4096;
	struct block_node *bs;
	int fd;

	make_raw(raw, size);
	CHECK(sh("qemu-img convert %s -f raw -O qcow2 -o %s %s %s", compressed ? "-c" : "",
		 opts, raw, img) == 0);
	bs = open_node("w", img, false, NULL);
	CHECK(bs != NULL);
	if (!bs)
		goto out;
	fd = open(raw, O_RDWR);
	CHECK(apply_writes(bs, fd, size, cs, nwrites, true) == 0);
	close(fd);
	CHECK(block_node_flush(bs) == 0);
	if (!node_matches_raw(bs, raw)) {
		fprintf(stderr, "    read-back differs with -o %s\n", opts);
		CHECK(false);
	}
	close_node("w");
	if (!check_clean(img) || !compare(img, raw)) {
		fprintf(stderr, "    after writes with -o %s%s\n", opts, compressed ? " -c" : "");
		CHECK(false);
	}
out:
	free(raw);
	free(img);
}

static void test_write_matrix(void)
{
	write_case("cluster_size=64k", 65536, false, 150);
	write_case("cluster_size=64k,compat=0.10", 65536, false, 150);
	write_case("cluster_size=512", 512, false, 300);
	write_case("cluster_size=512,refcount_bits=64", 512, false, 300);
	write_case("cluster_size=4k,refcount_bits=1", 4096, false, 200);
	write_case("cluster_size=2M", 2 << 20, false, 40);
	write_case("cluster_size=1k,compat=0.10,refcount_bits=16", 1024, false, 200);
}

static void test_write_compressed(void)
{
	write_case("cluster_size=64k", 65536, true, 100);
	write_case("cluster_size=4k,compression_type=zstd", 4096, true, 150);
}

/* A fresh, empty image grows its refcount table and L2 tables. */
static void test_write_fill_empty(void)
{
	char *raw = tpath("e.raw"), *img = tpath("e.qcow2");
	uint64_t size = 12 << 20;
	struct block_node *bs;
	uint8_t *buf = xmalloc(size);
	int fd;

	for (uint64_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 12));
	CHECK(sh("qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 %s %llu",
		 img, (unsigned long long)size) == 0);
	bs = open_node("e", img, false, NULL);
	CHECK(bs != NULL);
	if (bs) {
		for (uint64_t off = 0; off < size; off += 128 * 1024)
			CHECK(block_node_pwrite(bs, buf + off, 128 * 1024, off) == 0);
		close_node("e");
	}
	fd = open(raw, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	CHECK(pwrite(fd, buf, size, 0) == (ssize_t)size);
	close(fd);
	CHECK(check_clean(img));
	CHECK(compare(img, raw));
	/* The 1-cluster refcount table (2 MiB of 512-byte clusters) had to grow. */
	fd = open(img, O_RDONLY);
	{
		uint8_t h[60];

		CHECK(pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h));
		CHECK(h[59] > 1 || h[58] || h[57] || h[56]);
	}
	close(fd);
	free(buf);
	free(raw);
	free(img);
}

static void test_write_backing(void)
{
	char *top = tpath("top.qcow2"), *ref = tpath("top.raw");
	struct block_node *bs;
	int fd;

	make_chain(true);
	CHECK(sh("qemu-img convert -O raw %s %s", top, ref) == 0);
	bs = open_node("top", top, false, NULL);
	CHECK(bs != NULL);
	if (bs) {
		fd = open(ref, O_RDWR);
		CHECK(apply_writes(bs, fd, 6 << 20, 512, 200, false) == 0);
		close(fd);
		CHECK(node_matches_raw(bs, ref));
		close_node("top");
	}
	CHECK(check_clean(top));
	CHECK(compare(top, ref));
	free(top);
	free(ref);
}

static void test_resize(void)
{
	char *raw = tpath("z.raw"), *img = tpath("z.qcow2");
	struct block_node *bs;
	int fd;

	make_raw(raw, 3 << 20);
	CHECK(sh("qemu-img convert -f raw -O qcow2 -o cluster_size=4k %s %s", raw, img) == 0);
	bs = open_node("z", img, false, NULL);
	CHECK(bs != NULL);
	if (!bs)
		goto out;
	fd = open(raw, O_RDWR);
	/* Shrink into the middle of a cluster, then grow far past one L2 table. */
	CHECK(block_node_truncate(bs, (1 << 20) + 1536) == 0);
	CHECK(ftruncate(fd, (1 << 20) + 1536) == 0);
	CHECK(block_node_truncate(bs, 64 << 20) == 0);
	CHECK(ftruncate(fd, 64 << 20) == 0);
	CHECK(apply_writes(bs, fd, 64 << 20, 4096, 100, true) == 0);
	close(fd);
	CHECK(node_matches_raw(bs, raw));
	close_node("z");
	CHECK(check_clean(img));
	CHECK(compare(img, raw));
out:
	free(raw);
	free(img);
}

struct writer {
	struct block_node *bs;
	int id, nthreads;
	uint64_t size, cs;
	int ret;
};

/* Each thread owns the bytes i with (i / 512) % nthreads == id, in every cluster. */
static void *writer_main(void *opaque)
{
	struct writer *w = opaque;
	uint8_t buf[512];

	for (int round = 0; round < 2; round++) {
		for (uint64_t off = (uint64_t)w->id * 512; off < w->size;
		     off += (uint64_t)w->nthreads * 512) {
			memset(buf, (int)(w->id + 1 + round * 16), sizeof(buf));
			int ret = block_node_pwrite(w->bs, buf, sizeof(buf), off);

			if (ret < 0) {
				w->ret = ret;
				return NULL;
			}
		}
	}
	return NULL;
}

static void test_concurrent_same_cluster(void)
{
	char *img = tpath("c.qcow2"), *raw = tpath("c.raw");
	const int n = 4;
	uint64_t size = 4 << 20, cs = 65536;
	struct writer w[4];
	pthread_t th[4];
	struct block_node *bs;
	uint8_t *expect;
	int fd;

	make_raw(raw, size);
	CHECK(sh("qemu-img create -q -f qcow2 -b %s -F raw %s", raw, img) == 0);
	bs = open_node("c", img, false, NULL);
	CHECK(bs != NULL);
	if (!bs)
		goto out;
	for (int i = 0; i < n; i++) {
		w[i] = (struct writer){ .bs = bs, .id = i, .nthreads = n, .size = size, .cs = cs };
		pthread_create(&th[i], NULL, writer_main, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(w[i].ret, 0);
	}
	expect = xmalloc(size);
	for (uint64_t i = 0; i < size; i++)
		expect[i] = (uint8_t)((i / 512) % n + 1 + 16);
	fd = open(raw, O_WRONLY | O_TRUNC);
	CHECK(pwrite(fd, expect, size, 0) == (ssize_t)size);
	close(fd);
	free(expect);
	CHECK(node_matches_raw(bs, raw));
	close_node("c");
	CHECK(check_clean(img));
out:
	free(img);
	free(raw);
}

static void test_refusals(void)
{
	char *img = tpath("x.qcow2");
	struct error *err = NULL;
	json_t *o;

	o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "driver", "qcow2", "node-name", "x",
		      "file", "driver", "file", "filename", img);
	/* LUKS opens with a key (test-luks-io.c); the old AES never does. */
	for (int i = 0; i < 2; i++) {
		CHECK(create_encrypted_qcow2(i ? "aes" : "luks", img) == 0);
		CHECK(blockdev_add(o, &err) < 0);
		CHECK(err && strstr(err->msg, i ? "Use of AES-CBC encrypted qcow2 images is no "
				    "longer supported" : "Parameter 'encrypt.key-secret' is "
				    "required for cipher"));
		error_free(err);
		err = NULL;
		CHECK(block_node_find("x") == NULL);
	}

	CHECK(sh("qemu-img create -q -f qcow2 -o data_file=%s/x.data %s 1M", tmpdir, img) == 0);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "external data file"));
	error_free(err);
	err = NULL;

	CHECK(sh("qemu-img create -q -f qcow2 -o extended_l2=on %s 1M", img) == 0);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "extended L2"));
	error_free(err);
	err = NULL;

	/* A raw file is not qcow2. */
	CHECK(sh("head -c 65536 /dev/zero > %s", img) == 0);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "not in qcow2 format"));
	error_free(err);
	json_decref(o);
	free(img);
}


/* Set bits in incompatible_features (offset 72) of a v3 image. */
static void set_incompat(const char *img, uint8_t bits)
{
	int fd = open(img, O_RDWR);

	CHECK(fd >= 0 && pwrite(fd, &bits, 1, 79) == 1);
	close(fd);
}

static void test_dirty_corrupt_snapshots(void)
{
	char *img = tpath("d.qcow2");
	struct error *err = NULL;
	struct block_node *bs;
	json_t *info, *o;

	o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "driver", "qcow2", "node-name", "d",
		      "file", "driver", "file", "filename", img);
	CHECK(sh("qemu-img create -q -f qcow2 %s 1M && qemu-io -f qcow2 -c 'write -P 7 0 4096' "
		 "%s >/dev/null", img, img) == 0);
	set_incompat(img, 1);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "dirty bit"));
	error_free(err);
	err = NULL;
	/* Read-only is fine, and the query says it is dirty. */
	bs = open_node("d", img, true, NULL);
	CHECK(bs != NULL);
	if (bs) {
		uint8_t buf[4096];
		json_t *list = block_query_named_nodes();
		size_t i;

		CHECK(block_node_pread(bs, buf, sizeof(buf), 0) == 0 && buf[0] == 7 &&
		      buf[4095] == 7);
		json_array_foreach(list, i, info) {
			json_t *image = json_object_get(info, "image");

			if (strcmp(json_string_value(json_object_get(info, "node-name")), "d"))
				continue;
			CHECK(json_is_true(json_object_get(image, "dirty-flag")));
			CHECK_EQ(json_integer_value(json_object_get(image, "cluster-size")), 65536);
		}
		json_decref(list);
		close_node("d");
	}
	set_incompat(img, 2);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "marked corrupt"));
	error_free(err);
	err = NULL;

	set_incompat(img, 0);
	CHECK(sh("qemu-img snapshot -c snap1 %s && qemu-io -f qcow2 -c 'write -P 8 0 512' "
		 "%s >/dev/null", img, img) == 0);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "internal snapshots"));
	error_free(err);
	bs = open_node("d", img, true, NULL);
	CHECK(bs != NULL);
	if (bs) {
		uint8_t buf[1024];

		CHECK(block_node_pread(bs, buf, sizeof(buf), 0) == 0);
		CHECK(buf[0] == 8 && buf[511] == 8 && buf[512] == 7 && buf[1023] == 7);
		close_node("d");
	}
	json_decref(o);
	free(img);
}

static void test_block_status(void)
{
	char *base = tpath("s.raw"), *img = tpath("s.qcow2");
	struct block_node *bs;
	uint64_t pnum;
	int st;

	/* base: data in its first 1 MiB only (a sparse raw file). */
	CHECK(sh("rm -f %s && truncate -s 4M %s && dd if=/dev/urandom of=%s bs=1M count=1 "
		 "conv=notrunc status=none", base, base, base) == 0);
	CHECK(sh("qemu-img create -q -f qcow2 -b %s -F raw %s 8M && qemu-io -f qcow2 "
		 "-c 'write -P 1 2M 128k' -c 'write -z 3M 128k' %s >/dev/null", base, img, img) == 0);
	bs = open_node("s", img, true, NULL);
	CHECK(bs != NULL);
	if (!bs)
		goto out;
	st = block_node_block_status(bs, 0, 1 << 20, &pnum);
	CHECK(st >= 0 && (st & BLOCK_STATUS_DATA) && !(st & BLOCK_STATUS_ALLOCATED));
	st = block_node_block_status(bs, 2 << 20, 1 << 20, &pnum);
	CHECK(st == (BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED) && pnum == 128 * 1024);
	st = block_node_block_status(bs, 3 << 20, 1 << 20, &pnum);
	CHECK(st == (BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED) && pnum == 128 * 1024);
	/* Past the backing file: a hole in the whole chain. */
	st = block_node_block_status(bs, 5 << 20, 1 << 20, &pnum);
	CHECK(st == BLOCK_STATUS_ZERO && pnum == 1 << 20);
	close_node("s");
out:
	free(base);
	free(img);
}


static uint64_t be64_at(int fd, uint64_t off)
{
	uint8_t b[8];
	uint64_t v = 0;

	if (pread(fd, b, 8, off) != 8)
		return 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static void put_be64_at(int fd, uint64_t off, uint64_t v)
{
	uint8_t b[8];

	for (int i = 7; i >= 0; i--) {
		b[i] = (uint8_t)v;
		v >>= 8;
	}
	CHECK(pwrite(fd, b, 8, off) == 8);
}

/* Tables that point at metadata are I/O errors, never reads or writes of it. */
static void test_corrupt_tables(void)
{
	char *img = tpath("m.qcow2");
	uint8_t buf[4096], hdr[512];
	struct block_node *bs;
	uint64_t l1, l2;
	int fd;

	CHECK(sh("qemu-img create -q -f qcow2 -o cluster_size=4k %s 4M && qemu-io -f qcow2 "
		 "-c 'write -P 9 0 8192' %s >/dev/null", img, img) == 0);
	fd = open(img, O_RDWR);
	l1 = be64_at(fd, 40);
	l2 = be64_at(fd, l1) & 0x00fffffffffffe00ULL;
	CHECK(l1 && l2);
	/* Guest cluster 1 -> the L1 table; guest cluster 0 -> the refcount table. */
	put_be64_at(fd, l2 + 8, l1 | (1ULL << 63));
	put_be64_at(fd, l2, be64_at(fd, 48) | (1ULL << 63));
	CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
	bs = open_node("m", img, false, NULL);
	CHECK(bs != NULL);
	if (bs) {
		memset(buf, 0xee, sizeof(buf));
		CHECK_EQ(block_node_pwrite(bs, buf, sizeof(buf), 4096), -EIO);
		CHECK_EQ(block_node_pwrite(bs, buf, 512, 100), -EIO);
		close_node("m");
	}
	{
		uint8_t now[512];

		CHECK((be64_at(fd, l1) & 0x00fffffffffffe00ULL) == l2);
		CHECK(pread(fd, now, sizeof(now), 0) == (ssize_t)sizeof(now));
		/* Untouched but for the corrupt bit, which the overlap set (as QEMU). */
		hdr[79] |= 2;
		CHECK(!memcmp(now, hdr, sizeof(hdr)));
	}
	/* Top-level tables pointing at metadata or shared twice: refused at open. */
	{
		json_t *o = json_pack("{s:s, s:s, s:b, s:{s:s, s:s}}", "driver", "qcow2",
				      "node-name", "m", "read-only", 1, "file", "driver", "file",
				      "filename", img);
		struct error *err = NULL;

		put_be64_at(fd, l1 + 8, l2 | (1ULL << 63));
		CHECK(blockdev_add(o, &err) < 0);
		CHECK(err && strstr(err->msg, "used twice"));
		error_free(err);
		err = NULL;
		put_be64_at(fd, l1 + 8, 0);
		put_be64_at(fd, l1, be64_at(fd, 48) | (1ULL << 63));
		CHECK(blockdev_add(o, &err) < 0);
		CHECK(err && strstr(err->msg, "L1 table entry 0"));
		error_free(err);
		err = NULL;
		put_be64_at(fd, l1, 0x7fULL << 56);
		CHECK(blockdev_add(o, &err) < 0);
		CHECK(err && strstr(err->msg, "L1 table entry 0"));
		error_free(err);
		json_decref(o);
	}
	close(fd);
	free(img);
}


/*
 * The snapshot table's counts and sizes come from the file: each one out
 * of bounds makes the open fail with a message naming it, never a huge
 * allocation or a read far past the end.
 */
static void test_snapshot_table_bounds(void)
{
	static const struct {
		uint64_t field;		/* offset in the first entry */
		unsigned width;
		uint64_t value;
		const char *msg;
	} cases[] = {
		{ 36, 4, 0x10000, "extra metadata" },
		{ 8, 4, 0x1000000, "too large" },
		{ 0, 8, 0x12345, "unaligned or not inside" },
		{ 0, 8, 1ULL << 50, "unaligned or not inside" },
		{ 36, 4, 1000, "past the end" },
	};
	char *img = tpath("s.qcow2");
	json_t *o = json_pack("{s:s, s:s, s:b, s:{s:s, s:s}}", "driver", "qcow2", "node-name",
			      "s", "read-only", 1, "file", "driver", "file", "filename", img);
	struct error *err = NULL;
	uint8_t entry[40];
	uint64_t snap;
	int fd;

	CHECK(sh("qemu-img create -q -f qcow2 -o cluster_size=4k %s 1M && qemu-img snapshot "
		 "-c one %s", img, img) == 0);
	fd = open(img, O_RDWR);
	snap = be64_at(fd, 64);
	CHECK(snap != 0 && pread(fd, entry, sizeof(entry), snap) == (ssize_t)sizeof(entry));
	CHECK(blockdev_add(o, &err) == 0);
	close_node("s");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint8_t b[8];
		uint64_t v = cases[i].value;

		for (int k = (int)cases[i].width - 1; k >= 0; k--) {
			b[k] = (uint8_t)v;
			v >>= 8;
		}
		CHECK(pwrite(fd, b, cases[i].width, snap + cases[i].field) ==
		      (ssize_t)cases[i].width);
		if (!strcmp(cases[i].msg, "past the end"))
			CHECK(ftruncate(fd, (off_t)snap + 512) == 0);
		CHECK(blockdev_add(o, &err) < 0);
		CHECK(err && strstr(err->msg, "snapshot") && strstr(err->msg, cases[i].msg));
		if (err && !strstr(err->msg, cases[i].msg))
			fprintf(stderr, "    case %zu: %s\n", i, err->msg);
		error_free(err);
		err = NULL;
		CHECK(pwrite(fd, entry, sizeof(entry), snap) == (ssize_t)sizeof(entry));
	}
	close(fd);
	json_decref(o);
	free(img);
}

/* Bitmaps: untouched by a writable open, declared inconsistent by the first write. */
static void test_autoclear_bitmaps(void)
{
	char *img = tpath("bm.qcow2");
	struct block_node *bs;
	uint8_t h[96], buf[512];
	int fd;

	CHECK(sh("qemu-img create -q -f qcow2 %s 4M && qemu-img bitmap --add %s b0",
		 img, img) == 0);
	bs = open_node("bm", img, false, NULL);
	CHECK(bs != NULL);
	if (bs)
		close_node("bm");
	fd = open(img, O_RDONLY);
	CHECK(pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && h[95] == 1);
	close(fd);
	CHECK(check_clean(img));
	bs = open_node("bm", img, false, NULL);
	CHECK(bs != NULL);
	if (bs) {
		memset(buf, 3, sizeof(buf));
		CHECK(block_node_pwrite(bs, buf, sizeof(buf), 0) == 0);
		close_node("bm");
	}
	fd = open(img, O_RDONLY);
	CHECK(pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && h[95] == 0);
	close(fd);
	free(img);
}


/* An image that is its own grand-backing file is refused, not recursed into. */
static void test_backing_loop(void)
{
	struct error *err = NULL;
	json_t *o;

	CHECK(sh("cd %s && qemu-img create -q -f qcow2 la.qcow2 1M && qemu-img create -q "
		 "-f qcow2 -b la.qcow2 -F qcow2 lb.qcow2 && qemu-img rebase -q -u -b lb.qcow2 "
		 "-F qcow2 la.qcow2", tmpdir) == 0);
	char *la = tpath("la.qcow2");

	o = json_pack("{s:s, s:s, s:b, s:{s:s, s:s}}", "driver", "qcow2", "node-name", "loop",
		      "read-only", 1, "file", "driver", "file", "filename", la);
	CHECK(blockdev_add(o, &err) < 0);
	CHECK(err && strstr(err->msg, "loops back into its own backing chain"));
	CHECK(err && strlen(err->msg) < 1000);
	error_free(err);
	free(la);
	CHECK(block_node_find("loop") == NULL);
	json_decref(o);
}


struct mixer {
	struct block_node *bs;
	uint8_t *ref;		/* shared; each thread touches only its clusters */
	uint64_t size, cs, seed;
	int id, nthreads, ret;
};

/* Random writes, zeroes, discards and reads, each within one of our clusters. */
static void *mixer_main(void *opaque)
{
	struct mixer *m = opaque;
	uint64_t x = m->seed, nclusters = m->size / m->cs;
	uint8_t *buf = xmalloc(m->cs);

	for (int i = 0; i < 400 && !m->ret; i++) {
		uint64_t cl, in, len, kind;
		int ret = 0;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		cl = (x % (nclusters / m->nthreads)) * m->nthreads + (uint64_t)m->id;
		in = (x >> 20) % m->cs;
		len = 1 + (x >> 40) % (m->cs - in);
		kind = (x >> 8) % 8;
		if (kind == 7) {
			in = 0;
			len = m->cs;
		}
		switch (kind) {
		case 0: case 1: case 2: case 3:
			memset(buf, (int)(x >> 56) | 1, len);
			ret = block_node_pwrite(m->bs, buf, len, cl * m->cs + in);
			memcpy(m->ref + cl * m->cs + in, buf, len);
			break;
		case 4:
			ret = block_node_write_zeroes(m->bs, cl * m->cs + in, len,
						      BLOCK_ZERO_MAY_UNMAP);
			memset(m->ref + cl * m->cs + in, 0, len);
			break;
		case 5: case 6:
			ret = block_node_pread(m->bs, buf, len, cl * m->cs + in);
			if (ret == 0 && memcmp(buf, m->ref + cl * m->cs + in, len))
				ret = -EILSEQ;
			break;
		case 7:
			ret = block_node_discard(m->bs, cl * m->cs, m->cs);
			memset(m->ref + cl * m->cs, 0, m->cs);
			break;
		}
		if (ret < 0) {
			fprintf(stderr, "    thread %d op %llu: %s\n", m->id,
				(unsigned long long)kind, strerror(-ret));
			m->ret = ret;
		}
	}
	free(buf);
	return NULL;
}

/* Reads, writes, zeroes and discards from several threads at once. */
static void test_concurrent_mixed(void)
{
	char *img = tpath("mx.qcow2"), *raw = tpath("mx.raw");
	uint64_t size = 8 << 20, cs = 4096;
	struct mixer m[4];
	pthread_t th[4];
	struct block_node *bs;
	uint8_t *ref;
	int fd;

	make_raw(raw, size);
	CHECK(sh("qemu-img convert -f raw -O qcow2 -o cluster_size=4k %s %s", raw, img) == 0);
	{
		uint64_t n;

		ref = read_file(raw, &n);
		CHECK(ref && n == size);
	}
	bs = open_node("mx", img, false, NULL);
	CHECK(bs != NULL);
	if (!bs || !ref)
		goto out;
	for (int i = 0; i < 4; i++) {
		m[i] = (struct mixer){ .bs = bs, .ref = ref, .size = size, .cs = cs,
				       .seed = 0x9e3779b97f4a7c15ULL * (i + 1), .id = i,
				       .nthreads = 4 };
		pthread_create(&th[i], NULL, mixer_main, &m[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ(m[i].ret, 0);
	}
	fd = open(raw, O_WRONLY);
	CHECK(pwrite(fd, ref, size, 0) == (ssize_t)size);
	close(fd);
	CHECK(node_matches_raw(bs, raw));
	close_node("mx");
	CHECK(check_clean(img));
	CHECK(compare(img, raw));
out:
	free(ref);
	free(img);
	free(raw);
}

static const struct unit_test tests[] = {
	{ "read: every cluster size, compat 0.10 and 1.1", test_read_cluster_sizes },
	{ "read: refcount widths 1..64", test_read_refcount_bits },
	{ "read: zlib and zstd compressed clusters", test_read_compressed },
	{ "read: backing chains of depth 3, with and without a probed raw base",
	  test_read_backing_chain },
	{ "open: a backing file probed as qcow2 may not name another",
	  test_probed_qcow2_backing },
	{ "backing option: null and node name", test_backing_null_and_ref },
	{ "backing loop refused", test_backing_loop },
	{ "write: random writes, zeroes, discards in many layouts", test_write_matrix },
	{ "write: over compressed clusters", test_write_compressed },
	{ "write: fill an empty image (table growth)", test_write_fill_empty },
	{ "write: copy-on-write from a backing chain", test_write_backing },
	{ "resize: shrink and grow", test_resize },
	{ "concurrent writers in the same clusters", test_concurrent_same_cluster },
	{ "concurrent reads, writes, zeroes, discards", test_concurrent_mixed },
	{ "refusals: AES, LUKS without key, data file, extended L2, not qcow2",
	  test_refusals },
	{ "dirty, corrupt and snapshotted images: read-only only", test_dirty_corrupt_snapshots },
	{ "block status: data, zero clusters, backing, holes", test_block_status },
	{ "tables pointing at metadata or shared: errors, no damage", test_corrupt_tables },
	{ "snapshot table: counts and sizes bounded at open", test_snapshot_table_bounds },
	{ "autoclear bitmaps bit cleared at the first write only", test_autoclear_bitmaps },
	{ NULL, NULL },
};

int main(void)
{
	int ret;

	log_init(true, LOG_LEVEL_WARN);
	if (system("qemu-img --version >/dev/null 2>&1") != 0) {
		printf("SKIP qcow2-io: qemu-img is not installed\n");
		return 0;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-qcow2-io.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	ret = unit_run("qcow2-io", tests);
	sh("rm -rf %s", tmpdir);
	return ret;
}
