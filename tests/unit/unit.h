/*
 * unit.h: a tiny unit-test framework.  A test file defines its tests as
 * functions, lists them in a NULL-terminated struct unit_test array and
 * calls unit_run() from main().  The run ends with the line
 * "N passed, N failed" and a non-zero exit status on any failure.
 */
#ifndef EXPORTD_UNIT_H
#define EXPORTD_UNIT_H

#include <stdbool.h>
#include <string.h>

struct unit_test {
	const char *name;
	void (*fn)(void);
};

void unit_check(bool ok, const char *expr, const char *file, int line);
int unit_run(const char *suite, const struct unit_test *tests);

#define CHECK(cond) unit_check(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ(a, b) unit_check((a) == (b), #a " == " #b, __FILE__, __LINE__)
#define CHECK_STREQ(a, b) unit_check((a) && (b) && !strcmp((a), (b)), \
				     #a " equals " #b, __FILE__, __LINE__)

#endif
