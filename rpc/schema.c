/*
 * schema.c: load the schema, validate requests against it, and describe
 * it for introspection (see schema.h and schema/exportd-schema.json).
 *
 * Error wording follows QEMU's QAPI visitors, which clients match on:
 * "Parameter 'x' is missing", "Parameter 'x' is unexpected",
 * "Invalid parameter type for 'x', expected: integer",
 * "Parameter 'x' does not accept value 'y'".  Nested members are named by
 * their full dotted path ("file.filename"), array elements as "x[2]".
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/schema.h"
#include "rpc/xalloc.h"

struct schema {
	json_t *root;
	json_t *types;		/* name -> definition (enum, struct, union, alternate) */
	json_t *commands;	/* name -> definition */
	json_t *events;		/* name -> definition */
	json_t *command_names;	/* array, schema order */
};

static const char *const builtin_types[][2] = {
	/* name, JSON type as introspection calls it */
	{ "str", "string" }, { "int", "int" }, { "int64", "int" }, { "uint64", "int" },
	{ "size", "int" }, { "bool", "boolean" }, { "number", "number" },
	{ "null", "null" }, { "any", "value" },
};

static const char *builtin_json_type(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(builtin_types); i++)
		if (!strcmp(name, builtin_types[i][0]))
			return builtin_types[i][1];
	return NULL;
}

