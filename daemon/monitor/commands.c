/*
 * monitor/commands.c: the QMP command table: schema name -> handler.  The
 * dispatcher refuses to start when this table and the schema disagree.
 */
#include "config.h"

#include <stddef.h>

#include "monitor/commands.h"

const struct qmp_command qmp_commands[] = {
	{ "qmp_capabilities", NULL },	/* handled by the session itself */
	{ "query-version", qmp_query_version },
	{ "query-commands", qmp_query_commands },
	{ "query-qmp-schema", qmp_query_qmp_schema },
	{ "quit", qmp_quit },
	{ "blockdev-add", qmp_blockdev_add },
	{ "blockdev-del", qmp_blockdev_del },
	{ "query-named-block-nodes", qmp_query_named_block_nodes },
	{ "block-export-add", qmp_block_export_add },
	{ "block-export-del", qmp_block_export_del },
	{ "query-block-exports", qmp_query_block_exports },
	{ "query-blockstats", qmp_query_blockstats },
	{ "x-query-export-stats", qmp_x_query_export_stats },
	{ "object-add", qmp_object_add },
	{ "object-del", qmp_object_del },
	{ NULL, NULL },
};
