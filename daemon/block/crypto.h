/*
 * block/crypto.h: the disk-encryption primitives the LUKS code needs,
 * over OpenSSL's libcrypto: a sector cipher (a block cipher, a chaining
 * mode and an IV generator, as dm-crypt and QEMU name them: "aes" +
 * "xts-plain64", "cbc-essiv:sha256", ...), PBKDF2 and plain hashes.
 *
 * libcrypto rather than nettle: its EVP XTS and CBC paths run whole
 * sectors in AES-NI assembly (nettle 3.8 has AES-NI for single blocks
 * but chains XTS in C), and PBKDF2-HMAC is one call.  Sectors are 512
 * bytes, the unit LUKS1 and QEMU's qcow2 encryption number IVs by.
 *
 * A struct crypto_cipher is immutable once made: every thread may
 * encrypt and decrypt with it at once (each call copies the keyed
 * context, which keeps the expanded key schedule).
 */
#ifndef EXPORTD_BLOCK_CRYPTO_H
#define EXPORTD_BLOCK_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/error.h"

#define CRYPTO_SECTOR_SIZE	512
#define CRYPTO_MAX_KEY		64	/* AES-256-XTS */
#define CRYPTO_MAX_DIGEST	64	/* SHA-512 */

struct crypto_cipher;

/*
 * A sector cipher for `alg` ("aes") in `mode` ("xts-plain64",
 * "cbc-essiv:sha256", "cbc-plain", "ecb", ...) with a key of keylen
 * bytes.  NULL with a message naming what is not supported.
 */
struct crypto_cipher *crypto_cipher_new(const char *alg, const char *mode,
					const uint8_t *key, size_t keylen,
					struct error **errp);
void crypto_cipher_free(struct crypto_cipher *c);
/*
 * Encrypt or decrypt len bytes in place, sector by sector: the first
 * sector's IV is made from `sector`, the next from sector + 1 and so on.
 * Only the last sector may be short, and then by a multiple of the
 * cipher's block (LUKS key material of an AES-192 key ends mid-sector).
 * 0 or -EIO.
 */
int crypto_cipher_encrypt(const struct crypto_cipher *c, uint64_t sector,
			  uint8_t *buf, size_t len);
int crypto_cipher_decrypt(const struct crypto_cipher *c, uint64_t sector,
			  uint8_t *buf, size_t len);

/* Digest length of hash `name` ("sha256"), or 0 if it is unknown. */
size_t crypto_hash_len(const char *name);
/* out = hash(a || b); out holds crypto_hash_len(name) bytes.  0 or -1. */
int crypto_hash2(const char *name, const void *a, size_t alen, const void *b,
		 size_t blen, uint8_t *out);
/* PBKDF2-HMAC-`hash`.  0 or -1 (unknown hash, library failure). */
int crypto_pbkdf2(const char *hash, const void *pass, size_t passlen,
		  const uint8_t *salt, size_t saltlen, uint32_t iterations,
		  uint8_t *out, size_t outlen);
/* Overwrite secrets before freeing them (the compiler may not elide it). */
void crypto_wipe(void *p, size_t len);

#endif