static const char *def_kind(json_t *def)
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
	if (builtin_json_type(json_string_value(ref)) ||
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
		const char *kind = def_kind(def);
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
		const char *kind = def_kind(def);
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
		if (json_object_get(table, name) || builtin_json_type(name)) {
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

/* ---- validation -------------------------------------------------------- */

static char *member_path(const char *path, const char *name)
{
	if (!path || !*path)
		return xstrdup(name);
	return xasprintf("%s.%s", path, name);
}

static const char *json_type_word(const char *builtin)
{
	const char *jt = builtin_json_type(builtin);

	if (!strcmp(jt, "int"))
		return "integer";
	if (!strcmp(jt, "value"))
		return "any";
	return jt;
}

static void error_bad_type(struct error **errp, const char *path, const char *expected)
{
	error_setg(errp, "Invalid parameter type for '%s', expected: %s",
		   path && *path ? path : "arguments", expected);
}

static json_t *validate_value(const struct schema *s, json_t *type, json_t *value,
			      const char *path, bool keyval, struct error **errp);

static int parse_size(const char *str, int64_t *out)
{
	char *end;
	double mult = 1;
	double val;

	errno = 0;
	val = strtod(str, &end);
	if (errno || end == str || val < 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1024.0; end++; break;
	case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
	case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
	case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
	default: return -1;
	}
	/* Fractions only with a suffix ("1.5G"); plain byte counts are whole. */
	if (*end || val * mult >= 9.2e18 || (mult == 1 && val != (double)(int64_t)val))
		return -1;
	*out = (int64_t)(val * mult);
	return 0;
}

static json_t *validate_builtin(const char *name, json_t *value, const char *path,
				bool keyval, struct error **errp)
{
	const char *str = json_is_string(value) ? json_string_value(value) : NULL;

	if (!strcmp(name, "any"))
		return json_incref(value);
	if (!strcmp(name, "str")) {
		if (!str)
			goto bad_type;
		return json_incref(value);
	}
	if (!strcmp(name, "bool")) {
		if (json_is_boolean(value))
			return json_incref(value);
		if (keyval && str) {
			if (!strcmp(str, "on") || !strcmp(str, "yes") || !strcmp(str, "true"))
				return json_true();
			if (!strcmp(str, "off") || !strcmp(str, "no") || !strcmp(str, "false"))
				return json_false();
			error_setg(errp, "Parameter '%s' expects 'on' or 'off'", path);
			return NULL;
		}
		goto bad_type;
	}
	if (!strcmp(name, "number")) {
		if (json_is_number(value))
			return json_incref(value);
		if (keyval && str) {
			char *end;
			double d;

			errno = 0;
			d = strtod(str, &end);
			if (!errno && end != str && !*end)
				return json_real(d);
			error_setg(errp, "Parameter '%s' expects a number", path);
			return NULL;
		}
		goto bad_type;
	}
	if (!strcmp(name, "null")) {
		if (json_is_null(value))
			return json_incref(value);
		if (keyval && str && !strcmp(str, "null"))
			return json_null();
		goto bad_type;
	}
	/* int, int64, uint64, size */
	if (json_is_integer(value)) {
		if (strcmp(name, "int") && strcmp(name, "int64") && json_integer_value(value) < 0) {
			error_setg(errp, "Parameter '%s' expects a non-negative integer", path);
			return NULL;
		}
		return json_incref(value);
	}
	if (keyval && str) {
		int64_t v;
		char *end;

		if (!strcmp(name, "size")) {
			if (parse_size(str, &v) < 0) {
				error_setg(errp, "Parameter '%s' expects a size value", path);
				return NULL;
			}
			return json_integer(v);
		}
		errno = 0;
		v = strtoll(str, &end, 0);
		if (errno || end == str || *end ||
		    (strcmp(name, "int") && strcmp(name, "int64") && v < 0)) {
			error_setg(errp, "Parameter '%s' expects an integer", path);
			return NULL;
		}
		return json_integer(v);
	}
bad_type:
	error_bad_type(errp, path, json_type_word(name));
	return NULL;
}

static json_t *validate_enum(json_t *def, json_t *value, const char *path,
			     struct error **errp)
{
	json_t *v;
	size_t i;

	if (!json_is_string(value)) {
		error_bad_type(errp, path, "string");
		return NULL;
	}
	json_array_foreach(json_object_get(def, "data"), i, v) {
		if (json_equal(v, value))
			return json_incref(value);
	}
	error_setg(errp, "Parameter '%s' does not accept value '%s'", path,
		   json_string_value(value));
	return NULL;
}

/*
 * Validate the members listed in `members` (name -> type, '*' = optional)
 * from `in` into `out`, recording each name in `known`.
 */
static int validate_members(const struct schema *s, json_t *members, json_t *in, json_t *out,
			    json_t *known, const char *path, bool keyval, struct error **errp)
{
	const char *key;
	json_t *type;

	json_object_foreach(members, key, type) {
		bool optional = key[0] == '*';
		const char *name = optional ? key + 1 : key;
		json_t *v = json_object_get(in, name);
		char *sub = member_path(path, name);
		json_t *ok;

		json_object_set_new(known, name, json_true());
		if (!v) {
			if (!optional) {
				error_setg(errp, "Parameter '%s' is missing", sub);
				free(sub);
				return -1;
			}
			free(sub);
			continue;
		}
		ok = validate_value(s, type, v, sub, keyval, errp);
		free(sub);
		if (!ok)
			return -1;
		json_object_set_new(out, name, ok);
	}
	return 0;
}

/* Members of a base: a named struct (with its own base) or inline members. */
static int validate_base(const struct schema *s, json_t *base, json_t *in, json_t *out,
			 json_t *known, const char *path, bool keyval, struct error **errp)
{
	json_t *def;

	if (!base)
		return 0;
	if (!json_is_string(base))
		return validate_members(s, base, in, out, known, path, keyval, errp);
	def = json_object_get(s->types, json_string_value(base));
	if (validate_base(s, json_object_get(def, "base"), in, out, known, path, keyval, errp) < 0)
		return -1;
	return validate_members(s, json_object_get(def, "data"), in, out, known, path, keyval,
				errp);
}

static int check_unexpected(json_t *in, json_t *known, const char *path, struct error **errp)
{
	const char *key;
	json_t *v;

	json_object_foreach(in, key, v) {
		if (!json_object_get(known, key)) {
			char *sub = member_path(path, key);

			error_setg(errp, "Parameter '%s' is unexpected", sub);
			free(sub);
			return -1;
		}
	}
	return 0;
}

static json_t *validate_object(const struct schema *s, const char *kind, json_t *def,
			       json_t *value, const char *path, bool keyval, struct error **errp)
{
	json_t *out, *known;

	if (!json_is_object(value)) {
		error_bad_type(errp, path, "object");
		return NULL;
	}
	out = json_object();
	known = json_object();
	if (validate_base(s, json_object_get(def, "base"), value, out, known, path, keyval,
			  errp) < 0)
		goto fail;
	if (!strcmp(kind, "union")) {
		const char *tag = json_string_value(json_object_get(def, "discriminator"));
		const char *tagval = json_string_value(json_object_get(out, tag));
		json_t *variant = json_object_get(json_object_get(def, "data"), tagval);

		if (variant && validate_base(s, variant, value, out, known, path, keyval, errp) < 0)
			goto fail;
	} else if (validate_members(s, json_object_get(def, "data"), value, out, known, path,
				    keyval, errp) < 0) {
		goto fail;
	}
	if (check_unexpected(value, known, path, errp) < 0)
		goto fail;
	json_decref(known);
	return out;
fail:
	json_decref(known);
	json_decref(out);
	return NULL;
}

/* Which JSON type a branch of an alternate accepts. */
static bool alternate_branch_takes(const struct schema *s, json_t *type, json_t *value)
{
	const char *name = json_string_value(type);
	json_t *def;
	const char *jt;

	if (json_is_array(type))
		return json_is_array(value);
	jt = builtin_json_type(name);
	if (jt) {
		if (!strcmp(jt, "string"))
			return json_is_string(value);
		if (!strcmp(jt, "int"))
			return json_is_integer(value);
		if (!strcmp(jt, "boolean"))
			return json_is_boolean(value);
		if (!strcmp(jt, "number"))
			return json_is_number(value);
		if (!strcmp(jt, "null"))
			return json_is_null(value);
		return true;
	}
	def = json_object_get(s->types, name);
	if (json_object_get(def, "enum"))
		return json_is_string(value);
	return json_is_object(value);
}

static json_t *validate_alternate(const struct schema *s, json_t *def, json_t *value,
				  const char *path, bool keyval, struct error **errp)
{
	const char *key;
	json_t *type;

	json_object_foreach(json_object_get(def, "data"), key, type) {
		if (alternate_branch_takes(s, type, value))
			return validate_value(s, type, value, path, keyval, errp);
	}
	/* key=value input: a string may stand for a scalar branch. */
	if (keyval && json_is_string(value)) {
		json_object_foreach(json_object_get(def, "data"), key, type) {
			if (json_is_string(type) && builtin_json_type(json_string_value(type)))
				return validate_value(s, type, value, path, keyval, errp);
		}
	}
	error_bad_type(errp, path, json_string_value(json_object_get(def, "alternate")));
	return NULL;
}

static json_t *validate_value(const struct schema *s, json_t *type, json_t *value,
			      const char *path, bool keyval, struct error **errp)
{
	const char *name;
	json_t *def;

	if (json_is_array(type)) {
		json_t *out, *elem;
		size_t i;

		if (!json_is_array(value)) {
			error_bad_type(errp, path, "array");
			return NULL;
		}
		out = json_array();
		json_array_foreach(value, i, elem) {
			char *sub = xasprintf("%s[%zu]", path, i);
			json_t *ok = validate_value(s, json_array_get(type, 0), elem, sub, keyval,
						    errp);

			free(sub);
			if (!ok) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, ok);
		}
		return out;
	}
	name = json_string_value(type);
	if (builtin_json_type(name))
		return validate_builtin(name, value, path, keyval, errp);
	def = json_object_get(s->types, name);
	if (json_object_get(def, "enum"))
		return validate_enum(def, value, path, errp);
	if (json_object_get(def, "alternate"))
		return validate_alternate(s, def, value, path, keyval, errp);
	return validate_object(s, json_object_get(def, "union") ? "union" : "struct", def,
			       value, path, keyval, errp);
}

json_t *schema_validate_type(const struct schema *s, const char *type, json_t *value,
			     bool keyval, struct error **errp)
{
	json_t *t = json_string(type);
	json_t *out = validate_value(s, t, value, "", keyval, errp);

	json_decref(t);
	return out;
}

json_t *schema_validate_command(const struct schema *s, const char *command, json_t *args,
				struct error **errp)
{
	json_t *def = json_object_get(s->commands, command);
	json_t *data = json_object_get(def, "data");
	json_t *empty = NULL, *out;

	if (!args)
		args = empty = json_object();
	if (!data) {
		out = json_object();
		if (check_unexpected(args, out, "", errp) < 0) {
			json_decref(out);
			out = NULL;
		}
	} else if (json_is_string(data)) {
		out = schema_validate_type(s, json_string_value(data), args, false, errp);
	} else {
		json_t *known = json_object();

		out = json_object();
		if (validate_members(s, data, args, out, known, "", false, errp) < 0 ||
		    check_unexpected(args, known, "", errp) < 0) {
			json_decref(out);
			out = NULL;
		}
		json_decref(known);
	}
	json_decref(empty);
	return out;
}

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
		if (builtin_json_type(name))
			json_array_append_new(in->list,
					      json_pack("{s:s,s:s,s:s}", "name", name, "meta-type",
							"builtin", "json-type",
							builtin_json_type(name)));
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
