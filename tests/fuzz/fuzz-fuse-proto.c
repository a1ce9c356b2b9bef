/*
 * fuzz-fuse-proto.c: libFuzzer target for the FUSE request parser and
 * INIT negotiation: whatever bytes come off /dev/fuse, parsing either
 * rejects them or yields a request whose argument struct and WRITE data
 * lie inside the buffer (ASan checks every access made here).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fexp_request req;
	const char *why;
	uint8_t *buf;
	volatile uint8_t sink = 0;

	/* A copy of exactly size bytes, so that ASan sees any overrun. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (fuse_proto_parse(buf, size, &req, &why) == 0) {
		const uint8_t *arg = req.arg;

		for (size_t i = 0; i < req.arglen; i++)
			sink ^= arg[i];
		if (req.data) {
			const uint8_t *d = req.data;

			for (size_t i = 0; i < req.datalen; i++)
				sink ^= d[i];
		}
		if (req.opcode == FUSE_INIT) {
			struct fuse_init_params p = {
				.max_write = 1 << 20, .max_pages = 256, .max_background = 512,
				.want_passthrough = true,
			};
			struct exportd_fuse_init_out out;
			struct fuse_init_result res;

			(void)fuse_proto_init(&req, &p, &out, &res);
		}
	}
	(void)sink;
	free(buf);
	return 0;
}
