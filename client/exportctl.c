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
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "created-files.h"
#include "ctl-util.h"
#include "explain.h"
#include "image-url.h"
#include "rbd-spec.h"
#include "output.h"
#include "parser.h"
#include "probe.h"
#include "qmp-args.h"
#include "shell.h"
#include "rpc/qmp-client.h"
#include "rpc/xalloc.h"

#define DEFAULT_SOCKET "/run/exportd/exportd.sock"
#define DEL_TIMEOUT_MS 30000
/* A daemon that accepts but never greets is as good as absent. */
#define GREETING_TIMEOUT_MS 10000
/* Node names are at most 31 bytes in QEMU; ours add "-file" to the id. */
#define ID_MAX_FOR_NODES 26

struct ctl {
	struct parse_result *res;
	const struct output *out;
	char *socket;
	struct qmp_client *qmp;
	json_t *error;		/* {"class", "desc"} of the last command that failed */
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
	struct error *err = NULL;

	ctl->qmp = qmp_client_connect(ctl->socket, GREETING_TIMEOUT_MS,
				      ctl->res->set[OPT_VERBOSE], &why, &err);
	if (!ctl->qmp) {
		if (why == QMP_CONNECT_NOT_RUNNING) {
			fflush(stdout);
			fprintf(stderr, "exportd is not running on %s\n", ctl->socket);
			exit(EXIT_FAILED);
		}
		ctl_exitx(EXIT_FAILED, "%s", err->msg);
	}
	if (qmp_client_negotiate(ctl->qmp, &err) < 0)
		ctl_exitx(EXIT_FAILED, "%s", err->msg);
}

/* Run a command; its error is returned as an allocated message. */
static json_t *qmp_try(struct ctl *ctl, const char *cmd, json_t *args, char **errp)
{
	struct error *err = NULL;
	json_t *reply = qmp_client_execute(ctl->qmp, cmd, args, &err);
	json_t *ret;
	const char *desc;

	if (!reply) {
		*errp = ctl_xstrdup(err->msg);
		error_free(err);
		return NULL;
	}
	desc = qmp_reply_error(reply);
	if (desc) {
		*errp = ctl_xstrdup(desc);
		json_decref(ctl->error);
		ctl->error = json_incref(json_object_get(reply, "error"));
		json_decref(reply);
		return NULL;
	}
	ret = json_incref(json_object_get(reply, "return"));
	json_decref(reply);
	return ret ? ret : json_object();
}

/*
 * Tell a failure: the daemon's error as JSON on stdout (--json), then
 * "exportctl: msg" on stderr.
 */
static void ctl_report(struct ctl *ctl, const char *msg)
{
	if (ctl->error) {
		ctl->out->error(ctl->error);
		fflush(stdout);
		json_decref(ctl->error);
		ctl->error = NULL;
	}
	ctl_warnx("%s", msg);
}

/* Report err in exportctl's terms where it can (explain.c), and free it. */
static void ctl_report_explained(struct ctl *ctl, char *err,
				 const struct explain_context *cx)
{
	char *msg = explain_error(err, cx);

	ctl_report(ctl, msg);
	free(msg);
	free(err);
}

/* Run a command whose failure ends exportctl: "exportctl: <desc>", exit 1. */
static json_t *qmp_must(struct ctl *ctl, const char *cmd, json_t *args)
{
	char *err = NULL;
	json_t *ret = qmp_try(ctl, cmd, args, &err);

	if (!ret) {
		ctl_report(ctl, err);
		exit(EXIT_FAILED);
	}
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
	if (pi.vmdk_descriptor)
		ctl_exitx(EXIT_FAILED, "'%s' looks like a VMDK descriptor, which names its "
			  "extent files; a probed image may not name other files: give "
			  "--format vmdk if you trust it", image);
	return pi.format;	/* a string constant: pi holds nothing else */
}

/*
 * The passphrase of an encrypted image never travels on exportctl's
 * command line: --key-secret names a secret object the daemon already
 * holds (from a file only root reads), and the format node gets QEMU's
 * option for it.
 */
