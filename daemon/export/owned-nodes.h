/*
 * export/owned-nodes.h: the nodes that go with an export when it ends
 * (block-export-add's x-delete-nodes).
 */
#ifndef EXPORTD_EXPORT_OWNED_NODES_H
#define EXPORTD_EXPORT_OWNED_NODES_H

#include <jansson.h>

#include "rpc/error.h"

/* x-delete-nodes of block-export-add: every name must be a node now. */
int export_owned_nodes_check(json_t *names, struct error **errp);
/* The export id has ended: delete the nodes named, in order; failures are logged. */
void export_owned_nodes_delete(const char *id, json_t *names);

#endif
