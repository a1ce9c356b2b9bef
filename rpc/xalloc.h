/*
 * rpc/xalloc.h: allocation that never returns NULL, and the small macros
 * every file wants.  exportd and exportctl can do nothing useful once
 * malloc fails, so they die loudly: the message names the size asked for.
 * Part of the QMP library because its every file allocates.
 */
#ifndef EXPORTD_RPC_XALLOC_H
#define EXPORTD_RPC_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ROUND_UP(n, d) (DIV_ROUND_UP(n, d) * (d))
#define ROUND_DOWN(n, d) ((n) / (d) * (d))

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
