/*
 * qmp-args.h: arguments of a QMP command typed by a person, as QEMU's
 * qmp-shell takes them: either one JSON object, or KEY=VALUE words where
 * VALUE is JSON when it parses as JSON (numbers, true, false, null,
 * objects, arrays) and a string otherwise, and a dotted KEY builds nested
 * objects (file.filename=x.img gives {"file": {"filename": "x.img"}}).
 * Pure: used by `exportctl qmp`, the shell, and the unit tests.
 */
#ifndef EXPORTCTL_QMP_ARGS_H
#define EXPORTCTL_QMP_ARGS_H

#include <jansson.h>

/*
 * The arguments object for words[0..n-1]; an empty object for n == 0.
 * NULL with *errp (allocated) saying which word was wrong.
 */
json_t *qmp_args_parse(int n, const char *const *words, char **errp);

/*
 * args (not stolen) typed by the schema exportctl was built with, as the
 * daemon types its --blockdev options: on/off/yes/no/true/false where the
 * schema says boolean, "64M" where it says size.  A new reference to args
 * itself when the schema does not know the command or args do not fit
 * it: the daemon then says what is wrong, in its words.
 */
json_t *qmp_args_typed(const char *command, json_t *args);

/*
 * Split a shell line into words at blanks outside quotes and brackets:
 * 'a b' and "a b" are one word without their quotes; within {...} or
 * [...] quotes are kept, so key={"a": "b c"} stays one JSON word.
 * Returns the number of words (at most max) stored as allocated strings,
 * or -1 with *errp on an unterminated quote or bracket.
 */
int qmp_args_split(const char *line, char **words, int max, char **errp);

#endif
