/*
 * block/luks-unlock.c: from a passphrase to the payload cipher of a LUKS1
 * image (block/luks.h).
 *
 * For each enabled key slot: derive the slot key with PBKDF2 over the
 * slot's salt, decrypt the slot's key material (key_bytes x 4000 stripes,
 * the payload's cipher and mode, IVs counted from sector 0 of the
 * material), merge the stripes back into a candidate master key (AF
 * merge: XOR each stripe in, diffusing with the header's hash between
 * stripes), and accept the candidate whose PBKDF2 digest matches the
 * header's.  Key material is wiped before it is freed.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "block/luks.h"
#include "util.h"

/* cryptsetup's diffuse(): hash each digest-sized chunk with its index. */
static int luks_af_diffuse(const char *hash, uint8_t *buf, size_t size)
{
	size_t dlen = crypto_hash_len(hash);
	uint8_t out[CRYPTO_MAX_DIGEST];

	for (uint32_t i = 0; (size_t)i * dlen < size; i++) {
		uint8_t idx[4] = { (uint8_t)(i >> 24), (uint8_t)(i >> 16),
				   (uint8_t)(i >> 8), (uint8_t)i };
		size_t off = (size_t)i * dlen;
		size_t n = size - off < dlen ? size - off : dlen;

		if (crypto_hash2(hash, idx, sizeof(idx), buf + off, n, out) < 0)
			return -1;
		memcpy(buf + off, out, n);
	}
	return 0;
}

static int luks_af_merge(const char *hash, const uint8_t *split, size_t key_bytes,
			 uint8_t *key)
{
	memset(key, 0, key_bytes);
	for (size_t s = 0; s < LUKS_STRIPES; s++) {
		for (size_t i = 0; i < key_bytes; i++)
			key[i] ^= split[s * key_bytes + i];
		if (s + 1 < LUKS_STRIPES && luks_af_diffuse(hash, key, key_bytes) < 0)
			return -1;
	}
	return 0;
}

/*
 * Try one slot: 1 with the master key in mk, 0 if the passphrase does not
 * open it, -1 with errp set on a read or library failure.
 */
static int luks_try_slot(const struct luks_header *h, const struct luks_slot *slot,
			 const void *pass, size_t passlen, luks_read_fn *read,
			 void *opaque, uint8_t *mk, const char *name, struct error **errp)
{
	size_t material_len = (size_t)h->key_bytes * LUKS_STRIPES;
	uint8_t slot_key[CRYPTO_MAX_KEY], digest[LUKS_DIGEST_LEN];
	uint8_t *material = xmalloc(material_len);
	struct crypto_cipher *cipher = NULL;
	int ret = -1, err;

	if (crypto_pbkdf2(h->hash_spec, pass, passlen, slot->salt, LUKS_SALT_LEN,
			  slot->iterations, slot_key, h->key_bytes) < 0) {
		error_setg(errp, "PBKDF2 with '%s' failed", h->hash_spec);
		goto out;
	}
	cipher = crypto_cipher_new(h->cipher_name, h->cipher_mode, slot_key, h->key_bytes,
				   errp);
	if (!cipher)
		goto out;
	err = read(opaque, material, material_len,
		   (uint64_t)slot->key_offset * CRYPTO_SECTOR_SIZE);
	if (err < 0) {
		error_setg_errno(errp, -err, "Cannot read the LUKS key material of '%s'",
				 name);
		goto out;
	}
	if (crypto_cipher_decrypt(cipher, 0, material, material_len) < 0 ||
	    luks_af_merge(h->hash_spec, material, h->key_bytes, mk) < 0 ||
	    crypto_pbkdf2(h->hash_spec, mk, h->key_bytes, h->mk_digest_salt,
			  LUKS_SALT_LEN, h->mk_digest_iterations, digest,
			  LUKS_DIGEST_LEN) < 0) {
		error_setg(errp, "Cannot decrypt the LUKS key material of '%s'", name);
		goto out;
	}
	ret = CRYPTO_memcmp(digest, h->mk_digest, LUKS_DIGEST_LEN) == 0;
out:
	crypto_cipher_free(cipher);
	crypto_wipe(slot_key, sizeof(slot_key));
	crypto_wipe(material, material_len);
	free(material);
	return ret;
}

struct crypto_cipher *luks_unlock(const struct luks_header *h, const void *pass,
				  size_t passlen, luks_read_fn *read, void *opaque,
				  const char *name, struct error **errp)
{
	uint8_t mk[CRYPTO_MAX_KEY];
	struct crypto_cipher *cipher = NULL;

	/* A cipher QEMU cannot use fails before any PBKDF2 round is spent. */
	/* A dummy key whose XTS halves differ (OpenSSL refuses equal halves). */
	for (size_t i = 0; i < sizeof(mk); i++)
		mk[i] = (uint8_t)(i + 1);
	cipher = crypto_cipher_new(h->cipher_name, h->cipher_mode, mk, h->key_bytes, errp);
	if (!cipher)
		return NULL;
	crypto_cipher_free(cipher);
	cipher = NULL;

	for (size_t i = 0; i < LUKS_NUM_SLOTS; i++) {
		int r;

		if (h->slots[i].active != LUKS_SLOT_ENABLED)
			continue;
		r = luks_try_slot(h, &h->slots[i], pass, passlen, read, opaque, mk, name,
				  errp);
		if (r < 0)
			goto out;
		if (r == 1) {
			cipher = crypto_cipher_new(h->cipher_name, h->cipher_mode, mk,
						   h->key_bytes, errp);
			goto out;
		}
	}
	error_setg(errp, "Invalid password, cannot unlock any keyslot");
out:
	crypto_wipe(mk, sizeof(mk));
	return cipher;
}
