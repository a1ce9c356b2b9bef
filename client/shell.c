/*
 * shell.c: the interactive QMP shell (see shell.h).  One poll() loop
 * watches the terminal and the QMP socket, so events show up while the
 * user types, above the prompt, as they do in qmp-shell.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-util.h"
#include "line-edit.h"
#include "qmp-args.h"
#include "shell.h"

#define SHELL_MAX_WORDS 256

struct shell {
	struct qmp_client *qmp;
	bool json;		/* compact one-line JSON instead of indented */
	bool tty;
	bool quit_sent;		/* the daemon closing is then expected */
	bool quit_asked;	/* the next line answers "really quit?" */
	bool failed;		/* a command failed: a script's shell exits 1 */
	struct line_edit le;
	char **commands;	/* for completion, NULL-terminated */
	char *inbuf;		/* non-tty input not yet split into lines */
	size_t inlen;
};

static void print_json(struct shell *sh, json_t *v)
{
	char *s = json_dumps(v, JSON_PRESERVE_ORDER |
			     (sh->json ? JSON_COMPACT : JSON_INDENT(4)));

	if (sh->tty)
		line_edit_hide(&sh->le);
	printf("%s\n", s ? s : "null");
	fflush(stdout);
	free(s);
}

static void print_error(struct shell *sh, const char *msg)
{
	if (sh->tty)
		line_edit_hide(&sh->le);
	fflush(stdout);
	fprintf(stderr, "error: %s\n", msg);
}

static void print_events(struct shell *sh)
{
	bool any = false;
	json_t *ev;

	while ((ev = qmp_client_take_event(sh->qmp))) {
		print_json(sh, ev);
		json_decref(ev);
		any = true;
	}
	if (any && sh->tty)
		line_edit_show(&sh->le);
}

/* Build the request for one line; NULL (after saying why) if it is bad. */
static json_t *line_request(struct shell *sh, const char *line)
{
	char *words[SHELL_MAX_WORDS];
	char *err = NULL;
	json_t *req = NULL, *args;
	int n;

	if (line[0] == '{') {
		json_error_t jerr;

		req = json_loads(line, 0, &jerr);
		if (!req) {
			err = ctl_xasprintf("invalid JSON: %s", jerr.text);
		} else if (!json_is_object(req)) {
			err = ctl_xstrdup("a raw request must be a JSON object");
			json_decref(req);
			req = NULL;
		}
		goto out;
	}
	n = qmp_args_split(line, words, SHELL_MAX_WORDS, &err);
	if (n <= 0)
		goto out;
	args = qmp_args_parse(n - 1, (const char *const *)words + 1, &err);
	if (args) {
		req = json_object();
		json_object_set_new(req, "execute", json_string(words[0]));
		if (json_object_size(args))
			json_object_set_new(req, "arguments",
					    qmp_args_typed(words[0], args));
		json_decref(args);
	}
	while (n > 0)
		free(words[--n]);
out:
	if (err) {
		print_error(sh, err);
		free(err);
	}
	return req;
}

/* The ids of the exports, comma-separated (allocated), or NULL if none. */
static char *export_ids(struct shell *sh)
{
	json_t *reply = qmp_client_execute(sh->qmp, "query-block-exports", NULL, NULL);
	json_t *list = json_object_get(reply, "return");
	char *ids = NULL;
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		const char *id = json_string_value(json_object_get(e, "id")) ?: "?";
		char *more = ids ? ctl_xasprintf("%s, %s", ids, id) : ctl_xstrdup(id);

		free(ids);
		ids = more;
	}
	json_decref(reply);
	return ids;
}

/*
 * The shell's own words, which are not QMP commands: "exit" leaves (1),
 * "help" tells what to type, and a bare "quit" while exports exist asks
 * first, since it stops the daemon and unmounts them all (a JSON
 * {"execute": "quit"} does not ask, for scripts that mean it).  0 for
 * any other line.
 */
