/*
 * exportd.c: main(): command line, logging, daemonizing, signals, the
 * QMP socket(s), start-up block nodes and exports, and the main loop.
 *
 * The command line of qemu-storage-daemon works too (--blockdev, --export,
 * --chardev socket + --monitor, --object iothread, --pidfile,
 * --daemonize), validated by the same schema as QMP, so that a qsd command
 * line runs unchanged with exportd.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "monitor/dispatch.h"
#include "rpc/error.h"
#include "export/export.h"
#include "iothread/iothread.h"
#include "log.h"
#include "main-loop.h"
#include "monitor/monitor.h"
#include "monitor/state-file.h"
#include "object/object.h"
#include "pidfile.h"
#include "runtime-dir.h"
#include "rpc/schema.h"
#include "sd-notify.h"
#include "shutdown.h"
#include "util.h"

enum {
	OPT_SOCKET = 256, OPT_PIDFILE, OPT_LOG_LEVEL, OPT_MAX_MESSAGE, OPT_MAX_CONNECTIONS,
	OPT_BLOCKDEV,
	OPT_EXPORT, OPT_CHARDEV, OPT_MONITOR, OPT_OBJECT, OPT_LOG_FILE, OPT_STATE_FILE,
};

/* Start-up actions, kept in command-line order as qsd processes them. */
struct startup_item {
	int kind;		/* OPT_OBJECT, OPT_BLOCKDEV, OPT_EXPORT, OPT_MONITOR, OPT_SOCKET */
	char *arg;
};

struct options {
	bool daemonize;
	char *pidfile;		/* absolute: --daemonize leaves the caller's directory */
	char *log_file;		/* absolute */
	char *state_file;	/* absolute */
	int log_level;
	struct startup_item *items;
	size_t n_items;
	json_t *chardevs;	/* id -> path, from --chardev socket,... */
	bool have_socket;	/* --socket or --monitor */
	bool socket_given;	/* --socket */
	bool log_level_given;	/* --log-level */
	bool qsd_options;	/* any of qsd's --blockdev, --export, --chardev, ... */
};

/* Where a daemon logs when no syslog listens and no --log-file was given. */
#define LOG_FALLBACK_FILE "/var/log/exportd.log"

static int ready_fd = -1;	/* daemonize: tells the parent how start-up went */
static int exit_status;
static struct pidfile *pidfile;

static void usage(FILE *f)
{
	fprintf(f,
"Usage: exportd [options]\n"
"Present disk images as plain files through FUSE, managed over QMP.\n"
"\n"
"  --socket PATH            QMP socket (default /run/exportd/exportd.sock as root,\n"
"                           $XDG_RUNTIME_DIR/exportd.sock otherwise; none by\n"
"                           default with qemu-storage-daemon options)\n"
"  --daemonize              run in the background once started, in '/' (logs to\n"
"                           syslog, or to /var/log/exportd.log without one)\n"
"  --pidfile FILE           write the daemon's PID to FILE\n"
"  --log-file PATH          log to PATH (reopened on SIGHUP) instead of stderr\n"
"                           or syslog\n"
"  --state-file PATH        record QMP-made nodes and exports in PATH and\n"
"                           re-create them at start (restarts, crashes)\n"
"  --log-level LEVEL        error, warn, info (default) or debug (default warn\n"
"                           with qemu-storage-daemon options and no --socket)\n"
"  --max-message-size N     largest QMP message accepted (default 16M)\n"
"  --max-connections N      most QMP clients served at once (default 64)\n"
"  --blockdev OPTIONS       create a block node at start-up (key=value or JSON,\n"
"                           as QMP blockdev-add; 'raw,...' means driver=raw)\n"
"  --export OPTIONS         create an export at start-up (as block-export-add;\n"
"                           'fuse,...' means type=fuse)\n"
"  --chardev socket,id=ID,path=PATH[,server=on][,wait=off]\n"
"  --monitor [chardev=]ID   qemu-storage-daemon style QMP socket\n"
"  --object OPTIONS         create an object at start-up (as QMP object-add):\n"
"                           secret,id=ID,file=PATH (a key; or data=...,\n"
"                           format=base64), iothread,id=ID\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"Example:\n"
"  exportd --blockdev driver=file,node-name=f,filename=disk.img \\\n"
"          --export type=fuse,id=e,node-name=f,mountpoint=disk.raw,writable=on\n");
}

/*
 * path made absolute against the current directory, which --daemonize
 * leaves for "/": the files the daemon reopens or removes later (pidfile,
 * socket, log file) must still be the ones the caller named.
 */
