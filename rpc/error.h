/*
 * rpc/error.h: errors on the control path.
 *
 * A function that can fail on the control path takes `struct error **errp`
 * as its last argument, returns 0 (or a pointer) on success and -1 (or NULL)
 * on failure, and sets *errp only on failure.  errp may be NULL when the
 * caller does not care about the message.  The message says what failed and
 * on what ("Failed to stat 'x': No such file or directory"); the class is the
 * QMP error class that a client sees (GenericError unless said otherwise).
 */
#ifndef EXPORTD_ERROR_H
#define EXPORTD_ERROR_H

#include <stdarg.h>

struct error {
	char *class;	/* QMP error class, e.g. "GenericError" */
	char *msg;
};

#define ERROR_CLASS_GENERIC "GenericError"
#define ERROR_CLASS_COMMAND_NOT_FOUND "CommandNotFound"
#define ERROR_CLASS_DEVICE_NOT_FOUND "DeviceNotFound"

void error_setg(struct error **errp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like error_setg, appending ": " and strerror(errnum). */
void error_setg_errno(struct error **errp, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void error_set_class(struct error **errp, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void error_vset(struct error **errp, const char *cls, int errnum,
		const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
/* Prefix the message of *errp with "prefix: " (no-op when errp is NULL). */
void error_prepend(struct error **errp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Move src into *dst (frees src if dst is NULL or already set). */
void error_propagate(struct error **dst, struct error *src);
void error_free(struct error *err);

#endif
