/*
 * test-fuse-proto.c: request parsing rejects every truncated or
 * inconsistent request, INIT negotiation, and replies on the wire.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse/proto.h"
#include "unit.h"

static size_t build(void *buf, uint32_t opcode, const void *arg, size_t arglen, size_t extra)
{
	struct fuse_in_header h = {
		.len = (uint32_t)(sizeof(h) + arglen + extra),
		.opcode = opcode,
		.unique = 42,
		.nodeid = FUSE_ROOT_ID,
	};

	memcpy(buf, &h, sizeof(h));
	if (arglen)
		memcpy((char *)buf + sizeof(h), arg, arglen);
	memset((char *)buf + sizeof(h) + arglen, 'x', extra);
	return h.len;
}

static void test_framing(void)
{
	char buf[256];
	struct fexp_request r;
	const char *why;
	struct fuse_open_in oi = { 0 };
	size_t n = build(buf, FUSE_OPEN, &oi, sizeof(oi), 0);

	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
	CHECK_EQ(r.opcode, (uint32_t)FUSE_OPEN);
	CHECK_EQ(r.unique, (uint64_t)42);
	/* Fewer bytes than the header, or than the header says. */
	CHECK_EQ(fuse_proto_parse(buf, 10, &r, &why), -EPROTO);
	CHECK_EQ(fuse_proto_parse(buf, n - 1, &r, &why), -EPROTO);
	CHECK_EQ(fuse_proto_parse(buf, n + 1, &r, &why), -EPROTO);
	/* Arguments shorter than the op needs. */
	n = build(buf, FUSE_OPEN, &oi, 4, 0);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), -EPROTO);
	/* Unknown opcodes only need a header. */
	n = build(buf, 4095, NULL, 0, 0);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
}

static void test_write(void)
{
	char buf[256];
	struct fexp_request r;
	const char *why;
	struct fuse_write_in wi = { .offset = 512, .size = 16 };
	size_t n = build(buf, FUSE_WRITE, &wi, sizeof(wi), 16);

	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
	CHECK_EQ(r.datalen, (size_t)16);
	CHECK(r.data == buf + FUSE_PROTO_WRITE_HEADER);
	/* The size claims more data than the request carries. */
	wi.size = 17;
	n = build(buf, FUSE_WRITE, &wi, sizeof(wi), 16);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), -EPROTO);
	wi.size = 0xffffffff;
	n = build(buf, FUSE_WRITE, &wi, sizeof(wi), 16);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), -EPROTO);
}

static void test_extensions_and_forget(void)
{
	char buf[256];
	struct fexp_request r;
	const char *why;
	struct fuse_batch_forget_in bf = { .count = 2 };
	size_t n;
	struct fuse_in_header h;

	n = build(buf, FUSE_BATCH_FORGET, &bf, sizeof(bf), sizeof(struct fuse_forget_one));
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), -EPROTO);
	n = build(buf, FUSE_BATCH_FORGET, &bf, sizeof(bf), 2 * sizeof(struct fuse_forget_one));
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
	CHECK(fuse_proto_no_reply(FUSE_BATCH_FORGET));
	CHECK(fuse_proto_no_reply(FUSE_FORGET));
	CHECK(!fuse_proto_no_reply(FUSE_READ));

	/* Extensions longer than the request. */
	n = build(buf, FUSE_STATFS, NULL, 0, 8);
	memcpy(&h, buf, sizeof(h));
	h.total_extlen = 2;
	memcpy(buf, &h, sizeof(h));
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), -EPROTO);
	h.total_extlen = 1;
	memcpy(buf, &h, sizeof(h));
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
	CHECK_EQ(r.arglen, (size_t)0);

	/* LOOKUP names must be terminated. */
	n = build(buf, FUSE_LOOKUP, "abc", 3, 0);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), -EPROTO);
	n = build(buf, FUSE_LOOKUP, "abc", 4, 0);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
}

