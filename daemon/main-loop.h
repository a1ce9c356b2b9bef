/*
 * main-loop.h: the daemon's single libevent event_base, owned by the main
 * thread.  It runs the control plane: the QMP socket and its connections,
 * signals, export set-up and teardown.  Worker threads never touch it
 * directly; they hand work back with main_loop_defer().
 */
#ifndef EXPORTD_MAIN_LOOP_H
#define EXPORTD_MAIN_LOOP_H

#include <stdbool.h>

struct event_base;

/* Create the event base (with pthread support enabled). */
int main_loop_init(void);
struct event_base *main_loop_base(void);
/* Run until main_loop_exit() has been called and the loop drained. */
void main_loop_run(void);
void main_loop_exit(void);
/* Free the event base after main_loop_run() returned. */
void main_loop_cleanup(void);
/* True on the main thread. */
bool main_loop_is_main_thread(void);
/*
 * Run fn(opaque) on the main thread as soon as the loop gets to it.
 * Callable from any thread; callbacks run in the order they were deferred.
 */
void main_loop_defer(void (*fn)(void *opaque), void *opaque);

#endif
