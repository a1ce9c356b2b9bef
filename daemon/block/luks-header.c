/*
 * block/luks-header.c: parsing and checking a LUKS1 header (block/luks.h).
 *
 * Pure: no I/O, no allocation, every field checked before anyone uses
 * it, so that a crafted header can only ever get an error.  Messages
 * follow QEMU's crypto/block-luks.c where it has one.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "block/luks.h"

static const uint8_t luks_magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int luks_probe(const uint8_t *buf, size_t len)
{
	return len >= sizeof(luks_magic) && memcmp(buf, luks_magic, sizeof(luks_magic)) == 0;
}

/* Copy a fixed-size text field, which must be NUL-terminated on disk. */
static int luks_text(const uint8_t *field, size_t size, char *out, const char *what,
		     const char *name, struct error **errp)
{
	if (!memchr(field, '\0', size)) {
		error_setg(errp, "LUKS header of '%s' is corrupt: %s is not "
			   "NUL-terminated", name, what);
		return -1;
	}
	memcpy(out, field, size);
	out[size] = '\0';
	return 0;
}

static int luks_check_slots(struct luks_header *h, uint64_t area_len, const char *name,
			    struct error **errp)
{
	uint64_t material = (uint64_t)h->key_bytes * LUKS_STRIPES;
	uint64_t start[LUKS_NUM_SLOTS], end[LUKS_NUM_SLOTS];
	int enabled = 0;

	for (size_t i = 0; i < LUKS_NUM_SLOTS; i++) {
		struct luks_slot *s = &h->slots[i];

		if (s->active != LUKS_SLOT_ENABLED && s->active != LUKS_SLOT_DISABLED) {
			error_setg(errp, "Keyslot %zu state (active/disable) is corrupted", i);
			return -1;
		}
		if (s->stripes != LUKS_STRIPES) {
			error_setg(errp, "Keyslot %zu is corrupted (stripes %" PRIu32 " != %d)",
				   i, s->stripes, LUKS_STRIPES);
			return -1;
		}
		start[i] = (uint64_t)s->key_offset * CRYPTO_SECTOR_SIZE;
		end[i] = start[i] + material;
		if (start[i] < LUKS_HEADER_LEN) {
			error_setg(errp, "Keyslot %zu is overlapping with the LUKS header", i);
			return -1;
		}
		if (h->payload_offset &&
		    end[i] > (uint64_t)h->payload_offset * CRYPTO_SECTOR_SIZE) {
			error_setg(errp, "Keyslot %zu is overlapping with the encrypted "
				   "payload", i);
			return -1;
		}
		if (s->active != LUKS_SLOT_ENABLED)
			continue;
		enabled++;
		if (end[i] > area_len) {
			error_setg(errp, "LUKS header of '%s' is corrupt: keyslot %zu's key "
				   "material ends at %" PRIu64 ", past the end of the header "
				   "area (%" PRIu64 ")", name, i, end[i], area_len);
			return -1;
		}
		if (s->iterations == 0 || s->iterations > LUKS_MAX_ITERATIONS) {
			error_setg(errp, "Keyslot %zu of '%s' asks for %" PRIu32 " PBKDF2 "
				   "iterations (accepted: 1 to %u)", i, name, s->iterations,
				   LUKS_MAX_ITERATIONS);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (h->slots[j].active == LUKS_SLOT_ENABLED &&
			    start[i] < end[j] && start[j] < end[i]) {
				error_setg(errp, "Keyslots %zu and %zu are overlapping in the "
					   "header", j, i);
				return -1;
			}
		}
	}
	if (!enabled) {
		error_setg(errp, "LUKS header of '%s' has no enabled key slot", name);
		return -1;
	}
	return 0;
}

int luks_header_parse(const uint8_t *buf, size_t len, uint64_t area_len,
		      struct luks_header *h, const char *name, struct error **errp)
{
	memset(h, 0, sizeof(*h));
	if (len < LUKS_HEADER_LEN || area_len < LUKS_HEADER_LEN) {
		error_setg(errp, "LUKS header of '%s' is truncated (%zu bytes, %d needed)",
			   name, len < area_len ? len : (size_t)area_len, LUKS_HEADER_LEN);
		return -1;
	}
	if (!luks_probe(buf, len)) {
		error_setg(errp, "Volume is not in LUKS format");
		return -1;
	}
	h->version = (uint16_t)(buf[6] << 8 | buf[7]);
	if (h->version != 1) {
		error_setg(errp, "LUKS version %u is not supported%s", h->version,
			   h->version == 2 ? " (only LUKS1 is: convert with 'cryptsetup "
			   "convert --type luks1')" : "");
		return -1;
	}
	if (luks_text(buf + 8, 32, h->cipher_name, "the cipher name", name, errp) < 0 ||
	    luks_text(buf + 40, 32, h->cipher_mode, "the cipher mode", name, errp) < 0 ||
	    luks_text(buf + 72, 32, h->hash_spec, "the hash spec", name, errp) < 0 ||
	    luks_text(buf + 168, 40, h->uuid, "the UUID", name, errp) < 0)
		return -1;
	h->payload_offset = be32(buf + 104);
	h->key_bytes = be32(buf + 108);
	memcpy(h->mk_digest, buf + 112, LUKS_DIGEST_LEN);
	memcpy(h->mk_digest_salt, buf + 132, LUKS_SALT_LEN);
	h->mk_digest_iterations = be32(buf + 164);
	for (size_t i = 0; i < LUKS_NUM_SLOTS; i++) {
		const uint8_t *p = buf + 208 + 48 * i;

		h->slots[i].active = be32(p);
		h->slots[i].iterations = be32(p + 4);
		memcpy(h->slots[i].salt, p + 8, LUKS_SALT_LEN);
		h->slots[i].key_offset = be32(p + 40);
		h->slots[i].stripes = be32(p + 44);
	}
	if (h->key_bytes == 0 || h->key_bytes > CRYPTO_MAX_KEY) {
		error_setg(errp, "LUKS header of '%s' has an unsupported key size of "
			   "%" PRIu32 " bytes", name, h->key_bytes);
		return -1;
	}
	if (crypto_hash_len(h->hash_spec) == 0) {
		error_setg(errp, "Unsupported hash algorithm '%s' in the LUKS header of "
			   "'%s'", h->hash_spec, name);
		return -1;
	}
	if (h->mk_digest_iterations == 0 ||
	    h->mk_digest_iterations > LUKS_MAX_ITERATIONS) {
		error_setg(errp, "LUKS header of '%s' asks for %" PRIu32 " PBKDF2 "
			   "iterations for the master key digest (accepted: 1 to %u)", name,
			   h->mk_digest_iterations, LUKS_MAX_ITERATIONS);
		return -1;
	}
	if (h->payload_offset && (uint64_t)h->payload_offset * CRYPTO_SECTOR_SIZE <
	    LUKS_HEADER_LEN) {
		error_setg(errp, "LUKS header of '%s' is corrupt: the payload (sector %"
			   PRIu32 ") overlaps the header", name, h->payload_offset);
		return -1;
	}
	return luks_check_slots(h, area_len, name, errp);
}
