/*
 * schema-introspect.c: describe the schema as QEMU's query-qmp-schema
 * does (SchemaInfo objects), for clients that probe what the daemon
 * supports before they use it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/schema.h"
#include "rpc/schema-internal.h"
#include "rpc/xalloc.h"

/* ---- introspection ----------------------------------------------------- */

/*
 * SchemaInfo as QEMU's query-qmp-schema returns it: every type a command
 * or event uses, once, with unmasked names (QEMU masks them to numbers;
 * real names are equally valid SchemaInfo and easier to read).
 */
struct introspect {
	const struct schema *s;
	json_t *list;		/* SchemaInfo array being built */
	json_t *seen;		/* names already emitted */
};

static json_t *introspect_type(struct introspect *in, json_t *ref);

static void introspect_members(struct introspect *in, json_t *members, json_t *out)
{
	const char *key;
	json_t *type;

	json_object_foreach(members, key, type) {
		bool optional = key[0] == '*';
		json_t *m = json_pack("{s:s,s:o}", "name", optional ? key + 1 : key,
				      "type", introspect_type(in, type));

		if (optional)
			json_object_set_new(m, "default", json_null());
		json_array_append_new(out, m);
	}
}

static void introspect_base(struct introspect *in, json_t *base, json_t *out)
{
	json_t *def;

	if (!base)
		return;
	if (!json_is_string(base)) {
		introspect_members(in, base, out);
		return;
	}
	def = json_object_get(in->s->types, json_string_value(base));
	introspect_base(in, json_object_get(def, "base"), out);
	introspect_members(in, json_object_get(def, "data"), out);
	/* The named base is listed too, as QEMU lists every type it uses. */
	json_decref(introspect_type(in, base));
}

/* Append an object SchemaInfo; its members are filled after it is marked seen. */
static json_t *introspect_new_object(struct introspect *in, const char *name)
{
	json_t *info = json_pack("{s:s,s:s,s:[]}", "name", name, "meta-type", "object",
				 "members");

	json_object_set_new(in->seen, name, json_true());
	json_array_append_new(in->list, info);
	return info;
}

static void introspect_def(struct introspect *in, const char *name, json_t *def)
{
	json_t *info, *type;
	const char *key;

	if (json_object_get(def, "enum")) {
		json_t *values = json_object_get(def, "data"), *members = json_array(), *v;
		size_t i;

		json_array_foreach(values, i, v)
			json_array_append_new(members, json_pack("{s:O}", "name", v));
		json_array_append_new(in->list,
				      json_pack("{s:s,s:s,s:O,s:o}", "name", name, "meta-type",
						"enum", "values", values, "members", members));
		return;
	}
	if (json_object_get(def, "alternate")) {
		json_t *members = json_array();

		info = json_pack("{s:s,s:s,s:o}", "name", name, "meta-type", "alternate",
				 "members", members);
		json_array_append_new(in->list, info);
		json_object_foreach(json_object_get(def, "data"), key, type)
			json_array_append_new(members,
					      json_pack("{s:o}", "type", introspect_type(in, type)));
		return;
	}
	info = introspect_new_object(in, name);
	introspect_base(in, json_object_get(def, "base"), json_object_get(info, "members"));
	if (json_object_get(def, "union")) {
		json_t *variants = json_array();

		json_object_set(info, "tag", json_object_get(def, "discriminator"));
		json_object_set_new(info, "variants", variants);
		json_object_foreach(json_object_get(def, "data"), key, type)
			json_array_append_new(variants,
					      json_pack("{s:s,s:o}", "case", key, "type",
							introspect_type(in, type)));
	} else {
		introspect_members(in, json_object_get(def, "data"),
				   json_object_get(info, "members"));
	}
}

/* Emit the SchemaInfo of a type (once); returns its name as a new string. */
static json_t *introspect_type(struct introspect *in, json_t *ref)
{
	const char *name;

	if (json_is_array(ref)) {
		json_t *elem = introspect_type(in, json_array_get(ref, 0));
		json_t *arr = json_sprintf("[%s]", json_string_value(elem));

		if (!json_object_get(in->seen, json_string_value(arr))) {
			json_object_set_new(in->seen, json_string_value(arr), json_true());
			json_array_append_new(in->list,
					      json_pack("{s:O,s:s,s:o}", "name", arr, "meta-type",
							"array", "element-type", elem));
		} else {
			json_decref(elem);
		}
		return arr;
	}
	name = json_string_value(ref);
	if (!json_object_get(in->seen, name)) {
		json_object_set_new(in->seen, name, json_true());
		if (schema_builtin_json_type(name))
			json_array_append_new(in->list,
					      json_pack("{s:s,s:s,s:s}", "name", name, "meta-type",
							"builtin", "json-type",
							schema_builtin_json_type(name)));
		else
			introspect_def(in, name, json_object_get(in->s->types, name));
	}
	return json_string(name);
}

/* arg-type/ret-type of a command or event: a named type or a q_obj_ one. */
static json_t *introspect_data(struct introspect *in, const char *owner, json_t *data,
			       const char *suffix)
{
	json_t *name;

	if (!data) {
		if (!json_object_get(in->seen, "q_empty"))
			introspect_new_object(in, "q_empty");
		return json_string("q_empty");
	}
	if (json_is_string(data) || json_is_array(data))
		return introspect_type(in, data);
	name = json_sprintf("q_obj_%s-%s", owner, suffix);
	introspect_members(in, data,
			   json_object_get(introspect_new_object(in, json_string_value(name)),
					   "members"));
	return name;
}

json_t *schema_introspect(const struct schema *s)
{
	struct introspect in = { .s = s, .list = json_array(), .seen = json_object() };
	const char *name;
	json_t *def;

	json_object_foreach(s->commands, name, def) {
		json_t *info = json_pack("{s:s,s:s}", "name", name, "meta-type", "command");

		json_array_append_new(in.list, info);
		json_object_set_new(info, "arg-type",
				    introspect_data(&in, name, json_object_get(def, "data"), "arg"));
		json_object_set_new(info, "ret-type",
				    introspect_data(&in, name, json_object_get(def, "returns"),
						    "ret"));
	}
	json_object_foreach(s->events, name, def) {
		json_t *info = json_pack("{s:s,s:s}", "name", name, "meta-type", "event");

		json_array_append_new(in.list, info);
		json_object_set_new(info, "arg-type",
				    introspect_data(&in, name, json_object_get(def, "data"), "arg"));
	}
	json_decref(in.seen);
	return in.list;
}
