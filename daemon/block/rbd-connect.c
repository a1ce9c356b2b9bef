/*
 * block/rbd-connect.c: the connection of an rbd node to its Ceph cluster.
 *
 * It turns QEMU's BlockdevOptionsRbd (conf, user, server,
 * auth-client-required, key-secret, pool, namespace) into a librados
 * cluster handle and an I/O context, in the order QEMU's qemu_rbd_connect
 * uses, so that the same options mean the same thing: the configuration
 * file first (Ceph's default locations when 'conf' is absent, a failure to
 * read them ignored), then 'server' over its mon_host, then the
 * authentication settings, then the connection.  Error messages are
 * QEMU's ("error connecting: ...", "error opening pool p: ...").
 */
#include "config.h"

#if HAVE_LIBRBD

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rbd/librbd.h>

#include "block/rbd.h"
#include "object/secret.h"
#include "util.h"

static const char *opt_str(json_t *options, const char *key)
{
	json_t *v = json_object_get(options, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Append `piece` to the malloc'd string *acc, separated by `sep`. */
static void str_append(char **acc, const char *sep, const char *piece)
{
	size_t old = *acc ? strlen(*acc) : 0;
	size_t len = old + (old ? strlen(sep) : 0) + strlen(piece) + 1;
	char *s = xrealloc(*acc, len);

	if (!old)
		s[0] = '\0';
	else
		strcat(s, sep);
	strcat(s, piece);
	*acc = s;
}

/*
 * 'server': a list of {host, port} that becomes mon_host, "h1:p1;h2:p2",
 * with IPv6 addresses in brackets.  NULL when the option is absent.
 */
static char *rbd_mon_host(json_t *options)
{
	json_t *servers = json_object_get(options, "server");
	char *mon_host = NULL;
	size_t i;
	json_t *server;

	json_array_foreach(servers, i, server) {
		const char *host = opt_str(server, "host");
		const char *port = opt_str(server, "port");
		char *one = xasprintf(strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);

		str_append(&mon_host, ";", one);
		free(one);
	}
	return mon_host;
}

/* RFC 4648 base64 with padding: how Ceph's 'key' setting spells a key. */
static char *base64_encode(const uint8_t *in, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *p = out;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*p++ = alphabet[(v >> 18) & 63];
		*p++ = alphabet[(v >> 12) & 63];
		*p++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		*p++ = i + 2 < len ? alphabet[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

/*
 * 'key-secret': the id of a secret object whose bytes are the cephx key,
 * handed to librados base64-encoded as QEMU does, so that the key itself
 * is never in the node's options.
 */
static int rbd_set_key(rados_t cluster, const char *secret_id, struct error **errp)
{
	uint8_t *key;
	size_t len;
	char *b64;
	int r;

	if (secret_lookup(secret_id, &key, &len, errp) < 0)
		return -1;
	b64 = base64_encode(key, len);
	secret_free(key, len);
	r = rados_conf_set(cluster, "key", b64);
	explicit_bzero(b64, strlen(b64));
	free(b64);
	if (r < 0) {
		error_setg_errno(errp, -r, "Could not set 'key'");
		return -1;
	}
	return 0;
}

/* The key, then 'auth-client-required': the modes joined with ';'. */
static int rbd_set_auth(rados_t cluster, json_t *options, struct error **errp)
{
	json_t *modes = json_object_get(options, "auth-client-required");
	const char *secret_id = opt_str(options, "key-secret");
	char *acr = NULL;
	json_t *mode;
	size_t i;
	int r;

	if (secret_id && rbd_set_key(cluster, secret_id, errp) < 0)
		return -1;
	if (!modes)
		return 0;
	json_array_foreach(modes, i, mode)
		str_append(&acr, ";", json_string_value(mode));
	/* An empty list leaves Ceph's default, as QEMU's does. */
	r = acr ? rados_conf_set(cluster, "auth_client_required", acr) : 0;
	free(acr);
	if (r < 0) {
		error_setg_errno(errp, -r, "Could not set 'auth_client_required'");
		return -1;
	}
	return 0;
}

/* The namespace must exist: librados would only fail on the first read. */
static int rbd_check_namespace(rados_ioctx_t ioctx, const char *ns, struct error **errp)
{
	bool exists = false;
	int r;

	if (!ns || !ns[0])
		return 0;
	r = rbd_namespace_exists(ioctx, ns, &exists);
	if (r < 0) {
		error_setg_errno(errp, -r, "error checking namespace");
		return -1;
	}
	if (!exists) {
		error_setg(errp, "namespace '%s' does not exist", ns);
		return -1;
	}
	return 0;
}

int rbd_connect(json_t *options, bool cache, rados_t *cluster, rados_ioctx_t *ioctx,
		struct error **errp)
{
	const char *conf = opt_str(options, "conf");
	const char *user = opt_str(options, "user");
	const char *pool = opt_str(options, "pool");
	const char *ns = opt_str(options, "namespace");
	char *mon_host = rbd_mon_host(options);
	int r;

	r = rados_create(cluster, user);
	if (r < 0) {
		error_setg_errno(errp, -r, "error initializing");
		free(mon_host);
		return -1;
	}
	/* Without 'conf': Ceph's default locations, and none is fine. */
	r = rados_conf_read_file(*cluster, conf);
	if (conf && r < 0) {
		error_setg_errno(errp, -r, "error reading conf file %s", conf);
		goto fail;
	}
	if (mon_host) {
		r = rados_conf_set(*cluster, "mon_host", mon_host);
		if (r < 0) {
			error_setg_errno(errp, -r, "Could not set 'mon_host'");
			goto fail;
		}
	}
	if (rbd_set_auth(*cluster, options, errp) < 0)
		goto fail;
	/*
	 * As QEMU: librbd's cache unless cache.direct.  It starts in
	 * writethrough mode and writes back only after the first flush, so a
	 * writer that never flushes loses nothing it was told was written.
	 */
	rados_conf_set(*cluster, "rbd_cache", cache ? "true" : "false");
	r = rados_connect(*cluster);
	if (r < 0) {
		error_setg_errno(errp, -r, "error connecting");
		goto fail;
	}
	r = rados_ioctx_create(*cluster, pool, ioctx);
	if (r < 0) {
		error_setg_errno(errp, -r, "error opening pool %s", pool);
		goto fail;
	}
	if (rbd_check_namespace(*ioctx, ns, errp) < 0) {
		rados_ioctx_destroy(*ioctx);
		goto fail;
	}
	rados_ioctx_set_namespace(*ioctx, ns ? ns : "");
	free(mon_host);
	return 0;

fail:
	rados_shutdown(*cluster);
	free(mon_host);
	return -1;
}

#endif
