/*
 * output.h: how exportctl shows what the daemon answered, as a table of
 * callbacks per format (after bgpctl's output.c / output_json.c): the
 * human text of output-text.c and the JSON of output-json.c.  A command
 * gathers its data over QMP and hands it to the selected format.
 */
#ifndef EXPORTCTL_OUTPUT_H
#define EXPORTCTL_OUTPUT_H

#include <stdbool.h>

#include <jansson.h>

struct output {
	/*
	 * query-block-exports joined with query-named-block-nodes, and with
	 * x-query-export-stats for list --stats (else stats is NULL).
	 */
	void (*exports)(json_t *exports, json_t *nodes, json_t *stats);
	/* x-query-export-stats of one export (a list of one). */
	void (*stats)(json_t *stats);
	void (*nodes)(json_t *nodes);
	/*
	 * info: one export of query-block-exports, all nodes (for its chain),
	 * and its x-query-export-stats entry.
	 */
	void (*info)(json_t *export, json_t *nodes, json_t *stats);
	/* stats -i: one interval's rates (exportctl.c's stats_rates). */
	void (*rates)(json_t *rates);
	/* query-version of the daemon; NULL: only exportctl's own. */
	void (*version)(json_t *info);
	/* What add made: {id, mountpoint, node-name, format?, image?}. */
	void (*added)(json_t *added);
	/*
	 * The BLOCK_EXPORT_DELETED event that ended a del, and the mountpoint
	 * file that add had created and del removed (NULL: none).
	 */
	void (*deleted)(json_t *event, const char *removed_mountpoint);
	void (*event)(json_t *event);
	/* query-qmp-schema; command is NULL for the list of all commands. */
	void (*schema)(json_t *schema, const char *command);
	/* The return value of a raw QMP command. */
	void (*qmp_return)(json_t *value);
	/*
	 * The daemon's {"class", "desc"} of a command that failed, before the
	 * message on stderr: scripts read it from stdout with --json.
	 */
	void (*error)(json_t *error);
};

extern const struct output output_text;
extern const struct output output_json;

/* Set by -q: text output leaves out what was not asked for. */
extern bool output_quiet;
/* list: -o COLUMNS (comma-separated, NULL: the default set), --wide, and
 * the terminal's width to fit (0: no limit, output is not a terminal). */
extern const char *output_columns;
extern bool output_wide;
extern int output_width;
/* The index of list's column name (any case), or -1; and its name. */
int output_list_column(const char *name);
const char *output_list_column_name(int c);

/* The entry of schema named name, or NULL. */
json_t *schema_find(json_t *schema, const char *name);

#endif
