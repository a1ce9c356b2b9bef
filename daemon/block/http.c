/*
 * block/http.c: QEMU's read-only `http` and `https` protocol drivers
 * (block/curl.c): a node whose bytes are a file on a web server, read with
 * HTTP Range requests through libcurl.
 *
 * Why it is built this way:
 * - Request threads call pread synchronously.  Each takes a curl easy
 *   handle from the node's pool (or makes one, up to HTTP_MAX_HANDLES) and
 *   gives it back afterwards, so the handle's kept-alive connection (and
 *   TLS session) serves the next request of whichever thread comes next:
 *   connections are reused across threads, and up to HTTP_MAX_HANDLES
 *   requests are in flight at once.
 * - As QEMU, a read fetches `readahead` bytes more than asked (default
 *   256 KiB) and keeps the result in a small cache of recent ranges, so
 *   sequential reads cost one request per readahead window.  Unlike QEMU,
 *   only reads that start near where the last one ended do: random reads
 *   fetch what they ask for.
 * - As QEMU, opening sends a HEAD request: the size is the
 *   Content-Length, and a server that does not answer "Accept-Ranges:
 *   bytes" is refused.  A reply to a Range request must be 206 with
 *   exactly the bytes asked for; anything else (a server that sends the
 *   whole file, a short body, a timeout, a refused connection) is EIO,
 *   logged with the reason, and the node stays: the next read tries
 *   again.
 * - Only http and https are allowed, for the URL and for redirects, so a
 *   URL or a redirect cannot make the daemon read file:// or other local
 *   resources.
 * - The '*-secret' members need secret objects, which this tree does not
 *   have yet: they are refused with a clear error rather than ignored.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "block/block.h"
#include "log.h"
#include "util.h"

#if HAVE_LIBCURL

#include <curl/curl.h>

/* QEMU's defaults and limits (block/curl.c). */
#define HTTP_READAHEAD_DEFAULT	(256 * 1024)
#define HTTP_TIMEOUT_DEFAULT	5
#define HTTP_TIMEOUT_MAX	10000
/* Easy handles (so connections and requests in flight) per node. */
#define HTTP_MAX_HANDLES	16
/* Ranges kept from earlier reads (with their readahead). */
#define HTTP_CACHE_SLOTS	16

struct http_cache_slot {
	uint64_t offset;
	size_t len;		/* 0: empty */
	char *buf;
	uint64_t used;		/* LRU clock */
};

struct http_state {
	char *url;
	char *cookie;
	char *username, *proxy_username;
	bool sslverify;
	long timeout;
	size_t readahead;
	int64_t size;

	pthread_mutex_t lock;	/* the pool and the cache */
	pthread_cond_t handle_free;
	CURL *idle[HTTP_MAX_HANDLES];
	int nidle, nhandles;
	struct http_cache_slot cache[HTTP_CACHE_SLOTS];
	uint64_t clock;
	atomic_uint_fast64_t last_end;	/* where the last read ended */
	bool lock_init;
};

static struct http_state *http_state(struct block_node *bs)
{
	return bs->opaque;
}

static pthread_once_t http_global_once = PTHREAD_ONCE_INIT;

static void http_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static CURL *http_handle_new(struct http_state *s)
{
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_URL, s->url);
	/* Threads: libcurl must not use signals for its timeouts. */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, s->timeout);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, s->sslverify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, s->sslverify ? 2L : 0L);
	if (s->cookie)
		curl_easy_setopt(c, CURLOPT_COOKIE, s->cookie);
	if (s->username)
		curl_easy_setopt(c, CURLOPT_USERNAME, s->username);
	if (s->proxy_username)
		curl_easy_setopt(c, CURLOPT_PROXYUSERNAME, s->proxy_username);
	return c;
}

/* A handle for one request: an idle one, a new one, or wait for one. */
static CURL *http_handle_get(struct http_state *s)
{
	CURL *c = NULL;

	pthread_mutex_lock(&s->lock);
	while (!s->nidle && s->nhandles >= HTTP_MAX_HANDLES)
		pthread_cond_wait(&s->handle_free, &s->lock);
	if (s->nidle) {
		c = s->idle[--s->nidle];
	} else {
		s->nhandles++;
		pthread_mutex_unlock(&s->lock);
		c = http_handle_new(s);
		pthread_mutex_lock(&s->lock);
		if (!c)
			s->nhandles--;
	}
	pthread_mutex_unlock(&s->lock);
	return c;
}

static void http_handle_put(struct http_state *s, CURL *c)
{
	pthread_mutex_lock(&s->lock);
	s->idle[s->nidle++] = c;
	pthread_cond_signal(&s->handle_free);
	pthread_mutex_unlock(&s->lock);
}

/* Where a Range reply's body goes: never more than asked for. */
struct http_sink {
	char *buf;
	size_t want, got;
	bool overflow;
};

