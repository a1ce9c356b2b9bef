/*
 * block/qcow2-crypt.c: LUKS encryption inside a qcow2 image
 * (`encrypt.format=luks`), as QEMU writes it: a LUKS1 header in the
 * clusters the crypto header extension points at, and every data cluster
 * encrypted sector by sector with IVs counted from the cluster's host
 * offset (QEMU's crypt_physical_offset), so that two clusters never share
 * an IV.  Zero and unallocated clusters hold no ciphertext and read as
 * zeroes; compressed clusters are not encrypted (QEMU writes none).
 *
 * The old AES-CBC method (`encrypt.format=aes`, crypt_method 1) is refused
 * by the header parser with QEMU's message.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "block/luks.h"
#include "block/qcow2.h"
#include "util.h"

/* LUKS header bytes at offset from the start of the crypto area. */
static int qcow2_crypt_read_area(void *opaque, void *buf, size_t len, uint64_t offset)
{
	struct qcow2 *s = opaque;

	if (offset > s->hdr.crypto_length || len > s->hdr.crypto_length - offset)
		return -EIO;
	return block_node_pread(s->bs->file, buf, len, s->hdr.crypto_offset + offset);
}

int qcow2_crypt_open(struct qcow2 *s, json_t *options, struct error **errp)
{
	json_t *enc = json_object_get(options, "encrypt");
	const char *format = json_string_value(json_object_get(enc, "format"));
	const char *have = s->hdr.crypt_method == QCOW2_CRYPT_LUKS ? "luks" : "none";
	uint8_t buf[LUKS_HEADER_LEN];
	struct luks_header h;
	int ret;

	if (format && strcmp(format, have) != 0) {
		error_setg(errp, "Header reported '%s' encryption format but options "
			   "specify '%s'", have, format);
		return -1;
	}
	if (s->hdr.crypt_method != QCOW2_CRYPT_LUKS)
		return 0;
	if (s->hdr.size % CRYPTO_SECTOR_SIZE) {
		error_setg(errp, "Image '%s' is corrupt: an encrypted image's size must be "
			   "a multiple of %d bytes", s->name, CRYPTO_SECTOR_SIZE);
		return -1;
	}
	if (s->hdr.crypto_length < LUKS_HEADER_LEN) {
		error_setg(errp, "Image '%s' is corrupt: encryption header of %llu bytes "
			   "(a LUKS header needs %d)", s->name,
			   (unsigned long long)s->hdr.crypto_length, LUKS_HEADER_LEN);
		return -1;
	}
	ret = qcow2_crypt_read_area(s, buf, sizeof(buf), 0);
	if (ret < 0) {
		error_setg_errno(errp, -ret, "Unable to read the encryption header of '%s'",
				 s->name);
		return -1;
	}
	if (luks_header_parse(buf, sizeof(buf), s->hdr.crypto_length, &h, s->name,
			      errp) < 0)
		return -1;
	s->crypto = luks_open_with_secret(&h, json_string_value(json_object_get(enc,
					  "key-secret")), "encrypt.", qcow2_crypt_read_area,
					  s, s->name, errp);
	if (!s->crypto)
		return -1;
	pthread_rwlock_init(&s->crypt_rmw_lock, NULL);
	return 0;
}

void qcow2_crypt_close(struct qcow2 *s)
{
	if (!s->crypto)
		return;
	crypto_cipher_free(s->crypto);
	s->crypto = NULL;
	pthread_rwlock_destroy(&s->crypt_rmw_lock);
}

int qcow2_crypt_decrypt(struct qcow2 *s, uint64_t host, uint8_t *buf, uint64_t len)
{
	if (host % CRYPTO_SECTOR_SIZE || len % CRYPTO_SECTOR_SIZE)
		return -EIO;
	return crypto_cipher_decrypt(s->crypto, host / CRYPTO_SECTOR_SIZE, buf, len);
}

int qcow2_crypt_encrypt(struct qcow2 *s, uint64_t host, uint8_t *buf, uint64_t len)
{
	if (host % CRYPTO_SECTOR_SIZE || len % CRYPTO_SECTOR_SIZE)
		return -EIO;
	return crypto_cipher_encrypt(s->crypto, host / CRYPTO_SECTOR_SIZE, buf, len);
}
