/*
 * block/file.c: the protocol driver for POSIX files and block devices,
 * registered as "file" and "host_device" like QEMU's file-posix.
 *
 * I/O callbacks run on many worker threads at once on the same fd; they
 * only use positioned syscalls (pread, pwrite, fallocate, lseek with
 * SEEK_DATA/SEEK_HOLE whose result does not depend on the file offset), so
 * they need no lock.  The one exception is O_DIRECT (cache.direct=on)
 * with a request the device cannot take as it is: it goes through an
 * aligned bounce buffer, and a read-modify-write of a partial block is
 * serialised against other writes by a per-node rwlock so that no write is
 * lost.  Image locks follow QEMU (block/lock.c), so qemu and exportd refuse
 * to write an image the other one writes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "block/file.h"
#include "block/lock.h"
#include "log.h"
#include "util.h"

/* Bounce buffers and zero-filling work in pieces of this size. */
#define FILE_CHUNK		(1024 * 1024)
/* Fallback O_DIRECT alignment when the kernel does not tell. */
#define FILE_DEFAULT_ALIGN	4096

struct file_state {
	int fd;
	bool is_blk;			/* block device (BLK* ioctls) */
	bool is_reg;			/* regular file */
	bool use_lock;			/* locking=on|auto */
	size_t align;			/* O_DIRECT offset/length alignment, or 1 */
	size_t mem_align;		/* O_DIRECT buffer alignment, or 1 */
	pthread_rwlock_t rmw_lock;	/* O_DIRECT: partial-block RMW vs writes */
	atomic_llong size;		/* length, updated by truncate */
	atomic_bool size_volatile;	/* the kernel writes it too: fstat */
	atomic_bool no_zero_range;	/* FALLOC_FL_ZERO_RANGE unsupported */
	atomic_bool no_punch_hole;	/* FALLOC_FL_PUNCH_HOLE unsupported */
	atomic_bool no_seek_data;	/* SEEK_DATA unsupported: all data */
	atomic_int flush_error;		/* sticky fdatasync failure (-errno) */
	struct block_lock lock;
	bool use_uring;			/* aio=io_uring */
};

static struct file_state *file_state(struct block_node *bs)
{
	return bs->opaque;
}

static bool opt_bool(json_t *options, const char *key, bool dflt)
{
	json_t *v = json_object_get(options, key);

	return v ? json_is_true(v) : dflt;
}

