/*
 * probe.h: tell a qcow2 image from a raw one, as `--format auto` does:
 * an image that starts with the qcow2 magic "QFI\xfb" is qcow2, anything
 * else is raw (QEMU's raw driver accepts every file).
 */
#ifndef EXPORTCTL_PROBE_H
#define EXPORTCTL_PROBE_H

#include <stddef.h>

/* "qcow2" or "raw" for the first len bytes of an image. */
const char *probe_format_buf(const unsigned char *buf, size_t len);

/* Read the start of path and probe it; NULL with errno set on failure. */
const char *probe_format_file(const char *path);

#endif
