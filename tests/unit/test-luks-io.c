/*
 * test-luks-io.c: the luks driver against images made by qemu-img, the
 * oracle.  For each cipher qemu-img creates (AES-128/256 in XTS, CBC with
 * plain, plain64 and ESSIV IVs, ECB; SHA-1, SHA-256 and SHA-512
 * PBKDF2), an image converted from a random raw file must read back
 * byte-identical in unaligned pieces; random unaligned writes through the
 * driver, applied to a raw reference as well, must leave an image that
 * `qemu-img compare` finds identical to the reference.  Also: a wrong
 * passphrase, a missing key-secret, corrupt headers and several threads
 * writing disjoint bytes of the same sectors at once.
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
#include "object/object.h"
#include "unit.h"
#include "util.h"

#define PASSPHRASE "correct horse"
#define IMG_SIZE (2u << 20)

static char tmpdir[64];
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

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

/* A secret object, as --object secret,id=ID,data=DATA makes it. */
static void add_secret(const char *id, const char *data)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "qom-type", "secret", "id", id,
			      "data", data);
	struct error *err = NULL;

	if (object_add(o, &err) < 0) {
		fprintf(stderr, "    object-add %s: %s\n", id, err->msg);
		error_free(err);
	}
	json_decref(o);
}

static char *tpath(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void make_raw(const char *path, uint64_t size)
{
	uint8_t *buf = xmalloc(size);
	int fd;

	for (uint64_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(rnd() >> 24);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0 || pwrite(fd, buf, size, 0) != (ssize_t)size)
		fprintf(stderr, "    cannot write %s\n", path);
	close(fd);
	free(buf);
}

/*
 * qemu-img convert to luks.  Key setup measures PBKDF2 against the
 * thread's CPU time and gives up ("Unable to get accurate CPU usage")
 * when a busy VM's tick-sampled clock reads 0 ms: a small fixed
 * iter-time and a bounded number of tries, as test-qcow2-io.c does.
 */
static int make_luks(const char *raw, const char *img, const char *opts)
{
	int st = -1;

	for (int tries = 0; tries < 10 && st != 0; tries++)
		st = sh("qemu-img convert -f raw -O luks --object secret,id=s,data='"
			PASSPHRASE "' -o key-secret=s,iter-time=10%s%s %s %s",
			*opts ? "," : "", opts, raw, img);
	return st;
}

static struct block_node *open_luks(const char *name, const char *img,
				    const char *secret, struct error **errp)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "driver", "luks",
			      "node-name", name, "file", "driver", "file", "filename", img);
	int ret;

	if (secret)
		json_object_set_new(o, "key-secret", json_string(secret));
	ret = blockdev_add(o, errp);
	json_decref(o);
	return ret < 0 ? NULL : block_node_find(name);
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

/* Read the node in random unaligned pieces and compare with a raw file. */
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
	buf = xmalloc(size);
	while (off < size && ok) {
		uint64_t piece = 1 + rnd() % (70 * 1024);
		uint64_t n = MIN(size - off, piece);
		int ret = block_node_pread(bs, buf + off, n, off);

		if (ret < 0) {
			fprintf(stderr, "    pread %llu+%llu: %s\n", (unsigned long long)off,
				(unsigned long long)n, strerror(-ret));
			ok = false;
		}
		off += n;
	}
	if (ok && memcmp(buf, ref, size)) {
		fprintf(stderr, "    contents differ from %s\n", raw);
		ok = false;
	}
	free(buf);
	free(ref);
	return ok;
}

static bool qemu_img_compare(const char *img, const char *raw)
{
	return sh("qemu-img compare -q --object secret,id=s,data='" PASSPHRASE "' "
		  "--image-opts driver=luks,key-secret=s,file.filename=%s "
		  "driver=raw,file.filename=%s", img, raw) == 0;
}

