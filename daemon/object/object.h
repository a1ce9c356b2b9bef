/*
 * object/object.h: user-creatable objects (QEMU's QOM objects made with
 * --object and object-add): a registry of id -> object, each object of a
 * type that is a static const table of callbacks.
 *
 * Objects are things other parts of the daemon refer to by id: a secret a
 * block driver reads its key from, an iothread an export runs on.  Their
 * lifetime is the user's (object-add, object-del), except that an object
 * that is in use (object_use) cannot be deleted, with QEMU's message.
 *
 * The registry lives on the main thread: QMP commands and start-up.
 */
#ifndef EXPORTD_OBJECT_H
#define EXPORTD_OBJECT_H

#include <stdbool.h>

#include <jansson.h>

#include "rpc/error.h"

struct object;

struct object_type {
	const char *name;	/* the qom-type */
	/*
	 * Make the object's state from its validated properties (the
	 * members of ObjectOptions beside qom-type and id).  Returns the
	 * state (never NULL on success) or NULL with *errp set.
	 */
	void *(*create)(const char *id, json_t *props, struct error **errp);
	void (*destroy)(void *state);
};

/* Create an object from validated ObjectOptions (qom-type, id, props). */
int object_add(json_t *options, struct error **errp);
/* Delete it: refused while in use. */
int object_del(const char *id, struct error **errp);
/* Delete every object, at shutdown, whatever their users say. */
void object_del_all(void);

/*
 * The state of the object with this id if it is of this type; NULL and
 * *errp otherwise ("No %s with id '%s'" / "Object with id '%s' is not a
 * %s", QEMU's words for secrets).
 */
void *object_find(const char *id, const struct object_type *type, struct error **errp);

/* Mark the object in use (object-del refused) / no longer used by one user. */
void object_use(const char *id);
void object_unuse(const char *id);

/* [{"id": ..., "qom-type": ...}] for qom-list-like listings. */
json_t *object_list(void);

extern const struct object_type object_type_iothread;
extern const struct object_type object_type_secret;

#endif