static size_t http_on_body(char *data, size_t size, size_t n, void *opaque)
{
	struct http_sink *sink = opaque;
	size_t len = size * n;

	if (len > sink->want - sink->got) {
		sink->overflow = true;
		return 0;	/* makes curl fail the transfer */
	}
	memcpy(sink->buf + sink->got, data, len);
	sink->got += len;
	return len;
}

/* GET [offset, offset+len) into buf.  0 or -EIO, with the reason logged. */
static int http_get_range(struct block_node *bs, char *buf, size_t len, uint64_t offset)
{
	struct http_state *s = http_state(bs);
	struct http_sink sink = { .buf = buf, .want = len };
	char range[64], errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;
	CURL *c = http_handle_get(s);

	if (!c)
		return -ENOMEM;
	snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, offset,
		 offset + len - 1);
	curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_RANGE, range);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
	http_handle_put(s, c);

	if (sink.overflow) {
		log_warnx("node '%s': %s sent more than the %zu bytes asked for at %" PRIu64
			  " (HTTP %ld)", bs->node_name, s->url, len, offset, status);
		return -EIO;
	}
	if (rc != CURLE_OK) {
		log_warnx("node '%s': reading %s at %" PRIu64 ": %s", bs->node_name, s->url,
			  offset, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		return -EIO;
	}
	if (status != 206 || sink.got != len) {
		log_warnx("node '%s': reading %s at %" PRIu64 ": HTTP %ld, %zu of %zu bytes",
			  bs->node_name, s->url, offset, status, sink.got, len);
		return -EIO;
	}
	return 0;
}

/* Copy [offset, offset+len) from a cached range if one holds all of it. */
static bool http_cache_read(struct http_state *s, void *buf, size_t len, uint64_t offset)
{
	bool hit = false;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < HTTP_CACHE_SLOTS; i++) {
		struct http_cache_slot *slot = &s->cache[i];

		if (slot->len && offset >= slot->offset &&
		    offset + len <= slot->offset + slot->len) {
			memcpy(buf, slot->buf + (offset - slot->offset), len);
			slot->used = ++s->clock;
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

/* Keep buf (taken over) as the cached range at offset, evicting the oldest. */
static void http_cache_store(struct http_state *s, char *buf, size_t len, uint64_t offset)
{
	struct http_cache_slot *victim;

	pthread_mutex_lock(&s->lock);
	victim = &s->cache[0];
	for (int i = 1; i < HTTP_CACHE_SLOTS; i++) {
		if (s->cache[i].used < victim->used)
			victim = &s->cache[i];
	}
	free(victim->buf);
	victim->buf = buf;
	victim->len = len;
	victim->offset = offset;
	victim->used = ++s->clock;
	pthread_mutex_unlock(&s->lock);
}

static int http_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	struct http_state *s = http_state(bs);
	uint64_t last_end;
	size_t fetch;
	char *tmp;
	int ret;

	if (len == 0)
		return 0;
	if (http_cache_read(s, buf, len, offset))
		return 0;
	/*
	 * Read ahead only where reads follow each other (request threads
	 * reorder them a little): a random 4k read that fetched 256 KiB
	 * more would cost 65 times the bytes for nothing.
	 */
	last_end = atomic_exchange(&s->last_end, offset + len);
	if (!s->readahead || offset + s->readahead < last_end ||
	    offset > last_end + s->readahead)
		return http_get_range(bs, buf, len, offset);
	fetch = (size_t)MIN((uint64_t)len + s->readahead, (uint64_t)s->size - offset);
	tmp = malloc(fetch);
	if (!tmp)
		return -ENOMEM;
	ret = http_get_range(bs, tmp, fetch, offset);
	if (ret < 0) {
		free(tmp);
		return ret;
	}
	memcpy(buf, tmp, len);
	http_cache_store(s, tmp, fetch, offset);
	return 0;
}

static int http_pwrite(struct block_node *bs, const void *buf, size_t len,
		       uint64_t offset)
{
	(void)bs, (void)buf, (void)len, (void)offset;
	return -EROFS;
}

/* HEAD: remember whether the server takes byte ranges. */
static size_t http_on_header(char *data, size_t size, size_t n, void *opaque)
{
	bool *accept_ranges = opaque;
	size_t len = size * n;
	static const char key[] = "accept-ranges:";

	if (len > sizeof(key) - 1 && !strncasecmp(data, key, sizeof(key) - 1)) {
		const char *v = data + sizeof(key) - 1;
		size_t vlen = len - (sizeof(key) - 1);

		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		if (vlen >= 5 && !strncasecmp(v, "bytes", 5))
			*accept_ranges = true;
	}
	return len;
}

static const char *http_refused_secret(json_t *options)
{
	static const char *const keys[] = { "password-secret", "proxy-password-secret",
					    "cookie-secret" };

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (json_object_get(options, keys[i]))
			return keys[i];
	}
	return NULL;
}