/* The cipher choices of `qemu-img create -f luks` (aes-192 aborts qemu-img 7.2). */
static const char *const cipher_opts[] = {
	"",	/* QEMU's default: aes-256, xts-plain64, sha256 */
	"cipher-alg=aes-128,cipher-mode=xts",
	"cipher-alg=aes-256,cipher-mode=xts,hash-alg=sha512",
	"cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256",
	"cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256",
	"cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=plain,hash-alg=sha1",
	"cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=plain64",
	"cipher-alg=aes-256,cipher-mode=ecb",
	NULL,
};

/*
 * qemu-img takes seconds per LUKS image on a busy machine (it measures
 * PBKDF2 speed first): each cipher's image of ref.raw is made once and
 * copied by the tests that change it.  NULL if qemu-img failed.
 */
static const char *cipher_image(size_t i)
{
	static char *made[sizeof(cipher_opts) / sizeof(cipher_opts[0])];
	static bool have_ref;
	char *raw = tpath("ref.raw");

	if (!have_ref)
		make_raw(raw, IMG_SIZE);
	have_ref = true;
	if (!made[i]) {
		char *img = xasprintf("%s/c%zu.luks", tmpdir, i);

		if (make_luks(raw, img, cipher_opts[i]) == 0)
			made[i] = img;
		else
			free(img);
	}
	free(raw);
	return made[i];
}

static void test_read_ciphers(void)
{
	char *raw = tpath("ref.raw");

	for (size_t i = 0; cipher_opts[i]; i++) {
		struct error *err = NULL;
		struct block_node *bs;
		const char *img = cipher_image(i);

		fprintf(stderr, "    cipher options '%s'\n", cipher_opts[i]);
		if (!img) {
			CHECK(!"qemu-img convert -O luks failed");
			continue;
		}
		bs = open_luks("r", img, "s", &err);
		CHECK(bs);
		if (!bs) {
			fprintf(stderr, "    %s\n", err->msg);
			error_free(err);
			continue;
		}
		CHECK(node_matches_raw(bs, raw));
		close_node("r");
	}
	free(raw);
}

/* A copy of cipher i's image at `img` (and of ref.raw at `raw`), or -1. */
static int copy_cipher_image(size_t i, const char *img, const char *raw)
{
	const char *src = cipher_image(i);

	if (!src)
		return -1;
	return sh("cp %s %s && cp %s/ref.raw %s", src, img, tmpdir, raw);
}

static void apply_random_writes(struct block_node *bs, int rawfd, int count)
{
	uint8_t *buf = xmalloc(64 * 1024);

	for (int i = 0; i < count; i++) {
		uint64_t len = 1 + rnd() % (64 * 1024);
		uint64_t off = rnd() % (IMG_SIZE - len);
		int ret;

		/* Half aligned to sectors, half anywhere. */
		if (i % 2) {
			off &= ~511ULL;
			len = (len + 511) & ~511ULL;
			if (off + len > IMG_SIZE)
				len = IMG_SIZE - off;
		}
		for (uint64_t j = 0; j < len; j++)
			buf[j] = i % 5 == 0 ? 0 : (uint8_t)(rnd() >> 16);
		ret = i % 5 == 0 ? block_node_write_zeroes(bs, off, len, 0)
				 : block_node_pwrite(bs, buf, len, off);
		CHECK_EQ(ret, 0);
		CHECK_EQ(pwrite(rawfd, buf, len, off), (ssize_t)len);
	}
	free(buf);
}

