/*
 * monitor/cmd-object.c: object-add and object-del, QEMU's QMP commands for
 * user-creatable objects (secrets, iothreads).  Arguments arrive validated
 * against the schema; the object types check their own properties.
 */
#include "config.h"

#include "monitor/commands.h"
#include "object/object.h"

int qmp_object_add(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp)
{
	(void)s, (void)ret;
	return object_add(args, errp);
}

int qmp_object_del(struct qmp_session *s, json_t *args, json_t **ret, struct error **errp)
{
	(void)s, (void)ret;
	return object_del(json_string_value(json_object_get(args, "id")), errp);
}
