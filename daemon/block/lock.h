/*
 * block/lock.h: image locking as QEMU's file-posix does it, so that
 * exportd, qemu, qemu-img, qemu-io and qemu-storage-daemon see each
 * other's permissions on an image.
 *
 * An open file description holds a shared OFD lock on byte 100 + bit for
 * each permission it holds, and on byte 200 + bit for each permission it
 * does not share (bits: BLOCK_PERM_*).  Taking a permission means testing
 * that nobody else locks "not shared" byte 200 + bit; refusing to share
 * one means testing that nobody else holds byte 100 + bit.  OFD locks
 * belong to the open file description, so two opens in one process
 * conflict just as two processes do.
 */
#ifndef EXPORTD_BLOCK_LOCK_H
#define EXPORTD_BLOCK_LOCK_H

#include <stdint.h>

#include "rpc/error.h"

#define BLOCK_LOCK_PERM_BASE	100
#define BLOCK_LOCK_SHARED_BASE	200

struct block_lock {
	int fd;
	const char *filename;		/* borrowed, for messages */
	uint64_t perm;			/* permissions currently held */
	uint64_t shared;		/* permissions currently shared */
	uint64_t locked_perm;		/* bytes 100+bit locked in fd */
	uint64_t locked_unshared;	/* bytes 200+bit locked in fd */
};

/* A lock state for fd with nothing held and everything shared. */
void block_lock_init(struct block_lock *lk, int fd, const char *filename);
/*
 * Move to holding perm and sharing shared: lock the new bytes, check that
 * no other open file description conflicts, then drop what is no longer
 * needed.  On failure nothing changed and *errp says which lock was
 * refused ("Failed to get \"write\" lock").
 */
int block_lock_set_perm(struct block_lock *lk, uint64_t perm, uint64_t shared,
			struct error **errp);
/* Drop every lock byte (before close). */
void block_lock_release_all(struct block_lock *lk);

#endif
