/*
 * json-stream.h: split a byte stream into top-level JSON values.
 *
 * QMP input is a stream of JSON objects; QEMU's clients send them with or
 * without a newline after each, so we cannot split on newlines.  This is a
 * small state machine like QEMU's json-streamer: it tracks nesting depth
 * and strings, and hands out each complete top-level value as raw text for
 * jansson to parse.  Memory is bounded: a value longer than `max` bytes is
 * an error and the caller closes the connection.
 */
#ifndef EXPORTD_JSON_STREAM_H
#define EXPORTD_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>

struct json_stream {
	char *buf;		/* pending bytes of the current value */
	size_t len, cap;
	size_t max;		/* largest value accepted */
	int depth;		/* {} and [] nesting */
	bool in_string, escape, in_scalar;
};

typedef void (*json_stream_cb)(const char *text, size_t len, void *opaque);

void json_stream_init(struct json_stream *js, size_t max);
void json_stream_free(struct json_stream *js);
/*
 * Feed n bytes; cb is called for each complete value.  Returns 0, or -1
 * when the value being received exceeds js->max (the stream is then
 * unusable; the caller must close the connection).
 */
int json_stream_feed(struct json_stream *js, const char *data, size_t n,
		     json_stream_cb cb, void *opaque);
/* Bytes of an incomplete value held (for tests and accounting). */
size_t json_stream_pending(const struct json_stream *js);

#endif
