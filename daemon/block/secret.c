/*
 * block/secret.c: how the block layer reaches secrets (passphrases of
 * encrypted images) without including the object registry above it:
 * exportd.c registers the registry's lookup at start-up, as it registers
 * the other upward hooks.
 */
#include "config.h"

#include "block/block.h"

static block_secret_lookup_fn *block_secret_lookup_hook;

void block_set_secret_lookup(block_secret_lookup_fn *fn)
{
	block_secret_lookup_hook = fn;
}

int block_secret_lookup(const char *id, uint8_t **data, size_t *len,
			struct error **errp)
{
	if (!block_secret_lookup_hook) {
		error_setg(errp, "No secret with id '%s'", id);
		return -1;
	}
	return block_secret_lookup_hook(id, data, len, errp);
}
