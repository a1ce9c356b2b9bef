/*
 * format-target.h: the body of the libFuzzer targets of the formats that
 * name no other file (fuzz-vdi.c, fuzz-vpc.c, fuzz-vmdk.c, fuzz-vhdx.c):
 * each defines FUZZ_DRIVER and includes this.  An input is an image file:
 * it goes into a memfd, is opened through the real file driver as a
 * FUZZ_DRIVER node, read (start, middle, end, odd offsets, block status),
 * then opened writable and written, zeroed and read again, which drives
 * allocation over corrupt tables.  Anything but a clean error is a bug;
 * so is an open that allocates far beyond the input's size (the ASan
 * allocation limit of `make fuzz` catches it).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block.h"
#include "rpc/error.h"
#include "log.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-" FUZZ_DRIVER, MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct block_node *fuzz_open(int fd, bool ro)
{
	char path[64];
	struct error *err = NULL;
	json_t *o;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	o = json_pack("{s:s, s:s, s:b, s:s, s:{s:s, s:s, s:s}}", "driver", FUZZ_DRIVER,
		      "node-name", "fuzz", "read-only", ro, "discard", "unmap",
		      "file", "driver", "file", "filename", path, "locking", "off");
	if (blockdev_add(o, &err) < 0) {
		error_free(err);
		json_decref(o);
		return NULL;
	}
	json_decref(o);
	return block_node_find("fuzz");
}

static void fuzz_close(void)
{
	struct error *err = NULL;

	if (blockdev_del("fuzz", &err) < 0) {
		fprintf(stderr, "blockdev-del failed: %s\n", err->msg);
		abort();
	}
}

static void fuzz_reads(struct block_node *bs, uint8_t *buf, size_t bufsize)
{
	int64_t len = block_node_length(bs);
	uint64_t offs[6];

	if (len <= 0)
		return;
	offs[0] = 0;
	offs[1] = (uint64_t)len / 2;
	offs[2] = (uint64_t)len > bufsize ? (uint64_t)len - bufsize : 0;
	offs[3] = (uint64_t)len / 3 + 511;
	offs[4] = (uint64_t)len / 7 * 3;
	offs[5] = (uint64_t)len - 1;
	for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
		uint64_t n, pnum;

		if (offs[i] >= (uint64_t)len)
			continue;
		n = MIN((uint64_t)bufsize, (uint64_t)len - offs[i]);
		block_node_pread(bs, buf, n, offs[i]);
		block_node_block_status(bs, offs[i], n, &pnum);
	}
}

static void fuzz_writes(struct block_node *bs, uint8_t *buf, size_t bufsize)
{
	int64_t len = block_node_length(bs);

	if (len <= 0)
		return;
	memset(buf, 0xa5, bufsize);
	block_node_pwrite(bs, buf, MIN((uint64_t)len, (uint64_t)bufsize), 0);
	block_node_pwrite(bs, buf, MIN((uint64_t)len - (uint64_t)len / 2, 4096),
			  (uint64_t)len / 2);
	block_node_pwrite(bs, buf, 1, (uint64_t)len - 1);
	block_node_write_zeroes(bs, 0, MIN((uint64_t)len, (uint64_t)bufsize / 2),
				BLOCK_ZERO_MAY_UNMAP);
	block_node_discard(bs, (uint64_t)len / 2, (uint64_t)len - (uint64_t)len / 2);
	block_node_flush(bs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[256 * 1024];
	static bool init;
	struct block_node *bs;
	int fd;

	if (!init) {
		log_init(true, LOG_LEVEL_ERROR);
		init = true;
	}
#ifdef FUZZ_REQUIRE_PREFIX
	/* Inputs that would name host files (a VMDK descriptor) are not fuzzed. */
	if (size < sizeof(FUZZ_REQUIRE_PREFIX) - 1 ||
	    memcmp(data, FUZZ_REQUIRE_PREFIX, sizeof(FUZZ_REQUIRE_PREFIX) - 1))
		return 0;
#endif
	fd = fuzz_memfd(data, size);
	if (fd < 0)
		return 0;
	bs = fuzz_open(fd, true);
	if (bs) {
		fuzz_reads(bs, buf, sizeof(buf));
		fuzz_close();
		bs = fuzz_open(fd, false);
		if (bs) {
			fuzz_writes(bs, buf, sizeof(buf));
			fuzz_reads(bs, buf, sizeof(buf));
			fuzz_close();
		}
	}
	close(fd);
	return 0;
}
