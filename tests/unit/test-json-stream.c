/*
 * test-json-stream.c: the QMP framing splitter (rpc/json-stream.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/json-stream.h"
#include "unit.h"

struct collected {
	char *msgs[16];
	int n;
};

/* Messages are collected as their text, errors as "ERR " and the description. */
static void collect(const char *text, size_t len, const char *error, void *opaque)
{
	struct collected *c = opaque;

	if (c->n >= 16)
		return;
	if (error) {
		c->msgs[c->n] = malloc(strlen(error) + 5);
		strcpy(c->msgs[c->n], "ERR ");
		strcat(c->msgs[c->n], error);
		c->n++;
	} else {
		c->msgs[c->n++] = strndup(text, len);
	}
}

static void collected_free(struct collected *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->msgs[i]);
}

static struct collected feed(const char *input, size_t max)
{
	struct json_stream js;
	struct collected c = { .n = 0 };

	json_stream_init(&js, max);
	json_stream_feed(&js, input, strlen(input), collect, &c);
	json_stream_free(&js);
	return c;
}

static void test_newline_separated(void)
{
	struct collected c = feed("{\"a\":1}\n{\"b\":2}\n", 1024);

	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "{\"a\":1}");
	CHECK_STREQ(c.msgs[1], "{\"b\":2}");
	collected_free(&c);
}

static void test_back_to_back_without_newline(void)
{
	struct collected c = feed("{\"a\":1}{\"b\":[1,{}]}", 1024);

	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[1], "{\"b\":[1,{}]}");
	collected_free(&c);
}

static void test_braces_inside_strings(void)
{
	struct collected c = feed("{\"a\":\"}{\\\"][\"}\n", 1024);

	CHECK_EQ(c.n, 1);
	CHECK_STREQ(c.msgs[0], "{\"a\":\"}{\\\"][\"}");
	collected_free(&c);
}

static void test_split_across_feeds(void)
{
	struct json_stream js;
	struct collected c = { .n = 0 };

	json_stream_init(&js, 1024);
	json_stream_feed(&js, "{\"exec", 6, collect, &c);
	CHECK_EQ(c.n, 0);
	CHECK_EQ(json_stream_pending(&js), 6);
	json_stream_feed(&js, "ute\":1}", 7, collect, &c);
	CHECK_EQ(c.n, 1);
	CHECK_STREQ(c.msgs[0], "{\"execute\":1}");
	json_stream_free(&js);
	collected_free(&c);
}

static void test_bare_scalars_are_emitted(void)
{
	struct collected c = feed("true 42\n\"str\"[1]", 1024);

	CHECK_EQ(c.n, 4);
	CHECK_STREQ(c.msgs[0], "true");
	CHECK_STREQ(c.msgs[1], "42");
	CHECK_STREQ(c.msgs[2], "\"str\"");
	CHECK_STREQ(c.msgs[3], "[1]");
	collected_free(&c);
}

static void test_stray_closer_is_emitted_for_an_error(void)
{
	struct collected c = feed("}{\"a\":1}", 1024);

	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "}");
	collected_free(&c);
}

static void test_whitespace_between_tokens_is_kept(void)
{
	/* "[1 2]" is an error for the parser; it must not become "[12]". */
	struct collected c = feed("[1 2]", 1024);

	CHECK_EQ(c.n, 1);
	CHECK_STREQ(c.msgs[0], "[1 2]");
	collected_free(&c);
}

static void test_raw_newline_in_string_is_one_error_then_resync(void)
{
	struct collected c = feed("{\"exec\n{\"execute\":\"x\"}\n", 1024);

	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "ERR JSON parse error, stray '\"exec\n'");
	CHECK_STREQ(c.msgs[1], "{\"execute\":\"x\"}");
	collected_free(&c);
}

static void test_recovery_restarts_at_a_structural_character(void)
{
	/* As QEMU: skip to the '}', which is then a stray closer of its own. */
	struct collected c = feed("{\"a\x01" "b\"}{\"c\":1}", 1024);

	CHECK_EQ(c.n, 3);
	CHECK_STREQ(c.msgs[0], "ERR JSON parse error, stray '\"a\x01'");
	CHECK_STREQ(c.msgs[1], "}");
	CHECK_STREQ(c.msgs[2], "{\"c\":1}");
	collected_free(&c);
}

static void test_bad_bytes_are_quoted_as_valid_utf8(void)
{
	struct collected c = feed("\xff{}", 1024);

	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "ERR JSON parse error, stray '\xEF\xBF\xBD'");
	CHECK_STREQ(c.msgs[1], "{}");
	collected_free(&c);
}

static void test_stray_token_keeps_utf8_and_the_escape(void)
{
	/* "é" stays, 0xC0 (never UTF-8) does not; an escape shows its backslash. */
	struct collected c = feed("\"\xc3\xa9\xc0\x01\n'a\\\x02\n", 1024);

	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "ERR JSON parse error, stray '\"\xc3\xa9\xEF\xBF\xBD\x01'");
	CHECK_STREQ(c.msgs[1], "ERR JSON parse error, stray ''a\\\x02'");
	collected_free(&c);
}

static void test_bad_numbers_are_lexing_errors(void)
{
	struct collected c = feed("01\n%d\n-x\n", 1024);

	CHECK_EQ(c.n, 3);
	CHECK_STREQ(c.msgs[0], "ERR JSON parse error, stray '01'");
	CHECK_STREQ(c.msgs[1], "ERR JSON parse error, stray '%'");
	CHECK_STREQ(c.msgs[2], "ERR JSON parse error, stray '-x'");
	collected_free(&c);
}

