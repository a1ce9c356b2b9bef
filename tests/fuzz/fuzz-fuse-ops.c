/*
 * fuzz-fuse-ops.c: libFuzzer target for the FUSE request handlers: each
 * input is one request, handled by fuse_export_handle() against a real
 * 1 MiB file node of a writable export, replies going to a socketpair
 * that stands in for /dev/fuse.  Whatever the request, the handler must
 * answer it, ignore it or end the channel; never crash, never write
 * outside the image's bounds, never grow a fixed-size image.
 */
#include "config.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "fuse/internal.h"
#include "fuse/proto.h"
#include "log.h"
#include "util.h"

#define IMG_SIZE (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuse_export *fe;
static int peer = -1;
static char *inbuf;
static char img_dir[64], img_path[80];

static void fuzz_cleanup(void)
{
	unlink(img_path);
	rmdir(img_dir);
}

static void fuzz_setup(void)
{
	char dir[] = "/tmp/exportd-fuzz-ops-XXXXXX";
	json_t *opts;
	struct error *err = NULL;
	int sv[2], fd;
	void *p;

	log_set_level(LOG_LEVEL_ERROR);
	if (!mkdtemp(dir))
		abort();
	snprintf(img_dir, sizeof(img_dir), "%s", dir);
	snprintf(img_path, sizeof(img_path), "%s/img", dir);
	atexit(fuzz_cleanup);
	fd = open(img_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, IMG_SIZE) < 0)
		abort();
	close(fd);
	opts = json_pack("{s:s, s:s, s:s}", "driver", "file", "node-name", "f",
			 "filename", img_path);
	if (blockdev_add(opts, &err) < 0)
		abort();
	json_decref(opts);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		abort();
	fe = xcalloc(1, sizeof(*fe));
	fe->common.id = xstrdup("fuzz");
	fe->common.node = block_node_find("f");
	fe->common.writable = true;
	fe->stop_fd = -1;
	fe->pt_fd = -1;
	atomic_init(&fe->st_mode, S_IFREG | 0600);
	pthread_mutex_init(&fe->lock, NULL);
	pthread_mutex_init(&fe->resize_lock, NULL);
	pthread_cond_init(&fe->cond, NULL);
	fe->num_threads = 1;
	/* struct fuse_thread is cache-line aligned; counting is fuzzed too. */
	if (posix_memalign(&p, 64, sizeof(*fe->threads)))
		abort();
	memset(p, 0, sizeof(*fe->threads));
	fe->threads = p;
	fe->common.stats = export_stats_new(1);
	fe->threads[0].fe = fe;
	fe->threads[0].fd = sv[0];
	if (posix_memalign((void **)&fe->threads[0].buf, 4096, 4096 + (1 << 20)))
		abort();
	peer = sv[1];
	inbuf = xmalloc(FUSE_PROTO_WRITE_HEADER + (1 << 20));
}

/*
 * Resizes are legitimate requests (SETATTR size, FALLOCATE at EOF grows
 * and allocates, as in QEMU), but a fuzzed size would fill the disk of the
 * machine, which is not what is under test: inputs that would make the
 * image larger than this are skipped.
 */
#define FUZZ_MAX_RESIZE (64u << 20)

static bool fuzz_resizes_too_far(const char *buf, size_t size)
{
	const struct fuse_in_header *h = (const void *)buf;
	const char *arg = buf + sizeof(*h);
	size_t argsize = size - sizeof(*h);

	if (size < sizeof(*h))
		return false;
	if (h->opcode == FUSE_FALLOCATE && argsize >= sizeof(struct fuse_fallocate_in)) {
		struct fuse_fallocate_in in;

		memcpy(&in, arg, sizeof(in));
		return in.offset > FUZZ_MAX_RESIZE || in.length > FUZZ_MAX_RESIZE - in.offset;
	}
	if (h->opcode == FUSE_SETATTR && argsize >= sizeof(struct fuse_setattr_in)) {
		struct fuse_setattr_in in;

		memcpy(&in, arg, sizeof(in));
		return (in.valid & FATTR_SIZE) && in.size > FUZZ_MAX_RESIZE;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char reply[(1 << 20) + 4096];
	struct stat st;

	if (!fe)
		fuzz_setup();
	if (size > FUSE_PROTO_WRITE_HEADER + (1 << 20))
		return 0;
	memcpy(inbuf, data, size);
	if (fuzz_resizes_too_far(inbuf, size))
		return 0;
	(void)fuse_export_handle(&fe->threads[0], inbuf, size);
	while (recv(peer, reply, sizeof(reply), MSG_DONTWAIT) > 0)
		;
	/* A fixed-size export never changes its image's size by a write. */
	if (stat(img_path, &st) == 0 && st.st_size != IMG_SIZE) {
		/* SETATTR size and FALLOCATE may resize it: put it back. */
		if (truncate(img_path, IMG_SIZE) < 0)
			abort();
		block_node_truncate(fe->common.node, IMG_SIZE);
	}
	return 0;
}
