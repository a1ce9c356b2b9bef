/*
 * monitor/cmd-block.c: the QMP commands of the block layer: blockdev-add,
 * blockdev-del and query-named-block-nodes.  Arguments arrive validated
 * against the schema; the semantic checks (node names, children, sizes)
 * are the block layer's.
 */
#include "config.h"

#include "block/block.h"
#include "monitor/commands.h"

int qmp_blockdev_add(struct qmp_session *s, json_t *args, json_t **ret,
		     struct error **errp)
{
	(void)s;
	(void)ret;
	return blockdev_add(args, errp);
}

int qmp_blockdev_del(struct qmp_session *s, json_t *args, json_t **ret,
		     struct error **errp)
{
	(void)s;
	(void)ret;
	return blockdev_del(json_string_value(json_object_get(args, "node-name")),
			    errp);
}

int qmp_query_named_block_nodes(struct qmp_session *s, json_t *args, json_t **ret,
				struct error **errp)
{
	(void)s;
	(void)errp;
	*ret = block_query_nodes(json_is_true(json_object_get(args, "flat")));
	return 0;
}