static void test_init(void)
{
	char buf[256];
	struct fexp_request r;
	const char *why;
	struct fuse_init_in in = {
		.major = 7, .minor = 42, .max_readahead = 131072,
		.flags = FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_INIT_EXT | FUSE_POSIX_LOCKS,
		.flags2 = (uint32_t)(FUSE_PASSTHROUGH >> 32),
	};
	struct fuse_init_params p = {
		.max_write = 1 << 20, .max_pages = 256, .max_background = 128,
		.want_passthrough = true,
	};
	struct exportd_fuse_init_out out;
	struct fuse_init_result res;
	size_t n = build(buf, FUSE_INIT, &in, sizeof(in), 0);

	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
	CHECK_EQ(fuse_proto_init(&r, &p, &out, &res), (int)sizeof(out));
	CHECK_EQ(res.minor, 40u);
	CHECK(res.passthrough);
	CHECK_EQ(out.flags2, (uint32_t)(FUSE_PASSTHROUGH >> 32));
	CHECK(out.flags & FUSE_MAX_PAGES);
	CHECK(!(out.flags & FUSE_POSIX_LOCKS));	/* never more than we want */
	CHECK_EQ(out.max_stack_depth, 2u);
	CHECK_EQ(out.max_write, 1u << 20);
	CHECK_EQ(out.max_readahead, 131072u);

	/* Without passthrough wanted, or not offered. */
	p.want_passthrough = false;
	fuse_proto_init(&r, &p, &out, &res);
	CHECK(!res.passthrough);
	CHECK_EQ(out.max_stack_depth, 0u);
	p.want_passthrough = true;
	in.flags2 = 0;
	n = build(buf, FUSE_INIT, &in, sizeof(in), 0);
	fuse_proto_parse(buf, n, &r, &why);
	fuse_proto_init(&r, &p, &out, &res);
	CHECK(!res.passthrough);

	/* FUSE_OVER_IO_URING: only when wanted and offered. */
	in.flags2 = (uint32_t)((FUSE_PASSTHROUGH | FUSE_OVER_IO_URING) >> 32);
	n = build(buf, FUSE_INIT, &in, sizeof(in), 0);
	fuse_proto_parse(buf, n, &r, &why);
	fuse_proto_init(&r, &p, &out, &res);
	CHECK(!res.uring);
	CHECK(!(out.flags2 & (uint32_t)(FUSE_OVER_IO_URING >> 32)));
	p.want_uring = true;
	fuse_proto_init(&r, &p, &out, &res);
	CHECK(res.uring);
	CHECK(out.flags2 & (uint32_t)(FUSE_OVER_IO_URING >> 32));
	p.want_uring = false;

	/* An old 16-byte init_in: flags2 is not read. */
	in.flags2 = (uint32_t)(FUSE_PASSTHROUGH >> 32);
	in.minor = 22;
	n = build(buf, FUSE_INIT, &in, 16, 0);
	CHECK_EQ(fuse_proto_parse(buf, n, &r, &why), 0);
	CHECK_EQ(fuse_proto_init(&r, &p, &out, &res), FUSE_COMPAT_22_INIT_OUT_SIZE);
	CHECK(!res.passthrough);

	/* Newer major: answer with ours; older: refuse. */
	in.major = 8;
	n = build(buf, FUSE_INIT, &in, sizeof(in), 0);
	fuse_proto_parse(buf, n, &r, &why);
	CHECK_EQ(fuse_proto_init(&r, &p, &out, &res), FUSE_COMPAT_INIT_OUT_SIZE);
	CHECK(res.retry);
	in.major = 6;
	n = build(buf, FUSE_INIT, &in, sizeof(in), 0);
	fuse_proto_parse(buf, n, &r, &why);
	CHECK_EQ(fuse_proto_init(&r, &p, &out, &res), -EPROTO);
}

/* A ring entry as the kernel fills it: header, op_in, then payload. */
static void ring_build(struct exportd_fuse_uring_req_header *hdr, uint32_t opcode,
		       const void *arg, size_t arglen, size_t payload_sz)
{
	struct fuse_in_header h = {
		.len = (uint32_t)(sizeof(h) + arglen + payload_sz),
		.opcode = opcode,
		.unique = 77,
		.nodeid = FUSE_ROOT_ID,
	};

	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr->in_out, &h, sizeof(h));
	if (arglen)
		memcpy(hdr->op_in, arg, arglen);
	hdr->ring_ent_in_out.commit_id = 77;
	hdr->ring_ent_in_out.payload_sz = (uint32_t)payload_sz;
}

