/*
 * parser.c: exportctl's command and option tables and the parser that
 * walks them (see parser.h).  Adding a command means one line in
 * ctl_commands and a handler in exportctl.c; the help text follows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"

static const char *const format_values[] = { "raw", "qcow2", "luks", "vdi", "vpc", "vhdx", "vmdk",
					     "auto", NULL };
static const char *const onoffauto_values[] = { "on", "off", "auto", NULL };

const struct ctl_option ctl_options[] = {
	{ OPT_JSON, "json", 0, ARG_NONE, NULL, NULL, NULL,
	  "print the daemon's JSON instead of text" },
	{ OPT_SOCKET, "socket", 's', ARG_REQUIRED, "PATH", NULL, NULL,
	  "exportd's QMP socket (default: $EXPORTD_SOCKET, then the daemon's default)" },
	{ OPT_QUIET, "quiet", 'q', ARG_NONE, NULL, NULL, NULL,
	  "print only errors and the data asked for" },
	{ OPT_VERBOSE, "verbose", 'v', ARG_NONE, NULL, NULL, NULL,
	  "show the QMP traffic on stderr" },
	{ OPT_HELP, "help", 'h', ARG_NONE, NULL, NULL, NULL, "show this help" },
	{ OPT_VERSION, "version", 'V', ARG_NONE, NULL, NULL, NULL,
	  "print exportctl's version and exit (the command 'version' asks the daemon too)" },
	{ OPT_FUSE, "fuse", 0, ARG_NONE, NULL, NULL, NULL,
	  "a FUSE export (the only type, and the default)" },
	{ OPT_MOUNTPOINT, "mountpoint", 0, ARG_REQUIRED, "PATH", NULL, NULL,
	  "the regular file the image appears as (created if missing)" },
	{ OPT_IMAGE, "image", 0, ARG_REQUIRED, "FILE", NULL, NULL,
	  "the image file or block device to export, or an nbd://, nbd+unix:// or http(s):// URL" },
	{ OPT_NODE, "node", 0, ARG_REQUIRED, "NODE", NULL, NULL,
	  "export a node made with blockdev-add instead of --image" },
	{ OPT_FORMAT, "format", 0, ARG_REQUIRED, "raw|qcow2|luks|vdi|vpc|vhdx|vmdk|auto",
	  format_values, NULL,
	  "image format (default auto: by the image's magic, as QEMU probes; else raw)" },
	{ OPT_WRITABLE, "writable", 0, ARG_NONE, NULL, NULL, NULL,
	  "allow writes through the export" },
	{ OPT_READ_ONLY, "read-only", 0, ARG_NONE, NULL, NULL, NULL,
	  "open the image read-only (the default without --writable)" },
	{ OPT_GROWABLE, "growable", 0, ARG_NONE, NULL, NULL, NULL,
	  "writes past the end grow the image (needs --writable)" },
	{ OPT_ALLOW_OTHER, "allow-other", 0, ARG_OPTIONAL, "on|off|auto",
	  onoffauto_values, "on",
	  "let other users access the file (bare: on; default: auto)" },
	{ OPT_PASSTHROUGH, "passthrough", 0, ARG_REQUIRED, "on|off|auto", onoffauto_values,
	  NULL, "let the kernel serve I/O of a whole raw file itself (default auto: reads "
	  "of read-only exports; on: writable ones too, writes as well if --growable)" },
	{ OPT_IO_URING, "io-uring", 0, ARG_NONE, NULL, NULL, NULL,
	  "serve requests over FUSE-over-io_uring (Linux 6.14+, enable_uring on)" },
	{ OPT_ID, "id", 0, ARG_REQUIRED, "ID", NULL, NULL,
	  "export id (default: from the mountpoint's name)" },
	{ OPT_KEY_SECRET, "key-secret", 0, ARG_REQUIRED, "ID", NULL, NULL,
	  "unlock an encrypted image (luks, qcow2 with LUKS) with the passphrase in "
	  "secret object ID (exportd --object secret,id=ID,file=... or object-add)" },
	{ OPT_HARD, "hard", 0, ARG_NONE, NULL, NULL, NULL,
	  "remove the export even while the file is open" },
	{ OPT_FOLLOW, "follow", 'f', ARG_NONE, NULL, NULL, NULL,
	  "keep printing events until interrupted" },
	{ OPT_TIMEOUT, "timeout", 0, ARG_REQUIRED, "SECONDS", NULL, NULL,
	  "give up waiting after SECONDS" },
	/* No short name: -v is --verbose everywhere, whatever the command. */
	{ OPT_STATS, "stats", 0, ARG_NONE, NULL, NULL, NULL,
	  "add I/O statistics columns (requests and bytes read and written)" },
	{ OPT_WIDE, "wide", 'w', ARG_NONE, NULL, NULL, NULL,
	  "every column, however wide, and why each export takes its data path" },
	{ OPT_COLUMNS, "output", 'o', ARG_REQUIRED, "COLUMNS", NULL, NULL,
	  "the columns to show, comma-separated, of: ID, MOUNTPOINT, NODE, FORMAT, "
	  "IMAGE, SIZE, MODE, WRITABLE, GROWABLE, ALLOW-OTHER, DATA-PATH, OPEN, RD-OPS, "
	  "RD-BYTES, WR-OPS, WR-BYTES" },
	{ OPT_INTERVAL, "interval", 'i', ARG_REQUIRED, "SECONDS", NULL, NULL,
	  "print the rates (requests/s, MiB/s) every SECONDS until interrupted" },
	{ OPT_COUNT, "count", 'c', ARG_REQUIRED, "N", NULL, NULL,
	  "with --interval: stop after N reports" },
	{ OPT_MOUNTED, "mounted", 0, ARG_NONE, NULL, NULL, NULL,
	  "wait until the export exists (default: until it is deleted)" },
	{ OPT__COUNT, NULL, 0, ARG_NONE, NULL, NULL, NULL, NULL },
};

