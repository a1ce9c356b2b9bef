/*
 * line-edit.c: the shell's line editor (see line-edit.h).  Redrawing is
 * done the simple way, the whole line at every change: "\r", prompt,
 * text, erase to end of line, then the cursor moved back into place.
 * Bytes >= 0x80 are inserted as they come; the cursor is placed by
 * counting UTF-8 lead bytes so multi-byte characters stay aligned.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-util.h"
#include "line-edit.h"

#define HISTORY_MAX 1000

static void out_str(struct line_edit *le, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(le->out, s, len);

		if (n <= 0)
			return;
		s += n;
		len -= n;
	}
}

static void out_puts(struct line_edit *le, const char *s)
{
	out_str(le, s, strlen(s));
}

/* Screen columns taken by the first n bytes of s (UTF-8 aware). */
static size_t columns(const char *s, size_t n)
{
	size_t cols = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			cols++;
	return cols;
}

static void redraw(struct line_edit *le)
{
	char tail[32];
	size_t back = columns(le->buf + le->pos, le->len - le->pos);

	out_puts(le, "\r");
	out_puts(le, le->prompt);
	out_str(le, le->buf, le->len);
	out_puts(le, "\x1b[K");
	if (back) {
		snprintf(tail, sizeof(tail), "\x1b[%zuD", back);
		out_puts(le, tail);
	}
}

static void reserve(struct line_edit *le, size_t extra)
{
	if (le->len + extra + 1 > le->cap) {
		le->cap = (le->len + extra + 1) * 2;
		le->buf = ctl_xrealloc(le->buf, le->cap);
	}
}

static void set_text(struct line_edit *le, const char *s)
{
	le->len = 0;
	reserve(le, strlen(s));
	strcpy(le->buf, s);
	le->len = le->pos = strlen(s);
}

/*
 * A terminal left in raw mode is unusable, so a signal that ends the
 * shell (SIGTERM, SIGHUP, ...) first restores it; tcsetattr() is
 * async-signal-safe.  One editor at a time is active.
 */
static struct line_edit *active_editor;
static const int fatal_signals[] = { SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };

