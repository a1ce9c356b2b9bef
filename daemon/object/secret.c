/*
 * object/secret.c: the `secret` object type (QEMU's crypto/secret.c):
 * bytes given inline ('data') or read from a file ('file') once, at
 * creation, in 'format' raw or base64, and kept until object-del.
 *
 * 'keyid' + 'iv' (the data encrypted with AES-256-CBC under another
 * secret, QEMU's way of passing a secret over an untrusted channel) need a
 * cipher, which belongs with the crypto code of the LUKS driver; until it
 * is there they are refused with a clear message rather than ignored.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "object/object.h"
#include "object/secret.h"
#include "rpc/xalloc.h"

/* A key file larger than this is not a key: refuse, do not read /dev/zero. */
#define SECRET_FILE_MAX (1u << 20)

struct secret {
	uint8_t *data;
	size_t len;
};

void secret_free(void *data, size_t len)
{
	if (!data)
		return;
	explicit_bzero(data, len);
	free(data);
}

static int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * QEMU (util/base64.c) accepts newlines anywhere, so that a key file
 * written with `echo KEY > file` works, and then decodes leniently; we take
 * the newlines too but refuse data whose length or padding is wrong, which
 * QEMU would silently turn into a different key.
 */
uint8_t *base64_decode(const char *in, size_t in_len, size_t *out_len,
		       struct error **errp)
{
	static const char valid[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789+/=\n";
	uint8_t *out = NULL;
	char *text;
	size_t len = 0, n = 0, pad = 0, cap;

	if (memchr(in, '\0', in_len)) {
		error_setg(errp, "Base64 data contains embedded NUL characters");
		return NULL;
	}
	text = xmalloc(in_len + 1);
	for (size_t i = 0; i < in_len; i++) {
		if (!strchr(valid, in[i])) {
			error_setg(errp, "Base64 data contains invalid characters");
			goto out;
		}
		if (in[i] != '\n')
			text[len++] = in[i];
	}
	if (len % 4) {
		error_setg(errp, "Base64 data is not valid");
		goto out;
	}
	if (len && text[len - 1] == '=')
		pad = len >= 2 && text[len - 2] == '=' ? 2 : 1;
	cap = len / 4 * 3 + 1;
	out = xmalloc(cap);
	for (size_t i = 0; i < len; i += 4) {
		int v[4];

		for (int j = 0; j < 4; j++) {
			bool padding = i + 4 == len && j >= 4 - (int)pad;

			v[j] = padding ? 0 : base64_value((unsigned char)text[i + j]);
			if (v[j] < 0) {
				error_setg(errp, "Base64 data is not valid");
				secret_free(out, cap);
				out = NULL;
				goto out;
			}
		}
		out[n++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		out[n++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		out[n++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	n -= pad;
	out[n] = 0;
	*out_len = n;
out:
	secret_free(text, in_len + 1);
	return out;
}

static int secret_read_file(const char *path, uint8_t **data, size_t *len,
			    struct error **errp)
{
	uint8_t *buf = xmalloc(SECRET_FILE_MAX + 1);
	size_t n = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		error_setg_errno(errp, errno, "Unable to read %s", path);
		free(buf);
		return -1;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, SECRET_FILE_MAX + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			error_setg_errno(errp, errno, "Unable to read %s", path);
			close(fd);
			secret_free(buf, SECRET_FILE_MAX + 1);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > SECRET_FILE_MAX) {
			error_setg(errp, "Unable to read %s: larger than %u bytes, not a secret",
				   path, SECRET_FILE_MAX);
			close(fd);
			secret_free(buf, SECRET_FILE_MAX + 1);
			return -1;
		}
	}
	close(fd);
	*data = xmalloc(n + 1);
	memcpy(*data, buf, n);
	(*data)[n] = 0;
	*len = n;
	secret_free(buf, SECRET_FILE_MAX + 1);
	return 0;
}

static void *secret_create(const char *id, json_t *props, struct error **errp)
{
	const char *data = json_string_value(json_object_get(props, "data"));
	const char *file = json_string_value(json_object_get(props, "file"));
	const char *format = json_string_value(json_object_get(props, "format"));
	struct secret *s;
	uint8_t *raw;
	size_t len;

	(void)id;
	if (json_object_get(props, "keyid") || json_object_get(props, "iv")) {
		error_setg(errp, "secret '%s': 'keyid' and 'iv' (a secret encrypted by "
			   "another secret) are not supported; give the data in clear from "
			   "a file only root can read", id);
		return NULL;
	}
	if (file && data) {
		error_setg(errp, "'file' and 'data' are mutually exclusive");
		return NULL;
	}
	if (file) {
		if (secret_read_file(file, &raw, &len, errp) < 0)
			return NULL;
	} else if (data) {
		len = strlen(data);
		raw = (uint8_t *)xstrdup(data);
	} else {
		error_setg(errp, "Either 'file' or 'data' must be provided");
		return NULL;
	}
	if (format && !strcmp(format, "base64")) {
		size_t dlen;
		uint8_t *decoded = base64_decode((const char *)raw, len, &dlen, errp);

		secret_free(raw, len);
		if (!decoded)
			return NULL;
		raw = decoded;
		len = dlen;
	}
	s = xmalloc(sizeof(*s));
	s->data = raw;
	s->len = len;
	return s;
}

static void secret_destroy(void *state)
{
	struct secret *s = state;

	secret_free(s->data, s->len);
	free(s);
}

const struct object_type object_type_secret = {
	.name = "secret",
	.create = secret_create,
	.destroy = secret_destroy,
};

int secret_lookup(const char *id, uint8_t **data, size_t *len, struct error **errp)
{
	struct secret *s = object_find(id, &object_type_secret, errp);

	if (!s)
		return -1;
	*data = xmalloc(s->len + 1);
	memcpy(*data, s->data, s->len);
	(*data)[s->len] = 0;
	*len = s->len;
	return 0;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

char *secret_lookup_as_utf8(const char *id, struct error **errp)
{
	uint8_t *data;
	size_t len;

	if (secret_lookup(id, &data, &len, errp) < 0)
		return NULL;
	if (memchr(data, 0, len) || !utf8_valid(data, len)) {
		error_setg(errp, "Data from secret %s is not valid UTF-8", id);
		secret_free(data, len);
		return NULL;
	}
	return (char *)data;
}