static void add_key_secret(json_t *args, const char *format, const char *secret)
{
	if (!secret)
		return;
	if (!strcmp(format, "qcow2"))
		json_object_set_new(args, "encrypt", json_pack("{s:s, s:s}", "format", "luks",
							     "key-secret", secret));
	else
		json_object_set_new(args, "key-secret", json_string(secret));
}

/* The nodes add made for an export, to roll back or to delete with it. */
struct add_nodes {
	char *file_node, *fmt_node;	/* names, NULL when not made */
};

/*
 * The image-to-nodes step of add: the protocol node that opens image (a
 * file or a block device) and the format node on it, named ID-file and
 * ID-fmt (del removes them by these names).  Returns the node to export,
 * or NULL with *errp (the daemon's text); what was made is in *made.
 */
static const char *add_image_nodes(struct ctl *ctl, const char *id, const char *image,
				   json_t *url_node, const char *format, const char *key_secret,
				   bool writable, struct add_nodes *made, char **errp)
{
	char *file_node = ctl_xasprintf("%s-file", id);
	char *fmt_node = ctl_xasprintf("%s-fmt", id);
	struct stat st;
	json_t *args, *ret;

	/* A URL or rbd: spec names the protocol node (nbd, http(s), rbd) itself. */
	if (url_node) {
		args = json_pack("{s:s, s:b}", "node-name", file_node, "read-only", !writable);
		json_object_update(args, url_node);
	} else {
		args = json_pack("{s:s, s:s, s:s, s:b}",
				 "driver", stat(image, &st) == 0 && S_ISBLK(st.st_mode) ?
					   "host_device" : "file",
				 "node-name", file_node, "filename", image,
				 "read-only", !writable);
	}
	ret = qmp_try(ctl, "blockdev-add", args, errp);
	if (!ret)
		goto fail;
	json_decref(ret);
	made->file_node = file_node;
	file_node = NULL;
	args = json_pack("{s:s, s:s, s:s, s:b}", "driver", format,
			 "node-name", fmt_node, "file", made->file_node,
			 "read-only", !writable);
	add_key_secret(args, format, key_secret);
	ret = qmp_try(ctl, "blockdev-add", args, errp);
	if (!ret)
		goto fail;
	json_decref(ret);
	made->fmt_node = fmt_node;
	return made->fmt_node;
fail:
	free(file_node);
	free(fmt_node);
	return NULL;
}

/* block-export-add of node at mountpoint, with add's options. */
static int add_export(struct ctl *ctl, const char *id, const char *node,
		      const struct add_nodes *made, const char *mountpoint, bool writable,
		      char **errp)
{
	struct parse_result *res = ctl->res;
	json_t *args, *ret, *owned = json_array();

	args = json_pack("{s:s, s:s, s:s, s:s, s:b}", "type", "fuse", "id", id,
			 "node-name", node, "mountpoint", mountpoint, "writable", writable);
	/* The nodes made here end with the export, however it ends. */
	if (made->fmt_node)
		json_array_append_new(owned, json_string(made->fmt_node));
	if (made->file_node)
		json_array_append_new(owned, json_string(made->file_node));
	if (json_array_size(owned))
		json_object_set(args, "x-delete-nodes", owned);
	json_decref(owned);
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
	ret = qmp_try(ctl, "block-export-add", args, errp);
	if (!ret)
		return -1;
	json_decref(ret);
	return 0;
}

