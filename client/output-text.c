/*
 * output-text.c: exportctl's human output (see output.h): aligned tables
 * with a header line, sizes in binary units, the schema of a command as
 * an indented member list, events one per line with their time.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ctl-util.h"
#include "output.h"
#include "rpc/xalloc.h"

bool output_quiet;

/* ---- tables ---- */

#define TABLE_MAX_COLS 16

struct table {
	int ncols;
	size_t nrows;
	char **cells;		/* nrows * ncols, row 0 is the header */
};

static void table_add_row(struct table *t, const char *const *cols)
{
	t->cells = ctl_xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	for (int i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = ctl_xstrdup(cols[i] ? cols[i] : "-");
	t->nrows++;
}

/*
 * Print with columns padded to their widest cell; the last is not padded
 * unless it is right-aligned, as columns from right_from on are (numbers).
 */
static void table_print_aligned(struct table *t, int right_from)
{
	size_t width[TABLE_MAX_COLS] = { 0 };

	for (size_t r = 0; r < t->nrows; r++)
		for (int i = 0; i < t->ncols; i++) {
			size_t w = strlen(t->cells[r * t->ncols + i]);

			if (w > width[i])
				width[i] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (int i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];

			if (i >= right_from)
				printf("%*s%s", (int)width[i], cell,
				       i == t->ncols - 1 ? "\n" : "  ");
			else if (i == t->ncols - 1)
				printf("%s\n", cell);
			else
				printf("%-*s  ", (int)width[i], cell);
		}
	}
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

static void table_print(struct table *t)
{
	table_print_aligned(t, t->ncols);
}

/* "512 B", "64 MiB", "1.5 GiB" into buf. */
static const char *fmt_size(json_t *v, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	uint64_t n;
	double d;
	int u = 0;

	if (!json_is_integer(v))
		return NULL;
	n = (uint64_t)json_integer_value(v);
	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return buf;
	}
	while (n % 1024 == 0 && n >= 1024 && u < 6) {
		n /= 1024;
		u++;
	}
	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " %s", n, units[u]);
		return buf;
	}
	d = (double)n;
	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}

static const char *yesno(json_t *v)
{
	if (!json_is_boolean(v))
		return NULL;
	return json_is_true(v) ? "yes" : "no";
}

static json_t *node_by_name(json_t *nodes, const char *name)
{
	size_t i;
	json_t *n;

	json_array_foreach(nodes, i, n)
		if (name && !strcmp(json_string_value(json_object_get(n, "node-name")) ?: "", name))
			return n;
	return NULL;
}

/* "850ns", "21.3us", "1.25ms", "2.50s" into buf. */
static const char *fmt_ns(json_t *v, char *buf, size_t len)
{
	double ns;

	if (!json_is_integer(v))
		return NULL;
	ns = (double)json_integer_value(v);
	if (ns < 1000)
		snprintf(buf, len, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2fms", ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", ns / 1e9);
	return buf;
}

static const char *fmt_count(json_t *v, char *buf, size_t len)
{
	if (!json_is_integer(v))
		return NULL;
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

static bool list_has(json_t *list, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v)
		if (!strcmp(json_string_value(v) ?: "", s))
			return true;
	return false;
}

/* Under a table with "*" counts: what the star means. */
static void print_uncounted_footnote(void)
{
	if (!output_quiet)
		printf("* not counting the requests that the kernel serves itself "
		       "(FUSE passthrough)\n");
}

/* Append "*" to a count cell if the export's stats do not count `op`. */
static bool mark_uncounted(json_t *export_stats, const char *op, char *cell, size_t size)
{
	size_t l = strlen(cell);

	if (!list_has(json_object_get(export_stats, "uncounted"), op))
		return false;
	if (l + 1 < size)
		memcpy(cell + l, "*", 2);
	return true;
}

static json_t *stats_by_id(json_t *stats, const char *id)
{
	size_t i;
	json_t *e;

	json_array_foreach(stats, i, e)
		if (id && !strcmp(json_string_value(json_object_get(e, "id")) ?: "", id))
			return e;
	return NULL;
}

