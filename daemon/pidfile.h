/*
 * pidfile.h: the daemon's --pidfile, created safely and locked for its life.
 */
#ifndef EXPORTD_PIDFILE_H
#define EXPORTD_PIDFILE_H

#include "rpc/error.h"

struct pidfile;

/*
 * Open path (never through a symbolic link), lock it and write our pid in
 * it, mode 0644.  NULL with the reason in errp, naming the running daemon
 * when another one holds the lock.
 */
struct pidfile *pidfile_create(const char *path, struct error **errp);

/* Remove the file if its name still leads to ours, unlock, free; NULL is a no-op. */
void pidfile_remove(struct pidfile *pf);

#endif
