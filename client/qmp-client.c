/*
 * qmp-client.c: a blocking QMP client for exportctl (see qmp-client.h).
 * Blocking is right for a command-line tool: it does one thing at a time
 * and waits for its answer; poll() gives the timeouts.  The receive buffer
 * is bounded so that a misbehaving peer cannot exhaust memory.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl-util.h"
#include "qmp-client.h"

/* query-qmp-schema of a big QEMU is ~200 KiB; leave ample room. */
#define QMP_CLIENT_MAX_MESSAGE (64u << 20)

static void set_err(char **errp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_err(char **errp, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (!errp)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(*errp);
	*errp = s ? s : ctl_xstrdup("out of memory");
}

static void trace_msg(struct qmp_client *c, const char *dir, json_t *msg)
{
	char *s;

	if (!c->trace)
		return;
	s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fprintf(stderr, "%s %s\n", dir, s ? s : "?");
	free(s);
}

struct qmp_client *qmp_client_connect(const char *path, bool trace,
				      enum qmp_connect_error *why, char **errp)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct qmp_client *c;
	char *err = NULL;
	json_t *greeting;
	int fd;

	*why = QMP_CONNECT_FAILED;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		set_err(errp, "socket path '%s' is too long", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_err(errp, "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			*why = QMP_CONNECT_NOT_RUNNING;
		set_err(errp, "cannot connect to '%s': %s", path, strerror(e));
		return NULL;
	}

	c = ctl_xmalloc(sizeof(*c));
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->trace = trace;
	c->events = json_array();
	c->next_id = 1;

	/* A daemon that accepts but never greets is as good as absent. */
	greeting = qmp_client_recv(c, 10000, &err);
	if (!greeting || !json_is_object(json_object_get(greeting, "QMP"))) {
		const char *refusal = json_string_value(
			json_object_get(json_object_get(greeting, "error"), "desc"));

		/* exportd over --max-connections says why instead of greeting. */
		if (refusal)
			set_err(errp, "'%s' refused the connection: %s", path, refusal);
		else if (greeting)
			set_err(errp, "'%s' did not greet with QMP", path);
		else if (err)
			set_err(errp, "no QMP greeting on '%s': %s", path, err);
		else
			set_err(errp, "no QMP greeting on '%s' within 10 seconds", path);
		free(err);
		json_decref(greeting);
		qmp_client_free(c);
		return NULL;
	}
	c->greeting = greeting;
	*why = QMP_CONNECT_OK;
	return c;
}

void qmp_client_free(struct qmp_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	json_decref(c->greeting);
	json_decref(c->events);
	free(c);
}

int qmp_client_send(struct qmp_client *c, json_t *msg, char **errp)
{
	char *s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t len, off = 0;

	if (!s) {
		set_err(errp, "cannot encode the request as JSON");
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
			set_err(errp, "lost the connection to exportd: %s",
				strerror(errno));
			free(s);
			return -1;
		}
		off += n;
	}
	free(s);
	return 0;
}

/* Split one complete line off the buffer and parse it, or return NULL. */
static json_t *take_line(struct qmp_client *c, bool *bad, char **errp)
{
	json_error_t jerr;
	char *nl;
	json_t *msg;
	size_t linelen;

	*bad = false;
	for (;;) {
		nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (!nl)
			return NULL;
		linelen = nl - c->buf;
		msg = NULL;
		/* Skip blank lines (a bare CRLF is legal between messages). */
		if (strspn(c->buf, " \t\r") < linelen) {
			msg = json_loadb(c->buf, linelen, 0, &jerr);
			if (!msg) {
				set_err(errp, "exportd sent invalid JSON: %s", jerr.text);
				*bad = true;
			}
		}
		/* Move the rest down with its terminating NUL. */
		memmove(c->buf, nl + 1, c->len - linelen);
		c->len -= linelen + 1;
		if (msg || *bad)
			return msg;
	}
}