static char *path_absolute(const char *path)
{
	char *cwd, *abs;

	if (path[0] == '/')
		return xstrdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		fatal("cannot find the current directory to resolve '%s'", path);
	abs = xasprintf("%s/%s", strcmp(cwd, "/") ? cwd : "", path);
	free(cwd);
	return abs;
}

static void startup_add(struct options *o, int kind, const char *arg)
{
	o->items = xrealloc(o->items, (o->n_items + 1) * sizeof(*o->items));
	o->items[o->n_items].kind = kind;
	o->items[o->n_items].arg = xstrdup(arg);
	o->n_items++;
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "exportd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'exportd --help' for more information.\n");
	exit(2);
}

/*
 * --chardev socket,id=m,path=S,server=on,wait=off: remember id -> path.
 * qsd parses it as QemuOpts whose implied first key is "backend".
 */
static void parse_chardev(struct options *o, const char *arg)
{
	struct error *err = NULL;
	json_t *opts, *id, *path, *backend, *v;
	const char *key;
	bool keyval;

	opts = keyval_parse(arg, "backend", &keyval, &err);
	if (!opts)
		usage_error("--chardev: %s", err->msg);
	backend = json_object_get(opts, "backend");
	if (!json_is_string(backend) || strcmp(json_string_value(backend), "socket"))
		usage_error("--chardev: only 'socket' chardevs are supported: '%s'", arg);
	id = json_object_get(opts, "id");
	path = json_object_get(opts, "path");
	if (!json_is_string(id) || !json_is_string(path))
		usage_error("--chardev: 'id' and 'path' are required: '%s'", arg);
	json_object_foreach(opts, key, v) {
		if (!strcmp(key, "backend") || !strcmp(key, "id") || !strcmp(key, "path"))
			continue;
		if (!strcmp(key, "server") && json_is_string(v) &&
		    (!strcmp(json_string_value(v), "on") || !strcmp(json_string_value(v), "true")))
			continue;
		if (!strcmp(key, "wait") && json_is_string(v))
			continue;
		usage_error("--chardev: unsupported option '%s' (exportd chardevs are "
			    "server sockets)", key);
	}
	{
		char *abs = path_absolute(json_string_value(path));

		json_object_set_new(o->chardevs, json_string_value(id), json_string(abs));
		free(abs);
	}
	json_decref(opts);
}

/*
 * --monitor [chardev=]ID[,mode=control][,pretty=off]: a QMP socket on a
 * chardev given before.  qsd parses it as QemuOpts whose implied first
 * key is "chardev".
 */
static void parse_monitor(struct options *o, const char *arg)
{
	struct error *err = NULL;
	json_t *opts, *id, *v;
	const char *key;
	bool keyval;

	opts = keyval_parse(arg, "chardev", &keyval, &err);
	if (!opts)
		usage_error("--monitor: %s", err->msg);
	id = json_object_get(opts, "chardev");
	if (!json_is_string(id))
		usage_error("--monitor: 'chardev' is required: '%s'", arg);
	json_object_foreach(opts, key, v) {
		const char *val = json_is_string(v) ? json_string_value(v) : "";

		if (!strcmp(key, "chardev") || (!strcmp(key, "mode") && !strcmp(val, "control")) ||
		    (!strcmp(key, "pretty") && !strcmp(val, "off")))
			continue;
		usage_error("--monitor: unsupported option '%s' (exportd monitors are QMP, "
			    "mode=control, pretty=off): '%s'", key, arg);
	}
	if (!json_object_get(o->chardevs, json_string_value(id)))
		usage_error("--monitor: chardev '%s' not found (give --chardev first)",
			    json_string_value(id));
	startup_add(o, OPT_MONITOR, json_string_value(id));
	o->have_socket = true;
	json_decref(opts);
}