static void test_single_quoted_strings_become_json(void)
{
	struct collected c = feed("{'execute': 'a\"b\\'c', 'id': \"d\\'e\\\"\"}", 1024);

	CHECK_EQ(c.n, 1);
	CHECK_STREQ(c.msgs[0], "{\"execute\": \"a\\\"b'c\", \"id\": \"d'e\\\"\"}");
	collected_free(&c);
}

static void test_oversized_value_is_refused_and_skipped(void)
{
	struct json_stream js;
	struct collected c = { .n = 0 };
	char big[300];

	/* {"a": "xxx...x", "b": [1]} then a good message */
	memset(big, 'x', sizeof(big));
	memcpy(big, "{\"a\": \"", 7);
	memcpy(big + 250, "\", \"b\": [1]}{\"ok\":1}", 20);
	json_stream_init(&js, 100);
	json_stream_feed(&js, big, 270, collect, &c);
	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "ERR QMP input exceeds the limit of 100 bytes; message discarded");
	CHECK_STREQ(c.msgs[1], "{\"ok\":1}");
	CHECK(json_stream_pending(&js) <= 100);
	CHECK(!json_stream_in_message(&js));
	json_stream_free(&js);
	collected_free(&c);
}

struct stopping {
	struct json_stream *js;
	struct collected c;
};

static void stop_after_each(const char *text, size_t len, const char *error, void *opaque)
{
	struct stopping *ctx = opaque;

	collect(text, len, error, &ctx->c);
	json_stream_stop(ctx->js);
}

static void test_stop_returns_after_the_message(void)
{
	struct stopping ctx = { 0 };
	struct json_stream js;
	const char *in = "{\"a\":1} {\"b\":2}";
	size_t used;

	json_stream_init(&js, 1024);
	ctx.js = &js;
	used = json_stream_feed(&js, in, strlen(in), stop_after_each, &ctx);
	CHECK_EQ(used, 7);
	CHECK_EQ(ctx.c.n, 1);
	used += json_stream_feed(&js, in + used, strlen(in) - used, stop_after_each, &ctx);
	CHECK_EQ(used, strlen(in));
	CHECK_EQ(ctx.c.n, 2);
	CHECK_STREQ(ctx.c.msgs[1], "{\"b\":2}");
	json_stream_free(&js);
	collected_free(&ctx.c);
}

/* n copies of s, NUL-terminated; the caller frees. */
static char *repeat(const char *s, size_t n)
{
	size_t len = strlen(s);
	char *out = malloc(len * n + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(out + i * len, s, len);
	out[len * n] = '\0';
	return out;
}

static void test_nesting_limit_is_qemus_and_the_rest_is_skipped(void)
{
	char *open = repeat("[", JSON_STREAM_MAX_NESTING + 1);
	char *close = repeat("]", JSON_STREAM_MAX_NESTING + 1);
	char *in = malloc(2 * strlen(open) + 8);
	struct collected c;

	sprintf(in, "%s%s{}", open, close);
	c = feed(in, 1 << 20);
	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "ERR JSON nesting depth limit exceeded");
	CHECK_STREQ(c.msgs[1], "{}");
	collected_free(&c);
	free(in);
	free(open);
	free(close);
}

static void test_token_limit_and_the_rest_is_skipped(void)
{
	/* "[" + (MAX - 1) x "1," + "1]" is MAX * 2 tokens. */
	char *ones = repeat("1,", JSON_STREAM_MAX_TOKENS);
	char *in = malloc(strlen(ones) + 16);
	struct collected c;

	sprintf(in, "[%s1]{}", ones);
	c = feed(in, 1 << 20);
	CHECK_EQ(c.n, 2);
	CHECK_STREQ(c.msgs[0], "ERR JSON token count limit exceeded");
	CHECK_STREQ(c.msgs[1], "{}");
	collected_free(&c);
	free(in);
	free(ones);
}

static void test_value_exactly_at_limit_is_accepted(void)
{
	struct collected c = feed("{\"a\":123}", 9);

	CHECK_EQ(c.n, 1);
	CHECK_STREQ(c.msgs[0], "{\"a\":123}");
	collected_free(&c);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "newline separated", test_newline_separated },
		{ "back to back without newline", test_back_to_back_without_newline },
		{ "braces inside strings", test_braces_inside_strings },
		{ "split across feeds", test_split_across_feeds },
		{ "bare scalars are emitted", test_bare_scalars_are_emitted },
		{ "stray closer is emitted", test_stray_closer_is_emitted_for_an_error },
		{ "whitespace between tokens is kept", test_whitespace_between_tokens_is_kept },
		{ "raw newline in a string: one error, then resync",
		  test_raw_newline_in_string_is_one_error_then_resync },
		{ "recovery restarts at a structural character",
		  test_recovery_restarts_at_a_structural_character },
		{ "bad bytes are quoted as valid UTF-8", test_bad_bytes_are_quoted_as_valid_utf8 },
		{ "stray token keeps UTF-8 and the escape", test_stray_token_keeps_utf8_and_the_escape },
		{ "bad numbers are lexing errors", test_bad_numbers_are_lexing_errors },
		{ "single-quoted strings become JSON", test_single_quoted_strings_become_json },
		{ "oversized value is refused and skipped", test_oversized_value_is_refused_and_skipped },
		{ "nesting limit is QEMU's, the rest is skipped",
		  test_nesting_limit_is_qemus_and_the_rest_is_skipped },
		{ "token limit, the rest is skipped", test_token_limit_and_the_rest_is_skipped },
		{ "stop returns after the message", test_stop_returns_after_the_message },
		{ "value exactly at limit", test_value_exactly_at_limit_is_accepted },
		{ NULL, NULL },
	};

	return unit_run("json-stream", tests);
}