static void test_ring(void)
{
	struct exportd_fuse_uring_req_header hdr;
	static char payload[8192];
	struct fexp_request r;
	const char *why;
	struct fuse_read_in ri = { .offset = 4096, .size = 4096 };
	struct fuse_write_in wi = { .offset = 512, .size = 100 };
	struct fuse_in_header h;

	/* READ: the argument in op_in, no payload. */
	ring_build(&hdr, FUSE_READ, &ri, sizeof(ri), 0);
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), 0);
	CHECK_EQ(r.opcode, (uint32_t)FUSE_READ);
	CHECK_EQ(r.unique, (uint64_t)77);
	CHECK(r.arg == hdr.op_in);
	CHECK_EQ(r.arglen, sizeof(ri));

	/* WRITE: data in the payload. */
	ring_build(&hdr, FUSE_WRITE, &wi, sizeof(wi), 100);
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), 0);
	CHECK(r.data == payload);
	CHECK_EQ(r.datalen, (size_t)100);
	/* ... but less of it than write_in.size says. */
	ring_build(&hdr, FUSE_WRITE, &wi, sizeof(wi), 99);
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), -EPROTO);

	/* LOOKUP: no argument struct, the name is the payload. */
	memcpy(payload, "abc", 4);
	ring_build(&hdr, FUSE_LOOKUP, NULL, 0, 4);
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), 0);
	CHECK(r.arg == payload);
	payload[3] = 'd';
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), -EPROTO);

	/* Truncated argument struct. */
	ring_build(&hdr, FUSE_READ, &ri, 8, 0);
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), -EPROTO);
	/* More payload than the buffer, or than the length says. */
	ring_build(&hdr, FUSE_WRITE, &wi, sizeof(wi), 100);
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, 99, &r, &why), -EPROTO);
	memcpy(&h, hdr.in_out, sizeof(h));
	h.len = (uint32_t)(sizeof(h) + 50);
	memcpy(hdr.in_out, &h, sizeof(h));
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), -EPROTO);
	/* An argument larger than op_in, or a length below the header's. */
	h.len = (uint32_t)(sizeof(h) + 100 + 200);
	memcpy(hdr.in_out, &h, sizeof(h));
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), -EPROTO);
	h.len = 3;
	memcpy(hdr.in_out, &h, sizeof(h));
	CHECK_EQ(fuse_proto_parse_ring(&hdr, payload, sizeof(payload), &r, &why), -EPROTO);
}

static void test_reply(void)
{
	int fds[2];
	char buf[64];
	struct fuse_out_header h;
	uint64_t v = 0x1122334455667788ULL;

	if (pipe(fds) < 0)
		abort();
	CHECK_EQ(fuse_proto_reply_err(fds[1], 7, ENOSYS), 0);
	CHECK_EQ(read(fds[0], buf, sizeof(buf)), (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	CHECK_EQ(h.len, (uint32_t)sizeof(h));
	CHECK_EQ(h.error, -ENOSYS);
	CHECK_EQ(h.unique, (uint64_t)7);

	CHECK_EQ(fuse_proto_reply(fds[1], 8, &v, sizeof(v)), 0);
	CHECK_EQ(read(fds[0], buf, sizeof(buf)), (ssize_t)(sizeof(h) + 8));
	memcpy(&h, buf, sizeof(h));
	CHECK_EQ(h.len, (uint32_t)(sizeof(h) + 8));
	CHECK_EQ(h.error, 0);
	CHECK(!memcmp(buf + sizeof(h), &v, 8));
	close(fds[0]);
	/* A dead channel is an error, not a crash (SIGPIPE is ignored here). */
	CHECK(fuse_proto_reply_err(fds[1], 9, 0) < 0);
	close(fds[1]);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "framing", test_framing },
		{ "write", test_write },
		{ "extensions, forget, lookup", test_extensions_and_forget },
		{ "init negotiation", test_init },
		{ "io_uring entries", test_ring },
		{ "replies", test_reply },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return unit_run("fuse-proto", tests);
}
