/*
 * monitor/commands.h: every QMP command handler of the daemon.
 *
 * A handler gets the request's `arguments`, already validated against the
 * schema (no unknown members, required ones present, right types, enum
 * values in range), and borrows it.  On success it returns 0 and may set
 * *ret to a new reference (NULL means `{}`); on failure it returns -1 and
 * sets *errp.  A handler that fails must have had no side effect.
 *
 * The dispatcher checks at start-up that the schema's commands and this
 * table are the same set, so the two cannot drift apart.
 */
#ifndef EXPORTD_QMP_COMMANDS_H
#define EXPORTD_QMP_COMMANDS_H

#include <jansson.h>

#include "rpc/error.h"

struct qmp_session;

typedef int (*qmp_handler)(struct qmp_session *session, json_t *args, json_t **ret,
			   struct error **errp);

struct qmp_command {
	const char *name;
	qmp_handler handler;
};

/* The table, terminated by { NULL, NULL }: rpc/commands/table.c. */
extern const struct qmp_command qmp_commands[];

/* monitor/cmd-misc.c */
int qmp_query_version(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
int qmp_query_commands(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
int qmp_query_qmp_schema(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
int qmp_quit(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
/* monitor/cmd-block.c */
int qmp_blockdev_add(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
int qmp_blockdev_del(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
int qmp_query_named_block_nodes(struct qmp_session *s, json_t *args, json_t **ret,
				struct error **errp);
/* monitor/cmd-export.c */
int qmp_block_export_add(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp);
int qmp_block_export_del(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp);
int qmp_query_block_exports(struct qmp_session *s, json_t *args, json_t **ret,
			    struct error **errp);
/* monitor/cmd-stats.c */
int qmp_query_blockstats(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp);
int qmp_x_query_export_stats(struct qmp_session *s, json_t *args, json_t **ret,
			     struct error **errp);

/* monitor/cmd-object.c */
int qmp_object_add(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);
int qmp_object_del(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp);

#endif
