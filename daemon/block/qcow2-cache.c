/*
 * block/qcow2-cache.c: a set-associative cache of cluster-sized metadata
 * tables (L2 tables, refcount blocks), keyed by host offset.  Lookups are
 * O(ways) so that a cache covering a large image stays cheap; eviction is
 * least-recently-used within a set.  The cache never writes anything back:
 * qcow2 metadata is written through by the caller, so a slot can be
 * dropped at any time.  The caller's metadata lock protects it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "util.h"

#define QCOW2_CACHE_WAYS 8

void qcow2_cache_init(struct qcow2_cache *c, size_t table_size, size_t ntables)
{
	memset(c, 0, sizeof(*c));
	c->table_size = table_size;
	c->ways = MIN((size_t)QCOW2_CACHE_WAYS, MAX(ntables, (size_t)1));
	c->nsets = MAX(ntables / c->ways, (size_t)1);
	c->entries = xcalloc(c->nsets * c->ways, sizeof(*c->entries));
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
	if (!c->entries)
		return;
	for (size_t i = 0; i < c->nsets * c->ways; i++)
		free(c->entries[i].data);
	free(c->entries);
	c->entries = NULL;
}

static struct qcow2_cache_entry *qcow2_cache_set(struct qcow2_cache *c, uint64_t offset)
{
	/* Tables are cluster-aligned: mix the high bits so neighbours spread. */
	uint64_t h = (offset >> 9) * 0x9e3779b97f4a7c15ULL;

	return &c->entries[(h >> 32) % c->nsets * c->ways];
}

void *qcow2_cache_lookup(struct qcow2_cache *c, uint64_t offset)
{
	struct qcow2_cache_entry *set = qcow2_cache_set(c, offset);

	for (size_t i = 0; i < c->ways; i++) {
		if (set[i].offset == offset && set[i].data) {
			set[i].lru = ++c->tick;
			return set[i].data;
		}
	}
	return NULL;
}

void *qcow2_cache_insert(struct qcow2_cache *c, uint64_t offset)
{
	struct qcow2_cache_entry *set = qcow2_cache_set(c, offset);
	struct qcow2_cache_entry *victim = &set[0];

	for (size_t i = 0; i < c->ways; i++) {
		if (set[i].offset == offset && set[i].data) {
			victim = &set[i];
			break;
		}
		if (!set[i].data || !set[i].offset) {
			victim = &set[i];
			break;
		}
		if (set[i].lru < victim->lru)
			victim = &set[i];
	}
	if (!victim->data)
		victim->data = xmalloc(c->table_size);
	victim->offset = offset;
	victim->lru = ++c->tick;
	return victim->data;
}

void qcow2_cache_drop(struct qcow2_cache *c, uint64_t offset)
{
	struct qcow2_cache_entry *set = qcow2_cache_set(c, offset);

	for (size_t i = 0; i < c->ways; i++)
		if (set[i].offset == offset)
			set[i].offset = 0;
}
