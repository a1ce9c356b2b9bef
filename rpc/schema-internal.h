/*
 * schema-internal.h: what the schema's own files share (schema-load.c
 * builds a struct schema; schema-validate.c and schema-introspect.c read
 * it).  Private to rpc/schema-*.c: everyone else uses rpc/schema.h.
 */
#ifndef EXPORTD_SCHEMA_INTERNAL_H
#define EXPORTD_SCHEMA_INTERNAL_H

#include <jansson.h>

struct schema {
	json_t *root;
	json_t *types;		/* name -> definition (enum, struct, union, alternate) */
	json_t *commands;	/* name -> definition */
	json_t *events;		/* name -> definition */
	json_t *command_names;	/* array, schema order */
};

/* The JSON type introspection gives a built-in type ("size" -> "int"), or NULL. */
const char *schema_builtin_json_type(const char *name);
/* What a definition is: "enum", "struct", "union", "alternate", "command", "event". */
const char *schema_def_kind(json_t *def);

#endif
