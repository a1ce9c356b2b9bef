/*
 * fuse/ops.c: the FUSE requests of an export, answered on the I/O loop
 * that read them, with the semantics of qemu-storage-daemon 7.2's
 * block/export/fuse.c (and without its known bugs: punch hole reads back
 * zeroes, concurrent writes land where they were written).
 *
 * Every handler calls the block layer directly and leaves its reply in a
 * struct fexp_reply, which the path that took the request sends: the
 * /dev/fuse fd it was read from (fuse/channel.c), or the io_uring entry
 * it came in (fuse/uring.c).  READ data is read straight into the buffer
 * it is sent from either way; no handler takes a lock on the read/write
 * path.  Statistics are counted per channel or ring queue (fuse/channel.c)
 * and summed by queries.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuse/internal.h"
#include "fuse/proto.h"
#include "log.h"
#include "util.h"

/*
 * The handlers: each returns 0 with its reply body (if any) set in rep, or
 * the positive errno to answer with.
 */
static void fexp_reply_body(struct fexp_reply *rep, const void *body, size_t len)
{
	rep->err = 0;
	rep->body = body;
	rep->len = len;
}

static int fuse_export_reply_attr(struct fuse_export *fe, struct fexp_reply *rep)
{
	struct block_node *bs = fe->common.node;
	struct fuse_attr_out *out = &rep->u.attr;
	int64_t len, alloc, blocks;
	uint64_t now = (uint64_t)time(NULL);
	size_t outlen = sizeof(*out);

	len = block_node_length(bs);
	if (len < 0)
		return (int)-len;
	alloc = block_node_allocated_size(bs);
	/* As QEMU: without an allocated size, claim the whole length. */
	blocks = alloc <= 0 ? DIV_ROUND_UP(len, 512) : DIV_ROUND_UP(alloc, 512);

	memset(out, 0, sizeof(*out));
	out->attr_valid = 1;
	out->attr.ino = FUSE_ROOT_ID;
	out->attr.mode = atomic_load(&fe->st_mode);
	/*
	 * Teardown of a passthrough export: a file that turned into a
	 * directory is what makes the kernel mark the inode bad, after which
	 * every read and write of its open handles fails with EIO instead of
	 * still reaching the image (fuse_export_revoke_passthrough).
	 */
	if (atomic_load(&fe->revoking))
		out->attr.mode = S_IFDIR | 0500;
	out->attr.nlink = 1;
	out->attr.uid = atomic_load(&fe->st_uid);
	out->attr.gid = atomic_load(&fe->st_gid);
	out->attr.size = (uint64_t)len;
	out->attr.blocks = (uint64_t)blocks;
	/* QEMU reports the node's request alignment: 1 without O_DIRECT. */
	out->attr.blksize = 1;
	out->attr.atime = out->attr.mtime = out->attr.ctime = now;
	if (fe->proto_minor < 9)
		outlen = FUSE_COMPAT_ATTR_OUT_SIZE;
	fexp_reply_body(rep, out, outlen);
	return 0;
}

/* Change the size under resize_lock; grow_only: never shrink. */
static int fuse_export_resize(struct fuse_export *fe, uint64_t size, bool grow_only)
{
	struct block_node *bs = fe->common.node;
	int64_t len;
	int ret = 0;

	if (size > INT64_MAX)
		return -EFBIG;
	pthread_mutex_lock(&fe->resize_lock);
	len = block_node_length(bs);
	if (len < 0)
		ret = (int)len;
	else if ((uint64_t)len != size && (!grow_only || (uint64_t)len < size)) {
		ret = block_node_truncate(bs, size);
		/*
		 * A format that keeps its size in whole sectors (qcow2) refuses
		 * an unaligned size, as QEMU's does; a write past the end only
		 * needs the size to cover it.
		 */
		if (ret == -EINVAL && grow_only && size % 512)
			ret = block_node_truncate(bs, ROUND_UP(size, 512));
	}
	pthread_mutex_unlock(&fe->resize_lock);
	return ret;
}

static int fexp_op_setattr(struct fuse_export *fe, const struct fexp_request *req,
			    struct fexp_reply *rep)
{
	struct fuse_setattr_in in;
	uint32_t to_set, supported;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	/* What libfuse hands QEMU: FH and LOCKOWNER are not attributes. */
	to_set = in.valid & (FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME |
			     FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW | FATTR_CTIME);
	supported = FATTR_SIZE | FATTR_MODE;
	if (fe->allow_other)
		supported |= FATTR_UID | FATTR_GID;
	if (to_set & ~supported)
		return ENOTSUP;