static int cmd_add(struct ctl *ctl)
{
	struct parse_result *res = ctl->res;
	bool writable = res->set[OPT_WRITABLE];
	char *mountpoint = absolute_path(res->value[OPT_MOUNTPOINT]);
	char *image = NULL, *id, *err = NULL;
	struct add_nodes made = { NULL, NULL };
	const char *format = NULL, *node;
	const char *created = NULL;
	json_t *exports, *nodes, *added, *url_node = NULL;
	struct stat st, created_st;
	int status = EXIT_OK;

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
	if (res->set[OPT_IMAGE] && image_is_url(res->value[OPT_IMAGE])) {
		/* A remote image: not probed, raw unless --format says otherwise. */
		if (!(url_node = image_url_node(res->value[OPT_IMAGE], &err)))
			ctl_exitx(EXIT_FAILED, "%s", err);
		image = ctl_xstrdup(res->value[OPT_IMAGE]);
		format = res->value[OPT_FORMAT] && strcmp(res->value[OPT_FORMAT], "auto") ?
			 res->value[OPT_FORMAT] : "raw";
	} else if (res->set[OPT_IMAGE] && rbd_spec_matches(res->value[OPT_IMAGE])) {
		/* A Ceph image (rbd:pool/image...): the same, as QEMU spells it. */
		if (!(url_node = rbd_spec_options(res->value[OPT_IMAGE], &err)))
			ctl_exitx(EXIT_USAGE, "invalid --image %s", err);
		image = ctl_xstrdup(res->value[OPT_IMAGE]);
		format = res->value[OPT_FORMAT] && strcmp(res->value[OPT_FORMAT], "auto") ?
			 res->value[OPT_FORMAT] : "raw";
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

	/* A missing mountpoint is created; the daemon checks everything else. */
	if (lstat(mountpoint, &st) < 0 && errno == ENOENT) {
		int fd = open(mountpoint, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

		if (fd < 0)
			ctl_exitx(EXIT_FAILED, "cannot create mountpoint file '%s': %s",
				  mountpoint, strerror(errno));
		if (fstat(fd, &created_st) < 0)
			ctl_exitx(EXIT_FAILED, "cannot stat '%s': %s", mountpoint,
				  strerror(errno));
		close(fd);
		created = mountpoint;
	}

	node = image ? add_image_nodes(ctl, id, image, url_node, format,
				       res->value[OPT_KEY_SECRET], writable, &made, &err) :
	       res->value[OPT_NODE];
	if (!node || add_export(ctl, id, node, &made, mountpoint, writable, &err) < 0) {
		struct explain_context cx = { .id = id, .image = image, .nodes = nodes,
					      .exports = exports };

		add_rollback(ctl, made.fmt_node, made.file_node, created);
		ctl_report_explained(ctl, err, &cx);
		status = EXIT_FAILED;
		goto out;
	}
	/* del removes the file it created; failing to note it only keeps the file. */
	if (!created)
		created_file_forget(ctl->socket, id);
	else if (created_file_note(ctl->socket, id, created, created_st.st_dev,
					 created_st.st_ino, &err) < 0) {
		ctl_warnx("%s: 'exportctl del %s' will leave the mountpoint file", err, id);
		free(err);
	}

	added = json_pack("{s:s, s:s, s:s, s:b}", "id", id, "mountpoint", mountpoint,
			  "node-name", node, "created-mountpoint", created != NULL);
	if (image) {
		json_object_set_new(added, "image", json_string(image));
		json_object_set_new(added, "format", json_string(format));
	}
	ctl->out->added(added);
	json_decref(added);
out:
	json_decref(exports);
	json_decref(nodes);
	free(id);
	free(image);
	json_decref(url_node);
	free(mountpoint);
	free(made.file_node);
	free(made.fmt_node);
	return status;
}

/* del of an export that already ended: delete ID-fmt, ID-file if they exist. */
static bool del_leftover_nodes(struct ctl *ctl, const char *id, int *status)
{
	char *names[2] = { ctl_xasprintf("%s-fmt", id), ctl_xasprintf("%s-file", id) };
	json_t *nodes = qmp_must(ctl, "query-named-block-nodes", NULL), *ret, *ev;
	bool found = false;
	char *err = NULL;

	*status = EXIT_OK;
	for (int k = 0; k < 2; k++) {
		if (!node_exists(nodes, names[k]))
			continue;
		found = true;
		ret = qmp_try(ctl, "blockdev-del", json_pack("{s:s}", "node-name", names[k]), &err);
		if (!ret) {
			ctl_warnx("export '%s' had already ended, but its node '%s' cannot be "
				  "deleted: %s", id, names[k], err);
			free(err);
			err = NULL;
			*status = EXIT_FAILED;
			break;
		}
		json_decref(ret);
	}
	if (found && *status == EXIT_OK) {
		char *removed;

		ctl_warnx("export '%s' had already ended; its nodes are deleted now", id);
		removed = created_file_remove(ctl->socket, id, &err);
		if (err) {
			ctl_warnx("export '%s' is deleted, but %s", id, err);
			free(err);
			*status = EXIT_FAILED;
		}
		ev = json_pack("{s:s, s:{s:s}}", "event", "BLOCK_EXPORT_DELETED", "data", "id", id);
		ctl->out->deleted(ev, removed);
		free(removed);
		json_decref(ev);
	}
	json_decref(nodes);
	free(names[0]);
	free(names[1]);
	return found;
}

static int cmd_del(struct ctl *ctl)
{
	const char *id = ctl->res->argv[0];
	int timeout = DEL_TIMEOUT_MS;
	char *err = NULL, *fmt_node, *file_node, *removed;
	struct error *wait_err = NULL;
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

	/*
	 * Gone already (an external umount, a dead connection) with the nodes
	 * add made for it left (an export added without x-delete-nodes):
	 * deleting them is what the user asked for.
	 */
	if (!node && del_leftover_nodes(ctl, id, &status)) {
		json_decref(exports);
		return status;
	}
	ret = qmp_try(ctl, "block-export-del",
		      json_pack("{s:s, s:s}", "id", id, "mode",
				ctl->res->set[OPT_HARD] ? "hard" : "safe"), &err);
	if (!ret) {
		struct explain_context cx = { .id = id, .exports = exports };

		ctl_report_explained(ctl, err, &cx);
		json_decref(exports);
		return EXIT_FAILED;
	}
	json_decref(ret);
	match = json_pack("{s:s}", "id", id);
	ev = qmp_client_wait_event(ctl->qmp, "BLOCK_EXPORT_DELETED", match, timeout,
				   &wait_err);
	json_decref(match);
	if (!ev) {
		if (wait_err)
			ctl_exitx(EXIT_FAILED, "%s", wait_err->msg);
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
	removed = created_file_remove(ctl->socket, id, &err);
	if (err) {
		ctl_warnx("export '%s' is deleted, but %s", id, err);
		free(err);
		status = EXIT_FAILED;
	}
	ctl->out->deleted(ev, removed);
	free(removed);
	json_decref(ev);
	json_decref(exports);
	free(fmt_node);
	free(file_node);
	return status;
}

/* The terminal's width when stdout is one, else 0: a pipe gets whole cells. */
static int terminal_width(void)
{
	struct winsize ws;

	if (!isatty(STDOUT_FILENO) || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 ||
	    ws.ws_col == 0)
		return 0;
	return ws.ws_col;
}

static int cmd_list(struct ctl *ctl)
{
	json_t *exports, *nodes, *stats = NULL;

	if (ctl->res->set[OPT_COLUMNS]) {
		char *copy = ctl_xstrdup(ctl->res->value[OPT_COLUMNS]), *save = NULL;

		for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
			if (output_list_column(w) < 0) {
				ctl_warnx("list: unknown column '%s' in -o (valid: see "
					  "'exportctl help list')", w);
				free(copy);
				return EXIT_USAGE;
			}
		}
		free(copy);
		output_columns = ctl->res->value[OPT_COLUMNS];
	}
	output_wide = ctl->res->set[OPT_WIDE];
	output_width = terminal_width();

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

/* A positive number of seconds from an option, or exit 2 saying which. */
static double option_seconds(struct ctl *ctl, enum ctl_opt opt, const char *name)
{
	const char *v = ctl->res->value[opt];
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d > 0) || d > 1e6) {
		ctl_warnx("invalid --%s '%s': give a number of seconds above 0", name, v);
		exit(EXIT_USAGE);
	}
	return d;
}

static void sleep_seconds(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Per operation, the requests and bytes per second between two samples of
 * one export's x-query-export-stats: {"id", "interval-s", "ops": {op:
 * {"requests-per-s", "mib-per-s"}}}.
 */
