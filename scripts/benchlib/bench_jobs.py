"""bench_jobs: which fio jobs scripts/bench runs and how it reads their results.

A job is one fio workload on one image format (raw or qcow2), in O_DIRECT
(the default) or buffered mode.  This module builds fio's command line for a
job on a given file and turns fio's JSON output into the one number the table
shows: MiB/s for sequential jobs, thousands of IOPS for random ones.
"""

import json


class Job:
    def __init__(self, fmt, rw, bs, iodepth, numjobs=1, buffered=False):
        self.fmt = fmt              # "raw" or "qcow2": which image the job runs on
        self.rw = rw                # fio rw=: read, write, randread, randwrite
        self.bs = bs                # fio bs=, e.g. "4k", "1M"
        self.iodepth = iodepth
        self.numjobs = numjobs
        self.buffered = buffered    # page-cache I/O instead of O_DIRECT

    @property
    def writes(self):
        return "write" in self.rw

    @property
    def random(self):
        return self.rw.startswith("rand")

    @property
    def unit(self):
        return "kIOPS" if self.random else "MiB/s"

    @property
    def key(self):
        """Stable identifier used in the JSON file and on the command line."""
        k = "%s-%s-%s-qd%d" % (self.fmt, self.rw, self.bs, self.iodepth)
        if self.numjobs > 1:
            k += "x%d" % self.numjobs
        if self.buffered:
            k += "-buffered"
        return k

    @property
    def label(self):
        """Human name for the table, e.g. 'rand read 4k qd16 x2'."""
        names = {"read": "seq read", "write": "seq write",
                 "randread": "rand read", "randwrite": "rand write"}
        s = "%s %s qd%d" % (names[self.rw], self.bs, self.iodepth)
        if self.numjobs > 1:
            s += " x%d" % self.numjobs
        return s

    def __repr__(self):
        return "Job(%s)" % self.key


# The workloads of issue 7, run on raw and on qcow2.
BASE = [
    ("read", "1M", 1, 1),
    ("read", "128k", 4, 1),
    ("randread", "4k", 1, 1),
    ("randread", "4k", 16, 1),
    ("randread", "4k", 16, 2),
    ("write", "1M", 1, 1),
    ("randwrite", "4k", 16, 1),
]
# Buffered rows of issue 8 (passthrough vs the image read the same way).
BUFFERED = [
    ("read", "1M", 1, 1),
    ("randread", "4k", 1, 1),
    ("randread", "4k", 16, 2),
    ("randwrite", "4k", 16, 1),
]
# BENCH_QUICK=1: a handful that still shows every target and every path.
QUICK_BASE_RAW = [("read", "1M", 1, 1), ("randread", "4k", 16, 1), ("randwrite", "4k", 16, 1)]
QUICK_BASE_QCOW2 = [("randread", "4k", 16, 1), ("randwrite", "4k", 16, 1)]
QUICK_BUFFERED = [("randread", "4k", 1, 1)]

# The job during which the QMP round trip is probed: the most requests in flight.
QMP_PROBE_JOB = "raw-randread-4k-qd16x2"
QMP_PROBE_JOB_QUICK = "raw-randread-4k-qd16"


def job_list(quick=False):
    """Every job of one run, in table order."""
    if quick:
        raw, qcow2, buf = QUICK_BASE_RAW, QUICK_BASE_QCOW2, QUICK_BUFFERED
    else:
        raw, qcow2, buf = BASE, BASE, BUFFERED
    jobs = [Job("raw", *t) for t in raw]
    jobs += [Job("qcow2", *t) for t in qcow2]
    jobs += [Job("raw", *t, buffered=True) for t in buf]
    return jobs


def select_jobs(jobs, patterns):
    """Keep the jobs whose key contains one of the comma-separated patterns."""
    if not patterns:
        return list(jobs)
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    return [j for j in jobs if any(p in j.key for p in pats)]


def fio_argv(job, filename, runtime, ramp, fio="fio"):
    """fio's command line for `job` on `filename` (an existing file)."""
    argv = [
        fio, "--name=" + job.key, "--filename=" + filename,
        "--rw=" + job.rw, "--bs=" + job.bs,
        "--iodepth=%d" % job.iodepth, "--numjobs=%d" % job.numjobs,
        "--ioengine=libaio", "--direct=%d" % (0 if job.buffered else 1),
        "--time_based", "--runtime=%gs" % runtime, "--ramp_time=%gs" % ramp,
        "--group_reporting", "--output-format=json",
        # The exported file already has its size: never lay out, extend or
        # preallocate it (a FUSE export may not be growable).
        "--fallocate=none", "--allow_file_create=0",
        # One fixed seed so every target sees the same offsets.
        "--randrepeat=1", "--randseed=1234",
        # Never drop the page cache: fio's default invalidate=1 would evict
        # the image itself on the direct target, and every later run would
        # then read a cold image.  The buffered rows need it warm anyway.
        "--invalidate=0",
    ]
    return argv


class FioError(Exception):
    pass


def first_errors(text, n=2):
    """The first n distinct error lines of fio's stderr, without offsets."""
    seen = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        # "...: Invalid argument: write offset=123, buflen=4096": drop the
        # offset so that repeats of one error collapse.
        short = line.split(" offset=")[0]
        if short not in seen:
            seen.append(short)
        if len(seen) >= n:
            break
    return " | ".join(seen) if seen else "(no output)"


def parse_fio(text, job):
    """fio's JSON output -> (value in job.unit, extra dict)."""
    # fio may print warnings before the JSON document.
    start = text.find("{")
    if start < 0:
        raise FioError("no JSON in fio output: %r" % text[:300])
    try:
        doc = json.loads(text[start:])
    except ValueError as e:
        raise FioError("fio output is not JSON (%s): %r" % (e, text[start:start + 300]))
    runs = doc.get("jobs") or []
    if not runs:
        raise FioError("fio output has no jobs")
    r = runs[0]
    if r.get("error"):
        raise FioError("fio job failed with error %d" % r["error"])
    side = r["write"] if job.writes else r["read"]
    if job.random:
        value = side["iops"] / 1000.0
    else:
        value = side["bw_bytes"] / (1024.0 * 1024.0)
    if side.get("total_ios", 1) == 0:
        raise FioError("fio did no I/O")
    clat = side.get("clat_ns", {}).get("percentile", {})
    extra = {
        "iops": side["iops"],
        "bw_mib": side["bw_bytes"] / (1024.0 * 1024.0),
        "clat_p50_us": clat.get("50.000000", 0) / 1000.0,
        "clat_p99_us": clat.get("99.000000", 0) / 1000.0,
        "fio_usr_cpu": r.get("usr_cpu"),
        "fio_sys_cpu": r.get("sys_cpu"),
    }
    return value, extra