	if (to_set & FATTR_MODE) {
		/* Without allow_other, nobody but the owner can get in anyway. */
		if (!fe->allow_other && (in.mode & (S_IRWXG | S_IRWXO)))
			return EPERM;
		/*
		 * A read-only export may be made readable by others, nothing
		 * more: +w, and +x as QEMU 10 and later (iotest 308) answer
		 * too, is EROFS (7.2 allowed +x).
		 */
		if (!fe->common.writable && (in.mode & (S_IWUSR | S_IWGRP | S_IWOTH |
							S_IXUSR | S_IXGRP | S_IXOTH)))
			return EROFS;
	}
	if (to_set & FATTR_SIZE) {
		if (!fe->common.writable)
			return EROFS;
		ret = fuse_export_resize(fe, in.size, false);
		if (ret < 0)
			return -ret;
	}
	if (to_set & FATTR_MODE)
		atomic_store(&fe->st_mode, (in.mode & 07777) | S_IFREG);
	if (to_set & FATTR_UID)
		atomic_store(&fe->st_uid, in.uid);
	if (to_set & FATTR_GID)
		atomic_store(&fe->st_gid, in.gid);
	return fuse_export_reply_attr(fe, rep);
}

static int fexp_op_open(struct fuse_export *fe, const struct fexp_request *req,
			 struct fexp_reply *rep)
{
	struct exportd_fuse_open_out *out = &rep->u.open;
	struct fuse_open_in in;
	bool wants_write;

	memcpy(&in, req->arg, sizeof(in));
	wants_write = (in.flags & O_ACCMODE) != O_RDONLY;
	memset(out, 0, sizeof(*out));
	/*
	 * Opening a read-only export for writing fails at open, as on any
	 * read-only file system (QEMU 10 and later; 7.2 let root open it and
	 * failed each write).  With passthrough it must anyway: a shared
	 * writable mmap of such a handle would write the image itself.
	 */
	if (wants_write && !fe->common.writable)
		return EROFS;
	/*
	 * With FUSE_ATOMIC_O_TRUNC, O_TRUNC comes here instead of as a
	 * SETATTR to size 0.  As in qsd 11 (iotest fuse-truncate): it
	 * empties a growable export, and leaves a fixed-size one alone,
	 * whose size is not the opener's to change (`cp x export` must not
	 * wipe the disk's length; ftruncate() still can).
	 */
	if (wants_write && (in.flags & O_TRUNC) && fe->common.growable) {
		int ret = fuse_export_resize(fe, 0, false);

		if (ret < 0)
			return -ret;
	}

	pthread_mutex_lock(&fe->lock);
	if (fe->data_path == FUSE_PATH_PASSTHROUGH && fe->backing_id > 0) {
		/*
		 * Every handle of an inode with a passthrough handle must be
		 * passthrough.  Handles that may write are passthrough in
		 * name only: FOPEN_DIRECT_IO overrides it for read and write,
		 * so their I/O comes here and keeps the export's semantics (a
		 * write past the end fails, which the kernel would not
		 * enforce) -- unless the export is growable, where a write
		 * past the end must grow the image, which is what the
		 * kernel does.  Their shared mmaps do go to the image directly,
		 * checked against this handle's access mode, not the backing
		 * fd's: so a read-only export hands out no such handle at all
		 * (only CAP_DAC_OVERRIDE could ask for one), and a writable
		 * one does so only with passthrough: on.
		 */
		out->open_flags = FOPEN_PASSTHROUGH;
		out->backing_id = fe->backing_id;
		if (wants_write && !fe->pt_writes)
			out->open_flags |= FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	}
	fe->open_handles++;
	pthread_mutex_unlock(&fe->lock);
	fexp_reply_body(rep, out, sizeof(*out));
	return 0;
}

static int fexp_op_release(struct fuse_export *fe, const struct fexp_request *req,
			    struct fexp_reply *rep)
{

