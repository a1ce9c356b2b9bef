/*
 * block/nbd.c: QEMU's `nbd` protocol driver: a node whose bytes live on an
 * NBD server (qemu-nbd, nbdkit, another qemu-storage-daemon), reached with
 * libnbd over a UNIX socket or TCP.
 *
 * Why it is built this way:
 * - The block layer calls drivers synchronously from many request threads
 *   at once, but libnbd's synchronous calls hold the handle's lock for the
 *   whole round trip, so they would serialise every request on one
 *   connection.  Each connection therefore has one poller thread that
 *   drives libnbd's state machine (poll on the socket, aio_notify_*), and
 *   request threads issue libnbd's aio commands and sleep on a semaphore
 *   until the command's free callback runs: many requests are in flight on
 *   one socket.
 * - Where the server says several connections see the same data
 *   (NBD_FLAG_CAN_MULTI_CONN), the node opens NBD_MAX_CONNS of them and
 *   spreads requests over them; otherwise one, as QEMU.
 * - Block status comes from the server's base:allocation extents, mapped
 *   as QEMU's nbd client maps them, so SEEK_DATA/SEEK_HOLE on an export
 *   of the node, and the allocation of a qcow2 image stored on it, are the
 *   server's.
 * - A lost connection (server killed, socket closed) fails the requests in
 *   flight with EIO; the node stays.  As in QEMU, later requests try to
 *   connect again; with `reconnect-delay` N they wait up to N seconds from
 *   the loss for the server to return before failing, and a request that
 *   failed because the link went down is sent again on the new link.
 *   Attempts are at most one per NBD_RETRY_INTERVAL_MS per connection, so
 *   a dead server costs one refused connect, not one per request.
 * - tls-creds needs the object registry, which this tree does not have
 *   yet: it is refused with a clear error rather than ignored.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "log.h"
#include "util.h"

#if HAVE_LIBNBD

#include <libnbd.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* At most this many connections to a multi-conn server. */
#define NBD_MAX_CONNS		4
/* The largest request we send when the server does not say (NBD spec). */
#define NBD_DEFAULT_MAX_REQUEST	(32u << 20)
/* Between two connection attempts after a loss, per connection. */
#define NBD_RETRY_INTERVAL_MS	100

/* One connected libnbd handle and the thread that drives it. */
struct nbd_link {
	struct nbd_handle *h;
	pthread_t poller;
	int wake_fd;			/* eventfd: new work, or stop */
	atomic_bool stop;
	atomic_bool dead;		/* the connection is gone */
	atomic_int refcnt;		/* the connection's + one per request */
};

/* A slot that holds a link and replaces it when it dies. */
struct nbd_conn {
	pthread_mutex_t lock;
	struct nbd_link *link;		/* NULL while disconnected */
	uint64_t lost_ms;		/* when the link was found dead */
	uint64_t last_try_ms;		/* last connection attempt */
};

struct nbd_state {
	char *export_name;
	char *unix_path;		/* server.type=unix */
	char *host, *port;		/* server.type=inet */
	uint32_t reconnect_delay;	/* seconds */
	int64_t size;
	uint32_t max_request;
	bool can_flush, can_trim, can_zero, has_base_allocation;
	int nconns;
	atomic_uint next_conn;
	struct nbd_conn conns[NBD_MAX_CONNS];
};

static struct nbd_state *nbd_state(struct block_node *bs)
{
	return bs->opaque;
}

