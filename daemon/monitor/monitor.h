/*
 * monitor/monitor.h: the QMP server: a UNIX socket listener and one QMP session per
 * connection, all on the main loop.
 */
#ifndef EXPORTD_MONITOR_H
#define EXPORTD_MONITOR_H

#include <jansson.h>
#include <stddef.h>

#include "rpc/error.h"

/* Bind and listen on path (mode 0600); refuses if a daemon answers there.
 * May be called several times for several sockets. */
int monitor_listen(const char *path, struct error **errp);
/*
 * Serve QMP on a socket that already listens (socket activation); its
 * file, if any, is left alone when the monitor closes.
 */
int monitor_listen_fd(int fd, struct error **errp);
/*
 * Close the listeners (removing the socket files), then every connection
 * once its pending output is flushed (at most a second); done(opaque)
 * runs when all are gone.
 */
void monitor_close(void (*done)(void *opaque), void *opaque);
/*
 * Largest accepted message, in bytes.  QEMU takes up to 64 MiB; a
 * connection holds at most this much of an incoming message.
 */
#define MONITOR_DEFAULT_MAX_MESSAGE (16u << 20)
void monitor_set_max_message_size(size_t bytes);
/* Most QMP connections served at once; more are told so and closed. */
#define MONITOR_DEFAULT_MAX_CONNECTIONS 64u
void monitor_set_max_connections(unsigned int n);
/*
 * Send an event to every negotiated session.  Main thread only; data is
 * stolen (may be NULL).
 */
void qmp_send_event(const char *event, json_t *data);
/*
 * What `quit` does: hook(reason) runs on the main loop after the reply
 * has been queued (exportd.c starts the daemon's shutdown).
 */
void monitor_set_quit_hook(void (*hook)(const char *reason));
/*
 * From now on, refuse every command that could start something (all but
 * query-* and quit): the daemon is tearing its exports down for good.
 */
void monitor_refuse_changes(void);

#endif
