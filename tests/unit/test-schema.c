/*
 * test-schema.c: schema loading, validation wording, key=value parsing
 * and introspection (rpc/schema.c), on small schemas written here and on
 * the daemon's own.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "rpc/schema.h"
#include "unit.h"

static const char *mini =
	"{\"definitions\": ["
	" {\"enum\": \"Color\", \"data\": [\"red\", \"blue\"]},"
	" {\"struct\": \"Inner\", \"data\": {\"n\": \"int\", \"*flag\": \"bool\"}},"
	" {\"struct\": \"Base\", \"data\": {\"kind\": \"Color\", \"*name\": \"str\"}},"
	" {\"struct\": \"Red\", \"data\": {\"inner\": \"Inner\", \"*sizes\": [\"size\"]}},"
	" {\"union\": \"Thing\", \"base\": \"Base\", \"discriminator\": \"kind\","
	"   \"data\": {\"red\": \"Red\"}},"
	" {\"alternate\": \"Ref\", \"data\": {\"def\": \"Thing\", \"ref\": \"str\"}},"
	" {\"command\": \"make\", \"data\": {\"thing\": \"Ref\", \"*u\": \"uint64\"}},"
	" {\"command\": \"boxed\", \"data\": \"Thing\", \"boxed\": true},"
	" {\"command\": \"noargs\", \"returns\": [\"Inner\"]},"
	" {\"event\": \"HAPPENED\", \"data\": {\"id\": \"str\"}}"
	"]}";

static struct schema *load_mini(void)
{
	struct error *err = NULL;
	struct schema *s = schema_load(mini, strlen(mini), &err);

	CHECK(s != NULL);
	if (err)
		fprintf(stderr, "%s\n", err->msg);
	error_free(err);
	return s;
}

/* Validate JSON text for a command and return the error message (or NULL). */
static char *validate(struct schema *s, const char *cmd, const char *args_text)
{
	struct error *err = NULL;
	json_t *args = json_loads(args_text, 0, NULL);
	json_t *out = schema_validate_command(s, cmd, args, &err);
	char *msg = err ? strdup(err->msg) : NULL;

	json_decref(args);
	json_decref(out);
	error_free(err);
	return msg;
}

static void check_error(struct schema *s, const char *cmd, const char *args,
			const char *expected)
{
	char *msg = validate(s, cmd, args);

	CHECK_STREQ(msg, expected);
	if (!msg || strcmp(msg, expected))
		fprintf(stderr, "    for %s %s: got '%s'\n", cmd, args, msg ? msg : "(none)");
	free(msg);
}

static void test_valid_requests_pass(void)
{
	struct schema *s = load_mini();

	CHECK(validate(s, "make", "{\"thing\": \"x\"}") == NULL);
	CHECK(validate(s, "make", "{\"thing\": {\"kind\": \"red\", \"inner\": {\"n\": 1}}}") ==
	      NULL);
	CHECK(validate(s, "boxed", "{\"kind\": \"blue\"}") == NULL);
	CHECK(validate(s, "noargs", "{}") == NULL);
	schema_free(s);
}

static void test_missing_unexpected_and_types(void)
{
	struct schema *s = load_mini();

	check_error(s, "make", "{}", "Parameter 'thing' is missing");
	check_error(s, "make", "{\"thing\": \"x\", \"zz\": 1}", "Parameter 'zz' is unexpected");
	check_error(s, "make", "{\"thing\": 1}",
		    "Invalid parameter type for 'thing', expected: Ref");
	check_error(s, "make", "{\"thing\": \"x\", \"u\": -1}",
		    "Parameter 'u' expects a non-negative integer");
	check_error(s, "noargs", "{\"a\": 1}", "Parameter 'a' is unexpected");
	schema_free(s);
}

static void test_union_variants_and_nested_paths(void)
{
	struct schema *s = load_mini();

	check_error(s, "boxed", "{\"kind\": \"green\"}",
		    "Parameter 'kind' does not accept value 'green'");
	check_error(s, "boxed", "{\"kind\": \"red\"}", "Parameter 'inner' is missing");
	check_error(s, "boxed", "{\"kind\": \"red\", \"inner\": {\"n\": \"1\"}}",
		    "Invalid parameter type for 'inner.n', expected: integer");
	check_error(s, "boxed", "{\"kind\": \"blue\", \"inner\": {}}",
		    "Parameter 'inner' is unexpected");
	check_error(s, "make", "{\"thing\": {\"kind\": \"red\", \"inner\": {\"n\": 1, \"q\": 2}}}",
		    "Parameter 'thing.inner.q' is unexpected");
	check_error(s, "boxed", "{\"kind\": \"red\", \"inner\": {\"n\": 1}, \"sizes\": [1, \"a\"]}",
		    "Invalid parameter type for 'sizes[1]', expected: integer");
	schema_free(s);
}

