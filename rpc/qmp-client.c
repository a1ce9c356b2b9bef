/*
 * rpc/qmp-client.c: the synchronous QMP client connection (see
 * qmp-client.h).  Blocking is right for its users: they do one thing at a
 * time and wait for the answer; poll() gives the timeouts.  Received bytes
 * go through the daemon's framing (json-stream.c) into a queue of parsed
 * messages, so memory stays bounded by the largest message accepted and a
 * peer cannot make us read a never-ending one.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rpc/json-stream.h"
#include "rpc/qmp-client.h"
#include "rpc/xalloc.h"

/* query-qmp-schema of a big QEMU is ~200 KiB; leave ample room. */
#define QMP_CLIENT_MAX_MESSAGE (64u << 20)

struct qmp_client {
	int fd;
	struct json_stream stream;
	json_t *inbox;		/* framed messages not yet received */
	char *frame_error;	/* the framing's or parser's complaint, if any */
	json_t *greeting;
	json_t *events;		/* events received while waiting for a reply */
	unsigned long next_id;
	bool trace;
	bool closed;		/* the peer closed the connection */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline for poll(): -1 forever, 0 at the end. */
static int time_left(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

static void trace_msg(const struct qmp_client *c, const char *dir, json_t *msg)
{
	char *s;

	if (!c->trace)
		return;
	s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fprintf(stderr, "%s %s\n", dir, s ? s : "?");
	free(s);
}

/* json_stream callback: one framed message (or a framing error). */
static void frame_cb(const char *text, size_t len, const char *error, void *opaque)
{
	struct qmp_client *c = opaque;
	json_error_t jerr;
	json_t *msg;

	if (c->frame_error)
		return;		/* the session is already broken */
	if (error) {
		c->frame_error = xasprintf("the daemon sent bad QMP: %s", error);
		return;
	}
	msg = json_loadb(text, len, 0, &jerr);
	if (!msg) {
		c->frame_error = xasprintf("the daemon sent invalid JSON: %s", jerr.text);
		return;
	}
	if (!json_is_object(msg)) {
		json_decref(msg);
		c->frame_error = xstrdup("the daemon sent a message that is not a JSON object");
		return;
	}
	json_array_append_new(c->inbox, msg);
}

struct qmp_client *qmp_client_connect(const char *path, int greeting_timeout_ms,
				      bool trace, enum qmp_connect_error *why,
				      struct error **errp)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct qmp_client *c;
	struct error *err = NULL;
	json_t *greeting;
	const char *refusal;
	int fd;

	*why = QMP_CONNECT_FAILED;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		error_setg(errp, "socket path '%s' is too long", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		error_setg_errno(errp, errno, "cannot create a socket");
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			*why = QMP_CONNECT_NOT_RUNNING;
		error_setg_errno(errp, e, "cannot connect to '%s'", path);
		return NULL;
	}

	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->trace = trace;
	c->inbox = json_array();
	c->events = json_array();
	c->next_id = 1;
	json_stream_init(&c->stream, QMP_CLIENT_MAX_MESSAGE);

	/* A daemon that accepts but never greets is as good as absent. */
	greeting = qmp_client_recv(c, greeting_timeout_ms, &err);
	if (greeting && json_is_object(json_object_get(greeting, "QMP"))) {
		c->greeting = greeting;
		*why = QMP_CONNECT_OK;
		return c;
	}
	/* exportd over --max-connections says why instead of greeting. */
	refusal = qmp_reply_error(greeting);
	if (refusal)
		error_setg(errp, "'%s' refused the connection: %s", path, refusal);
	else if (greeting)
		error_setg(errp, "'%s' did not greet with QMP", path);
	else if (err)
		error_setg(errp, "no QMP greeting on '%s': %s", path, err->msg);
	else
		error_setg(errp, "no QMP greeting on '%s' within %d seconds", path,
			   greeting_timeout_ms / 1000);
	error_free(err);
	json_decref(greeting);
	qmp_client_free(c);
	return NULL;
}

void qmp_client_free(struct qmp_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	json_stream_free(&c->stream);
	json_decref(c->inbox);
	free(c->frame_error);
	json_decref(c->greeting);
	json_decref(c->events);
	free(c);
}

json_t *qmp_client_greeting(const struct qmp_client *c)
{
	return c->greeting;
}

int qmp_client_fd(const struct qmp_client *c)
{
	return c->fd;
}

bool qmp_client_closed(const struct qmp_client *c)
{
	return c->closed;
}

int qmp_client_send(struct qmp_client *c, json_t *msg, struct error **errp)
{
	char *s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t len, off = 0;

	if (!s) {
		error_setg(errp, "cannot encode the request as JSON");
		return -1;
	}
	trace_msg(c, "->", msg);
	len = strlen(s);
	s[len++] = '\n';	/* json_dumps leaves room: it wrote a NUL there */
	while (off < len) {
		ssize_t n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_setg_errno(errp, errno, "lost the connection to the daemon");
			free(s);
			return -1;
		}
		off += n;
	}
	free(s);
	return 0;
}

static json_t *take_framed(struct qmp_client *c)
{
	json_t *msg;

	if (json_array_size(c->inbox) == 0)
		return NULL;
	msg = json_incref(json_array_get(c->inbox, 0));
	json_array_remove(c->inbox, 0);
	trace_msg(c, "<-", msg);
	return msg;
}