static const char *opt_str(json_t *options, const char *key, const char *dflt)
{
	json_t *v = json_object_get(options, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

/* The alignment O_DIRECT needs on this fd. */
static void file_probe_alignment(struct file_state *s, const struct stat *st)
{
	s->align = FILE_DEFAULT_ALIGN;
	s->mem_align = FILE_DEFAULT_ALIGN;
	if (S_ISBLK(st->st_mode)) {
		int lbs = 0;

		if (ioctl(s->fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
			s->align = s->mem_align = (size_t)lbs;
		return;
	}
#ifdef STATX_DIOALIGN
	{
		struct statx stx;

		if (statx(s->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
		    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
			s->align = stx.stx_dio_offset_align;
			s->mem_align = MAX(stx.stx_dio_mem_align, 1u);
		}
	}
#endif
}

/*
 * Is a file of mode `mode` one this node may open?  Checked on an O_PATH
 * fd before the real open, because opening a FIFO blocks (the whole main
 * thread) and opening a device runs its driver: image content must never
 * make root do either.
 */
static int file_check_type(struct block_node *bs, const char *filename, mode_t mode,
			   struct error **errp)
{
	/* What open(O_RDWR) of a directory said before the type check. */
	if (S_ISDIR(mode) && !bs->read_only) {
		error_setg_errno(errp, EISDIR, "Could not open '%s'", filename);
		return -1;
	}
	if (bs->open_flags & BLOCK_OPEN_FROM_IMAGE) {
		if (!S_ISREG(mode)) {
			error_setg(errp, "'%s' is named by an image, so it must be a regular "
				   "file (a device is opened only when given as a 'file' or "
				   "'host_device' node)", filename);
			return -1;
		}
		return 0;
	}
	if (bs->drv == &block_driver_host_device) {
		if (!S_ISBLK(mode) && !S_ISCHR(mode)) {
			error_setg(errp, "'host_device' driver requires '%s' to be either "
				   "a character or block device", filename);
			return -1;
		}
		return 0;
	}
	/* Unlike QEMU 7.2, 'file' also takes block devices. */
	if (!S_ISREG(mode) && !S_ISBLK(mode)) {
		error_setg(errp, "'file' driver requires '%s' to be a regular file "
			   "or a block device", filename);
		return -1;
	}
	return 0;
}

/*
 * Open filename with flags, but only after its type passed
 * file_check_type: resolve it once with O_PATH (which neither blocks nor
 * reaches a driver), check that inode, then open that very inode through
 * /proc/self/fd, so that the path cannot be swapped in between.  O_NOCTTY:
 * a character device must never become the daemon's terminal.  -1 with
 * errp set, or the fd; *st is the file's stat.
 */
static int file_open_checked(struct block_node *bs, const char *filename, int flags,
			     bool auto_ro, struct stat *st, struct error **errp)
{
	char proc[64];
	int pfd, fd;

	pfd = open(filename, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		error_setg_errno(errp, errno, "Could not open '%s'", filename);
		return -1;
	}
	if (fstat(pfd, st) < 0) {
		error_setg_errno(errp, errno, "Could not stat '%s'", filename);
		close(pfd);
		return -1;
	}
	if (file_check_type(bs, filename, st->st_mode, errp) < 0) {
		close(pfd);
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	flags |= O_CLOEXEC | O_NOCTTY;
	fd = open(proc, flags);
	if (fd < 0 && !bs->read_only && auto_ro &&
	    (errno == EACCES || errno == EROFS || errno == EPERM)) {
		/* auto-read-only: fall back to reading when writing is refused. */
		fd = open(proc, (flags & ~O_RDWR) | O_RDONLY);
		if (fd >= 0)
			bs->read_only = true;
	}
	if (fd < 0)
		error_setg_errno(errp, errno, "Could not open '%s'", filename);
	close(pfd);
	return fd;
}

static int file_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct file_state *s = file_state(bs);
	const char *filename = opt_str(options, "filename", NULL);
	const char *locking = opt_str(options, "locking", "auto");
	const char *aio = opt_str(options, "aio", "threads");
	bool auto_ro = opt_bool(options, "auto-read-only", false);
	struct stat st;
	int flags;

	s->fd = -1;
	if (!filename) {
		error_setg(errp, "Parameter 'filename' is missing");
		return -1;
	}
	if (!strcmp(aio, "native")) {
		if (!bs->direct)
			error_setg(errp, "aio=native was specified, but it requires "
				   "cache.direct=on, which was not specified.");
		else
			error_setg(errp, "aio=native was specified, but is not "
				   "supported in this build.");
		return -1;
	}
	if (!strcmp(aio, "io_uring")) {
		if (!file_uring_available(errp))
			return -1;
		s->use_uring = true;
	}

	flags = bs->read_only ? O_RDONLY : O_RDWR;
	if (bs->direct)
		flags |= O_DIRECT;
	s->fd = file_open_checked(bs, filename, flags, auto_ro, &st, errp);
	if (s->fd < 0)
		return -1;
	s->is_reg = S_ISREG(st.st_mode);
	s->is_blk = S_ISBLK(st.st_mode);
	if (s->is_blk && !bs->read_only) {
		int ro = 0;

		if (ioctl(s->fd, BLKROGET, &ro) == 0 && ro) {
			if (!auto_ro) {
				error_setg_errno(errp, EACCES, "The device is not writable");
				goto fail;
			}
			bs->read_only = true;
		}
	}
	if (s->is_blk) {
		uint64_t size;

		if (ioctl(s->fd, BLKGETSIZE64, &size) < 0) {
			error_setg_errno(errp, errno, "Could not get the size of '%s'",
					 filename);
			goto fail;
		}
		atomic_store(&s->size, (long long)size);
	} else if (s->is_reg) {
		atomic_store(&s->size, (long long)st.st_size);
	} else {
		/* A character device: whatever its driver says, as QEMU. */
		off_t end = lseek(s->fd, 0, SEEK_END);

		atomic_store(&s->size, end < 0 ? 0LL : (long long)end);
	}
	if (bs->direct) {
		file_probe_alignment(s, &st);
	} else {
		s->align = 1;
		s->mem_align = 1;
	}
	pthread_rwlock_init(&s->rmw_lock, NULL);
	/* Linux always has OFD locks, so auto means on. */
	s->use_lock = strcmp(locking, "off") != 0;
	bs->filename = xstrdup(filename);
	block_lock_init(&s->lock, s->fd, bs->filename);
	return 0;

fail:
	close(s->fd);
	s->fd = -1;
	return -1;
}

static void file_close(struct block_node *bs)
{
	struct file_state *s = file_state(bs);

	if (s->fd < 0)
		return;
	if (s->use_lock)
		block_lock_release_all(&s->lock);
	pthread_rwlock_destroy(&s->rmw_lock);
	close(s->fd);
	s->fd = -1;
}

static int file_set_perm(struct block_node *bs, uint64_t perm, uint64_t shared,
			 struct error **errp)
{
	struct file_state *s = file_state(bs);

	if (!s->use_lock)
		return 0;
	return block_lock_set_perm(&s->lock, perm, shared, errp);
}

static int64_t file_get_length(struct block_node *bs)
{
	struct file_state *s = file_state(bs);
	struct stat st;

	/*
	 * Once the kernel writes the file itself (FUSE passthrough of a
	 * growable export), it can grow it behind our back: ask the file.
	 */
	if (atomic_load(&s->size_volatile) && fstat(s->fd, &st) == 0)
		atomic_store(&s->size, (long long)st.st_size);
	return atomic_load(&s->size);
}

static int64_t file_get_allocated_size(struct block_node *bs)
{
	struct stat st;

	if (fstat(file_state(bs)->fd, &st) < 0)
		return -errno;
	return (int64_t)st.st_blocks * 512;
}

/* Plain positioned I/O: retries EINTR and short transfers. */
static int file_pread_full(struct file_state *s, void *buf, size_t len,
			   uint64_t offset)
{
	size_t done = 0;

	if (s->use_uring)
		return file_uring_rw(s->fd, false, buf, len, offset);
	while (done < len) {
		ssize_t n = pread(s->fd, (char *)buf + done, len - done,
				  (off_t)(offset + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			/* Past the end of a file that shrank: reads as zeroes. */
			memset((char *)buf + done, 0, len - done);
			break;
		}
		done += (size_t)n;
	}
	return 0;
}

static int file_pwrite_full(struct file_state *s, const void *buf, size_t len,
			    uint64_t offset)
{
	size_t done = 0;

	if (s->use_uring)
		return file_uring_rw(s->fd, true, (void *)buf, len, offset);
	while (done < len) {
		ssize_t n = pwrite(s->fd, (const char *)buf + done, len - done,
				   (off_t)(offset + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

static bool file_is_aligned(struct file_state *s, const void *buf, size_t len,
			    uint64_t offset)
{
	return (uintptr_t)buf % s->mem_align == 0 && len % s->align == 0 &&
	       offset % s->align == 0;
}

static void *file_bounce_alloc(struct file_state *s, size_t size)
{
	void *p = NULL;

	if (posix_memalign(&p, MAX(s->mem_align, sizeof(void *)), size) != 0)
		return NULL;
	return p;
}

/* O_DIRECT read of an unaligned request, piece by piece through a bounce. */
static int file_pread_bounce(struct file_state *s, void *buf, size_t len,
			     uint64_t offset)
{
	size_t piece = ROUND_UP((size_t)FILE_CHUNK, s->align);
	char *bounce = file_bounce_alloc(s, piece);
	int ret = 0;

	if (!bounce)
		return -ENOMEM;
	while (len > 0) {
		uint64_t start = ROUND_DOWN(offset, s->align);
		size_t skip = offset - start;
		size_t n = MIN(len, piece - skip);

		ret = file_pread_full(s, bounce, ROUND_UP(skip + n, s->align), start);
		if (ret < 0)
			break;
		memcpy(buf, bounce + skip, n);
		buf = (char *)buf + n;
		offset += n;
		len -= n;
	}
	free(bounce);
	return ret;
}

/*
 * O_DIRECT write of an unaligned request: read the partial head and tail
 * blocks, overlay, write whole blocks.  Runs under the write side of
 * rmw_lock so that no other write to those blocks is lost in between.
 */
static int file_pwrite_bounce(struct file_state *s, const void *buf, size_t len,
			      uint64_t offset)
{
	size_t piece = ROUND_UP((size_t)FILE_CHUNK, s->align);
	char *bounce = file_bounce_alloc(s, piece);
	int64_t size = atomic_load(&s->size);
	bool grew = false;
	int ret = 0;

	if (!bounce)
		return -ENOMEM;
	while (len > 0) {
		uint64_t start = ROUND_DOWN(offset, s->align);
		size_t skip = offset - start;
		size_t n = MIN(len, piece - skip);
		size_t span = ROUND_UP(skip + n, s->align);

		if (skip) {
			ret = file_pread_full(s, bounce, s->align, start);
			if (ret < 0)
				break;
		}
		if ((skip + n) % s->align && (span > s->align || !skip)) {
			ret = file_pread_full(s, bounce + span - s->align, s->align,
					      start + span - s->align);
			if (ret < 0)
				break;
		}
		memcpy(bounce + skip, buf, n);
		ret = file_pwrite_full(s, bounce, span, start);
		if (ret < 0)
			break;
		if (s->is_reg && start + span > (uint64_t)size)
			grew = true;
		buf = (const char *)buf + n;
		offset += n;
		len -= n;
	}
	/* Whole blocks past an unaligned EOF grew the file: undo that. */
	if (grew && ftruncate(s->fd, size) < 0 && ret == 0)
		ret = -errno;
	free(bounce);
	return ret;
}

static int file_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	struct file_state *s = file_state(bs);

	if (file_is_aligned(s, buf, len, offset))
		return file_pread_full(s, buf, len, offset);
	return file_pread_bounce(s, buf, len, offset);
}

static int file_pwrite(struct block_node *bs, const void *buf, size_t len,
		       uint64_t offset)
{
	struct file_state *s = file_state(bs);
	int ret;

	if (s->align == 1)
		return file_pwrite_full(s, buf, len, offset);
	if (file_is_aligned(s, buf, len, offset)) {
		pthread_rwlock_rdlock(&s->rmw_lock);
		ret = file_pwrite_full(s, buf, len, offset);
		pthread_rwlock_unlock(&s->rmw_lock);
		return ret;
	}
	pthread_rwlock_wrlock(&s->rmw_lock);
	ret = file_pwrite_bounce(s, buf, len, offset);
	pthread_rwlock_unlock(&s->rmw_lock);
	return ret;
}

static int file_flush(struct block_node *bs)
{
	struct file_state *s = file_state(bs);
	int ret = atomic_load(&s->flush_error);

	/*
	 * After a failed fdatasync the kernel may have dropped the dirty
	 * pages and will not report it again: keep failing, as QEMU does,
	 * rather than ever acknowledging data that may be lost.
	 */
	if (ret)
		return ret;
	if (s->use_uring) {
		ret = file_uring_fdatasync(s->fd);
	} else {
		while ((ret = fdatasync(s->fd)) < 0 && errno == EINTR)
			;
		if (ret < 0)
			ret = -errno;
	}
	if (ret < 0) {
		if (ret != -EINVAL && ret != -ENOTSUP) {
			atomic_store(&s->flush_error, ret);
			log_warnx("fdatasync of '%s' failed: %s; every later flush "
				  "fails too", bs->filename, strerror(-ret));
		}
		return ret;
	}
	return 0;
}

static int file_fallocate(struct file_state *s, int mode, uint64_t offset,
			  uint64_t len)
{
	while (fallocate(s->fd, mode, (off_t)offset, (off_t)len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* BLKDISCARD / BLKZEROOUT on the sector-aligned part of the range. */
static int file_blk_ioctl(struct file_state *s, unsigned long req,
			  uint64_t *offset, uint64_t *len)
{
	uint64_t start = ROUND_UP(*offset, 512), end = ROUND_DOWN(*offset + *len, 512);
	uint64_t range[2];

	if (end <= start)
		return 0;
	range[0] = start;
	range[1] = end - start;
	while (ioctl(s->fd, req, range) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 1;
}

static int file_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	struct file_state *s = file_state(bs);
	int ret;

	if (s->is_blk) {
		ret = file_blk_ioctl(s, BLKDISCARD, &offset, &len);
		return ret < 0 ? ret : 0;
	}
	if (atomic_load(&s->no_punch_hole))
		return -ENOTSUP;
	ret = file_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
	if (ret == -EOPNOTSUPP || ret == -ENOSYS) {
		atomic_store(&s->no_punch_hole, true);
		return -ENOTSUP;
	}
	return ret;
}

static int file_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
			     int flags)
{
	struct file_state *s = file_state(bs);
	int ret;

	if (s->is_blk) {
		uint64_t head_end = MIN(ROUND_UP(offset, 512), offset + len);
		uint64_t tail_start = MAX(ROUND_DOWN(offset + len, 512), head_end);

		ret = file_blk_ioctl(s, BLKZEROOUT, &offset, &len);
		if (ret < 0 && ret != -EOPNOTSUPP && ret != -ENOTTY && ret != -EINVAL)
			return ret;
		if (ret < 0)	/* no BLKZEROOUT: write them all */
			return block_emulate_write_zeroes(bs, offset, len);
		/* The partial sectors at both ends. */
		if (head_end > offset) {
			ret = block_emulate_write_zeroes(bs, offset, head_end - offset);
			if (ret < 0)
				return ret;
		}
		if (offset + len > tail_start)
			return block_emulate_write_zeroes(bs, tail_start,
						       offset + len - tail_start);
		return 0;
	}
	if (!s->is_reg)
		return block_emulate_write_zeroes(bs, offset, len);
	/* MAY_UNMAP asks for deallocation: punch first, as QEMU does. */
	if ((flags & BLOCK_ZERO_MAY_UNMAP) && !atomic_load(&s->no_punch_hole)) {
		ret = file_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     offset, len);
		if (ret != -EOPNOTSUPP && ret != -ENOSYS)
			return ret;
		atomic_store(&s->no_punch_hole, true);
	}
	if (!atomic_load(&s->no_zero_range)) {
		ret = file_fallocate(s, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
				     offset, len);
		if (ret != -EOPNOTSUPP && ret != -ENOSYS && ret != -EINVAL)
			return ret;
		atomic_store(&s->no_zero_range, true);
	}
	if (!atomic_load(&s->no_punch_hole)) {
		/* Holes read as zeroes, even when the caller did not ask to unmap. */
		ret = file_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     offset, len);
		if (ret != -EOPNOTSUPP && ret != -ENOSYS)
			return ret;
		atomic_store(&s->no_punch_hole, true);
	}
	return block_emulate_write_zeroes(bs, offset, len);
}

static int file_truncate(struct block_node *bs, uint64_t length)
{
	struct file_state *s = file_state(bs);

	if (!s->is_reg) {
		if ((int64_t)length == atomic_load(&s->size))
			return 0;
		log_warnx("Cannot resize device file '%s' to %" PRIu64 " bytes",
			  bs->filename, length);
		return -ENOTSUP;
	}
	while (ftruncate(s->fd, (off_t)length) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	atomic_store(&s->size, (long long)length);
	return 0;
}

static int file_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			     uint64_t *pnum)
{
	struct file_state *s = file_state(bs);
	off_t data, hole;

	*pnum = len;
	if (!s->is_reg || atomic_load(&s->no_seek_data))
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	data = lseek(s->fd, (off_t)offset, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) {
			/* No data from offset to EOF: all of it is a hole. */
			return BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED;
		}
		if (errno == EINVAL || errno == ENOTSUP || errno == EOPNOTSUPP)
			atomic_store(&s->no_seek_data, true);
		/* Unknown: say data, which is always correct. */
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	}
	if ((uint64_t)data > offset) {
		*pnum = MIN((uint64_t)data - offset, len);
		return BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED;
	}
	hole = lseek(s->fd, (off_t)offset, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole <= offset) {
		/* Changed under us, or an error: data is the safe answer. */
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	}
	*pnum = MIN((uint64_t)hole - offset, len);
	return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
}

static int file_get_passthrough(struct block_node *bs, struct block_passthrough *pt,
				const char **why)
{
	struct file_state *s = file_state(bs);

	if (!s->is_reg && !s->is_blk) {
		*why = "not a regular file or block device";
		return -ENOTSUP;
	}
	/* The kernel would send every request as it comes to an O_DIRECT fd,
	 * and unaligned ones would fail; the bounce buffers are ours. */
	if (s->align > 1) {
		*why = "cache.direct=on needs aligned requests";
		return -ENOTSUP;
	}
	pt->fd = s->fd;
	pt->offset = 0;
	if (pt->writes && s->is_reg)
		atomic_store(&s->size_volatile, true);
	return 0;
}

#define FILE_DRIVER_CALLBACKS					\
	.is_format = false,					\
	.state_size = sizeof(struct file_state),		\
	.open = file_open,					\
	.close = file_close,					\
	.get_length = file_get_length,				\
	.get_allocated_size = file_get_allocated_size,		\
	.pread = file_pread,					\
	.pwrite = file_pwrite,					\
	.flush = file_flush,					\
	.discard = file_discard,				\
	.write_zeroes = file_write_zeroes,			\
	.truncate = file_truncate,				\
	.block_status = file_block_status,			\
	.get_passthrough = file_get_passthrough,		\
	.set_perm = file_set_perm

const struct block_driver block_driver_file = {
	.name = "file",
	FILE_DRIVER_CALLBACKS,
};

const struct block_driver block_driver_host_device = {
	.name = "host_device",
	FILE_DRIVER_CALLBACKS,
};
