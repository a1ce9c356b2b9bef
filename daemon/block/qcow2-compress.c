/*
 * block/qcow2-compress.c: inflate one compressed qcow2 cluster.  The
 * image's compression type is zlib (raw deflate, 4 KiB window, as
 * `qemu-img convert -c` writes it) or zstd (one zstd frame).  The
 * compressed bytes may be followed by unrelated bytes up to the end of the
 * last 512-byte sector, so decompression stops once a whole cluster has
 * been produced; producing less is corruption.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#if HAVE_ZLIB
#include <zlib.h>
#endif
#if HAVE_ZSTD
#include <zstd.h>
#endif

#include "block/qcow2.h"

#if HAVE_ZLIB
static int qcow2_inflate_zlib(const void *src, size_t src_len, void *dst, size_t dst_len)
{
	z_stream z;
	int ret;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -12) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)src;
	z.avail_in = (uInt)src_len;
	z.next_out = dst;
	z.avail_out = (uInt)dst_len;
	ret = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0)
		return 0;
	return -EIO;
}
#endif

#if HAVE_ZSTD
static int qcow2_inflate_zstd(const void *src, size_t src_len, void *dst, size_t dst_len)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	ZSTD_inBuffer in = { src, src_len, 0 };
	ZSTD_outBuffer out = { dst, dst_len, 0 };
	int ret = -EIO;

	if (!dctx)
		return -ENOMEM;
	while (out.pos < out.size) {
		size_t in_pos = in.pos, out_pos = out.pos;
		size_t r = ZSTD_decompressStream(dctx, &out, &in);

		if (ZSTD_isError(r))
			break;
		if (in.pos == in_pos && out.pos == out_pos)
			break;	/* no progress: truncated or garbage */
		if (out.pos == out.size) {
			ret = 0;
			break;
		}
		if (in.pos == in.size)
			break;	/* input used up before a whole cluster */
	}
	ZSTD_freeDCtx(dctx);
	return ret;
}
#endif

int qcow2_decompress(int type, const void *src, size_t src_len, void *dst, size_t dst_len)
{
	switch (type) {
	case QCOW2_COMPRESSION_ZLIB:
#if HAVE_ZLIB
		return qcow2_inflate_zlib(src, src_len, dst, dst_len);
#else
		return -ENOTSUP;
#endif
	case QCOW2_COMPRESSION_ZSTD:
#if HAVE_ZSTD
		return qcow2_inflate_zstd(src, src_len, dst, dst_len);
#else
		return -ENOTSUP;
#endif
	default:
		return -ENOTSUP;
	}
}
