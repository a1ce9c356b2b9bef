/*
 * block/blkdebug.c: QEMU's blkdebug filter driver, enough of it to make
 * the layers above see I/O errors on demand: tests reach the EIO and
 * ENOSPC paths of an export through it, and QEMU's iotests (file-io-error)
 * use it over null-co.
 *
 * A blkdebug node passes everything to its child `image`.  Its rules are
 * QEMU's: `inject-error` rules wait for their `event`; when it fires (and
 * the node is in the rule's `state`, if one is given) they become active,
 * replacing the rules an earlier event activated; from then on a request
 * of a listed `iotype` (default: read, write, write-zeroes, discard,
 * flush) that covers byte `sector` * 512 (default: any request) fails with
 * `errno` (default EIO), only once if `once`.  `set-state` rules move the
 * node to `new_state` when their event fires; the node starts in state 1.
 *
 * Events: `none` fires once, when the node is opened (rules that must
 * hold from the start use it).  In QEMU, `read_aio` and `write_aio` are
 * fired by the format driver above (raw, qcow2) before it reads or writes
 * data through blkdebug; exportd's formats raise no events, so the node
 * raises them itself before each read and write it receives, which is
 * what QEMU does for raw over blkdebug.  Every other QEMU event, `config`
 * files, and request limits other than QEMU's defaults are refused when
 * the node is opened, never ignored.  `immediately` is accepted: exportd
 * fails the request at once either way.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "util.h"

enum blkdebug_event {
	BLKDEBUG_EVENT_NONE,
	BLKDEBUG_EVENT_READ_AIO,
	BLKDEBUG_EVENT_WRITE_AIO,
};

static const char *const blkdebug_event_names[] = {
	[BLKDEBUG_EVENT_NONE] = "none",
	[BLKDEBUG_EVENT_READ_AIO] = "read_aio",
	[BLKDEBUG_EVENT_WRITE_AIO] = "write_aio",
};

/* QEMU's BlkdebugIOType, as bits of a rule's mask. */
enum blkdebug_iotype {
	BLKDEBUG_IO_READ,
	BLKDEBUG_IO_WRITE,
	BLKDEBUG_IO_WRITE_ZEROES,
	BLKDEBUG_IO_DISCARD,
	BLKDEBUG_IO_FLUSH,
	BLKDEBUG_IO_BLOCK_STATUS,
};

static const char *const blkdebug_iotype_names[] = {
	[BLKDEBUG_IO_READ] = "read",
	[BLKDEBUG_IO_WRITE] = "write",
	[BLKDEBUG_IO_WRITE_ZEROES] = "write-zeroes",
	[BLKDEBUG_IO_DISCARD] = "discard",
	[BLKDEBUG_IO_FLUSH] = "flush",
	[BLKDEBUG_IO_BLOCK_STATUS] = "block-status",
};

/* QEMU's default: every iotype but block-status. */
#define BLKDEBUG_IO_DEFAULT_MASK						\
	((1u << BLKDEBUG_IO_READ) | (1u << BLKDEBUG_IO_WRITE) |			\
	 (1u << BLKDEBUG_IO_WRITE_ZEROES) | (1u << BLKDEBUG_IO_DISCARD) |	\
	 (1u << BLKDEBUG_IO_FLUSH))

struct blkdebug_rule {
	int event;
	int state;		/* 0: in any state */
	bool inject;		/* inject-error; else set-state */
	int new_state;		/* set-state */
	int error;		/* inject-error: errno, 0 = succeed */
	int64_t offset;		/* inject-error: byte to cover, -1 = any */
	unsigned iotype_mask;
	bool once;
	bool active;		/* activated by its event, not used up */
	bool removed;		/* a `once` rule that has fired */
};

struct blkdebug_state {
	pthread_mutex_t lock;	/* rules and state: requests run on many threads */
	struct blkdebug_rule *rules;	/* in the order given */
	size_t n_rules;
	int state;
};

static struct blkdebug_state *blkdebug_state(struct block_node *bs)
{
	return bs->opaque;
}

static int blkdebug_lookup(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return (int)i;
	return -1;
}

static int blkdebug_parse_event(json_t *rule, const char *what, struct error **errp)
{
	const char *name = json_string_value(json_object_get(rule, "event"));
	int event = blkdebug_lookup(blkdebug_event_names, ARRAY_SIZE(blkdebug_event_names),
				    name ? name : "");

	if (event < 0)
		error_setg(errp, "blkdebug: %s event '%s' is not supported by exportd "
			   "(supported: none, read_aio, write_aio)", what, name ? name : "");
	return event;
}

