/*
 * rbd-spec.c: `exportctl add --image rbd:pool/image[@snap][:conf=...]`:
 * the spelling of a Ceph RBD image that qemu-img users know, turned into
 * the options of an rbd protocol node (QEMU's BlockdevOptionsRbd).
 *
 * The syntax is QEMU's (block/rbd.c, qemu_rbd_parse_filename):
 * "rbd:" pool "/" [namespace "/"] image ["@" snapshot] then ":key=value"
 * pairs, where a backslash escapes the next character.  "conf" names the
 * ceph.conf to read and "id" the Ceph user.  QEMU passes any other key to
 * librados as a setting; BlockdevOptionsRbd has no member for that, so
 * such a key is refused here with a hint, rather than silently dropped.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ctl-util.h"
#include "rbd-spec.h"

#define RBD_PREFIX "rbd:"

bool rbd_spec_matches(const char *image)
{
	return strncmp(image, RBD_PREFIX, strlen(RBD_PREFIX)) == 0;
}

/*
 * Cut s at its first delim that no backslash escapes: returns what
 * follows it, or NULL (and s unchanged) when there is none.
 */
static char *cut_at(char *s, char delim)
{
	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
		} else if (*s == delim) {
			*s = '\0';
			return s + 1;
		}
	}
	return NULL;
}

/* Drop the escaping backslashes, in place. */
static char *unescape(char *s)
{
	char *r = s, *w = s;

	for (; *r; r++) {
		if (*r == '\\' && r[1])
			r++;
		*w++ = *r;
	}
	*w = '\0';
	return s;
}

json_t *rbd_spec_options(const char *spec, char **err)
{
	char *buf = ctl_xstrdup(spec + strlen(RBD_PREFIX));
	char *pool = buf, *image, *snap, *ns = NULL, *opts, *key, *value;
	json_t *o = json_object();

	*err = NULL;
	json_object_set_new(o, "driver", json_string("rbd"));
	image = cut_at(pool, '/');
	if (!image || !pool[0]) {
		*err = ctl_xasprintf("'%s': the pool name is required (rbd:pool/image)", spec);
		goto fail;
	}
	/* QEMU's order: the options start after the image or the snapshot. */
	snap = cut_at(image, '@');
	opts = cut_at(snap ? snap : image, ':');
	value = cut_at(image, '/');
	if (value) {
		ns = image;
		image = value;
	}
	if (!image[0]) {
		*err = ctl_xasprintf("'%s': no image name after the pool", spec);
		goto fail;
	}
	if (snap && !snap[0]) {
		*err = ctl_xasprintf("'%s': no snapshot name after '@'", spec);
		goto fail;
	}
	json_object_set_new(o, "pool", json_string(unescape(pool)));
	json_object_set_new(o, "image", json_string(unescape(image)));
	if (ns && ns[0])
		json_object_set_new(o, "namespace", json_string(unescape(ns)));
	if (snap)
		json_object_set_new(o, "snapshot", json_string(unescape(snap)));
	while (opts) {
		key = opts;
		value = cut_at(key, '=');
		if (!value) {
			*err = ctl_xasprintf("'%s': conf option %s has no value", spec,
					     unescape(key));
			goto fail;
		}
		opts = cut_at(value, ':');
		unescape(key);
		unescape(value);
		if (!strcmp(key, "conf")) {
			json_object_set_new(o, "conf", json_string(value));
		} else if (!strcmp(key, "id")) {
			json_object_set_new(o, "user", json_string(value));
		} else {
			*err = ctl_xasprintf("'%s': option '%s' cannot be passed to an rbd node: "
					     "put it in the ceph.conf given with conf=", spec, key);
			goto fail;
		}
	}
	free(buf);
	return o;

fail:
	free(buf);
	json_decref(o);
	return NULL;
}
