/*
 * test-exportctl-parser.c: exportctl's command line (client/parser.c):
 * prefix matching of commands and options, option values, per-command
 * checks.  The client is not in libexportd.a, so its pure parser is
 * included here directly.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/parser.c"
#include "unit.h"

/* Parse a NULL-terminated list of words; messages go to a scratch stream. */
static int parse(struct parse_result *res, char *msg, size_t msglen, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	FILE *err = fmemopen(msg, msglen, "w");
	int ret;

	va_start(ap, msglen);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	memset(msg, 0, msglen);
	ret = parse_command_line(argc, argv, res, err);
	fclose(err);
	return ret;
}

static void test_exact_and_prefix_commands(void)
{
	bool amb;

	CHECK_STREQ(parse_match_command("list", &amb)->name, "list");
	CHECK_STREQ(parse_match_command("l", &amb)->name, "list");
	CHECK_STREQ(parse_match_command("sc", &amb)->name, "schema");
	CHECK_STREQ(parse_match_command("sh", &amb)->name, "shell");
	CHECK(parse_match_command("s", &amb) == NULL);
	CHECK(amb);
	CHECK(parse_match_command("x", &amb) == NULL);
	CHECK(!amb);
	CHECK(parse_match_command("", &amb) == NULL);
	CHECK(parse_match_command("listing", &amb) == NULL);
}

static void test_option_prefixes(void)
{
	static const enum ctl_opt ids[] = { OPT_MOUNTPOINT, OPT_ID, OPT_IMAGE, OPT__COUNT };
	bool amb;

	CHECK(parse_match_option("mount", 5, ids, &amb)->id == OPT_MOUNTPOINT);
	CHECK(parse_match_option("id", 2, ids, &amb)->id == OPT_ID);	/* exact beats prefix */
	CHECK(parse_match_option("i", 1, ids, &amb) == NULL);
	CHECK(amb);
	CHECK(parse_match_option("js", 2, ids, &amb)->id == OPT_JSON);	/* global */
	CHECK(parse_match_option("hard", 4, ids, &amb) == NULL);	/* not add's */
}

static void test_add_full(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "--json", "ad", "--fuse", "--mount=m.raw",
		       "--image", "d.img", "--format", "qcow2", "--writable", "--growable",
		       "--allow-other", "--id", "x", NULL), 0);
	CHECK(r.action == CTL_ADD);
	CHECK(r.set[OPT_JSON]);
	CHECK_STREQ(r.value[OPT_MOUNTPOINT], "m.raw");
	CHECK_STREQ(r.value[OPT_IMAGE], "d.img");
	CHECK_STREQ(r.value[OPT_FORMAT], "qcow2");
	CHECK_STREQ(r.value[OPT_ALLOW_OTHER], "on");	/* bare: on */
	CHECK_STREQ(r.value[OPT_ID], "x");
	CHECK_EQ(r.argc, 0);
}

static void test_optional_value(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--image", "i",
		       "--allow-other", "auto", NULL), 0);
	CHECK_STREQ(r.value[OPT_ALLOW_OTHER], "auto");
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--image", "i",
		       "--allow-other=off", NULL), 0);
	CHECK_STREQ(r.value[OPT_ALLOW_OTHER], "off");
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--image", "i",
		       "--allow-other=maybe", NULL), -1);
	CHECK(strstr(msg, "invalid value 'maybe' for --allow-other (valid: on, off, auto)"));
}

static void test_short_options_bundle(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "-qv", "-s", "/tmp/s", "list", NULL), 0);
	CHECK(r.set[OPT_QUIET] && r.set[OPT_VERBOSE]);
	CHECK_STREQ(r.value[OPT_SOCKET], "/tmp/s");
	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "-s/tmp/t", NULL), 0);
	CHECK_STREQ(r.value[OPT_SOCKET], "/tmp/t");
	CHECK_EQ(parse(&r, msg, sizeof(msg), "-x", "list", NULL), -1);
	CHECK(strstr(msg, "unknown option: -x"));
}

static void test_positional_arguments(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "del", "e1", "--hard", NULL), 0);
	CHECK(r.action == CTL_DEL && r.set[OPT_HARD]);
	CHECK_STREQ(r.argv[0], "e1");
	CHECK_EQ(parse(&r, msg, sizeof(msg), "del", NULL), -1);
	CHECK(strstr(msg, "del: missing argument: ID"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "del", "a", "b", NULL), -1);
	CHECK(strstr(msg, "superfluous argument: b"));
	/* qmp takes any number; "--" lets an argument start with '-'. */
	CHECK_EQ(parse(&r, msg, sizeof(msg), "qmp", "x", "a=1", "--", "-b=2", NULL), 0);
	CHECK_EQ(r.argc, 3);
	CHECK_STREQ(r.argv[2], "-b=2");
}

