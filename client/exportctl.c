/*
 * exportctl.c: the command-line client of exportd.  main() parses the
 * command line against the tables of parser.c, connects to the daemon's
 * QMP socket and runs one handler per command; what comes back is shown
 * through the output table of the chosen format (output.h).
 *
 * Exit status: 0 success, 1 the daemon (or the system) said no, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl-util.h"
#include "output.h"
#include "parser.h"
#include "probe.h"
#include "qmp-args.h"
#include "qmp-client.h"
#include "rbd-spec.h"
#include "shell.h"

#define DEFAULT_SOCKET "/run/exportd/exportd.sock"
#define DEL_TIMEOUT_MS 30000
/* Node names are at most 31 bytes in QEMU; ours add "-file" to the id. */
#define ID_MAX_FOR_NODES 26

struct ctl {
	struct parse_result *res;
	const struct output *out;
	char *socket;
	struct qmp_client *qmp;
};

/* The daemon's default, as exportd computes it (see exportd.8). */
static char *default_socket(void)
{
	const char *env = getenv("EXPORTD_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		return ctl_xstrdup(env);
	if (geteuid() == 0)
		return ctl_xstrdup(DEFAULT_SOCKET);
	if (!xdg || !*xdg) {
		ctl_warnx("XDG_RUNTIME_DIR is not set: give --socket PATH or set EXPORTD_SOCKET");
		exit(EXIT_USAGE);
	}
	return ctl_xasprintf("%s/exportd.sock", xdg);
}

static void ctl_connect(struct ctl *ctl)
{
	enum qmp_connect_error why;
	char *err = NULL;

	ctl->qmp = qmp_client_connect(ctl->socket, ctl->res->set[OPT_VERBOSE], &why, &err);
	if (!ctl->qmp) {
		if (why == QMP_CONNECT_NOT_RUNNING) {
			fflush(stdout);
			fprintf(stderr, "exportd is not running on %s\n", ctl->socket);
			exit(EXIT_FAILED);
		}
		ctl_exitx(EXIT_FAILED, "%s", err);
	}
	if (qmp_client_negotiate(ctl->qmp, &err) < 0)
		ctl_exitx(EXIT_FAILED, "%s", err);
}

/* Run a command; its error is returned as an allocated message. */
static json_t *qmp_try(struct ctl *ctl, const char *cmd, json_t *args, char **errp)
{
	json_t *reply = qmp_client_execute(ctl->qmp, cmd, args, errp);
	json_t *ret;
	const char *desc;

	if (!reply)
		return NULL;
	desc = qmp_reply_error(reply);
	if (desc) {
		*errp = ctl_xstrdup(desc);
		json_decref(reply);
		return NULL;
	}
	ret = json_incref(json_object_get(reply, "return"));
	json_decref(reply);
	return ret ? ret : json_object();
}

/* Run a command whose failure ends exportctl: "exportctl: <desc>", exit 1. */
static json_t *qmp_must(struct ctl *ctl, const char *cmd, json_t *args)
{
	char *err = NULL;
	json_t *ret = qmp_try(ctl, cmd, args, &err);

	if (!ret)
		ctl_exitx(EXIT_FAILED, "%s", err);
	return ret;
}

static char *absolute_path(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/')
		return ctl_xstrdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		ctl_exitx(EXIT_FAILED, "cannot find the current directory: %s",
			  strerror(errno));
	return ctl_xasprintf("%s/%s", strcmp(cwd, "/") ? cwd : "", path);
}

/* Export ids and node names: a letter, then letters, digits, '-', '.', '_'. */
static bool name_wellformed(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789-._") == strlen(s);
}

static bool export_exists(json_t *exports, const char *id)
{
	size_t i;
	json_t *e;

	json_array_foreach(exports, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "id")) ?: "", id))
			return true;
	return false;
}

static bool node_exists(json_t *nodes, const char *name)
{
	size_t i;
	json_t *n;

	json_array_foreach(nodes, i, n)
		if (!strcmp(json_string_value(json_object_get(n, "node-name")) ?: "", name))
			return true;
	return false;
}

/*
 * An id from the mountpoint's file name ("/srv/vm1.raw" gives "vm1"),
 * made well-formed and unique among exports and the nodes add creates.
 */
