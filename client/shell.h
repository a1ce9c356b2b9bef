/*
 * shell.h: `exportctl shell`, an interactive QMP shell in the manner of
 * QEMU's scripts/qmp/qmp-shell: `command key=value ...` or a raw JSON
 * request per line, replies and events printed as JSON.  On a terminal it
 * edits lines (line-edit.c) with history in ~/.exportctl_history and
 * completes command names; otherwise it reads lines from stdin.
 */
#ifndef EXPORTCTL_SHELL_H
#define EXPORTCTL_SHELL_H

#include <stdbool.h>

#include "rpc/qmp-client.h"

/* Run until end of input; the exit status (0, or 1 if the session broke). */
int shell_run(struct qmp_client *c, bool json, bool quiet);

#endif
