/*
 * object/iothread.c: the `iothread` object type, so that qemu-storage-
 * daemon command lines and QMP (`--object iothread,id=io0`, object-add)
 * work unchanged and an export's `iothread` can name one.
 *
 * The object is an I/O loop (iothread/): a thread running its own event
 * base, which exports that name it put their /dev/fuse fds on.  Exports
 * mark it in use (object_use), so the registry refuses to delete a loop
 * that still carries them, as QEMU does.
 */
#include "config.h"

#include "iothread/iothread.h"
#include "object/object.h"

static void *object_iothread_create(const char *id, json_t *props, struct error **errp)
{
	(void)props;	/* poll-max-ns and the like: libevent has no such knobs */
	return iothread_new(id, errp);
}

static void object_iothread_destroy(void *state)
{
	iothread_free(state);
}

const struct object_type object_type_iothread = {
	.name = "iothread",
	.create = object_iothread_create,
	.destroy = object_iothread_destroy,
};
