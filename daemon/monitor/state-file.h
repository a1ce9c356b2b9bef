/*
 * monitor/state-file.h: --state-file, the exports and nodes that outlive
 * the process (see state-file.c).
 */
#ifndef EXPORTD_MONITOR_STATE_FILE_H
#define EXPORTD_MONITOR_STATE_FILE_H

#include <jansson.h>

#include "rpc/error.h"

/* Use the state file at path (absolute).  Call once, before the rest. */
void state_file_init(const char *path);
/*
 * Re-create the nodes and exports the file records, in order; each that
 * fails is logged and kept for x-query-state-file, and the rest go on.
 * Fails only when the file exists and cannot be read or parsed.
 */
int state_file_restore(struct error **errp);
/*
 * The daemon changed: command (a QMP command that succeeded, with its
 * validated arguments) or NULL (an export ended by itself).  Rewrites
 * the file.  A no-op without --state-file.
 */
void state_file_changed(const char *command, json_t *args);
/* x-query-state-file's return value. */
json_t *state_file_query(void);

#endif
