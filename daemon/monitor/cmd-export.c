/*
 * monitor/cmd-export.c: the QMP commands for exports: block-export-add,
 * block-export-del and query-block-exports (daemon/export.c does the work).
 */
#include "config.h"

#include <string.h>

#include "export/export.h"
#include "monitor/commands.h"

int qmp_block_export_add(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp)
{
	(void)s, (void)ret;
	return export_add(args, errp);
}

int qmp_block_export_del(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp)
{
	const char *id = json_string_value(json_object_get(args, "id"));
	const char *mode = json_string_value(json_object_get(args, "mode"));

	(void)s, (void)ret;
	return export_del(id, mode && !strcmp(mode, "hard"), errp);
}

int qmp_query_block_exports(struct qmp_session *s, json_t *args, json_t **ret,
			    struct error **errp)
{
	(void)s, (void)args, (void)errp;
	*ret = export_query_all();
	return 0;
}