	pthread_mutex_lock(&fe->lock);
	if (fe->open_handles > 0)
		fe->open_handles--;
	pthread_cond_broadcast(&fe->cond);
	pthread_mutex_unlock(&fe->lock);
	(void)req;
	(void)rep;
	return 0;
}

static int fexp_op_read(struct fuse_export *fe, const struct fexp_request *req,
			 struct fexp_reply *rep)
{
	struct fuse_read_in in;
	char *data = rep->data;
	int64_t len;
	uint32_t size;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	if (in.size > FUSE_EXPORT_MAX_IO)
		return EINVAL;
	len = block_node_length(fe->common.node);
	if (len < 0)
		return (int)-len;
	/* Clients expect short reads at EOF. */
	if (in.offset >= (uint64_t)len)
		size = 0;
	else
		size = (uint32_t)MIN((uint64_t)in.size, (uint64_t)len - in.offset);
	if (size) {
		ret = block_node_pread(fe->common.node, data, size, in.offset);
		if (ret < 0)
			return -ret;
	}
	rep->bytes = size;
	fexp_reply_body(rep, data, size);
	return 0;
}

static int fexp_op_write(struct fuse_export *fe, const struct fexp_request *req,
			  struct fexp_reply *rep)
{
	struct block_node *bs = fe->common.node;
	struct fuse_write_out *out = &rep->u.write;
	struct fuse_write_in in;
	uint64_t size;
	int64_t len;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	if (!fe->common.writable)
		return EROFS;	/* no write handle is ever opened; belt and braces */
	size = in.size;
	if (size > FUSE_EXPORT_MAX_IO || in.offset > (uint64_t)INT64_MAX - size)
		return EINVAL;
	len = block_node_length(bs);
	if (len < 0)
		return (int)-len;
	if (in.offset + size > (uint64_t)len) {
		if (fe->common.growable) {
			ret = fuse_export_resize(fe, in.offset + size, true);
			if (ret < 0)
				return -ret;
		} else if (in.offset >= (uint64_t)len) {
			/* No room past the end of a fixed-size export (QEMU 10+; 7.2 said EIO). */
			return ENOSPC;
		} else {
			/* A short write up to EOF. */
			size = (uint64_t)len - in.offset;
		}
	}
	if (size) {
		ret = block_node_pwrite(bs, req->data, size, in.offset);
		if (ret == 0 && fe->writethrough)
			ret = block_node_flush(bs);
		if (ret < 0)
			return -ret;
	}
	rep->bytes = size;
	memset(out, 0, sizeof(*out));
	out->size = (uint32_t)size;
	fexp_reply_body(rep, out, sizeof(*out));
	return 0;
}

static int fuse_export_fallocate(struct fuse_export *fe, uint64_t offset, uint64_t length,
				 uint32_t mode)
{
	struct block_node *bs = fe->common.node;
	int64_t len;
	int ret;

	if (!fe->common.writable)
		return -EROFS;
	if (offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset)
		return -EFBIG;
	len = block_node_length(bs);
	if (len < 0)
		return (int)len;
	if (mode & FALLOC_FL_KEEP_SIZE) {
		if (offset >= (uint64_t)len)
			length = 0;
		else
			length = MIN(length, (uint64_t)len - offset);
	}

	if (mode == 0) {
		/* Only growing at EOF can be done (by truncating). */
		if (offset < (uint64_t)len)
			return -EOPNOTSUPP;
		ret = fuse_export_resize(fe, offset + length, true);
		if (ret < 0 || length == 0)
			return ret;
		/* Allocate the new range, as QEMU's PREALLOC_MODE_FALLOC. */
		return block_node_write_zeroes(bs, offset, length, 0);
	}
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (!(mode & FALLOC_FL_KEEP_SIZE))
			return -EINVAL;
		/*
		 * Unlike qsd 7.2 (QEMU #1507), the range must read back as
		 * zeroes afterwards: write_zeroes guarantees that.
		 */
		if (length == 0)
			return 0;
		ret = block_node_write_zeroes(bs, offset, length, BLOCK_ZERO_MAY_UNMAP);
		return ret == -ENOTSUP ? -EOPNOTSUPP : ret;
	}
	if (mode & FALLOC_FL_ZERO_RANGE) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + length > (uint64_t)len) {
			ret = fuse_export_resize(fe, offset + length, true);
			if (ret < 0)
				return ret;
		}
		if (length == 0)
			return 0;
		ret = block_node_write_zeroes(bs, offset, length, 0);
		return ret == -ENOTSUP ? -EOPNOTSUPP : ret;
	}
	return -EOPNOTSUPP;
}

