/*
 * test-fuse-ops.c: the FUSE request handlers without a kernel.  A channel
 * is given one end of a SOCK_SEQPACKET socketpair as its "device"
 * (one reply per packet, as /dev/fuse takes them); requests are built
 * here, handled by fexp_channel_handle() against a real file node, and
 * the replies read back from the other end.  This reaches what the
 * kernel never sends: truncated and inconsistent requests must end the
 * channel (< 0, no reply), never crash.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block-helpers.h"
#include "fuse/internal.h"
#include "fuse/proto.h"
#include "unit.h"

#define IMG_SIZE (1 << 20)

struct harness {
	struct fuse_export *fe;
	struct fexp_channel *t;
	char *buf;		/* the loop's request buffer */
	int peer;		/* the "kernel" end */
	char *in;		/* request buffer */
	uint64_t unique;
};

static int node_seq;

static struct harness *harness_new(bool writable, bool growable, bool allow_other)
{
	struct harness *h = xcalloc(1, sizeof(*h));
	char name[32], *path;
	int sv[2];
	void *p;

	snprintf(name, sizeof(name), "n%d", ++node_seq);
	path = test_image(name, IMG_SIZE);
	ADD_OK("{\"driver\": \"file\", \"node-name\": \"%s\", \"filename\": \"%s\"}", name,
	       path);
	free(path);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		abort();
	h->fe = xcalloc(1, sizeof(*h->fe));
	h->fe->common.id = xstrdup(name);
	h->fe->common.node = block_node_find(name);
	h->fe->common.writable = writable;
	h->fe->common.growable = growable;
	h->fe->allow_other = allow_other;
	h->fe->pt_fd = -1;
	atomic_init(&h->fe->st_mode, S_IFREG | S_IRUSR | (writable ? S_IWUSR : 0));
	pthread_mutex_init(&h->fe->lock, NULL);
	pthread_mutex_init(&h->fe->resize_lock, NULL);
	pthread_cond_init(&h->fe->cond, NULL);
	h->fe->nchannels = 1;
	if (posix_memalign(&p, 64, sizeof(*h->fe->channels)))
		abort();
	memset(p, 0, sizeof(*h->fe->channels));
	h->fe->channels = p;
	h->fe->common.stats = export_stats_new(1);
	h->t = &h->fe->channels[0];
	h->t->fe = h->fe;
	h->t->fd = sv[0];
	h->t->slot = 0;
	h->peer = sv[1];
	if (posix_memalign((void **)&h->buf, 4096, 4096 + (1 << 20)))
		abort();
	h->in = xmalloc(2 << 20);
	return h;
}

static void harness_free(struct harness *h)
{
	close(h->t->fd);
	close(h->peer);
	free(h->buf);
	free(h->fe->channels);
	export_stats_free(h->fe->common.stats);
	free(h->fe->common.id);
	free(h->fe->data_path_reason);
	free(h->fe);
	free(h->in);
	free(h);
}

/* Send one request (header + arg + data); returns what the handler returned. */
static int send_req(struct harness *h, uint32_t opcode, const void *arg, size_t arglen,
		    const void *data, size_t datalen)
{
	struct fuse_in_header hdr = {
		.len = (uint32_t)(sizeof(hdr) + arglen + datalen),
		.opcode = opcode,
		.unique = ++h->unique,
		.nodeid = FUSE_ROOT_ID,
	};

	memcpy(h->in, &hdr, sizeof(hdr));
	if (arglen)
		memcpy(h->in + sizeof(hdr), arg, arglen);
	if (datalen)
		memcpy(h->in + sizeof(hdr) + arglen, data, datalen);
	return fexp_channel_handle(h->t, h->buf, h->in, hdr.len);
}

