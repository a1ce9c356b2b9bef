/*
 * explain.c: exportctl's words for the daemon's errors it can predict (see
 * explain.h).  Each known message is matched by a piece of its text, as
 * stable as the QEMU wording it copies, and explained with what exportctl
 * knows of the context: which export uses an image, which flag to give.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-util.h"
#include "explain.h"

/* The export whose node chain opens image (a file node's filename), or NULL. */
static const char *export_of_image(const struct explain_context *cx)
{
	const char *file_node = NULL;
	size_t i;
	json_t *n, *e;

	if (!cx->image)
		return NULL;
	json_array_foreach(cx->nodes, i, n) {
		const char *file = json_string_value(json_object_get(n, "file"));

		if (file && !strcmp(file, cx->image) &&
		    !strcmp(json_string_value(json_object_get(n, "drv")) ?: "", "file")) {
			file_node = json_string_value(json_object_get(n, "node-name"));
			break;
		}
	}
	if (!file_node)
		return NULL;
	/* add names the nodes ID-file and ID-fmt; a hand-made chain is not traced. */
	json_array_foreach(cx->exports, i, e) {
		const char *node = json_string_value(json_object_get(e, "node-name"));
		const char *id = json_string_value(json_object_get(e, "id"));
		size_t len = strlen(id ?: "");

		if (!node || !id)
			continue;
		if (!strcmp(node, file_node) ||
		    (!strncmp(file_node, id, len) && !strcmp(file_node + len, "-file")))
			return id;
	}
	return NULL;
}

char *explain_error(const char *desc, const struct explain_context *cx)
{
	const char *owner;

	if (strstr(desc, "Duplicate nodes with node-name=") && cx->id)
		return ctl_xasprintf("export id '%s' is taken: its node names are in use "
				     "(give another --id; exportctl nodes lists them) "
				     "(exportd: %s)", cx->id, desc);
	if (strstr(desc, "use mode=hard to force") && cx->id)
		return ctl_xasprintf("export '%s' is still open: close its file, or give "
				     "--hard to remove it anyway (exportd: %s)", cx->id, desc);
	if (strstr(desc, "lock: is another process using the image")) {
		owner = export_of_image(cx);
		if (owner)
			return ctl_xasprintf("'%s' is already exported by this daemon, as "
					     "export '%s' (exportd: %s)", cx->image, owner, desc);
		return ctl_xasprintf("'%s' is in use by another program (qemu, qemu-img, "
				     "another exportd...) (exportd: %s)",
				     cx->image ? cx->image : "the image", desc);
	}
	return ctl_xstrdup(desc);
}
