/*
 * export/stats.c: the query side of per-export statistics (see
 * export/stats.h): allocate the per-thread slots, sum them, estimate
 * percentiles from the histogram, and render the sums as exportd's JSON
 * and as QEMU's BlockDeviceStats.  Recording is inline in the header.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export/stats.h"
#include "log.h"
#include "util.h"

static const char *const op_names[EXPORT_STATS_NOPS] = {
	[EXPORT_STATS_READ] = "read",
	[EXPORT_STATS_WRITE] = "write",
	[EXPORT_STATS_FLUSH] = "flush",
	[EXPORT_STATS_DISCARD] = "discard",
	[EXPORT_STATS_ZERO] = "zero",
	[EXPORT_STATS_OTHER] = "other",
};

const char *export_stats_op_name(enum export_stats_op op)
{
	return (unsigned)op < EXPORT_STATS_NOPS ? op_names[op] : "?";
}

struct export_stats *export_stats_new(int nslots)
{
	struct export_stats *stats = xcalloc(1, sizeof(*stats));
	size_t size = (size_t)(nslots > 0 ? nslots : 1) * sizeof(struct export_stats_slot);
	void *p;

	/* Aligned so that no two threads' counters share a cache line. */
	if (posix_memalign(&p, 64, size))
		fatalx("out of memory");
	memset(p, 0, size);
	stats->slots = p;
	stats->nslots = nslots > 0 ? nslots : 1;
	stats->created_ns = clock_monotonic_ns();
	return stats;
}

void export_stats_free(struct export_stats *stats)
{
	if (!stats)
		return;
	free(stats->slots);
	free(stats);
}

void export_stats_set_uncounted(struct export_stats *stats, enum export_stats_op op,
				bool uncounted)
{
	if (uncounted)
		atomic_fetch_or(&stats->uncounted, 1u << op);
	else
		atomic_fetch_and(&stats->uncounted, ~(1u << op));
}

static uint64_t load(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

void export_stats_sum(const struct export_stats *stats, struct export_stats_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < stats->nslots; i++) {
		const struct export_stats_slot *s = &stats->slots[i];
		uint64_t v;

		for (int op = 0; op < EXPORT_STATS_NOPS; op++) {
			const struct export_op_counters *c = &s->op[op];
			struct export_op_totals *o = &t->op[op];

			o->requests += load(&c->requests);
			o->bytes += load(&c->bytes);
			o->errors += load(&c->errors);
			o->total_ns += load(&c->total_ns);
			v = load(&c->max_ns);
			o->max_ns = MAX(o->max_ns, v);
			for (int b = 0; b < EXPORT_STATS_BUCKETS; b++)
				o->hist[b] += load(&c->hist[b]);
		}
		v = load(&s->wr_highest);
		t->wr_highest = MAX(t->wr_highest, v);
		v = load(&s->last_ns);
		t->last_ns = MAX(t->last_ns, v);
	}
}

static void op_totals_add(struct export_op_totals *a, const struct export_op_totals *b)
{
	a->requests += b->requests;
	a->bytes += b->bytes;
	a->errors += b->errors;
	a->total_ns += b->total_ns;
	a->max_ns = MAX(a->max_ns, b->max_ns);
	for (int k = 0; k < EXPORT_STATS_BUCKETS; k++)
		a->hist[k] += b->hist[k];
}

void export_stats_totals_add(struct export_stats_totals *a, const struct export_stats_totals *b)
{
	for (int op = 0; op < EXPORT_STATS_NOPS; op++)
		op_totals_add(&a->op[op], &b->op[op]);
	a->wr_highest = MAX(a->wr_highest, b->wr_highest);
	a->last_ns = MAX(a->last_ns, b->last_ns);
}

/* Bounds of bucket b in nanoseconds; the last one's upper bound is open. */
static uint64_t bucket_low_ns(int b)
{
	return b == 0 ? 0 : (1ull << (b - 1)) * 1000;
}

static uint64_t bucket_high_ns(int b)
{
	return b < EXPORT_STATS_BUCKETS - 1 ? (1ull << b) * 1000 : UINT64_MAX;
}

uint64_t export_stats_percentile(const struct export_op_totals *t, double p)
{
	uint64_t total = 0, rank, cum = 0;

	for (int b = 0; b < EXPORT_STATS_BUCKETS; b++)
		total += t->hist[b];
	if (total == 0 || !(p > 0))
		return 0;
	if (p > 1)
		p = 1;
	/* The rank-th smallest latency (1-based) is the p-quantile. */
	rank = (uint64_t)ceil(p * (double)total);
	if (rank < 1)
		rank = 1;
	for (int b = 0; b < EXPORT_STATS_BUCKETS; b++) {
		uint64_t lo, hi, est;

		if (cum + t->hist[b] < rank) {
			cum += t->hist[b];
			continue;
		}
		lo = bucket_low_ns(b);
		hi = bucket_high_ns(b);
		/*
		 * The largest latency seen bounds the bucket it falls in (and
		 * closes the last one).  Counts and max are summed from
		 * relaxed loads, so max may lag a bucket: never go below lo.
		 */
		if (t->max_ns < hi)
			hi = MAX(t->max_ns, lo);
		/* Linear within the bucket: rank r of n sits at r/n of it. */
		est = lo + (uint64_t)((double)(hi - lo) * (double)(rank - cum) /
				      (double)t->hist[b]);
		return est;
	}
	return t->max_ns;	/* not reached: rank <= total */
}

