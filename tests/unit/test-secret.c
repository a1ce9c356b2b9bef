/*
 * test-secret.c: secret objects (daemon/object/secret.c) give back exactly
 * the bytes they were made from: raw, base64 (with the newlines a key file
 * has), from a file; lookups by a wrong id or type fail with QEMU's words;
 * a passphrase must be UTF-8.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "object/object.h"
#include "object/secret.h"
#include "unit.h"

static int add(const char *json)
{
	json_t *opts = json_loads(json, 0, NULL);
	struct error *err = NULL;
	int rc = object_add(opts, &err);

	json_decref(opts);
	if (err)
		error_free(err);
	return rc;
}

static bool lookup_is(const char *id, const void *bytes, size_t len)
{
	uint8_t *data;
	size_t n;
	bool ok;

	if (secret_lookup(id, &data, &n, NULL) < 0)
		return false;
	ok = n == len && !memcmp(data, bytes, len) && data[n] == 0;
	secret_free(data, n);
	return ok;
}

static void test_raw_and_base64(void)
{
	CHECK_EQ(add("{\"qom-type\": \"secret\", \"id\": \"r\", \"data\": \"hunter2\"}"), 0);
	CHECK(lookup_is("r", "hunter2", 7));
	CHECK_EQ(add("{\"qom-type\": \"secret\", \"id\": \"b\", \"data\": \"AAFzZWNyZXQ=\","
		     " \"format\": \"base64\"}"), 0);
	CHECK(lookup_is("b", "\0\1secret", 8));
	CHECK_EQ(add("{\"qom-type\": \"secret\", \"id\": \"n\", \"data\": \"aGVs\\nbG8=\\n\","
		     " \"format\": \"base64\"}"), 0);
	CHECK(lookup_is("n", "hello", 5));
	object_del_all();
}

static void test_file(void)
{
	char path[] = "/tmp/test-secret-XXXXXX";
	FILE *f;
	int fd = mkstemp(path);
	char json[256];

	CHECK(fd >= 0);
	f = fdopen(fd, "w");
	fputs("pass phrase\n", f);
	fclose(f);
	snprintf(json, sizeof(json), "{\"qom-type\": \"secret\", \"id\": \"f\", \"file\": \"%s\"}",
		 path);
	CHECK_EQ(add(json), 0);
	unlink(path);
	/* Raw data from a file is taken as it is, newline included, as QEMU does. */
	CHECK(lookup_is("f", "pass phrase\n", 12));
	object_del_all();
}

static void test_lookup_errors(void)
{
	struct error *err = NULL;
	uint8_t *data;
	size_t n;

	CHECK_EQ(secret_lookup("none", &data, &n, &err), -1);
	CHECK_STREQ(err->msg, "No secret with id 'none'");
	error_free(err);
	err = NULL;
	CHECK_EQ(add("{\"qom-type\": \"iothread\", \"id\": \"io\"}"), 0);
	CHECK_EQ(secret_lookup("io", &data, &n, &err), -1);
	CHECK_STREQ(err->msg, "Object with id 'io' is not a secret");
	error_free(err);
	err = NULL;
	CHECK_EQ(add("{\"qom-type\": \"secret\", \"id\": \"bin\", \"data\": \"/w==\","
		     " \"format\": \"base64\"}"), 0);
	CHECK(secret_lookup_as_utf8("bin", &err) == NULL);
	CHECK_STREQ(err->msg, "Data from secret bin is not valid UTF-8");
	error_free(err);
	object_del_all();
}

static void test_in_use_cannot_be_deleted(void)
{
	struct error *err = NULL;

	CHECK_EQ(add("{\"qom-type\": \"secret\", \"id\": \"u\", \"data\": \"x\"}"), 0);
	object_use("u");
	CHECK_EQ(object_del("u", &err), -1);
	CHECK_STREQ(err->msg, "object 'u' is in use, can not be deleted");
	error_free(err);
	object_unuse("u");
	CHECK_EQ(object_del("u", NULL), 0);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "raw_and_base64", test_raw_and_base64 },
		{ "file", test_file },
		{ "lookup_errors", test_lookup_errors },
		{ "in_use_cannot_be_deleted", test_in_use_cannot_be_deleted },
		{ NULL, NULL },
	};
	return unit_run("secret", tests);
}
