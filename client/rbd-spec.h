/*
 * rbd-spec.h: `--image rbd:pool/image[@snap][:conf=...]`, QEMU's spelling
 * of a Ceph RBD image, as the options of an rbd block node.
 */
#ifndef EXPORTCTL_RBD_SPEC_H
#define EXPORTCTL_RBD_SPEC_H

#include <jansson.h>
#include <stdbool.h>

/* Whether image is spelled "rbd:...". */
bool rbd_spec_matches(const char *image);

/*
 * The BlockdevOptionsRbd of spec ("driver": "rbd", pool, image, and
 * namespace, snapshot, conf, user when given), or NULL with *err set to
 * a malloc'd message saying what is wrong with spec.
 */
json_t *rbd_spec_options(const char *spec, char **err);

#endif