/* qsd's options and none of exportd's own socket options. */
static bool started_as_qsd(const struct options *o)
{
	return o->qsd_options && !o->socket_given;
}

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "daemonize", no_argument, NULL, 'd' },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "log-file", required_argument, NULL, OPT_LOG_FILE },
		{ "state-file", required_argument, NULL, OPT_STATE_FILE },
		{ "max-message-size", required_argument, NULL, OPT_MAX_MESSAGE },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
		{ "blockdev", required_argument, NULL, OPT_BLOCKDEV },
		{ "export", required_argument, NULL, OPT_EXPORT },
		{ "chardev", required_argument, NULL, OPT_CHARDEV },
		{ "monitor", required_argument, NULL, OPT_MONITOR },
		{ "object", required_argument, NULL, OPT_OBJECT },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->log_level = LOG_LEVEL_INFO;
	o->chardevs = json_object();
	while ((c = getopt_long(argc, argv, "dhV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: {
			char *abs = path_absolute(optarg);

			startup_add(o, OPT_SOCKET, abs);
			free(abs);
			o->have_socket = true;
			o->socket_given = true;
			break;
		}
		case 'd':
			o->daemonize = true;
			break;
		case OPT_PIDFILE:
			free(o->pidfile);
			o->pidfile = path_absolute(optarg);
			break;
		case OPT_STATE_FILE:
			free(o->state_file);
			o->state_file = path_absolute(optarg);
			break;
		case OPT_LOG_FILE:
			free(o->log_file);
			o->log_file = path_absolute(optarg);
			break;
		case OPT_LOG_LEVEL:
			o->log_level_given = true;
			o->log_level = log_level_parse(optarg);
			if (o->log_level < 0)
				usage_error("--log-level: '%s' is not one of error, warn, info, debug",
					    optarg);
			break;
		case OPT_MAX_MESSAGE: {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 0);

			if (*end == 'K' || *end == 'k')
				v <<= 10, end++;
			else if (*end == 'M' || *end == 'm')
				v <<= 20, end++;
			if (*end || v < 1024 || v > (1ull << 30))
				usage_error("--max-message-size: '%s' is not a size between 1K and 1G",
					    optarg);
			monitor_set_max_message_size((size_t)v);
			break;
		}
		case OPT_MAX_CONNECTIONS: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (end == optarg || *end || v < 1 || v > 65536)
				usage_error("--max-connections: '%s' is not a number between 1 and 65536",
					    optarg);
			monitor_set_max_connections((unsigned int)v);
			break;
		}
		case OPT_BLOCKDEV:
		case OPT_EXPORT:
			startup_add(o, c, optarg);
			o->qsd_options = true;
			break;
		case OPT_CHARDEV:
			parse_chardev(o, optarg);
			o->qsd_options = true;
			break;
		case OPT_MONITOR:
			parse_monitor(o, optarg);
			o->qsd_options = true;
			break;
		case OPT_OBJECT:
			startup_add(o, OPT_OBJECT, optarg);
			o->qsd_options = true;
			break;
		case 'V':
			printf("exportd %s\n", EXPORTD_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'exportd --help' for more information.\n");
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	/*
	 * Started as qemu-storage-daemon (its options, no --socket), exportd
	 * behaves as qsd: silent on stderr unless something goes wrong, so
	 * that tools and test suites that compare qsd's output see none of
	 * ours.  --log-level or --socket make it exportd again.
	 */
	if (started_as_qsd(o) && !o->log_level_given)
		o->log_level = LOG_LEVEL_WARN;
}

/*
 * $EXPORTD_SOCKET, which exportctl reads too, so that one variable points
 * both at a daemon of one's own; else /run/exportd/exportd.sock as root,
 * $XDG_RUNTIME_DIR/exportd.sock otherwise.
 */
static char *default_socket_path(struct error **errp)
{
	const char *env = getenv("EXPORTD_SOCKET");
	const char *xdg;

	if (env && *env)
		return xstrdup(env);
	if (geteuid() == 0) {
		if (runtime_dir_ensure("/run/exportd", errp) < 0)
			return NULL;
		return xstrdup("/run/exportd/exportd.sock");
	}
	xdg = getenv("XDG_RUNTIME_DIR");
	if (!xdg || !*xdg) {
		error_setg(errp, "XDG_RUNTIME_DIR is not set: give --socket PATH");
		return NULL;
	}
	return xasprintf("%s/exportd.sock", xdg);
}

/* The QMP type that a start-up option takes, and its implied first key. */
static const struct {
	int kind;
	const char *option, *type, *implied_key;
} startup_kinds[] = {
	{ OPT_OBJECT, "--object", "ObjectOptions", "qom-type" },
	{ OPT_BLOCKDEV, "--blockdev", "BlockdevOptions", "driver" },
	{ OPT_EXPORT, "--export", "BlockExportOptions", "type" },
};

