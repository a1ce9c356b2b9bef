/*
 * probe.c: format probing for `exportctl add --format auto` (see probe.h).
 * Beyond qcow2, the magics of vdi, vpc, vhdx and vmdk (below).
 * The fields read are those of the qcow2 header (docs/interop/qcow2.txt):
 * bytes 0-3 the magic "QFI\xfb", 4-7 the version, 8-15 the offset of the
 * backing file name and 16-19 its length, and in version 3 bytes 72-79
 * the incompatible features, whose bit 2 is the external data file.  The
 * rest is left to the daemon, which gives better errors for a corrupt or
 * unsupported header than a guess here could.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"

#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_HEADER_V3_END	80	/* through incompatible_features */
#define QCOW2_INCOMPAT_DATA_FILE (1ULL << 2)
#define QCOW2_MAX_BACKING_NAME	1023	/* as QEMU and the daemon */

/*
 * The other formats, by the magic QEMU's probes look for: VDI's signature
 * 0xbeda107f (little endian) at 0x40 of a 512-byte header, and VHD's
 * footer copy "conectix" at 0 (a fixed VHD has its footer only at the end,
 * and QEMU probes it as raw, as here), VHDX's "vhdxfile" identifier, a
 * sparse VMDK extent's "KDMV" at 0
 * and a VMDK text descriptor's first line.  A descriptor is nothing but
 * names of extent files, so it is reported for the caller to refuse.
 */
#define VDI_SIGNATURE_OFF	0x40
#define VDI_HEADER_SIZE		512
#define VMDK_DESCRIPTOR_MARK	"# Disk DescriptorFile"

const char *probe_format_buf(const unsigned char *buf, size_t len)
{
	if (len >= 4 && !memcmp(buf, QCOW2_MAGIC, 4))
		return "qcow2";
	/* LUKS1 or LUKS2: a wrong guess only costs a clear error at unlock. */
	if (len >= 6 && !memcmp(buf, "LUKS\xba\xbe", 6))
		return "luks";
	if (len >= VDI_HEADER_SIZE && !memcmp(buf + VDI_SIGNATURE_OFF, "\x7f\x10\xda\xbe", 4))
		return "vdi";
	if (len >= 8 && !memcmp(buf, "conectix", 8))
		return "vpc";
	if (len >= 8 && !memcmp(buf, "vhdxfile", 8))
		return "vhdx";
	if (len >= 4 && !memcmp(buf, "KDMV", 4))
		return "vmdk";
	if (len >= sizeof(VMDK_DESCRIPTOR_MARK) - 1 &&
	    !memcmp(buf, VMDK_DESCRIPTOR_MARK, sizeof(VMDK_DESCRIPTOR_MARK) - 1))
		return "vmdk";
	return "raw";
}

static uint64_t be_load(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

/* Read up to len bytes at off: the count read, or -1 with errno. */
static ssize_t read_at(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The files a qcow2 header names besides the image itself. */
static int probe_qcow2_names(int fd, const unsigned char *h, size_t len,
			     struct probe_info *pi)
{
	uint64_t off, size;
	ssize_t n;

	if (len >= QCOW2_HEADER_V3_END && be_load(h + 4, 4) >= 3 &&
	    (be_load(h + 72, 8) & QCOW2_INCOMPAT_DATA_FILE))
		pi->data_file = true;
	if (len < 20)
		return 0;
	off = be_load(h + 8, 8);
	size = be_load(h + 16, 4);
	if (!off)
		return 0;
	/* A name the daemon would call corrupt is still a name: show what fits. */
	if (size == 0 || size > QCOW2_MAX_BACKING_NAME)
		size = QCOW2_MAX_BACKING_NAME;
	if (off > INT64_MAX - size) {
		pi->backing_file = strdup("(unreadable)");
		return pi->backing_file ? 0 : -1;
	}
	pi->backing_file = calloc(1, size + 1);
	if (!pi->backing_file)
		return -1;
	n = read_at(fd, pi->backing_file, size, (off_t)off);
	if (n <= 0 || !pi->backing_file[0]) {
		free(pi->backing_file);
		pi->backing_file = strdup("(unreadable)");
		return pi->backing_file ? 0 : -1;
	}
	return 0;
}

int probe_image(const char *path, struct probe_info *pi)
{
	unsigned char buf[VDI_HEADER_SIZE];
	struct stat st;
	ssize_t got;
	int fd, saved;

	memset(pi, 0, sizeof(*pi));
	/* O_NONBLOCK: a FIFO must not hang us before fstat can tell. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	got = read_at(fd, buf, sizeof(buf), 0);
	if (got < 0)
		goto fail;
	pi->format = probe_format_buf(buf, (size_t)got);
	if (!strcmp(pi->format, "qcow2") && probe_qcow2_names(fd, buf, (size_t)got, pi) < 0)
		goto fail;
	if (!strcmp(pi->format, "vmdk") && memcmp(buf, "KDMV", 4))
		pi->vmdk_descriptor = true;

	close(fd);
	return 0;

fail:
	saved = errno;
	close(fd);
	probe_info_clear(pi);
	errno = saved;
	return -1;
}

void probe_info_clear(struct probe_info *pi)
{
	free(pi->backing_file);
	memset(pi, 0, sizeof(*pi));
}
