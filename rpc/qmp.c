/*
 * qmp.c: building and serialising QMP messages (see qmp.h).  jansson keeps
 * members in insertion order, which we use to match QEMU's member order
 * where a client could see it (greeting, event timestamp).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "rpc/qmp.h"
#include "rpc/xalloc.h"

json_t *qmp_version_info(void)
{
	return json_pack("{s:{s:i,s:i,s:i},s:s}",
			 "qemu",
			 "micro", QMP_COMPAT_QEMU_MICRO,
			 "minor", QMP_COMPAT_QEMU_MINOR,
			 "major", QMP_COMPAT_QEMU_MAJOR,
			 "package", "exportd " EXPORTD_VERSION);
}

json_t *qmp_greeting_new(void)
{
	return json_pack("{s:{s:o,s:[]}}", "QMP", "version", qmp_version_info(),
			 "capabilities");
}

json_t *qmp_reply_new(json_t *ret, json_t *id)
{
	json_t *msg = json_object();

	json_object_set_new(msg, "return", ret ? ret : json_object());
	if (id)
		json_object_set(msg, "id", id);
	return msg;
}

json_t *qmp_error_new(const char *cls, const char *desc, json_t *id)
{
	json_t *msg = json_object();

	/* QEMU's member order: "id" before "error", but after "return". */
	if (id)
		json_object_set(msg, "id", id);
	json_object_set_new(msg, "error", json_pack("{s:s,s:s}", "class", cls, "desc", desc));
	return msg;
}

json_t *qmp_event_new(const char *event, json_t *data)
{
	struct timeval tv;
	json_t *msg;

	gettimeofday(&tv, NULL);
	/* QEMU's member order: timestamp, event, data. */
	msg = json_object();
	json_object_set_new(msg, "timestamp",
			    json_pack("{s:I,s:I}", "seconds", (json_int_t)tv.tv_sec,
				      "microseconds", (json_int_t)tv.tv_usec));
	json_object_set_new(msg, "event", json_string(event));
	if (data)
		json_object_set_new(msg, "data", data);
	return msg;
}

char *qmp_format(json_t *msg, size_t *len)
{
	/* Not JSON_COMPACT: QEMU writes ", " and ": " between members. */
	char *text = json_dumps(msg, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	size_t n;
	char *line;

	if (!text)
		text = xstrdup("{}");
	n = strlen(text);
	line = xmalloc(n + 3);
	memcpy(line, text, n);
	line[n] = '\r';
	line[n + 1] = '\n';
	line[n + 2] = '\0';
	free(text);
	if (len)
		*len = n + 2;
	return line;
}