static json_t *op_json(const struct export_op_totals *o)
{
	json_t *hist = json_array();

	for (int b = 0; b < EXPORT_STATS_BUCKETS; b++) {
		if (!o->hist[b])
			continue;
		json_array_append_new(hist, json_pack("[o, I]", b < EXPORT_STATS_BUCKETS - 1 ?
						      json_integer((json_int_t)1 << b) :
						      json_null(), (json_int_t)o->hist[b]));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
			 "requests", (json_int_t)o->requests,
			 "bytes", (json_int_t)o->bytes,
			 "errors", (json_int_t)o->errors,
			 "total-latency-ns", (json_int_t)o->total_ns,
			 "max-latency-ns", (json_int_t)o->max_ns,
			 "avg-latency-ns",
			 (json_int_t)(o->requests ? o->total_ns / o->requests : 0),
			 "p50-latency-ns", (json_int_t)export_stats_percentile(o, 0.50),
			 "p90-latency-ns", (json_int_t)export_stats_percentile(o, 0.90),
			 "p99-latency-ns", (json_int_t)export_stats_percentile(o, 0.99),
			 "latency-us", hist);
}

json_t *export_stats_ops_json(const struct export_stats_totals *t)
{
	json_t *all = json_object();

	for (int op = 0; op < EXPORT_STATS_NOPS; op++)
		json_object_set_new(all, op_names[op], op_json(&t->op[op]));
	return all;
}

json_t *export_stats_uncounted_json(const struct export_stats *stats)
{
	unsigned mask = atomic_load(&((struct export_stats *)stats)->uncounted);
	json_t *list = json_array();

	for (int op = 0; op < EXPORT_STATS_NOPS; op++)
		if (mask & (1u << op))
			json_array_append_new(list, json_string(op_names[op]));
	return list;
}

/* QEMU's BlockLatencyHistogramInfo: boundaries in ns, one more bin. */
static json_t *qemu_histogram(const struct export_op_totals *o)
{
	json_t *bounds = json_array(), *bins = json_array();

	for (int b = 0; b < EXPORT_STATS_BUCKETS; b++) {
		if (b < EXPORT_STATS_BUCKETS - 1)
			json_array_append_new(bounds, json_integer((json_int_t)bucket_high_ns(b)));
		json_array_append_new(bins, json_integer((json_int_t)o->hist[b]));
	}
	return json_pack("{s:o, s:o}", "boundaries", bounds, "bins", bins);
}

json_t *export_stats_blockstats_json(const struct export_stats_totals *t, uint64_t now_ns)
{
	const struct export_op_totals *rd = &t->op[EXPORT_STATS_READ];
	const struct export_op_totals *fl = &t->op[EXPORT_STATS_FLUSH];
	const struct export_op_totals *un = &t->op[EXPORT_STATS_DISCARD];
	struct export_op_totals wr = t->op[EXPORT_STATS_WRITE];
	json_t *s;

	/* As QEMU's virtio-blk: write-zeroes is accounted as a write. */
	op_totals_add(&wr, &t->op[EXPORT_STATS_ZERO]);
	s = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		      "rd_bytes", (json_int_t)rd->bytes,
		      "wr_bytes", (json_int_t)wr.bytes,
		      "unmap_bytes", (json_int_t)un->bytes,
		      "rd_operations", (json_int_t)rd->requests,
		      "wr_operations", (json_int_t)wr.requests,
		      "flush_operations", (json_int_t)fl->requests,
		      "unmap_operations", (json_int_t)un->requests,
		      "rd_total_time_ns", (json_int_t)rd->total_ns,
		      "wr_total_time_ns", (json_int_t)wr.total_ns,
		      "flush_total_time_ns", (json_int_t)fl->total_ns,
		      "unmap_total_time_ns", (json_int_t)un->total_ns,
		      "wr_highest_offset", (json_int_t)t->wr_highest);
	/* Requests reach us one by one: the kernel merged them, not we. */
	json_object_set_new(s, "rd_merged", json_integer(0));
	json_object_set_new(s, "wr_merged", json_integer(0));
	json_object_set_new(s, "unmap_merged", json_integer(0));
	if (t->last_ns && now_ns >= t->last_ns)
		json_object_set_new(s, "idle_time_ns", json_integer((json_int_t)(now_ns - t->last_ns)));
	json_object_set_new(s, "failed_rd_operations", json_integer((json_int_t)rd->errors));
	json_object_set_new(s, "failed_wr_operations", json_integer((json_int_t)wr.errors));
	json_object_set_new(s, "failed_flush_operations", json_integer((json_int_t)fl->errors));
	json_object_set_new(s, "failed_unmap_operations", json_integer((json_int_t)un->errors));
	/* Every refused request counts as failed; none is told apart as invalid. */
	json_object_set_new(s, "invalid_rd_operations", json_integer(0));
	json_object_set_new(s, "invalid_wr_operations", json_integer(0));
	json_object_set_new(s, "invalid_flush_operations", json_integer(0));
	json_object_set_new(s, "invalid_unmap_operations", json_integer(0));
	json_object_set_new(s, "account_invalid", json_true());
	json_object_set_new(s, "account_failed", json_true());
	json_object_set_new(s, "timed_stats", json_array());
	json_object_set_new(s, "rd_latency_histogram", qemu_histogram(rd));
	json_object_set_new(s, "wr_latency_histogram", qemu_histogram(&wr));
	json_object_set_new(s, "flush_latency_histogram", qemu_histogram(fl));
	return s;
}
