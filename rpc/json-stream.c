/*
 * json-stream.c: cut a QMP byte stream into messages with QEMU's lexing
 * rules (see json-stream.h).  Tokens are recognised here only as far as
 * framing and QEMU's dialect need; jansson parses the rewritten text and
 * reports grammar errors with their position.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/json-stream.h"
#include "rpc/xalloc.h"

/* The states of QEMU's json-lexer.c that matter for framing. */
enum lex_state {
	LEX_START,		/* between tokens */
	LEX_DQ,			/* inside "..." */
	LEX_DQ_ESCAPE,		/* after a backslash inside "..." */
	LEX_SQ,			/* inside '...' (QEMU's extension) */
	LEX_SQ_ESCAPE,
	LEX_ZERO,		/* 0 */
	LEX_NONZERO,		/* 12 */
	LEX_MINUS,		/* - */
	LEX_POINT,		/* 1. */
	LEX_FRACTION,		/* 1.5 */
	LEX_EXP,		/* 1e */
	LEX_EXP_SIGN,		/* 1e- */
	LEX_EXP_DIGITS,		/* 1e5 */
	LEX_KEYWORD,		/* [a-z]+: true, false, null or an error for jansson */
	LEX_RECOVERY,		/* after an error: skipping to a place to restart */
};

/* Give back the memory of a large message once it is handled. */
#define KEEP_BUFFER 65536
/* How much of a stray token an error message quotes. */
#define STRAY_QUOTED 64

