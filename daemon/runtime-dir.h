/*
 * runtime-dir.h: creating, or checking, the directory of root's default
 * QMP socket.
 */
#ifndef EXPORTD_RUNTIME_DIR_H
#define EXPORTD_RUNTIME_DIR_H

#include "rpc/error.h"

/*
 * Create path mode 0700, or check that the existing one is a directory
 * (not a symbolic link) owned by us that no other user can write.
 * 0, or -1 with the reason in errp.
 */
int runtime_dir_ensure(const char *path, struct error **errp);

#endif
