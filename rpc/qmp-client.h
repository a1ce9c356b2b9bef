/*
 * rpc/qmp-client.h: a small synchronous QMP client connection over a UNIX
 * socket, for programs that do one thing at a time and wait for its answer
 * (exportctl, tests in C): connect and read the greeting, leave
 * capabilities negotiation, execute a command with an id and wait for the
 * reply with that id, and keep the events that arrive meanwhile (QMP
 * interleaves them with replies) for the caller to take.  Messages are
 * split with the daemon's own framing (rpc/json-stream.c), so a reply
 * need not end in a newline and QEMU's single-quoted dialect is read.
 */
#ifndef EXPORTD_RPC_QMP_CLIENT_H
#define EXPORTD_RPC_QMP_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

#include "rpc/error.h"

/* How a connection attempt failed: the daemon is absent, or something else. */
enum qmp_connect_error {
	QMP_CONNECT_OK,
	QMP_CONNECT_NOT_RUNNING,	/* no socket file, or nobody listening */
	QMP_CONNECT_FAILED,		/* permission, not a socket, no greeting... */
};

struct qmp_client;

/*
 * Connect to path and read the greeting (waiting at most
 * greeting_timeout_ms).  trace: print every message sent and received on
 * stderr ("-> ..." and "<- ...").  NULL on failure, with *why and *errp.
 */
struct qmp_client *qmp_client_connect(const char *path, int greeting_timeout_ms,
				      bool trace, enum qmp_connect_error *why,
				      struct error **errp);
/* Leave capabilities negotiation (qmp_capabilities); 0 or -1 with *errp. */
int qmp_client_negotiate(struct qmp_client *c, struct error **errp);
void qmp_client_free(struct qmp_client *c);

/* The greeting ({"QMP": ...}), borrowed. */
json_t *qmp_client_greeting(const struct qmp_client *c);
/* The socket, to poll() on beside other input (see qmp_client_has_pending). */
int qmp_client_fd(const struct qmp_client *c);
/* Whether the daemon closed the connection. */
bool qmp_client_closed(const struct qmp_client *c);

/* Send one message (a JSON object); 0 or -1 with *errp. */
int qmp_client_send(struct qmp_client *c, json_t *msg, struct error **errp);

/*
 * Receive the next message (reply or event), waiting at most timeout_ms
 * (-1: forever).  NULL with *errp on error or a closed connection, NULL
 * with *errp untouched on timeout.
 */
json_t *qmp_client_recv(struct qmp_client *c, int timeout_ms, struct error **errp);

/*
 * Execute command with args (stolen; may be NULL) and return the whole
 * reply ({"return": ...} or {"error": ...}), matched by an id of ours.
 * Events received meanwhile are queued.  NULL with *errp when the session
 * failed.
 */
json_t *qmp_client_execute(struct qmp_client *c, const char *command,
			   json_t *args, struct error **errp);
/*
 * Run a whole request object (a shell's raw JSON); an "id" is added when
 * missing so the reply can be matched, and removed again from both.
 */
json_t *qmp_client_execute_raw(struct qmp_client *c, json_t *request,
			       struct error **errp);

/*
 * Wait until an event named name (whose data matches every member of
 * match, if not NULL) arrives, looking at queued events first.  Returns
 * the event (out of the queue), or NULL: *errp set on error, untouched on
 * timeout.
 */
json_t *qmp_client_wait_event(struct qmp_client *c, const char *name,
			      json_t *match, int timeout_ms, struct error **errp);
/* Take the oldest queued event, or NULL. */
json_t *qmp_client_take_event(struct qmp_client *c);
/*
 * True when a message is already received but not taken (a queued event
 * or a framed message): poll() on the fd will not tell, so a caller that
 * polls must take these first.
 */
bool qmp_client_has_pending(const struct qmp_client *c);

/* The description of an {"error": ...} reply, or NULL for a return. */
const char *qmp_reply_error(json_t *reply);
/* The class of an {"error": ...} reply, or NULL for a return. */
const char *qmp_reply_error_class(json_t *reply);

#endif