/*
 * The columns of `list`: what each shows, whether it is a number (right-
 * aligned), and how it fits a terminal.  Default columns are those a user
 * wants before `del` (is it open?); --wide shows all, -o chooses.  When
 * the default set is wider than the terminal, path cells are shortened in
 * the middle first, then columns with a drop rank go, highest rank first.
 */
enum list_col {
	COL_ID, COL_MOUNTPOINT, COL_NODE, COL_FORMAT, COL_IMAGE, COL_SIZE, COL_MODE,
	COL_WRITABLE, COL_GROWABLE, COL_ALLOW_OTHER, COL_DATA_PATH, COL_OPEN,
	COL_RD_OPS, COL_RD_BYTES, COL_WR_OPS, COL_WR_BYTES, COL__COUNT
};

static const struct list_column {
	const char *name;
	bool number;		/* right-aligned */
	bool path;		/* may be shortened in the middle */
	bool by_default;
	int drop_rank;		/* 0: kept; else dropped to fit, highest first */
} list_columns[COL__COUNT] = {
	[COL_ID] = { "ID", false, false, true, 0 },
	[COL_MOUNTPOINT] = { "MOUNTPOINT", false, true, true, 0 },
	[COL_NODE] = { "NODE", false, false, false, 0 },
	[COL_FORMAT] = { "FORMAT", false, false, true, 3 },
	[COL_IMAGE] = { "IMAGE", false, true, false, 0 },
	[COL_SIZE] = { "SIZE", true, false, true, 1 },
	[COL_MODE] = { "MODE", false, false, true, 2 },
	[COL_WRITABLE] = { "WRITABLE", false, false, false, 0 },
	[COL_GROWABLE] = { "GROWABLE", false, false, false, 0 },
	[COL_ALLOW_OTHER] = { "ALLOW-OTHER", false, false, false, 0 },
	[COL_DATA_PATH] = { "DATA-PATH", false, false, true, 4 },
	[COL_OPEN] = { "OPEN", true, false, true, 0 },
	[COL_RD_OPS] = { "RD-OPS", true, false, false, 0 },
	[COL_RD_BYTES] = { "RD-BYTES", true, false, false, 0 },
	[COL_WR_OPS] = { "WR-OPS", true, false, false, 0 },
	[COL_WR_BYTES] = { "WR-BYTES", true, false, false, 0 },
};

const char *output_columns;
bool output_wide;
int output_width;

int output_list_column(const char *name)
{
	for (int c = 0; c < COL__COUNT; c++)
		if (!strcasecmp(list_columns[c].name, name))
			return c;
	return -1;
}

const char *output_list_column_name(int c)
{
	return list_columns[c].name;
}

/* Which columns to show, in order, into cols; returns how many. */
static int list_pick_columns(bool stats, int *cols)
{
	int n = 0;

	if (output_columns) {
		char *copy = ctl_xstrdup(output_columns), *save = NULL;

		for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save))
			if (output_list_column(w) >= 0 && n < COL__COUNT)
				cols[n++] = output_list_column(w);
		free(copy);
		return n;
	}
	for (int c = 0; c < COL__COUNT; c++) {
		bool is_stats = c >= COL_RD_OPS;

		if (is_stats ? stats : output_wide ? c != COL_MODE : list_columns[c].by_default)
			cols[n++] = c;
	}
	return n;
}

static size_t list_width(const size_t *width, int n)
{
	size_t w = 0;

	for (int i = 0; i < n; i++)
		w += width[i] + (i ? 2 : 0);
	return w;
}

/* "/very/long/pa...ount.raw": keep the start and the end, which say most. */
static void shorten_middle(char **cell, size_t to)
{
	size_t len = strlen(*cell), head;
	char *s;

	if (len <= to || to < 7)
		return;
	head = (to - 3) / 2;
	s = ctl_xasprintf("%.*s...%s", (int)head, *cell, *cell + len - (to - 3 - head));
	free(*cell);
	*cell = s;
}

