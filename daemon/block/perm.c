/*
 * block/perm.c: the permission graph of block nodes, after QEMU's
 * BLK_PERM_* scheme.
 *
 * Every user of a node (a parent node through its file or backing child,
 * or an export) holds some permissions (consistent read, write, write
 * unchanged, resize) and shares some with the other users.  A node's
 * cumulative permissions are the union of what its users hold and the
 * intersection of what they share; they flow down to its children through
 * the driver's child_perm callback, and at the bottom the file driver
 * turns them into OFD image locks (block/lock.c) so that other processes
 * (qemu, qemu-img, another exportd) see them.
 *
 * Conflicts inside this process are refused here, with a message naming
 * both users; exports of the same node never conflict with each other,
 * since they serve the very same node coherently.  Every update is
 * all-or-nothing: on failure the graph is back as it was.
 *
 * Main thread only: permissions change on the control path.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "log.h"
#include "util.h"

static const char *const block_perm_name[] = {
	"consistent read", "write", "write unchanged", "resize",
};

const char *block_perm_names(uint64_t perm, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(block_perm_name); i++) {
		if (!(perm & (1ULL << i)))
			continue;
		len += snprintf(buf + len, len < size ? size - len : 0, "%s%s",
				len ? ", " : "", block_perm_name[i]);
	}
	return buf;
}

static struct block_user *perm_find_user(struct block_node *bs,
					 struct block_node *parent)
{
	struct block_user *u;

	TAILQ_FOREACH(u, &bs->users, next) {
		if (u->parent == parent)
			return u;
	}
	return NULL;
}

static void perm_describe(struct block_user *u, struct block_node *bs,
			  char *buf, size_t size)
{
	if (u->parent)
		snprintf(buf, size, "%s (uses node '%s' as '%s' child)", u->who,
			 bs->node_name, u->role);
	else
		snprintf(buf, size, "%s", u->who);
}

/*
 * Would user u holding perm and sharing shared conflict with another user
 * of bs?  Exports do not conflict with each other: they reach the node
 * through the same driver state, so there is no second writer.
 */
static int perm_check_conflicts(struct block_node *bs, struct block_user *u,
				uint64_t perm, uint64_t shared,
				struct error **errp)
{
	struct block_user *o;
	char names[128], a[256], b[256];

	TAILQ_FOREACH(o, &bs->users, next) {
		struct block_user *req, *unsh;
		uint64_t c;

		if (o == u || (!o->parent && !u->parent))
			continue;
		if ((c = perm & ~o->shared)) {
			req = u;
			unsh = o;
		} else if ((c = o->perm & ~shared)) {
			req = o;
			unsh = u;
		} else {
			continue;
		}
		perm_describe(req, bs, a, sizeof(a));
		perm_describe(unsh, bs, b, sizeof(b));
		error_setg(errp, "Permission conflict on node '%s': permissions "
			   "'%s' are both required by %s and unshared by %s",
			   bs->node_name, block_perm_names(c, names, sizeof(names)),
			   a, b);
		return -1;
	}
	return 0;
}

/*
 * What a format driver without its own child_perm asks of its file child:
 * QEMU's default for a child holding data and metadata (qcow2's file).
 * The metadata must stay consistent, so the child is always read and
 * nobody else may write or resize it; a writable node may rewrite its
 * metadata at any time, so it holds write and resize whether or not its
 * users write.
 */
static void perm_storage_child(struct block_node *bs, uint64_t *perm,
			       uint64_t *shared)
{
	*perm = bs->perm | BLOCK_PERM_CONSISTENT_READ;
	if (!bs->read_only)
		*perm |= BLOCK_PERM_WRITE | BLOCK_PERM_RESIZE;
	if (*perm & BLOCK_PERM_WRITE_UNCHANGED)
		*perm |= BLOCK_PERM_WRITE;
	if (*perm & BLOCK_PERM_WRITE)
		*perm |= BLOCK_PERM_RESIZE;
	*shared = bs->shared & ~(uint64_t)(BLOCK_PERM_WRITE | BLOCK_PERM_RESIZE);
}

