/*
 * output-json.c: exportctl --json (see output.h): the daemon's JSON as it
 * came, one document per command on stdout (events: one compact line
 * each, so `events --follow --json` is a JSON-lines stream).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-util.h"
#include "output.h"

static void json_print(json_t *v, size_t flags)
{
	char *s = json_dumps(v, flags | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

	printf("%s\n", s ? s : "null");
	free(s);
	fflush(stdout);
}

/* query-block-exports as it came: its x-stats already has the numbers. */
static void json_exports(json_t *exports, json_t *nodes, json_t *stats)
{
	(void)nodes, (void)stats;
	json_print(exports, JSON_INDENT(2));
}

static void json_stats(json_t *stats)
{
	json_print(stats, JSON_INDENT(2));
}

static void json_nodes(json_t *nodes)
{
	json_print(nodes, JSON_INDENT(2));
}

static void json_version(json_t *info)
{
	if (!info)
		return;		/* no daemon: the error on stderr says so */
	json_print(info, JSON_INDENT(2));
}

static void json_added(json_t *added)
{
	json_print(added, JSON_INDENT(2));
}

static void json_event(json_t *event)
{
	json_print(event, JSON_COMPACT);
}

/* Add name and every type reachable from it to out, once each. */
static void collect_type(json_t *schema, const char *name, json_t *out, json_t *seen)
{
	json_t *t, *m;
	size_t i;
	static const char *const refs[] = { "arg-type", "ret-type", "element-type" };

	if (!name || json_object_get(seen, name))
		return;
	t = schema_find(schema, name);
	if (!t)
		return;
	json_object_set_new(seen, name, json_true());
	json_array_append(out, t);
	for (i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
		collect_type(schema, json_string_value(json_object_get(t, refs[i])), out, seen);
	json_array_foreach(json_object_get(t, "members"), i, m)
		collect_type(schema, json_string_value(json_object_get(m, "type")), out, seen);
	json_array_foreach(json_object_get(t, "variants"), i, m)
		collect_type(schema, json_string_value(json_object_get(m, "type")), out, seen);
}

static void json_schema(json_t *schema, const char *command)
{
	json_t *out, *seen;

	if (!command) {
		json_print(schema, JSON_INDENT(2));
		return;
	}
	out = json_array();
	seen = json_object();
	collect_type(schema, command, out, seen);
	json_print(out, JSON_INDENT(2));
	json_decref(out);
	json_decref(seen);
}

static void json_qmp_return(json_t *value)
{
	json_print(value, JSON_INDENT(2));
}

static void json_deleted(json_t *event, const char *removed_mountpoint)
{
	(void)removed_mountpoint;	/* the event as the daemon sent it */
	json_print(event, JSON_INDENT(2));
}

static void json_info(json_t *export, json_t *nodes, json_t *stats)
{
	json_t *out = json_pack("{s:O, s:O, s:O?}", "export", export, "nodes", nodes,
				"stats", stats);

	json_print(out, JSON_INDENT(2));
	json_decref(out);
}

/* One compact line per interval, as events are: a script reads it as it comes. */
static void json_rates(json_t *rates)
{
	json_print(rates, JSON_COMPACT);
}

static void json_error(json_t *error)
{
	json_t *wrapped = json_pack("{s:O}", "error", error);

	json_print(wrapped, JSON_INDENT(2));
	json_decref(wrapped);
}

const struct output output_json = {
	.exports = json_exports,
	.stats = json_stats,
	.nodes = json_nodes,
	.info = json_info,
	.rates = json_rates,
	.version = json_version,
	.added = json_added,
	.deleted = json_deleted,
	.event = json_event,
	.schema = json_schema,
	.qmp_return = json_qmp_return,
	.error = json_error,
};