/*
 * Print cells (nrows x n, row 0 the header) fitted to output_width (0: no
 * limit): shorten paths, then drop columns by rank unless -o chose them.
 */
static void list_print(char **cells, size_t nrows, int *cols, int n)
{
	size_t width[COL__COUNT];
	bool chosen = output_columns != NULL;

	for (;;) {
		for (int i = 0; i < n; i++) {
			width[i] = 0;
			for (size_t r = 0; r < nrows; r++)
				width[i] = MAX(width[i], strlen(cells[r * COL__COUNT + cols[i]]));
		}
		if (!output_width || list_width(width, n) <= (size_t)output_width)
			break;
		/* The widest path column gives up what is too much, down to 16. */
		int widest = -1;

		for (int i = 0; i < n; i++)
			if (list_columns[cols[i]].path && width[i] > 16 &&
			    (widest < 0 || width[i] > width[widest]))
				widest = i;
		if (widest >= 0) {
			size_t over = list_width(width, n) - output_width;
			size_t to = width[widest] > over + 16 ? width[widest] - over : 16;

			for (size_t r = 1; r < nrows; r++)
				shorten_middle(&cells[r * COL__COUNT + cols[widest]], to);
			continue;
		}
		int drop = -1;

		for (int i = 0; i < n && !chosen; i++)
			if (list_columns[cols[i]].drop_rank &&
			    (drop < 0 || list_columns[cols[i]].drop_rank >
					 list_columns[cols[drop]].drop_rank))
				drop = i;
		if (drop < 0)
			break;		/* nothing left to give: let the terminal wrap */
		memmove(&cols[drop], &cols[drop + 1], (n - drop - 1) * sizeof(int));
		n--;
	}
	for (size_t r = 0; r < nrows; r++) {
		for (int i = 0; i < n; i++) {
			const char *cell = cells[r * COL__COUNT + cols[i]];
			bool last = i == n - 1;

			if (list_columns[cols[i]].number)
				printf("%*s", (int)width[i], cell);
			else if (last)
				printf("%s", cell);	/* no trailing blanks */
			else
				printf("%-*s", (int)width[i], cell);
			printf("%s", last ? "\n" : "  ");
		}
	}
}

/* Under the table (--wide): why each export's I/O takes the path it takes. */
static void text_data_path_reasons(json_t *exports)
{
	size_t i;
	json_t *e;

	printf("\n");
	json_array_foreach(exports, i, e)
		printf("%s: %s: %s\n", json_string_value(json_object_get(e, "id")) ?: "?",
		       json_string_value(json_object_get(e, "x-data-path")) ?: "?",
		       json_string_value(json_object_get(e, "x-data-path-reason")) ?: "?");
}

static const char *export_mode(json_t *e)
{
	bool w = json_is_true(json_object_get(e, "x-writable"));
	bool g = json_is_true(json_object_get(e, "x-growable"));

	return w ? (g ? "rw,grow" : "rw") : "ro";
}

