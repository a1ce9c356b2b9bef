/*
 * qmp.h: QMP messages as QEMU's docs/interop/qmp-spec.rst defines them,
 * shared by the daemon and exportctl: the greeting, replies, errors and
 * events, and their serialisation (one JSON object per line, CRLF-ended
 * like QEMU's monitor).
 */
#ifndef EXPORTD_QMP_H
#define EXPORTD_QMP_H

#include <jansson.h>
#include <stddef.h>

/* The QEMU version whose FUSE export semantics exportd follows. */
#define QMP_COMPAT_QEMU_MAJOR 7
#define QMP_COMPAT_QEMU_MINOR 2
#define QMP_COMPAT_QEMU_MICRO 0

/* {"qemu": {"micro", "minor", "major"}, "package": "exportd X.Y.Z"} */
json_t *qmp_version_info(void);
/* {"QMP": {"version": ..., "capabilities": []}} */
json_t *qmp_greeting_new(void);
/* {"return": ret} (ret stolen; NULL means {}), with "id" copied if given. */
json_t *qmp_reply_new(json_t *ret, json_t *id);
/* {"id"?, "error": {"class", "desc"}}: "id" copied if given, first as QEMU does. */
json_t *qmp_error_new(const char *cls, const char *desc, json_t *id);
/* {"timestamp": {"seconds", "microseconds"}, "event", "data"?} (data stolen). */
json_t *qmp_event_new(const char *event, json_t *data);
/* Serialise msg as one line ending in CRLF; caller frees.  *len excludes NUL. */
char *qmp_format(json_t *msg, size_t *len);

#endif
