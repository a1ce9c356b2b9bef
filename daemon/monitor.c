/*
 * monitor.c: the QMP server, after OpenBSD's control.c.  One UNIX socket
 * listener and a list of connections, all driven by the main loop with
 * bufferevents, so a client that sends half a line and stalls, or never
 * reads its replies, blocks nobody.
 *
 * Memory per connection is bounded: an incoming message larger than the
 * limit gets an error and the connection is closed; when a client does
 * not read, we stop reading its requests once its unread replies exceed
 * OUTPUT_PAUSE, and drop it if events pile up past OUTPUT_MAX.
 */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dispatch.h"
#include "json-stream.h"
#include "log.h"
#include "main-loop.h"
#include "monitor.h"
#include "qmp.h"
#include "util.h"

#define OUTPUT_PAUSE (1u << 20)
#define OUTPUT_MAX (16u << 20)
#define READ_CHUNK 65536

struct qmp_conn {
	struct bufferevent *bev;
	struct qmp_session session;
	struct json_stream stream;
	unsigned int serial;
	bool closing;		/* close once the output is flushed */
	bool paused;		/* not reading: the client is not reading replies */
	TAILQ_ENTRY(qmp_conn) next;
};

struct qmp_listener {
	struct evconnlistener *listener;
	char *path;
	struct stat bound;	/* the socket file we created (dev, ino) */
	TAILQ_ENTRY(qmp_listener) next;
};

static TAILQ_HEAD(, qmp_conn) conns = TAILQ_HEAD_INITIALIZER(conns);
/* Several sockets are possible: qemu-storage-daemon allows several --monitor. */
static TAILQ_HEAD(, qmp_listener) listeners = TAILQ_HEAD_INITIALIZER(listeners);
static size_t max_message = 1u << 20;
static void monitor_close_finish(void);
static void (*close_done)(void *opaque);
static unsigned int conn_serial;

void monitor_set_max_message_size(size_t bytes)
{
	max_message = bytes;
}

static void qmp_conn_free(struct qmp_conn *c)
{
	log_debug("QMP connection %u closed", c->serial);
	TAILQ_REMOVE(&conns, c, next);
	bufferevent_free(c->bev);
	json_stream_free(&c->stream);
	free(c);
	if (close_done && TAILQ_EMPTY(&conns))
		monitor_close_finish();
}

/* Free a dropped connection later: we may be iterating over the list now. */
static void qmp_conn_drop_deferred(void *opaque)
{
	unsigned int serial = (unsigned int)(uintptr_t)opaque;
	struct qmp_conn *c;

	TAILQ_FOREACH(c, &conns, next) {
		if (c->serial == serial) {
			qmp_conn_free(c);
			return;
		}
	}
}

static void qmp_conn_send(struct qmp_conn *c, json_t *msg)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len;
	char *text;

	if (evbuffer_get_length(out) > OUTPUT_MAX) {
		/* Only events can get here: requests stop being read long before. */
		log_warnx("QMP connection %u does not read its messages, closing it", c->serial);
		c->closing = true;
		evbuffer_drain(out, evbuffer_get_length(out));
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		main_loop_defer(qmp_conn_drop_deferred, (void *)(uintptr_t)c->serial);
		return;
	}
	text = qmp_format(msg, &len);
	evbuffer_add(out, text, len);
	free(text);
}

static void qmp_conn_on_message(const char *text, size_t len, void *opaque)
{
	struct qmp_conn *c = opaque;
	json_t *reply;

	if (c->closing)
		return;
	reply = qmp_dispatch(&c->session, text, len);
	qmp_conn_send(c, reply);
	json_decref(reply);
}

