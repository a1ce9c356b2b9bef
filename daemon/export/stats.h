/*
 * export/stats.h: per-export I/O statistics: for each kind of operation
 * (read, write, flush, discard, zero, other) the number of requests,
 * bytes, errors, total and maximum latency, and a histogram of latencies
 * in power-of-two microsecond buckets.
 *
 * Recording happens on the request threads, hundreds of thousands of
 * times per second, so it takes no lock and shares no cache line: an
 * export has one slot per request thread, cache-line aligned, written by
 * that thread alone (a relaxed load and store per counter, no locked
 * read-modify-write).  Queries (main thread) sum the slots with relaxed
 * loads; a query racing a request may see it half-counted, never a torn
 * counter.
 *
 * Only what reaches the daemon is counted: with FUSE passthrough the
 * kernel serves reads itself, and the stats say so (export_stats_set_
 * uncounted) rather than guess.
 */
#ifndef EXPORTD_EXPORT_STATS_H
#define EXPORTD_EXPORT_STATS_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum export_stats_op {
	EXPORT_STATS_READ,
	EXPORT_STATS_WRITE,
	EXPORT_STATS_FLUSH,	/* flush and fsync */
	EXPORT_STATS_DISCARD,	/* punch hole */
	EXPORT_STATS_ZERO,	/* zero range, preallocation */
	EXPORT_STATS_OTHER,	/* open, getattr, ...: everything else */
	EXPORT_STATS_NOPS,
};

/*
 * Latency buckets: bucket 0 is [0, 1us), bucket b is [2^(b-1), 2^b) us,
 * the last one [2^30 us, infinity).
 */
#define EXPORT_STATS_BUCKETS 32

struct export_op_counters {
	_Atomic uint64_t requests, bytes, errors;
	_Atomic uint64_t total_ns, max_ns;
	_Atomic uint64_t hist[EXPORT_STATS_BUCKETS];
};

/* One request thread's counters. */
struct export_stats_slot {
	struct export_op_counters op[EXPORT_STATS_NOPS];
	_Atomic uint64_t wr_highest;	/* end of the furthest write */
	_Atomic uint64_t last_ns;	/* when the last request completed */
} __attribute__((aligned(64)));

struct export_stats {
	int nslots;
	struct export_stats_slot *slots;
	uint64_t created_ns;
	_Atomic unsigned uncounted;	/* 1 << op: served without us */
};

/* Summed counters of one operation, and of a whole export. */
struct export_op_totals {
	uint64_t requests, bytes, errors, total_ns, max_ns;
	uint64_t hist[EXPORT_STATS_BUCKETS];
};

struct export_stats_totals {
	struct export_op_totals op[EXPORT_STATS_NOPS];
	uint64_t wr_highest;
	uint64_t last_ns;	/* 0: no request yet */
};

struct export_stats *export_stats_new(int nslots);
void export_stats_free(struct export_stats *stats);

/* Whether the kernel may serve op without asking the daemon. */
void export_stats_set_uncounted(struct export_stats *stats, enum export_stats_op op,
				bool uncounted);

/* "read", "write", ...: the names used in QMP. */
const char *export_stats_op_name(enum export_stats_op op);

/* The bucket of a latency in nanoseconds. */
static inline unsigned export_stats_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = us ? 64u - (unsigned)__builtin_clzll(us) : 0;

	return b < EXPORT_STATS_BUCKETS ? b : EXPORT_STATS_BUCKETS - 1;
}

/* Add to a counter that only this thread writes: no locked instruction. */
static inline void export_stats_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline void export_stats_max(_Atomic uint64_t *c, uint64_t v)
{
	if (v > atomic_load_explicit(c, memory_order_relaxed))
		atomic_store_explicit(c, v, memory_order_relaxed);
}

/*
 * Count one request that took start_ns..end_ns (CLOCK_MONOTONIC) on the
 * calling thread's own slot.
 */
static inline void export_stats_record(struct export_stats_slot *slot, enum export_stats_op op,
				       uint64_t bytes, bool failed, uint64_t start_ns,
				       uint64_t end_ns)
{
	struct export_op_counters *c = &slot->op[op];
	uint64_t ns = end_ns - start_ns;

	export_stats_add(&c->requests, 1);
	export_stats_add(&c->bytes, bytes);
	if (failed)
		export_stats_add(&c->errors, 1);
	export_stats_add(&c->total_ns, ns);
	export_stats_max(&c->max_ns, ns);
	export_stats_add(&c->hist[export_stats_bucket(ns)], 1);
	atomic_store_explicit(&slot->last_ns, end_ns, memory_order_relaxed);
}

/* A successful write ended at offset end. */
static inline void export_stats_record_write_end(struct export_stats_slot *slot, uint64_t end)
{
	export_stats_max(&slot->wr_highest, end);
}

/* Sum every slot of stats into *t (which it overwrites). */
void export_stats_sum(const struct export_stats *stats, struct export_stats_totals *t);
/* Add the totals of b to a. */
void export_stats_totals_add(struct export_stats_totals *a, const struct export_stats_totals *b);

/*
 * The latency in nanoseconds below which a fraction p (0 < p <= 1) of
 * the requests completed, estimated from the histogram: linear within the
 * bucket, never above max_ns.  0 without requests.
 */
uint64_t export_stats_percentile(const struct export_op_totals *t, double p);

/*
 * {"read": {requests, bytes, errors, total-latency-ns, max-latency-ns,
 * avg-/p50-/p90-/p99-latency-ns, latency-us: [[upper bound in us or null
 * for the open last bucket, count], ...] (non-empty buckets)}, ...}.
 */
json_t *export_stats_ops_json(const struct export_stats_totals *t);
/* The ops that the kernel may serve uncounted: ["read"] or []. */
json_t *export_stats_uncounted_json(const struct export_stats *stats);
/* QEMU's BlockDeviceStats; now_ns: for idle_time_ns. */
json_t *export_stats_blockstats_json(const struct export_stats_totals *t, uint64_t now_ns);

#endif
