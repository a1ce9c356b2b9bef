/*
 * monitor/cmd-stats.c: the QMP commands that report I/O statistics: query-blockstats
 * in QEMU's shape (per export, or per named node with query-nodes), and
 * exportd's x-query-export-stats with histograms and percentiles.  The
 * numbers come from each export's per-thread slots (daemon/export/stats.h),
 * summed here on the main thread.
 */
#include "config.h"

#include <string.h>

#include "block/block.h"
#include "export/export.h"
#include "export/stats.h"
#include "monitor/commands.h"
#include "util.h"

static void export_totals(struct export *exp, struct export_stats_totals *t)
{
	if (exp->stats)
		export_stats_sum(exp->stats, t);
	else
		memset(t, 0, sizeof(*t));
}

static json_t *blockstats_of_export(struct export *exp, uint64_t now)
{
	struct export_stats_totals t;

	export_totals(exp, &t);
	/*
	 * QEMU names a BlockBackend's user in qdev and leaves device empty
	 * for anonymous BlockBackends, which an export's is.
	 */
	return json_pack("{s:s, s:s, s:s, s:o}", "device", "", "qdev", exp->id,
			 "node-name", exp->node->node_name,
			 "stats", export_stats_blockstats_json(&t, now));
}

/* Every named node, with what the exports serving it directly counted. */
static json_t *blockstats_of_nodes(uint64_t now)
{
	json_t *nodes = block_query_nodes(true);
	json_t *list = json_array();
	size_t i;
	json_t *n;

	json_array_foreach(nodes, i, n) {
		const char *name = json_string_value(json_object_get(n, "node-name"));
		struct export_stats_totals sum, t;

		if (!name)
			continue;
		memset(&sum, 0, sizeof(sum));
		for (struct export *exp = export_next(NULL); exp; exp = export_next(exp)) {
			if (strcmp(exp->node->node_name, name))
				continue;
			export_totals(exp, &t);
			export_stats_totals_add(&sum, &t);
		}
		json_array_append_new(list, json_pack("{s:s, s:o}", "node-name", name, "stats",
						      export_stats_blockstats_json(&sum, now)));
	}
	json_decref(nodes);
	return list;
}

int qmp_query_blockstats(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp)
{
	uint64_t now = clock_monotonic_ns();
	json_t *list;

	(void)s, (void)errp;
	if (json_is_true(json_object_get(args, "query-nodes"))) {
		*ret = blockstats_of_nodes(now);
		return 0;
	}
	list = json_array();
	for (struct export *exp = export_next(NULL); exp; exp = export_next(exp))
		json_array_append_new(list, blockstats_of_export(exp, now));
	*ret = list;
	return 0;
}

static json_t *export_stats_info(struct export *exp, uint64_t now)
{
	struct export_stats_totals t;
	json_t *info;

	export_totals(exp, &t);
	info = json_pack("{s:s, s:s, s:s, s:b, s:i, s:I, s:o, s:I}",
			 "id", exp->id, "type", exp->drv->type,
			 "node-name", exp->node->node_name,
			 "shutting-down", exp->shutting_down,
			 "slots", exp->stats ? exp->stats->nslots : 0,
			 "age-ns", (json_int_t)(exp->stats ? now - exp->stats->created_ns : 0),
			 "uncounted", exp->stats ? export_stats_uncounted_json(exp->stats) :
				      json_array(),
			 "wr-highest-offset", (json_int_t)t.wr_highest);
	if (t.last_ns && now >= t.last_ns)
		json_object_set_new(info, "idle-time-ns", json_integer((json_int_t)(now - t.last_ns)));
	json_object_set_new(info, "ops", export_stats_ops_json(&t));
	return info;
}

int qmp_x_query_export_stats(struct qmp_session *s, json_t *args, json_t **ret,
			     struct error **errp)
{
	const char *id = json_string_value(json_object_get(args, "id"));
	uint64_t now = clock_monotonic_ns();
	json_t *list;

	(void)s;
	if (id) {
		struct export *exp = export_find(id);

		if (!exp) {
			error_setg(errp, "Export '%s' is not found", id);
			return -1;
		}
		*ret = json_pack("[o]", export_stats_info(exp, now));
		return 0;
	}
	list = json_array();
	for (struct export *exp = export_next(NULL); exp; exp = export_next(exp))
		json_array_append_new(list, export_stats_info(exp, now));
	*ret = list;
	return 0;
}