static int shell_word(struct shell *sh, const char *line)
{
	char *ids;

	if (!strcmp(line, "exit"))
		return 1;
	if (!strcmp(line, "help")) {
		if (sh->tty)
			line_edit_hide(&sh->le);
		printf("Type a QMP command and its arguments as KEY=VALUE words "
		       "(blockdev-add driver=file node-name=f filename=disk.img),\n"
		       "or a whole JSON request; 'query-commands' lists the commands, "
		       "'exportctl schema COMMAND' describes one.\n"
		       "exit (or Ctrl-D) leaves the shell; quit stops exportd.\n");
		fflush(stdout);
		return -1;
	}
	if (strcmp(line, "quit"))
		return 0;
	ids = export_ids(sh);
	if (!ids)
		return 0;
	if (sh->tty)
		line_edit_hide(&sh->le);
	if (sh->tty) {
		printf("quit stops exportd and unmounts every export (%s). Really quit? "
		       "Type y to confirm.\n", ids);
		fflush(stdout);
		sh->quit_asked = true;
	} else {
		fflush(stdout);
		fprintf(stderr, "error: quit would stop exportd and unmount every export "
			"(%s): send {\"execute\": \"quit\"} to mean it\n", ids);
		sh->failed = true;
	}
	free(ids);
	return -1;
}

/* Run one line; -1 when the session is gone, 1 to leave. */
static int shell_line(struct shell *sh, const char *line)
{
	struct error *err = NULL;
	json_t *req, *reply;
	char *trimmed;
	size_t len;

	while (*line == ' ' || *line == '\t')
		line++;
	if (!*line || *line == '#')
		return 0;
	if (sh->tty) {
		len = strlen(line);
		while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
			len--;
		trimmed = strndup(line, len);
		if (trimmed)
			line_edit_history_add(&sh->le, trimmed);
		free(trimmed);
	}
	if (sh->quit_asked) {
		sh->quit_asked = false;
		if (strcmp(line, "y") && strcmp(line, "yes"))
			return 0;
		line = "{\"execute\": \"quit\"}";
	} else {
		int word = shell_word(sh, line);

		if (word != 0)
			return word > 0 ? 1 : 0;
	}
	req = line_request(sh, line);
	if (!req) {
		sh->failed = true;
		return 0;
	}
	if (!strcmp(json_string_value(json_object_get(req, "execute")) ?: "", "quit"))
		sh->quit_sent = true;
	reply = qmp_client_execute_raw(sh->qmp, req, &err);
	json_decref(req);
	print_events(sh);
	if (!reply) {
		print_error(sh, err ? err->msg : "no reply");
		error_free(err);
		return -1;
	}
	if (json_object_get(reply, "error"))
		sh->failed = true;
	print_json(sh, reply);
	json_decref(reply);
	return 0;
}

/* Command names for completion, from query-commands. */
static void load_commands(struct shell *sh)
{
	json_t *reply = qmp_client_execute(sh->qmp, "query-commands", NULL, NULL);
	json_t *list = json_object_get(reply, "return");
	size_t i, n = 0;
	json_t *c;

	sh->commands = ctl_xmalloc((json_array_size(list) + 1) * sizeof(char *));
	json_array_foreach(list, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));

		if (name)
			sh->commands[n++] = ctl_xstrdup(name);
	}
	sh->commands[n] = NULL;
	json_decref(reply);
}

static char *history_path(void)
{
	const char *home = getenv("HOME");

	return home && *home ? ctl_xasprintf("%s/.exportctl_history", home) : NULL;
}

