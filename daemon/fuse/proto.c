/*
 * fuse/proto.c: parsing FUSE requests and writing FUSE replies.
 *
 * The kernel is trusted to send well-formed requests, but exportd does not
 * rely on it: each request's length must match what read() returned, and
 * every opcode's argument struct must be complete before anyone looks at
 * it.  Anything else is reported as -EPROTO and the caller stops serving
 * that export.  Argument structs are left in the buffer; callers copy them
 * out with memcpy (the buffer carries no alignment promise).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fuse/proto.h"
#include "util.h"

struct fexp_op_info {
	const char *name;
	size_t min_arg;		/* bytes of argument the op needs */
};

/* Ops exportd looks at; others only need a valid header. */
static const struct fexp_op_info fuse_ops[] = {
	[FUSE_LOOKUP] = { "LOOKUP", 1 },	/* a NUL-terminated name */
	[FUSE_FORGET] = { "FORGET", sizeof(struct fuse_forget_in) },
	[FUSE_GETATTR] = { "GETATTR", 0 },	/* getattr_in is 7.9+, optional */
	[FUSE_SETATTR] = { "SETATTR", sizeof(struct fuse_setattr_in) },
	[FUSE_OPEN] = { "OPEN", sizeof(struct fuse_open_in) },
	[FUSE_READ] = { "READ", sizeof(struct fuse_read_in) },
	[FUSE_WRITE] = { "WRITE", sizeof(struct fuse_write_in) },
	[FUSE_STATFS] = { "STATFS", 0 },
	[FUSE_RELEASE] = { "RELEASE", sizeof(struct fuse_release_in) },
	[FUSE_FSYNC] = { "FSYNC", sizeof(struct fuse_fsync_in) },
	[FUSE_FLUSH] = { "FLUSH", sizeof(struct fuse_flush_in) },
	[FUSE_INIT] = { "INIT", 4 * sizeof(uint32_t) },	/* 7.5 layout */
	[FUSE_INTERRUPT] = { "INTERRUPT", sizeof(struct fuse_interrupt_in) },
	[FUSE_DESTROY] = { "DESTROY", 0 },
	[FUSE_BATCH_FORGET] = { "BATCH_FORGET", sizeof(struct fuse_batch_forget_in) },
	[FUSE_FALLOCATE] = { "FALLOCATE", sizeof(struct fuse_fallocate_in) },
	[FUSE_LSEEK] = { "LSEEK", sizeof(struct fuse_lseek_in) },
};

const char *fuse_proto_opname(uint32_t opcode, char *buf, size_t size)
{
	if (opcode < ARRAY_SIZE(fuse_ops) && fuse_ops[opcode].name)
		return fuse_ops[opcode].name;
	snprintf(buf, size, "op %u", opcode);
	return buf;
}

bool fuse_proto_no_reply(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET;
}

/* The checks after the header: argument sizes, WRITE data, names. */
static int fuse_proto_check_args(struct fexp_request *req, const char **why)
{
	size_t arglen = req->arglen;

	if (req->opcode < ARRAY_SIZE(fuse_ops) && fuse_ops[req->opcode].name &&
	    arglen < fuse_ops[req->opcode].min_arg) {
		*why = "request arguments truncated";
		return -EPROTO;
	}
	switch (req->opcode) {
	case FUSE_WRITE: {
		struct fuse_write_in in;

		memcpy(&in, req->arg, sizeof(in));
		if (!req->data) {
			if (arglen - sizeof(in) < in.size) {
				*why = "WRITE data shorter than its size";
				return -EPROTO;
			}
			req->data = (const char *)req->arg + sizeof(in);
		} else if (req->datalen < in.size) {
			*why = "WRITE data shorter than its size";
			return -EPROTO;
		}
		req->datalen = in.size;
		break;
	}
	case FUSE_BATCH_FORGET: {
		struct fuse_batch_forget_in in;

		memcpy(&in, req->arg, sizeof(in));
		if ((arglen - sizeof(in)) / sizeof(struct fuse_forget_one) < in.count) {
			*why = "BATCH_FORGET list shorter than its count";
			return -EPROTO;
		}
		break;
	}
	case FUSE_LOOKUP:
		if (memchr(req->arg, '\0', arglen) == NULL) {
			*why = "LOOKUP name not terminated";
			return -EPROTO;
		}
		break;
	}
	return 0;
}

static void fuse_proto_fill_header(const struct fuse_in_header *h, struct fexp_request *req)
{
	req->opcode = h->opcode;
	req->unique = h->unique;
	req->nodeid = h->nodeid;
	req->uid = h->uid;
	req->gid = h->gid;
	req->pid = h->pid;
}

int fuse_proto_parse(const void *buf, size_t n, struct fexp_request *req, const char **why)
{
	struct fuse_in_header h;
	size_t arglen, ext;

	memset(req, 0, sizeof(*req));
	if (n < sizeof(h)) {
		*why = "request shorter than its header";
		return -EPROTO;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.len != n) {
		*why = "request length does not match the bytes read";
		return -EPROTO;
	}
	arglen = n - sizeof(h);
	/* Extensions (7.38) trail the arguments; exportd ignores them. */
	ext = (size_t)h.total_extlen * 8;
	if (ext > arglen) {
		*why = "request extensions longer than the request";
		return -EPROTO;
	}
	arglen -= ext;

	fuse_proto_fill_header(&h, req);
	req->arg = (const char *)buf + sizeof(h);
	req->arglen = arglen;
	return fuse_proto_check_args(req, why);
}

int fuse_proto_parse_ring(const struct exportd_fuse_uring_req_header *hdr,
			  const void *payload, size_t payload_size,
			  struct fexp_request *req, const char **why)
{
	struct fuse_in_header h;
	size_t oplen, datalen, ext;

