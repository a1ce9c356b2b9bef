/*
 * test-keyval.c: the key=value option syntax (rpc/schema-keyval.c) against
 * the results of QEMU's util/keyval.c, as qemu-storage-daemon 7.2 gives
 * them for the same strings: implied first keys, ",," escapes, arrays,
 * last value wins, and QEMU's error wording.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/schema.h"
#include "unit.h"

struct keyval_case {
	const char *text;
	const char *implied_key;
	const char *json;	/* expected result (sorted keys), or NULL */
	const char *error;	/* expected error, or NULL */
};

static const struct keyval_case cases[] = {
	{ "raw,file.filename=x,node-name=n", "driver",
	  "{\"driver\": \"raw\", \"file\": {\"filename\": \"x\"}, \"node-name\": \"n\"}", NULL },
	{ "fuse,id=e", "type", "{\"id\": \"e\", \"type\": \"fuse\"}", NULL },
	/* The implied key is optional, and only the first element may imply it. */
	{ "driver=raw,node-name=n", "driver",
	  "{\"driver\": \"raw\", \"node-name\": \"n\"}", NULL },
	{ "node-name=n,raw", "driver", NULL, "Expected '=' after parameter 'raw'" },
	{ "raw,node-name=n", NULL, NULL, "Expected '=' after parameter 'raw'" },
	/* An implied value cannot escape a comma; a keyed one can. */
	{ "raw,,x", "driver", NULL, "Invalid parameter ''" },
	{ "driver=a,,b", "driver", "{\"driver\": \"a,b\"}", NULL },
	{ "null-co,node-name=n,,x=1", "driver",
	  "{\"driver\": \"null-co\", \"node-name\": \"n,x=1\"}", NULL },
	/* The last value of a key wins. */
	{ "raw,driver=file", "driver", "{\"driver\": \"file\"}", NULL },
	{ "a=1,b=2,a=3", NULL, "{\"a\": \"3\", \"b\": \"2\"}", NULL },
	/* A trailing comma is fine; empty keys are not. */
	{ "a=1,", NULL, "{\"a\": \"1\"}", NULL },
	{ ",a=1", "driver", NULL, "Invalid parameter ''" },
	{ "=x", "driver", NULL, "Invalid parameter ''" },
	{ "a=1,=x", NULL, NULL, "Invalid parameter ''" },
	{ "0=x", NULL, NULL, "Invalid parameter '0'" },
	{ "a b=x", NULL, NULL, "Invalid parameter 'a b'" },
	{ "help", "driver", NULL, "Help is not available for this option" },
	{ "a=1,?", NULL, NULL, "Help is not available for this option" },
	/* Numeric fragments make arrays, in any order, without gaps. */
	{ "l.1.x=b,l.0.x=a", NULL,
	  "{\"l\": [{\"x\": \"a\"}, {\"x\": \"b\"}]}", NULL },
	{ "l.1=b", NULL, NULL, "Parameter 'l.0' missing" },
	{ "l.0=a,l.x=b", NULL, NULL, "Parameters 'l.*' used inconsistently" },
	{ "a.b=1,a=2", NULL, NULL, "Parameters 'a.*' used inconsistently" },
	{ "a=2,a.b=1", NULL, NULL, "Parameters 'a.*' used inconsistently" },
	{ "", "driver", "{}", NULL },
};

static void test_keyval_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct keyval_case *c = &cases[i];
		struct error *err = NULL;
		bool keyval = false;
		json_t *got = keyval_parse(c->text, c->implied_key, &keyval, &err);
		char *dump = got ? json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
		json_t *want = c->json ? json_loads(c->json, 0, NULL) : NULL;
		char *want_dump = want ? json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
		bool ok = c->json ? dump && !strcmp(dump, want_dump)
				  : !got && err && !strcmp(err->msg, c->error);

		if (!ok)
			fprintf(stderr, "  '%s' (implied %s): got %s / %s\n", c->text,
				c->implied_key ? c->implied_key : "none", dump ? dump : "NULL",
				err ? err->msg : "no error");
		CHECK(ok);
		CHECK(!got || keyval);
		free(dump);
		free(want_dump);
		json_decref(want);
		json_decref(got);
		error_free(err);
	}
}

static void test_json_form_ignores_the_implied_key(void)
{
	struct error *err = NULL;
	bool keyval = true;
	json_t *got = keyval_parse("{\"driver\": \"raw\"}", "driver", &keyval, &err);

	CHECK(got && !keyval);
	CHECK_STREQ(json_string_value(json_object_get(got, "driver")), "raw");
	json_decref(got);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "QEMU's keyval results", test_keyval_cases },
		{ "JSON form ignores the implied key", test_json_form_ignores_the_implied_key },
		{ NULL, NULL },
	};

	return unit_run("keyval", tests);
}
