/*
 * monitor/monitor.c: the QMP server, after OpenBSD's control.c.  One UNIX socket
 * listener and a list of connections, all driven by the main loop with
 * bufferevents, so a client that sends half a line and stalls, or never
 * reads its replies, blocks nobody.
 *
 * Memory per connection is bounded: an incoming message larger than the
 * limit gets an error and is skipped (json-stream.c never holds more than
 * the limit); when a client does not read, we stop reading its requests
 * once its unread replies exceed OUTPUT_PAUSE, and drop it if events pile
 * up past OUTPUT_MAX.  The number of connections is capped, and running
 * out of file descriptors pauses accepting for a moment (as control.c
 * does) instead of spinning on a listener that stays readable.
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
#include <time.h>
#include <unistd.h>

#include "monitor/dispatch.h"
#include "rpc/json-stream.h"
#include "log.h"
#include "main-loop.h"
#include "monitor/monitor.h"
#include "rpc/qmp.h"
#include "util.h"

#define OUTPUT_PAUSE (1u << 20)
#define OUTPUT_MAX (16u << 20)
#define READ_CHUNK 65536
/* How long accepting pauses when we are out of file descriptors. */
#define ACCEPT_PAUSE_SECONDS 1
/* A repeated complaint (accept failing, clients refused) is logged this often at most. */
#define COMPLAINT_INTERVAL_SECONDS 60

/* Say something once, then at most every COMPLAINT_INTERVAL_SECONDS with a count. */
struct complaint {
	time_t last;
	unsigned long suppressed;
};

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
static size_t max_message = MONITOR_DEFAULT_MAX_MESSAGE;
static unsigned int max_connections = MONITOR_DEFAULT_MAX_CONNECTIONS;
static unsigned int n_conns;
static struct event *accept_resume_timer;	/* armed while accepting is paused */
static struct complaint accept_complaint, refuse_complaint;
static void monitor_close_finish(void);
static void (*close_done)(void *opaque);
static unsigned int conn_serial;

void monitor_set_max_message_size(size_t bytes)
{
	max_message = bytes;
}

void monitor_set_max_connections(unsigned int n)
{
	max_connections = n;
}

/* Whether to log a complaint now; *suppressed gets how many were skipped since. */
static bool complaint_due(struct complaint *cp, unsigned long *suppressed)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (cp->last && now.tv_sec - cp->last < COMPLAINT_INTERVAL_SECONDS) {
		cp->suppressed++;
		return false;
	}
	/* +1: a clock that reads 0 must not look like "never". */
	cp->last = now.tv_sec + 1;
	*suppressed = cp->suppressed;
	cp->suppressed = 0;
	return true;
}

static void monitor_accept_resume(void)
{
	struct qmp_listener *ql;

	if (!accept_resume_timer)
		return;
	event_free(accept_resume_timer);
	accept_resume_timer = NULL;
	TAILQ_FOREACH(ql, &listeners, next)
		evconnlistener_enable(ql->listener);
}

static void monitor_accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	monitor_accept_resume();
}

static void qmp_conn_free(struct qmp_conn *c)
{
	log_debug("QMP connection %u closed", c->serial);
	TAILQ_REMOVE(&conns, c, next);
	n_conns--;
	bufferevent_free(c->bev);
	json_stream_free(&c->stream);
	free(c);
	/* A descriptor was just given back: waiting clients need not wait for the timer. */
	monitor_accept_resume();
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

static int qmp_conn_append(const char *buf, size_t size, void *out)
{
	return evbuffer_add(out, buf, size);
}

static void qmp_conn_send(struct qmp_conn *c, json_t *msg)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct evbuffer *line;
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
	/*
	 * Serialise into the output buffer's chains, as qmp_format() would
	 * (same flags): a reply echoing a 16 MiB id is not copied twice more.
	 * evbuffer_add_buffer() moves the chains; a failed dump is dropped whole.
	 */
	line = evbuffer_new();
	if (line && json_dump_callback(msg, qmp_conn_append, line,
				       JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) == 0 &&
	    evbuffer_add(line, "\r\n", 2) == 0) {
		evbuffer_add_buffer(out, line);
		evbuffer_free(line);
		return;
	}
	if (line)
		evbuffer_free(line);
	log_warnx("QMP connection %u: cannot serialise a message", c->serial);
	text = qmp_format(msg, &len);
	evbuffer_add(out, text, len);
	free(text);
}