static json_t *stats_rates(json_t *before, json_t *after, double seconds)
{
	json_t *ops_before = json_object_get(json_array_get(before, 0), "ops");
	json_t *a = json_array_get(after, 0);
	json_t *ops = json_object(), *o;
	const char *op;

	json_object_foreach(json_object_get(a, "ops"), op, o) {
		json_t *b = json_object_get(ops_before, op);
		double req = (double)(json_integer_value(json_object_get(o, "requests")) -
				      json_integer_value(json_object_get(b, "requests")));
		double bytes = (double)(json_integer_value(json_object_get(o, "bytes")) -
					json_integer_value(json_object_get(b, "bytes")));

		json_object_set_new(ops, op, json_pack("{s:f, s:f}",
			"requests-per-s", req / seconds,
			"mib-per-s", bytes / seconds / (1024.0 * 1024.0)));
	}
	return json_pack("{s:O, s:f, s:O?, s:o}", "id", json_object_get(a, "id"),
			 "interval-s", seconds, "uncounted", json_object_get(a, "uncounted"),
			 "ops", ops);
}

static int cmd_stats(struct ctl *ctl)
{
	json_t *stats, *args = json_pack("{s:s}", "id", ctl->res->argv[0]);
	long count = -1;
	double interval;

	if (ctl->res->set[OPT_COUNT]) {
		char *end;

		count = strtol(ctl->res->value[OPT_COUNT], &end, 10);
		if (*end || count < 1) {
			ctl_warnx("invalid --count '%s': give a whole number above 0",
				  ctl->res->value[OPT_COUNT]);
			json_decref(args);
			return EXIT_USAGE;
		}
		if (!ctl->res->set[OPT_INTERVAL]) {
			ctl_warnx("stats: --count goes with --interval");
			json_decref(args);
			return EXIT_USAGE;
		}
	}
	ctl_connect(ctl);
	stats = qmp_must(ctl, "x-query-export-stats", json_incref(args));
	if (!ctl->res->set[OPT_INTERVAL]) {
		ctl->out->stats(stats);
		json_decref(stats);
		json_decref(args);
		return EXIT_OK;
	}
	/* Rates over each interval, measured by the daemon's counters. */
	interval = option_seconds(ctl, OPT_INTERVAL, "interval");
	while (count < 0 || count-- > 0) {
		long long start = ctl_now_ms();
		json_t *next, *rates;

		sleep_seconds(interval);
		next = qmp_must(ctl, "x-query-export-stats", json_incref(args));
		rates = stats_rates(stats, next, (double)(ctl_now_ms() - start) / 1000.0);
		ctl->out->rates(rates);
		fflush(stdout);
		json_decref(rates);
		json_decref(stats);
		stats = next;
	}
	json_decref(stats);
	json_decref(args);
	return EXIT_OK;
}

