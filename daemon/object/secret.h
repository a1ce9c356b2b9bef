/*
 * object/secret.h: QEMU's `secret` objects, the keys and passwords that
 * block drivers take by id (key-secret, password-secret), so that they
 * never travel in a node's options or on a command line in clear:
 *
 *   --object secret,id=sec0,file=/etc/exportd/vm1.key
 *   {"execute": "object-add", "arguments": {"qom-type": "secret",
 *    "id": "sec0", "data": "c2VjcmV0", "format": "base64"}}
 */
#ifndef EXPORTD_SECRET_H
#define EXPORTD_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/error.h"

/*
 * A copy of the secret's bytes, NUL-terminated after *len bytes; the
 * caller wipes and frees it (secret_free).  QEMU's errors: "No secret with
 * id 'x'", "Object with id 'x' is not a secret".
 */
int secret_lookup(const char *id, uint8_t **data, size_t *len, struct error **errp);
/* The same, refused unless it is valid UTF-8 without NUL (a passphrase). */
char *secret_lookup_as_utf8(const char *id, struct error **errp);
/* Wipe and free what secret_lookup returned. */
void secret_free(void *data, size_t len);

/* Strict base64 (RFC 4648, padding required); NULL and *errp if invalid. */
uint8_t *base64_decode(const char *in, size_t in_len, size_t *out_len,
		       struct error **errp);

#endif