/* Accepted before the command and among any command's options. */
static const enum ctl_opt global_opts[] = {
	OPT_JSON, OPT_SOCKET, OPT_QUIET, OPT_VERBOSE, OPT_HELP, OPT_VERSION, OPT__COUNT
};
static const enum ctl_opt add_opts[] = {
	OPT_FUSE, OPT_MOUNTPOINT, OPT_IMAGE, OPT_NODE, OPT_FORMAT, OPT_WRITABLE,
	OPT_READ_ONLY, OPT_GROWABLE, OPT_ALLOW_OTHER, OPT_PASSTHROUGH, OPT_IO_URING, OPT_ID,
	OPT_KEY_SECRET, OPT__COUNT
};
static const enum ctl_opt del_opts[] = { OPT_HARD, OPT_TIMEOUT, OPT__COUNT };
static const enum ctl_opt events_opts[] = { OPT_FOLLOW, OPT_TIMEOUT, OPT__COUNT };
static const enum ctl_opt list_opts[] = { OPT_STATS, OPT_WIDE, OPT_COLUMNS, OPT__COUNT };
static const enum ctl_opt stats_opts[] = { OPT_INTERVAL, OPT_COUNT, OPT__COUNT };
static const enum ctl_opt wait_opts[] = { OPT_MOUNTED, OPT_TIMEOUT, OPT__COUNT };
static const enum ctl_opt no_opts[] = { OPT__COUNT };

const struct ctl_command ctl_commands[] = {
	{ "add", CTL_ADD, "--mountpoint PATH --image FILE|--node NODE", 0, 0, add_opts,
	  "export an image (or a node) as a file" },
	{ "del", CTL_DEL, "ID", 1, 1, del_opts,
	  "remove an export and wait until it is gone" },
	{ "list", CTL_LIST, "", 0, 0, list_opts, "list the exports" },
	{ "stats", CTL_STATS, "ID", 1, 1, stats_opts,
	  "show an export's I/O statistics per operation (-i: rates)" },
	{ "info", CTL_INFO, "ID", 1, 1, no_opts,
	  "everything about one export: nodes, image chain, data path, handles" },
	{ "wait", CTL_WAIT, "ID", 1, 1, wait_opts,
	  "wait until an export is deleted (--mounted: until it exists)" },
	{ "nodes", CTL_NODES, "", 0, 0, no_opts, "list the block nodes" },
	{ "version", CTL_VERSION, "", 0, 0, no_opts,
	  "show exportctl's and the daemon's version" },
	{ "events", CTL_EVENTS, "", 0, 0, events_opts,
	  "print the next event (--follow: every event)" },
	{ "schema", CTL_SCHEMA, "[COMMAND]", 0, 1, no_opts,
	  "list the QMP commands, or describe one" },
	{ "qmp", CTL_QMP, "COMMAND [JSON-ARGS|KEY=VALUE...]", 1, -1, no_opts,
	  "run any QMP command and print its result" },
	{ "shell", CTL_SHELL, "", 0, 0, no_opts, "an interactive QMP shell" },
	{ "help", CTL_HELP, "[COMMAND]", 0, 1, no_opts, "show help" },
	{ NULL, CTL_NONE, NULL, 0, 0, NULL, NULL },
};

