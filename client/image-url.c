/*
 * image-url.c: `exportctl add --image URL` for images that live on another
 * server: the blockdev-add arguments of the protocol node that a URL names,
 * in the spellings qemu-img users know:
 *
 *   nbd://HOST[:PORT]/EXPORT        (also nbd+tcp://; port 10809 by default)
 *   nbd+unix:///EXPORT?socket=PATH
 *   http://...  https://...         (the URL as it is, read-only)
 *
 * Export names and socket paths may be percent-encoded, as in QEMU's NBD
 * URIs.  The format node on top is exportctl's business, not this file's.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl-util.h"
#include "image-url.h"

#define NBD_DEFAULT_PORT "10809"

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncasecmp(s, prefix, strlen(prefix));
}

bool image_is_url(const char *image)
{
	return has_prefix(image, "nbd://") || has_prefix(image, "nbd+tcp://") ||
	       has_prefix(image, "nbd+unix://") || has_prefix(image, "http://") ||
	       has_prefix(image, "https://");
}

static int hexval(int c)
{
	if (isdigit(c))
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode %XX in [s, s+len); NULL if an escape is malformed or is %00. */
static char *percent_decode(const char *s, size_t len)
{
	char *out = ctl_xmalloc(len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= len) {
			free(out);
			return NULL;
		}
		int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi * 16 + lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

/* nbd://host[:port]/export and nbd+unix:///export?socket=path */
static json_t *nbd_url_node(const char *url, char **errp)
{
	bool is_unix = has_prefix(url, "nbd+unix://");
	const char *auth = strstr(url, "://") + 3;
	const char *path = strchr(auth, '/');
	const char *query = strchr(auth, '?');
	const char *path_end;
	char *export, *host = NULL, *port = NULL, *sock = NULL;
	json_t *server, *node;

	if (query && path && query < path)
		path = NULL;
	path_end = query ? query : auth + strlen(auth);
	export = path ? percent_decode(path + 1, (size_t)(path_end - path - 1)) :
		 ctl_xstrdup("");
	if (!export) {
		*errp = ctl_xasprintf("'%s': malformed %%-escape in the export name", url);
		return NULL;
	}
	if (is_unix) {
		if ((path ? path : path_end) != auth) {
			*errp = ctl_xasprintf("'%s': nbd+unix:// takes no host: "
					      "nbd+unix:///EXPORT?socket=PATH", url);
			goto fail;
		}
		if (!query || strncmp(query, "?socket=", 8) || !query[8] ||
		    strchr(query + 8, '&')) {
			*errp = ctl_xasprintf("'%s': nbd+unix:// needs exactly one "
					      "'?socket=PATH'", url);
			goto fail;
		}
		sock = percent_decode(query + 8, strlen(query + 8));
		if (!sock) {
			*errp = ctl_xasprintf("'%s': malformed %%-escape in the socket path", url);
			goto fail;
		}
		server = json_pack("{s:s, s:s}", "type", "unix", "path", sock);
	} else {
		const char *auth_end = path ? path : path_end;
		const char *colon = memchr(auth, ':', (size_t)(auth_end - auth));

		if (query) {
			*errp = ctl_xasprintf("'%s': nbd:// takes no query string", url);
			goto fail;
		}
		host = colon ? ctl_xasprintf("%.*s", (int)(colon - auth), auth) :
		       ctl_xasprintf("%.*s", (int)(auth_end - auth), auth);
		port = colon ? ctl_xasprintf("%.*s", (int)(auth_end - colon - 1), colon + 1) :
		       ctl_xstrdup(NBD_DEFAULT_PORT);
		if (!*host || !*port || strspn(port, "0123456789") != strlen(port)) {
			*errp = ctl_xasprintf("'%s': expected nbd://HOST[:PORT]/EXPORT", url);
			goto fail;
		}
		server = json_pack("{s:s, s:s, s:s}", "type", "inet", "host", host,
				   "port", port);
	}
	node = json_pack("{s:s, s:o, s:s}", "driver", "nbd", "server", server,
			 "export", export);
	free(export);
	free(host);
	free(port);
	free(sock);
	return node;
fail:
	free(export);
	free(host);
	free(port);
	free(sock);
	return NULL;
}

json_t *image_url_node(const char *url, char **errp)
{
	if (has_prefix(url, "http://"))
		return json_pack("{s:s, s:s}", "driver", "http", "url", url);
	if (has_prefix(url, "https://"))
		return json_pack("{s:s, s:s}", "driver", "https", "url", url);
	if (image_is_url(url))
		return nbd_url_node(url, errp);
	*errp = ctl_xasprintf("'%s' is not an nbd://, nbd+unix://, http:// or https:// URL",
			      url);
	return NULL;
}