static char *derive_id(const char *mountpoint, json_t *exports, json_t *nodes)
{
	const char *base = strrchr(mountpoint, '/');
	char stem[ID_MAX_FOR_NODES + 1];
	size_t n = 0;
	char *id = NULL;

	base = base ? base + 1 : mountpoint;
	if (!((*base >= 'a' && *base <= 'z') || (*base >= 'A' && *base <= 'Z')))
		stem[n++] = 'e';
	for (const char *p = base; *p && *p != '.' && n < ID_MAX_FOR_NODES - 3; p++)
		stem[n++] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789-_", *p) ? *p : '_';
	stem[n] = '\0';
	for (int i = 1; i < 1000; i++) {
		char *file, *fmt;
		bool taken;

		free(id);
		id = i == 1 ? ctl_xstrdup(stem) : ctl_xasprintf("%s-%d", stem, i);
		file = ctl_xasprintf("%s-file", id);
		fmt = ctl_xasprintf("%s-fmt", id);
		taken = export_exists(exports, id) || node_exists(nodes, file) ||
			node_exists(nodes, fmt);
		free(file);
		free(fmt);
		if (!taken)
			return id;
	}
	ctl_exitx(EXIT_FAILED, "cannot find a free export id for '%s': use --id", mountpoint);
}