const struct ctl_command *parse_match_command(const char *word, bool *ambiguous)
{
	const struct ctl_command *found = NULL;
	size_t len = strlen(word);
	int matches = 0;

	*ambiguous = false;
	if (len == 0)
		return NULL;
	for (const struct ctl_command *c = ctl_commands; c->name; c++) {
		if (!strcmp(c->name, word))
			return c;
		if (!strncmp(c->name, word, len)) {
			found = c;
			matches++;
		}
	}
	if (matches > 1) {
		*ambiguous = true;
		return NULL;
	}
	return found;
}

static const struct ctl_option *option_by_id(enum ctl_opt id)
{
	for (const struct ctl_option *o = ctl_options; o->name; o++)
		if (o->id == id)
			return o;
	return NULL;
}

static bool opt_in(enum ctl_opt id, const enum ctl_opt *ids)
{
	for (; *ids != OPT__COUNT; ids++)
		if (*ids == id)
			return true;
	return false;
}

const struct ctl_option *parse_match_option(const char *name, size_t len,
					    const enum ctl_opt *ids,
					    bool *ambiguous)
{
	const struct ctl_option *found = NULL;
	int matches = 0;

	*ambiguous = false;
	if (len == 0)
		return NULL;
	for (const struct ctl_option *o = ctl_options; o->name; o++) {
		if (!opt_in(o->id, global_opts) && !(ids && opt_in(o->id, ids)))
			continue;
		if (strlen(o->name) == len && !strncmp(o->name, name, len))
			return o;
		if (!strncmp(o->name, name, len)) {
			found = o;
			matches++;
		}
	}
	if (matches > 1) {
		*ambiguous = true;
		return NULL;
	}
	return found;
}

static bool value_allowed(const struct ctl_option *o, const char *v)
{
	if (!o->values)
		return true;
	for (const char *const *p = o->values; *p; p++)
		if (!strcmp(*p, v))
			return true;
	return false;
}

static void show_values(FILE *err, const struct ctl_option *o)
{
	for (const char *const *p = o->values; *p; p++)
		fprintf(err, "%s%s", p == o->values ? "" : ", ", *p);
}

static int set_option(const struct ctl_option *o, const char *value,
		      struct parse_result *res, FILE *err)
{
	if (value && !value_allowed(o, value)) {
		fprintf(err, "exportctl: invalid value '%s' for --%s (valid: ", value, o->name);
		show_values(err, o);
		fprintf(err, ")\n");
		return -1;
	}
	if (value && o->arg != ARG_NONE && !*value) {
		fprintf(err, "exportctl: empty value for --%s\n", o->name);
		return -1;
	}
	res->set[o->id] = true;
	res->value[o->id] = value;
	return 0;
}

/*
 * One option word at argv[*i]: "--name", "--name=value", "-x", "-xyz"
 * (flags) or "-s VALUE".  Advances *i past a separate value.
 */
static int parse_option(int argc, char *const argv[], int *i,
			const enum ctl_opt *ids, struct parse_result *res,
			FILE *err)
{
	const char *word = argv[*i];
	const struct ctl_option *o;
	bool ambiguous;

	if (word[1] == '-') {
		const char *name = word + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);

		o = parse_match_option(name, len, ids, &ambiguous);
		if (!o) {
			fprintf(err, "exportctl: %s option: --%.*s\n",
				ambiguous ? "ambiguous" : "unknown", (int)len, name);
			return -1;
		}
		if (eq) {
			if (o->arg == ARG_NONE) {
				fprintf(err, "exportctl: option --%s takes no value\n", o->name);
				return -1;
			}
			return set_option(o, eq + 1, res, err);
		}
		if (o->arg == ARG_NONE)
			return set_option(o, NULL, res, err);
		if (o->arg == ARG_OPTIONAL) {
			if (*i + 1 < argc && value_allowed(o, argv[*i + 1]) &&
			    argv[*i + 1][0] != '-') {
				(*i)++;
				return set_option(o, argv[*i], res, err);
			}
			return set_option(o, o->implied, res, err);
		}
		if (*i + 1 >= argc) {
			fprintf(err, "exportctl: option --%s needs a value (%s)\n", o->name,
				o->argname);
			return -1;
		}
		(*i)++;
		return set_option(o, argv[*i], res, err);
	}

	/* Short options: flags may be bundled, a value follows as a word. */
	for (const char *p = word + 1; *p; p++) {
		o = NULL;
		/* The command's own option first (stats -i), then a global one. */
		for (const struct ctl_option *q = ctl_options; q->name; q++)
			if (q->short_name == *p && ids && opt_in(q->id, ids))
				o = q;
		for (const struct ctl_option *q = ctl_options; q->name && !o; q++)
			if (q->short_name == *p && opt_in(q->id, global_opts))
				o = q;
		if (!o) {
			fprintf(err, "exportctl: unknown option: -%c\n", *p);
			return -1;
		}
		if (o->arg == ARG_REQUIRED) {
			if (p[1]) {
				return set_option(o, p + 1, res, err);
			}
			if (*i + 1 >= argc) {
				fprintf(err, "exportctl: option -%c needs a value (%s)\n",
					*p, o->argname);
				return -1;
			}
			(*i)++;
			return set_option(o, argv[*i], res, err);
		}
		if (set_option(o, o->arg == ARG_OPTIONAL ? o->implied : NULL,
			       res, err) < 0)
			return -1;
	}
	return 0;
}

