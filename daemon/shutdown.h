/*
 * shutdown.h: graceful shutdown of the whole daemon (SIGTERM, SIGINT,
 * `quit`): tear down every export, close the monitor, leave the loop.
 */
#ifndef EXPORTD_SHUTDOWN_H
#define EXPORTD_SHUTDOWN_H

#include <stdbool.h>

/* Start a graceful shutdown (idempotent).  Main thread. */
void shutdown_request(const char *reason);
/* Whether a shutdown has been requested already. */
bool shutdown_requested(void);

#endif
