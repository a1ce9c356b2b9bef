/*
 * qmp-args.c: KEY=VALUE and JSON arguments for hand-typed QMP commands
 * (see qmp-args.h).  Kept free of I/O so that it is unit-tested directly.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qmp-args.h"
#include "rpc/schema.h"

static void args_err(char **errp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void args_err(char **errp, const char *fmt, ...)
{
	va_list ap;

	if (!errp)
		return;
	va_start(ap, fmt);
	if (vasprintf(errp, fmt, ap) < 0)
		*errp = NULL;
	va_end(ap);
}

/* A value: JSON if it parses, else the text as a string. */
static json_t *parse_value(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

	return v ? v : json_string(text);
}

/* Set obj[a.b.c] = value, creating the intermediate objects. */
static int set_path(json_t *obj, const char *key, size_t keylen, json_t *value,
		    const char *word, char **errp)
{
	const char *dot = memchr(key, '.', keylen);
	size_t len = dot ? (size_t)(dot - key) : keylen;
	char *name = strndup(key, len);
	json_t *child;
	int ret;

	if (!name || !len) {
		args_err(errp, "empty member name in '%s'", word);
		free(name);
		json_decref(value);
		return -1;
	}
	child = json_object_get(obj, name);
	if (!dot) {
		if (child) {
			args_err(errp, "'%s' is given twice", word);
			free(name);
			json_decref(value);
			return -1;
		}
		json_object_set_new(obj, name, value);
		free(name);
		return 0;
	}
	if (!child) {
		child = json_object();
		json_object_set_new(obj, name, child);
	} else if (!json_is_object(child)) {
		args_err(errp, "'%s' is not an object in '%s'", name, word);
		free(name);
		json_decref(value);
		return -1;
	}
	free(name);
	ret = set_path(child, dot + 1, keylen - len - 1, value, word, errp);
	return ret;
}

json_t *qmp_args_parse(int n, const char *const *words, char **errp)
{
	json_t *args;

	if (n == 1 && words[0][0] == '{') {
		json_error_t jerr;

		args = json_loads(words[0], 0, &jerr);
		if (!args) {
			args_err(errp, "invalid JSON arguments: %s", jerr.text);
			return NULL;
		}
		if (!json_is_object(args)) {
			args_err(errp, "JSON arguments must be an object");
			json_decref(args);
			return NULL;
		}
		return args;
	}
	args = json_object();
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(words[i], '=');

		if (!eq || eq == words[i]) {
			args_err(errp, "expected KEY=VALUE or one JSON object, got '%s'",
				 words[i]);
			json_decref(args);
			return NULL;
		}
		if (set_path(args, words[i], eq - words[i], parse_value(eq + 1),
			     words[i], errp) < 0) {
			json_decref(args);
			return NULL;
		}
	}
	return args;
}

int qmp_args_split(const char *line, char **words, int max, char **errp)
{
	size_t len = strlen(line);
	char *buf = malloc(len + 1);
	int n = 0;
	const char *p = line;

	if (!buf) {
		args_err(errp, "out of memory");
		return -1;
	}
	for (;;) {
		size_t out = 0;
		int depth = 0;
		char quote = 0;
		bool any = false;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		for (; *p; p++) {
			char ch = *p;

			if (quote) {
				if (ch == '\\' && depth > 0 && p[1]) {
					buf[out++] = ch;
					buf[out++] = *++p;
					continue;
				}
				if (ch == quote) {
					quote = 0;
					if (depth > 0)
						buf[out++] = ch;
					continue;
				}
				buf[out++] = ch;
				continue;
			}
			if ((ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') && depth == 0)
				break;
			if (ch == '"' || (ch == '\'' && depth == 0)) {
				quote = ch;
				any = true;
				if (depth > 0)
					buf[out++] = ch;
				continue;
			}
			if (ch == '{' || ch == '[')
				depth++;
			else if ((ch == '}' || ch == ']') && depth > 0)
				depth--;
			buf[out++] = ch;
			any = true;
		}
		if (quote || depth) {
			args_err(errp, quote ? "unterminated quote" : "unbalanced brackets");
			goto fail;
		}
		if (!any)
			break;
		if (n >= max) {
			args_err(errp, "too many words (at most %d)", max);
			goto fail;
		}
		buf[out] = '\0';
		words[n] = strdup(buf);
		if (!words[n]) {
			args_err(errp, "out of memory");
			goto fail;
		}
		n++;
	}
	free(buf);
	return n;
fail:
	while (n > 0)
		free(words[--n]);
	free(buf);
	return -1;
}

json_t *qmp_args_typed(const char *command, json_t *args)
{
	struct schema *schema = schema_builtin();
	json_t *typed;

	if (!schema_has_command(schema, command))
		return json_incref(args);
	typed = schema_validate_command_keyval(schema, command, args, NULL);
	return typed ? typed : json_incref(args);
}