	memset(req, 0, sizeof(*req));
	memcpy(&h, hdr->in_out, sizeof(h));
	datalen = hdr->ring_ent_in_out.payload_sz;
	/*
	 * h.len counts everything (as on /dev/fuse): the argument struct
	 * went to op_in, the rest (data, extensions) to the payload.
	 */
	if (h.len < sizeof(h) || datalen > payload_size || datalen > h.len - sizeof(h)) {
		*why = "ring request length does not match its payload";
		return -EPROTO;
	}
	oplen = h.len - sizeof(h) - datalen;
	if (oplen > sizeof(hdr->op_in)) {
		*why = "ring request argument larger than its header area";
		return -EPROTO;
	}
	ext = (size_t)h.total_extlen * 8;
	if (ext > datalen) {
		*why = "request extensions longer than the request";
		return -EPROTO;
	}
	datalen -= ext;

	fuse_proto_fill_header(&h, req);
	if (oplen == 0) {
		/* No argument struct (LOOKUP's name, ...): all in the payload. */
		req->arg = payload;
		req->arglen = datalen;
	} else {
		req->arg = hdr->op_in;
		req->arglen = oplen;
		if (h.opcode == FUSE_WRITE) {
			req->data = payload;
			req->datalen = datalen;
		}
	}
	return fuse_proto_check_args(req, why);
}

int fuse_proto_init(const struct fexp_request *req, const struct fuse_init_params *p,
		struct exportd_fuse_init_out *out, struct fuse_init_result *res)
{
	uint32_t in4[4];	/* major, minor, max_readahead, flags */
	uint32_t flags2 = 0;
	uint64_t offered, want;
	int len;

	memset(out, 0, sizeof(*out));
	memset(res, 0, sizeof(*res));
	memcpy(in4, req->arg, sizeof(in4));

	out->major = EXPORTD_FUSE_MAJOR;
	out->minor = EXPORTD_FUSE_MINOR;
	if (in4[0] > EXPORTD_FUSE_MAJOR) {
		/* Tell the kernel our major; it retries with that. */
		res->retry = true;
		return FUSE_COMPAT_INIT_OUT_SIZE;
	}
	if (in4[0] < EXPORTD_FUSE_MAJOR)
		return -EPROTO;

	if ((in4[3] & FUSE_INIT_EXT) &&
	    req->arglen >= offsetof(struct fuse_init_in, flags2) + sizeof(uint32_t))
		memcpy(&flags2, (const char *)req->arg + offsetof(struct fuse_init_in, flags2),
		       sizeof(flags2));
	offered = in4[3] | ((uint64_t)flags2 << 32);

	/*
	 * ATOMIC_O_TRUNC: O_TRUNC reaches OPEN, where a fixed-size export
	 * ignores it.  DIRECT_IO_ALLOW_MMAP: a handle served with
	 * FOPEN_DIRECT_IO may still be mapped shared and writable (qsd 11).
	 */
	want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_MAX_PAGES |
	       FUSE_AUTO_INVAL_DATA | FUSE_PARALLEL_DIROPS | FUSE_INIT_EXT |
	       FUSE_ATOMIC_O_TRUNC | FUSE_DIRECT_IO_ALLOW_MMAP;
	if (p->want_passthrough)
		want |= FUSE_PASSTHROUGH;
	if (p->want_uring)
		want |= FUSE_OVER_IO_URING;
	res->flags = offered & want;
	res->minor = MIN(in4[1], (uint32_t)EXPORTD_FUSE_MINOR);
	res->passthrough = (res->flags & FUSE_PASSTHROUGH) != 0;
	res->uring = (res->flags & FUSE_OVER_IO_URING) != 0;

	out->max_readahead = in4[2];
	out->flags = (uint32_t)res->flags;
	out->flags2 = (uint32_t)(res->flags >> 32);
	out->max_background = p->max_background;
	out->congestion_threshold = (uint16_t)(p->max_background * 3 / 4);
	out->max_write = p->max_write;
	out->time_gran = 1;
	out->max_pages = p->max_pages;
	if (res->passthrough)
		out->max_stack_depth = EXPORTD_FUSE_MAX_STACK_DEPTH;

	/* Older kernels read a shorter struct. */
	if (res->minor < 5)
		len = FUSE_COMPAT_INIT_OUT_SIZE;
	else if (res->minor < 23)
		len = FUSE_COMPAT_22_INIT_OUT_SIZE;
	else
		len = sizeof(*out);
	return len;
}

int fuse_proto_reply_iov(int fd, uint64_t unique, int err, const struct iovec *iov, int iovcnt)
{
	struct iovec v[4];
	struct fuse_out_header h;
	size_t total = sizeof(h);
	ssize_t n;
	int i;

	if (iovcnt > (int)ARRAY_SIZE(v) - 1)
		return -EINVAL;
	v[0].iov_base = &h;
	v[0].iov_len = sizeof(h);
	for (i = 0; i < iovcnt; i++) {
		v[i + 1] = iov[i];
		total += iov[i].iov_len;
	}
	h.len = (uint32_t)total;
	h.error = -err;
	h.unique = unique;
	/*
	 * The device takes a reply in one write or not at all, so a short
	 * write cannot happen; EINTR can, before anything was taken.
	 */
	do {
		n = writev(fd, v, iovcnt + 1);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != total)
		return -EIO;
	return 0;
}

int fuse_proto_reply(int fd, uint64_t unique, const void *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };

	return fuse_proto_reply_iov(fd, unique, 0, &iov, len ? 1 : 0);
}

int fuse_proto_reply_err(int fd, uint64_t unique, int err)
{
	return fuse_proto_reply_iov(fd, unique, err, NULL, 0);
}
