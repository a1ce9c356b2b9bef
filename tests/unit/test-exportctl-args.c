/*
 * test-exportctl-args.c: exportctl's hand-typed QMP arguments
 * (client/qmp-args.c: KEY=VALUE words, dotted keys, JSON values, the
 * shell's word splitting) and the qcow2 probe (client/probe.c).  Both
 * are pure and included directly: the client is not in libexportd.a.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "../../client/qmp-args.c"
#include "../../client/probe.c"
#include "unit.h"

static char *dump(json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
}

static void check_args(int n, const char *const *words, const char *want)
{
	char *err = NULL;
	json_t *args = qmp_args_parse(n, words, &err);
	char *got = args ? dump(args) : NULL;

	CHECK_STREQ(got, want);
	if (!got || strcmp(got, want))
		fprintf(stderr, "  got %s (%s), want %s\n", got, err ? err : "", want);
	free(got);
	free(err);
	json_decref(args);
}

static void test_key_value(void)
{
	const char *w[] = { "driver=file", "node-name=n1", "size=1024", "read-only=true",
			    "x=null", "name=" };

	check_args(6, w, "{\"driver\":\"file\",\"name\":\"\",\"node-name\":\"n1\","
		   "\"read-only\":true,\"size\":1024,\"x\":null}");
}

static void test_dotted_keys_nest(void)
{
	const char *w[] = { "driver=raw", "file.driver=file", "file.filename=/a b.img" };

	check_args(3, w, "{\"driver\":\"raw\",\"file\":{\"driver\":\"file\","
		   "\"filename\":\"/a b.img\"}}");
}

static void test_json_values(void)
{
	const char *w[] = { "a={\"b\":[1,2]}", "c=[\"x\"]", "d=1.5" };

	check_args(3, w, "{\"a\":{\"b\":[1,2]},\"c\":[\"x\"],\"d\":1.5}");
}

static void test_one_json_object(void)
{
	const char *w[] = { "{\"id\": \"e\", \"mode\": \"hard\"}" };

	check_args(1, w, "{\"id\":\"e\",\"mode\":\"hard\"}");
	check_args(0, NULL, "{}");
}

static void expect_error(int n, const char *const *words, const char *msg)
{
	char *err = NULL;
	json_t *args = qmp_args_parse(n, words, &err);

	CHECK(args == NULL);
	CHECK(err && strstr(err, msg));
	if (!err || !strstr(err, msg))
		fprintf(stderr, "  error was '%s', expected '%s'\n", err, msg);
	free(err);
	json_decref(args);
}

static void test_errors(void)
{
	const char *noeq[] = { "novalue" };
	const char *noname[] = { "=1" };
	const char *twice[] = { "a=1", "a=2" };
	const char *notobj[] = { "a=1", "a.b=2" };
	const char *badjson[] = { "{\"a\":" };
	const char *array[] = { "[1]" };
	const char *emptypart[] = { "a..b=1" };

	expect_error(1, noeq, "expected KEY=VALUE or one JSON object, got 'novalue'");
	expect_error(1, noname, "expected KEY=VALUE");
	expect_error(2, twice, "'a=2' is given twice");
	expect_error(2, notobj, "'a' is not an object");
	expect_error(1, badjson, "invalid JSON arguments");
	expect_error(1, array, "expected KEY=VALUE");
	expect_error(1, emptypart, "empty member name");
}

static void check_split(const char *line, int want_n, const char *const *want)
{
	char *words[16];
	char *err = NULL;
	int n = qmp_args_split(line, words, 16, &err);

	CHECK_EQ(n, want_n);
	for (int i = 0; i < n && i < want_n; i++) {
		CHECK_STREQ(words[i], want[i]);
		if (strcmp(words[i], want[i]))
			fprintf(stderr, "  word %d: got [%s], want [%s]\n", i, words[i], want[i]);
	}
	for (int i = 0; i < n; i++)
		free(words[i]);
	free(err);
}

static void test_split(void)
{
	const char *w1[] = { "blockdev-add", "driver=file", "filename=/a b" };
	const char *w2[] = { "x", "a={\"k\": \"v w\", \"l\": [1, 2]}", "b=2" };
	const char *w3[] = { "x", "a=it's" };

	check_split("  blockdev-add driver=file 'filename=/a b'  ", 3, w1);
	check_split("blockdev-add  driver=file filename=\"/a b\"", 3, w1);
	check_split("x a={\"k\": \"v w\", \"l\": [1, 2]} b=2", 3, w2);
	check_split("x \"a=it's\"", 2, w3);
	check_split("   ", 0, NULL);
}

static void test_split_errors(void)
{
	char *words[4];
	char *err = NULL;

	CHECK_EQ(qmp_args_split("x 'open", words, 4, &err), -1);
	CHECK(err && strstr(err, "unterminated quote"));
	free(err);
	err = NULL;
	CHECK_EQ(qmp_args_split("x a={\"b\": 1", words, 4, &err), -1);
	CHECK(err && strstr(err, "unbalanced brackets"));
	free(err);
	err = NULL;
	CHECK_EQ(qmp_args_split("a b c d e", words, 4, &err), -1);
	CHECK(err && strstr(err, "too many words"));
	free(err);
}

static void test_probe_buffer(void)
{
	const unsigned char qcow2[] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	const unsigned char raw[] = { 'Q', 'F', 'I', 0xfa };

	CHECK_STREQ(probe_format_buf(qcow2, sizeof(qcow2)), "qcow2");
	CHECK_STREQ(probe_format_buf(qcow2, 4), "qcow2");
	CHECK_STREQ(probe_format_buf(qcow2, 3), "raw");	/* too short */
	CHECK_STREQ(probe_format_buf(raw, sizeof(raw)), "raw");
	CHECK_STREQ(probe_format_buf(raw, 0), "raw");
}