/* What bs asks of its child, given bs's own cumulative permissions. */
static void perm_child_wants(struct block_node *bs, struct block_node *child,
			     uint64_t *perm, uint64_t *shared)
{
	if (bs->drv->child_perm) {
		bs->drv->child_perm(bs, child, bs->perm, bs->shared, perm, shared);
		return;
	}
	if (child == bs->file) {
		if (bs->drv->is_format) {
			perm_storage_child(bs, perm, shared);
			return;
		}
		/* A filter: what our users need is what we need. */
		*perm = bs->perm;
		*shared = bs->shared;
		return;
	}
	/* A COW backing child is only read; writers may share it if our
	 * users can live with changing data, as QEMU's default. */
	*perm = bs->perm & BLOCK_PERM_CONSISTENT_READ;
	*shared = BLOCK_PERM_CONSISTENT_READ | BLOCK_PERM_WRITE_UNCHANGED;
	if (bs->shared & BLOCK_PERM_WRITE)
		*shared |= BLOCK_PERM_WRITE | BLOCK_PERM_RESIZE;
}

/* Give user u of bs new permissions and refresh bs; restores u on failure. */
static int perm_user_update(struct block_node *bs, struct block_user *u,
			    uint64_t perm, uint64_t shared, struct error **errp)
{
	uint64_t old_perm = u->perm, old_shared = u->shared;

	if (perm == old_perm && shared == old_shared)
		return 0;
	if (perm_check_conflicts(bs, u, perm, shared, errp) < 0)
		return -1;
	u->perm = perm;
	u->shared = shared;
	if (block_perm_refresh(bs, errp) < 0) {
		u->perm = old_perm;
		u->shared = old_shared;
		return -1;
	}
	return 0;
}

static int perm_update_child(struct block_node *bs, struct block_node *child,
			     struct error **errp)
{
	struct block_user *u = perm_find_user(child, bs);
	uint64_t perm, shared;

	if (!u)
		return 0;
	perm_child_wants(bs, child, &perm, &shared);
	return perm_user_update(child, u, perm, shared, errp);
}

int block_perm_refresh(struct block_node *bs, struct error **errp)
{
	uint64_t perm = 0, shared = BLOCK_PERM_ALL;
	uint64_t old_perm = bs->perm, old_shared = bs->shared;
	struct block_node *children[2] = { bs->file, bs->backing };
	struct block_user *u;

	TAILQ_FOREACH(u, &bs->users, next) {
		perm |= u->perm;
		shared &= u->shared;
	}
	if (bs->force_share)
		shared = BLOCK_PERM_ALL;
	if (perm == old_perm && shared == old_shared)
		return 0;
	if (bs->read_only && (perm & ~old_perm &
			      (BLOCK_PERM_WRITE | BLOCK_PERM_WRITE_UNCHANGED |
			       BLOCK_PERM_RESIZE))) {
		error_setg(errp, "Block node '%s' is read-only", bs->node_name);
		return -1;
	}
	if (bs->drv->set_perm && bs->drv->set_perm(bs, perm, shared, errp) < 0)
		return -1;
	bs->perm = perm;
	bs->shared = shared;
	for (size_t i = 0; i < ARRAY_SIZE(children); i++) {
		if (!children[i] || perm_update_child(bs, children[i], errp) == 0)
			continue;
		/* Undo: the children already updated, then this node. */
		bs->perm = old_perm;
		bs->shared = old_shared;
		for (size_t j = 0; j < i; j++) {
			if (children[j] && perm_update_child(bs, children[j], NULL) < 0)
				log_warnx("node '%s': could not restore the permissions "
					  "of its child '%s'", bs->node_name,
					  children[j]->node_name);
		}
		if (bs->drv->set_perm &&
		    bs->drv->set_perm(bs, old_perm, old_shared, NULL) < 0)
			log_warnx("node '%s': could not restore its image locks",
				  bs->node_name);
		return -1;
	}
	return 0;
}

static struct block_user *perm_user_new(struct block_node *parent, char *who,
					const char *role)
{
	struct block_user *u = xcalloc(1, sizeof(*u));

	u->parent = parent;
	u->who = who;
	u->role = role;
	u->perm = 0;
	u->shared = BLOCK_PERM_ALL;
	return u;
}

static void perm_user_free(struct block_user *u)
{
	if (!u)
		return;
	free(u->who);
	free(u);
}

