/*
 * block-helpers.h: what the block-layer unit tests share: a temporary
 * directory, image files with known contents, and blockdev-add from a
 * JSON string.  Header-only because every tests/unit/test-*.c is its own
 * program.
 */
#ifndef EXPORTD_TEST_BLOCK_HELPERS_H
#define EXPORTD_TEST_BLOCK_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "rpc/error.h"
#include "util.h"

static char test_dir[64];
/* When set, file nodes made by test_add use this `aio` unless they say. */
static const char *test_default_aio;

static inline void test_dir_create(void)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/exportd-test-XXXXXX");
	if (!mkdtemp(test_dir)) {
		perror("mkdtemp");
		exit(2);
	}
}

static inline void test_dir_remove(void)
{
	char *cmd = xasprintf("rm -rf '%s'", test_dir);

	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", test_dir);
	free(cmd);
}

/* A path in the test directory; the caller frees it. */
static inline char *test_path(const char *name)
{
	return xasprintf("%s/%s", test_dir, name);
}

/* Byte i of the test pattern: recognisable at every offset. */
static inline unsigned char test_pattern(uint64_t i)
{
	return (unsigned char)((i * 7 + (i >> 12)) & 0xff);
}

/* The node called name, which the test has created (exit 2 if not). */
static inline struct block_node *node(const char *name)
{
	struct block_node *bs = block_node_find(name);

	if (!bs) {
		fprintf(stderr, "no node '%s'\n", name);
		exit(2);
	}
	return bs;
}

/* Whether buf holds the test pattern as found at offset. */
static inline bool buf_is_pattern(const unsigned char *buf, size_t len, uint64_t offset)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != test_pattern(offset + i))
			return false;
	}
	return true;
}

/* A file of size bytes filled with test_pattern. */
static inline char *test_image(const char *name, uint64_t size)
{
	char *path = test_path(name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	unsigned char buf[65536];

	if (fd < 0) {
		perror(path);
		exit(2);
	}
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = (size_t)MIN((uint64_t)sizeof(buf), size - off);

		for (size_t i = 0; i < n; i++)
			buf[i] = test_pattern(off + i);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			perror("pwrite");
			exit(2);
		}
	}
	close(fd);
	return path;
}

/* blockdev-add from printf-formatted JSON; returns 0 or -1 with *errp. */
static inline int test_add(struct error **errp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline int test_add(struct error **errp, const char *fmt, ...)
{
	va_list ap;
	char *text;
	json_error_t jerr;
	json_t *opts;
	int ret;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	opts = json_loads(text, 0, &jerr);
	if (!opts) {
		fprintf(stderr, "bad test JSON: %s: %s\n", text, jerr.text);
		exit(2);
	}
	free(text);
	if (test_default_aio && !json_object_get(opts, "aio") &&
	    !strcmp(json_string_value(json_object_get(opts, "driver")), "file"))
		json_object_set_new(opts, "aio", json_string(test_default_aio));
	ret = blockdev_add(opts, errp);
	json_decref(opts);
	return ret;
}

/* blockdev-add that must work. */
#define ADD_OK(...) do {						\
		struct error *add_err_ = NULL;				\
		int add_ret_ = test_add(&add_err_, __VA_ARGS__);	\
		if (add_ret_ < 0)					\
			fprintf(stderr, "    blockdev-add: %s\n",	\
				add_err_->msg);				\
		CHECK_EQ(add_ret_, 0);					\
		error_free(add_err_);					\
	} while (0)

/* True when err is set and its message is exactly msg. */
static inline bool test_err_is(struct error *err, const char *msg)
{
	if (!err) {
		fprintf(stderr, "    expected error \"%s\", got none\n", msg);
		return false;
	}
	if (strcmp(err->msg, msg)) {
		fprintf(stderr, "    expected error \"%s\"\n    got            \"%s\"\n",
			msg, err->msg);
		return false;
	}
	return true;
}

/* True when err is set and contains part. */
static inline bool test_err_has(struct error *err, const char *part)
{
	if (!err) {
		fprintf(stderr, "    expected an error with \"%s\", got none\n", part);
		return false;
	}
	if (!strstr(err->msg, part)) {
		fprintf(stderr, "    expected an error with \"%s\"\n    got \"%s\"\n",
			part, err->msg);
		return false;
	}
	return true;
}

/* Delete a node that must be deletable. */
static inline void test_del(const char *name)
{
	struct error *err = NULL;

	if (blockdev_del(name, &err) < 0) {
		fprintf(stderr, "    blockdev-del %s: %s\n", name, err->msg);
		error_free(err);
	}
}

#endif
