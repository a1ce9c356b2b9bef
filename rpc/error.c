/*
 * rpc/error.c: struct error, the control path's way of saying what went wrong.
 * See rpc/error.h for the conventions.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/error.h"
#include "rpc/xalloc.h"

void error_vset(struct error **errp, const char *cls, int errnum,
		const char *fmt, va_list ap)
{
	struct error *err;
	char *msg;

	if (!errp)
		return;
	/* The first error wins: a later one is usually a consequence. */
	if (*errp)
		return;
	msg = xvasprintf(fmt, ap);
	if (errnum) {
		char *full = xasprintf("%s: %s", msg, strerror(errnum));
		free(msg);
		msg = full;
	}
	err = xcalloc(1, sizeof(*err));
	err->class = xstrdup(cls);
	err->msg = msg;
	*errp = err;
}

void error_setg(struct error **errp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(errp, ERROR_CLASS_GENERIC, 0, fmt, ap);
	va_end(ap);
}

void error_setg_errno(struct error **errp, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(errp, ERROR_CLASS_GENERIC, errnum, fmt, ap);
	va_end(ap);
}

void error_set_class(struct error **errp, const char *cls, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(errp, cls, 0, fmt, ap);
	va_end(ap);
}

void error_prepend(struct error **errp, const char *fmt, ...)
{
	va_list ap;
	char *prefix, *msg;

	if (!errp || !*errp)
		return;
	va_start(ap, fmt);
	prefix = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xasprintf("%s: %s", prefix, (*errp)->msg);
	free(prefix);
	free((*errp)->msg);
	(*errp)->msg = msg;
}

void error_propagate(struct error **dst, struct error *src)
{
	if (!src)
		return;
	if (dst && !*dst) {
		*dst = src;
		return;
	}
	error_free(src);
}

void error_free(struct error *err)
{
	if (!err)
		return;
	free(err->class);
	free(err->msg);
	free(err);
}