json_t *qmp_client_recv(struct qmp_client *c, int timeout_ms, char **errp)
{
	long long deadline = timeout_ms < 0 ? -1 : ctl_now_ms() + timeout_ms;
	bool bad;
	json_t *msg;

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int wait = -1;
		ssize_t n;

		msg = take_line(c, &bad, errp);
		if (msg) {
			trace_msg(c, "<-", msg);
			if (!json_is_object(msg)) {
				json_decref(msg);
				set_err(errp, "exportd sent a message that is not a JSON object");
				return NULL;
			}
			return msg;
		}
		if (bad)
			return NULL;
		if (c->closed) {
			set_err(errp, "exportd closed the connection");
			return NULL;
		}
		if (deadline >= 0) {
			long long left = deadline - ctl_now_ms();

			/* Even with no time left, take what is already there. */
			wait = left <= 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
		}
		n = poll(&pfd, 1, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			set_err(errp, "poll: %s", strerror(errno));
			return NULL;
		}
		if (n == 0) {
			if (deadline >= 0 && ctl_now_ms() >= deadline)
				return NULL;
			continue;
		}
		if (c->cap - c->len < 65536) {
			if (c->cap >= QMP_CLIENT_MAX_MESSAGE) {
				set_err(errp, "message from exportd exceeds %u bytes",
					QMP_CLIENT_MAX_MESSAGE);
				return NULL;
			}
			c->cap = c->cap ? c->cap * 2 : 65536 * 2;
			c->buf = ctl_xrealloc(c->buf, c->cap);
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			set_err(errp, "lost the connection to exportd: %s",
				strerror(errno));
			return NULL;
		}
		if (n == 0)
			c->closed = true;
		c->len += n;
		c->buf[c->len] = '\0';	/* for strspn in take_line */
	}
}

int qmp_client_negotiate(struct qmp_client *c, char **errp)
{
	json_t *reply = qmp_client_execute(c, "qmp_capabilities", NULL, errp);
	const char *desc;

	if (!reply)
		return -1;
	desc = qmp_reply_error(reply);
	if (desc) {
		set_err(errp, "qmp_capabilities failed: %s", desc);
		json_decref(reply);
		return -1;
	}
	json_decref(reply);
	return 0;
}

/* Wait for the reply whose id is id; queue events, drop strays. */
static json_t *wait_reply(struct qmp_client *c, json_t *id, char **errp)
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
			   json_t *args, char **errp)
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
			       char **errp)
{
	json_t *id = json_object_get(request, "id");
	bool own_id = !id;
	json_t *reply;

	if (own_id) {
		id = json_sprintf("exportctl-%lu", c->next_id++);
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
	const char *key;
	json_t *want, *data;

	if (strcmp(json_string_value(json_object_get(ev, "event")) ?: "", name))
		return false;
	if (!match)
		return true;
	data = json_object_get(ev, "data");
	json_object_foreach(match, key, want)
		if (!json_equal(json_object_get(data, key), want))
			return false;
	return true;
}

json_t *qmp_client_wait_event(struct qmp_client *c, const char *name,
			      json_t *match, int timeout_ms, char **errp)
{
	long long deadline = timeout_ms < 0 ? -1 : ctl_now_ms() + timeout_ms;
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
		int wait = -1;

		if (deadline >= 0) {
			long long left = deadline - ctl_now_ms();

			if (left <= 0)
				return NULL;
			wait = (int)left;
		}
		ev = qmp_client_recv(c, wait, errp);
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

bool qmp_client_has_buffered(struct qmp_client *c)
{
	return c->len && memchr(c->buf, '\n', c->len);
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

const char *qmp_reply_error(json_t *reply)
{
	json_t *err = json_object_get(reply, "error");
	const char *desc;

	if (!err)
		return NULL;
	desc = json_string_value(json_object_get(err, "desc"));
	return desc ? desc : "unknown error";
}