static int http_open_state(struct block_node *bs, json_t *options, struct error **errp)
{
	struct http_state *s = http_state(bs);
	const char *url = json_string_value(json_object_get(options, "url"));
	json_t *readahead = json_object_get(options, "readahead");
	json_t *timeout = json_object_get(options, "timeout");
	json_t *verify = json_object_get(options, "sslverify");
	const char *opt;
	char errbuf[CURL_ERROR_SIZE] = "";
	bool accept_ranges = false;
	curl_off_t length = -1;
	long status = 0;
	CURLcode rc;
	CURL *c;

	if (!bs->read_only) {
		if (!json_is_true(json_object_get(options, "auto-read-only"))) {
			error_setg(errp, "curl block device does not support writes");
			return -1;
		}
		bs->read_only = true;
	}
	if ((opt = http_refused_secret(options))) {
		error_setg(errp, "Node '%s': '%s' is not supported by exportd yet (no secret "
			   "objects)", bs->node_name, opt);
		return -1;
	}
	s->readahead = HTTP_READAHEAD_DEFAULT;
	if (readahead) {
		json_int_t v = json_integer_value(readahead);

		if (v < 0 || (v & 0x1ff)) {
			error_setg(errp, "HTTP_READAHEAD_SIZE %" JSON_INTEGER_FORMAT
				   " is not a multiple of 512", v);
			return -1;
		}
		/* One read is at most this plus a 1 MiB request in memory. */
		if (v > 64 * 1024 * 1024) {
			error_setg(errp, "readahead %" JSON_INTEGER_FORMAT " is larger than "
				   "64 MiB", v);
			return -1;
		}
		s->readahead = (size_t)v;
	}
	s->timeout = timeout ? (long)json_integer_value(timeout) : HTTP_TIMEOUT_DEFAULT;
	if (timeout && (json_integer_value(timeout) < 0 ||
			json_integer_value(timeout) > HTTP_TIMEOUT_MAX)) {
		error_setg(errp, "timeout parameter is too large or negative");
		return -1;
	}
	s->sslverify = verify ? json_is_true(verify) : true;
	s->url = xstrdup(url);
	opt = json_string_value(json_object_get(options, "cookie"));
	s->cookie = opt ? xstrdup(opt) : NULL;
	opt = json_string_value(json_object_get(options, "username"));
	s->username = opt ? xstrdup(opt) : NULL;
	opt = json_string_value(json_object_get(options, "proxy-username"));
	s->proxy_username = opt ? xstrdup(opt) : NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->handle_free, NULL);
	s->lock_init = true;

	if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
		error_setg(errp, "CURL: Error opening file: URL '%s' is not http:// or "
			   "https://", url);
		return -1;
	}
	pthread_once(&http_global_once, http_global_init);
	c = http_handle_new(s);
	if (!c) {
		error_setg(errp, "CURL: Error opening file: cannot make a curl handle");
		return -1;
	}
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &accept_ranges);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, NULL);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	if (rc != CURLE_OK) {
		error_setg(errp, "CURL: Error opening file: %s",
			   errbuf[0] ? errbuf : curl_easy_strerror(rc));
		goto fail;
	}
	if (status >= 400) {
		error_setg(errp, "CURL: Error opening file: HTTP status %ld for '%s'",
			   status, url);
		goto fail;
	}
	if (length < 0) {
		error_setg(errp, "CURL: Error opening file: the server did not send the "
			   "size of '%s'", url);
		goto fail;
	}
	if (!accept_ranges) {
		error_setg(errp, "CURL: Error opening file: Server does not support "
			   "'range' (byte ranges).");
		goto fail;
	}
	s->size = length;
	s->idle[s->nidle++] = c;
	s->nhandles = 1;
	bs->filename = xstrdup(url);
	return 0;
fail:
	curl_easy_cleanup(c);
	return -1;
}

static void http_close(struct block_node *bs)
{
	struct http_state *s = http_state(bs);

	for (int i = 0; i < s->nidle; i++)
		curl_easy_cleanup(s->idle[i]);
	s->nidle = 0;
	for (int i = 0; i < HTTP_CACHE_SLOTS; i++)
		free(s->cache[i].buf);
	if (s->lock_init) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->handle_free);
	}
	free(s->url);
	free(s->cookie);
	free(s->username);
	free(s->proxy_username);
}

/* On failure, undo what was set up: the block layer closes only open nodes. */
static int http_open(struct block_node *bs, json_t *options, struct error **errp)
{
	if (http_open_state(bs, options, errp) < 0) {
		http_close(bs);
		return -1;
	}
	return 0;
}

static int64_t http_get_length(struct block_node *bs)
{
	return http_state(bs)->size;
}

#define HTTP_DRIVER(drvname)				\
	{						\
		.name = drvname,			\
		.is_format = false,			\
		.state_size = sizeof(struct http_state), \
		.open = http_open,			\
		.close = http_close,			\
		.get_length = http_get_length,		\
		.pread = http_pread,			\
		.pwrite = http_pwrite,			\
	}

const struct block_driver block_driver_http = HTTP_DRIVER("http");
const struct block_driver block_driver_https = HTTP_DRIVER("https");

#endif /* HAVE_LIBCURL */
