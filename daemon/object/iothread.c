/*
 * object/iothread.c: the `iothread` object type, so that qemu-storage-
 * daemon command lines and QMP (`--object iothread,id=io0`, object-add)
 * work unchanged and an export's `iothread` can name one.
 *
 * The object records its properties; the FUSE sessions' event loops are
 * the export driver's (daemon/fuse/), which looks the object up by id.
 */
#include "config.h"

#include <stdlib.h>

#include "object/object.h"
#include "rpc/xalloc.h"

struct iothread {
	json_t *props;
};

static void *iothread_create(const char *id, json_t *props, struct error **errp)
{
	struct iothread *t;

	(void)id, (void)errp;
	t = xmalloc(sizeof(*t));
	t->props = json_incref(props);
	return t;
}

static void iothread_destroy(void *state)
{
	struct iothread *t = state;

	json_decref(t->props);
	free(t);
}

const struct object_type object_type_iothread = {
	.name = "iothread",
	.create = iothread_create,
	.destroy = iothread_destroy,
};