static json_t *export_by_id(json_t *exports, const char *id)
{
	size_t i;
	json_t *e;

	json_array_foreach(exports, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "id")) ?: "", id))
			return e;
	return NULL;
}

static int cmd_info(struct ctl *ctl)
{
	const char *id = ctl->res->argv[0];
	json_t *exports, *nodes, *stats, *e;

	ctl_connect(ctl);
	exports = qmp_must(ctl, "query-block-exports", NULL);
	e = export_by_id(exports, id);
	if (!e) {
		json_decref(exports);
		ctl_exitx(EXIT_FAILED, "no export '%s' (exportctl list shows them)", id);
	}
	nodes = qmp_must(ctl, "query-named-block-nodes", NULL);
	stats = qmp_must(ctl, "x-query-export-stats", json_pack("{s:s}", "id", id));
	ctl->out->info(e, nodes, json_array_get(stats, 0));
	json_decref(stats);
	json_decref(nodes);
	json_decref(exports);
	return EXIT_OK;
}

/*
 * Until the export is gone (BLOCK_EXPORT_DELETED, or it is not there at
 * all) or, with --mounted, until it exists: no event says that, so ask
 * every 100 ms, which is what a person waiting at a prompt can tell.
 */
static int cmd_wait(struct ctl *ctl)
{
	const char *id = ctl->res->argv[0];
	long long deadline = -1;
	struct error *err = NULL;
	json_t *exports, *match, *ev;
	bool there;

	if (ctl->res->set[OPT_TIMEOUT])
		deadline = ctl_now_ms() +
			   (long long)(option_seconds(ctl, OPT_TIMEOUT, "timeout") * 1000);
	ctl_connect(ctl);
	for (;;) {
		exports = qmp_must(ctl, "query-block-exports", NULL);
		there = export_by_id(exports, id) != NULL;
		json_decref(exports);
		if (!ctl->res->set[OPT_MOUNTED] || there)
			break;
		if (deadline >= 0 && ctl_now_ms() >= deadline)
			ctl_exitx(EXIT_FAILED, "export '%s' does not exist after %s seconds",
				  id, ctl->res->value[OPT_TIMEOUT]);
		sleep_seconds(0.1);
	}
	if (ctl->res->set[OPT_MOUNTED] || !there)
		return EXIT_OK;
	/* Connected before the query: a deletion since then is a queued event. */
	match = json_pack("{s:s}", "id", id);
	ev = qmp_client_wait_event(ctl->qmp, "BLOCK_EXPORT_DELETED", match,
				   deadline < 0 ? -1 : (int)MAX(deadline - ctl_now_ms(), 0),
				   &err);
	json_decref(match);
	if (!ev) {
		if (err)
			ctl_exitx(EXIT_FAILED, "%s", err->msg);
		ctl_exitx(EXIT_FAILED, "export '%s' still exists after %s seconds", id,
			  ctl->res->value[OPT_TIMEOUT]);
	}
	json_decref(ev);
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

/*
 * Both versions; exportctl's own is shown even when the daemon is not
 * running (then exit 1, saying so), as that is when one asks.
 */
static int cmd_version(struct ctl *ctl)
{
	enum qmp_connect_error why;
	struct error *err = NULL;
	json_t *info;

	ctl->qmp = qmp_client_connect(ctl->socket, GREETING_TIMEOUT_MS,
				      ctl->res->set[OPT_VERBOSE], &why, &err);
	if (!ctl->qmp || qmp_client_negotiate(ctl->qmp, &err) < 0) {
		ctl->out->version(NULL);
		fflush(stdout);
		if (why == QMP_CONNECT_NOT_RUNNING)
			fprintf(stderr, "exportd is not running on %s\n", ctl->socket);
		else
			ctl_warnx("%s", err->msg);
		error_free(err);
		return EXIT_FAILED;
	}
	info = qmp_must(ctl, "query-version", NULL);
	ctl->out->version(info);
	json_decref(info);
	return EXIT_OK;
}

static int cmd_events(struct ctl *ctl)
{
	bool follow = ctl->res->set[OPT_FOLLOW];
	long long deadline = -1;
	struct error *err = NULL;
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
				ctl_exitx(EXIT_FAILED, "%s", err->msg);
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
	} else {
		json_t *typed = qmp_args_typed(ctl->res->argv[0], args);

		json_decref(args);
		args = typed;
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
	fprintf(out, "usage: exportctl [--json] [--socket PATH] [-q] [-v] COMMAND [ARGS]\n"
		     "       exportctl --version\n");
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
	if (res.action == CTL_NONE && !res.set[OPT_VERSION]) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (res.set[OPT_VERSION] && res.action != CTL_HELP) {
		printf("exportctl %s\n", EXPORTD_VERSION);
		return EXIT_OK;
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
	case CTL_INFO:
		status = cmd_info(&ctl);
		break;
	case CTL_WAIT:
		status = cmd_wait(&ctl);
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