static void test_validation_output_is_normalised(void)
{
	struct schema *s = load_mini();
	json_t *in = json_pack("{s:s,s:{s:i}}", "kind", "red", "inner", "n", 3);
	json_t *out = schema_validate_command(s, "boxed", in, NULL);

	CHECK(out != NULL);
	CHECK(out != in);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(out, "inner"), "n")), 3);
	json_decref(in);
	json_decref(out);
	schema_free(s);
}

static void test_keyval_parse_and_convert(void)
{
	struct schema *s = load_mini();
	struct error *err = NULL;
	bool keyval;
	json_t *raw = keyval_parse("kind=red,inner.n=0x10,inner.flag=on,name=a,,b", NULL, &keyval,
				   &err);
	json_t *out;

	CHECK(raw != NULL);
	CHECK(keyval);
	CHECK_STREQ(json_string_value(json_object_get(raw, "name")), "a,b");
	out = schema_validate_type(s, "Thing", raw, true, &err);
	CHECK(out != NULL);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(out, "inner"), "n")), 16);
	CHECK(json_is_true(json_object_get(json_object_get(out, "inner"), "flag")));
	json_decref(raw);
	json_decref(out);

	raw = keyval_parse("kind=red,inner.n=1,inner.flag=maybe", NULL, &keyval, NULL);
	out = schema_validate_type(s, "Thing", raw, true, &err);
	CHECK(out == NULL);
	CHECK(err && !strcmp(err->msg, "Parameter 'inner.flag' expects 'on' or 'off'"));
	error_free(err);
	err = NULL;
	json_decref(raw);

	CHECK(keyval_parse("novalue", NULL, &keyval, &err) == NULL);
	CHECK(err && !strcmp(err->msg, "Expected '=' after parameter 'novalue'"));
	error_free(err);
	err = NULL;

	raw = keyval_parse("{\"kind\": \"blue\"}", NULL, &keyval, &err);
	CHECK(raw && !keyval);
	json_decref(raw);
	schema_free(s);
}

static void test_broken_schemas_are_refused(void)
{
	static const char *const broken[] = {
		"{\"definitions\": [{\"struct\": \"A\", \"data\": {\"x\": \"Nope\"}}]}",
		"{\"definitions\": [{\"enum\": \"A\", \"data\": [\"a\"]}, {\"enum\": \"A\", \"data\": []}]}",
		"{\"definitions\": [{\"union\": \"U\", \"data\": {}}]}",
		"{\"definitions\": [{\"command\": \"c\", \"returns\": \"Missing\"}]}",
		"{\"definitions\": {}}",
		"not json",
	};

	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		struct error *err = NULL;

		CHECK(schema_load(broken[i], strlen(broken[i]), &err) == NULL);
		CHECK(err != NULL);
		error_free(err);
	}
}

static void test_introspection_lists_every_referenced_type(void)
{
	struct schema *s = load_mini();
	json_t *list = schema_introspect(s), *info, *names = json_object();
	size_t i;

	json_array_foreach(list, i, info)
		json_object_set_new(names, json_string_value(json_object_get(info, "name")),
				    json_true());
	CHECK(json_object_get(names, "make"));
	CHECK(json_object_get(names, "q_obj_make-arg"));
	CHECK(json_object_get(names, "Thing"));
	CHECK(json_object_get(names, "Red"));
	CHECK(json_object_get(names, "[Inner]"));
	CHECK(json_object_get(names, "[size]"));
	CHECK(json_object_get(names, "size"));
	CHECK(json_object_get(names, "q_empty"));
	CHECK(json_object_get(names, "HAPPENED"));
	json_decref(names);
	json_decref(list);
	schema_free(s);
}

static void test_builtin_schema_loads(void)
{
	struct schema *s = schema_builtin();

	CHECK(schema_has_command(s, "block-export-add"));
	CHECK(schema_has_command(s, "qmp_capabilities"));
	CHECK(!schema_has_command(s, "nbd-server-start"));
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "valid requests pass", test_valid_requests_pass },
		{ "missing, unexpected, wrong type", test_missing_unexpected_and_types },
		{ "union variants and nested paths", test_union_variants_and_nested_paths },
		{ "output is normalised", test_validation_output_is_normalised },
		{ "key=value parse and convert", test_keyval_parse_and_convert },
		{ "broken schemas are refused", test_broken_schemas_are_refused },
		{ "introspection is complete", test_introspection_lists_every_referenced_type },
		{ "builtin schema loads", test_builtin_schema_loads },
		{ NULL, NULL },
	};

	return unit_run("schema", tests);
}
