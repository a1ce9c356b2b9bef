/*
 * block/rbd.h: private header of the rbd driver (Ceph RBD through librbd):
 * what rbd.c (the driver: image, I/O) needs from rbd-connect.c (the
 * cluster connection built from QEMU's BlockdevOptionsRbd).
 */
#ifndef EXPORTD_BLOCK_RBD_H
#define EXPORTD_BLOCK_RBD_H

#include "config.h"

#if HAVE_LIBRBD

#include <jansson.h>
#include <stdbool.h>
#include <rados/librados.h>

#include "rpc/error.h"

/*
 * Connect to the cluster that `options` (a validated BlockdevOptionsRbd
 * dict) names and open an I/O context on its pool and namespace, as QEMU's
 * qemu_rbd_connect does, with its error messages; `cache` turns librbd's
 * cache on.  On success the caller
 * owns *cluster and *ioctx (rados_ioctx_destroy, then rados_shutdown).
 */
int rbd_connect(json_t *options, bool cache, rados_t *cluster, rados_ioctx_t *ioctx,
		struct error **errp);

#endif
#endif