static uint64_t nbd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nbd_link_wake(struct nbd_link *l)
{
	uint64_t one = 1;

	if (write(l->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("nbd: cannot wake the poller");
}

/* The poller: runs libnbd's state machine until the link dies or stops. */
static void *nbd_link_poll(void *opaque)
{
	struct nbd_link *l = opaque;

	while (!atomic_load(&l->stop)) {
		unsigned dir = nbd_aio_get_direction(l->h);
		struct pollfd fds[2] = {
			{ .fd = nbd_aio_get_fd(l->h), .events = 0 },
			{ .fd = l->wake_fd, .events = POLLIN },
		};
		uint64_t v;

		if (fds[0].fd < 0 || nbd_aio_is_dead(l->h) || nbd_aio_is_closed(l->h))
			break;
		if (dir & LIBNBD_AIO_DIRECTION_READ)
			fds[0].events |= POLLIN;
		if (dir & LIBNBD_AIO_DIRECTION_WRITE)
			fds[0].events |= POLLOUT;
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents & POLLIN) {
			if (read(l->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    nbd_aio_notify_read(l->h) < 0 && nbd_aio_is_dead(l->h))
			break;
		if ((fds[0].revents & POLLOUT) && nbd_aio_notify_write(l->h) < 0 &&
		    nbd_aio_is_dead(l->h))
			break;
	}
	atomic_store(&l->dead, true);
	return NULL;
}

static void nbd_link_unref(struct nbd_link *l)
{
	if (!l || atomic_fetch_sub(&l->refcnt, 1) != 1)
		return;
	atomic_store(&l->stop, true);
	nbd_link_wake(l);
	pthread_join(l->poller, NULL);
	/* Fails whatever is still in flight (there is nothing: no refs). */
	nbd_close(l->h);
	close(l->wake_fd);
	free(l);
}

static char *nbd_describe_server(struct nbd_state *s)
{
	if (s->unix_path)
		return xasprintf("%s", s->unix_path);
	return xasprintf("%s:%s", s->host, s->port);
}

/* Connect one handle.  On failure, *msg gets libnbd's reason (caller frees). */
static struct nbd_handle *nbd_connect_handle(struct nbd_state *s, char **msg)
{
	struct nbd_handle *h = nbd_create();
	int ret;

	if (!h) {
		*msg = xstrdup(nbd_get_error());
		return NULL;
	}
	if (nbd_set_export_name(h, s->export_name) < 0 ||
	    nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0)
		goto fail;
	if (s->unix_path)
		ret = nbd_connect_unix(h, s->unix_path);
	else
		ret = nbd_connect_tcp(h, s->host, s->port);
	if (ret < 0)
		goto fail;
	return h;
fail:
	*msg = xstrdup(nbd_get_error());
	nbd_close(h);
	return NULL;
}

static struct nbd_link *nbd_link_start(struct nbd_handle *h)
{
	struct nbd_link *l = xcalloc(1, sizeof(*l));

	l->h = h;
	atomic_init(&l->refcnt, 1);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0) {
		free(l);
		return NULL;
	}
	if (pthread_create(&l->poller, NULL, nbd_link_poll, l) != 0) {
		close(l->wake_fd);
		free(l);
		return NULL;
	}
	return l;
}

/*
 * A reference to a live link of connection c, reconnecting if it died and
 * an attempt is due; NULL if none (the server is still away).
 */
static struct nbd_link *nbd_conn_get(struct block_node *bs, struct nbd_conn *c)
{
	struct nbd_state *s = nbd_state(bs);
	struct nbd_link *l, *dead = NULL;
	struct nbd_handle *h;
	uint64_t now;
	char *msg = NULL;

	pthread_mutex_lock(&c->lock);
	l = c->link;
	if (l && atomic_load(&l->dead)) {
		dead = l;
		c->link = l = NULL;
		c->lost_ms = nbd_now_ms();
		log_warnx("node '%s': lost the connection to the NBD server; requests fail "
			  "with EIO until it is back", bs->node_name);
	}
	now = nbd_now_ms();
	if (!l && now - c->last_try_ms >= NBD_RETRY_INTERVAL_MS) {
		c->last_try_ms = now;
		h = nbd_connect_handle(s, &msg);
		if (h && nbd_get_size(h) != s->size) {
			/* Another image behind the same address: not ours. */
			log_warnx("node '%s': NBD export changed size on reconnect",
				  bs->node_name);
			nbd_close(h);
			h = NULL;
		}
		if (h && !(l = nbd_link_start(h)))
			nbd_close(h);
		if (l) {
			c->link = l;
			log_info("node '%s': reconnected to NBD server", bs->node_name);
		} else if (msg) {
			log_debug("node '%s': reconnecting failed: %s", bs->node_name, msg);
		}
		free(msg);
	}
	if (l)
		atomic_fetch_add(&l->refcnt, 1);
	pthread_mutex_unlock(&c->lock);
	nbd_link_unref(dead);
	return l;
}

/* Drop a link that a request found dead, so the next get reconnects. */
static void nbd_conn_forget(struct block_node *bs, struct nbd_conn *c,
			    struct nbd_link *l)
{
	bool drop = false;

	pthread_mutex_lock(&c->lock);
	if (c->link == l) {
		c->link = NULL;
		c->lost_ms = nbd_now_ms();
		drop = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (drop) {
		log_warnx("node '%s': lost the connection to the NBD server; requests fail "
			  "with EIO until it is back", bs->node_name);
		nbd_link_unref(l);
	}
}

/* One command in flight: the request thread sleeps on `done`. */
struct nbd_wait {
	sem_t done;
	int err;
	/* block status: the run at the start of the range */
	uint64_t offset, len, pnum;
	int flags;
	bool have_status;
};

static int nbd_on_complete(void *opaque, int *error)
{
	struct nbd_wait *w = opaque;

	if (*error)
		w->err = *error;
	return 1;
}

static void nbd_on_free(void *opaque)
{
	struct nbd_wait *w = opaque;

	sem_post(&w->done);
}

/* As QEMU's nbd client: holes are not data, NBD_STATE_ZERO reads zeroes. */
static int nbd_extent_flags(uint32_t nbd_flags)
{
	int ret = BLOCK_STATUS_ALLOCATED;

	if (!(nbd_flags & LIBNBD_STATE_HOLE))
		ret |= BLOCK_STATUS_DATA;
	if (nbd_flags & LIBNBD_STATE_ZERO)
		ret |= BLOCK_STATUS_ZERO;
	return ret;
}

static int nbd_on_extent(void *opaque, const char *context, uint64_t offset,
			 uint32_t *entries, size_t nr, int *error)
{
	struct nbd_wait *w = opaque;

	(void)error;
	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) || w->have_status ||
	    offset != w->offset)
		return 0;
	for (size_t i = 0; i + 1 < nr; i += 2) {
		int flags = nbd_extent_flags(entries[i + 1]);

		if (!entries[i])
			break;
		if (w->have_status && flags != w->flags)
			break;
		w->flags = flags;
		w->pnum += entries[i];
		w->have_status = true;
	}
	return 0;
}

enum nbd_cmd { NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM,
	       NBD_CMD_ZERO, NBD_CMD_STATUS };

/* Issue one command on link l and wait for it.  0 or -errno. */
static int nbd_issue(struct nbd_link *l, enum nbd_cmd cmd, void *buf, uint64_t len,
		     uint64_t offset, uint32_t flags, struct nbd_wait *w)
{
	nbd_completion_callback done = { .callback = nbd_on_complete,
					 .user_data = w, .free = nbd_on_free };
	int64_t cookie = -1;

	sem_init(&w->done, 0, 0);
	w->err = 0;
	switch (cmd) {
	case NBD_CMD_READ:
		cookie = nbd_aio_pread(l->h, buf, len, offset, done, 0);
		break;
	case NBD_CMD_WRITE:
		cookie = nbd_aio_pwrite(l->h, buf, len, offset, done, 0);
		break;
	case NBD_CMD_FLUSH:
		cookie = nbd_aio_flush(l->h, done, 0);
		break;
	case NBD_CMD_TRIM:
		cookie = nbd_aio_trim(l->h, len, offset, done, 0);
		break;
	case NBD_CMD_ZERO:
		cookie = nbd_aio_zero(l->h, len, offset, done, flags);
		break;
	case NBD_CMD_STATUS: {
		nbd_extent_callback ext = { .callback = nbd_on_extent, .user_data = w };

		cookie = nbd_aio_block_status(l->h, len, offset, ext, done, 0);
		break;
	}
	}
	if (cookie < 0) {
		/* libnbd calls the free callback even when it refuses a command. */
		int err = nbd_get_errno();

		sem_wait(&w->done);
		sem_destroy(&w->done);
		return -(err ? err : EIO);
	}
	/*
	 * libnbd sent the command from this thread if it could; the poller
	 * already waits for the reply.  Only a send that would block (or a
	 * command queued behind a reply being read) needs it to watch for
	 * POLLOUT, which it learns on a wake-up: skipping the others saves
	 * a thread switch per request.
	 */
	if (nbd_aio_get_direction(l->h) & LIBNBD_AIO_DIRECTION_WRITE)
		nbd_link_wake(l);
	while (sem_wait(&w->done) < 0 && errno == EINTR)
		;
	sem_destroy(&w->done);
	return w->err ? -w->err : 0;
}

/* A command failed with err on l: was it because the link went down? */
static bool nbd_link_lost(struct nbd_link *l, int err)
{
	return err == -ENOTCONN || err == -ESHUTDOWN || err == -ECONNRESET ||
	       err == -EPIPE || atomic_load(&l->dead) || nbd_aio_is_dead(l->h) ||
	       nbd_aio_is_closed(l->h);
}

/* Wait a little for a server that may come back within reconnect-delay. */
static bool nbd_may_wait(struct nbd_state *s, struct nbd_conn *c)
{
	uint64_t lost;

	if (!s->reconnect_delay)
		return false;
	pthread_mutex_lock(&c->lock);
	lost = c->lost_ms;
	pthread_mutex_unlock(&c->lock);
	if (nbd_now_ms() - lost >= (uint64_t)s->reconnect_delay * 1000u)
		return false;
	usleep(NBD_RETRY_INTERVAL_MS * 1000);
	return true;
}

/*
 * Run one command (len <= max_request) on some connection, reconnecting
 * as described at the top.  A link that is down gives EIO, as QEMU.
 */
static int nbd_run(struct block_node *bs, enum nbd_cmd cmd, void *buf, uint64_t len,
		   uint64_t offset, uint32_t flags, struct nbd_wait *w)
{
	struct nbd_state *s = nbd_state(bs);
	struct nbd_conn *c = &s->conns[atomic_fetch_add(&s->next_conn, 1) % (unsigned)s->nconns];
	struct nbd_link *l;
	int ret;

	for (;;) {
		l = nbd_conn_get(bs, c);
		if (!l) {
			if (nbd_may_wait(s, c))
				continue;
			log_debug("node '%s': no NBD connection, failing a request",
				  bs->node_name);
			return -EIO;
		}
		ret = nbd_issue(l, cmd, buf, len, offset, flags, w);
		if (ret < 0 && nbd_link_lost(l, ret)) {
			nbd_conn_forget(bs, c, l);
			nbd_link_unref(l);
			if (nbd_may_wait(s, c))
				continue;
			return -EIO;
		}
		if (ret < 0)
			log_debug("node '%s': NBD command %d at %" PRIu64 " failed: %s",
				  bs->node_name, (int)cmd, offset, strerror(-ret));
		nbd_link_unref(l);
		return ret;
	}
}

/* Split [offset, offset+len) into requests the server accepts. */
static int nbd_run_split(struct block_node *bs, enum nbd_cmd cmd, void *buf,
			 uint64_t len, uint64_t offset, uint32_t flags)
{
	struct nbd_state *s = nbd_state(bs);
	struct nbd_wait w;

	while (len) {
		uint64_t n = MIN(len, (uint64_t)s->max_request);
		int ret;

		memset(&w, 0, sizeof(w));
		ret = nbd_run(bs, cmd, buf, n, offset, flags, &w);
		if (ret < 0)
			return ret;
		if (buf)
			buf = (char *)buf + n;
		offset += n;
		len -= n;
	}
	return 0;
}

static int nbd_parse_server(struct nbd_state *s, json_t *server, struct error **errp)
{
	const char *type = json_string_value(json_object_get(server, "type"));

	if (type && !strcmp(type, "unix")) {
		if (json_is_true(json_object_get(server, "abstract"))) {
			error_setg(errp, "NBD server: abstract UNIX sockets are not supported");
			return -1;
		}
		s->unix_path = xstrdup(json_string_value(json_object_get(server, "path")));
		return 0;
	}
	if (type && !strcmp(type, "inet")) {
		s->host = xstrdup(json_string_value(json_object_get(server, "host")));
		s->port = xstrdup(json_string_value(json_object_get(server, "port")));
		return 0;
	}
	error_setg(errp, "NBD server address type '%s' is not supported (use 'unix' or 'inet')",
		   type ? type : "");
	return -1;
}

static void nbd_free_state(struct nbd_state *s)
{
	for (int i = 0; i < s->nconns; i++) {
		nbd_link_unref(s->conns[i].link);
		s->conns[i].link = NULL;
		pthread_mutex_destroy(&s->conns[i].lock);
	}
	s->nconns = 0;
	free(s->export_name);
	free(s->unix_path);
	free(s->host);
	free(s->port);
}

static int nbd_node_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct nbd_state *s = nbd_state(bs);
	const char *export = json_string_value(json_object_get(options, "export"));
	json_t *delay = json_object_get(options, "reconnect-delay");
	json_t *timeout;
	uint64_t deadline;
	struct nbd_handle *h;
	char *msg = NULL, *where;
	int64_t maxreq;
	int want;

	if (json_object_get(options, "tls-creds")) {
		error_setg(errp, "Node '%s': 'tls-creds' is not supported by exportd yet",
			   bs->node_name);
		return -1;
	}
	if (json_object_get(options, "x-dirty-bitmap")) {
		error_setg(errp, "Node '%s': 'x-dirty-bitmap' is not supported by exportd",
			   bs->node_name);
		return -1;
	}
	if (nbd_parse_server(s, json_object_get(options, "server"), errp) < 0)
		goto fail;
	s->export_name = xstrdup(export ? export : "");
	if (delay && (json_integer_value(delay) < 0 ||
		      json_integer_value(delay) > UINT32_MAX)) {
		error_setg(errp, "Parameter 'reconnect-delay' expects uint32_t");
		goto fail;
	}
	s->reconnect_delay = delay ? (uint32_t)json_integer_value(delay) : 0;

	timeout = json_object_get(options, "open-timeout");
	if (timeout && (json_integer_value(timeout) < 0 ||
			json_integer_value(timeout) > UINT32_MAX)) {
		error_setg(errp, "Parameter 'open-timeout' expects uint32_t");
		goto fail;
	}
	deadline = nbd_now_ms() + (timeout ? (uint64_t)json_integer_value(timeout) * 1000u : 0);

	where = nbd_describe_server(s);
	/* open-timeout: the server may still be starting; retry until then. */
	while (!(h = nbd_connect_handle(s, &msg)) && nbd_now_ms() < deadline) {
		free(msg);
		msg = NULL;
		usleep(NBD_RETRY_INTERVAL_MS * 1000);
	}
	if (!h) {
		error_setg(errp, "Failed to connect to '%s': %s", where, msg);
		free(where);
		free(msg);
		goto fail;
	}
	free(where);
	s->size = nbd_get_size(h);
	if (s->size < 0) {
		error_setg(errp, "NBD server did not report the export's size");
		nbd_close(h);
		goto fail;
	}
	if (nbd_is_read_only(h) == 1 && !bs->read_only) {
		if (!json_is_true(json_object_get(options, "auto-read-only"))) {
			error_setg(errp, "NBD export is read-only");
			nbd_close(h);
			goto fail;
		}
		bs->read_only = true;
	}
	s->can_flush = nbd_can_flush(h) == 1;
	s->can_trim = nbd_can_trim(h) == 1;
	s->can_zero = nbd_can_zero(h) == 1;
	s->has_base_allocation =
		nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	maxreq = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	s->max_request = maxreq > 0 && maxreq < NBD_DEFAULT_MAX_REQUEST ?
			 (uint32_t)maxreq : NBD_DEFAULT_MAX_REQUEST;
	want = nbd_can_multi_conn(h) == 1 ? NBD_MAX_CONNS : 1;

	for (int i = 0; i < want; i++) {
		struct nbd_conn *c = &s->conns[i];

		pthread_mutex_init(&c->lock, NULL);
		s->nconns++;
		if (i > 0 && !(h = nbd_connect_handle(s, &msg))) {
			error_setg(errp, "Failed to open connection %d to the NBD server: %s",
				   i + 1, msg);
			free(msg);
			goto fail;
		}
		c->link = nbd_link_start(h);
		if (!c->link) {
			nbd_close(h);
			error_setg(errp, "Cannot start the NBD connection thread");
			goto fail;
		}
	}
	if (s->unix_path)
		bs->filename = xasprintf("nbd+unix:///%s?socket=%s", s->export_name,
					 s->unix_path);
	else
		bs->filename = xasprintf("nbd://%s:%s/%s", s->host, s->port,
					 s->export_name);
	log_debug("node '%s': %d NBD connection(s), %" PRId64 " bytes", bs->node_name,
		  s->nconns, s->size);
	return 0;
fail:
	nbd_free_state(s);
	return -1;
}

