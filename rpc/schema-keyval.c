/*
 * schema-keyval.c: QEMU's KEY=VALUE,... option syntax, as qemu-storage-
 * daemon 7.2 parses --blockdev, --export and --object (util/keyval.c),
 * turned into a nested JSON object of strings that the schema then
 * converts to the right types.
 *
 * The rules are QEMU's, because a qsd command line must mean the same
 * thing here: keys are dotted paths of QAPI names ("file.filename"); a
 * numeric fragment after the first makes its parent an array
 * ("inject-error.0.event"), without gaps; ",," in a value is one comma; the
 * last of several values for one key wins; and only the first element may
 * leave out its key ("raw,file.filename=x" is "driver=raw,..."), in which
 * case the value ends at the first ',' or '=' and cannot escape a comma.
 * A bare "help" or "?" asks for help, which exportd does not offer.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/schema.h"
#include "rpc/xalloc.h"

/* QEMU caps a key fragment at 127 characters. */
#define KEYVAL_FRAGMENT_MAX 127

/*
 * Length of the QAPI name at the start of s (QEMU's parse_qapi_name: an
 * optional downstream "__RFQDN_" prefix, a letter, then letters, digits,
 * '-' and '_'), or 0 if s does not start with one.
 */
static size_t qapi_name_len(const char *s)
{
	const char *p = s;

	if (*p == '_') {
		if (*++p != '_')
			return 0;
		while (*++p && (isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
			;
		if (*p != '_')
			return 0;
		p++;
	}
	if (!isalpha((unsigned char)*p))
		return 0;
	while (*++p && (isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
		;
	return (size_t)(p - s);
}

static size_t digits_len(const char *s)
{
	size_t n = 0;

	while (isdigit((unsigned char)s[n]))
		n++;
	return n;
}

static bool is_index(const char *key)
{
	return *key && digits_len(key) == strlen(key);
}

/* "help" or "?" as a whole element: QEMU's starts_with_help_option. */
static bool is_help(const char *elem, size_t len)
{
	return (len == 4 && !strncmp(elem, "help", 4)) || (len == 1 && *elem == '?');
}

/*
 * Make cur[name] an object (value NULL) or the string value, as QEMU's
 * keyval_parse_put: a later string replaces an earlier one, but a key
 * cannot be both a string and an object.  Steals value.
 */
static json_t *keyval_put(json_t *cur, const char *name, json_t *value,
			  const char *key, size_t key_shown, struct error **errp)
{
	json_t *old = json_object_get(cur, name);

	if (old) {
		if (value ? !json_is_string(old) : !json_is_object(old)) {
			error_setg(errp, "Parameters '%.*s.*' used inconsistently",
				   (int)key_shown, key);
			json_decref(value);
			return NULL;
		}
		if (!value)
			return old;
	}
	if (!value)
		value = json_object();
	json_object_set_new(cur, name, value);
	return value;
}

/*
 * Parse one element at params into root; returns where the next element
 * starts, or NULL with *errp set.
 */
static const char *keyval_parse_one(json_t *root, const char *params,
				    const char *implied_key, struct error **errp)
{
	size_t len = strcspn(params, "=,");
	const char *key = params, *key_end, *s, *value_end = NULL;
	char name[KEYVAL_FRAGMENT_MAX + 1];
	json_t *cur = root, *val;
	char *buf;
	size_t n = 0;

	if (len && params[len] != '=') {
		if (is_help(params, len)) {
			error_setg(errp, "Help is not available for this option");
			return NULL;
		}
		if (implied_key) {
			key = implied_key;
			value_end = params + len;
			len = strlen(implied_key);
		}
	}
	key_end = key + len;

	for (s = key;;) {
		size_t flen = s != key && digits_len(s) ? digits_len(s) : qapi_name_len(s);

		if (flen > (size_t)(key_end - s))
			flen = (size_t)(key_end - s);
		if (!flen || (s + flen < key_end && s[flen] != '.')) {
			error_setg(errp, "Invalid parameter '%.*s'", (int)(key_end - key), key);
			return NULL;
		}
		if (flen > KEYVAL_FRAGMENT_MAX) {
			error_setg(errp, "Parameter%s '%.*s' is too long",
				   s != key || s + flen != key_end ? " fragment" : "",
				   (int)flen, s);
			return NULL;
		}
		if (s != key) {
			cur = keyval_put(cur, name, NULL, key, (size_t)(s - 1 - key), errp);
			if (!cur)
				return NULL;
		}
		memcpy(name, s, flen);
		name[flen] = '\0';
		s += flen;
		if (*s != '.')
			break;
		s++;
	}

	buf = xmalloc(strlen(params) + 1);
	if (value_end) {
		/* An implied value ends at the first ',' or '=': no ",," escape. */
		n = (size_t)(value_end - params);
		memcpy(buf, params, n);
		s = value_end;
		if (*s == ',')
			s++;
	} else {
		if (*s != '=') {
			error_setg(errp, "Expected '=' after parameter '%.*s'",
				   (int)(s - key), key);
			free(buf);
			return NULL;
		}
		for (s++; *s; ) {
			if (*s == ',') {
				s++;
				if (*s != ',')
					break;
			}
			buf[n++] = *s++;
		}
	}
	buf[n] = '\0';
	val = json_string(buf);
	free(buf);
	if (!val) {
		error_setg(errp, "Parameter '%.*s' is not valid UTF-8", (int)len, key);
		return NULL;
	}
	if (!keyval_put(cur, name, val, key, len, errp))
		return NULL;
	return s;
}

static char *keyval_path_join(const char *prefix, const char *name)
{
	return xasprintf("%s%s.", prefix, name);
}

/*
 * QEMU's keyval_listify: objects whose keys are all indexes become arrays
 * (recursively); prefix is the dotted path to cur, for messages.  Returns
 * the replacement of cur (a new reference) or NULL with *errp set.
 */
static json_t *keyval_listify(json_t *cur, const char *prefix, struct error **errp)
{
	bool has_index = false, has_member = false;
	const char *name;
	json_t *v, *list;
	size_t count, max_index = 0;
	void *tmp;

	json_object_foreach_safe(cur, tmp, name, v) {
		if (is_index(name))
			has_index = true;
		else
			has_member = true;
		if (json_is_object(v)) {
			char *sub = keyval_path_join(prefix, name);
			json_t *nv = keyval_listify(v, sub, errp);

			free(sub);
			if (!nv)
				return NULL;
			json_object_set_new(cur, name, nv);
		}
	}
	if (has_index && has_member) {
		error_setg(errp, "Parameters '%s*' used inconsistently", prefix);
		return NULL;
	}
	if (!has_index)
		return json_incref(cur);

	count = json_object_size(cur);
	list = json_array();
	json_object_foreach(cur, name, v) {
		unsigned long idx = strtoul(name, NULL, 10);

		if (idx + 1 > max_index)
			max_index = idx + 1;
	}
	for (size_t i = 0; i < count || i < max_index; i++) {
		char idx[24];

		snprintf(idx, sizeof(idx), "%zu", i);
		v = json_object_get(cur, idx);
		if (!v) {
			error_setg(errp, "Parameter '%s%zu' missing", prefix, i);
			json_decref(list);
			return NULL;
		}
		json_array_append(list, v);
	}
	return list;
}

json_t *keyval_parse(const char *text, const char *implied_key, bool *keyval,
		     struct error **errp)
{
	json_t *obj, *listified;
	const char *p = text;

	if (*text == '{') {
		json_error_t jerr;

		*keyval = false;
		obj = json_loads(text, 0, &jerr);
		if (!obj) {
			error_setg(errp, "JSON parse error, %s", jerr.text);
			return NULL;
		}
		if (!json_is_object(obj)) {
			error_setg(errp, "Option must be a JSON object");
			json_decref(obj);
			return NULL;
		}
		return obj;
	}
	*keyval = true;
	obj = json_object();
	while (*p) {
		p = keyval_parse_one(obj, p, implied_key, errp);
		if (!p) {
			json_decref(obj);
			return NULL;
		}
		implied_key = NULL;
	}
	listified = keyval_listify(obj, "", errp);
	json_decref(obj);
	return listified;
}
