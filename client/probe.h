/*
 * probe.h: tell a qcow2 (or vdi, vpc, vhdx, vmdk) image from a raw one, as `--format
 * auto` does: an image that starts with the qcow2 magic "QFI\xfb" is
 * qcow2, one with another format's magic (probe.c) that format, anything
 * else is raw (QEMU's raw driver accepts every file).
 *
 * A probe must never grant what an explicit format would not: the start
 * of a raw disk is written by its guest, who can make it look like a
 * qcow2 header naming any host file as its backing file.  So the probe
 * also reports the files a qcow2 header names, and whether the image is a
 * VMDK descriptor (which names extent files), for the caller to refuse.
 */
#ifndef EXPORTCTL_PROBE_H
#define EXPORTCTL_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* What a probe found. */
struct probe_info {
	const char *format;	/* "qcow2", "luks", "vdi", "vpc", "vhdx", "vmdk" or "raw" */
	char *backing_file;	/* qcow2: the backing file it names, or NULL */
	bool data_file;		/* qcow2: it uses an external data file */
	bool vmdk_descriptor;	/* vmdk: a text descriptor, naming extent files */
};

/* The format of an image from its first len bytes (512 suffice). */
const char *probe_format_buf(const unsigned char *buf, size_t len);

/*
 * Read the start of path and probe it.  Only a regular file or a block
 * device is read (a FIFO would block, a character device would run its
 * driver).  0, or -1 with errno set (EINVAL: not a file or a device).
 * Free with probe_info_clear.
 */
int probe_image(const char *path, struct probe_info *pi);
void probe_info_clear(struct probe_info *pi);

#endif
