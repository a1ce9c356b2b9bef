/*
 * object/object.c: the registry of user-creatable objects (see object.h).
 *
 * A short linked list: a daemon has a handful of objects (a secret per
 * encrypted image or remote store, an iothread per CPU at most), so a
 * lookup by id is a walk, and the order of creation is kept for listings.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "object/object.h"
#include "rpc/xalloc.h"

struct object {
	struct object *next;
	char *id;
	const struct object_type *type;
	void *state;
	unsigned users;
};

static const struct object_type *const object_types[] = {
	&object_type_iothread,
	&object_type_secret,
};

static struct object *objects;

static struct object **object_slot(const char *id)
{
	struct object **p;

	for (p = &objects; *p; p = &(*p)->next)
		if (!strcmp((*p)->id, id))
			return p;
	return p;
}

static const struct object_type *object_type_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(object_types) / sizeof(object_types[0]); i++)
		if (!strcmp(object_types[i]->name, name))
			return object_types[i];
	return NULL;
}

int object_add(json_t *options, struct error **errp)
{
	const char *qom_type = json_string_value(json_object_get(options, "qom-type"));
	const char *id = json_string_value(json_object_get(options, "id"));
	const struct object_type *type;
	struct object *obj;
	json_t *props;
	void *state;

	if (!qom_type || !id) {
		error_setg(errp, "Parameters 'qom-type' and 'id' are required");
		return -1;
	}
	type = object_type_by_name(qom_type);
	if (!type) {
		error_setg(errp, "Invalid parameter type for 'qom-type', value '%s' is not "
			   "a user-creatable object type", qom_type);
		return -1;
	}
	/* QOM's words: objects are children of the /objects container. */
	if (*object_slot(id)) {
		error_setg(errp, "attempt to add duplicate property '%s' to object "
			   "(type 'container')", id);
		return -1;
	}
	props = json_deep_copy(options);
	json_object_del(props, "qom-type");
	json_object_del(props, "id");
	state = type->create(id, props, errp);
	json_decref(props);
	if (!state)
		return -1;
	obj = xcalloc(1, sizeof(*obj));
	obj->id = xstrdup(id);
	obj->type = type;
	obj->state = state;
	*object_slot(id) = obj;
	return 0;
}

static void object_free(struct object *obj)
{
	obj->type->destroy(obj->state);
	free(obj->id);
	free(obj);
}

int object_del(const char *id, struct error **errp)
{
	struct object **p = object_slot(id), *obj = *p;

	if (!obj) {
		error_setg(errp, "object '%s' not found", id);
		return -1;
	}
	if (obj->users) {
		error_setg(errp, "object '%s' is in use, can not be deleted", id);
		return -1;
	}
	*p = obj->next;
	object_free(obj);
	return 0;
}

void object_del_all(void)
{
	while (objects) {
		struct object *obj = objects;

		objects = obj->next;
		object_free(obj);
	}
}

void *object_find(const char *id, const struct object_type *type, struct error **errp)
{
	struct object *obj = *object_slot(id);

	if (!obj) {
		error_setg(errp, "No %s with id '%s'", type->name, id);
		return NULL;
	}
	if (obj->type != type) {
		error_setg(errp, "Object with id '%s' is not a%s %s", id,
			   strchr("aeiou", type->name[0]) ? "n" : "", type->name);
		return NULL;
	}
	return obj->state;
}

void object_use(const char *id)
{
	struct object *obj = *object_slot(id);

	if (obj)
		obj->users++;
}

void object_unuse(const char *id)
{
	struct object *obj = *object_slot(id);

	if (obj && obj->users)
		obj->users--;
}

json_t *object_list(void)
{
	json_t *list = json_array();

	for (struct object *obj = objects; obj; obj = obj->next)
		json_array_append_new(list, json_pack("{s:s, s:s}", "id", obj->id,
						      "qom-type", obj->type->name));
	return list;
}
