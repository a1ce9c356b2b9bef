/*
 * test-export-stats.c: the statistics of daemon/export/stats.c: which
 * bucket a latency falls in, summing per-thread slots (also while threads
 * record), percentiles estimated from the histogram, and the JSON shapes
 * (exportd's and QEMU's BlockDeviceStats).
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export/stats.h"
#include "unit.h"

static void test_bucket_bounds(void)
{
	CHECK_EQ(export_stats_bucket(0), 0u);
	CHECK_EQ(export_stats_bucket(999), 0u);
	CHECK_EQ(export_stats_bucket(1000), 1u);
	CHECK_EQ(export_stats_bucket(1999), 1u);
	CHECK_EQ(export_stats_bucket(2000), 2u);
	CHECK_EQ(export_stats_bucket(3999), 2u);
	CHECK_EQ(export_stats_bucket(4000), 3u);
	/* 1 s = 10^6 us, in [2^19, 2^20) us. */
	CHECK_EQ(export_stats_bucket(1000000000ull), 20u);
	/* [2^30 us, inf) is the last bucket. */
	CHECK_EQ(export_stats_bucket((1ull << 30) * 1000 - 1), 30u);
	CHECK_EQ(export_stats_bucket((1ull << 30) * 1000), 31u);
	CHECK_EQ(export_stats_bucket(UINT64_MAX), (unsigned)EXPORT_STATS_BUCKETS - 1);
}

static void test_slots_are_cache_line_apart(void)
{
	struct export_stats *s = export_stats_new(3);

	CHECK_EQ(sizeof(struct export_stats_slot) % 64, 0u);
	CHECK_EQ((uintptr_t)&s->slots[0] % 64, 0u);
	CHECK_EQ((uintptr_t)&s->slots[1] % 64, 0u);
	CHECK_EQ(s->nslots, 3);
	export_stats_free(s);
	export_stats_free(NULL);
}

static void test_sum_over_slots(void)
{
	struct export_stats *s = export_stats_new(2);
	struct export_stats_totals t;

	export_stats_record(&s->slots[0], EXPORT_STATS_READ, 4096, false, 100, 1600);
	export_stats_record(&s->slots[1], EXPORT_STATS_READ, 8192, false, 0, 5000);
	export_stats_record(&s->slots[1], EXPORT_STATS_WRITE, 0, true, 0, 300);
	export_stats_record_write_end(&s->slots[0], 1 << 20);
	export_stats_record_write_end(&s->slots[1], 4096);
	export_stats_sum(s, &t);
	CHECK_EQ(t.op[EXPORT_STATS_READ].requests, 2u);
	CHECK_EQ(t.op[EXPORT_STATS_READ].bytes, 12288u);
	CHECK_EQ(t.op[EXPORT_STATS_READ].errors, 0u);
	CHECK_EQ(t.op[EXPORT_STATS_READ].total_ns, 6500u);
	CHECK_EQ(t.op[EXPORT_STATS_READ].max_ns, 5000u);
	CHECK_EQ(t.op[EXPORT_STATS_READ].hist[1], 1u);	/* 1.5 us */
	CHECK_EQ(t.op[EXPORT_STATS_READ].hist[3], 1u);	/* 5 us */
	CHECK_EQ(t.op[EXPORT_STATS_WRITE].requests, 1u);
	CHECK_EQ(t.op[EXPORT_STATS_WRITE].errors, 1u);
	CHECK_EQ(t.op[EXPORT_STATS_WRITE].hist[0], 1u);
	CHECK_EQ(t.wr_highest, (uint64_t)1 << 20);
	CHECK_EQ(t.last_ns, 1600u);	/* each slot keeps its latest */
	CHECK_EQ(t.op[EXPORT_STATS_FLUSH].requests, 0u);
	export_stats_free(s);
}

static void hist_fill(struct export_op_totals *o, int bucket, uint64_t n)
{
	o->hist[bucket] += n;
	o->requests += n;
}

static void test_percentile_empty(void)
{
	struct export_op_totals o;

	memset(&o, 0, sizeof(o));
	CHECK_EQ(export_stats_percentile(&o, 0.5), 0u);
	CHECK_EQ(export_stats_percentile(&o, 1.0), 0u);
}

static void test_percentile_one_bucket(void)
{
	struct export_op_totals o;

	/* 100 requests in [1, 2) us, the slowest took 1.5 us. */
	memset(&o, 0, sizeof(o));
	hist_fill(&o, 1, 100);
	o.max_ns = 1500;
	CHECK_EQ(export_stats_percentile(&o, 0.50), 1250u);
	CHECK_EQ(export_stats_percentile(&o, 1.00), 1500u);
	CHECK_EQ(export_stats_percentile(&o, 0.01), 1005u);
	/* Out-of-range fractions are clamped, not extrapolated. */
	CHECK_EQ(export_stats_percentile(&o, 2.0), 1500u);
	CHECK_EQ(export_stats_percentile(&o, 0.0), 0u);
}

