/*
 * export/owned-nodes.c: nodes that follow their export.
 *
 * A client that makes nodes only to export them (exportctl add: a file
 * node and a format node) would otherwise have to delete them itself
 * after block-export-del, and could not when the export ends without it
 * (an external umount, a dead FUSE connection, a daemon restart): the
 * nodes would stay, holding the image's lock.  block-export-add's
 * x-delete-nodes names them; once the export has released its node they
 * are deleted in the order given (the format node, then its file node).
 */
#include "config.h"

#include <stdlib.h>

#include "block/block.h"
#include "export/owned-nodes.h"
#include "log.h"

int export_owned_nodes_check(json_t *names, struct error **errp)
{
	size_t i;
	json_t *n;

	json_array_foreach(names, i, n) {
		if (!block_node_find(json_string_value(n))) {
			error_setg(errp, "x-delete-nodes: Cannot find device='' nor node-name='%s'",
				   json_string_value(n));
			return -1;
		}
	}
	return 0;
}

void export_owned_nodes_delete(const char *id, json_t *names)
{
	size_t i;
	json_t *n;

	json_array_foreach(names, i, n) {
		const char *name = json_string_value(n);
		struct error *err = NULL;

		/* Deleted meanwhile (blockdev-del after the export): nothing to do. */
		if (!block_node_find(name))
			continue;
		if (blockdev_del(name, &err) < 0) {
			log_warnx("export '%s' ended, but its node '%s' stays: %s", id, name,
				  err->msg);
			error_free(err);
			continue;
		}
		log_info("export '%s' ended: node '%s' deleted with it", id, name);
	}
}