static void text_exports(json_t *exports, json_t *nodes, json_t *stats)
{
	int cols[COL__COUNT], n = list_pick_columns(stats != NULL, cols);
	size_t nrows = json_array_size(exports) + 1, r = 1;
	char **cells = ctl_xmalloc(nrows * COL__COUNT * sizeof(char *));
	bool uncounted = false;
	size_t i;
	json_t *e;

	if (json_array_size(exports) == 0) {
		free(cells);
		if (!output_quiet)
			printf("no exports\n");
		return;
	}
	for (int c = 0; c < COL__COUNT; c++)
		cells[c] = ctl_xstrdup(list_columns[c].name);
	json_array_foreach(exports, i, e) {
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *node = json_string_value(json_object_get(e, "node-name"));
		json_t *nd = node_by_name(nodes, node);
		json_t *img = json_object_get(nd, "image");
		json_t *st = stats_by_id(stats, id);
		json_t *ops = json_object_get(st, "ops");
		json_t *rd = json_object_get(ops, "read"), *wr = json_object_get(ops, "write");
		char b[6][32];
		const char *row[COL__COUNT] = {
			[COL_ID] = id,
			[COL_MOUNTPOINT] = json_string_value(json_object_get(e, "x-mountpoint")),
			[COL_NODE] = node,
			[COL_FORMAT] = json_string_value(json_object_get(nd, "drv")),
			[COL_IMAGE] = json_string_value(json_object_get(nd, "file")),
			[COL_SIZE] = fmt_size(json_object_get(img, "virtual-size"), b[0], 32),
			[COL_MODE] = export_mode(e),
			[COL_WRITABLE] = yesno(json_object_get(e, "x-writable")),
			[COL_GROWABLE] = yesno(json_object_get(e, "x-growable")),
			[COL_ALLOW_OTHER] = yesno(json_object_get(e, "x-allow-other")),
			[COL_DATA_PATH] = json_string_value(json_object_get(e, "x-data-path")),
			[COL_OPEN] = fmt_count(json_object_get(e, "x-open-handles"), b[1], 32),
			[COL_RD_OPS] = fmt_count(json_object_get(rd, "requests"), b[2], 32),
			[COL_RD_BYTES] = fmt_size(json_object_get(rd, "bytes"), b[3], 32),
			[COL_WR_OPS] = fmt_count(json_object_get(wr, "requests"), b[4], 32),
			[COL_WR_BYTES] = fmt_size(json_object_get(wr, "bytes"), b[5], 32),
		};

		/* What the kernel served itself is missing: mark the counts. */
		if (row[COL_RD_OPS] && mark_uncounted(st, "read", b[2], 32))
			uncounted = true;
		if (row[COL_WR_OPS] && mark_uncounted(st, "write", b[4], 32))
			uncounted = true;
		for (int c = 0; c < COL__COUNT; c++)
			cells[r * COL__COUNT + c] = ctl_xstrdup(row[c] ? row[c] : "-");
		r++;
	}
	list_print(cells, nrows, cols, n);
	for (size_t k = 0; k < nrows * COL__COUNT; k++)
		free(cells[k]);
	free(cells);
	if (uncounted)
		print_uncounted_footnote();
	if (!output_quiet && output_wide)
		text_data_path_reasons(exports);
}

/* One line per operation: ops, bytes, errors and latencies. */
static void text_stats(json_t *stats)
{
	static const char *const head[] = { "OP", "REQUESTS", "BYTES", "ERRORS", "AVG",
		"P50", "P90", "P99", "MAX" };
	static const char *const ops[] = { "read", "write", "flush", "discard", "zero",
		"other" };
	json_t *st = json_array_get(stats, 0);
	json_t *uncounted = json_object_get(st, "uncounted");
	struct table t = { .ncols = 9 };
	char buf[3][32];

	if (!st)
		return;
	if (!output_quiet) {
		printf("export %s: node %s, %" JSON_INTEGER_FORMAT " request threads, up %s",
		       json_string_value(json_object_get(st, "id")) ?: "?",
		       json_string_value(json_object_get(st, "node-name")) ?: "?",
		       json_integer_value(json_object_get(st, "slots")),
		       fmt_ns(json_object_get(st, "age-ns"), buf[0], sizeof(buf[0])) ?: "?");
		if (json_object_get(st, "idle-time-ns"))
			printf(", idle %s", fmt_ns(json_object_get(st, "idle-time-ns"), buf[1],
						   sizeof(buf[1])));
		if (json_is_true(json_object_get(st, "shutting-down")))
			printf(", shutting down");
		printf("\n");
	}
	table_add_row(&t, head);
	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		json_t *o = json_object_get(json_object_get(st, "ops"), ops[k]);
		char cells[8][32];
		const char *row[9] = {
			ops[k],
			fmt_count(json_object_get(o, "requests"), cells[0], sizeof(cells[0])),
			fmt_size(json_object_get(o, "bytes"), cells[1], sizeof(cells[1])),
			fmt_count(json_object_get(o, "errors"), cells[2], sizeof(cells[2])),
			fmt_ns(json_object_get(o, "avg-latency-ns"), cells[3], sizeof(cells[3])),
			fmt_ns(json_object_get(o, "p50-latency-ns"), cells[4], sizeof(cells[4])),
			fmt_ns(json_object_get(o, "p90-latency-ns"), cells[5], sizeof(cells[5])),
			fmt_ns(json_object_get(o, "p99-latency-ns"), cells[6], sizeof(cells[6])),
			fmt_ns(json_object_get(o, "max-latency-ns"), cells[7], sizeof(cells[7])),
		};

		/* Latencies of nothing are not 0: leave them out. */
		if (json_integer_value(json_object_get(o, "requests")) == 0)
			for (int c = 4; c < 9; c++)
				row[c] = "-";
		if (row[1])
			mark_uncounted(st, ops[k], cells[0], sizeof(cells[0]));
		table_add_row(&t, row);
	}
	table_print(&t);
	if (json_array_size(uncounted))
		print_uncounted_footnote();
}

