/*
 * monitor/cmd-misc.c: the daemon-level QMP commands: query-version, query-commands,
 * query-qmp-schema and quit.  (qmp_capabilities belongs to the session
 * and is handled in monitor/dispatch.c.)
 */
#include "config.h"

#include <stddef.h>

#include "export/export.h"
#include "main-loop.h"
#include "monitor/commands.h"
#include "rpc/qmp.h"
#include "rpc/schema.h"
#include "monitor/monitor.h"

int qmp_query_version(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp)
{
	(void)s, (void)args, (void)errp;
	*ret = qmp_version_info();
	return 0;
}

int qmp_query_commands(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp)
{
	json_t *list = json_array(), *name;
	size_t i;

	(void)s, (void)args, (void)errp;
	json_array_foreach(schema_command_names(schema_builtin()), i, name)
		json_array_append_new(list, json_pack("{s:O}", "name", name));
	*ret = list;
	return 0;
}

int qmp_query_qmp_schema(struct qmp_session *s, json_t *args, json_t **ret,
			 struct error **errp)
{
	(void)s, (void)args, (void)errp;
	*ret = schema_introspect(schema_builtin());
	return 0;
}

static void (*quit_hook)(const char *reason);

void monitor_set_quit_hook(void (*hook)(const char *reason))
{
	quit_hook = hook;
}

static void quit_deferred(void *opaque)
{
	(void)opaque;
	if (quit_hook)
		quit_hook("quit command");
}

int qmp_quit(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp)
{
	(void)s, (void)args, (void)ret, (void)errp;
	/*
	 * As QEMU: SHUTDOWN, then the BLOCK_EXPORT_DELETED of the exports
	 * that can go at once (deleted now), then the reply.  The rest of the
	 * shutdown is deferred so that the reply is queued before the monitor
	 * goes away.
	 */
	qmp_send_event("SHUTDOWN", json_pack("{s:b, s:s}", "guest", 0, "reason", "host-qmp-quit"));
	export_shutdown_all_now();
	main_loop_defer(quit_deferred, NULL);
	return 0;
}