static void block_interrupts(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

/* Undo what a failed add did, newest first; a failure here is only told. */
static void add_rollback(struct ctl *ctl, const char *fmt_node, const char *file_node,
			 const char *created_mountpoint)
{
	const char *nodes[2] = { fmt_node, file_node };
	char *err = NULL;

	for (int i = 0; i < 2; i++) {
		json_t *ret;

		if (!nodes[i])
			continue;
		ret = qmp_try(ctl, "blockdev-del",
			      json_pack("{s:s}", "node-name", nodes[i]), &err);
		if (!ret) {
			ctl_warnx("could not delete node '%s' again: %s", nodes[i], err);
			free(err);
			err = NULL;
		}
		json_decref(ret);
	}
	if (created_mountpoint && unlink(created_mountpoint) < 0)
		ctl_warnx("could not remove '%s' again: %s", created_mountpoint,
			  strerror(errno));
}

/*
 * --format auto.  The start of a raw disk is its guest's to write, and a
 * guest can make it a qcow2 header naming any host file (/etc/shadow) as
 * its backing file: a probe must never open what an explicit format would
 * not, so a probed qcow2 image that names another file is refused, and
 * the user who trusts the image says so with --format qcow2.
 */
static const char *add_probe_format(const char *image)
{
	struct probe_info pi;

	if (probe_image(image, &pi) < 0) {
		if (errno == EINVAL)
			ctl_exitx(EXIT_FAILED, "cannot probe '%s': not a regular file or a "
				  "block device", image);
		ctl_exitx(EXIT_FAILED, "cannot read '%s' to probe its format "
			  "(give --format): %s", image, strerror(errno));
	}
	if (pi.backing_file)
		ctl_exitx(EXIT_FAILED, "'%s' looks like a qcow2 image with the backing "
			  "file '%s'; a probed image may not name other files: give "
			  "--format qcow2 if you trust it", image, pi.backing_file);
	if (pi.data_file)
		ctl_exitx(EXIT_FAILED, "'%s' looks like a qcow2 image with an external "
			  "data file; a probed image may not name other files", image);
	return pi.format;	/* a string constant: pi holds nothing else */
}

static int cmd_add(struct ctl *ctl)
{
	struct parse_result *res = ctl->res;
	bool writable = res->set[OPT_WRITABLE];
	char *mountpoint = absolute_path(res->value[OPT_MOUNTPOINT]);
	char *image = NULL, *id, *err = NULL;
	char *file_node = NULL, *fmt_node = NULL;
	const char *format = NULL, *node;
	const char *created = NULL;
	json_t *exports, *nodes, *args, *ret, *added, *remote = NULL;
	struct stat st;
	bool made_file = false, made_fmt = false;

	if (res->set[OPT_ID] && !name_wellformed(res->value[OPT_ID])) {
		ctl_warnx("invalid --id '%s': use a letter, then letters, digits, '-', '.', '_'",
			  res->value[OPT_ID]);
		return EXIT_USAGE;
	}
	if (res->set[OPT_ID] && res->set[OPT_IMAGE] &&
	    strlen(res->value[OPT_ID]) > ID_MAX_FOR_NODES) {
		ctl_warnx("--id '%s' is too long: at most %d characters with --image",
			  res->value[OPT_ID], ID_MAX_FOR_NODES);
		return EXIT_USAGE;
	}
	if (res->set[OPT_IMAGE] && rbd_spec_matches(res->value[OPT_IMAGE])) {
		/* Remote: nothing to probe, raw unless --format says otherwise. */
		if (!(remote = rbd_spec_options(res->value[OPT_IMAGE], &err)))
			ctl_exitx(EXIT_USAGE, "invalid --image %s", err);
		image = ctl_xstrdup(res->value[OPT_IMAGE]);
		format = res->value[OPT_FORMAT];
		if (!format || !strcmp(format, "auto"))
			format = "raw";
	} else if (res->set[OPT_IMAGE]) {
		image = realpath(res->value[OPT_IMAGE], NULL);
		if (!image)
			ctl_exitx(EXIT_FAILED, "cannot open image '%s': %s",
				  res->value[OPT_IMAGE], strerror(errno));
		format = res->value[OPT_FORMAT];
		if (!format || !strcmp(format, "auto"))
			format = add_probe_format(image);
	}

	ctl_connect(ctl);
	/*
	 * From here on add either completes or rolls back: a Ctrl-C between
	 * blockdev-add and block-export-add must not strand the nodes, so the
	 * signals that would end exportctl wait until it is done (SIGQUIT,
	 * Ctrl-\, is left as the way out of a daemon that never answers).
	 */
	block_interrupts();
	exports = qmp_must(ctl, "query-block-exports", NULL);
	nodes = qmp_must(ctl, "query-named-block-nodes", NULL);
	id = res->set[OPT_ID] ? ctl_xstrdup(res->value[OPT_ID]) :
	     derive_id(mountpoint, exports, nodes);
	json_decref(exports);
	json_decref(nodes);

	/* A missing mountpoint is created; the daemon checks everything else. */
	if (lstat(mountpoint, &st) < 0 && errno == ENOENT) {
		int fd = open(mountpoint, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (fd < 0)
			ctl_exitx(EXIT_FAILED, "cannot create mountpoint file '%s': %s",
				  mountpoint, strerror(errno));
		close(fd);
		created = mountpoint;
	}

	if (image) {
		file_node = ctl_xasprintf("%s-file", id);
		fmt_node = ctl_xasprintf("%s-fmt", id);
		args = remote ? remote : json_pack("{s:s, s:s}", "driver",
				 stat(image, &st) == 0 && S_ISBLK(st.st_mode) ?
					   "host_device" : "file", "filename", image);
		json_object_set_new(args, "node-name", json_string(file_node));
		json_object_set_new(args, "read-only", json_boolean(!writable));
		ret = qmp_try(ctl, "blockdev-add", args, &err);
		if (!ret)
			goto fail;
		json_decref(ret);
		made_file = true;
		args = json_pack("{s:s, s:s, s:s, s:b}", "driver", format,
				 "node-name", fmt_node, "file", file_node,
				 "read-only", !writable);
		ret = qmp_try(ctl, "blockdev-add", args, &err);
		if (!ret)
			goto fail;
		json_decref(ret);
		made_fmt = true;
		node = fmt_node;
	} else {
		node = res->value[OPT_NODE];
	}

	args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "fuse", "id", id,
			 "node-name", node, "mountpoint", mountpoint, "writable", writable);
	if (res->set[OPT_GROWABLE])
		json_object_set_new(args, "growable", json_true());
	if (res->set[OPT_ALLOW_OTHER])
		json_object_set_new(args, "allow-other",
				    json_string(res->value[OPT_ALLOW_OTHER]));
	if (res->set[OPT_PASSTHROUGH])
		json_object_set_new(args, "passthrough",
				    json_string(res->value[OPT_PASSTHROUGH]));
	if (res->set[OPT_IO_URING])
		json_object_set_new(args, "io-uring", json_true());
	ret = qmp_try(ctl, "block-export-add", args, &err);
	if (!ret)
		goto fail;
	json_decref(ret);

	added = json_pack("{s:s, s:s, s:s, s:b}", "id", id, "mountpoint", mountpoint,
			  "node-name", node, "created-mountpoint", created != NULL);
	if (image) {
		json_object_set_new(added, "image", json_string(image));
		json_object_set_new(added, "format", json_string(format));
	}
	ctl->out->added(added);
	json_decref(added);
	free(id);
	free(image);
	free(mountpoint);
	free(file_node);
	free(fmt_node);
	return EXIT_OK;

fail:
	add_rollback(ctl, made_fmt ? fmt_node : NULL, made_file ? file_node : NULL, created);
	ctl_warnx("%s", err);
	free(err);
	free(id);
	free(image);
	free(mountpoint);
	free(file_node);
	free(fmt_node);
	return EXIT_FAILED;
}

static int cmd_del(struct ctl *ctl)
{
	const char *id = ctl->res->argv[0];
	int timeout = DEL_TIMEOUT_MS;
	char *err = NULL, *fmt_node, *file_node;
	const char *node = NULL;
	json_t *exports, *e, *ev, *ret, *nodes, *match;
	size_t i;
	int status = EXIT_OK;

	if (ctl->res->set[OPT_TIMEOUT])
		timeout = (int)(strtod(ctl->res->value[OPT_TIMEOUT], NULL) * 1000);
	ctl_connect(ctl);
	exports = qmp_must(ctl, "query-block-exports", NULL);
	json_array_foreach(exports, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "id")) ?: "", id))
			node = json_string_value(json_object_get(e, "node-name"));

	ret = qmp_must(ctl, "block-export-del",
		       json_pack("{s:s, s:s}", "id", id, "mode",
				 ctl->res->set[OPT_HARD] ? "hard" : "safe"));
	json_decref(ret);
	match = json_pack("{s:s}", "id", id);
	ev = qmp_client_wait_event(ctl->qmp, "BLOCK_EXPORT_DELETED", match, timeout, &err);
	json_decref(match);
	if (!ev) {
		if (err)
			ctl_exitx(EXIT_FAILED, "%s", err);
		ctl_exitx(EXIT_FAILED, "export '%s' is not gone after %d seconds "
			  "(a file still open? try --hard)", id, timeout / 1000);
	}

	/* The nodes add made for this export go with it: nobody else uses them. */
	fmt_node = ctl_xasprintf("%s-fmt", id);
	file_node = ctl_xasprintf("%s-file", id);
	if (node && !strcmp(node, fmt_node)) {
		nodes = qmp_must(ctl, "query-named-block-nodes", NULL);
		for (int k = 0; k < 2; k++) {
			const char *n = k == 0 ? fmt_node : file_node;

			if (!node_exists(nodes, n))
				continue;
			ret = qmp_try(ctl, "blockdev-del", json_pack("{s:s}", "node-name", n), &err);
			if (!ret) {
				ctl_warnx("export '%s' is deleted, but its node '%s' is not: %s",
					  id, n, err);
				free(err);
				err = NULL;
				status = EXIT_FAILED;
				break;
			}
			json_decref(ret);
		}
		json_decref(nodes);
	}
	ctl->out->deleted(ev);
	json_decref(ev);
	json_decref(exports);
	free(fmt_node);
	free(file_node);
	return status;
}

