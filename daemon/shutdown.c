/*
 * shutdown.c: graceful shutdown of the daemon.  Exports go first (their
 * mounts are removed and in-flight requests complete), then the monitor
 * (so clients still see BLOCK_EXPORT_DELETED), then the block nodes, then
 * the objects they may have used (secrets), then the main loop ends and
 * main() cleans up.
 */
#include "config.h"

#include <stdbool.h>

#include "block/block.h"
#include "export/export.h"
#include "log.h"
#include "main-loop.h"
#include "monitor/monitor.h"
#include "object/object.h"
#include "shutdown.h"

static bool shutting_down;

static void daemon_monitor_gone(void *opaque)
{
	(void)opaque;
	block_close_all();
	object_del_all();
	main_loop_exit();
}

static void daemon_exports_gone(void *opaque)
{
	(void)opaque;
	monitor_close(daemon_monitor_gone, NULL);
}

void daemon_request_shutdown(const char *reason)
{
	if (shutting_down)
		return;
	shutting_down = true;
	log_info("shutting down (%s)", reason);
	monitor_refuse_changes();
	export_shutdown_all(daemon_exports_gone, NULL);
}

bool daemon_shutdown_requested(void)
{
	return shutting_down;
}
