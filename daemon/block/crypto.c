/*
 * block/crypto.c: sector ciphers, PBKDF2 and hashes over OpenSSL's
 * libcrypto, for LUKS images and qcow2's LUKS encryption (block/crypto.h).
 *
 * A cipher keeps two keyed EVP contexts, one per direction, made once at
 * open; a request copies the one it needs, so threads never share a
 * context and the key is expanded once per image, not per request.
 * IV generators are dm-crypt's: plain (32-bit little-endian sector),
 * plain64 (64-bit), essiv:HASH (the plain64 IV encrypted with the hash of
 * the key), none for ECB.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "block/crypto.h"
#include "util.h"

enum crypto_ivgen { IVGEN_NONE, IVGEN_PLAIN, IVGEN_PLAIN64, IVGEN_ESSIV };

struct crypto_cipher {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
	EVP_CIPHER_CTX *essiv;	/* AES-ECB keyed with hash(key), encrypting */
	enum crypto_ivgen ivgen;
	size_t iv_len;
};

void crypto_wipe(void *p, size_t len)
{
	volatile uint8_t *v = p;

	while (len--)
		*v++ = 0;
}

static const EVP_CIPHER *crypto_aes_mode(const char *mode, size_t keylen)
{
	if (strcmp(mode, "xts") == 0)
		return keylen == 32 ? EVP_aes_128_xts() : keylen == 64 ? EVP_aes_256_xts() : NULL;
	if (strcmp(mode, "cbc") == 0)
		return keylen == 16 ? EVP_aes_128_cbc() : keylen == 24 ? EVP_aes_192_cbc() :
		       keylen == 32 ? EVP_aes_256_cbc() : NULL;
	if (strcmp(mode, "ecb") == 0)
		return keylen == 16 ? EVP_aes_128_ecb() : keylen == 24 ? EVP_aes_192_ecb() :
		       keylen == 32 ? EVP_aes_256_ecb() : NULL;
	return NULL;
}

static EVP_CIPHER_CTX *crypto_ctx_new(const EVP_CIPHER *cipher, const uint8_t *key,
				      int enc)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	if (!ctx)
		return NULL;
	if (EVP_CipherInit_ex(ctx, cipher, NULL, key, NULL, enc) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	return ctx;
}

struct crypto_cipher *crypto_cipher_new(const char *alg, const char *mode,
					const uint8_t *key, size_t keylen,
					struct error **errp)
{
	char chain[16], ivname[16], ivhash[32] = "";
	const char *dash = strchr(mode, '-');
	const EVP_CIPHER *cipher;
	struct crypto_cipher *c;
	size_t chain_len = dash ? (size_t)(dash - mode) : strlen(mode);

	if (strcmp(alg, "aes") != 0) {
		error_setg(errp, "Unsupported cipher algorithm '%s' (only 'aes' is "
			   "supported)", alg);
		return NULL;
	}
	if (chain_len >= sizeof(chain) || (dash && strlen(dash + 1) >= sizeof(ivname) +
					    sizeof(ivhash))) {
		error_setg(errp, "Unsupported cipher mode '%s'", mode);
		return NULL;
	}
	memcpy(chain, mode, chain_len);
	chain[chain_len] = '\0';
	cipher = crypto_aes_mode(chain, keylen);
	if (!cipher) {
		error_setg(errp, "Unsupported cipher mode '%s' with a %zu-byte key for "
			   "'aes'", mode, keylen);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->ivgen = IVGEN_NONE;
	if (dash) {
		const char *colon = strchr(dash + 1, ':');
		size_t n = colon ? (size_t)(colon - dash - 1) : strlen(dash + 1);

		if (n >= sizeof(ivname) || (colon && strlen(colon + 1) >= sizeof(ivhash)))
			goto bad_ivgen;
		memcpy(ivname, dash + 1, n);
		ivname[n] = '\0';
		if (colon)
			strcpy(ivhash, colon + 1);
		if (strcmp(ivname, "plain") == 0 && !colon)
			c->ivgen = IVGEN_PLAIN;
		else if (strcmp(ivname, "plain64") == 0 && !colon)
			c->ivgen = IVGEN_PLAIN64;
		else if (strcmp(ivname, "essiv") == 0 && colon)
			c->ivgen = IVGEN_ESSIV;
		else
			goto bad_ivgen;
	}
	if (c->ivgen == IVGEN_NONE && strcmp(chain, "ecb") != 0)
		goto bad_ivgen;
	c->iv_len = (size_t)EVP_CIPHER_iv_length(cipher);
	c->enc = crypto_ctx_new(cipher, key, 1);
	c->dec = crypto_ctx_new(cipher, key, 0);
	if (!c->enc || !c->dec) {
		/* OpenSSL refuses an XTS key whose halves are equal. */
		error_setg(errp, "Cannot use the key for cipher 'aes-%zu-%s'",
			   keylen * 8 / (strcmp(chain, "xts") == 0 ? 2 : 1), chain);
		goto fail;
	}
	if (c->ivgen == IVGEN_ESSIV) {
		uint8_t essiv_key[CRYPTO_MAX_DIGEST];
		size_t hlen = crypto_hash_len(ivhash);
		const EVP_CIPHER *ecb = hlen ? crypto_aes_mode("ecb", hlen) : NULL;

		if (!ecb || crypto_hash2(ivhash, key, keylen, NULL, 0, essiv_key) < 0) {
			error_setg(errp, "Unsupported ESSIV hash '%s' for 'aes' (its digest "
				   "must be an AES key length)", ivhash);
			goto fail;
		}
		c->essiv = crypto_ctx_new(ecb, essiv_key, 1);
		crypto_wipe(essiv_key, sizeof(essiv_key));
		if (!c->essiv) {
			error_setg(errp, "Cannot set up the ESSIV cipher");
			goto fail;
		}
	}
	return c;

bad_ivgen:
	error_setg(errp, "Unsupported cipher mode '%s' (IV generators: plain, plain64, "
		   "essiv:HASH; none only with ecb)", mode);
fail:
	crypto_cipher_free(c);
	return NULL;
}

void crypto_cipher_free(struct crypto_cipher *c)
{
	if (!c)
		return;
	EVP_CIPHER_CTX_free(c->enc);
	EVP_CIPHER_CTX_free(c->dec);
	EVP_CIPHER_CTX_free(c->essiv);
	free(c);
}

static int crypto_make_iv(const struct crypto_cipher *c, EVP_CIPHER_CTX *essiv,
			  uint64_t sector, uint8_t *iv)
{
	int outl;

	memset(iv, 0, c->iv_len);
	if (c->ivgen == IVGEN_PLAIN)
		sector &= 0xffffffffu;
	for (int i = 0; i < 8 && (size_t)i < c->iv_len; i++)
		iv[i] = (uint8_t)(sector >> (8 * i));
	if (c->ivgen == IVGEN_ESSIV &&
	    EVP_EncryptUpdate(essiv, iv, &outl, iv, (int)c->iv_len) != 1)
		return -EIO;
	return 0;
}

static int crypto_run(const struct crypto_cipher *c, bool encrypt, uint64_t sector,
		      uint8_t *buf, size_t len)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER_CTX *essiv = NULL;
	uint8_t iv[16];
	int ret = -EIO, outl;

