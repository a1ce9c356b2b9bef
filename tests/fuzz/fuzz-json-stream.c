/*
 * fuzz-json-stream.c: libFuzzer target for the QMP framing
 * (rpc/json-stream.c), which reads whatever a client sends.  Checks that
 * no message handed on is over the limit, that every error is valid UTF-8
 * (it goes into a JSON reply), that jansson copes with every message, and
 * that cutting the input in two anywhere changes nothing: the framing must
 * not depend on how the bytes arrive.
 */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/json-stream.h"

/* Small, so that over-long messages and their skipping are exercised. */
#define FUZZ_MAX_MESSAGE 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything the callbacks saw, as one byte string: 'M' or 'E', length, bytes. */
struct transcript {
	char *text;
	size_t len;
};

static void transcript_add(struct transcript *t, char kind, const char *s, size_t n)
{
	t->text = realloc(t->text, t->len + 1 + sizeof(n) + n);
	if (!t->text)
		abort();
	t->text[t->len++] = kind;
	memcpy(t->text + t->len, &n, sizeof(n));
	t->len += sizeof(n);
	memcpy(t->text + t->len, s, n);
	t->len += n;
}

static void on_message(const char *text, size_t len, const char *error, void *opaque)
{
	struct transcript *t = opaque;
	json_error_t jerr;

	if (error) {
		json_t *s = json_string(error);

		if (!s)
			abort();	/* not UTF-8: the reply would be lost */
		json_decref(s);
		transcript_add(t, 'E', error, strlen(error));
		return;
	}
	if (len > FUZZ_MAX_MESSAGE)
		abort();
	json_decref(json_loadb(text, len, JSON_DECODE_ANY, &jerr));
	transcript_add(t, 'M', text, len);
}

static void run(const uint8_t *data, size_t size, size_t cut, struct transcript *t)
{
	struct json_stream js;

	json_stream_init(&js, FUZZ_MAX_MESSAGE);
	json_stream_feed(&js, (const char *)data, cut, on_message, t);
	if (json_stream_pending(&js) > FUZZ_MAX_MESSAGE)
		abort();
	json_stream_feed(&js, (const char *)data + cut, size - cut, on_message, t);
	if (json_stream_pending(&js) > FUZZ_MAX_MESSAGE)
		abort();
	json_stream_free(&js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript whole = { 0 }, split = { 0 };
	size_t cut = size ? data[0] % (size + 1) : 0;

	run(data, size, size, &whole);
	run(data, size, cut, &split);
	if (whole.len != split.len || memcmp(whole.text, split.text, whole.len) != 0)
		abort();
	free(whole.text);
	free(split.text);
	return 0;
}