static int blkdebug_add_rule(struct blkdebug_state *s, json_t *rule, bool inject,
			     struct error **errp)
{
	struct blkdebug_rule *r;
	json_t *v;
	int event = blkdebug_parse_event(rule, inject ? "inject-error" : "set-state", errp);

	if (event < 0)
		return -1;
	s->rules = xrealloc(s->rules, (s->n_rules + 1) * sizeof(*s->rules));
	r = &s->rules[s->n_rules++];
	memset(r, 0, sizeof(*r));
	r->event = event;
	r->inject = inject;
	r->state = (int)json_integer_value(json_object_get(rule, "state"));
	if (!inject) {
		r->new_state = (int)json_integer_value(json_object_get(rule, "new_state"));
		return 0;
	}
	v = json_object_get(rule, "errno");
	r->error = v ? (int)json_integer_value(v) : EIO;
	if (r->error < 0) {
		error_setg(errp, "blkdebug: 'errno' must not be negative");
		return -1;
	}
	v = json_object_get(rule, "sector");
	r->offset = v ? json_integer_value(v) : -1;
	if (v && (r->offset < 0 || r->offset > INT64_MAX / 512)) {
		error_setg(errp, "blkdebug: 'sector' %lld is out of range",
			   (long long)json_integer_value(v));
		return -1;
	}
	if (v)
		r->offset *= 512;
	v = json_object_get(rule, "iotype");
	if (v) {
		const char *name = json_string_value(v);
		int t = blkdebug_lookup(blkdebug_iotype_names, ARRAY_SIZE(blkdebug_iotype_names),
					name ? name : "");

		if (t < 0) {
			error_setg(errp, "blkdebug: unknown iotype '%s'", name ? name : "");
			return -1;
		}
		r->iotype_mask = 1u << t;
	} else {
		r->iotype_mask = BLKDEBUG_IO_DEFAULT_MASK;
	}
	r->once = json_is_true(json_object_get(rule, "once"));
	return 0;
}

/* Options QEMU has and exportd does not: refused unless at their default. */
static int blkdebug_refuse_unsupported(json_t *options, struct error **errp)
{
	static const char *const limits[] = {
		"align", "max-transfer", "opt-write-zero", "max-write-zero",
		"opt-discard", "max-discard",
	};
	static const char *const refused[] = {
		"config", "take-child-perms", "unshare-child-perms",
	};

	for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
		if (json_object_get(options, refused[i])) {
			error_setg(errp, "blkdebug: '%s' is not supported by exportd",
				   refused[i]);
			return -1;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(limits); i++) {
		json_t *v = json_object_get(options, limits[i]);

		if (v && json_integer_value(v) != 0) {
			error_setg(errp, "blkdebug: '%s' is not supported by exportd (only 0, "
				   "the default, is accepted)", limits[i]);
			return -1;
		}
	}
	return 0;
}

/*
 * An event fired (QEMU's blkdebug_debug_event): the node's rules for it
 * that hold in the current state run; injection rules replace the active
 * set, set-state rules choose the next state.  With s->lock held.
 */
static void blkdebug_fire_locked(struct blkdebug_state *s, int event)
{
	bool injected = false;
	int new_state = s->state;

	/* QEMU walks an event's rules newest first: the oldest set-state wins. */
	for (size_t i = s->n_rules; i-- > 0; ) {
		struct blkdebug_rule *r = &s->rules[i];

		if (r->removed || r->event != event || (r->state && r->state != s->state))
			continue;
		if (!r->inject) {
			new_state = r->new_state;
			continue;
		}
		if (!injected) {
			for (size_t j = 0; j < s->n_rules; j++)
				s->rules[j].active = false;
			injected = true;
		}
		r->active = true;
	}
	s->state = new_state;
}

/*
 * The error a request gets (QEMU's rule_check): the oldest active rule
 * that covers it decides.  0 to let the request through.
 */