static void nbd_node_close(struct block_node *bs)
{
	nbd_free_state(nbd_state(bs));
}

static void nbd_node_query(struct block_node *bs, json_t *info)
{
	json_object_set_new(info, "x-connections", json_integer(nbd_state(bs)->nconns));
}

static int64_t nbd_node_get_length(struct block_node *bs)
{
	return nbd_state(bs)->size;
}

static int nbd_node_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	return nbd_run_split(bs, NBD_CMD_READ, buf, len, offset, 0);
}

static int nbd_node_pwrite(struct block_node *bs, const void *buf, size_t len, uint64_t offset)
{
	return nbd_run_split(bs, NBD_CMD_WRITE, (void *)buf, len, offset, 0);
}

static int nbd_node_flush(struct block_node *bs)
{
	struct nbd_wait w;

	if (!nbd_state(bs)->can_flush)
		return 0;
	memset(&w, 0, sizeof(w));
	return nbd_run(bs, NBD_CMD_FLUSH, NULL, 0, 0, 0, &w);
}

/* A discard is advice: a server that cannot trim loses nothing. */
static int nbd_node_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	if (!nbd_state(bs)->can_trim)
		return 0;
	return nbd_run_split(bs, NBD_CMD_TRIM, NULL, len, offset, 0);
}

