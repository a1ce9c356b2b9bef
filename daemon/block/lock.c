/*
 * block/lock.c: QEMU-compatible image locks with OFD fcntl locks (see
 * block/lock.h for the byte layout).
 *
 * The sequence follows QEMU 7.2's raw_handle_perm_lock: first lock the
 * union of the old and new bytes (never dropping a byte before the new
 * state is known to be fine), then test for conflicts with the new
 * permissions, then unlock what is no longer needed; on a conflict, go
 * back to exactly the old bytes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "block/lock.h"
#include "log.h"
#include "util.h"

#define PERM_BITS 4	/* BLOCK_PERM_ALL == 0xf */

static int lock_fcntl(int fd, int cmd, short type, off_t start, struct flock *out)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = start,
		.l_len = 1,
	};

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (out)
		*out = fl;
	return 0;
}

/* Shared lock on one byte: many holders may coexist. */
static int lock_byte(int fd, off_t byte)
{
	return lock_fcntl(fd, F_OFD_SETLK, F_RDLCK, byte, NULL);
}

static int unlock_byte(int fd, off_t byte)
{
	return lock_fcntl(fd, F_OFD_SETLK, F_UNLCK, byte, NULL);
}

/* 0 if nobody but us holds a lock on byte, -EAGAIN if someone does. */
static int test_byte(int fd, off_t byte)
{
	struct flock fl;
	int ret = lock_fcntl(fd, F_OFD_GETLK, F_WRLCK, byte, &fl);

	if (ret < 0)
		return ret;
	return fl.l_type == F_UNLCK ? 0 : -EAGAIN;
}

/* Lock error messages leave out EAGAIN/EACCES, which only mean "busy". */
static void lock_error(struct error **errp, int err, const char *what,
		       uint64_t bit, const char *filename)
{
	char names[64];

	block_perm_names(bit, names, sizeof(names));
	if (err == EAGAIN || err == EACCES)
		error_setg(errp, "Failed to get %s\"%s\" lock: is another process "
			   "using the image [%s]?", what, names, filename);
	else
		error_setg_errno(errp, err, "Failed to get %s\"%s\" lock on '%s'",
				 what, names, filename);
}

/*
 * Make the locked bytes of fd cover perm_bits (100+) and unshared_bits
 * (200+); with unlock, also release bytes outside them.
 */
static int lock_apply(struct block_lock *lk, uint64_t perm_bits,
		      uint64_t unshared_bits, bool unlock, struct error **errp)
{
	for (int i = 0; i < 2 * PERM_BITS; i++) {
		bool shared_range = i >= PERM_BITS;
		uint64_t bit = 1ULL << (i % PERM_BITS);
		uint64_t want = shared_range ? unshared_bits : perm_bits;
		uint64_t *have = shared_range ? &lk->locked_unshared : &lk->locked_perm;
		off_t byte = (shared_range ? BLOCK_LOCK_SHARED_BASE : BLOCK_LOCK_PERM_BASE) +
			     i % PERM_BITS;
		int ret;

		if ((want & bit) && !(*have & bit)) {
			ret = lock_byte(lk->fd, byte);
			if (ret < 0) {
				if (ret == -EAGAIN || ret == -EACCES)
					error_setg(errp, "Failed to lock byte %ld of '%s'",
						   (long)byte, lk->filename);
				else
					error_setg_errno(errp, -ret, "Failed to lock byte "
							 "%ld of '%s'", (long)byte,
							 lk->filename);
				return ret;
			}
			*have |= bit;
		} else if (unlock && !(want & bit) && (*have & bit)) {
			ret = unlock_byte(lk->fd, byte);
			if (ret < 0) {
				error_setg_errno(errp, -ret, "Failed to unlock byte %ld "
						 "of '%s'", (long)byte, lk->filename);
				return ret;
			}
			*have &= ~bit;
		}
	}
	return 0;
}

/* Would holding perm and sharing only shared conflict with someone else? */
static int lock_check(struct block_lock *lk, uint64_t perm, uint64_t shared,
		      struct error **errp)
{
	for (int i = 0; i < PERM_BITS; i++) {
		uint64_t bit = 1ULL << i;
		int ret;

		if (!(perm & bit))
			continue;
		ret = test_byte(lk->fd, BLOCK_LOCK_SHARED_BASE + i);
		if (ret < 0) {
			lock_error(errp, -ret, "", bit, lk->filename);
			return ret;
		}
	}
	for (int i = 0; i < PERM_BITS; i++) {
		uint64_t bit = 1ULL << i;
		int ret;

		if (shared & bit)
			continue;
		ret = test_byte(lk->fd, BLOCK_LOCK_PERM_BASE + i);
		if (ret < 0) {
			lock_error(errp, -ret, "shared ", bit, lk->filename);
			return ret;
		}
	}
	return 0;
}

void block_lock_init(struct block_lock *lk, int fd, const char *filename)
{
	memset(lk, 0, sizeof(*lk));
	lk->fd = fd;
	lk->filename = filename;
	lk->shared = BLOCK_PERM_ALL;
}

int block_lock_set_perm(struct block_lock *lk, uint64_t perm, uint64_t shared,
			struct error **errp)
{
	struct error *err = NULL;
	bool only_relaxing = (lk->perm | perm) == lk->perm &&
			     (lk->shared & shared) == lk->shared;

	perm &= BLOCK_PERM_ALL;
	shared &= BLOCK_PERM_ALL;
	/* Dropping permissions cannot conflict: skip the checks. */
	if (!only_relaxing) {
		if (lock_apply(lk, lk->perm | perm, ~lk->shared | ~shared, false,
			       errp) < 0 ||
		    lock_check(lk, perm, shared, errp) < 0) {
			if (lock_apply(lk, lk->perm, ~lk->shared, true, &err) < 0) {
				log_warnx("%s", err->msg);
				error_free(err);
			}
			return -1;
		}
	}
	if (lock_apply(lk, perm, ~shared, true, &err) < 0) {
		/* Only unlocks are left to do; report but keep going. */
		log_warnx("%s", err->msg);
		error_free(err);
	}
	lk->perm = perm;
	lk->shared = shared;
	return 0;
}

void block_lock_release_all(struct block_lock *lk)
{
	struct error *err = NULL;

	if (lk->fd < 0)
		return;
	if (lock_apply(lk, 0, 0, true, &err) < 0) {
		log_warnx("%s", err->msg);
		error_free(err);
	}
	lk->perm = 0;
	lk->shared = BLOCK_PERM_ALL;
}