static int blkdebug_check(struct block_node *bs, int event, enum blkdebug_iotype type,
			  uint64_t offset, uint64_t len)
{
	struct blkdebug_state *s = blkdebug_state(bs);
	int error = 0;

	pthread_mutex_lock(&s->lock);
	if (event >= 0)
		blkdebug_fire_locked(s, event);
	for (size_t i = 0; i < s->n_rules; i++) {
		struct blkdebug_rule *r = &s->rules[i];

		if (!r->active || !(r->iotype_mask & (1u << type)))
			continue;
		if (r->offset >= 0 && !(len && (uint64_t)r->offset >= offset &&
					(uint64_t)r->offset - offset < len))
			continue;
		error = r->error;
		if (error && r->once) {
			r->active = false;
			r->removed = true;
		}
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return -error;
}

static int blkdebug_open(struct block_node *bs, json_t *options, struct error **errp)
{
	struct blkdebug_state *s = blkdebug_state(bs);
	json_t *rule;
	size_t i;

	s->state = 1;
	if (blkdebug_refuse_unsupported(options, errp) < 0)
		return -1;
	json_array_foreach(json_object_get(options, "inject-error"), i, rule) {
		if (blkdebug_add_rule(s, rule, true, errp) < 0)
			goto fail;
	}
	json_array_foreach(json_object_get(options, "set-state"), i, rule) {
		if (blkdebug_add_rule(s, rule, false, errp) < 0)
			goto fail;
	}
	bs->file = block_node_open_child(bs, json_object_get(options, "image"), "image",
					 bs->read_only, 0, errp);
	if (!bs->file)
		goto fail;
	pthread_mutex_init(&s->lock, NULL);
	bs->filename = xasprintf("blkdebug::%s", bs->file->filename ? bs->file->filename : "");
	blkdebug_fire_locked(s, BLKDEBUG_EVENT_NONE);	/* nobody else sees s yet */
	return 0;

fail:
	/* close() is not called for a node that failed to open. */
	free(s->rules);
	s->rules = NULL;
	return -1;
}

static void blkdebug_close(struct block_node *bs)
{
	struct blkdebug_state *s = blkdebug_state(bs);

	if (bs->file)
		block_node_unref(bs->file);
	bs->file = NULL;
	free(s->rules);
	s->rules = NULL;
	pthread_mutex_destroy(&s->lock);
}

static int64_t blkdebug_get_length(struct block_node *bs)
{
	return block_node_length(bs->file);
}

static int64_t blkdebug_get_allocated_size(struct block_node *bs)
{
	return block_node_allocated_size(bs->file);
}

static int blkdebug_pread(struct block_node *bs, void *buf, size_t len, uint64_t offset)
{
	int ret = blkdebug_check(bs, BLKDEBUG_EVENT_READ_AIO, BLKDEBUG_IO_READ, offset, len);

	return ret ? ret : block_node_pread(bs->file, buf, len, offset);
}

static int blkdebug_pwrite(struct block_node *bs, const void *buf, size_t len,
			   uint64_t offset)
{
	int ret = blkdebug_check(bs, BLKDEBUG_EVENT_WRITE_AIO, BLKDEBUG_IO_WRITE, offset, len);

	return ret ? ret : block_node_pwrite(bs->file, buf, len, offset);
}

static int blkdebug_flush(struct block_node *bs)
{
	int ret = blkdebug_check(bs, -1, BLKDEBUG_IO_FLUSH, 0, 0);

	return ret ? ret : block_node_flush(bs->file);
}

static int blkdebug_discard(struct block_node *bs, uint64_t offset, uint64_t len)
{
	int ret = blkdebug_check(bs, -1, BLKDEBUG_IO_DISCARD, offset, len);

	return ret ? ret : block_node_discard(bs->file, offset, len);
}

static int blkdebug_write_zeroes(struct block_node *bs, uint64_t offset, uint64_t len,
				 int flags)
{
	int ret = blkdebug_check(bs, -1, BLKDEBUG_IO_WRITE_ZEROES, offset, len);

	return ret ? ret : block_node_write_zeroes(bs->file, offset, len, flags);
}

/* As QEMU's blkdebug: resizing is the child's business. */
static int blkdebug_truncate(struct block_node *bs, uint64_t length)
{
	return block_node_truncate(bs->file, length);
}

static int blkdebug_check_resize(struct block_node *bs, struct error **errp)
{
	if (bs->file->drv->check_resize)
		return bs->file->drv->check_resize(bs->file, errp);
	return 0;
}

static int blkdebug_block_status(struct block_node *bs, uint64_t offset, uint64_t len,
				 uint64_t *pnum)
{
	int ret = blkdebug_check(bs, -1, BLKDEBUG_IO_BLOCK_STATUS, offset, len);

	return ret ? ret : block_node_block_status(bs->file, offset, len, pnum);
}

const struct block_driver block_driver_blkdebug = {
	.name = "blkdebug",
	.is_format = false,	/* a filter: its users' permissions pass to `image` */
	.state_size = sizeof(struct blkdebug_state),
	.open = blkdebug_open,
	.close = blkdebug_close,
	.get_length = blkdebug_get_length,
	.get_allocated_size = blkdebug_get_allocated_size,
	.pread = blkdebug_pread,
	.pwrite = blkdebug_pwrite,
	.flush = blkdebug_flush,
	.discard = blkdebug_discard,
	.write_zeroes = blkdebug_write_zeroes,
	.truncate = blkdebug_truncate,
	.block_status = blkdebug_block_status,
	.check_resize = blkdebug_check_resize,
};