static int startup_create(int kind, const char *arg, struct error **errp)
{
	const char *opt = NULL, *type = NULL, *implied = NULL;
	json_t *raw, *opts;
	bool keyval;
	int rc;

	for (size_t i = 0; i < sizeof(startup_kinds) / sizeof(startup_kinds[0]); i++) {
		if (startup_kinds[i].kind == kind) {
			opt = startup_kinds[i].option;
			type = startup_kinds[i].type;
			implied = startup_kinds[i].implied_key;
		}
	}
	/* qsd's implied keys: "--blockdev raw,..." is driver=raw. */
	raw = keyval_parse(arg, implied, &keyval, errp);
	if (!raw) {
		error_prepend(errp, "%s", opt);
		return -1;
	}
	opts = schema_validate_type(schema_builtin(), type, raw, keyval, errp);
	json_decref(raw);
	if (!opts) {
		error_prepend(errp, "%s", opt);
		return -1;
	}
	if (kind == OPT_OBJECT)
		rc = object_add(opts, errp);
	else if (kind == OPT_BLOCKDEV)
		rc = blockdev_add(opts, errp);
	else
		rc = export_add(opts, errp);
	json_decref(opts);
	if (rc < 0)
		error_prepend(errp, "%s", opt);
	return rc;
}

static int startup(struct options *o, int n_listen_fds, struct error **errp)
{
	/* First: a second daemon with our pidfile must not touch anything. */
	if (o->pidfile) {
		pidfile = pidfile_create(o->pidfile, errp);
		if (!pidfile)
			return -1;
	}
	/*
	 * qsd has no QMP socket but those its command line asks for: several
	 * such daemons must be able to run at once (QEMU's iotests start
	 * them so), which one default socket would forbid.
	 */
	/* What exportd served before it was restarted (or killed). */
	if (state_file_restore(errp) < 0)
		return -1;
	/* Sockets systemd passed (exportd.socket) stand for the default one. */
	for (int i = 0; i < n_listen_fds; i++)
		if (monitor_listen_fd(SD_LISTEN_FDS_START + i, errp) < 0)
			return -1;
	if (!o->have_socket && !started_as_qsd(o) && n_listen_fds == 0) {
		char *path = default_socket_path(errp);
		int rc;

		if (!path)
			return -1;
		rc = monitor_listen(path, errp);
		free(path);
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; i < o->n_items; i++) {
		struct startup_item *it = &o->items[i];
		int rc;

		switch (it->kind) {
		case OPT_SOCKET:
			rc = monitor_listen(it->arg, errp);
			break;
		case OPT_MONITOR:
			rc = monitor_listen(json_string_value(json_object_get(o->chardevs, it->arg)),
					    errp);
			break;
		default:
			rc = startup_create(it->kind, it->arg, errp);
			break;
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/*
 * Every QMP client and every export holds descriptors, and the soft limit
 * is often 1024 while the hard one is far higher: take what we may.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t old;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot read the open file limit");
		return;
	}
	if (rl.rlim_cur == rl.rlim_max)
		return;
	old = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open file limit from %llu to %llu",
			 (unsigned long long)old, (unsigned long long)rl.rlim_max);
	else
		log_debug("open file limit raised from %llu to %llu",
			  (unsigned long long)old, (unsigned long long)rl.rlim_max);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (sig == SIGHUP) {
		log_info("SIGHUP: reopening the log");
		log_reopen();
		log_info("log reopened (SIGHUP)");
		return;
	}
	/* As QEMU on a signal; a second signal while exiting says nothing. */
	if (!shutdown_requested())
		qmp_send_event("SHUTDOWN", json_pack("{s:b, s:s}", "guest", 0,
						     "reason", "host-signal"));
	shutdown_request(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/*
 * Fork; the parent waits until the child says start-up succeeded (a 0
 * byte) or failed, so errors still reach the terminal and the exit status.
 */
static void daemonize_start(void)
{
	int pfd[2];
	pid_t pid;
	char status;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		fatal("pipe");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &status, 1) != 1)
			_exit(1);
		_exit(status);
	}
	close(pfd[0]);
	ready_fd = pfd[1];
	if (setsid() < 0)
		fatal("setsid");
}

static void daemonize_finish(int level)
{
	char ok = 0;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* As daemons do: hold no directory that someone may want to unmount. */
	if (chdir("/") < 0)
		log_warn("cannot change directory to '/'");
	if (!log_file()) {
		if (log_syslog_available()) {
			log_init(false, level);
		} else {
			struct error *err = NULL;
			char *path = geteuid() == 0 ? xstrdup(LOG_FALLBACK_FILE) :
				     xasprintf("%s/exportd.log", getenv("XDG_RUNTIME_DIR") ?
					       getenv("XDG_RUNTIME_DIR") : "/tmp");

			/* Said on stderr, which still is the caller's terminal. */
			if (log_set_file(path, &err) == 0) {
				log_warnx("no syslog listens on /dev/log: logging to %s", path);
				fprintf(stderr, "exportd: no syslog listens on /dev/log: logging to %s\n",
					path);
			} else {
				fprintf(stderr, "exportd: no syslog listens on /dev/log, and %s: "
					"messages are lost\n", err->msg);
				error_free(err);
			}
			free(path);
		}
	}
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (write(ready_fd, &ok, 1) != 1)
		log_warn("cannot tell the parent process that start-up finished");
	close(ready_fd);
	ready_fd = -1;
}

/* STATUS= for systemctl status: how many exports are served. */
static void notify_status(void)
{
	int n = export_count();

	sd_notify_sendf("STATUS=%d export%s", n, n == 1 ? "" : "s");
}

/* The dispatcher's hook: a command changed something. */
static void qmp_command_done(const char *command, json_t *args)
{
	bool exports = !strcmp(command, "block-export-add") ||
		       !strcmp(command, "block-export-del");

	/* quit ends the exports, but they are to come back at the next start. */
	if (!shutdown_requested() &&
	    (exports || !strcmp(command, "blockdev-add") || !strcmp(command, "blockdev-del") ||
	     !strcmp(command, "object-add") || !strcmp(command, "object-del")))
		state_file_changed(command, args);
	if (exports)
		notify_status();
}

/* The registry's hook: an export is gone, tell every QMP client. */
static void export_deleted_event(const char *id)
{
	qmp_send_event("BLOCK_EXPORT_DELETED", json_pack("{s:s}", "id", id));
	/* It may have ended by itself (an external umount): the file forgets it. */
	if (!shutdown_requested())
		state_file_changed(NULL, NULL);
	notify_status();
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct error *err = NULL;
	struct event *sigs[3];
	static const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
	int n_listen_fds;

	parse_options(&o, argc, argv);
	log_init(true, o.log_level);
	sd_notify_init();
	/* Before the fork: LISTEN_PID names the process systemd started. */
	n_listen_fds = sd_listen_fds_take(&err);
	if (n_listen_fds < 0)
		fatalx("%s", err->msg);
	if (o.log_file && log_set_file(o.log_file, &err) < 0) {
		fprintf(stderr, "exportd: %s\n", err->msg);
		exit(1);
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (o.daemonize)
		daemonize_start();
	main_loop_init();
	/* The data plane's loops, before any export can need them. */
	if (iothread_pool_init(0, &err) < 0)
		fatalx("%s", err->msg);
	schema_builtin();
	if (qmp_dispatch_init(&err) < 0)
		fatalx("internal error: %s", err->msg);
	/* Upward signals go through hooks: the layers below know nothing above. */
	export_set_deleted_hook(export_deleted_event);
	monitor_set_quit_hook(shutdown_request);
	qmp_dispatch_set_change_hook(qmp_command_done);
	if (o.state_file)
		state_file_init(o.state_file);
	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(main_loop_base(), signums[i], on_signal, NULL);
		event_add(sigs[i], NULL);
	}
	if (startup(&o, n_listen_fds, &err) < 0) {
		log_error("%s", err->msg);
		error_free(err);
		exit_status = 1;
		/* Undo what start-up did (exports mounted so far), then exit 1. */
		shutdown_request("start-up failed");
	} else {
		log_info("exportd %s ready", EXPORTD_VERSION);
		if (o.daemonize)
			daemonize_finish(o.log_level);
		sd_notify_send("READY=1");
		notify_status();
	}
	main_loop_run();
	if (ready_fd >= 0) {
		char status = 1;

		if (write(ready_fd, &status, 1) < 0)
			log_warn("cannot report start-up failure to the parent");
	}
	/*
	 * We are on our way out: a late SIGTERM (say, after `quit`) must not
	 * kill us between freeing the signal events and exit(), which would
	 * turn a clean shutdown into death by signal.
	 */
	for (int i = 0; i < 3; i++) {
		signal(signums[i], SIG_IGN);
		event_free(sigs[i]);
	}
	pidfile_remove(pidfile);
	free(o.pidfile);
	free(o.log_file);
	free(o.state_file);
	for (size_t i = 0; i < o.n_items; i++)
		free(o.items[i].arg);
	free(o.items);
	json_decref(o.chardevs);
	/* Every export is gone: no channel is left on a loop. */
	iothread_stop_all();
	main_loop_cleanup();
	log_info("exportd stopped");
	return exit_status;
}