static void test_percentile_two_buckets(void)
{
	struct export_op_totals o;

	/* 90 fast ([1, 2) us), 10 slow ([1024, 2048) us), max 2 ms. */
	memset(&o, 0, sizeof(o));
	hist_fill(&o, 1, 90);
	hist_fill(&o, 11, 10);
	o.max_ns = 2000000;
	CHECK_EQ(export_stats_percentile(&o, 0.45), 1500u);
	CHECK_EQ(export_stats_percentile(&o, 0.90), 2000u);
	/* 9th of 10 in [1024000, 2000000]: 1024000 + 976000 * 0.9. */
	CHECK_EQ(export_stats_percentile(&o, 0.99), 1902400u);
	CHECK_EQ(export_stats_percentile(&o, 1.00), 2000000u);
}

static void test_percentile_open_last_bucket(void)
{
	struct export_op_totals o;
	uint64_t lo = (1ull << 30) * 1000;

	memset(&o, 0, sizeof(o));
	hist_fill(&o, EXPORT_STATS_BUCKETS - 1, 2);
	o.max_ns = lo + 1000000;
	CHECK_EQ(export_stats_percentile(&o, 0.5), lo + 500000);
	CHECK_EQ(export_stats_percentile(&o, 1.0), o.max_ns);
}

static void test_percentile_max_lagging(void)
{
	struct export_op_totals o;

	/* A racing query may see a bucket count before the max: stay in the bucket. */
	memset(&o, 0, sizeof(o));
	hist_fill(&o, 5, 4);	/* [16, 32) us */
	o.max_ns = 3000;
	CHECK_EQ(export_stats_percentile(&o, 0.5), 16000u);
}

static void test_percentile_monotonic(void)
{
	struct export_op_totals o;
	uint64_t prev = 0;
	unsigned seed = 12345;

	memset(&o, 0, sizeof(o));
	for (int b = 0; b < 24; b++)
		hist_fill(&o, b, (uint64_t)(rand_r(&seed) % 50));
	o.max_ns = (1ull << 23) * 1000 - 7;
	for (int i = 1; i <= 1000; i++) {
		uint64_t v = export_stats_percentile(&o, i / 1000.0);

		CHECK(v >= prev);
		CHECK(v <= o.max_ns);
		prev = v;
	}
	CHECK_EQ(prev, o.max_ns);
}

struct recorder {
	struct export_stats_slot *slot;
	int n;
};

static void *record_many(void *opaque)
{
	struct recorder *r = opaque;

	for (int i = 0; i < r->n; i++)
		export_stats_record(r->slot, EXPORT_STATS_READ, 512, (i % 7) == 0,
				    0, (uint64_t)(i % 5000) * 1000);
	return NULL;
}

static void test_threads_sum_exactly(void)
{
	enum { THREADS = 4, N = 200000 };
	struct export_stats *s = export_stats_new(THREADS);
	struct recorder r[THREADS];
	pthread_t tid[THREADS];
	struct export_stats_totals t;
	uint64_t hist = 0;

	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct recorder){ .slot = &s->slots[i], .n = N };
		pthread_create(&tid[i], NULL, record_many, &r[i]);
	}
	/* Queries while threads record: never more than what was done. */
	for (int k = 0; k < 100; k++) {
		export_stats_sum(s, &t);
		CHECK(t.op[EXPORT_STATS_READ].requests <= (uint64_t)THREADS * N);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	export_stats_sum(s, &t);
	CHECK_EQ(t.op[EXPORT_STATS_READ].requests, (uint64_t)THREADS * N);
	CHECK_EQ(t.op[EXPORT_STATS_READ].bytes, (uint64_t)THREADS * N * 512);
	CHECK_EQ(t.op[EXPORT_STATS_READ].errors, (uint64_t)THREADS * ((N + 6) / 7));
	CHECK_EQ(t.op[EXPORT_STATS_READ].max_ns, 4999000u);
	for (int b = 0; b < EXPORT_STATS_BUCKETS; b++)
		hist += t.op[EXPORT_STATS_READ].hist[b];
	CHECK_EQ(hist, (uint64_t)THREADS * N);
	export_stats_free(s);
}

