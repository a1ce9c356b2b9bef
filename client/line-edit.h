/*
 * line-edit.h: a small line editor for exportctl's interactive shell, so
 * that it needs neither readline (GPL) nor libedit: the terminal in raw
 * mode, cursor keys, Emacs control keys, history, and completion of the
 * first word.  It is fed one byte at a time, so the shell can poll the
 * terminal and the QMP socket together and print events above the prompt.
 */
#ifndef EXPORTCTL_LINE_EDIT_H
#define EXPORTCTL_LINE_EDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

enum line_edit_result {
	LINE_EDIT_MORE,		/* keep feeding */
	LINE_EDIT_LINE,		/* a line is complete: line_edit_take() */
	LINE_EDIT_EOF,		/* Ctrl-D on an empty line */
};

struct line_edit {
	int in, out;			/* terminal fds */
	const char *prompt;
	char *buf;			/* the line being edited, NUL-terminated */
	size_t len, cap, pos;		/* pos: cursor, a byte index */
	char **history;			/* oldest first */
	size_t nhist, hist_pos;		/* hist_pos == nhist: the new line */
	char *draft;			/* the new line while browsing history */
	int esc;			/* escape-sequence state */
	char escseq[8];
	size_t esclen;
	const char *const *words;	/* completion candidates, NULL-terminated */
	bool tabbed;			/* the last key was Tab */
	bool raw;
	struct termios saved;
};

/* Put the terminal in raw mode and show the prompt; -1 if in is not a tty. */
int line_edit_start(struct line_edit *le, int in, int out, const char *prompt);
/* Restore the terminal (safe to call twice). */
void line_edit_stop(struct line_edit *le);
void line_edit_free(struct line_edit *le);

enum line_edit_result line_edit_feed(struct line_edit *le, unsigned char ch);
/* The completed line (allocated; the caller frees); the editor is reset. */
char *line_edit_take(struct line_edit *le);

/* Erase the prompt line to print something, then draw it again. */
void line_edit_hide(struct line_edit *le);
void line_edit_show(struct line_edit *le);

void line_edit_history_add(struct line_edit *le, const char *line);
/* Load and save history, one entry a line; errors are ignored (no history). */
void line_edit_history_load(struct line_edit *le, const char *path);
void line_edit_history_save(struct line_edit *le, const char *path);

#endif
