/*
 * parser.h: exportctl's command line, after OpenBSD bgpctl's parser.c.
 * The commands are a table, matched by unambiguous prefix ("l" is list),
 * each with its own table of options; "valid commands:" help is generated
 * from the tables.  The parser is pure (no I/O but the usage text on a
 * stream, no allocation): values point into argv, so the unit tests can
 * include it directly.
 */
#ifndef EXPORTCTL_PARSER_H
#define EXPORTCTL_PARSER_H

#include <stdbool.h>
#include <stdio.h>

enum ctl_action {
	CTL_NONE,
	CTL_ADD,
	CTL_DEL,
	CTL_LIST,
	CTL_STATS,
	CTL_INFO,
	CTL_WAIT,
	CTL_NODES,
	CTL_VERSION,
	CTL_EVENTS,
	CTL_SCHEMA,
	CTL_QMP,
	CTL_SHELL,
	CTL_HELP,
};

/* Every option known to the parser; a command's table says which apply. */
enum ctl_opt {
	OPT_JSON,
	OPT_SOCKET,
	OPT_QUIET,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_VERSION,
	OPT_FUSE,
	OPT_MOUNTPOINT,
	OPT_IMAGE,
	OPT_NODE,
	OPT_FORMAT,
	OPT_WRITABLE,
	OPT_READ_ONLY,
	OPT_GROWABLE,
	OPT_ALLOW_OTHER,
	OPT_PASSTHROUGH,
	OPT_IO_URING,
	OPT_ID,
	OPT_KEY_SECRET,
	OPT_HARD,
	OPT_FOLLOW,
	OPT_TIMEOUT,
	OPT_STATS,
	OPT_WIDE,
	OPT_INTERVAL,
	OPT_COUNT,
	OPT_MOUNTED,
	OPT_COLUMNS,
	OPT__COUNT,
};

enum ctl_arg {
	ARG_NONE,	/* a flag */
	ARG_REQUIRED,	/* --name VALUE or --name=VALUE */
	ARG_OPTIONAL,	/* --name, --name=VALUE, or --name VALUE if VALUE is in values */
};

struct ctl_option {
	enum ctl_opt id;
	const char *name;		/* long name without "--" */
	char short_name;		/* 0 if none */
	enum ctl_arg arg;
	const char *argname;		/* for the help text */
	const char *const *values;	/* NULL-terminated allowed values, or NULL */
	const char *implied;		/* value of a bare ARG_OPTIONAL option */
	const char *help;
};

struct ctl_command {
	const char *name;
	enum ctl_action action;
	const char *synopsis;		/* positional arguments, for the help text */
	int min_args, max_args;		/* positional arguments; -1: no limit */
	const enum ctl_opt *options;	/* OPT__COUNT-terminated */
	const char *help;
};

#define CTL_MAX_ARGS 64

struct parse_result {
	const struct ctl_command *command;	/* NULL: none given */
	enum ctl_action action;
	bool set[OPT__COUNT];
	const char *value[OPT__COUNT];
	int argc;				/* positional arguments */
	const char *argv[CTL_MAX_ARGS];
};

extern const struct ctl_command ctl_commands[];
extern const struct ctl_option ctl_options[];

/*
 * Parse argv (without argv[0]) into *res.  Returns 0, or -1 after printing
 * what was wrong (and the valid choices) on err.
 */
int parse_command_line(int argc, char *const argv[], struct parse_result *res,
		       FILE *err);

/* The command matching word by unambiguous prefix; NULL and *ambiguous. */
const struct ctl_command *parse_match_command(const char *word, bool *ambiguous);

/* The option named name (without "--") by unambiguous prefix, among ids. */
const struct ctl_option *parse_match_option(const char *name, size_t len,
					    const enum ctl_opt *ids,
					    bool *ambiguous);

/* "valid commands:" and their synopses, generated from the table. */
void parse_show_commands(FILE *out);
/* Usage of one command with its options. */
void parse_show_command(FILE *out, const struct ctl_command *cmd);

#endif
