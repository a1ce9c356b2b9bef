/*
 * sd-notify.h: systemd's readiness protocol (sd_notify(3)) and socket
 * activation (sd_listen_fds(3)), written out rather than linking
 * libsystemd: each is a few lines of a documented protocol.
 */
#ifndef EXPORTD_SD_NOTIFY_H
#define EXPORTD_SD_NOTIFY_H

#include "rpc/error.h"

/*
 * Take NOTIFY_SOCKET from the environment (and remove it, so that the
 * programs we run, such as fusermount3, do not talk to systemd for us).
 * Call once, early.
 */
void sd_notify_init(void);
/* Send "READY=1", "STOPPING=1", "STATUS=..." lines; a no-op without NOTIFY_SOCKET. */
void sd_notify_send(const char *state);
void sd_notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The listening sockets systemd passed (LISTEN_PID = our pid,
 * LISTEN_FDS = n, fds 3..3+n-1), made close-on-exec, the variables
 * removed.  Returns n (0 when none were passed), -1 with errp set when
 * the variables are malformed or an fd is not a listening stream socket.
 */
int sd_listen_fds_take(struct error **errp);
#define SD_LISTEN_FDS_START 3

#endif
