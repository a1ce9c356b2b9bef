/*
 * monitor/cmd-state.c: x-query-state-file, what --state-file recorded,
 * what start-up could not re-create from it and why, and whether the
 * last write failed.
 */
#include "config.h"

#include "monitor/commands.h"
#include "monitor/state-file.h"

int qmp_x_query_state_file(struct qmp_session *s, json_t *args, json_t **ret,
			   struct error **errp)
{
	(void)s, (void)args, (void)errp;
	*ret = state_file_query();
	return 0;
}
