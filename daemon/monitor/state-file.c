/*
 * monitor/state-file.c: exports that outlive the process (--state-file).
 *
 * QMP's state lives in the daemon: after a crash, kill -9 or a restart by
 * systemd, a new exportd starts empty, and management software that
 * expects qemu-storage-daemon's semantics re-creates what it wants.  An
 * operator who drives exportd by hand (exportctl) wants the exports back
 * instead.  So, opt-in: with --state-file PATH, every successful
 * object-add (a secret a node needs), blockdev-add and block-export-add is
 * kept (its arguments as validated,
 * defaults not filled in), and entries whose node or export no longer
 * exists (blockdev-del, block-export-del, an export that ended by itself
 * and the nodes its x-delete-nodes took along) are dropped; after each
 * change the list is written to PATH atomically: a temporary file beside
 * it, fsync, rename over PATH, fsync of the directory, so that PATH is
 * always the old list or the new one, whole, whatever happens.
 *
 * On start the entries are re-created in order.  One that fails (an
 * image gone, a mountpoint refused) is logged and listed by
 * x-query-state-file, with its arguments and the error, and is dropped
 * from the state at the next change; the others go on.  A write that
 * fails is logged and shown by x-query-state-file too, and retried at the
 * next change.  Only what QMP made is recorded: --blockdev/--export on
 * the command line are re-created by that command line.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "export/export.h"
#include "log.h"
#include "monitor/state-file.h"
#include "object/object.h"
#include "rpc/schema.h"
#include "util.h"

#define STATE_FILE_VERSION 1

static char *state_path;
/* [{"blockdev-add": args} | {"block-export-add": args}], in the order made. */
static json_t *state_entries;
/* [{"command", "arguments", "error"}]: what start-up could not re-create. */
static json_t *restore_failures;
static char *write_error;	/* the last write's failure; NULL once one succeeds */

void state_file_init(const char *path)
{
	state_path = xstrdup(path);
	state_entries = json_array();
	restore_failures = json_array();
}

/* Whether the node or export that entry made still exists. */
static bool entry_alive(json_t *entry)
{
	json_t *args;

	if ((args = json_object_get(entry, "object-add")))
		return object_exists(json_string_value(json_object_get(args, "id")));
	if ((args = json_object_get(entry, "blockdev-add")))
		return block_node_find(json_string_value(json_object_get(args, "node-name")));
	if ((args = json_object_get(entry, "block-export-add"))) {
		struct export *exp = export_find(json_string_value(json_object_get(args, "id")));

		return exp && !exp->shutting_down;
	}
	return false;
}

static void state_prune(void)
{
	for (size_t i = json_array_size(state_entries); i-- > 0;)
		if (!entry_alive(json_array_get(state_entries, i)))
			json_array_remove(state_entries, i);
}

static void set_write_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_write_error(const char *fmt, ...)
{
	va_list ap;

	free(write_error);
	va_start(ap, fmt);
	write_error = xvasprintf(fmt, ap);
	va_end(ap);
	log_error("%s", write_error);
}

