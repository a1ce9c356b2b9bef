/*
 * json-stream.c: split a byte stream into top-level JSON values
 * (see json-stream.h).  Only structure is tracked here; jansson does the
 * real parsing and reports syntax errors with their position.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "json-stream.h"
#include "util.h"

void json_stream_init(struct json_stream *js, size_t max)
{
	memset(js, 0, sizeof(*js));
	js->max = max;
}

void json_stream_free(struct json_stream *js)
{
	free(js->buf);
	js->buf = NULL;
	js->len = js->cap = 0;
}

size_t json_stream_pending(const struct json_stream *js)
{
	return js->len;
}

static int json_stream_append(struct json_stream *js, char c)
{
	if (js->len >= js->max)
		return -1;
	if (js->len == js->cap) {
		js->cap = js->cap ? js->cap * 2 : 256;
		if (js->cap > js->max + 1)
			js->cap = js->max + 1;
		js->buf = xrealloc(js->buf, js->cap);
	}
	js->buf[js->len++] = c;
	return 0;
}

static void json_stream_emit(struct json_stream *js, json_stream_cb cb, void *opaque)
{
	cb(js->buf, js->len, opaque);
	js->len = 0;
	js->depth = 0;
	js->in_string = js->escape = js->in_scalar = false;
	/* Give back the memory of a large message once it is handled. */
	if (js->cap > 65536) {
		free(js->buf);
		js->buf = NULL;
		js->cap = 0;
	}
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int json_stream_feed(struct json_stream *js, const char *data, size_t n,
		     json_stream_cb cb, void *opaque)
{
	for (size_t i = 0; i < n; i++) {
		char c = data[i];

		if (js->in_scalar) {
			/* A bare top-level token (number, keyword, garbage) ends at a delimiter. */
			if (is_space(c) || c == '{' || c == '[' || c == '"') {
				json_stream_emit(js, cb, opaque);
				if (is_space(c))
					continue;
				/* fall through to start the next value with c */
			} else {
				if (json_stream_append(js, c) < 0)
					return -1;
				continue;
			}
		}
		if (js->in_string) {
			if (json_stream_append(js, c) < 0)
				return -1;
			if (js->escape)
				js->escape = false;
			else if (c == '\\')
				js->escape = true;
			else if (c == '"') {
				js->in_string = false;
				if (js->depth == 0)
					json_stream_emit(js, cb, opaque);
			}
			continue;
		}
		if (js->depth == 0 && js->len == 0 && is_space(c))
			continue;
		if (json_stream_append(js, c) < 0)
			return -1;
		switch (c) {
		case '"':
			js->in_string = true;
			break;
		case '{':
		case '[':
			js->depth++;
			break;
		case '}':
		case ']':
			/* A stray closer at top level is emitted so it gets a parse error. */
			if (js->depth > 0)
				js->depth--;
			if (js->depth == 0)
				json_stream_emit(js, cb, opaque);
			break;
		default:
			if (js->depth == 0)
				js->in_scalar = true;
			break;
		}
	}
	return 0;
}