static int fexp_op_fallocate(struct fuse_export *fe, const struct fexp_request *req,
			      struct fexp_reply *rep)
{
	struct fuse_fallocate_in in;
	int ret;

	memcpy(&in, req->arg, sizeof(in));
	ret = fuse_export_fallocate(fe, in.offset, in.length, in.mode);
	if (ret == 0 && fe->writethrough)
		ret = block_node_flush(fe->common.node);
	(void)rep;
	return ret < 0 ? -ret : 0;
}

/* SEEK_DATA/SEEK_HOLE from block status, with qsd's EOF semantics. */
static int64_t fuse_export_lseek(struct fuse_export *fe, uint64_t offset, uint32_t whence)
{
	struct block_node *bs = fe->common.node;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	for (;;) {
		int64_t len = block_node_length(bs);
		uint64_t pnum = 0;
		int ret;

		if (len < 0)
			return len;
		if (offset >= (uint64_t)len) {
			/* A hole at EOF; nothing (ENXIO) beyond it. */
			if (offset > (uint64_t)len || whence == SEEK_DATA)
				return -ENXIO;
			return (int64_t)offset;
		}
		ret = block_node_block_status(bs, offset, (uint64_t)len - offset, &pnum);
		if (ret < 0)
			return ret;
		if (ret & BLOCK_STATUS_DATA) {
			if (whence == SEEK_DATA)
				return (int64_t)offset;
		} else if (whence == SEEK_HOLE) {
			return (int64_t)offset;
		}
		if (pnum == 0)
			return -ENXIO;	/* a driver that makes no progress */
		offset += pnum;
	}
}

static int fexp_op_lseek(struct fuse_export *fe, const struct fexp_request *req,
			  struct fexp_reply *rep)
{
	struct fuse_lseek_out *out = &rep->u.lseek;
	struct fuse_lseek_in in;
	int64_t ret;

	memcpy(&in, req->arg, sizeof(in));
	ret = fuse_export_lseek(fe, in.offset, in.whence);
	if (ret < 0)
		return (int)-ret;
	memset(out, 0, sizeof(*out));
	out->offset = (uint64_t)ret;
	fexp_reply_body(rep, out, sizeof(*out));
	return 0;
}

static int fexp_op_statfs(struct fuse_export *fe, const struct fexp_request *req,
			   struct fexp_reply *rep)
{
	struct fuse_statfs_out *out = &rep->u.statfs;
	size_t outlen = sizeof(*out);

	/* What libfuse answers for a file system without statfs (as qsd). */
	(void)req;
	memset(out, 0, sizeof(*out));
	out->st.bsize = 512;
	out->st.namelen = 255;
	if (fe->proto_minor < 4)
		outlen = FUSE_COMPAT_STATFS_SIZE;
	fexp_reply_body(rep, out, outlen);
	return 0;
}

/* Register the backing file with the kernel (after INIT agreed to it). */
static void fuse_export_backing_open(struct fuse_export *fe, int fd)
{
	struct exportd_fuse_backing_map map;
	int id;

	memset(&map, 0, sizeof(map));
	map.fd = fe->pt_fd;
	id = ioctl(fd, EXPORTD_FUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id <= 0) {
		int err = id < 0 ? errno : EINVAL;

		fuse_export_set_reason(fe, FUSE_PATH_USERSPACE,
				       "the kernel refused the backing file "
				       "(FUSE_DEV_IOC_BACKING_OPEN: %s)", strerror(err));
		log_warnx("export '%s': passthrough unavailable: %s", fe->common.id,
			  fe->data_path_reason);
		return;
	}
	fe->backing_id = id;
	fe->backing_dev_fd = fd;
	if (fe->pt_writes)
		fuse_export_set_reason(fe, FUSE_PATH_PASSTHROUGH,
				       "the kernel serves reads and writes from the image "
				       "directly (growable: a write past the end grows the "
				       "image, as it would here)");
	else if (fe->common.writable)
		fuse_export_set_reason(fe, FUSE_PATH_PASSTHROUGH,
				       "the kernel serves reads from the image directly; "
				       "handles open for writing are served in userspace (a "
				       "passthrough write past the end would grow the image)");
	else
		fuse_export_set_reason(fe, FUSE_PATH_PASSTHROUGH,
				       "the kernel serves reads from the image directly");
}