static const char *probe_path(const char *path, struct probe_info *pi)
{
	return probe_image(path, pi) == 0 ? pi->format : NULL;
}

static void test_probe_file(void)
{
	char path[] = "/tmp/test-exportctl-probe.XXXXXX";
	int fd = mkstemp(path);
	struct probe_info pi;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_STREQ(probe_path(path, &pi), "raw");	/* empty file */
	CHECK_EQ(write(fd, "QFI\xfb\0\0\0\3", 8), 8);
	CHECK_STREQ(probe_path(path, &pi), "qcow2");
	CHECK(pi.backing_file == NULL && !pi.data_file);
	probe_info_clear(&pi);
	close(fd);
	unlink(path);
	CHECK(probe_path(path, &pi) == NULL);
}

/* A qcow2 header naming a backing file: the probe reports the name. */
static void test_probe_backing_name(void)
{
	char path[] = "/tmp/test-exportctl-probe.XXXXXX";
	unsigned char h[112] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
	int fd = mkstemp(path);
	struct probe_info pi;
	const char *format;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	h[15] = 100;		/* backing_file_offset */
	h[19] = 11;		/* backing_file_size */
	h[79] = 4;		/* incompatible: external data file */
	memcpy(h + 100, "/etc/shadow", 11);
	CHECK_EQ(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	format = probe_path(path, &pi);	/* CHECK_STREQ evaluates twice */
	CHECK_STREQ(format, "qcow2");
	CHECK_STREQ(pi.backing_file, "/etc/shadow");
	CHECK(pi.data_file);
	probe_info_clear(&pi);
	close(fd);
	unlink(path);
}

/* A FIFO is refused at once, without blocking on its open. */
static void test_probe_fifo(void)
{
	char path[] = "/tmp/test-exportctl-fifo.XXXXXX";
	int fd = mkstemp(path);
	struct probe_info pi;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	close(fd);
	unlink(path);
	CHECK(mkfifo(path, 0600) == 0);
	CHECK(probe_path(path, &pi) == NULL);
	CHECK_EQ(errno, EINVAL);
	unlink(path);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "key_value", test_key_value },
		{ "dotted_keys_nest", test_dotted_keys_nest },
		{ "json_values", test_json_values },
		{ "one_json_object", test_one_json_object },
		{ "errors", test_errors },
		{ "split", test_split },
		{ "split_errors", test_split_errors },
		{ "probe_buffer", test_probe_buffer },
		{ "probe_file", test_probe_file },
		{ "probe_backing_name", test_probe_backing_name },
		{ "probe_fifo", test_probe_fifo },
		{ NULL, NULL },
	};

	return unit_run("exportctl-args", tests);
}
