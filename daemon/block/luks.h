/*
 * block/luks.h: the LUKS1 on-disk header, shared by the luks format
 * driver (block/luks.c) and qcow2's LUKS encryption (block/qcow2*.c).
 *
 * block/luks-header.c parses and checks the header (pure, no I/O, the
 * fuzz target's entry point); block/luks-unlock.c finds the master key
 * from a passphrase (PBKDF2 per key slot, anti-forensic merge, master key
 * digest) and makes the payload cipher.  The format is cryptsetup's
 * LUKS1 specification (on-disk-format.pdf, 1.2.x) as QEMU's
 * crypto/block-luks.c implements it; numbers on disk are big-endian.
 */
#ifndef EXPORTD_BLOCK_LUKS_H
#define EXPORTD_BLOCK_LUKS_H

#include <stddef.h>
#include <stdint.h>

#include "block/crypto.h"
#include "rpc/error.h"

#define LUKS_HEADER_LEN		592	/* fixed part + 8 key slots */
#define LUKS_NUM_SLOTS		8
#define LUKS_STRIPES		4000	/* QEMU and cryptsetup accept no other */
#define LUKS_DIGEST_LEN		20
#define LUKS_SALT_LEN		32
#define LUKS_SLOT_ENABLED	0x00ac71f3u
#define LUKS_SLOT_DISABLED	0x0000deadu
/*
 * PBKDF2 rounds we agree to run for one key slot or the master key
 * digest.  Unlocking runs on the main thread, and the header comes with
 * the image: without a bound a crafted header stalls the daemon for
 * hours.  cryptsetup's and QEMU's "2 seconds" are about 2 million rounds
 * of SHA-256 on current CPUs; 2^24 leaves room for much faster ones.
 */
#define LUKS_MAX_ITERATIONS	(1u << 24)

struct luks_slot {
	uint32_t active;
	uint32_t iterations;
	uint8_t salt[LUKS_SALT_LEN];
	uint32_t key_offset;	/* sectors from the header's start */
	uint32_t stripes;
};

struct luks_header {
	uint16_t version;
	char cipher_name[33];
	char cipher_mode[33];
	char hash_spec[33];
	uint32_t payload_offset;	/* sectors */
	uint32_t key_bytes;
	uint8_t mk_digest[LUKS_DIGEST_LEN];
	uint8_t mk_digest_salt[LUKS_SALT_LEN];
	uint32_t mk_digest_iterations;
	char uuid[41];
	struct luks_slot slots[LUKS_NUM_SLOTS];
};

/* Does buf (len bytes) start with the LUKS magic? */
int luks_probe(const uint8_t *buf, size_t len);
/*
 * Parse and check the header at the start of buf (len >= LUKS_HEADER_LEN
 * or a "truncated" error).  area_len is how many bytes the header may
 * address (the file, or qcow2's crypto area): key material must lie in
 * it, after the header and, when payload_offset is set, before the
 * payload.  `name` names the image in messages.
 */
int luks_header_parse(const uint8_t *buf, size_t len, uint64_t area_len,
		      struct luks_header *h, const char *name, struct error **errp);

/* Reads len bytes at offset from the header's start: 0 or -errno. */
typedef int luks_read_fn(void *opaque, void *buf, size_t len, uint64_t offset);

/*
 * Unlock with the passphrase: try each enabled slot, and on success
 * return the payload cipher (free with crypto_cipher_free).  A passphrase
 * that opens no slot gets QEMU's "Invalid password, cannot unlock any
 * keyslot".
 */
struct crypto_cipher *luks_unlock(const struct luks_header *h, const void *pass,
				  size_t passlen, luks_read_fn *read, void *opaque,
				  const char *name, struct error **errp);

/*
 * Unlock h with the passphrase in the secret `secret_id` (NULL: QEMU's
 * "Parameter '<optprefix>key-secret' is required for cipher").
 */
struct crypto_cipher *luks_open_with_secret(const struct luks_header *h,
					    const char *secret_id, const char *optprefix,
					    luks_read_fn *read, void *opaque,
					    const char *name, struct error **errp);

#endif