static int nbd_node_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
			    int flags)
{
	if (!nbd_state(bs)->can_zero) {
		/* The server has no WRITE_ZEROES: send zeroes. */
		size_t piece = (size_t)MIN(len, (uint64_t)(1024 * 1024));
		void *zero = xcalloc(1, piece);
		int ret = 0;

		while (len > 0 && ret == 0) {
			size_t n = (size_t)MIN(len, (uint64_t)piece);

			ret = nbd_run_split(bs, NBD_CMD_WRITE, zero, n, offset, 0);
			offset += n;
			len -= n;
		}
		free(zero);
		return ret;
	}
	return nbd_run_split(bs, NBD_CMD_ZERO, NULL, len, offset,
			     flags & BLOCK_ZERO_MAY_UNMAP ? 0 : LIBNBD_CMD_FLAG_NO_HOLE);
}

/* QEMU 7.2 cannot resize NBD nodes either. */
static int nbd_node_truncate(struct block_node *bs, uint64_t length)
{
	return length == (uint64_t)nbd_state(bs)->size ? 0 : -ENOTSUP;
}

static int nbd_node_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
			    uint64_t *pnum)
{
	struct nbd_state *s = nbd_state(bs);
	struct nbd_wait w;
	int ret;

	if (!s->has_base_allocation) {
		*pnum = len;
		return BLOCK_STATUS_DATA | BLOCK_STATUS_ALLOCATED;
	}
	memset(&w, 0, sizeof(w));
	len = MIN(len, (uint64_t)s->max_request);
	w.offset = offset;
	w.len = len;
	ret = nbd_run(bs, NBD_CMD_STATUS, NULL, len, offset, 0, &w);
	if (ret < 0)
		return ret;
	if (!w.have_status)
		return -EIO;	/* the server answered nothing for offset */
	*pnum = MIN(w.pnum, len);
	return w.flags;
}

const struct block_driver block_driver_nbd = {
	.name = "nbd",
	.is_format = false,
	.state_size = sizeof(struct nbd_state),
	.open = nbd_node_open,
	.close = nbd_node_close,
	.query = nbd_node_query,
	.get_length = nbd_node_get_length,
	.pread = nbd_node_pread,
	.pwrite = nbd_node_pwrite,
	.flush = nbd_node_flush,
	.discard = nbd_node_discard,
	.write_zeroes = nbd_node_write_zeroes,
	.truncate = nbd_node_truncate,
	.block_status = nbd_node_block_status,
};

#endif /* HAVE_LIBNBD */
