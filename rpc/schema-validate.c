/*
 * schema-validate.c: check a request's arguments (or a --blockdev/--export
 * option) against the schema and return a normalised copy, so that a
 * handler only ever sees members the schema knows, with the right types.
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
#include "rpc/schema-internal.h"
#include "rpc/xalloc.h"

/* ---- validation -------------------------------------------------------- */

static char *member_path(const char *path, const char *name)
{
	if (!path || !*path)
		return xstrdup(name);
	return xasprintf("%s.%s", path, name);
}

static const char *json_type_word(const char *builtin)
{
	const char *jt = schema_builtin_json_type(builtin);

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
	jt = schema_builtin_json_type(name);
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
			if (json_is_string(type) && schema_builtin_json_type(json_string_value(type)))
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
	if (schema_builtin_json_type(name))
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

static json_t *validate_command(const struct schema *s, const char *command, json_t *args,
				bool keyval, struct error **errp)
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
		out = schema_validate_type(s, json_string_value(data), args, keyval, errp);
	} else {
		json_t *known = json_object();

		out = json_object();
		if (validate_members(s, data, args, out, known, "", keyval, errp) < 0 ||
		    check_unexpected(args, known, "", errp) < 0) {
			json_decref(out);
			out = NULL;
		}
		json_decref(known);
	}
	json_decref(empty);
	return out;
}

json_t *schema_validate_command(const struct schema *s, const char *command, json_t *args,
				struct error **errp)
{
	return validate_command(s, command, args, false, errp);
}

json_t *schema_validate_command_keyval(const struct schema *s, const char *command,
				       json_t *args, struct error **errp)
{
	return validate_command(s, command, args, true, errp);
}