static void test_write_ciphers(void)
{
	char *raw = tpath("w.raw"), *img = tpath("w.luks");

	/* Every third choice: i stops before the NULL at the end, never past it. */
	for (size_t i = 0; i + 1 < sizeof(cipher_opts) / sizeof(cipher_opts[0]); i += 3) {
		struct error *err = NULL;
		struct block_node *bs;
		int fd;

		fprintf(stderr, "    cipher options '%s'\n", cipher_opts[i]);
		if (copy_cipher_image(i, img, raw) != 0) {
			CHECK(!"no image for these cipher options");
			continue;
		}
		bs = open_luks("w", img, "s", &err);
		CHECK(bs);
		if (!bs) {
			fprintf(stderr, "    %s\n", err->msg);
			error_free(err);
			continue;
		}
		fd = open(raw, O_WRONLY);
		CHECK(fd >= 0);
		CHECK(block_perm_acquire(bs, true, false, NULL) == 0);
		apply_random_writes(bs, fd, 200);
		CHECK_EQ(block_node_flush(bs), 0);
		block_perm_release(bs, true, false);
		close(fd);
		CHECK(node_matches_raw(bs, raw));
		close_node("w");
		CHECK(qemu_img_compare(img, raw));
	}
	free(raw);
	free(img);
}

static void expect_open_error(const char *img, const char *secret, const char *msg)
{
	struct error *err = NULL;
	struct block_node *bs = open_luks("e", img, secret, &err);

	CHECK(!bs);
	if (bs) {
		close_node("e");
		return;
	}
	CHECK(err && strstr(err->msg, msg));
	if (err && !strstr(err->msg, msg))
		fprintf(stderr, "    got '%s', expected '%s'\n", err->msg, msg);
	error_free(err);
}

static void test_wrong_passphrase(void)
{
	char *raw = tpath("p.raw"), *img = tpath("p.luks");

	CHECK_EQ(copy_cipher_image(0, img, raw), 0);
	expect_open_error(img, "bad", "Invalid password, cannot unlock any keyslot");
	expect_open_error(img, NULL, "Parameter 'key-secret' is required for cipher");
	expect_open_error(img, "nosuch", "No secret with id 'nosuch'");
	CHECK(!block_node_find("e"));
	free(raw);
	free(img);
}

/* Patch big-endian 32-bit value v at offset off of the file. */
static void patch_be32(const char *path, off_t off, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
			 (uint8_t)v };
	int fd = open(path, O_WRONLY);

	CHECK(fd >= 0 && pwrite(fd, b, 4, off) == 4);
	close(fd);
}

static void test_corrupt_headers(void)
{
	char *raw = tpath("c.raw"), *img = tpath("c.luks"), *bad = tpath("bad.luks");

	CHECK_EQ(copy_cipher_image(0, img, raw), 0);

	sh("cp %s %s", img, bad);
	patch_be32(bad, 4, 0xbabe0002);	/* version 2 */
	expect_open_error(bad, "s", "LUKS version 2 is not supported");

	sh("cp %s %s", img, bad);
	patch_be32(bad, 208 + 44, 3999);	/* slot 0 stripes */
	expect_open_error(bad, "s", "Keyslot 0 is corrupted (stripes 3999 != 4000)");

	sh("cp %s %s", img, bad);
	patch_be32(bad, 208 + 4, 0xffffffff);	/* slot 0 iterations */
	expect_open_error(bad, "s", "PBKDF2 iterations (accepted: 1 to");

	sh("cp %s %s", img, bad);
	patch_be32(bad, 208 + 40, 1);	/* slot 0 key material inside the header */
	expect_open_error(bad, "s", "Keyslot 0 is overlapping with the LUKS header");

	sh("cp %s %s", img, bad);
	patch_be32(bad, 108, 4096);	/* key_bytes */
	expect_open_error(bad, "s", "unsupported key size of 4096 bytes");

	sh("cp %s %s", img, bad);
	patch_be32(bad, 104, 0x7fffffff);	/* payload offset past the end */
	expect_open_error(bad, "s", "past the end of the file");

	sh("head -c 300 %s > %s", img, bad);
	expect_open_error(bad, "s", "is truncated");

	sh("head -c 4096 /dev/zero > %s", bad);
	expect_open_error(bad, "s", "Volume is not in LUKS format");
	free(raw);
	free(img);
	free(bad);
}