/* ---- info and rates ---- */

#define INFO_INDENT 16
#define INFO_WIDTH 80

/* "  label         value", the value wrapped at blanks to 80 columns. */
static void info_line(const char *label, const char *value)
{
	int at = printf("  %-*s", INFO_INDENT - 2, label);

	while (*value) {
		int word = (int)strcspn(value, " ");

		if (at > INFO_INDENT && at + 1 + word > INFO_WIDTH) {
			at = printf("\n%*s", INFO_INDENT, "") - 1;
		} else if (at > INFO_INDENT) {
			putchar(' ');
			at++;
		}
		at += printf("%.*s", word, value);
		value += word;
		value += strspn(value, " ");
	}
	putchar('\n');
}

/* The node and its children, one line each, a child marked "->". */
static void info_node_tree(json_t *nodes, const char *name, int depth, bool *first)
{
	json_t *n = node_by_name(nodes, name);
	const char *file = json_string_value(json_object_get(n, "file"));
	char line[512];
	size_t i;
	json_t *child;

	if (depth > 16)
		return;		/* a loop would be the daemon's bug; do not follow it */
	snprintf(line, sizeof(line), "%s%s: %s%s%s", depth ? "-> " : "", name,
		 json_string_value(json_object_get(n, "drv")) ?: "?",
		 file && !json_array_size(json_object_get(n, "x-children")) ? " " : "",
		 file && !json_array_size(json_object_get(n, "x-children")) ? file : "");
	info_line(*first ? "nodes" : "", line);
	*first = false;
	json_array_foreach(json_object_get(n, "x-children"), i, child)
		info_node_tree(nodes, json_string_value(child) ?: "?", depth + 1, first);
}

