/*
 * block/file.h: internals of the file driver shared between its files:
 * the io_uring path (aio=io_uring) of block/file-uring.c.
 */
#ifndef EXPORTD_BLOCK_FILE_H
#define EXPORTD_BLOCK_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/error.h"

/* Whether this kernel and build can do io_uring; says why not in *errp. */
bool file_uring_available(struct error **errp);
/*
 * A whole read or write of len bytes at offset on fd through the calling
 * thread's ring (short transfers are continued, a read at EOF is
 * zero-filled).  0 or -errno.
 */
int file_uring_rw(int fd, bool write, void *buf, size_t len, uint64_t offset);
/* fdatasync through the ring. */
int file_uring_fdatasync(int fd);

#endif
