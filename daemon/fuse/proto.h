/*
 * fuse/proto.h: the FUSE wire format: parsing a request read from
 * /dev/fuse (with every length checked) and writing replies.
 *
 * This module knows nothing about exports or block nodes; it turns bytes
 * into a struct fexp_request and replies into bytes, so that it can be
 * unit-tested and fuzzed on its own.  A request that fails the checks
 * cannot be trusted (nor can anything after it on that channel): the
 * caller ends the export, never the daemon.
 */
#ifndef EXPORTD_FUSE_PROTO_H
#define EXPORTD_FUSE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "fuse/kernel.h"

/* Every request starts with this header; WRITE data starts after it. */
#define FUSE_PROTO_WRITE_HEADER \
	(sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

struct fexp_request {
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid, gid, pid;
	/* Opcode-specific argument struct, at least the size the op needs. */
	const void *arg;
	size_t arglen;
	/* WRITE: the data (write_in.size bytes). */
	const void *data;
	size_t datalen;
};

/*
 * Parse the n bytes of one request.  Returns 0, or -EPROTO when the
 * framing is wrong or the arguments are shorter than the opcode needs
 * (the message is in *why, a static string).
 */
int fuse_proto_parse(const void *buf, size_t n, struct fexp_request *req,
		     const char **why);

/*
 * Parse a request delivered in a FUSE-over-io_uring entry: the header
 * buffer (fuse_in_header, the opcode's argument struct, payload_sz) and
 * the payload it describes (payload_size bytes available).  Same checks
 * and result as fuse_proto_parse(); the argument struct and WRITE data
 * point into the entry's buffers.
 */
int fuse_proto_parse_ring(const struct exportd_fuse_uring_req_header *hdr,
			  const void *payload, size_t payload_size,
			  struct fexp_request *req, const char **why);

/* Whether the kernel expects no reply at all (FORGET, BATCH_FORGET). */
bool fuse_proto_no_reply(uint32_t opcode);

/* Name of an opcode for logs ("READ", "op 99"). buf >= 16 bytes. */
const char *fuse_proto_opname(uint32_t opcode, char *buf, size_t size);

/* What the export wants from INIT. */
struct fuse_init_params {
	uint32_t max_write;
	uint16_t max_pages;
	uint16_t max_background;
	bool want_passthrough;
	bool want_uring;	/* FUSE_OVER_IO_URING */
};

/* The outcome of INIT. */
struct fuse_init_result {
	uint32_t minor;		/* negotiated minor version */
	uint64_t flags;		/* negotiated flags (flags2 in bits 32..63) */
	bool passthrough;	/* FUSE_PASSTHROUGH agreed */
	bool uring;		/* FUSE_OVER_IO_URING agreed */
	bool retry;		/* kernel major > 7: it sends INIT again */
};

/*
 * Answer FUSE_INIT: fills *out and returns the number of bytes of it to
 * send (older kernels get a shorter struct), or -EPROTO for a kernel
 * whose major version is older than 7.
 */
int fuse_proto_init(const struct fexp_request *req, const struct fuse_init_params *p,
		    struct exportd_fuse_init_out *out, struct fuse_init_result *res);

/*
 * Write a reply: header + iov[0..iovcnt).  err is a positive errno or 0.
 * Returns 0 or -errno.  ENOENT means the request was interrupted/aborted
 * (the kernel no longer waits for it) and is not an error of ours.
 */
int fuse_proto_reply_iov(int fd, uint64_t unique, int err, const struct iovec *iov,
			 int iovcnt);
int fuse_proto_reply(int fd, uint64_t unique, const void *data, size_t len);
int fuse_proto_reply_err(int fd, uint64_t unique, int err);

#endif