void json_stream_init(struct json_stream *js, size_t max)
{
	memset(js, 0, sizeof(*js));
	js->max = max;
	js->state = LEX_START;
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

bool json_stream_in_message(const struct json_stream *js)
{
	return js->len > 0 || js->discarding ||
	       (js->state != LEX_START && js->state != LEX_RECOVERY);
}

static void json_stream_reset(struct json_stream *js)
{
	js->len = 0;
	js->token_start = 0;
	js->braces = js->brackets = 0;
	js->tokens = 0;
	js->discarding = false;
	if (js->cap > KEEP_BUFFER) {
		free(js->buf);
		js->buf = NULL;
		js->cap = 0;
	}
}

/*
 * The message breaks a limit: answer it at once with desc, then read the
 * rest of it without storing anything, to stay in step with the client.
 */
static void json_stream_refuse(struct json_stream *js, const char *desc,
			       json_stream_cb cb, void *opaque)
{
	js->discarding = true;
	js->len = 0;
	js->token_start = 0;
	if (js->cap > KEEP_BUFFER) {
		free(js->buf);
		js->buf = NULL;
		js->cap = 0;
	}
	cb(NULL, 0, desc, opaque);
}

/* Hold n more bytes of the message, if the size limit allows. */
static void json_stream_put(struct json_stream *js, const char *s, size_t n,
			    json_stream_cb cb, void *opaque)
{
	if (js->discarding)
		return;
	if (js->len + n > js->max) {
		char desc[128];

		snprintf(desc, sizeof(desc), "QMP input exceeds the limit of %zu bytes; "
			 "message discarded", js->max);
		json_stream_refuse(js, desc, cb, opaque);
		return;
	}
	if (js->len + n > js->cap) {
		size_t cap = js->cap ? js->cap : 256;

		while (cap < js->len + n)
			cap *= 2;
		js->cap = MIN(cap, js->max);
		js->buf = xrealloc(js->buf, js->cap);
	}
	memcpy(js->buf + js->len, s, n);
	js->len += n;
}

static void json_stream_putc(struct json_stream *js, char c, json_stream_cb cb, void *opaque)
{
	json_stream_put(js, &c, 1, cb, opaque);
}

/* A token is complete: the message ends when its nesting balances or breaks. */
static void json_stream_token_end(struct json_stream *js, json_stream_cb cb, void *opaque)
{
	js->state = LEX_START;
	js->token_start = js->len;
	/* QEMU's limits (json-streamer.c), checked as it does, token by token. */
	if (!js->discarding && ++js->tokens > JSON_STREAM_MAX_TOKENS)
		json_stream_refuse(js, "JSON token count limit exceeded", cb, opaque);
	if (!js->discarding && js->braces + js->brackets > JSON_STREAM_MAX_NESTING)
		json_stream_refuse(js, "JSON nesting depth limit exceeded", cb, opaque);
	if ((js->braces > 0 || js->brackets > 0) && js->braces >= 0 && js->brackets >= 0)
		return;
	if (!js->discarding)
		cb(js->buf, js->len, NULL, opaque);
	json_stream_reset(js);
}

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0.
 */
static size_t utf8_sequence_length(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		len = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		len = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xE0)
		lo = 0xA0;
	else if (p[0] == 0xED)
		hi = 0x9F;
	else if (p[0] == 0xF0)
		lo = 0x90;
	else if (p[0] == 0xF4)
		hi = 0x8F;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

/*
 * The broken token as the client sent it, for the error message: its
 * first STRAY_QUOTED bytes, then the byte that broke it.  Bytes that are
 * not UTF-8 (or NUL) become U+FFFD so that the reply is valid JSON.
 */
static char *json_stream_stray_token(const struct json_stream *js, unsigned char c)
{
	size_t held = js->len - js->token_start, n = MIN(held, (size_t)STRAY_QUOTED);
	bool single = js->state == LEX_SQ || js->state == LEX_SQ_ESCAPE;
	bool escape = js->state == LEX_DQ_ESCAPE || js->state == LEX_SQ_ESCAPE;
	unsigned char *raw = xmalloc(n + 5);
	size_t rawlen = n, i = 0;
	char *out, *p;

	if (n > 0)	/* buf may be NULL: no message held yet */
		memcpy(raw, js->buf + js->token_start, n);
	/* The rewrite turned ' into "; the backslash of an escape is not held yet. */
	if (single && rawlen > 0)
		raw[0] = '\'';
	if (held > n) {
		memcpy(raw + rawlen, "...", 3);
		rawlen += 3;
	}
	if (escape)
		raw[rawlen++] = '\\';
	raw[rawlen++] = c;
	p = out = xmalloc(3 * rawlen + 1);
	while (i < rawlen) {
		size_t len = raw[i] ? utf8_sequence_length(raw + i, rawlen - i) : 0;

		if (len == 0) {
			memcpy(p, "\xEF\xBF\xBD", 3);
			p += 3;
			i++;
		} else {
			memcpy(p, raw + i, len);
			p += len;
			i += len;
		}
	}
	*p = '\0';
	free(raw);
	return out;
}

/*
 * A byte that no token may contain: one error for the message (quoting
 * the broken token, as QEMU does), then skip to a restart point.
 */
static void json_stream_lex_error(struct json_stream *js, unsigned char c,
				  json_stream_cb cb, void *opaque)
{
	if (!js->discarding) {
		char *token = json_stream_stray_token(js, c);
		char *desc = xasprintf("JSON parse error, stray '%s'", token);

		cb(NULL, 0, desc, opaque);
		free(desc);
		free(token);
	}
	json_stream_reset(js);
	js->state = LEX_RECOVERY;
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* What QEMU's lexer allows inside a string: no control characters, no 0xFE/0xFF. */
static bool is_string_byte(unsigned char c)
{
	return c >= 0x20 && c <= 0xFD;
}

/*
 * Where QEMU's lexer restarts after an error: a structural character, or
 * a control character other than tab (a newline, in practice), or a byte
 * that is never UTF-8, which clients send on purpose to resynchronise.
 */
static bool is_restart_byte(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c >= 0xFE || strchr("[]{}:,", c) != NULL;
}

/* The start of a token, in LEX_START.  Returns false on an error. */
static bool json_stream_token_start(struct json_stream *js, unsigned char c,
				    json_stream_cb cb, void *opaque)
{
	js->token_start = js->len;
	switch (c) {
	case '"':
	case '\'':
		json_stream_putc(js, '"', cb, opaque);
		js->state = c == '"' ? LEX_DQ : LEX_SQ;
		return true;
	case '{':
	case '}':
	case '[':
	case ']':
		if (c == '{' || c == '}')
			js->braces += c == '{' ? 1 : -1;
		else
			js->brackets += c == '[' ? 1 : -1;
		/* fall through */
	case ',':
	case ':':
		json_stream_putc(js, (char)c, cb, opaque);
		json_stream_token_end(js, cb, opaque);
		return true;
	case '-':
		js->state = LEX_MINUS;
		break;
	case '0':
		js->state = LEX_ZERO;
		break;
	default:
		if (c >= '1' && c <= '9')
			js->state = LEX_NONZERO;
		else if (c >= 'a' && c <= 'z')
			js->state = LEX_KEYWORD;
		else
			return false;
		break;
	}
	json_stream_putc(js, (char)c, cb, opaque);
	return true;
}

/*
 * One byte in a string.  QEMU accepts \' in both kinds of string and any
 * non-control byte after a backslash (its parser then refuses bad
 * escapes, as jansson does); the rewrite keeps every other escape as is.
 */
static bool json_stream_string_byte(struct json_stream *js, unsigned char c,
				    json_stream_cb cb, void *opaque)
{
	bool single = js->state == LEX_SQ || js->state == LEX_SQ_ESCAPE;

	if (!is_string_byte(c))
		return false;
	if (js->state == LEX_DQ_ESCAPE || js->state == LEX_SQ_ESCAPE) {
		if (c == '\'')
			json_stream_putc(js, '\'', cb, opaque);
		else
			json_stream_put(js, (const char[]){ '\\', (char)c }, 2, cb, opaque);
		js->state = single ? LEX_SQ : LEX_DQ;
	} else if (c == '\\') {
		js->state = single ? LEX_SQ_ESCAPE : LEX_DQ_ESCAPE;
	} else if (c == (single ? '\'' : '"')) {
		json_stream_putc(js, '"', cb, opaque);
		json_stream_token_end(js, cb, opaque);
	} else if (single && c == '"') {
		json_stream_put(js, "\\\"", 2, cb, opaque);
	} else {
		json_stream_putc(js, (char)c, cb, opaque);
	}
	return true;
}

/*
 * One byte of a number or keyword.  Returns 1 if c continues the token,
 * 0 if the token ended before c (c is then lexed afresh), -1 on an error
 * (c cannot follow: "01", "-x", "1.e").
 */
static int json_stream_number_byte(struct json_stream *js, unsigned char c)
{
	switch (js->state) {
	case LEX_ZERO:
		if (is_digit(c))
			return -1;
		if (c == '.')
			return js->state = LEX_POINT, 1;
		return 0;
	case LEX_NONZERO:
		if (is_digit(c))
			return 1;
		if (c == '.')
			return js->state = LEX_POINT, 1;
		if (c == 'e' || c == 'E')
			return js->state = LEX_EXP, 1;
		return 0;
	case LEX_MINUS:
		if (c == '0')
			return js->state = LEX_ZERO, 1;
		return is_digit(c) ? (js->state = LEX_NONZERO, 1) : -1;
	case LEX_POINT:
		return is_digit(c) ? (js->state = LEX_FRACTION, 1) : -1;
	case LEX_FRACTION:
		if (is_digit(c))
			return 1;
		if (c == 'e' || c == 'E')
			return js->state = LEX_EXP, 1;
		return 0;
	case LEX_EXP:
		if (c == '+' || c == '-')
			return js->state = LEX_EXP_SIGN, 1;
		return is_digit(c) ? (js->state = LEX_EXP_DIGITS, 1) : -1;
	case LEX_EXP_SIGN:
		return is_digit(c) ? (js->state = LEX_EXP_DIGITS, 1) : -1;
	case LEX_EXP_DIGITS:
		return is_digit(c) ? 1 : 0;
	case LEX_KEYWORD:
		return c >= 'a' && c <= 'z' ? 1 : 0;
	default:
		return -1;
	}
}

static void json_stream_byte(struct json_stream *js, unsigned char c,
			     json_stream_cb cb, void *opaque)
{
	for (;;) {
		int rc;

		switch (js->state) {
		case LEX_RECOVERY:
			if (!is_restart_byte(c))
				return;
			js->state = LEX_START;
			continue;
		case LEX_START:
			if (is_space(c)) {
				/* Kept inside a message: "[1 2]" must not become "[12]". */
				if (js->len > 0 || js->discarding)
					json_stream_putc(js, (char)c, cb, opaque);
				return;
			}
			if (!json_stream_token_start(js, c, cb, opaque))
				json_stream_lex_error(js, c, cb, opaque);
			return;
		case LEX_DQ:
		case LEX_DQ_ESCAPE:
		case LEX_SQ:
		case LEX_SQ_ESCAPE:
			if (!json_stream_string_byte(js, c, cb, opaque))
				json_stream_lex_error(js, c, cb, opaque);
			return;
		default:
			rc = json_stream_number_byte(js, c);
			if (rc > 0) {
				json_stream_putc(js, (char)c, cb, opaque);
				return;
			}
			if (rc < 0) {
				json_stream_lex_error(js, c, cb, opaque);
				return;
			}
			/* The number or keyword ended before c: lex c afresh. */
			json_stream_token_end(js, cb, opaque);
			continue;
		}
	}
}

void json_stream_stop(struct json_stream *js)
{
	js->stop = true;
}

size_t json_stream_feed(struct json_stream *js, const char *data, size_t n,
			json_stream_cb cb, void *opaque)
{
	size_t i;

	for (i = 0; i < n && !js->stop; i++)
		json_stream_byte(js, (unsigned char)data[i], cb, opaque);
	js->stop = false;
	return i;
}
