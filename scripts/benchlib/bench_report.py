"""bench_report: from raw fio numbers to the table and the JSON of scripts/bench.

Pure functions only (no processes, no mounts), so that tests can check the
arithmetic and the layout: median of the repetitions, ratios between targets,
QMP latency percentiles, the pass/fail list of the targets set by issues 7
and 8, and plain-text tables.
"""

import math

# Target ids used throughout scripts/bench.
EXPORTD = "exportd"        # exportd, userspace data path (passthrough off)
EXPORTD_PT = "exportd-pt"  # exportd with kernel FUSE passthrough on
QSD = "qsd"                # qemu-storage-daemon 7.2
FUSEPT = "fusept"          # libfuse's passthrough_hp/_ll example
DIRECT = "direct"          # the image itself, no FUSE
EXPORTD_NULL = "exportd-null"  # exportd serving null-co: its own cost, no storage
QSD_NULL = "qsd-null"          # qemu-storage-daemon serving null-co


def median(values):
    """Median of a list of numbers; None when there is none."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = len(vals)
    mid = n // 2
    if n % 2:
        return vals[mid]
    return (vals[mid - 1] + vals[mid]) / 2.0


def ratio(a, b):
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def percentile(samples, p):
    """Nearest-rank percentile (p in 0..100) of samples; None if empty."""
    vals = sorted(samples)
    if not vals:
        return None
    rank = int(math.ceil(p / 100.0 * len(vals)))
    rank = min(max(rank, 1), len(vals))
    return vals[rank - 1]


def latency_summary(samples_ms):
    """p50/p99/max and count of QMP round trips in milliseconds."""
    return {
        "samples": len(samples_ms),
        "p50_ms": percentile(samples_ms, 50),
        "p99_ms": percentile(samples_ms, 99),
        "max_ms": max(samples_ms) if samples_ms else None,
    }


def fmt_value(v):
    """A throughput figure with about three significant digits."""
    if v is None:
        return "-"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_ratio(r, need=None):
    """A ratio with two decimals; a trailing '!' when below `need`."""
    if r is None:
        return "-"
    s = "%.2f" % r
    if need is not None and r < need:
        s += "!"
    return s


def fmt_ms(v):
    return "-" if v is None else "%.2f" % v


def format_table(headers, rows, title=None, align=None):
    """Fixed-width text table.  align is one letter per column, l or r;
    by default the first column is left-aligned and the others right."""
    cols = len(headers)
    if align is None:
        align = "l" + "r" * (cols - 1)
    cells = [list(headers)] + [[str(c) for c in r] + [""] * (cols - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(cols)]
    out = []
    if title:
        out.append(title)
    for n, r in enumerate(cells):
        parts = []
        for i, c in enumerate(r):
            parts.append(c.ljust(widths[i]) if align[i] == "l" else c.rjust(widths[i]))
        out.append("  ".join(parts).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


class Results:
    """Every measured value, keyed by target id and job key."""

    def __init__(self):
        self.runs = {}      # target -> job key -> {"values": [], "extra": [], "errors": []}
        self.qmp = {}       # target -> [round trip ms]
        self.info = {}      # target -> job key -> what the server said about the export

    def _slot(self, target, job_key):
        return self.runs.setdefault(target, {}).setdefault(
            job_key, {"values": [], "extra": [], "errors": []})

    def add(self, target, job_key, value, extra=None):
        s = self._slot(target, job_key)
        s["values"].append(value)
        s["extra"].append(extra or {})

    def add_error(self, target, job_key, message):
        self._slot(target, job_key)["errors"].append(message)

    def add_qmp(self, target, samples_ms):
        self.qmp.setdefault(target, []).extend(samples_ms)

    def value(self, target, job_key):
        """Median over the repetitions, or None if never measured."""
        s = self.runs.get(target, {}).get(job_key)
        return median(s["values"]) if s else None

    def extra_median(self, target, job_key, name):
        s = self.runs.get(target, {}).get(job_key)
        if not s:
            return None
        return median([e.get(name) for e in s["extra"]])


# Ratios required by the issues.  (check id, text, job filter, numerator,
# denominator, minimum).
def _is_read(job):
    return not job.writes


def target_checks(jobs, res):
    """The targets of issues 7 and 8 against this run's medians.

    Returns a list of dicts {what, job, ratio, need, status} where status is
    PASS, FAIL or n/a (a side was not measured)."""
    checks = []

    def add(what, job, num, den, need):
        r = ratio(res.value(num, job.key), res.value(den, job.key))
        status = "n/a" if r is None else ("PASS" if r >= need else "FAIL")
        checks.append({"what": what, "job": job.key, "ratio": r, "need": need,
                       "status": status})

    for job in jobs:
        if job.buffered:
            add("exportd passthrough / image, buffered (issue 8: within 15%)",
                job, EXPORTD_PT, DIRECT, 0.85)
            continue
        if job.rw == "randread" and job.bs == "4k" and job.iodepth == 16 and job.numjobs == 1:
            need = 2.0
        elif (job.rw == "read" and job.bs == "1M") or \
                (job.rw == "randwrite" and job.bs == "4k" and job.iodepth == 16):
            need = 1.5
        else:
            need = 1.0
        add("exportd / qsd (issue 7)", job, EXPORTD, QSD, need)
        if job.fmt == "raw":
            if _is_read(job):
                add("exportd / FUSE passthrough example, reads (issue 7)",
                    job, EXPORTD, FUSEPT, 0.9)
            add("exportd passthrough / image, O_DIRECT (issue 8: within 15%)",
                job, EXPORTD_PT, DIRECT, 0.85)
    for t in (EXPORTD, EXPORTD_PT):
        samples = res.qmp.get(t)
        p99 = latency_summary(samples)["p99_ms"] if samples else None
        status = "n/a" if p99 is None else ("PASS" if p99 < 10.0 else "FAIL")
        checks.append({"what": "QMP query-block-exports p99 under load < 10 ms (issue 7)",
                       "job": t, "ratio": p99, "need": 10.0, "status": status})
    return checks


def sections(jobs, res, labels):
    """The tables of a run: list of (title, headers, rows)."""
    out = []
    L = lambda t: labels.get(t, t)
    raw = [j for j in jobs if j.fmt == "raw" and not j.buffered]
    if raw:
        headers = ["raw, O_DIRECT", "unit", L(EXPORTD), L(QSD), L(FUSEPT), L(DIRECT),
                   "exportd/qsd", "exportd/" + L(FUSEPT)]
        rows = []
        for j in raw:
            e, q, p, d = (res.value(t, j.key) for t in (EXPORTD, QSD, FUSEPT, DIRECT))
            rows.append([j.label, j.unit, fmt_value(e), fmt_value(q), fmt_value(p),
                         fmt_value(d), fmt_ratio(ratio(e, q)), fmt_ratio(ratio(e, p))])
        out.append(("raw image", headers, rows))
    qcow2 = [j for j in jobs if j.fmt == "qcow2"]
    if qcow2:
        headers = ["qcow2, O_DIRECT", "unit", L(EXPORTD), L(QSD), "exportd/qsd"]
        rows = []
        for j in qcow2:
            e, q = res.value(EXPORTD, j.key), res.value(QSD, j.key)
            rows.append([j.label, j.unit, fmt_value(e), fmt_value(q), fmt_ratio(ratio(e, q))])
        out.append(("qcow2 image", headers, rows))
    pt = [j for j in jobs if j.fmt == "raw"]
    if pt:
        headers = ["passthrough, raw", "mode", "unit", L(EXPORTD_PT), "image",
                   "pt/image", "pt/qsd"]
        rows = []
        for j in pt:
            e, d = res.value(EXPORTD_PT, j.key), res.value(DIRECT, j.key)
            q = None if j.buffered else res.value(QSD, j.key)
            rows.append([j.label, "buffered" if j.buffered else "O_DIRECT", j.unit,
                         fmt_value(e), fmt_value(d), fmt_ratio(ratio(e, d)),
                         fmt_ratio(ratio(e, q))])
        # Write rows use a growable export: the kernel passes writes through
        # only where a write past the end may grow the image.
        out.append(("kernel FUSE passthrough (issue 8): export vs the image accessed the same "
                    "way; writes on a growable export", headers, rows))
    null = [j for j in jobs if j.fmt == "raw" and not j.buffered]
    if null and any(res.value(t, j.key) is not None for t in (EXPORTD_NULL, QSD_NULL)
                    for j in null):
        headers = ["null-co, O_DIRECT", "unit", L(EXPORTD_NULL), L(QSD_NULL),
                   "exportd/qsd"]
        rows = []
        for j in null:
            e, q = res.value(EXPORTD_NULL, j.key), res.value(QSD_NULL, j.key)
            rows.append([j.label, j.unit, fmt_value(e), fmt_value(q), fmt_ratio(ratio(e, q))])
        out.append(("null-co (no storage below the export: the daemons' own cost)",
                    headers, rows))
    return out


def qmp_table(res, labels):
    rows = []
    for t, samples in sorted(res.qmp.items()):
        s = latency_summary(samples)
        rows.append([labels.get(t, t), str(s["samples"]), fmt_ms(s["p50_ms"]),
                     fmt_ms(s["p99_ms"]), fmt_ms(s["max_ms"])])
    return ("QMP query-block-exports round trip while fio saturates the export",
            ["target", "samples", "p50 ms", "p99 ms", "max ms"], rows, None)


def checks_table(checks):
    rows = []
    for c in checks:
        if c["what"].startswith("QMP"):
            val = fmt_ms(c["ratio"]) + " ms"
            need = "< %g ms" % c["need"]
        else:
            val = fmt_ratio(c["ratio"])
            need = ">= %.2f" % c["need"]
        rows.append([c["status"], c["job"], c["what"], val, need])
    return ("targets", ["status", "job", "check", "measured", "need"], rows, "lllrr")