/* Checks across options that the tables cannot express. */
static int check_add(struct parse_result *res, FILE *err)
{
	if (!res->set[OPT_MOUNTPOINT]) {
		fprintf(err, "exportctl: add: --mountpoint is required\n");
		return -1;
	}
	if (res->set[OPT_IMAGE] == res->set[OPT_NODE]) {
		fprintf(err, "exportctl: add: give exactly one of --image and --node\n");
		return -1;
	}
	if (res->set[OPT_NODE] && res->set[OPT_FORMAT]) {
		fprintf(err, "exportctl: add: --format applies to --image, not to --node\n");
		return -1;
	}
	if (res->set[OPT_WRITABLE] && res->set[OPT_READ_ONLY]) {
		fprintf(err, "exportctl: add: --writable and --read-only contradict each other\n");
		return -1;
	}
	if (res->set[OPT_GROWABLE] && !res->set[OPT_WRITABLE]) {
		fprintf(err, "exportctl: add: --growable needs --writable\n");
		return -1;
	}
	return 0;
}

static int check_timeout(struct parse_result *res, FILE *err)
{
	char *end;
	double t;

	if (!res->set[OPT_TIMEOUT])
		return 0;
	t = strtod(res->value[OPT_TIMEOUT], &end);
	if (*end || end == res->value[OPT_TIMEOUT] || !(t > 0) || t > 1e6) {
		fprintf(err, "exportctl: invalid value '%s' for --timeout: expected seconds > 0\n",
			res->value[OPT_TIMEOUT]);
		return -1;
	}
	return 0;
}

/* " (schema, shell)": the commands an ambiguous prefix could mean. */
static void show_candidates(FILE *err, const char *word)
{
	const char *sep = " (";

	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		if (!strncmp(c->name, word, strlen(word))) {
			fprintf(err, "%s%s", sep, c->name);
			sep = ", ";
		}
	fprintf(err, ")");
}

int parse_command_line(int argc, char *const argv[], struct parse_result *res,
		       FILE *err)
{
	const enum ctl_opt *ids = NULL;
	bool only_args = false;
	bool ambiguous;

	memset(res, 0, sizeof(*res));
	res->action = CTL_NONE;

	for (int i = 0; i < argc; i++) {
		const char *word = argv[i];

		if (!only_args && !strcmp(word, "--")) {
			only_args = true;
			continue;
		}
		if (!only_args && word[0] == '-' && word[1]) {
			if (parse_option(argc, argv, &i, ids, res, err) < 0)
				return -1;
			continue;
		}
		if (!res->command) {
			res->command = parse_match_command(word, &ambiguous);
			if (!res->command) {
				fprintf(err, "exportctl: %s command: %s",
					ambiguous ? "ambiguous" : "unknown", word);
				if (ambiguous)
					show_candidates(err, word);
				fprintf(err, "\n");
				parse_show_commands(err);
				return -1;
			}
			res->action = res->command->action;
			ids = res->command->options;
			continue;
		}
		if (res->argc >= CTL_MAX_ARGS) {
			fprintf(err, "exportctl: too many arguments\n");
			return -1;
		}
		res->argv[res->argc++] = word;
	}

	/* --help anywhere wins over any other check. */
	if (res->set[OPT_HELP]) {
		res->action = CTL_HELP;
		return 0;
	}
	if (!res->command)
		return 0;
	/* Options given before the command must belong to it too. */
	for (int id = 0; id < OPT__COUNT; id++) {
		if (res->set[id] && !opt_in(id, global_opts) &&
		    !opt_in(id, res->command->options)) {
			fprintf(err, "exportctl: %s: option --%s does not apply\n",
				res->command->name, option_by_id(id)->name);
			return -1;
		}
	}
	if (res->argc < res->command->min_args) {
		fprintf(err, "exportctl: %s: missing argument: %s\n", res->command->name,
			res->command->synopsis);
		return -1;
	}
	if (res->command->max_args >= 0 && res->argc > res->command->max_args) {
		fprintf(err, "exportctl: %s: superfluous argument: %s\n", res->command->name,
			res->argv[res->command->max_args]);
		return -1;
	}
	if (res->action == CTL_ADD && check_add(res, err) < 0)
		return -1;
	if (check_timeout(res, err) < 0)
		return -1;
	return 0;
}