static void text_info(json_t *e, json_t *nodes, json_t *stats)
{
	const char *node = json_string_value(json_object_get(e, "node-name"));
	json_t *n = node_by_name(nodes, node);
	json_t *img = json_object_get(n, "image");
	json_t *ops = json_object_get(stats, "ops");
	char line[1024], b[4][32];
	bool first = true;
	int depth = 0;

	printf("export %s\n", json_string_value(json_object_get(e, "id")) ?: "?");
	info_line("mountpoint", json_string_value(json_object_get(e, "x-mountpoint")) ?: "?");
	snprintf(line, sizeof(line), "%s (writable: %s, growable: %s, allow-other: %s)",
		 export_mode(e), yesno(json_object_get(e, "x-writable")) ?: "?",
		 yesno(json_object_get(e, "x-growable")) ?: "?",
		 yesno(json_object_get(e, "x-allow-other")) ?: "?");
	info_line("mode", line);
	info_line("size", fmt_size(json_object_get(img, "virtual-size"), b[0], 32) ?: "?");
	info_line("open handles",
		  fmt_count(json_object_get(e, "x-open-handles"), b[0], 32) ?: "?");
	snprintf(line, sizeof(line), "%s: %s",
		 json_string_value(json_object_get(e, "x-data-path")) ?: "?",
		 json_string_value(json_object_get(e, "x-data-path-reason")) ?: "?");
	info_line("data path", line);
	info_node_tree(nodes, node ?: "?", 0, &first);
	for (json_t *im = img; im && depth < 16; im = json_object_get(im, "backing-image")) {
		snprintf(line, sizeof(line), "%s%s (%s, %s)", depth ? "backing " : "",
			 json_string_value(json_object_get(im, "filename")) ?: "?",
			 json_string_value(json_object_get(im, "format")) ?: "?",
			 fmt_size(json_object_get(im, "virtual-size"), b[0], 32) ?: "?");
		info_line(depth++ ? "" : "image chain", line);
	}
	if (stats) {
		json_t *rd = json_object_get(ops, "read"), *wr = json_object_get(ops, "write");
		json_int_t errors = 0;
		const char *op;
		json_t *o;

		json_object_foreach(ops, op, o)
			errors += json_integer_value(json_object_get(o, "errors"));
		snprintf(line, sizeof(line), "read %s (%s), write %s (%s), errors %" JSON_INTEGER_FORMAT
			 "%s", fmt_count(json_object_get(rd, "requests"), b[0], 32) ?: "?",
			 fmt_size(json_object_get(rd, "bytes"), b[1], 32) ?: "?",
			 fmt_count(json_object_get(wr, "requests"), b[2], 32) ?: "?",
			 fmt_size(json_object_get(wr, "bytes"), b[3], 32) ?: "?", errors,
			 json_array_size(json_object_get(stats, "uncounted")) ?
			 "; the kernel serves some requests itself, uncounted" : "");
		info_line("requests", line);
	}
}