static void qmp_conn_read(struct bufferevent *bev, void *arg)
{
	struct qmp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;

	while (!c->closing && !c->paused && (n = evbuffer_get_length(in)) > 0) {
		size_t chunk = MIN(n, (size_t)READ_CHUNK);
		const char *data = (const char *)evbuffer_pullup(in, (ssize_t)chunk);
		int rc = json_stream_feed(&c->stream, data, chunk, qmp_conn_on_message, c);

		evbuffer_drain(in, chunk);
		if (rc < 0) {
			char *desc = xasprintf("QMP input exceeds the limit of %zu bytes; "
					       "closing the connection", max_message);
			json_t *err = qmp_error_new(ERROR_CLASS_GENERIC, desc, NULL);

			log_warnx("QMP connection %u: %s", c->serial, desc);
			qmp_conn_send(c, err);
			json_decref(err);
			free(desc);
			c->closing = true;
			bufferevent_disable(bev, EV_READ);
			evbuffer_drain(in, evbuffer_get_length(in));
			break;
		}
		if (evbuffer_get_length(bufferevent_get_output(bev)) > OUTPUT_PAUSE) {
			c->paused = true;
			bufferevent_disable(bev, EV_READ);
		}
	}
	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		qmp_conn_free(c);
}

static void qmp_conn_write(struct bufferevent *bev, void *arg)
{
	struct qmp_conn *c = arg;

	/* Called when the output has drained below the write low-water mark (0). */
	if (c->closing) {
		qmp_conn_free(c);
		return;
	}
	if (c->paused) {
		c->paused = false;
		bufferevent_enable(bev, EV_READ);
		qmp_conn_read(bev, c);
	}
}

static void qmp_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct qmp_conn *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		qmp_conn_free(c);
}

static void monitor_accept(struct evconnlistener *l, evutil_socket_t fd,
			   struct sockaddr *sa, int socklen, void *arg)
{
	struct qmp_conn *c;
	json_t *greeting;

	(void)l, (void)sa, (void)socklen, (void)arg;
	c = xcalloc(1, sizeof(*c));
	c->serial = ++conn_serial;
	c->bev = bufferevent_socket_new(main_loop_base(), fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		log_warnx("cannot set up QMP connection");
		close(fd);
		free(c);
		return;
	}
	json_stream_init(&c->stream, max_message);
	TAILQ_INSERT_TAIL(&conns, c, next);
	bufferevent_setcb(c->bev, qmp_conn_read, qmp_conn_write, qmp_conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	greeting = qmp_greeting_new();
	qmp_conn_send(c, greeting);
	json_decref(greeting);
	log_debug("QMP connection %u opened", c->serial);
}

static void monitor_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l, (void)arg;
	/* EMFILE and friends: keep running, the next accept may work. */
	log_warn("accept on the QMP socket failed");
}

/*
 * Remove the socket file at path only if it is still the one bound (st):
 * by the time we leave, its directory may hold someone else's file under
 * that name, and removing it would be ours to answer for.
 */
static void monitor_unlink_socket(const char *path, const struct stat *bound)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (st.st_dev != bound->st_dev || st.st_ino != bound->st_ino) {
		log_warnx("'%s' is no longer the socket exportd created; leaving it", path);
		return;
	}
	if (unlink(path) < 0)
		log_warn("cannot remove socket '%s'", path);
}

/* Whether a daemon answers on path.  A refused connection means a stale file. */
static int monitor_check_stale(const char *path, const struct sockaddr_un *sun,
			       struct error **errp)
{
	struct stat st, now;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		error_setg_errno(errp, errno, "Failed to stat '%s'", path);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		error_setg(errp, "'%s' exists and is not a socket; not replacing it", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		error_setg_errno(errp, errno, "Failed to create a socket");
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		error_setg(errp, "Another daemon is already listening on '%s'", path);
		return -1;
	}
	log_info("replacing stale socket '%s'", path);
	/* Only the socket we probed: not a file put in its place meanwhile. */
	if (lstat(path, &now) == 0 && (now.st_dev != st.st_dev || now.st_ino != st.st_ino)) {
		error_setg(errp, "'%s' was replaced while exportd checked it; not "
			   "replacing it", path);
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		error_setg_errno(errp, errno, "Failed to remove stale socket '%s'", path);
		return -1;
	}
	return 0;
}