/* Threads writing disjoint bytes of the same sectors: none may undo another. */
struct rmw_arg {
	struct block_node *bs;
	int id;
	int ret;
};

#define RMW_THREADS 4
#define RMW_ROUNDS 200

static void *rmw_thread(void *opaque)
{
	struct rmw_arg *a = opaque;

	for (int r = 0; r < RMW_ROUNDS && a->ret == 0; r++) {
		/* Thread id owns bytes [id * 100, id * 100 + 100) of each of 8 sectors. */
		uint64_t sector = (uint64_t)(r % 8);
		uint8_t buf[100];

		memset(buf, (uint8_t)(a->id * 64 + r % 8 + 1), sizeof(buf));
		a->ret = block_node_pwrite(a->bs, buf, sizeof(buf), sector * 512 + a->id * 100);
	}
	return NULL;
}

static void test_concurrent_partial_sectors(void)
{
	char *raw = tpath("t.raw"), *img = tpath("t.luks");
	struct rmw_arg args[RMW_THREADS];
	pthread_t tids[RMW_THREADS];
	struct block_node *bs;
	uint8_t sec[512];

	CHECK_EQ(copy_cipher_image(0, img, raw), 0);
	bs = open_luks("t", img, "s", NULL);
	CHECK(bs);
	if (!bs)
		goto out;
	CHECK(block_perm_acquire(bs, true, false, NULL) == 0);
	for (int i = 0; i < RMW_THREADS; i++) {
		args[i] = (struct rmw_arg){ .bs = bs, .id = i };
		pthread_create(&tids[i], NULL, rmw_thread, &args[i]);
	}
	for (int i = 0; i < RMW_THREADS; i++) {
		pthread_join(tids[i], NULL);
		CHECK_EQ(args[i].ret, 0);
	}
	for (uint64_t s = 0; s < 8; s++) {
		CHECK_EQ(block_node_pread(bs, sec, sizeof(sec), s * 512), 0);
		for (int i = 0; i < RMW_THREADS; i++)
			for (int b = 0; b < 100; b++)
				if (sec[i * 100 + b] != (uint8_t)(i * 64 + s + 1)) {
					CHECK(!"a partial-sector write was lost");
					s = 8, i = RMW_THREADS;
					break;
				}
	}
	block_perm_release(bs, true, false);
	close_node("t");
out:
	free(raw);
	free(img);
}

/* ---- qcow2 with encrypt.format=luks ---- */

static int make_qcow2_luks(const char *raw, const char *img, const char *opts)
{
	int st = -1;

	for (int tries = 0; tries < 10 && st != 0; tries++)
		st = sh("qemu-img convert -f raw -O qcow2 --object secret,id=s,data='"
			PASSPHRASE "' -o encrypt.format=luks,encrypt.key-secret=s,"
			"encrypt.iter-time=10%s%s %s %s", *opts ? "," : "", opts, raw, img);
	return st;
}

static struct block_node *open_qcow2(const char *name, const char *img,
				     const char *secret, struct error **errp)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "driver", "qcow2",
			      "node-name", name, "discard", "unmap",
			      "file", "driver", "file", "filename", img);
	int ret;

	if (secret)
		json_object_set_new(o, "encrypt", json_pack("{s:s, s:s}", "format", "luks",
							    "key-secret", secret));
	ret = blockdev_add(o, errp);
	json_decref(o);
	return ret < 0 ? NULL : block_node_find(name);
}

static bool qcow2_compare(const char *img, const char *raw)
{
	return sh("qemu-img check -q --object secret,id=s,data='" PASSPHRASE "' "
		  "--image-opts driver=qcow2,encrypt.key-secret=s,file.filename=%s", img) == 0 &&
	       sh("qemu-img compare -q --object secret,id=s,data='" PASSPHRASE "' "
		  "--image-opts driver=qcow2,encrypt.key-secret=s,file.filename=%s "
		  "driver=raw,file.filename=%s", img, raw) == 0;
}