/* Read one reply: returns its error (0 or -errno), payload in out. */
static int recv_reply(struct harness *h, void *out, size_t *outlen)
{
	static char buf[(1 << 20) + 64];
	struct fuse_out_header hdr;
	ssize_t n = recv(h->peer, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0)
		return 1;	/* no reply at all */
	memcpy(&hdr, buf, sizeof(hdr));
	CHECK_EQ(hdr.len, (uint32_t)n);
	CHECK_EQ(hdr.unique, h->unique);
	if (outlen) {
		*outlen = (size_t)n - sizeof(hdr);
		if (out)
			memcpy(out, buf + sizeof(hdr), *outlen);
	}
	return hdr.error;
}

static int do_read(struct harness *h, uint64_t off, uint32_t size, void *out, size_t *got)
{
	struct fuse_read_in in = { .offset = off, .size = size };

	CHECK_EQ(send_req(h, FUSE_READ, &in, sizeof(in), NULL, 0), 0);
	return recv_reply(h, out, got);
}

static int do_write(struct harness *h, uint64_t off, const void *data, uint32_t size,
		    uint32_t *written)
{
	struct fuse_write_in in = { .offset = off, .size = size };
	struct fuse_write_out out = { 0 };
	size_t n = 0;
	int err;

	CHECK_EQ(send_req(h, FUSE_WRITE, &in, sizeof(in), data, size), 0);
	err = recv_reply(h, &out, &n);
	if (!err) {
		CHECK_EQ(n, sizeof(out));
		*written = out.size;
	}
	return err;
}

static int do_getattr(struct harness *h, struct fuse_attr_out *out)
{
	struct fuse_getattr_in in = { 0 };
	size_t n = 0;

	CHECK_EQ(send_req(h, FUSE_GETATTR, &in, sizeof(in), NULL, 0), 0);
	return recv_reply(h, out, &n);
}

static int do_setattr(struct harness *h, uint32_t valid, uint32_t mode, uint64_t size)
{
	struct fuse_setattr_in in = { .valid = valid, .mode = mode, .size = size };
	struct fuse_attr_out out;
	size_t n;

	CHECK_EQ(send_req(h, FUSE_SETATTR, &in, sizeof(in), NULL, 0), 0);
	return recv_reply(h, &out, &n);
}

static void test_init_and_getattr(void)
{
	struct harness *h = harness_new(false, false, false);
	struct fuse_init_in in = { .major = 7, .minor = 42, .max_readahead = 65536,
				   .flags = FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_INIT_EXT };
	struct exportd_fuse_init_out out;
	struct fuse_attr_out attr;
	size_t n = 0;

	CHECK_EQ(send_req(h, FUSE_INIT, &in, sizeof(in), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &out, &n), 0);
	CHECK_EQ(n, sizeof(out));
	CHECK_EQ(out.max_write, 1u << 20);
	CHECK_EQ(out.max_pages, 256);
	CHECK(out.flags & FUSE_MAX_PAGES);
	CHECK(h->fe->initialized);
	CHECK_EQ(h->fe->proto_minor, 40u);

	CHECK_EQ(do_getattr(h, &attr), 0);
	CHECK_EQ(attr.attr.size, (uint64_t)IMG_SIZE);
	CHECK_EQ(attr.attr.mode, (uint32_t)(S_IFREG | 0400));
	CHECK_EQ(attr.attr.ino, (uint64_t)FUSE_ROOT_ID);
	CHECK_EQ(attr.attr.nlink, 1u);
	CHECK_EQ(attr.attr.blocks, (uint64_t)IMG_SIZE / 512);
	harness_free(h);
}

static void test_read(void)
{
	struct harness *h = harness_new(false, false, false);
	static unsigned char buf[1 << 20];
	size_t got = 0;
	bool same = true;

	CHECK_EQ(do_read(h, 4096, 65536, buf, &got), 0);
	CHECK_EQ(got, (size_t)65536);
	for (size_t i = 0; i < got; i++)
		same &= buf[i] == test_pattern(4096 + i);
	CHECK(same);
	/* Short at EOF, empty past it. */
	CHECK_EQ(do_read(h, IMG_SIZE - 100, 4096, buf, &got), 0);
	CHECK_EQ(got, (size_t)100);
	CHECK_EQ(buf[99], test_pattern(IMG_SIZE - 1));
	CHECK_EQ(do_read(h, IMG_SIZE + 4096, 4096, buf, &got), 0);
	CHECK_EQ(got, (size_t)0);
	/* Beyond max_read: refused, not served. */
	CHECK_EQ(do_read(h, 0, (1 << 20) + 1, buf, &got), -EINVAL);
	harness_free(h);
}