/* One interval of stats -i: requests/s and MiB/s per operation. */
static void text_rates(json_t *rates)
{
	static const char *const ops[] = { "read", "write", "flush", "discard", "zero",
		"other" };
	static const char *const head[] = { "OP", "REQ/S", "MIB/S" };
	struct table t = { .ncols = 3 };
	time_t now = time(NULL);
	char when[32] = "";
	struct tm tm;

	if (localtime_r(&now, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (!output_quiet)
		printf("%s  export %s, over %.1f s%s\n", when,
		       json_string_value(json_object_get(rates, "id")) ?: "?",
		       json_real_value(json_object_get(rates, "interval-s")),
		       json_array_size(json_object_get(rates, "uncounted")) ?
		       " (passthrough requests uncounted)" : "");
	table_add_row(&t, head);
	for (size_t k = 0; k < ARRAY_SIZE(ops); k++) {
		json_t *o = json_object_get(json_object_get(rates, "ops"), ops[k]);
		char c[2][32];
		const char *row[3] = { ops[k], c[0], c[1] };

		snprintf(c[0], sizeof(c[0]), "%.1f",
			 json_real_value(json_object_get(o, "requests-per-s")));
		snprintf(c[1], sizeof(c[1]), "%.2f",
			 json_real_value(json_object_get(o, "mib-per-s")));
		table_add_row(&t, row);
	}
	table_print_aligned(&t, 1);
	printf("\n");
}

static void text_nodes(json_t *nodes)
{
	static const char *const head[] = { "NODE", "DRIVER", "READ-ONLY", "SIZE", "FILE" };
	struct table t = { .ncols = 5 };
	size_t i;
	json_t *n;

	if (json_array_size(nodes) == 0) {
		if (!output_quiet)
			printf("no block nodes\n");
		return;
	}
	table_add_row(&t, head);
	json_array_foreach(nodes, i, n) {
		char size[32];
		const char *row[5] = {
			json_string_value(json_object_get(n, "node-name")),
			json_string_value(json_object_get(n, "drv")),
			yesno(json_object_get(n, "ro")),
			fmt_size(json_object_get(json_object_get(n, "image"), "virtual-size"),
				 size, sizeof(size)),
			json_string_value(json_object_get(n, "file")),
		};

		table_add_row(&t, row);
	}
	table_print(&t);
}

static void text_version(json_t *info)
{
	json_t *q = json_object_get(info, "qemu");

	printf("exportctl %s\n", EXPORTD_VERSION);
	if (!info)
		return;		/* no daemon to ask */
	printf("daemon    %s (QMP of QEMU %" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT
	       ".%" JSON_INTEGER_FORMAT ")\n",
	       json_string_value(json_object_get(info, "package")) ?: "?",
	       json_integer_value(json_object_get(q, "major")),
	       json_integer_value(json_object_get(q, "minor")),
	       json_integer_value(json_object_get(q, "micro")));
}

static void text_added(json_t *added)
{
	const char *id = json_string_value(json_object_get(added, "id"));
	const char *mp = json_string_value(json_object_get(added, "mountpoint"));

	if (output_quiet) {
		printf("%s\n", id);
		return;
	}
	if (json_is_true(json_object_get(added, "created-mountpoint")))
		printf("created mountpoint file %s\n", mp);
	printf("exported %s", json_string_value(json_object_get(added, "image")) ?:
	       json_string_value(json_object_get(added, "node-name")));
	if (json_object_get(added, "format"))
		printf(" (%s)", json_string_value(json_object_get(added, "format")));
	printf("\nid: %s\nmountpoint: %s\n", id, mp);
}

static void text_deleted(json_t *event, const char *removed_mountpoint)
{
	if (output_quiet)
		return;
	printf("deleted export %s\n",
	       json_string_value(json_object_get(json_object_get(event, "data"), "id")));
	if (removed_mountpoint)
		printf("removed mountpoint file %s\n", removed_mountpoint);
}

static void text_event(json_t *event)
{
	json_t *ts = json_object_get(event, "timestamp");
	json_t *data = json_object_get(event, "data");
	time_t sec = (time_t)json_integer_value(json_object_get(ts, "seconds"));
	long usec = (long)json_integer_value(json_object_get(ts, "microseconds"));
	char when[32] = "-";
	struct tm tm;

	if (gmtime_r(&sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s.%06ldZ %s", when, usec,
	       json_string_value(json_object_get(event, "event")) ?: "?");
	if (data) {
		char *s = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);

		printf(" %s", s ? s : "");
		free(s);
	}
	printf("\n");
	fflush(stdout);
}

/* ---- schema ---- */

json_t *schema_find(json_t *schema, const char *name)
{
	size_t i;
	json_t *e;

	json_array_foreach(schema, i, e)
		if (name && !strcmp(json_string_value(json_object_get(e, "name")) ?: "", name))
			return e;
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void list_meta(json_t *schema, const char *meta, const char *title)
{
	size_t n = 0, i;
	const char **names = ctl_xmalloc((json_array_size(schema) + 1) * sizeof(char *));
	json_t *e;

	json_array_foreach(schema, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "meta-type")) ?: "", meta))
			names[n++] = json_string_value(json_object_get(e, "name"));
	qsort(names, n, sizeof(char *), cmp_str);
	printf("%s:\n", title);
	for (i = 0; i < n; i++)
		printf("  %s\n", names[i]);
	free(names);
}

/* A type name that QEMU did not mask (it masks names as numbers). */
static bool readable_name(const char *name)
{
	return name && *name && strspn(name, "0123456789") != strlen(name);
}

static void print_members(json_t *schema, json_t *type, int indent, int depth);

