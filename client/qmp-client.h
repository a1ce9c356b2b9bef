/*
 * qmp-client.h: the client side of a QMP session over a UNIX socket:
 * connect, read the greeting, negotiate with qmp_capabilities, execute
 * commands with an id and wait for the matching reply, and keep the
 * events that arrive in between (QMP interleaves them with replies).
 * Messages are newline-terminated JSON objects, as QEMU and exportd send
 * them.
 */
#ifndef EXPORTCTL_QMP_CLIENT_H
#define EXPORTCTL_QMP_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

/* How a connection attempt failed: the daemon is absent, or something else. */
enum qmp_connect_error {
	QMP_CONNECT_OK,
	QMP_CONNECT_NOT_RUNNING,	/* no socket file, or nobody listening */
	QMP_CONNECT_FAILED,		/* permission, not a socket, protocol... */
};

struct qmp_client {
	int fd;
	char *buf;		/* received bytes not yet split into messages */
	size_t len, cap;
	json_t *greeting;
	json_t *events;		/* array of events not yet taken */
	unsigned long next_id;
	bool trace;		/* print the traffic on stderr (-v) */
	bool closed;		/* the daemon closed the connection */
};

/*
 * Connect to path and read the greeting.  On failure returns NULL with
 * *why set and *errp an allocated message.
 */
struct qmp_client *qmp_client_connect(const char *path, bool trace,
				      enum qmp_connect_error *why, char **errp);
/* Leave capabilities negotiation; 0 or -1 with *errp. */
int qmp_client_negotiate(struct qmp_client *c, char **errp);
void qmp_client_free(struct qmp_client *c);

/* Send one message (a JSON object); 0 or -1 with *errp. */
int qmp_client_send(struct qmp_client *c, json_t *msg, char **errp);

/*
 * Receive the next message, waiting at most timeout_ms (-1: forever).
 * NULL with *errp on error or closed connection, NULL with *errp == NULL
 * on timeout.
 */
json_t *qmp_client_recv(struct qmp_client *c, int timeout_ms, char **errp);

/*
 * Execute command with args (stolen; may be NULL) and return the whole
 * reply ({"return": ...} or {"error": ...}).  Events received meanwhile
 * are queued in c->events.  NULL with *errp when the session failed.
 */
json_t *qmp_client_execute(struct qmp_client *c, const char *command,
			   json_t *args, char **errp);

/*
 * Run a whole request object (the shell's raw JSON); an "id" is added
 * when missing so the reply can be matched, and removed again.
 */
json_t *qmp_client_execute_raw(struct qmp_client *c, json_t *request,
			       char **errp);

/*
 * Wait until an event named name (whose data matches every member of
 * match, if not NULL) has arrived, looking at queued events first.
 * Returns the event (removed from the queue) or NULL: *errp set on error,
 * NULL on timeout.
 */
json_t *qmp_client_wait_event(struct qmp_client *c, const char *name,
			      json_t *match, int timeout_ms, char **errp);

/*
 * True when a whole message is already buffered: poll() on c->fd will not
 * tell, so a caller that polls must take these first.
 */
bool qmp_client_has_buffered(struct qmp_client *c);

/* Take the oldest queued event, or NULL. */
json_t *qmp_client_take_event(struct qmp_client *c);

/* The description of an {"error": ...} reply, or NULL for a return. */
const char *qmp_reply_error(json_t *reply);

#endif