static int cmd_list(struct ctl *ctl)
{
	json_t *exports, *nodes, *stats = NULL;

	ctl_connect(ctl);
	exports = qmp_must(ctl, "query-block-exports", NULL);
	nodes = qmp_must(ctl, "query-named-block-nodes", NULL);
	if (ctl->res->set[OPT_STATS])
		stats = qmp_must(ctl, "x-query-export-stats", NULL);
	ctl->out->exports(exports, nodes, stats);
	json_decref(exports);
	json_decref(nodes);
	json_decref(stats);
	return EXIT_OK;
}

static int cmd_stats(struct ctl *ctl)
{
	json_t *stats;

	ctl_connect(ctl);
	stats = qmp_must(ctl, "x-query-export-stats",
			 json_pack("{s:s}", "id", ctl->res->argv[0]));
	ctl->out->stats(stats);
	json_decref(stats);
	return EXIT_OK;
}

static int cmd_nodes(struct ctl *ctl)
{
	json_t *nodes;

	ctl_connect(ctl);
	nodes = qmp_must(ctl, "query-named-block-nodes", NULL);
	ctl->out->nodes(nodes);
	json_decref(nodes);
	return EXIT_OK;
}

static int cmd_version(struct ctl *ctl)
{
	json_t *info;

	ctl_connect(ctl);
	info = qmp_must(ctl, "query-version", NULL);
	ctl->out->version(info);
	json_decref(info);
	return EXIT_OK;
}