static void test_write_semantics(void)
{
	struct harness *ro = harness_new(false, false, false);
	struct harness *rw = harness_new(true, false, false);
	struct harness *grow = harness_new(true, true, false);
	unsigned char data[8192], back[8192];
	struct fuse_attr_out attr;
	uint32_t written = 0;
	size_t got = 0;

	memset(data, 0xab, sizeof(data));
	CHECK_EQ(do_write(ro, 0, data, 4096, &written), -EROFS);

	CHECK_EQ(do_write(rw, 8192, data, 4096, &written), 0);
	CHECK_EQ(written, 4096u);
	CHECK_EQ(do_read(rw, 8192, 4096, back, &got), 0);
	CHECK(!memcmp(back, data, 4096));
	/* Straddling EOF: short; at or past EOF: ENOSPC (QEMU 10+; 7.2 said EIO). */
	CHECK_EQ(do_write(rw, IMG_SIZE - 1000, data, 4096, &written), 0);
	CHECK_EQ(written, 1000u);
	CHECK_EQ(do_write(rw, IMG_SIZE, data, 1, &written), -ENOSPC);
	CHECK_EQ(do_write(rw, IMG_SIZE + 4096, data, 4096, &written), -ENOSPC);
	CHECK_EQ(do_getattr(rw, &attr), 0);
	CHECK_EQ(attr.attr.size, (uint64_t)IMG_SIZE);

	/* Growable: past EOF grows, the gap reads as zeroes. */
	CHECK_EQ(do_write(grow, IMG_SIZE + 4096, data, 8192, &written), 0);
	CHECK_EQ(written, 8192u);
	CHECK_EQ(do_getattr(grow, &attr), 0);
	CHECK_EQ(attr.attr.size, (uint64_t)IMG_SIZE + 4096 + 8192);
	CHECK_EQ(do_read(grow, IMG_SIZE, 4096, back, &got), 0);
	CHECK_EQ(got, (size_t)4096);
	CHECK(back[0] == 0 && back[4095] == 0);
	/* An offset that would overflow. */
	CHECK_EQ(do_write(grow, UINT64_MAX - 10, data, 4096, &written), -EINVAL);
	harness_free(ro);
	harness_free(rw);
	harness_free(grow);
}

static void test_setattr(void)
{
	struct harness *ro = harness_new(false, false, false);
	struct harness *rw = harness_new(true, false, true);
	struct fuse_attr_out attr;

	CHECK_EQ(do_setattr(ro, FATTR_MODE, 0600, 0), -EROFS);
	CHECK_EQ(do_setattr(ro, FATTR_MODE, 0440, 0), -EPERM);
	CHECK_EQ(do_setattr(ro, FATTR_MODE, 0500, 0), -EROFS);	/* +x too, as QEMU 10+ */
	CHECK_EQ(do_setattr(ro, FATTR_MODE, 0000, 0), 0);	/* taking bits away is fine */
	CHECK_EQ(do_getattr(ro, &attr), 0);
	CHECK_EQ(attr.attr.mode, (uint32_t)S_IFREG);
	CHECK_EQ(do_setattr(ro, FATTR_UID, 0, 0), -ENOTSUP);
	CHECK_EQ(do_setattr(ro, FATTR_ATIME | FATTR_MTIME, 0, 0), -ENOTSUP);
	CHECK_EQ(do_setattr(ro, FATTR_SIZE, 0, 4096), -EROFS);
	/* FH and LOCKOWNER come with ftruncate(): not attributes. */
	CHECK_EQ(do_setattr(rw, FATTR_SIZE | FATTR_FH | FATTR_LOCKOWNER, 0, 4096), 0);
	CHECK_EQ(do_getattr(rw, &attr), 0);
	CHECK_EQ(attr.attr.size, 4096u);
	/* With allow_other: group/other bits and owners may change. */
	CHECK_EQ(do_setattr(rw, FATTR_MODE, 0644, 0), 0);
	CHECK_EQ(do_setattr(rw, FATTR_UID | FATTR_GID, 0, 0), 0);
	harness_free(ro);
	harness_free(rw);
}