static void qmp_conn_on_message(const char *text, size_t len, const char *error,
				void *opaque)
{
	struct qmp_conn *c = opaque;
	json_t *reply;

	if (c->closing)
		return;
	if (error) {
		log_debug("QMP connection %u: %s", c->serial, error);
		reply = qmp_error_new(ERROR_CLASS_GENERIC, error, NULL);
	} else {
		reply = qmp_dispatch(&c->session, text, len);
	}
	qmp_conn_send(c, reply);
	json_decref(reply);
	/*
	 * Stop at once, not at the end of the chunk: a chunk of small requests
	 * with large replies (query-qmp-schema) would queue megabytes.
	 */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUTPUT_PAUSE)
		json_stream_stop(&c->stream);
}

static void qmp_conn_read(struct bufferevent *bev, void *arg)
{
	struct qmp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;

	while (!c->closing && !c->paused && (n = evbuffer_get_length(in)) > 0) {
		size_t chunk = MIN(n, (size_t)READ_CHUNK);
		const char *data = (const char *)evbuffer_pullup(in, (ssize_t)chunk);

		evbuffer_drain(in, json_stream_feed(&c->stream, data, chunk,
						    qmp_conn_on_message, c));
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

/* Over the connection cap: say why in QMP's error shape, without a greeting, and hang up. */
static void monitor_refuse(evutil_socket_t fd)
{
	char *desc = xasprintf("Too many QMP connections: exportd serves at most %u at once "
			       "(--max-connections); try again later", max_connections);
	json_t *err = qmp_error_new(ERROR_CLASS_GENERIC, desc, NULL);
	unsigned long suppressed;
	size_t len;
	char *text = qmp_format(err, &len);

	/* A new socket's send buffer is empty: this short line cannot block. */
	if (send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("cannot tell a refused QMP client why: %s", strerror(errno));
	close(fd);
	if (complaint_due(&refuse_complaint, &suppressed))
		log_warnx("refused a QMP connection: %u are open, the limit "
			  "(--max-connections); %lu others refused since the last message",
			  max_connections, suppressed);
	free(text);
	json_decref(err);
	free(desc);
}

static void monitor_accept(struct evconnlistener *l, evutil_socket_t fd,
			   struct sockaddr *sa, int socklen, void *arg)
{
	struct qmp_conn *c;
	json_t *greeting;

	(void)l, (void)sa, (void)socklen, (void)arg;
	if (n_conns >= max_connections) {
		monitor_refuse(fd);
		return;
	}
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
	n_conns++;
	bufferevent_setcb(c->bev, qmp_conn_read, qmp_conn_write, qmp_conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	greeting = qmp_greeting_new();
	qmp_conn_send(c, greeting);
	json_decref(greeting);
	log_debug("QMP connection %u opened", c->serial);
}

/*
 * The listener stays readable while accept() fails, so retrying at once
 * would spin.  libevent retries by itself only where that is harmless
 * (EAGAIN, EINTR, ECONNABORTED); on anything else, in practice running out
 * of descriptors (EMFILE, ENFILE) or memory, stop listening until a
 * connection closes or a second has passed.
 */
static void monitor_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = { ACCEPT_PAUSE_SECONDS, 0 };
	unsigned long suppressed;
	struct qmp_listener *ql;

	(void)l, (void)arg;
	if (complaint_due(&accept_complaint, &suppressed)) {
		if (suppressed)
			log_warnx("accept on the QMP socket failed: %s (and %lu times since the "
				  "last message); pausing until a connection closes or for %d s",
				  strerror(err), suppressed, ACCEPT_PAUSE_SECONDS);
		else
			log_warnx("accept on the QMP socket failed: %s; pausing until a "
				  "connection closes or for %d s", strerror(err),
				  ACCEPT_PAUSE_SECONDS);
	}
	if (accept_resume_timer)
		return;
	TAILQ_FOREACH(ql, &listeners, next)
		evconnlistener_disable(ql->listener);
	accept_resume_timer = evtimer_new(main_loop_base(), monitor_accept_resume_cb, NULL);
	evtimer_add(accept_resume_timer, &pause);
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

int monitor_listen_fd(int fd, struct error **errp)
{
	struct evconnlistener *listener;
	struct qmp_listener *ql;

	listener = evconnlistener_new(main_loop_base(), monitor_accept, NULL,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!listener) {
		error_setg(errp, "Failed to watch the inherited QMP socket (fd %d)", fd);
		return -1;
	}
	evconnlistener_set_error_cb(listener, monitor_accept_error);
	ql = xcalloc(1, sizeof(*ql));
	ql->listener = listener;
	TAILQ_INSERT_TAIL(&listeners, ql, next);
	log_info("listening on the QMP socket passed as fd %d", fd);
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

	if (accept_resume_timer) {
		event_free(accept_resume_timer);
		accept_resume_timer = NULL;
	}
	while ((ql = TAILQ_FIRST(&listeners))) {
		TAILQ_REMOVE(&listeners, ql, next);
		evconnlistener_free(ql->listener);
		/* An inherited socket's file belongs to whoever bound it (systemd). */
		if (ql->path)
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
