/*
 * fuse/kernel.h: the FUSE wire protocol as exportd speaks it.
 *
 * exportd reads and answers /dev/fuse itself (libfuse only mounts), so it
 * needs the kernel's structures.  Debian 12's <linux/fuse.h> is protocol
 * 7.38; the additions of 7.39/7.40 that the data plane uses (FUSE
 * passthrough, Linux 6.9+) are defined here, with values taken from the
 * kernel's include/uapi/linux/fuse.h (protocol 7.40 and later, unchanged
 * since).  Every definition is guarded so that a newer system header wins.
 */
#ifndef EXPORTD_FUSE_KERNEL_H
#define EXPORTD_FUSE_KERNEL_H

#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* The protocol we implement: 7.40 (Linux 6.9) adds passthrough. */
#define EXPORTD_FUSE_MAJOR 7
#define EXPORTD_FUSE_MINOR 40

/* 7.36: flags above bit 31 travel in init_in/init_out.flags2. */
#ifndef FUSE_INIT_EXT
#define FUSE_INIT_EXT (1 << 30)
#endif
/* 7.39 (Linux 6.6): shared mmap in FOPEN_DIRECT_IO mode. */
#ifndef FUSE_DIRECT_IO_ALLOW_MMAP
#define FUSE_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#endif
/* 7.40 (Linux 6.9): passthrough of read/write to a backing file. */
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37)
#endif
#ifndef FOPEN_PARALLEL_DIRECT_WRITES
#define FOPEN_PARALLEL_DIRECT_WRITES (1 << 6)
#endif
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7)
#endif
/* 7.39: FUSE_STATX; answered with ENOSYS so that the kernel uses GETATTR. */
#define EXPORTD_FUSE_STATX 52

/*
 * The kernel's FILESYSTEM_MAX_STACK_DEPTH: a passthrough backing file may
 * itself live on a stacked filesystem (overlayfs), so ask for the maximum.
 */
#define EXPORTD_FUSE_MAX_STACK_DEPTH 2

/*
 * struct fuse_init_out as of 7.40: max_stack_depth took the first unused
 * word.  Same size and layout as the 7.38 struct.
 */
struct exportd_fuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;
	uint32_t max_stack_depth;
	uint32_t unused[6];
};

/* struct fuse_open_out as of 7.40: padding became backing_id. */
struct exportd_fuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

/* FUSE_DEV_IOC_BACKING_OPEN argument (7.40). */
struct exportd_fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#ifndef FUSE_DEV_IOC_MAGIC
#define FUSE_DEV_IOC_MAGIC 229
#endif
#ifndef FUSE_DEV_IOC_CLONE
#define FUSE_DEV_IOC_CLONE _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t)
#endif
#define EXPORTD_FUSE_DEV_IOC_BACKING_OPEN \
	_IOW(FUSE_DEV_IOC_MAGIC, 1, struct exportd_fuse_backing_map)
#define EXPORTD_FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

_Static_assert(sizeof(struct exportd_fuse_init_out) == sizeof(struct fuse_init_out),
	       "fuse_init_out layout");
_Static_assert(sizeof(struct exportd_fuse_open_out) == sizeof(struct fuse_open_out),
	       "fuse_open_out layout");
_Static_assert(offsetof(struct exportd_fuse_init_out, max_stack_depth) == 36,
	       "max_stack_depth offset");

/*
 * FUSE over io_uring: protocol 7.42, Linux 6.14 (include/uapi/linux/fuse.h
 * and fs/fuse/dev_uring.c of that release).  After INIT agreed to
 * FUSE_OVER_IO_URING, the server registers ring entries with
 * IORING_OP_URING_CMD on a /dev/fuse fd (SQE128: struct
 * exportd_fuse_uring_cmd_req in the 80-byte command area; sqe->addr an
 * iovec[2]: the header buffer, then the payload buffer).  A request
 * arrives as the completion of an entry's command: fuse_in_header in
 * in_out, the opcode's argument struct in op_in, the rest (WRITE data) in
 * the payload.  The reply goes back the same way (fuse_out_header in
 * in_out, the whole reply body in the payload, its length in
 * payload_sz) with COMMIT_AND_FETCH, which also re-arms the entry.
 */
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)
#endif
#define EXPORTD_FUSE_URING_IN_OUT_HEADER_SZ 128
#define EXPORTD_FUSE_URING_OP_IN_OUT_SZ 128

struct exportd_fuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;	/* the request's unique, to commit with */
	uint32_t payload_sz;	/* bytes in the payload (both ways) */
	uint32_t padding;
	uint64_t reserved;
};

struct exportd_fuse_uring_req_header {
	char in_out[EXPORTD_FUSE_URING_IN_OUT_HEADER_SZ];	/* in/out header */
	char op_in[EXPORTD_FUSE_URING_OP_IN_OUT_SZ];	/* opcode's argument */
	struct exportd_fuse_uring_ent_in_out ring_ent_in_out;
};

enum exportd_fuse_uring_cmd {
	EXPORTD_FUSE_IO_URING_CMD_INVALID = 0,
	EXPORTD_FUSE_IO_URING_CMD_REGISTER = 1,
	EXPORTD_FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* In the SQE's 80-byte command area. */
struct exportd_fuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;		/* the queue (= CPU) the entry serves */
	uint8_t padding[6];
};

_Static_assert(sizeof(struct exportd_fuse_uring_cmd_req) == 24, "fuse_uring_cmd_req layout");
_Static_assert(sizeof(struct exportd_fuse_uring_req_header) == 288,
	       "fuse_uring_req_header layout");

#endif
