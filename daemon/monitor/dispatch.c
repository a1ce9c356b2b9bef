/*
 * monitor/dispatch.c: one QMP request in, one reply out.
 *
 * Order of checks and their wording follow QEMU (qapi/qmp-dispatch.c,
 * monitor/qmp.c): parse, object, members, negotiation state, command
 * lookup, schema validation, handler.  Nothing runs with side effects
 * before the arguments have been validated against the schema.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "monitor/dispatch.h"
#include "log.h"
#include "monitor/commands.h"
#include "monitor/monitor.h"
#include "rpc/qmp.h"
#include "rpc/schema.h"
#include "util.h"

static const struct qmp_command *qmp_command_find(const char *name)
{
	for (const struct qmp_command *c = qmp_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int qmp_dispatch_init(struct error **errp)
{
	struct schema *schema = schema_builtin();
	json_t *names = schema_command_names(schema), *n;
	size_t i;

	json_array_foreach(names, i, n) {
		if (!qmp_command_find(json_string_value(n))) {
			error_setg(errp, "schema command '%s' has no handler",
				   json_string_value(n));
			return -1;
		}
	}
	for (const struct qmp_command *c = qmp_commands; c->name; c++) {
		if (!schema_has_command(schema, c->name)) {
			error_setg(errp, "handler '%s' is not in the schema", c->name);
			return -1;
		}
	}
	return 0;
}

/* Members of a request other than these are errors, as in QEMU. */
static int qmp_check_request(json_t *req, struct error **errp)
{
	const char *key;
	json_t *v;
	bool has_exec = false;

	json_object_foreach(req, key, v) {
		if (!strcmp(key, "execute")) {
			if (!json_is_string(v)) {
				error_setg(errp, "QMP input member 'execute' must be a string");
				return -1;
			}
			has_exec = true;
		} else if (!strcmp(key, "arguments")) {
			if (!json_is_object(v)) {
				error_setg(errp, "QMP input member 'arguments' must be an object");
				return -1;
			}
		} else if (!strcmp(key, "exec-oob")) {
			error_setg(errp, "QMP input member 'exec-oob' is unexpected: "
				   "out-of-band execution is not supported by exportd");
			return -1;
		} else if (strcmp(key, "id")) {
			error_setg(errp, "QMP input member '%s' is unexpected", key);
			return -1;
		}
	}
	if (!has_exec) {
		error_setg(errp, "QMP input lacks member 'execute'");
		return -1;
	}
	return 0;
}

static int qmp_capabilities(struct qmp_session *session, json_t *args, struct error **errp)
{
	json_t *enable = json_object_get(args, "enable"), *cap;
	size_t i;

	/* We offer no capabilities (no "oob"), so any requested one is refused. */
	json_array_foreach(enable, i, cap) {
		error_setg(errp, "Capability '%s' not available", json_string_value(cap));
		return -1;
	}
	session->negotiated = true;
	return 0;
}

static bool refusing_changes;
static void (*change_hook)(const char *command, json_t *args);

void qmp_dispatch_set_change_hook(void (*hook)(const char *command, json_t *args))
{
	change_hook = hook;
}

void monitor_refuse_changes(void)
{
	refusing_changes = true;
}

json_t *qmp_dispatch(struct qmp_session *session, const char *text, size_t len)
{
	struct error *err = NULL;
	const struct qmp_command *cmd;
	json_error_t jerr;
	json_t *req, *id, *args = NULL, *ret = NULL, *reply;
	const char *name;

	req = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (!req) {
		char *desc = xasprintf("JSON parse error, %s", jerr.text);

		reply = qmp_error_new(ERROR_CLASS_GENERIC, desc, NULL);
		free(desc);
		return reply;
	}
	if (!json_is_object(req)) {
		json_decref(req);
		return qmp_error_new(ERROR_CLASS_GENERIC, "QMP input must be a JSON object", NULL);
	}
	id = json_object_get(req, "id");
	if (qmp_check_request(req, &err) < 0)
		goto out;
	name = json_string_value(json_object_get(req, "execute"));
	cmd = qmp_command_find(name);
	if (!session->negotiated && strcmp(name, "qmp_capabilities")) {
		error_set_class(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
				"Expecting capabilities negotiation with 'qmp_capabilities'");
		goto out;
	}
	if (!cmd) {
		error_set_class(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
				"The command %s has not been found", name);
		goto out;
	}
	if (session->negotiated && !strcmp(name, "qmp_capabilities")) {
		error_set_class(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
				"Capabilities negotiation is already complete, command ignored");
		goto out;
	}
	/* Nothing new may start while exports are being torn down for good. */
	if (refusing_changes && strncmp(name, "query-", 6) && strcmp(name, "quit")) {
		error_setg(&err, "exportd is shutting down; command %s refused", name);
		goto out;
	}
	args = schema_validate_command(schema_builtin(), name,
				       json_object_get(req, "arguments"), &err);
	if (!args)
		goto out;
	log_debug("QMP command %s", name);
	if (!cmd->handler)
		qmp_capabilities(session, args, &err);
	else if (cmd->handler(session, args, &ret, &err) < 0 && !err)
		error_setg(&err, "Command %s failed", name);
	/* What changed the daemon's state (not queries): the state file, STATUS=. */
	if (!err && change_hook && strncmp(name, "query-", 6) && strncmp(name, "x-query-", 8))
		change_hook(name, args);
out:
	if (err) {
		json_decref(ret);
		reply = qmp_error_new(err->class, err->msg, id);
		error_free(err);
	} else {
		reply = qmp_reply_new(ret, id);
	}
	json_decref(args);
	json_decref(req);
	return reply;
}
