/*
 * monitor/dispatch.h: turn one QMP input text into one reply, following
 * docs/interop/qmp-spec.rst and QEMU's qmp-dispatch.c wording.
 */
#ifndef EXPORTD_DISPATCH_H
#define EXPORTD_DISPATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpc/error.h"

/* Per-connection protocol state. */
struct qmp_session {
	bool negotiated;	/* qmp_capabilities done */
};

/* Check that the command table and the schema agree.  Call once. */
int qmp_dispatch_init(struct error **errp);
/*
 * hook(command, validated arguments) runs after each command that
 * succeeded and is not a query: exportd.c records the daemon's state.
 */
void qmp_dispatch_set_change_hook(void (*hook)(const char *command, json_t *args));
/* Handle one input value; returns the reply (never NULL). */
json_t *qmp_dispatch(struct qmp_session *session, const char *text, size_t len);

#endif
