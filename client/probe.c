/*
 * probe.c: format probing for `exportctl add --format auto` (see probe.h).
 * The magic is the first field of the qcow2 header (docs/interop/qcow2.txt:
 * bytes 0-3, "QFI\xfb"); the version field is left to the daemon, which
 * gives a better error for an unsupported version than a guess here could.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

#define QCOW2_MAGIC "QFI\xfb"

const char *probe_format_buf(const unsigned char *buf, size_t len)
{
	if (len >= 4 && !memcmp(buf, QCOW2_MAGIC, 4))
		return "qcow2";
	return "raw";
}

const char *probe_format_file(const char *path)
{
	unsigned char buf[4];
	size_t got = 0;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while (got < sizeof(buf)) {
		ssize_t n = pread(fd, buf + got, sizeof(buf) - got, got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			errno = saved;
			return NULL;
		}
		if (n == 0)
			break;
		got += n;
	}
	close(fd);
	return probe_format_buf(buf, got);
}
