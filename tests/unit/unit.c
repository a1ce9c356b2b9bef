/*
 * unit.c: runs the tests of one unit-test program and counts failures
 * (see unit.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

static int unit_failures_in_test;

void unit_check(bool ok, const char *expr, const char *file, int line)
{
	if (ok)
		return;
	unit_failures_in_test++;
	fprintf(stderr, "    %s:%d: check failed: %s\n", file, line, expr);
}

int unit_run(const char *suite, const struct unit_test *tests)
{
	int passed = 0, failed = 0;

	for (const struct unit_test *t = tests; t->name; t++) {
		unit_failures_in_test = 0;
		t->fn();
		if (unit_failures_in_test) {
			failed++;
			printf("FAIL %s: %s\n", suite, t->name);
		} else {
			passed++;
			printf("ok   %s: %s\n", suite, t->name);
		}
	}
	printf("%s: %d passed, %d failed\n", suite, passed, failed);
	return failed ? 1 : 0;
}