/* Help is laid out for an 80-column terminal, the narrowest one in use. */
#define HELP_WIDTH 80
#define HELP_COLUMN 32

/*
 * Print text from column at (where the cursor is), at HELP_COLUMN (on the
 * next line if at is past it), wrapped at blanks to HELP_WIDTH.
 */
static void show_wrapped(FILE *out, int at, const char *text)
{
	if (at + 2 > HELP_COLUMN)
		fprintf(out, "\n%*s", HELP_COLUMN, "");
	else
		fprintf(out, "%*s", HELP_COLUMN - at, "");
	at = HELP_COLUMN;
	while (*text) {
		int word = (int)strcspn(text, " ");

		if (at > HELP_COLUMN && at + 1 + word > HELP_WIDTH) {
			fprintf(out, "\n%*s", HELP_COLUMN, "");
			at = HELP_COLUMN;
		} else if (at > HELP_COLUMN) {
			fputc(' ', out);
			at++;
		}
		fprintf(out, "%.*s", word, text);
		at += word;
		text += word;
		text += strspn(text, " ");
	}
	fputc('\n', out);
}

void parse_show_commands(FILE *out)
{
	fprintf(out, "valid commands:\n");
	for (const struct ctl_command *c = ctl_commands; c->name; c++)
		show_wrapped(out, fprintf(out, "  %s%s%s", c->name, *c->synopsis ? " " : "",
					  c->synopsis), c->help);
}

static void show_option(FILE *out, const struct ctl_option *o)
{
	char buf[64];
	int n;

	if (o->short_name)
		n = snprintf(buf, sizeof(buf), "-%c, --%s", o->short_name, o->name);
	else
		n = snprintf(buf, sizeof(buf), "    --%s", o->name);
	if (n > 0 && (size_t)n < sizeof(buf)) {
		if (o->arg == ARG_REQUIRED)
			snprintf(buf + n, sizeof(buf) - n, " %s", o->argname);
		else if (o->arg == ARG_OPTIONAL)
			snprintf(buf + n, sizeof(buf) - n, "[=%s]", o->argname);
	}
	show_wrapped(out, fprintf(out, "  %s", buf), o->help);
}

void parse_show_command(FILE *out, const struct ctl_command *cmd)
{
	int at = fprintf(out, "usage: exportctl [options] %s", cmd->name);
	int indent = at - (int)strlen(cmd->name);

	for (const enum ctl_opt *id = cmd->options; *id != OPT__COUNT; id++) {
		const struct ctl_option *o = option_by_id(*id);
		int len = (int)(strlen(o->name) + 5 +
				(o->arg == ARG_NONE ? 0 : 1 + strlen(o->argname)));

		if (at + len > HELP_WIDTH)
			at = fprintf(out, "\n%*s", indent, "") - 1;
		at += fprintf(out, " [--%s%s%s]", o->name,
			      o->arg == ARG_NONE ? "" : " ",
			      o->arg == ARG_NONE ? "" : o->argname);
	}
	/* add's synopsis repeats its options: only show positional ones. */
	if (*cmd->synopsis && *cmd->synopsis != '-')
		fprintf(out, " %s", cmd->synopsis);
	fprintf(out, "\n  %s\n", cmd->help);
	if (cmd->options[0] != OPT__COUNT) {
		fprintf(out, "options:\n");
		for (const enum ctl_opt *id = cmd->options; *id != OPT__COUNT; id++)
			show_option(out, option_by_id(*id));
	}
	fprintf(out, "global options:\n");
	for (const enum ctl_opt *id = global_opts; *id != OPT__COUNT; id++)
		show_option(out, option_by_id(*id));
}