static void test_errors(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "s", NULL), -1);
	CHECK(strstr(msg, "ambiguous command: s (stats, schema, shell)"));
	CHECK(strstr(msg, "valid commands:"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "--hard", NULL), -1);
	CHECK(strstr(msg, "unknown option: --hard"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "--hard", "list", NULL), -1);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "--json=yes", NULL), -1);
	CHECK(strstr(msg, "option --json takes no value"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "--socket", NULL), -1);
	CHECK(strstr(msg, "option --socket needs a value (PATH)"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "events", "--timeout", "-1", NULL), -1);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "events", "--timeout", "soon", NULL), -1);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "events", "--timeout", "0.5", NULL), 0);
}

static void test_add_checks(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--image", "i", NULL), -1);
	CHECK(strstr(msg, "--mountpoint is required"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", NULL), -1);
	CHECK(strstr(msg, "exactly one of --image and --node"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--node", "n",
		       "--format", "raw", NULL), -1);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--image", "i",
		       "--growable", NULL), -1);
	CHECK(strstr(msg, "--growable needs --writable"));
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--image", "i",
		       "--writable", "--read-only", NULL), -1);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--mountpoint", "m", "--node", "n", NULL), 0);
}

/* -v is --verbose (the QMP traffic) wherever it is; list --stats adds columns. */
static void test_list_v_and_stats(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "-v", NULL), 0);
	CHECK(!r.set[OPT_STATS] && r.set[OPT_VERBOSE]);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "-qv", NULL), 0);
	CHECK(!r.set[OPT_STATS] && r.set[OPT_QUIET] && r.set[OPT_VERBOSE]);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "--version", NULL), 0);
	CHECK(r.set[OPT_VERSION]);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "-v", "list", NULL), 0);
	CHECK(!r.set[OPT_STATS] && r.set[OPT_VERBOSE]);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "list", "--verbose", "--stats", NULL), 0);
	CHECK(r.set[OPT_STATS] && r.set[OPT_VERBOSE]);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "version", "-v", NULL), 0);
	CHECK(!r.set[OPT_STATS] && r.set[OPT_VERBOSE]);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "nodes", "--stats", NULL), -1);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "st", "e1", NULL), 0);
	CHECK(r.action == CTL_STATS);
	CHECK_STREQ(r.argv[0], "e1");
	CHECK_EQ(parse(&r, msg, sizeof(msg), "stats", NULL), -1);
	CHECK(strstr(msg, "stats: missing argument: ID"));
}

static void test_help(void)
{
	struct parse_result r;
	char msg[512];

	CHECK_EQ(parse(&r, msg, sizeof(msg), "add", "--help", NULL), 0);
	CHECK(r.action == CTL_HELP);
	CHECK(r.command && r.command->action == CTL_ADD);
	CHECK_EQ(parse(&r, msg, sizeof(msg), "-h", NULL), 0);
	CHECK(r.action == CTL_HELP && !r.command);
	CHECK_EQ(parse(&r, msg, sizeof(msg), NULL), 0);
	CHECK(r.action == CTL_NONE);
}

static void test_help_is_generated_from_the_table(void)
{
	char buf[4096] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	parse_show_commands(f);
	fclose(f);
	for (const struct ctl_command *c = ctl_commands; c->name; c++) {
		char line[64];

		snprintf(line, sizeof(line), "\n  %s ", c->name);
		CHECK(strstr(buf, line) != NULL);
	}
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "exact_and_prefix_commands", test_exact_and_prefix_commands },
		{ "option_prefixes", test_option_prefixes },
		{ "add_full", test_add_full },
		{ "optional_value", test_optional_value },
		{ "short_options_bundle", test_short_options_bundle },
		{ "positional_arguments", test_positional_arguments },
		{ "errors", test_errors },
		{ "add_checks", test_add_checks },
		{ "list_v_and_stats", test_list_v_and_stats },
		{ "help", test_help },
		{ "help_is_generated_from_the_table", test_help_is_generated_from_the_table },
		{ NULL, NULL },
	};

	return unit_run("exportctl-parser", tests);
}