static int cmd_events(struct ctl *ctl)
{
	bool follow = ctl->res->set[OPT_FOLLOW];
	long long deadline = -1;
	char *err = NULL;
	json_t *ev;

	if (ctl->res->set[OPT_TIMEOUT])
		deadline = ctl_now_ms() +
			   (long long)(strtod(ctl->res->value[OPT_TIMEOUT], NULL) * 1000);
	ctl_connect(ctl);
	for (;;) {
		int wait = -1;

		if (deadline >= 0) {
			long long left = deadline - ctl_now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		ev = qmp_client_take_event(ctl->qmp);
		if (!ev)
			ev = qmp_client_recv(ctl->qmp, wait, &err);
		if (!ev) {
			if (err)
				ctl_exitx(EXIT_FAILED, "%s", err);
			if (follow)
				return EXIT_OK;
			ctl_exitx(EXIT_FAILED, "no event within %s seconds",
				  ctl->res->value[OPT_TIMEOUT]);
		}
		if (!json_object_get(ev, "event")) {
			json_decref(ev);
			continue;
		}
		ctl->out->event(ev);
		json_decref(ev);
		if (!follow)
			return EXIT_OK;
	}
}

static int cmd_schema(struct ctl *ctl)
{
	const char *name = ctl->res->argc ? ctl->res->argv[0] : NULL;
	json_t *schema;

	ctl_connect(ctl);
	schema = qmp_must(ctl, "query-qmp-schema", NULL);
	if (name) {
		json_t *e = schema_find(schema, name);
		const char *meta = json_string_value(json_object_get(e, "meta-type"));

		if (!meta || (strcmp(meta, "command") && strcmp(meta, "event")))
			ctl_exitx(EXIT_FAILED, "the daemon has no command or event '%s' "
				  "(see 'exportctl schema')", name);
	}
	ctl->out->schema(schema, name);
	json_decref(schema);
	return EXIT_OK;
}

static int cmd_qmp(struct ctl *ctl)
{
	char *err = NULL;
	json_t *args, *ret;

	args = qmp_args_parse(ctl->res->argc - 1, ctl->res->argv + 1, &err);
	if (!args) {
		ctl_warnx("qmp: %s", err);
		free(err);
		return EXIT_USAGE;
	}
	ctl_connect(ctl);
	if (json_object_size(args) == 0) {
		json_decref(args);
		args = NULL;
	}
	ret = qmp_must(ctl, ctl->res->argv[0], args);
	ctl->out->qmp_return(ret);
	json_decref(ret);
	return EXIT_OK;
}

static int cmd_shell(struct ctl *ctl)
{
	ctl_connect(ctl);
	return shell_run(ctl->qmp, ctl->res->set[OPT_JSON], ctl->res->set[OPT_QUIET]);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: exportctl [--json] [--socket PATH] [-q] [-v] COMMAND [ARGS]\n");
	parse_show_commands(out);
	fprintf(out, "Commands may be abbreviated; 'exportctl help COMMAND' "
		"shows a command's options.\n");
}

static int cmd_help(struct ctl *ctl)
{
	const struct ctl_command *cmd = ctl->res->command;
	bool ambiguous;

	if (cmd && cmd->action == CTL_HELP && ctl->res->argc) {
		cmd = parse_match_command(ctl->res->argv[0], &ambiguous);
		if (!cmd) {
			ctl_warnx("%s command: %s", ambiguous ? "ambiguous" : "unknown",
				  ctl->res->argv[0]);
			parse_show_commands(stderr);
			return EXIT_USAGE;
		}
	}
	if (cmd && cmd->action != CTL_HELP)
		parse_show_command(stdout, cmd);
	else
		usage(stdout);
	return EXIT_OK;
}

int main(int argc, char *argv[])
{
	struct parse_result res;
	struct ctl ctl = { .res = &res };
	int status;

	if (parse_command_line(argc - 1, argv + 1, &res, stderr) < 0) {
		fprintf(stderr, "(exportctl help [COMMAND] shows the usage)\n");
		return EXIT_USAGE;
	}
	if (res.action == CTL_NONE) {
		usage(stderr);
		return EXIT_USAGE;
	}
	output_quiet = res.set[OPT_QUIET];
	ctl.out = res.set[OPT_JSON] ? &output_json : &output_text;
	ctl.socket = res.set[OPT_SOCKET] ? ctl_xstrdup(res.value[OPT_SOCKET]) :
		     default_socket();

	switch (res.action) {
	case CTL_ADD:
		status = cmd_add(&ctl);
		break;
	case CTL_DEL:
		status = cmd_del(&ctl);
		break;
	case CTL_LIST:
		status = cmd_list(&ctl);
		break;
	case CTL_STATS:
		status = cmd_stats(&ctl);
		break;
	case CTL_NODES:
		status = cmd_nodes(&ctl);
		break;
	case CTL_VERSION:
		status = cmd_version(&ctl);
		break;
	case CTL_EVENTS:
		status = cmd_events(&ctl);
		break;
	case CTL_SCHEMA:
		status = cmd_schema(&ctl);
		break;
	case CTL_QMP:
		status = cmd_qmp(&ctl);
		break;
	case CTL_SHELL:
		status = cmd_shell(&ctl);
		break;
	case CTL_HELP:
		status = cmd_help(&ctl);
		break;
	default:
		usage(stderr);
		status = EXIT_USAGE;
	}
	qmp_client_free(ctl.qmp);
	free(ctl.socket);
	fflush(stdout);
	if (ferror(stdout)) {
		fprintf(stderr, "exportctl: error writing output\n");
		return EXIT_FAILED;
	}
	return status;
}
