/*
 * explain.h: the daemon's error messages that exportctl can predict, told
 * in exportctl's terms (its options, its ids) with the daemon's own text
 * after them, so the user learns what to type and the text a search
 * engine or the daemon's log knows is kept.
 */
#ifndef EXPORTCTL_EXPLAIN_H
#define EXPORTCTL_EXPLAIN_H

#include <jansson.h>

/* What exportctl was doing when the daemon said no. */
struct explain_context {
	const char *id;		/* the export id (add, del) */
	const char *image;	/* add --image: the image's absolute path */
	json_t *nodes;		/* query-named-block-nodes from before, or NULL */
	json_t *exports;	/* query-block-exports from before, or NULL */
};

/*
 * An allocated message for desc, the daemon's error text: exportctl's words
 * and then "(exportd: desc)", or a copy of desc when it has none.
 */
char *explain_error(const char *desc, const struct explain_context *cx);

#endif
