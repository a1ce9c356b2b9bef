/*
 * image-url.h: the protocol node for an image given as a URL
 * (nbd://, nbd+unix://, http://, https://) to `exportctl add --image`.
 */
#ifndef EXPORTCTL_IMAGE_URL_H
#define EXPORTCTL_IMAGE_URL_H

#include <jansson.h>
#include <stdbool.h>

/* Whether image names a remote image by URL rather than a local path. */
bool image_is_url(const char *image);
/*
 * The blockdev-add arguments (driver and its options, no node-name) of
 * the node that url names; NULL with *errp set (caller frees) if the URL
 * is malformed.
 */
json_t *image_url_node(const char *url, char **errp);

#endif
