/*
 * schema-load.c: read the schema text (schema/exportd-schema.json, embedded
 * in both programs at build time) and check that it is whole: every type
 * it refers to is defined, every union has its discriminator.  A broken
 * schema is a build bug, caught here once at start-up rather than by the
 * first request that meets the hole.
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

static const char *const builtin_types[][2] = {
	/* name, JSON type as introspection calls it */
	{ "str", "string" }, { "int", "int" }, { "int64", "int" }, { "uint64", "int" },
	{ "size", "int" }, { "bool", "boolean" }, { "number", "number" },
	{ "null", "null" }, { "any", "value" },
};

const char *schema_builtin_json_type(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(builtin_types); i++)
		if (!strcmp(name, builtin_types[i][0]))
			return builtin_types[i][1];
	return NULL;
}

const char *schema_def_kind(json_t *def)
{
	static const char *const kinds[] = { "enum", "struct", "union", "alternate",
					     "command", "event" };

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (json_object_get(def, kinds[i]))
			return kinds[i];
	return NULL;
}

/* ---- loading and checking ---------------------------------------------- */

static int schema_check_type_ref(const struct schema *s, json_t *ref, const char *where,
				 struct error **errp)
{
	if (json_is_array(ref)) {
		if (json_array_size(ref) != 1) {
			error_setg(errp, "schema: %s: an array type has exactly one element type",
				   where);
			return -1;
		}
		return schema_check_type_ref(s, json_array_get(ref, 0), where, errp);
	}
	if (!json_is_string(ref)) {
		error_setg(errp, "schema: %s: a type is a name or [name]", where);
		return -1;
	}
	if (schema_builtin_json_type(json_string_value(ref)) ||
	    json_object_get(s->types, json_string_value(ref)))
		return 0;
	error_setg(errp, "schema: %s: unknown type '%s'", where, json_string_value(ref));
	return -1;
}

static int schema_check_members(const struct schema *s, json_t *members, const char *where,
				struct error **errp)
{
	const char *key;
	json_t *ref;

	if (!json_is_object(members)) {
		error_setg(errp, "schema: %s: members must be an object", where);
		return -1;
	}
	json_object_foreach(members, key, ref) {
		if (schema_check_type_ref(s, ref, where, errp) < 0)
			return -1;
	}
	return 0;
}

/* A struct/union base or command data: a type name or inline members. */
static int schema_check_data(const struct schema *s, json_t *data, const char *where,
			     struct error **errp)
{
	if (!data)
		return 0;
	if (json_is_string(data))
		return schema_check_type_ref(s, data, where, errp);
	return schema_check_members(s, data, where, errp);
}

static int schema_check(struct schema *s, struct error **errp)
{
	const char *name;
	json_t *def;

	json_object_foreach(s->types, name, def) {
		const char *kind = schema_def_kind(def);
		json_t *data = json_object_get(def, "data");

		if (!strcmp(kind, "enum")) {
			if (!json_is_array(data)) {
				error_setg(errp, "schema: enum %s: data must be an array", name);
				return -1;
			}
		} else if (!strcmp(kind, "struct")) {
			if (schema_check_data(s, json_object_get(def, "base"), name, errp) < 0 ||
			    schema_check_members(s, data, name, errp) < 0)
				return -1;
		} else if (!strcmp(kind, "union")) {
			if (!json_is_string(json_object_get(def, "discriminator"))) {
				error_setg(errp, "schema: union %s needs a discriminator", name);
				return -1;
			}
			if (schema_check_data(s, json_object_get(def, "base"), name, errp) < 0 ||
			    schema_check_members(s, data, name, errp) < 0)
				return -1;
		} else if (!strcmp(kind, "alternate")) {
			if (schema_check_members(s, data, name, errp) < 0)
				return -1;
		}
	}
	json_object_foreach(s->commands, name, def) {
		if (schema_check_data(s, json_object_get(def, "data"), name, errp) < 0)
			return -1;
		if (json_object_get(def, "returns") &&
		    schema_check_type_ref(s, json_object_get(def, "returns"), name, errp) < 0)
			return -1;
	}
	json_object_foreach(s->events, name, def) {
		if (schema_check_data(s, json_object_get(def, "data"), name, errp) < 0)
			return -1;
	}
	return 0;
}

struct schema *schema_load(const char *text, size_t len, struct error **errp)
{
	struct schema *s;
	json_error_t jerr;
	json_t *defs, *def;
	size_t i;

	s = xcalloc(1, sizeof(*s));
	s->root = json_loadb(text, len, 0, &jerr);
	if (!s->root) {
		error_setg(errp, "schema: JSON parse error at line %d: %s", jerr.line, jerr.text);
		goto fail;
	}
	defs = json_object_get(s->root, "definitions");
	if (!json_is_array(defs)) {
		error_setg(errp, "schema: 'definitions' must be an array");
		goto fail;
	}
	s->types = json_object();
	s->commands = json_object();
	s->events = json_object();
	s->command_names = json_array();
	json_array_foreach(defs, i, def) {
		const char *kind = schema_def_kind(def);
		const char *name = kind ? json_string_value(json_object_get(def, kind)) : NULL;
		json_t *table;

		if (!name) {
			error_setg(errp, "schema: definition %zu has no kind or name", i);
			goto fail;
		}
		if (!strcmp(kind, "command"))
			table = s->commands;
		else if (!strcmp(kind, "event"))
			table = s->events;
		else
			table = s->types;
		if (json_object_get(table, name) || schema_builtin_json_type(name)) {
			error_setg(errp, "schema: '%s' is defined twice", name);
			goto fail;
		}
		json_object_set(table, name, def);
		if (table == s->commands)
			json_array_append_new(s->command_names, json_string(name));
	}
	if (schema_check(s, errp) < 0)
		goto fail;
	return s;
fail:
	schema_free(s);
	return NULL;
}

void schema_free(struct schema *s)
{
	if (!s)
		return;
	json_decref(s->root);
	json_decref(s->types);
	json_decref(s->commands);
	json_decref(s->events);
	json_decref(s->command_names);
	free(s);
}

extern const char exportd_schema_text[];
extern const size_t exportd_schema_text_len;

struct schema *schema_builtin(void)
{
	static struct schema *builtin;
	struct error *err = NULL;

	/* Loaded once from the main thread at start-up, before any worker runs. */
	if (!builtin) {
		builtin = schema_load(exportd_schema_text, exportd_schema_text_len, &err);
		if (!builtin) {
			/* A build bug: the schema is compiled in. */
			fprintf(stderr, "the built-in QMP schema is broken: %s\n", err->msg);
			abort();
		}
	}
	return builtin;
}

bool schema_has_command(const struct schema *s, const char *name)
{
	return json_object_get(s->commands, name) != NULL;
}

json_t *schema_command_names(const struct schema *s)
{
	return s->command_names;
}