static const char *const qcow2_opts[] = {
	"",
	"cluster_size=4096,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,"
	"encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256",
	"cluster_size=512,encrypt.cipher-alg=aes-256,encrypt.cipher-mode=cbc,"
	"encrypt.ivgen-alg=plain64",
	NULL,
};

/* Read back, write unaligned pieces and zeroes, then qemu-img check + compare. */
static void test_qcow2_luks_read_write(void)
{
	char *raw = tpath("q.raw"), *img = tpath("q.qcow2");

	for (size_t i = 0; qcow2_opts[i]; i++) {
		struct error *err = NULL;
		struct block_node *bs;
		int fd;

		fprintf(stderr, "    qcow2 options '%s'\n", qcow2_opts[i]);
		make_raw(raw, IMG_SIZE);
		/* Holes too: the converter leaves zero clusters unallocated. */
		sh("dd if=/dev/zero of=%s bs=64k seek=3 count=5 conv=notrunc status=none", raw);
		if (make_qcow2_luks(raw, img, qcow2_opts[i]) != 0) {
			CHECK(!"qemu-img convert -O qcow2 (luks) failed");
			continue;
		}
		bs = open_qcow2("q", img, "s", &err);
		CHECK(bs);
		if (!bs) {
			fprintf(stderr, "    %s\n", err->msg);
			error_free(err);
			continue;
		}
		CHECK(node_matches_raw(bs, raw));
		fd = open(raw, O_WRONLY);
		CHECK(block_perm_acquire(bs, true, false, NULL) == 0);
		apply_random_writes(bs, fd, 150);
		CHECK_EQ(block_node_flush(bs), 0);
		block_perm_release(bs, true, false);
		close(fd);
		CHECK(node_matches_raw(bs, raw));
		close_node("q");
		CHECK(qcow2_compare(img, raw));
	}
	free(raw);
	free(img);
}

static void test_qcow2_luks_refusals(void)
{
	char *raw = tpath("qr.raw"), *img = tpath("qr.qcow2");
	struct error *err = NULL;

	make_raw(raw, 64 * 1024);
	CHECK_EQ(make_qcow2_luks(raw, img, ""), 0);
	CHECK(!open_qcow2("q", img, "bad", &err));
	CHECK(err && !strcmp(err->msg, "Invalid password, cannot unlock any keyslot"));
	error_free(err);
	err = NULL;
	CHECK(!open_qcow2("q", img, NULL, &err));
	CHECK(err && !strcmp(err->msg, "Parameter 'encrypt.key-secret' is required for "
			     "cipher"));
	error_free(err);
	CHECK(!block_node_find("q"));
	free(raw);
	free(img);
}

static const struct unit_test tests[] = {
	{ "qcow2 encrypt.format=luks: read, write, check, compare",
	  test_qcow2_luks_read_write },
	{ "qcow2 encrypt.format=luks: wrong passphrase, no key", test_qcow2_luks_refusals },
	{ "read every cipher qemu-img creates", test_read_ciphers },
	{ "unaligned writes then qemu-img compare", test_write_ciphers },
	{ "wrong passphrase, no key-secret, no such secret", test_wrong_passphrase },
	{ "corrupt headers get clear errors", test_corrupt_headers },
	{ "concurrent writes into the same sectors", test_concurrent_partial_sectors },
	{ NULL, NULL },
};

int main(void)
{
	int ret;

	log_init(true, LOG_LEVEL_WARN);
	if (system("qemu-img --version >/dev/null 2>&1") != 0) {
		printf("SKIP luks-io: qemu-img is not installed\n");
		return 0;
	}
	add_secret("s", PASSPHRASE);
	add_secret("bad", "wrong");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-luks-io.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	ret = unit_run("luks-io", tests);
	sh("rm -rf %s", tmpdir);
	return ret;
}