json_t *qmp_client_recv(struct qmp_client *c, int timeout_ms, struct error **errp)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	char buf[65536];

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		json_t *msg = take_framed(c);
		ssize_t n;
		int ready;

		if (msg)
			return msg;
		if (c->frame_error) {
			error_setg(errp, "%s", c->frame_error);
			return NULL;
		}
		if (c->closed) {
			error_setg(errp, "the daemon closed the connection");
			return NULL;
		}
		/* Even with no time left, take what is already there. */
		ready = poll(&pfd, 1, time_left(deadline));
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0) {
			error_setg_errno(errp, errno, "poll");
			return NULL;
		}
		if (ready == 0) {
			if (deadline >= 0 && now_ms() >= deadline)
				return NULL;
			continue;
		}
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			error_setg_errno(errp, errno, "lost the connection to the daemon");
			return NULL;
		}
		if (n == 0)
			c->closed = true;
		else
			json_stream_feed(&c->stream, buf, n, frame_cb, c);
	}
}

int qmp_client_negotiate(struct qmp_client *c, struct error **errp)
{
	json_t *reply = qmp_client_execute(c, "qmp_capabilities", NULL, errp);
	const char *desc;

	if (!reply)
		return -1;
	desc = qmp_reply_error(reply);
	if (desc) {
		error_setg(errp, "qmp_capabilities failed: %s", desc);
		json_decref(reply);
		return -1;
	}
	json_decref(reply);
	return 0;
}

/* Wait for the reply whose id is id; queue events, drop replies to others. */
static json_t *wait_reply(struct qmp_client *c, json_t *id, struct error **errp)
{
	for (;;) {
		json_t *msg = qmp_client_recv(c, -1, errp);

		if (!msg)
			return NULL;
		if (json_object_get(msg, "event")) {
			json_array_append_new(c->events, msg);
			continue;
		}
		if (json_equal(json_object_get(msg, "id"), id))
			return msg;
		json_decref(msg);
	}
}

json_t *qmp_client_execute(struct qmp_client *c, const char *command,
			   json_t *args, struct error **errp)
{
	json_t *req = json_object();
	json_t *reply;

	json_object_set_new(req, "execute", json_string(command));
	if (args)
		json_object_set_new(req, "arguments", args);
	reply = qmp_client_execute_raw(c, req, errp);
	json_decref(req);
	return reply;
}

json_t *qmp_client_execute_raw(struct qmp_client *c, json_t *request,
			       struct error **errp)
{
	json_t *id = json_object_get(request, "id");
	bool own_id = !id;
	json_t *reply;

	if (own_id) {
		id = json_sprintf("rpc-client-%lu", c->next_id++);
		json_object_set_new(request, "id", id);
	}
	json_incref(id);
	if (qmp_client_send(c, request, errp) < 0) {
		json_decref(id);
		return NULL;
	}
	reply = wait_reply(c, id, errp);
	json_decref(id);
	if (own_id) {
		json_object_del(request, "id");
		if (reply)
			json_object_del(reply, "id");
	}
	return reply;
}

static bool event_matches(json_t *ev, const char *name, json_t *match)
{
	const char *key, *evname = json_string_value(json_object_get(ev, "event"));
	json_t *want, *data;

	if (!evname || strcmp(evname, name))
		return false;
	data = json_object_get(ev, "data");
	json_object_foreach(match, key, want)
		if (!json_equal(json_object_get(data, key), want))
			return false;
	return true;
}

json_t *qmp_client_wait_event(struct qmp_client *c, const char *name,
			      json_t *match, int timeout_ms, struct error **errp)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	size_t i;
	json_t *ev;

	json_array_foreach(c->events, i, ev) {
		if (event_matches(ev, name, match)) {
			json_incref(ev);
			json_array_remove(c->events, i);
			return ev;
		}
	}
	for (;;) {
		if (deadline >= 0 && now_ms() >= deadline)
			return NULL;
		ev = qmp_client_recv(c, time_left(deadline), errp);
		if (!ev)
			return NULL;
		if (!json_object_get(ev, "event")) {
			json_decref(ev);	/* a late reply nobody waits for */
			continue;
		}
		if (event_matches(ev, name, match))
			return ev;
		json_array_append_new(c->events, ev);
	}
}

json_t *qmp_client_take_event(struct qmp_client *c)
{
	json_t *ev;

	if (json_array_size(c->events) == 0)
		return NULL;
	ev = json_incref(json_array_get(c->events, 0));
	json_array_remove(c->events, 0);
	return ev;
}

bool qmp_client_has_pending(const struct qmp_client *c)
{
	return json_array_size(c->events) || json_array_size(c->inbox);
}

const char *qmp_reply_error(json_t *reply)
{
	json_t *err = json_object_get(reply, "error");
	const char *desc;

	if (!err)
		return NULL;
	desc = json_string_value(json_object_get(err, "desc"));
	return desc ? desc : "unknown error";
}

const char *qmp_reply_error_class(json_t *reply)
{
	json_t *err = json_object_get(reply, "error");
	const char *cls;

	if (!err)
		return NULL;
	cls = json_string_value(json_object_get(err, "class"));
	return cls ? cls : "GenericError";
}