static void test_fallocate_and_lseek(void)
{
	struct harness *h = harness_new(true, false, false);
	struct fuse_fallocate_in fa = { .offset = 1000, .length = 100000,
					.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE };
	struct fuse_lseek_in ls = { .offset = 0, .whence = SEEK_HOLE };
	struct fuse_lseek_out lo;
	static unsigned char back[100000];
	struct fuse_attr_out attr;
	size_t got = 0, n;
	bool zero = true;

	CHECK_EQ(send_req(h, FUSE_FALLOCATE, &fa, sizeof(fa), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 0);
	CHECK_EQ(do_read(h, 1000, 100000, back, &got), 0);
	for (size_t i = 0; i < got; i++)
		zero &= back[i] == 0;
	CHECK(zero);
	CHECK_EQ(do_read(h, 999, 1, back, &got), 0);
	CHECK_EQ(back[0], test_pattern(999));
	/* mode 0 inside the file: not possible; at EOF: grows. */
	fa = (struct fuse_fallocate_in){ .offset = 0, .length = 4096, .mode = 0 };
	CHECK_EQ(send_req(h, FUSE_FALLOCATE, &fa, sizeof(fa), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), -EOPNOTSUPP);
	fa = (struct fuse_fallocate_in){ .offset = IMG_SIZE, .length = 65536, .mode = 0 };
	CHECK_EQ(send_req(h, FUSE_FALLOCATE, &fa, sizeof(fa), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 0);
	CHECK_EQ(do_getattr(h, &attr), 0);
	CHECK_EQ(attr.attr.size, (uint64_t)IMG_SIZE + 65536);

	/* SEEK_HOLE from 0 finds a hole no later than the EOF. */
	CHECK_EQ(send_req(h, FUSE_LSEEK, &ls, sizeof(ls), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &lo, &n), 0);
	CHECK(lo.offset <= (uint64_t)IMG_SIZE + 65536);
	/* SEEK_DATA at EOF: ENXIO; a hole at EOF; anything else: EINVAL. */
	ls = (struct fuse_lseek_in){ .offset = IMG_SIZE + 65536, .whence = SEEK_DATA };
	CHECK_EQ(send_req(h, FUSE_LSEEK, &ls, sizeof(ls), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &lo, &n), -ENXIO);
	ls.whence = SEEK_HOLE;
	CHECK_EQ(send_req(h, FUSE_LSEEK, &ls, sizeof(ls), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &lo, &n), 0);
	CHECK_EQ(lo.offset, (uint64_t)IMG_SIZE + 65536);
	ls.whence = SEEK_END;
	CHECK_EQ(send_req(h, FUSE_LSEEK, &ls, sizeof(ls), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &lo, &n), -EINVAL);
	harness_free(h);
}

static void test_misc_ops(void)
{
	struct harness *h = harness_new(false, false, false);
	struct fuse_open_in oi = { .flags = O_RDONLY };
	struct fuse_release_in ri = { 0 };
	struct fuse_forget_in fi = { .nlookup = 1 };
	struct exportd_fuse_open_out oo;
	struct fuse_statfs_out so;
	size_t n = 0;

	CHECK_EQ(send_req(h, FUSE_OPEN, &oi, sizeof(oi), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &oo, &n), 0);
	CHECK_EQ(n, sizeof(oo));
	CHECK_EQ(oo.open_flags, 0u);	/* page cache, as qsd 7.2 */
	CHECK_EQ(h->fe->open_handles, 1);
	CHECK_EQ(send_req(h, FUSE_RELEASE, &ri, sizeof(ri), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 0);
	CHECK_EQ(h->fe->open_handles, 0);

	CHECK_EQ(send_req(h, FUSE_LOOKUP, "x", 2, NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), -ENOENT);
	CHECK_EQ(send_req(h, FUSE_STATFS, NULL, 0, NULL, 0), 0);
	CHECK_EQ(recv_reply(h, &so, &n), 0);
	CHECK_EQ(so.st.namelen, 255u);
	CHECK_EQ(send_req(h, FUSE_FSYNC, &(struct fuse_fsync_in){ 0 },
			  sizeof(struct fuse_fsync_in), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 0);
	/* No reply at all for FORGET and INTERRUPT. */
	CHECK_EQ(send_req(h, FUSE_FORGET, &fi, sizeof(fi), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 1);
	CHECK_EQ(send_req(h, FUSE_INTERRUPT, &(struct fuse_interrupt_in){ 1 },
			  sizeof(struct fuse_interrupt_in), NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 1);
	/* Unknown opcodes and ops we do not implement: ENOSYS. */
	CHECK_EQ(send_req(h, 4000, NULL, 0, NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), -ENOSYS);
	CHECK_EQ(send_req(h, FUSE_GETXATTR, "\0\0\0\0\0\0\0\0user.x", 15, NULL, 0), 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), -ENOSYS);
	harness_free(h);
}

static void test_malformed_ends_channel(void)
{
	struct harness *h = harness_new(true, false, false);
	struct fuse_read_in ri = { .size = 4096 };
	struct fuse_write_in wi = { .size = 4096 };
	struct fuse_in_header hdr;

	/* Truncated arguments. */
	CHECK(send_req(h, FUSE_READ, &ri, sizeof(ri) - 1, NULL, 0) < 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 1);
	/* WRITE that claims more data than it carries. */
	CHECK(send_req(h, FUSE_WRITE, &wi, sizeof(wi), "abc", 3) < 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 1);
	/* Header length that does not match what was read. */
	memset(&hdr, 0, sizeof(hdr));
	hdr.len = 4096;
	hdr.opcode = FUSE_GETATTR;
	memcpy(h->in, &hdr, sizeof(hdr));
	CHECK(fexp_channel_handle(h->t, h->buf, h->in, sizeof(hdr)) < 0);
	CHECK(fexp_channel_handle(h->t, h->buf, h->in, 3) < 0);
	CHECK_EQ(recv_reply(h, NULL, NULL), 1);
	harness_free(h);
}

static void test_stats(void)
{
	struct harness *h = harness_new(true, false, false);
	unsigned char data[4096] = { 0 };
	uint32_t written;
	size_t got;
	json_t *st;

	for (int i = 0; i < 3; i++)
		CHECK_EQ(do_read(h, 0, 4096, data, &got), 0);
	CHECK_EQ(do_write(h, 0, data, 4096, &written), 0);
	CHECK_EQ(do_write(h, IMG_SIZE, data, 4096, &written), -ENOSPC);
	st = fuse_export_stats(h->fe);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(st, "read"), "requests")),
		 3);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(st, "read"), "bytes")),
		 3 * 4096);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(st, "write"), "requests")),
		 2);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(st, "write"), "errors")),
		 1);
	CHECK_EQ(json_array_size(json_object_get(json_object_get(st, "read"), "latency-us")) >
		 0, 1);
	json_decref(st);
	harness_free(h);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "INIT and GETATTR", test_init_and_getattr },
		{ "READ: data, short at EOF, limits", test_read },
		{ "WRITE: read-only, clipped, ENOSPC past EOF, growable", test_write_semantics },
		{ "SETATTR: QEMU 10+ rules", test_setattr },
		{ "FALLOCATE and LSEEK", test_fallocate_and_lseek },
		{ "OPEN/RELEASE, LOOKUP, STATFS, FORGET, ENOSYS", test_misc_ops },
		{ "malformed requests end the channel", test_malformed_ends_channel },
		{ "statistics", test_stats },
		{ NULL, NULL },
	};
	int ret;

	test_dir_create();
	ret = unit_run("fuse-ops", tests);
	block_close_all();
	test_dir_remove();
	return ret;
}