	if (!ctx || EVP_CIPHER_CTX_copy(ctx, encrypt ? c->enc : c->dec) != 1)
		goto out;
	if (c->essiv) {
		essiv = EVP_CIPHER_CTX_new();
		if (!essiv || EVP_CIPHER_CTX_copy(essiv, c->essiv) != 1)
			goto out;
	}
	for (size_t done = 0; done < len; done += CRYPTO_SECTOR_SIZE, sector++) {
		int n = len - done < CRYPTO_SECTOR_SIZE ? (int)(len - done) : CRYPTO_SECTOR_SIZE;

		/* ECB has no IV: QEMU still writes "ecb-plain64" and ignores it. */
		if (c->ivgen != IVGEN_NONE && c->iv_len) {
			if (crypto_make_iv(c, essiv, sector, iv) < 0 ||
			    EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1)
				goto out;
		}
		if (EVP_CipherUpdate(ctx, buf + done, &outl, buf + done, n) != 1 ||
		    outl != n)
			goto out;
	}
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_CTX_free(essiv);
	return ret;
}

int crypto_cipher_encrypt(const struct crypto_cipher *c, uint64_t sector,
			  uint8_t *buf, size_t len)
{
	return crypto_run(c, true, sector, buf, len);
}

int crypto_cipher_decrypt(const struct crypto_cipher *c, uint64_t sector,
			  uint8_t *buf, size_t len)
{
	return crypto_run(c, false, sector, buf, len);
}

static const EVP_MD *crypto_md(const char *name)
{
	/* LUKS names hashes as cryptsetup does; these are OpenSSL's names too. */
	static const char *const known[] = {
		"sha1", "sha224", "sha256", "sha384", "sha512", "ripemd160", "md5",
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(name, known[i]) == 0)
			return EVP_get_digestbyname(name);
	return NULL;
}

size_t crypto_hash_len(const char *name)
{
	const EVP_MD *md = crypto_md(name);

	return md ? (size_t)EVP_MD_size(md) : 0;
}

int crypto_hash2(const char *name, const void *a, size_t alen, const void *b,
		 size_t blen, uint8_t *out)
{
	const EVP_MD *md = crypto_md(name);
	EVP_MD_CTX *ctx;
	int ok;

	if (!md || !(ctx = EVP_MD_CTX_new()))
		return -1;
	ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
	     (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
	     EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int crypto_pbkdf2(const char *hash, const void *pass, size_t passlen,
		  const uint8_t *salt, size_t saltlen, uint32_t iterations,
		  uint8_t *out, size_t outlen)
{
	const EVP_MD *md = crypto_md(hash);

	if (!md || iterations == 0 || iterations > INT32_MAX || passlen > INT32_MAX)
		return -1;
	return PKCS5_PBKDF2_HMAC(pass, (int)passlen, salt, (int)saltlen, (int)iterations,
				 md, (int)outlen, out) == 1 ? 0 : -1;
}