static void restore_and_die(int sig)
{
	if (active_editor && active_editor->raw)
		tcsetattr(active_editor->in, TCSAFLUSH, &active_editor->saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_fatal_signals(bool on)
{
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		signal(fatal_signals[i], on ? restore_and_die : SIG_DFL);
}

int line_edit_start(struct line_edit *le, int in, int out, const char *prompt)
{
	struct termios raw;

	memset(le, 0, sizeof(*le));
	le->in = in;
	le->out = out;
	le->prompt = prompt;
	reserve(le, 64);
	le->buf[0] = '\0';
	if (!isatty(in) || tcgetattr(in, &le->saved) < 0)
		return -1;
	raw = le->saved;
	/* No echo, no line buffering, ^C/^Z/^S reach us as bytes. */
	raw.c_iflag &= ~(ICRNL | IXON | INLCR | IGNCR | ISTRIP);
	raw.c_lflag &= ~(ECHO | ICANON | ISIG | IEXTEN);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	active_editor = le;
	catch_fatal_signals(true);
	if (tcsetattr(in, TCSAFLUSH, &raw) < 0) {
		catch_fatal_signals(false);
		active_editor = NULL;
		return -1;
	}
	le->raw = true;
	redraw(le);
	return 0;
}

void line_edit_stop(struct line_edit *le)
{
	if (le->raw) {
		tcsetattr(le->in, TCSAFLUSH, &le->saved);
		le->raw = false;
		catch_fatal_signals(false);
		active_editor = NULL;
	}
}

void line_edit_free(struct line_edit *le)
{
	line_edit_stop(le);
	for (size_t i = 0; i < le->nhist; i++)
		free(le->history[i]);
	free(le->history);
	free(le->draft);
	free(le->buf);
	le->history = NULL;
	le->draft = le->buf = NULL;
	le->nhist = 0;
}

void line_edit_hide(struct line_edit *le)
{
	out_puts(le, "\r\x1b[K");
}

void line_edit_show(struct line_edit *le)
{
	redraw(le);
}

void line_edit_history_add(struct line_edit *le, const char *line)
{
	if (!*line || (le->nhist && !strcmp(le->history[le->nhist - 1], line)))
		return;
	if (le->nhist == HISTORY_MAX) {
		free(le->history[0]);
		memmove(le->history, le->history + 1, (le->nhist - 1) * sizeof(char *));
		le->nhist--;
	}
	le->history = ctl_xrealloc(le->history, (le->nhist + 1) * sizeof(char *));
	le->history[le->nhist++] = ctl_xstrdup(line);
	le->hist_pos = le->nhist;
}

void line_edit_history_load(struct line_edit *le, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		line_edit_history_add(le, line);
	}
	free(line);
	fclose(f);
}

void line_edit_history_save(struct line_edit *le, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return;
	for (size_t i = 0; i < le->nhist; i++)
		fprintf(f, "%s\n", le->history[i]);
	fclose(f);
}

static void history_move(struct line_edit *le, int dir)
{
	if (dir < 0 && le->hist_pos == 0)
		return;
	if (dir > 0 && le->hist_pos >= le->nhist)
		return;
	if (le->hist_pos == le->nhist) {
		free(le->draft);
		le->draft = ctl_xstrdup(le->buf);
	}
	le->hist_pos += dir;
	set_text(le, le->hist_pos == le->nhist ? (le->draft ? le->draft : "") :
		 le->history[le->hist_pos]);
	redraw(le);
}

static void insert(struct line_edit *le, const char *s, size_t n)
{
	reserve(le, n);
	memmove(le->buf + le->pos + n, le->buf + le->pos, le->len - le->pos + 1);
	memcpy(le->buf + le->pos, s, n);
	le->pos += n;
	le->len += n;
}

static void delete_range(struct line_edit *le, size_t from, size_t to)
{
	memmove(le->buf + from, le->buf + to, le->len - to + 1);
	le->len -= to - from;
	le->pos = from;
}

/* Byte index of the character before / after pos. */
static size_t char_before(struct line_edit *le, size_t pos)
{
	if (pos == 0)
		return 0;
	pos--;
	while (pos > 0 && ((unsigned char)le->buf[pos] & 0xc0) == 0x80)
		pos--;
	return pos;
}

static size_t char_after(struct line_edit *le, size_t pos)
{
	if (pos >= le->len)
		return le->len;
	pos++;
	while (pos < le->len && ((unsigned char)le->buf[pos] & 0xc0) == 0x80)
		pos++;
	return pos;
}

/* Tab in the first word: complete it from le->words. */
static void complete(struct line_edit *le)
{
	size_t start = 0, plen, common = 0, count = 0;
	const char *first = NULL;

	if (!le->words)
		return;
	for (size_t i = 0; i < le->pos; i++)
		if (le->buf[i] == ' ')
			return;	/* only the command name is completed */
	plen = le->pos - start;
	for (const char *const *w = le->words; *w; w++) {
		if (strncmp(*w, le->buf, plen))
			continue;
		if (!first) {
			first = *w;
			common = strlen(*w);
		} else {
			size_t k = 0;

			while (k < common && first[k] == (*w)[k])
				k++;
			common = k;
		}
		count++;
	}
	if (!count)
		return;
	if (common > plen) {
		insert(le, first + plen, common - plen);
		if (count == 1)
			insert(le, " ", 1);
		redraw(le);
		return;
	}
	if (count > 1 && le->tabbed) {
		/* Second Tab: show the candidates below, then the line again. */
		out_puts(le, "\r\n");
		for (const char *const *w = le->words; *w; w++)
			if (!strncmp(*w, le->buf, plen)) {
				out_puts(le, *w);
				out_puts(le, "  ");
			}
		out_puts(le, "\r\n");
		redraw(le);
	}
}

/* The rest of an escape sequence ESC [ ... or ESC O ... */
static void escape(struct line_edit *le, const char *seq)
{
	if (!strcmp(seq, "[A") || !strcmp(seq, "OA"))
		history_move(le, -1);
	else if (!strcmp(seq, "[B") || !strcmp(seq, "OB"))
		history_move(le, 1);
	else if (!strcmp(seq, "[C") || !strcmp(seq, "OC"))
		le->pos = char_after(le, le->pos);
	else if (!strcmp(seq, "[D") || !strcmp(seq, "OD"))
		le->pos = char_before(le, le->pos);
	else if (!strcmp(seq, "[H") || !strcmp(seq, "OH") || !strcmp(seq, "[1~"))
		le->pos = 0;
	else if (!strcmp(seq, "[F") || !strcmp(seq, "OF") || !strcmp(seq, "[4~"))
		le->pos = le->len;
	else if (!strcmp(seq, "[3~") && le->pos < le->len)
		delete_range(le, le->pos, char_after(le, le->pos));
	redraw(le);
}

enum line_edit_result line_edit_feed(struct line_edit *le, unsigned char ch)
{
	bool tabbed = le->tabbed;

	le->tabbed = false;
	if (le->esc) {
		/* ESC, then '[' or 'O', then parameters up to a final byte. */
		if (le->esclen < sizeof(le->escseq) - 1)
			le->escseq[le->esclen++] = ch;
		le->escseq[le->esclen] = '\0';
		if (le->esclen == 1 && ch != '[' && ch != 'O') {
			le->esc = 0;	/* Alt-key: ignored */
		} else if (le->esclen >= 2 && ch >= 0x40 && ch <= 0x7e) {
			le->esc = 0;
			escape(le, le->escseq);
		} else if (le->esclen == sizeof(le->escseq) - 1) {
			le->esc = 0;
		}
		return LINE_EDIT_MORE;
	}
	switch (ch) {
	case '\r':
	case '\n':
		out_puts(le, "\r\n");
		return LINE_EDIT_LINE;
	case 4:		/* ^D */
		if (le->len == 0) {
			out_puts(le, "\r\n");
			return LINE_EDIT_EOF;
		}
		if (le->pos < le->len)
			delete_range(le, le->pos, char_after(le, le->pos));
		break;
	case 3:		/* ^C: drop the line */
		out_puts(le, "^C\r\n");
		le->len = le->pos = 0;
		le->buf[0] = '\0';
		le->hist_pos = le->nhist;
		break;
	case 127:
	case 8:		/* backspace */
		if (le->pos > 0)
			delete_range(le, char_before(le, le->pos), le->pos);
		break;
	case 1:		/* ^A */
		le->pos = 0;
		break;
	case 5:		/* ^E */
		le->pos = le->len;
		break;
	case 2:		/* ^B */
		le->pos = char_before(le, le->pos);
		break;
	case 6:		/* ^F */
		le->pos = char_after(le, le->pos);
		break;
	case 11:	/* ^K */
		le->len = le->pos;
		le->buf[le->len] = '\0';
		break;
	case 21:	/* ^U */
		delete_range(le, 0, le->pos);
		break;
	case 23: {	/* ^W: the word before the cursor */
		size_t p = le->pos;

		while (p > 0 && le->buf[p - 1] == ' ')
			p--;
		while (p > 0 && le->buf[p - 1] != ' ')
			p--;
		delete_range(le, p, le->pos);
		break;
	}
	case 12:	/* ^L */
		out_puts(le, "\x1b[H\x1b[2J");
		break;
	case 16:	/* ^P */
		history_move(le, -1);
		return LINE_EDIT_MORE;
	case 14:	/* ^N */
		history_move(le, 1);
		return LINE_EDIT_MORE;
	case '\t':
		/* complete() lists the candidates on a second Tab in a row. */
		le->tabbed = tabbed;
		complete(le);
		le->tabbed = true;
		return LINE_EDIT_MORE;
	case 27:
		le->esc = 1;
		le->esclen = 0;
		return LINE_EDIT_MORE;
	default:
		if (ch < 32)
			return LINE_EDIT_MORE;
		{
			char c = (char)ch;
			bool at_end = le->pos == le->len;

			insert(le, &c, 1);
			/* Typing at the end needs no redraw: echo the byte. */
			if (at_end) {
				out_str(le, &c, 1);
				return LINE_EDIT_MORE;
			}
		}
	}
	redraw(le);
	return LINE_EDIT_MORE;
}

char *line_edit_take(struct line_edit *le)
{
	char *line = ctl_xstrdup(le->buf);

	le->len = le->pos = 0;
	le->buf[0] = '\0';
	le->hist_pos = le->nhist;
	free(le->draft);
	le->draft = NULL;
	return line;
}