/* Write all of buf to fd. */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* temp + fsync + rename + fsync(dir): PATH is always one whole version. */
static void state_write(void)
{
	json_t *doc = json_pack("{s:i, s:O}", "version", STATE_FILE_VERSION,
				"entries", state_entries);
	char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	char *tmp = xasprintf("%s.tmp", state_path);
	char *slash = strrchr(state_path, '/');
	char *dir = xasprintf("%.*s", (int)(slash == state_path ? 1 : slash - state_path),
			      state_path);
	int fd, dfd;

	json_decref(doc);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		set_write_error("Cannot write state file '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 ||
	    fsync(fd) < 0) {
		set_write_error("Cannot write state file '%s': %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, state_path) < 0) {
		set_write_error("Cannot rename '%s' to state file '%s': %s", tmp, state_path,
				strerror(errno));
		unlink(tmp);
		goto out;
	}
	/* The rename itself must survive a power cut. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		set_write_error("Cannot sync the directory of state file '%s': %s", state_path,
				strerror(errno));
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	close(dfd);
	if (write_error)
		log_info("state file '%s' written again", state_path);
	free(write_error);
	write_error = NULL;
out:
	free(dir);
	free(tmp);
	free(text);
}

void state_file_changed(const char *command, json_t *args)
{
	if (!state_path)
		return;
	if (command && (!strcmp(command, "object-add") || !strcmp(command, "blockdev-add") ||
			!strcmp(command, "block-export-add")))
		json_array_append_new(state_entries, json_pack("{s:O}", command, args));
	state_prune();
	state_write();
}

static void restore_failed(const char *command, json_t *args, const char *what,
			   const char *msg)
{
	log_error("state file '%s': cannot re-create %s: %s", state_path, what, msg);
	json_array_append_new(restore_failures,
			      json_pack("{s:s, s:O, s:s}", "command", command, "arguments",
					args ? args : json_null(), "error", msg));
}

/* Re-create one entry; 0, or -1 when it failed (already reported). */
static int restore_entry(json_t *entry)
{
	const char *command = NULL, *type;
	json_t *raw = NULL, *args;
	struct error *err = NULL;
	char *what;
	int rc;

	if (json_is_object(entry) && json_object_size(entry) == 1) {
		command = json_object_iter_key(json_object_iter(entry));
		raw = json_object_iter_value(json_object_iter(entry));
	}
	if (!command || (strcmp(command, "object-add") && strcmp(command, "blockdev-add") &&
			 strcmp(command, "block-export-add"))) {
		restore_failed(command ? command : "", raw, "an entry",
			       "not an object-add, blockdev-add or block-export-add entry");
		return -1;
	}
	if (!strcmp(command, "object-add")) {
		type = "ObjectOptions";
		what = xasprintf("object '%s'",
				 json_string_value(json_object_get(raw, "id")) ?: "?");
	} else if (!strcmp(command, "blockdev-add")) {
		type = "BlockdevOptions";
		what = xasprintf("node '%s'",
				 json_string_value(json_object_get(raw, "node-name")) ?: "?");
	} else {
		type = "BlockExportOptions";
		what = xasprintf("export '%s'", json_string_value(json_object_get(raw, "id")) ?: "?");
	}
	/* The file is data: it is checked as a QMP client's arguments are. */
	args = schema_validate_type(schema_builtin(), type, raw, false, &err);
	if (!args)
		rc = -1;
	else if (!strcmp(command, "object-add"))
		rc = object_add(args, &err);
	else if (!strcmp(command, "blockdev-add"))
		rc = blockdev_add(args, &err);
	else
		rc = export_add(args, &err);
	if (rc < 0) {
		restore_failed(command, raw, what, err ? err->msg : "failed");
		error_free(err);
	} else {
		json_array_append_new(state_entries, json_pack("{s:O}", command, raw));
		log_info("state file '%s': %s re-created", state_path, what);
	}
	json_decref(args);
	free(what);
	return rc;
}

int state_file_restore(struct error **errp)
{
	json_error_t jerr;
	json_t *doc, *entries, *entry;
	size_t i;
	int failed = 0;

	if (!state_path)
		return 0;
	doc = json_load_file(state_path, 0, &jerr);
	if (!doc) {
		struct stat st;

		/* A first start: the file is written at the first change. */
		if (stat(state_path, &st) < 0 && errno == ENOENT) {
			log_info("state file '%s' does not exist yet: nothing to re-create",
				 state_path);
			return 0;
		}
		error_setg(errp, "Cannot read state file '%s': %s (line %d)", state_path,
			   jerr.text, jerr.line);
		return -1;
	}
	entries = json_object_get(doc, "entries");
	if (!json_is_array(entries) ||
	    json_integer_value(json_object_get(doc, "version")) != STATE_FILE_VERSION) {
		error_setg(errp, "State file '%s' is not an exportd state file of version %d",
			   state_path, STATE_FILE_VERSION);
		json_decref(doc);
		return -1;
	}
	json_array_foreach(entries, i, entry)
		if (restore_entry(entry) < 0)
			failed++;
	log_info("state file '%s': %zu of %zu entries re-created", state_path,
		 json_array_size(entries) - (size_t)failed, json_array_size(entries));
	json_decref(doc);
	return 0;
}

json_t *state_file_query(void)
{
	json_t *ret;

	if (!state_path)
		return json_pack("{s:b, s:[]}", "enabled", 0, "restore-failures");
	ret = json_pack("{s:b, s:s, s:i, s:O}", "enabled", 1, "path", state_path,
			"entries", (json_int_t)json_array_size(state_entries),
			"restore-failures", restore_failures);
	if (write_error)
		json_object_set_new(ret, "write-error", json_string(write_error));
	return ret;
}