int block_perm_attach_child(struct block_node *parent, struct block_node *child,
			    const char *role, struct error **errp)
{
	struct block_user *u;
	uint64_t perm, shared;

	u = perm_user_new(parent, xasprintf("node '%s'", parent->node_name), role);
	TAILQ_INSERT_TAIL(&child->users, u, next);
	perm_child_wants(parent, child, &perm, &shared);
	if (perm_user_update(child, u, perm, shared, errp) < 0) {
		TAILQ_REMOVE(&child->users, u, next);
		perm_user_free(u);
		return -1;
	}
	return 0;
}

void block_perm_detach_child(struct block_node *parent, struct block_node *child)
{
	struct block_user *u = perm_find_user(child, parent);
	struct error *err = NULL;

	if (!u)
		return;
	TAILQ_REMOVE(&child->users, u, next);
	perm_user_free(u);
	/* Only relaxes: cannot conflict, and unlocking bytes does not fail. */
	if (block_perm_refresh(child, &err) < 0) {
		log_warnx("node '%s': %s", child->node_name, err->msg);
		error_free(err);
	}
}

int block_perm_acquire_as(struct block_node *bs, const char *who, bool write,
			  bool resize, struct error **errp)
{
	struct block_user *u;
	uint64_t perm = BLOCK_PERM_CONSISTENT_READ, shared = BLOCK_PERM_ALL;

	if (write && bs->read_only) {
		error_setg(errp, "Block node '%s' is read-only", bs->node_name);
		return -1;
	}
	if (resize) {
		if (!bs->drv->truncate) {
			error_setg(errp, "Node '%s' cannot be resized: driver '%s' "
				   "does not support it", bs->node_name,
				   bs->drv->name);
			return -1;
		}
		if (bs->drv->check_resize && bs->drv->check_resize(bs, errp) < 0)
			return -1;
	}
	/*
	 * A writer keeps other processes from writing or resizing the image
	 * (QEMU's exports would share everything, so two of them could write
	 * one image unknowingly); a reader shares everything.
	 */
	if (write) {
		perm |= BLOCK_PERM_WRITE;
		shared &= ~(BLOCK_PERM_WRITE | BLOCK_PERM_RESIZE);
	}
	if (resize) {
		perm |= BLOCK_PERM_RESIZE;
		shared &= ~BLOCK_PERM_RESIZE;
	}
	u = perm_user_new(NULL, xstrdup(who ? who : "an export"), "export");
	TAILQ_INSERT_TAIL(&bs->users, u, next);
	if (perm_user_update(bs, u, perm, shared, errp) < 0) {
		TAILQ_REMOVE(&bs->users, u, next);
		perm_user_free(u);
		return -1;
	}
	if (write)
		bs->write_users++;
	if (resize)
		bs->resize_users++;
	return 0;
}

int block_perm_acquire(struct block_node *bs, bool write, bool resize,
		       struct error **errp)
{
	return block_perm_acquire_as(bs, NULL, write, resize, errp);
}

void block_perm_release(struct block_node *bs, bool write, bool resize)
{
	struct block_user *u, *found = NULL;
	uint64_t perm = BLOCK_PERM_CONSISTENT_READ;
	struct error *err = NULL;

	if (write)
		perm |= BLOCK_PERM_WRITE;
	if (resize)
		perm |= BLOCK_PERM_RESIZE;
	/* The most recent matching export user: any one of equals will do. */
	TAILQ_FOREACH(u, &bs->users, next) {
		if (!u->parent && u->perm == perm)
			found = u;
	}
	if (!found) {
		log_warnx("node '%s': releasing permissions nobody holds",
			  bs->node_name);
		return;
	}
	TAILQ_REMOVE(&bs->users, found, next);
	perm_user_free(found);
	if (write)
		bs->write_users--;
	if (resize)
		bs->resize_users--;
	if (block_perm_refresh(bs, &err) < 0) {
		log_warnx("node '%s': %s", bs->node_name, err->msg);
		error_free(err);
	}
}

char *block_perm_describe_users(struct block_node *bs)
{
	struct block_user *u;
	char *s = NULL;

	TAILQ_FOREACH(u, &bs->users, next) {
		char *item, *n;

		if (u->parent)
			item = xasprintf("%s (as its %s)", u->who, u->role);
		else
			item = xstrdup(u->who);
		n = s ? xasprintf("%s, %s", s, item) : xstrdup(item);
		free(item);
		free(s);
		s = n;
	}
	return s;
}
