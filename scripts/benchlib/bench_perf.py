"""bench_perf: optional profile of a server under fio load (`scripts/bench --perf`).

After the measured runs, each daemon target serves one more run of a chosen
job while `perf record -g` samples the server process; the run's number is
not used (perf costs CPU).  What remains is a short text summary per target:
where the server's cycles went (by DSO and symbol, callers folded) and its
threads' share of CPU, to explain a ratio that misses its target.
"""

import os
import shutil
import subprocess

import bench_procs as procs


def available():
    return shutil.which("perf") is not None


def profile(target, job, ctx, args, outdir, run_fio, log):
    """One profiled run; returns the summary file path or None."""
    from bench_targets import TargetError  # noqa: avoid a cycle at import time
    try:
        filename = target.start(job, ctx)
    except TargetError as e:
        log("perf %s %s: cannot start: %s" % (target.id, job.key, e))
        return None
    data = os.path.join(outdir, "perf-%s-%s.data" % (target.id, job.key))
    txt = os.path.join(outdir, "perf-%s-%s.txt" % (target.id, job.key))
    try:
        pid = target.server_pid()
        # Sample after fio's ramp (--delay), for most of the runtime.  perf is
        # spawned from this (main) thread: PR_SET_PDEATHSIG fires when the
        # spawning thread exits, not the process.
        perf = procs.spawn(["perf", "record", "-F", "999", "-g", "-o", data,
                            "--delay", "%d" % int(args.ramp * 1000), "-p", str(pid), "--",
                            "sleep", "%g" % (args.ramp + max(0.5, args.runtime * 0.8))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            value, _ = run_fio(job, filename, args)
        finally:
            try:
                perf.wait(30)
                procs.forget(perf)
            except subprocess.TimeoutExpired:
                procs.reap(perf)
        threads = thread_cpu(pid)
    except Exception as e:
        log("perf %s %s: %s" % (target.id, job.key, e))
        return None
    finally:
        target.stop()
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "-g", "none", "--sort", "dso,sym", "--percent-limit", "1.5"],
                         capture_output=True, text=True)
    lines = [l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
    with open(txt, "w") as f:
        f.write("%s on %s: %s %s under perf (not a measurement)\n\n" % (
            target.id, job.key, "%.1f" % value, job.unit))
        f.write("threads (CPU seconds since the server started for this run):\n")
        for name, secs in threads:
            f.write("  %-20s %.2f\n" % (name, secs))
        f.write("\nhottest symbols (self, >= 1.5%):\n")
        f.write("\n".join(lines[:40]) + "\n")
    return txt


def thread_cpu(pid):
    """[(thread name, cpu seconds)] of a process, busiest first."""
    out = []
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    hz = float(os.sysconf("SC_CLK_TCK"))
    for tid in tids:
        try:
            with open(os.path.join(base, tid, "stat")) as f:
                s = f.read()
        except OSError:
            continue
        name = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        out.append(("%s/%s" % (name, tid), (int(fields[11]) + int(fields[12])) / hz))
    return sorted(out, key=lambda x: -x[1])