int monitor_listen(const char *path, struct error **errp)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct evconnlistener *listener;
	struct qmp_listener *ql;
	struct stat bound;
	mode_t old_umask;
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		error_setg(errp, "Socket path '%s' is too long (at most %zu bytes)", path,
			   sizeof(sun.sun_path) - 1);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (monitor_check_stale(path, &sun, errp) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		error_setg_errno(errp, errno, "Failed to create a socket");
		return -1;
	}
	/* Created 0600 from the start: no window where others could connect. */
	old_umask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_umask);
	if (rc < 0) {
		error_setg_errno(errp, errno, "Failed to bind socket '%s'", path);
		close(fd);
		return -1;
	}
	/* Remember which file is ours, to remove that one and no other. */
	if (lstat(path, &bound) < 0 || !S_ISSOCK(bound.st_mode)) {
		error_setg(errp, "Socket '%s' was replaced right after it was created", path);
		close(fd);
		return -1;
	}
	if (listen(fd, 64) < 0) {
		error_setg_errno(errp, errno, "Failed to listen on '%s'", path);
		close(fd);
		monitor_unlink_socket(path, &bound);
		return -1;
	}
	listener = evconnlistener_new(main_loop_base(), monitor_accept, NULL,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!listener) {
		error_setg(errp, "Failed to watch socket '%s'", path);
		close(fd);
		monitor_unlink_socket(path, &bound);
		return -1;
	}
	evconnlistener_set_error_cb(listener, monitor_accept_error);
	ql = xcalloc(1, sizeof(*ql));
	ql->listener = listener;
	ql->path = xstrdup(path);
	ql->bound = bound;
	TAILQ_INSERT_TAIL(&listeners, ql, next);
	log_info("listening on %s", path);
	return 0;
}

static void *close_done_opaque;
static struct event *close_timer;

static void monitor_close_finish(void)
{
	void (*done)(void *) = close_done;

	if (!done)
		return;
	close_done = NULL;
	if (close_timer) {
		event_free(close_timer);
		close_timer = NULL;
	}
	done(close_done_opaque);
}

static void monitor_close_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct qmp_conn *c;

	(void)fd, (void)what, (void)arg;
	while ((c = TAILQ_FIRST(&conns)))
		qmp_conn_free(c);
	monitor_close_finish();
}

void monitor_close(void (*done)(void *opaque), void *opaque)
{
	struct timeval one_second = { 1, 0 };
	struct qmp_listener *ql;
	struct qmp_conn *c, *tmp;

	while ((ql = TAILQ_FIRST(&listeners))) {
		TAILQ_REMOVE(&listeners, ql, next);
		evconnlistener_free(ql->listener);
		monitor_unlink_socket(ql->path, &ql->bound);
		free(ql->path);
		free(ql);
	}
	/*
	 * Let pending replies (quit's) go out through the loop; a client that
	 * does not read gets a second before it is cut off.
	 */
	close_done = done;
	close_done_opaque = opaque;
	for (c = TAILQ_FIRST(&conns); c; c = tmp) {
		tmp = TAILQ_NEXT(c, next);
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			qmp_conn_free(c);
	}
	if (TAILQ_EMPTY(&conns)) {
		monitor_close_finish();
		return;
	}
	close_timer = evtimer_new(main_loop_base(), monitor_close_timeout, NULL);
	evtimer_add(close_timer, &one_second);
}

void qmp_send_event(const char *event, json_t *data)
{
	json_t *msg = qmp_event_new(event, data);
	struct qmp_conn *c;

	log_debug("event %s", event);
	TAILQ_FOREACH(c, &conns, next) {
		if (c->session.negotiated && !c->closing)
			qmp_conn_send(c, msg);
	}
	json_decref(msg);
}
