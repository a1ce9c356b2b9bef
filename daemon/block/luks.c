/*
 * block/luks.c: the luks format driver: a LUKS1 image (as `qemu-img
 * create -f luks` makes it) on its file child, decrypted on read and
 * encrypted on write, with QEMU's option `key-secret` naming the secret
 * that holds the passphrase.
 *
 * The payload starts payload_offset sectors into the file; sector n of
 * the payload is encrypted with IV n.  Requests that do not cover whole
 * sectors read and decrypt the edge sectors, merge and re-encrypt them:
 * such read-modify-write requests take the node's lock exclusively, whole
 * sector writes take it shared, so a partial write cannot put back old
 * bytes over a neighbour's concurrent write.
 *
 * What LUKS promises on a crash: nothing beyond the file below it.  There
 * is no metadata to keep consistent after open (the header is never
 * written), so a sector is either the old or the new ciphertext as the
 * file system leaves it, and everything flushed before the crash reads
 * back.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "block/luks.h"
#include "object/secret.h"
#include "util.h"

struct luks_state {
	struct crypto_cipher *cipher;
	uint64_t payload;	/* bytes */
	uint64_t length;	/* bytes of payload, whole sectors */
	pthread_rwlock_t rmw_lock;
	bool lock_ready;
};

static struct luks_state *luks_state(struct block_node *bs)
{
	return bs->opaque;
}

static int luks_read_file(void *opaque, void *buf, size_t len, uint64_t offset)
{
	return block_node_pread(opaque, buf, len, offset);
}

/*
 * The passphrase named by `key-secret` (QEMU's option name, with prefix
 * "encrypt." under qcow2), unlocked against header h read from `file`.
 */
struct crypto_cipher *luks_open_with_secret(const struct luks_header *h,
					    const char *secret_id, const char *optprefix,
					    luks_read_fn *read, void *opaque,
					    const char *name, struct error **errp)
{
	struct crypto_cipher *cipher;
	uint8_t *pass;
	size_t passlen;

	if (!secret_id) {
		error_setg(errp, "Parameter '%skey-secret' is required for cipher",
			   optprefix);
		return NULL;
	}
	if (secret_lookup(secret_id, &pass, &passlen, errp) < 0)
		return NULL;
	cipher = luks_unlock(h, pass, passlen, read, opaque, name, errp);
	secret_free(pass, passlen);
	return cipher;
}

static int luks_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct luks_state *s = luks_state(bs);
	uint8_t hdr[LUKS_HEADER_LEN];
	struct luks_header h;
	int64_t file_len;
	int ret;

	bs->file = block_node_open_child(bs, json_object_get(options, "file"), "file",
					 bs->read_only, bs->open_flags, errp);
	if (!bs->file)
		return -1;
	file_len = block_node_length(bs->file);
	if (file_len < 0) {
		error_setg_errno(errp, (int)-file_len, "Could not get the size of '%s'",
				 bs->file->filename);
		goto fail;
	}
	memset(hdr, 0, sizeof(hdr));
	if (file_len >= LUKS_HEADER_LEN) {
		ret = block_node_pread(bs->file, hdr, sizeof(hdr), 0);
		if (ret < 0) {
			error_setg_errno(errp, -ret, "Unable to read LUKS header of '%s'",
					 bs->file->filename);
			goto fail;
		}
	}
	if (luks_header_parse(hdr, file_len < LUKS_HEADER_LEN ? (size_t)file_len :
			      sizeof(hdr), (uint64_t)file_len, &h, bs->file->filename,
			      errp) < 0)
		goto fail;
	s->payload = (uint64_t)h.payload_offset * CRYPTO_SECTOR_SIZE;
	if (s->payload > (uint64_t)file_len) {
		error_setg(errp, "LUKS payload of '%s' starts at byte %" PRIu64 ", past the "
			   "end of the file (%" PRId64 " bytes)", bs->file->filename,
			   s->payload, file_len);
		goto fail;
	}
	s->cipher = luks_open_with_secret(&h, json_string_value(json_object_get(options,
				"key-secret")), "", luks_read_file, bs->file,
				bs->file->filename, errp);
	if (!s->cipher)
		goto fail;
	/* A torn last sector cannot be decrypted: the payload is whole sectors. */
	s->length = ((uint64_t)file_len - s->payload) & ~(uint64_t)(CRYPTO_SECTOR_SIZE - 1);
	pthread_rwlock_init(&s->rmw_lock, NULL);
	s->lock_ready = true;
	return 0;

fail:
	crypto_cipher_free(s->cipher);
	s->cipher = NULL;
	block_node_unref(bs->file);
	bs->file = NULL;
	return -1;
}

static void luks_close(struct block_node *bs)
{
	struct luks_state *s = luks_state(bs);

	crypto_cipher_free(s->cipher);
	s->cipher = NULL;
	if (s->lock_ready)
		pthread_rwlock_destroy(&s->rmw_lock);
	s->lock_ready = false;
	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
}

static void luks_query(struct block_node *bs, json_t *info)
{
	(void)bs;
	json_object_set_new(info, "encrypted", json_true());
}