/* Input is ready: feed the editor, or split lines.  1 at EOF, -1 on error. */
static int shell_input(struct shell *sh)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		if (!sh->tty && sh->inlen) {
			/* A last line without a newline still counts. */
			sh->inbuf[sh->inlen] = '\0';
			sh->inlen = 0;
			if (shell_line(sh, sh->inbuf) < 0)
				return -1;
		}
		return 1;
	}
	if (sh->tty) {
		for (ssize_t i = 0; i < n; i++) {
			enum line_edit_result r = line_edit_feed(&sh->le, (unsigned char)buf[i]);

			if (r == LINE_EDIT_EOF)
				return 1;
			if (r == LINE_EDIT_LINE) {
				char *line = line_edit_take(&sh->le);
				int ret = shell_line(sh, line);

				free(line);
				if (ret != 0)
					return ret;
				line_edit_show(&sh->le);
			}
		}
		return 0;
	}
	sh->inbuf = ctl_xrealloc(sh->inbuf, sh->inlen + n + 1);
	memcpy(sh->inbuf + sh->inlen, buf, n);
	sh->inlen += n;
	for (;;) {
		char *nl = memchr(sh->inbuf, '\n', sh->inlen);
		size_t len;
		int r;

		if (!nl)
			break;
		*nl = '\0';
		len = nl - sh->inbuf + 1;
		r = shell_line(sh, sh->inbuf);
		if (r != 0)
			return r;
		memmove(sh->inbuf, nl + 1, sh->inlen - len);
		sh->inlen -= len;
	}
	return 0;
}

/*
 * The socket is readable while no command runs: events, or the end
 * (1 after a quit, -1 otherwise).
 */
static int shell_socket(struct shell *sh)
{
	struct error *err = NULL;
	json_t *msg;

	while ((msg = qmp_client_recv(sh->qmp, 0, &err))) {
		if (json_object_get(msg, "event"))
			print_json(sh, msg);
		json_decref(msg);
	}
	if (err) {
		bool expected = sh->quit_sent && qmp_client_closed(sh->qmp);

		if (!expected)
			print_error(sh, err->msg);
		else if (sh->tty)
			line_edit_hide(&sh->le);
		error_free(err);
		return expected ? 1 : -1;
	}
	if (sh->tty)
		line_edit_show(&sh->le);
	return 0;
}

int shell_run(struct qmp_client *c, bool json, bool quiet)
{
	struct shell sh = { .qmp = c, .json = json };
	char *hist = NULL;
	int ret = 0;

	sh.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (sh.tty && !quiet) {
		const char *pkg = json_string_value(json_object_get(
			json_object_get(json_object_get(qmp_client_greeting(c), "QMP"), "version"),
			"package"));

		printf("Welcome to the exportd QMP shell (connected to %s).\n"
		       "Type 'command key=value ...' or a JSON request; Tab completes, "
		       "Ctrl-D leaves.\n\n", pkg ? pkg : "?");
		fflush(stdout);
	}
	if (sh.tty) {
		/* Everything the editor needs first: the prompt means "ready". */
		load_commands(&sh);
		if (line_edit_start(&sh.le, STDIN_FILENO, STDOUT_FILENO, "(exportd) ") < 0) {
			line_edit_free(&sh.le);
			sh.tty = false;
		} else {
			sh.le.words = (const char *const *)sh.commands;
			hist = history_path();
			if (hist) {
				line_edit_history_load(&sh.le, hist);
				sh.le.hist_pos = sh.le.nhist;
			}
		}
	}
	print_events(&sh);

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = qmp_client_fd(c), .events = POLLIN },
		};
		int r;

		/* Messages that came with the last reply are not seen by poll(). */
		if (qmp_client_has_pending(c)) {
			print_events(&sh);
			r = shell_socket(&sh);
			if (r < 0)
				ret = 1;
			if (r != 0)
				break;
		}
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = 1;
			break;
		}
		if (pfd[1].revents) {
			r = shell_socket(&sh);
			if (r < 0)
				ret = 1;
			if (r != 0)
				break;
		}
		if (pfd[0].revents) {
			r = shell_input(&sh);
			if (r < 0)
				ret = 1;
			if (r != 0)
				break;
		}
	}

	if (sh.tty) {
		line_edit_stop(&sh.le);
		if (hist)
			line_edit_history_save(&sh.le, hist);
		line_edit_free(&sh.le);
	}
	free(hist);
	if (sh.commands) {
		for (char **p = sh.commands; *p; p++)
			free(*p);
		free(sh.commands);
	}
	free(sh.inbuf);
	/* A script learns that one of its commands failed. */
	if (!sh.tty && sh.failed)
		ret = 1;
	return ret;
}