int fexp_op_init(struct fuse_export *fe, int fd, const struct fexp_request *req)
{
	struct fuse_init_params p = {
		.max_write = FUSE_EXPORT_MAX_IO,
		.max_pages = FUSE_EXPORT_MAX_IO / FUSE_EXPORT_PAGE,
		.max_background = FUSE_EXPORT_MAX_BACKGROUND,
	};
	struct exportd_fuse_init_out out;
	struct fuse_init_result res;
	int len, ret;

	pthread_mutex_lock(&fe->lock);
	p.want_passthrough = fe->pt_wanted;
	p.want_uring = fe->uring_wanted;
	len = fuse_proto_init(req, &p, &out, &res);
	if (len < 0) {
		pthread_mutex_unlock(&fe->lock);
		fuse_proto_reply_err(fd, req->unique, EPROTO);
		return -EPROTO;
	}
	fe->proto_minor = res.minor;
	ret = fuse_proto_reply(fd, req->unique, &out, (size_t)len);
	/*
	 * The kernel took the reply during write(), so it knows about
	 * passthrough now.  Other loops may already have an OPEN; they
	 * wait on lock for the outcome.  The io_uring queues are set up by
	 * create(), which waits for this.
	 */
	if (ret == 0 && !res.retry) {
		if (fe->pt_wanted) {
			if (res.passthrough)
				fuse_export_backing_open(fe, fd);
			else
				fuse_export_set_reason(fe, FUSE_PATH_USERSPACE,
						       "the kernel did not offer FUSE_PASSTHROUGH "
						       "(needs Linux 6.9+)");
		}
		fe->uring_agreed = res.uring;
		fe->initialized = true;
		pthread_cond_broadcast(&fe->cond);
	}
	pthread_mutex_unlock(&fe->lock);
	return 0;
}

void fexp_serve(struct fuse_export *fe, const struct fexp_request *req,
		       struct fexp_reply *rep)
{
	char opbuf[16];
	int err;

	rep->none = false;
	rep->bytes = 0;
	rep->body = NULL;
	rep->len = 0;
	/* Each case: 0 (the reply is in rep) or the errno to reply with. */
	switch (req->opcode) {
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:	/* requests are short; let them finish */
		rep->none = true;
		err = 0;
		break;
	case FUSE_LOOKUP:	/* the root is the only node */
		err = ENOENT;
		break;
	case FUSE_GETATTR:
		err = fuse_export_reply_attr(fe, rep);
		break;
	case FUSE_SETATTR:
		err = fexp_op_setattr(fe, req, rep);
		break;
	case FUSE_OPEN:
		err = fexp_op_open(fe, req, rep);
		break;
	case FUSE_RELEASE:
		err = fexp_op_release(fe, req, rep);
		break;
	case FUSE_READ:
		err = fexp_op_read(fe, req, rep);
		break;
	case FUSE_WRITE:
		err = fexp_op_write(fe, req, rep);
		break;
	case FUSE_FALLOCATE:
		err = fexp_op_fallocate(fe, req, rep);
		break;
	case FUSE_FLUSH:	/* close(): qsd flushes there too */
	case FUSE_FSYNC:
		err = -block_node_flush(fe->common.node);
		break;
	case FUSE_LSEEK:
		err = fexp_op_lseek(fe, req, rep);
		break;
	case FUSE_STATFS:
		err = fexp_op_statfs(fe, req, rep);
		break;
	case FUSE_DESTROY:
		err = 0;
		break;
	default:
		/* INIT included: only /dev/fuse carries it (fuse/channel.c). */
		log_debug("export '%s': %s not implemented", fe->common.id,
			  fuse_proto_opname(req->opcode, opbuf, sizeof(opbuf)));
		err = ENOSYS;
		break;
	}
	rep->err = err;
	if (err) {
		rep->body = NULL;
		rep->len = 0;
	}
}

json_t *fuse_export_stats(struct fuse_export *fe)
{
	struct export_stats_totals t;

	if (!fe->common.stats)
		return json_object();
	export_stats_sum(fe->common.stats, &t);
	return export_stats_ops_json(&t);
}
