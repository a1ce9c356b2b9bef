/*
 * json-stream.h: split a QMP byte stream into top-level JSON messages the
 * way QEMU's monitor does (qobject/json-lexer.c + json-streamer.c).
 *
 * QMP input is a stream of JSON values, with or without a newline after
 * each, so we cannot split on newlines.  A small lexer cuts the bytes into
 * tokens with QEMU's rules, and a message ends when its braces and
 * brackets balance.  QEMU's dialect is accepted: single-quoted strings
 * ('a"b', with \' escapes), and \' inside double-quoted strings; the text
 * handed to the callback is rewritten into plain JSON for jansson.
 *
 * Bad input never desynchronises the stream: a byte that cannot start or
 * continue a token (a raw control character inside a string, a stray '%')
 * ends the current message with one error, and lexing skips to the next
 * byte where a message can start (a structural character or a control
 * character, in practice the next line), as QEMU's lexer does.  A message
 * longer than `max` bytes gets one error; the rest of it is read and
 * dropped without being stored, so memory stays bounded by `max`.  So is
 * a message of more than JSON_STREAM_MAX_TOKENS tokens (jansson would
 * spend ~50 bytes and much time on each: a 16 MiB "[1,1,...]" took 384 MiB
 * and 17 s of the main loop) or nested deeper than JSON_STREAM_MAX_NESTING.
 */
#ifndef EXPORTD_JSON_STREAM_H
#define EXPORTD_JSON_STREAM_H

#include <stdbool.h>
#include <stddef.h>

/*
 * QEMU allows 2M tokens; QMP requests hold a few hundred, and exportd's
 * largest legitimate one (a blockdev-add with a backing chain) a few
 * thousand.  The nesting limit is QEMU's.
 */
#define JSON_STREAM_MAX_TOKENS 65536
#define JSON_STREAM_MAX_NESTING 1024

struct json_stream {
	char *buf;		/* the current message, rewritten to plain JSON */
	size_t len, cap;
	size_t max;		/* largest message accepted, in input bytes */
	size_t in_len;		/* input bytes of the current message */
	size_t token_start;	/* offset in buf where the current token began */
	int state;		/* lexer state (json-stream.c) */
	long braces, brackets;	/* nesting of the current message (a discarded one is unbounded) */
	size_t tokens;		/* tokens of the current message */
	bool discarding;	/* over max: answered, now dropping the rest */
	bool stop;		/* the callback asked feed to return */
};

/*
 * Called once per message: either text (plain JSON, len bytes, not
 * NUL-terminated) and error NULL, or text NULL and error a description
 * in QEMU's wording ("JSON parse error, stray '...'").
 */
typedef void (*json_stream_cb)(const char *text, size_t len, const char *error,
			       void *opaque);

void json_stream_init(struct json_stream *js, size_t max);
void json_stream_free(struct json_stream *js);
/*
 * Feed n bytes; cb is called for each complete message or error.  Returns
 * how many bytes were consumed: n, unless cb called json_stream_stop().
 */
size_t json_stream_feed(struct json_stream *js, const char *data, size_t n,
			json_stream_cb cb, void *opaque);
/*
 * From cb: return from json_stream_feed after this message, so that the
 * caller can stop reading (its client is not reading the replies).
 */
void json_stream_stop(struct json_stream *js);
/* Bytes held for the incomplete message (for tests and accounting). */
size_t json_stream_pending(const struct json_stream *js);
/* Whether a message has started and not ended yet. */
bool json_stream_in_message(const struct json_stream *js);

#endif