/* Print the type: one line, then its members below when it has some. */
static void print_type(json_t *schema, const char *name, int indent, int depth)
{
	json_t *t = schema_find(schema, name);
	const char *meta = json_string_value(json_object_get(t, "meta-type")) ?: "";
	size_t i;
	json_t *v;

	if (!t) {
		printf("%s\n", name ? name : "?");
		return;
	}
	if (!strcmp(meta, "builtin")) {
		printf("%s\n", json_string_value(json_object_get(t, "json-type")) ?: name);
	} else if (!strcmp(meta, "enum")) {
		if (readable_name(name))
			printf("%s ", name);
		printf("(");
		json_array_foreach(json_object_get(t, "values"), i, v)
			printf("%s%s", i ? "|" : "", json_string_value(v));
		printf(")\n");
	} else if (!strcmp(meta, "array")) {
		printf("array of ");
		print_type(schema, json_string_value(json_object_get(t, "element-type")),
			   indent, depth);
	} else if (!strcmp(meta, "alternate")) {
		printf("one of:\n");
		json_array_foreach(json_object_get(t, "members"), i, v) {
			printf("%*s- ", indent + 2, "");
			print_type(schema, json_string_value(json_object_get(v, "type")),
				   indent + 4, depth + 1);
		}
	} else if (!strcmp(meta, "object")) {
		printf("%s\n", readable_name(name) ? name : "object");
		if (depth < 3)
			print_members(schema, t, indent + 2, depth + 1);
	} else {
		printf("%s\n", name);
	}
}

static void print_members(json_t *schema, json_t *type, int indent, int depth)
{
	const char *tag = json_string_value(json_object_get(type, "tag"));
	size_t i;
	json_t *m;

	json_array_foreach(json_object_get(type, "members"), i, m) {
		const char *name = json_string_value(json_object_get(m, "name"));
		bool optional = json_object_get(m, "default") != NULL;
		char label[128];

		snprintf(label, sizeof(label), optional ? "[%s]" : "%s", name ? name : "?");
		printf("%*s%-24s ", indent, "", label);
		print_type(schema, json_string_value(json_object_get(m, "type")), indent, depth);
	}
	json_array_foreach(json_object_get(type, "variants"), i, m) {
		json_t *vt = schema_find(schema, json_string_value(json_object_get(m, "type")));

		printf("%*swhen %s is %s:\n", indent, "", tag ? tag : "?",
		       json_string_value(json_object_get(m, "case")) ?: "?");
		if (depth < 3 && vt)
			print_members(schema, vt, indent + 2, depth + 1);
	}
}

static void text_schema(json_t *schema, const char *command)
{
	json_t *e, *args;
	const char *ret;

	if (!command) {
		list_meta(schema, "command", "commands");
		list_meta(schema, "event", "events");
		return;
	}
	e = schema_find(schema, command);
	printf("%s (%s)\n", command, json_string_value(json_object_get(e, "meta-type")));
	args = schema_find(schema, json_string_value(json_object_get(e, "arg-type")));
	if (!args || (json_array_size(json_object_get(args, "members")) == 0 &&
		      !json_object_get(args, "variants"))) {
		printf("  arguments: none\n");
	} else {
		printf("  arguments:\n");
		print_members(schema, args, 4, 0);
	}
	ret = json_string_value(json_object_get(e, "ret-type"));
	if (ret) {
		json_t *rt = schema_find(schema, ret);

		if (rt && !strcmp(json_string_value(json_object_get(rt, "meta-type")) ?: "", "object") &&
		    json_array_size(json_object_get(rt, "members")) == 0) {
			printf("  returns: nothing\n");
		} else {
			printf("  returns: ");
			print_type(schema, ret, 2, 0);
		}
	}
}

static void text_qmp_return(json_t *value)
{
	char *s;

	if (json_is_object(value) && json_object_size(value) == 0)
		return;	/* most commands return {}: nothing to say */
	s = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	printf("%s\n", s ? s : "");
	free(s);
}

static void text_error(json_t *error)
{
	(void)error;	/* the message on stderr says it all */
}

const struct output output_text = {
	.exports = text_exports,
	.stats = text_stats,
	.nodes = text_nodes,
	.info = text_info,
	.rates = text_rates,
	.version = text_version,
	.added = text_added,
	.deleted = text_deleted,
	.event = text_event,
	.schema = text_schema,
	.qmp_return = text_qmp_return,
	.error = text_error,
};
