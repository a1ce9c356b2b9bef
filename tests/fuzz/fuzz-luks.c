/*
 * fuzz-luks.c: libFuzzer target for the LUKS1 header parser and the key
 * slot code behind it.  Each input is a header area: it is parsed and
 * checked (block/luks-header.c), and when the parser accepts it with
 * cheap PBKDF2 (at most 16 rounds, so that one input stays fast) it is
 * unlocked with a fixed passphrase, reading key material from the input
 * itself: slot key derivation, key material decryption with the header's
 * cipher, the anti-forensic merge and the digest check all run on
 * crafted values.  Anything but a clean error (or a successful unlock)
 * is a bug.  Seeds: tests/fuzz/seeds-fuzz-luks.sh makes them with
 * qemu-img (make fuzz runs it), rather than binaries in the tree.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "block/luks.h"
#include "rpc/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_area {
	const uint8_t *data;
	size_t size;
};

static int fuzz_read(void *opaque, void *buf, size_t len, uint64_t offset)
{
	const struct fuzz_area *a = opaque;

	if (offset > a->size || len > a->size - offset)
		return -EIO;
	memcpy(buf, a->data + offset, len);
	return 0;
}

static bool fuzz_cheap(const struct luks_header *h)
{
	if (h->mk_digest_iterations > 16)
		return false;
	for (size_t i = 0; i < LUKS_NUM_SLOTS; i++)
		if (h->slots[i].active == LUKS_SLOT_ENABLED && h->slots[i].iterations > 16)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_area area = { data, size };
	struct error *err = NULL;
	struct crypto_cipher *c;
	struct luks_header h;

	if (luks_header_parse(data, size, size, &h, "fuzz", &err) < 0) {
		error_free(err);
		return 0;
	}
	if (!fuzz_cheap(&h))
		return 0;
	c = luks_unlock(&h, "fuzz", 4, fuzz_read, &area, "fuzz", &err);
	if (c) {
		uint8_t sector[CRYPTO_SECTOR_SIZE] = { 0 };

		crypto_cipher_encrypt(c, 7, sector, sizeof(sector));
		crypto_cipher_decrypt(c, 7, sector, sizeof(sector));
		crypto_cipher_free(c);
	}
	error_free(err);
	return 0;
}
