/*
 * iothread/iothread.h: I/O loops.  An iothread is a thread that runs its
 * own libevent event_base, as a QEMU iothread runs its own AioContext:
 * the data plane (every /dev/fuse fd of every export, io_uring
 * completions) is events on such loops, so the number of threads does
 * not grow with the number of exports.  exportd starts a default pool of
 * one loop per CPU; named loops are the `iothread` objects of the command
 * line and of QMP (object/iothread.c, whose registry knows them by id and
 * refuses to delete one in use).  Everything here is called on the main
 * thread except iothread_base(), iothread_name() and iothread_scratch(),
 * which the loop's own thread may call too.
 */
#ifndef EXPORTD_IOTHREAD_H
#define EXPORTD_IOTHREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/error.h"

struct event_base;
struct iothread;

/* Start the default pool: n loops (n <= 0: one per online CPU). */
int iothread_pool_init(int n, struct error **errp);
/* Stop and free every loop, pool and named (exit; nothing may use them). */
void iothread_stop_all(void);
int iothread_pool_size(void);
/* The i-th loop of the default pool, i modulo the pool size. */
struct iothread *iothread_pool_get(int i);

/* Start a named loop (object-add / --object iothread,id=ID). */
struct iothread *iothread_new(const char *id, struct error **errp);
/* Stop and free a named loop; nothing may use it any more. */
void iothread_free(struct iothread *it);
/* The id of a named loop, "pool-N" for the default pool's. */
const char *iothread_name(const struct iothread *it);
struct event_base *iothread_base(struct iothread *it);

/*
 * A buffer of `size` bytes aligned to `align`, owned by the loop and only
 * ever used by the loop's own thread (which serves one callback at a
 * time): request buffers cost one per loop, not one per export.  Every
 * caller of a given loop must ask for the same size.  NULL if out of
 * memory.
 */
void *iothread_scratch(struct iothread *it, size_t size, size_t align);

#endif