static void test_ops_json(void)
{
	struct export_stats *s = export_stats_new(1);
	struct export_stats_totals t;
	json_t *j, *rd, *hist;

	export_stats_record(&s->slots[0], EXPORT_STATS_READ, 4096, false, 0, 1500);
	export_stats_record(&s->slots[0], EXPORT_STATS_READ, 4096, false, 0, 2500);
	export_stats_sum(s, &t);
	j = export_stats_ops_json(&t);
	CHECK_EQ(json_object_size(j), (size_t)EXPORT_STATS_NOPS);
	rd = json_object_get(j, "read");
	CHECK_EQ(json_integer_value(json_object_get(rd, "requests")), 2);
	CHECK_EQ(json_integer_value(json_object_get(rd, "bytes")), 8192);
	CHECK_EQ(json_integer_value(json_object_get(rd, "avg-latency-ns")), 2000);
	CHECK_EQ(json_integer_value(json_object_get(rd, "max-latency-ns")), 2500);
	CHECK_EQ(json_integer_value(json_object_get(rd, "p50-latency-ns")), 2000);
	hist = json_object_get(rd, "latency-us");
	CHECK_EQ(json_array_size(hist), 2u);
	CHECK_EQ(json_integer_value(json_array_get(json_array_get(hist, 0), 0)), 2);
	CHECK_EQ(json_integer_value(json_array_get(json_array_get(hist, 1), 0)), 4);
	CHECK(json_object_get(j, "discard") && json_object_get(j, "zero"));
	json_decref(j);

	j = export_stats_uncounted_json(s);
	CHECK_EQ(json_array_size(j), 0u);
	json_decref(j);
	export_stats_set_uncounted(s, EXPORT_STATS_READ, true);
	j = export_stats_uncounted_json(s);
	CHECK_STREQ(json_string_value(json_array_get(j, 0)), "read");
	json_decref(j);
	export_stats_set_uncounted(s, EXPORT_STATS_READ, false);
	j = export_stats_uncounted_json(s);
	CHECK_EQ(json_array_size(j), 0u);
	json_decref(j);
	export_stats_free(s);
}

static void test_blockstats_json(void)
{
	struct export_stats *s = export_stats_new(1);
	struct export_stats_totals t;
	json_t *j, *h;

	export_stats_record(&s->slots[0], EXPORT_STATS_WRITE, 4096, false, 0, 10000);
	export_stats_record(&s->slots[0], EXPORT_STATS_ZERO, 65536, false, 0, 10000);
	export_stats_record(&s->slots[0], EXPORT_STATS_DISCARD, 8192, true, 0, 10000);
	export_stats_record_write_end(&s->slots[0], 12288);
	export_stats_sum(s, &t);
	j = export_stats_blockstats_json(&t, 30000);
	/* Write-zeroes counts as a write, as QEMU's virtio-blk accounts it. */
	CHECK_EQ(json_integer_value(json_object_get(j, "wr_operations")), 2);
	CHECK_EQ(json_integer_value(json_object_get(j, "wr_bytes")), 4096 + 65536);
	CHECK_EQ(json_integer_value(json_object_get(j, "unmap_operations")), 1);
	CHECK_EQ(json_integer_value(json_object_get(j, "failed_unmap_operations")), 1);
	CHECK_EQ(json_integer_value(json_object_get(j, "wr_highest_offset")), 12288);
	CHECK_EQ(json_integer_value(json_object_get(j, "idle_time_ns")), 20000);
	CHECK_EQ(json_integer_value(json_object_get(j, "rd_operations")), 0);
	CHECK(json_is_array(json_object_get(j, "timed_stats")));
	h = json_object_get(j, "wr_latency_histogram");
	CHECK_EQ(json_array_size(json_object_get(h, "bins")),
		 json_array_size(json_object_get(h, "boundaries")) + 1);
	CHECK_EQ(json_integer_value(json_array_get(json_object_get(h, "boundaries"), 0)), 1000);
	CHECK_EQ(json_integer_value(json_array_get(json_object_get(h, "bins"), 4)), 2);
	json_decref(j);
	/* No request yet: no idle time (as QEMU). */
	memset(&t, 0, sizeof(t));
	j = export_stats_blockstats_json(&t, 30000);
	CHECK(!json_object_get(j, "idle_time_ns"));
	json_decref(j);
	export_stats_free(s);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "bucket bounds", test_bucket_bounds },
		{ "slots are cache lines apart", test_slots_are_cache_line_apart },
		{ "sum over slots", test_sum_over_slots },
		{ "percentile of nothing", test_percentile_empty },
		{ "percentile in one bucket", test_percentile_one_bucket },
		{ "percentile across buckets", test_percentile_two_buckets },
		{ "percentile in the open last bucket", test_percentile_open_last_bucket },
		{ "percentile with a lagging max", test_percentile_max_lagging },
		{ "percentile is monotonic and capped", test_percentile_monotonic },
		{ "threads sum exactly", test_threads_sum_exactly },
		{ "exportd JSON", test_ops_json },
		{ "BlockDeviceStats JSON", test_blockstats_json },
		{ NULL, NULL },
	};

	return unit_run("export-stats", tests);
}