static int64_t luks_get_length(struct block_node *bs)
{
	return (int64_t)__atomic_load_n(&luks_state(bs)->length, __ATOMIC_ACQUIRE);
}

static int64_t luks_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

/* Read and decrypt whole sectors [start, start + len) of the payload. */
static int luks_read_sectors(struct block_node *bs, uint8_t *buf, size_t len,
			     uint64_t start)
{
	struct luks_state *s = luks_state(bs);
	int ret = block_node_pread(bs->file, buf, len, s->payload + start);

	if (ret < 0)
		return ret;
	return crypto_cipher_decrypt(s->cipher, start / CRYPTO_SECTOR_SIZE, buf, len);
}

static int luks_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	uint64_t start = offset & ~(uint64_t)(CRYPTO_SECTOR_SIZE - 1);
	uint64_t end = (offset + len + CRYPTO_SECTOR_SIZE - 1) &
		       ~(uint64_t)(CRYPTO_SECTOR_SIZE - 1);
	uint8_t *bounce;
	int ret;

	if (start == offset && end == offset + len)
		return luks_read_sectors(bs, buf, len, offset);
	bounce = xmalloc(end - start);
	ret = luks_read_sectors(bs, bounce, end - start, start);
	if (ret == 0)
		memcpy(buf, bounce + (offset - start), len);
	crypto_wipe(bounce, end - start);
	free(bounce);
	return ret;
}

static int luks_pwrite(struct block_node *bs, const void *buf, size_t len,
		       uint64_t offset)
{
	struct luks_state *s = luks_state(bs);
	uint64_t start = offset & ~(uint64_t)(CRYPTO_SECTOR_SIZE - 1);
	uint64_t end = (offset + len + CRYPTO_SECTOR_SIZE - 1) &
		       ~(uint64_t)(CRYPTO_SECTOR_SIZE - 1);
	bool partial = start != offset || end != offset + len;
	size_t n = end - start;
	uint8_t *bounce = xmalloc(n);
	int ret = 0;

	if (partial)
		pthread_rwlock_wrlock(&s->rmw_lock);
	else
		pthread_rwlock_rdlock(&s->rmw_lock);
	if (start != offset)
		ret = luks_read_sectors(bs, bounce, CRYPTO_SECTOR_SIZE, start);
	if (ret == 0 && end != offset + len && (end - CRYPTO_SECTOR_SIZE > start ||
						start == offset))
		ret = luks_read_sectors(bs, bounce + n - CRYPTO_SECTOR_SIZE,
					CRYPTO_SECTOR_SIZE, end - CRYPTO_SECTOR_SIZE);
	if (ret == 0) {
		memcpy(bounce + (offset - start), buf, len);
		ret = crypto_cipher_encrypt(s->cipher, start / CRYPTO_SECTOR_SIZE, bounce, n);
	}
	if (ret == 0)
		ret = block_node_pwrite(bs->file, bounce, n, s->payload + start);
	pthread_rwlock_unlock(&s->rmw_lock);
	crypto_wipe(bounce, n);
	free(bounce);
	return ret;
}

/*
 * Resize the payload: the file becomes payload + length bytes.  Grown
 * sectors hold no ciphertext yet (the file reads zeroes there, which
 * decrypt to noise), so they are written with encrypted zeroes: a grown
 * export reads zeroes, as a grown file does.  QEMU leaves the noise.
 */
static int luks_truncate(struct block_node *bs, uint64_t length)
{
	struct luks_state *s = luks_state(bs);
	uint64_t old;
	int ret;

	if (length % CRYPTO_SECTOR_SIZE)
		return -EINVAL;
	if (length > INT64_MAX - s->payload)
		return -EFBIG;
	pthread_rwlock_wrlock(&s->rmw_lock);
	old = __atomic_load_n(&s->length, __ATOMIC_ACQUIRE);
	ret = block_node_truncate(bs->file, s->payload + length);
	if (ret == 0 && length > old) {
		size_t chunk = (size_t)MIN(length - old, (uint64_t)(1 << 20));
		uint8_t *zero = xmalloc(chunk);

		for (uint64_t off = old; ret == 0 && off < length; off += chunk) {
			size_t n = (size_t)MIN((uint64_t)chunk, length - off);

			memset(zero, 0, n);
			ret = crypto_cipher_encrypt(s->cipher, off / CRYPTO_SECTOR_SIZE, zero, n);
			if (ret == 0)
				ret = block_node_pwrite(bs->file, zero, n, s->payload + off);
		}
		free(zero);
	}
	if (ret == 0)
		__atomic_store_n(&s->length, length, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&s->rmw_lock);
	return ret;
}

static int luks_flush(struct block_node *bs)
{
	return block_node_flush(bs->file);
}

const struct block_driver block_driver_luks = {
	.name = "luks",
	.is_format = true,
	.state_size = sizeof(struct luks_state),
	.open = luks_open,
	.close = luks_close,
	.query = luks_query,
	.get_length = luks_get_length,
	.get_allocated_size = luks_get_allocated_size,
	.pread = luks_pread,
	.pwrite = luks_pwrite,
	.flush = luks_flush,
	.truncate = luks_truncate,
};
