/*
 * schema.h: the API contract, loaded from schema/exportd-schema.json
 * (embedded in the binary at build time).
 *
 * The schema validates every request before a handler runs, producing a
 * normalised copy of the arguments (so a handler only ever sees members
 * the schema knows, with the right types), answers query-commands and
 * query-qmp-schema, and validates the daemon's --blockdev/--export options
 * given as key=value strings.
 */
#ifndef EXPORTD_SCHEMA_H
#define EXPORTD_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

#include "rpc/error.h"

struct schema;

/* Parse and check a schema text (every referenced type defined, ...). */
struct schema *schema_load(const char *text, size_t len, struct error **errp);
void schema_free(struct schema *schema);
/* The daemon's own schema (embedded), loaded on first use; fatal if broken. */
struct schema *schema_builtin(void);

bool schema_has_command(const struct schema *schema, const char *name);
/* Names of all commands, in schema order (borrowed array of strings). */
json_t *schema_command_names(const struct schema *schema);

/*
 * Validate the arguments of a command (args may be NULL = {}).  Returns a
 * new normalised object, or NULL with *errp set ("Parameter 'x' is
 * missing", ...).
 */
json_t *schema_validate_command(const struct schema *schema, const char *command,
				json_t *args, struct error **errp);
/*
 * The same for arguments a person typed as key=value words: a string is
 * also taken where the schema wants a scalar, as on the daemon's command
 * line ("on"/"off"/"yes"/"no" for a boolean, "1G" for a size).
 */
json_t *schema_validate_command_keyval(const struct schema *schema, const char *command,
				       json_t *args, struct error **errp);
/*
 * Validate a value against a named type.  keyval: scalars arrive as
 * strings (from key=value command-line options) and are converted to the
 * schema's type ("on"/"off" -> bool, "512" -> int).
 */
json_t *schema_validate_type(const struct schema *schema, const char *type,
			     json_t *value, bool keyval, struct error **errp);
/* query-qmp-schema: a new array of SchemaInfo objects. */
json_t *schema_introspect(const struct schema *schema);

/*
 * Parse a QEMU-style "key=value,key2.sub=value" option string into a
 * nested object of strings, following QEMU's keyval rules (schema-
 * keyval.c).  implied_key (may be NULL) names the key that the first
 * element may leave out: "raw,..." is "driver=raw,..." with "driver".  A
 * string starting with '{' is parsed as JSON instead.  *keyval tells which
 * it was.
 */
json_t *keyval_parse(const char *text, const char *implied_key, bool *keyval,
		     struct error **errp);

#endif
