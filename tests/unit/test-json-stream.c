/*
 * test-json-stream.c: the QMP framing splitter (rpc/json-stream.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "json-stream.h"
#include "unit.h"

struct collected {
	char *msgs[16];
	int n;
};

static void collect(const char *text, size_t len, void *opaque)
{
	struct collected *c = opaque;

	if (c->n < 16)
		c->msgs[c->n++] = strndup(text, len);
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
	CHECK_EQ(json_stream_feed(&js, input, strlen(input), collect, &c), 0);
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
	CHECK_EQ(json_stream_feed(&js, "{\"exec", 6, collect, &c), 0);
	CHECK_EQ(c.n, 0);
	CHECK_EQ(json_stream_pending(&js), 6);
	CHECK_EQ(json_stream_feed(&js, "ute\":1}", 7, collect, &c), 0);
	CHECK_EQ(c.n, 1);
	CHECK_STREQ(c.msgs[0], "{\"execute\":1}");
	json_stream_free(&js);
	collected_free(&c);
}

static void test_bare_scalars_are_emitted(void)
{
	struct collected c = feed("foo 42\n\"str\"[1]", 1024);

	CHECK_EQ(c.n, 4);
	CHECK_STREQ(c.msgs[0], "foo");
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

static void test_oversized_value_is_refused(void)
{
	struct json_stream js;
	struct collected c = { .n = 0 };
	char big[200];

	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[1] = '"';
	json_stream_init(&js, 100);
	CHECK_EQ(json_stream_feed(&js, big, sizeof(big), collect, &c), -1);
	CHECK_EQ(c.n, 0);
	CHECK(json_stream_pending(&js) <= 100);
	json_stream_free(&js);
}

static void test_value_exactly_at_limit_is_accepted(void)
{
	struct collected c = feed("{\"a\":123}", 9);

	CHECK_EQ(c.n, 1);
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
		{ "oversized value is refused", test_oversized_value_is_refused },
		{ "value exactly at limit", test_value_exactly_at_limit_is_accepted },
		{ NULL, NULL },
	};

	return unit_run("json-stream", tests);
}
