"""bench_main: scripts/bench's options, the run loop and the output.

One run: create a random image (raw, plus a qcow2 copy made with qemu-img,
plus scratch copies for write jobs), warm the page cache, then for each
repetition and each job run fio once on every target, in an order that
rotates between repetitions and jobs so that drift on a shared machine is
spread over all targets.  The medians go into a text table and a JSON file.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import bench_jobs as jobsmod
import bench_procs as procs
import bench_report as report
from bench_report import (DIRECT, EXPORTD, EXPORTD_NULL, EXPORTD_PT, FUSEPT, QSD, QSD_NULL,
                          Results)
from bench_targets import (DirectTarget, FusePassthroughTarget, Images, QmpDaemonTarget,
                           TargetError)

ALL_TARGETS = [EXPORTD, QSD, FUSEPT, DIRECT, EXPORTD_PT, EXPORTD_NULL, QSD_NULL]
# Seconds a run costs beyond fio's runtime+ramp (server start/stop, fio start).
RUN_OVERHEAD = 0.3


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0", "no", "false")


def parse_args(argv, environ=None):
    """Command line (with BENCH_* environment defaults) -> argparse namespace."""
    env = os.environ if environ is None else environ
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="fio on FUSE exports: exportd vs qemu-storage-daemon vs libfuse's "
                    "passthrough example vs the image itself.  Environment: BENCH_QUICK=1 "
                    "(same as --quick), BENCH_TARGETS, BENCH_JOBS, BENCH_JSON.")
    p.add_argument("--quick", action="store_true",
                   default=env.get("BENCH_QUICK", "") not in ("", "0"),
                   help="under 2 minutes: small image, few jobs, 1 repetition")
    # Five short repetitions rather than three long ones: on a shared
    # machine the noise comes in bursts, and a median of five rides them out.
    p.add_argument("--reps", type=int, help="repetitions (default 5, quick 1)")
    p.add_argument("--runtime", type=float, help="fio seconds per run (default 2)")
    p.add_argument("--ramp", type=float, help="fio ramp seconds (default 0.5)")
    p.add_argument("--size", type=int, help="image size in MiB (default 1024, quick 256)")
    p.add_argument("--targets", default=env.get("BENCH_TARGETS", ",".join(ALL_TARGETS)),
                   help="comma list among: " + ", ".join(ALL_TARGETS))
    p.add_argument("--jobs", default=env.get("BENCH_JOBS", ""),
                   help="keep jobs whose key contains one of these comma-separated strings "
                        "(chosen from the full list, also with --quick)")
    p.add_argument("--exportd", default=os.path.join(repo_root(), "exportd"),
                   help="exportd binary (default: the build tree's)")
    p.add_argument("--exportd-threads", type=int,
                   help="num-threads for exportd exports (default: exportd's own)")
    p.add_argument("--exportd-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra block-export-add member for exportd (repeatable; VALUE "
                        "is JSON if it parses, else a string), e.g. io-uring=true")
    p.add_argument("--exportd-file-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra blockdev-add member for exportd's file node, e.g. aio=io_uring")
    p.add_argument("--qsd", default=shutil.which("qemu-storage-daemon") or
                   "/usr/bin/qemu-storage-daemon", help="qemu-storage-daemon binary")
    p.add_argument("--json", default=env.get("BENCH_JSON", ""),
                   help="where to write the JSON results (default build/bench/bench-DATE.json)")
    p.add_argument("--workdir", default=env.get("BENCH_DIR", "/var/tmp"),
                   help="directory for the temporary images (default /var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the images and logs")
    p.add_argument("--qmp-interval", type=float, default=10.0,
                   help="ms between QMP probes under load (default 10)")
    p.add_argument("--list", action="store_true", help="print the plan and exit")
    p.add_argument("--perf", nargs="?", const="auto", default="",
                   metavar="JOB",
                   help="after the runs, profile exportd and qsd with perf on JOB (a "
                        "comma list of job keys; default raw-randread-4k-qd16); "
                        "summaries in build/bench/")
    a = p.parse_args(argv)
    q = a.quick
    a.reps = a.reps if a.reps is not None else (1 if q else 5)
    a.runtime = a.runtime if a.runtime is not None else 2.0
    a.ramp = a.ramp if a.ramp is not None else 0.5
    a.size = a.size if a.size is not None else (256 if q else 1024)
    a.target_ids = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [t for t in a.target_ids if t not in ALL_TARGETS]
    if bad:
        p.error("unknown target(s) %s; known: %s" % (", ".join(bad), ", ".join(ALL_TARGETS)))
    try:
        a.exportd_export_opts = parse_kv(a.exportd_opt)
        a.exportd_file_opts = parse_kv(a.exportd_file_opt)
    except ValueError as e:
        p.error(str(e))
    for name in ("reps", "size"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name)
    if a.runtime <= 0 or a.ramp < 0:
        p.error("--runtime must be > 0 and --ramp >= 0")
    return a


def parse_kv(items):
    """["a=1", "b=x"] -> {"a": 1, "b": "x"}: values are JSON when they parse."""
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ValueError("expected KEY=VALUE, got %r" % item)
        try:
            out[key] = json.loads(val)
        except ValueError:
            out[key] = val
    return out


def make_targets(args):
    """Target objects for the requested ids, in ALL_TARGETS order."""
    exportd_opts = dict(getattr(args, "exportd_export_opts", {}))
    if args.exportd_threads:
        exportd_opts["num-threads"] = args.exportd_threads
    file_opts = getattr(args, "exportd_file_opts", {})
    out = []
    for tid in ALL_TARGETS:
        if tid not in args.target_ids:
            continue
        if tid == EXPORTD:
            # The userspace data path, comparable with qsd.  passthrough=off
            # is dropped if this exportd does not know the option yet.
            out.append(QmpDaemonTarget(EXPORTD, "exportd", args.exportd,
                                       dict({"passthrough": "off"}, **exportd_opts),
                                       soft_opts=("passthrough",), file_opts=file_opts))
        elif tid == EXPORTD_PT:
            out.append(QmpDaemonTarget(EXPORTD_PT, "exportd-pt", args.exportd,
                                       dict(exportd_opts, passthrough="on"),
                                       formats=("raw",), buffered=None,
                                       expect_path="passthrough", file_opts=file_opts,
                                       disk_writer=True, write_opts={"growable": True}))
        elif tid == QSD:
            out.append(QmpDaemonTarget(QSD, "qsd", args.qsd))
        elif tid == EXPORTD_NULL:
            out.append(QmpDaemonTarget(EXPORTD_NULL, "exportd-null", args.exportd,
                                       dict({"passthrough": "off"}, **exportd_opts),
                                       soft_opts=("passthrough",), formats=("raw",),
                                       null_co=True))
        elif tid == QSD_NULL:
            out.append(QmpDaemonTarget(QSD_NULL, "qsd-null", args.qsd, formats=("raw",),
                                       null_co=True))
        elif tid == FUSEPT:
            out.append(FusePassthroughTarget())
        elif tid == DIRECT:
            out.append(DirectTarget())
    return out


def plan(jobs, targets, reps):
    """[(rep, job, [targets in run order])]: targets rotate per rep and job."""
    out = []
    for rep in range(reps):
        for ji, job in enumerate(jobs):
            ts = [t for t in targets if t.applies(job)]
            if ts:
                k = (rep + ji) % len(ts)
                ts = ts[k:] + ts[:k]
            out.append((rep, job, ts))
    return out


class QmpProbe(threading.Thread):
    """Times query-block-exports round trips while fio runs."""

    def __init__(self, qmp, delay, duration, interval_ms):
        super().__init__(daemon=True)
        self.qmp, self.delay, self.duration = qmp, delay, duration
        self.interval = interval_ms / 1000.0
        self.samples = []
        self.error = None
        self.halt = threading.Event()

    def run(self):
        if self.halt.wait(self.delay):
            return
        end = time.monotonic() + self.duration
        try:
            while not self.halt.is_set() and time.monotonic() < end:
                t0 = time.perf_counter()
                self.qmp.cmd("query-block-exports")
                self.samples.append((time.perf_counter() - t0) * 1000.0)
                self.halt.wait(self.interval)
        except Exception as e:   # a hung or dead monitor is a result too
            self.error = "%s: %s" % (type(e).__name__, e)


class Context:
    def __init__(self, workdir, builddir, images):
        self.workdir = workdir
        self.rundir = os.path.join(workdir, "run")
        self.builddir = builddir
        self.images = images


def make_images(images, size_mib, log):
    os.makedirs(images.dir, exist_ok=True)
    t0 = time.monotonic()
    chunk = 4 << 20
    with open(images.read["raw"], "wb") as f:
        for _ in range(size_mib * (1 << 20) // chunk):
            f.write(os.urandom(chunk))
        rest = size_mib * (1 << 20) % chunk
        if rest:
            f.write(os.urandom(rest))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                    images.read["raw"], images.read["qcow2"]], check=True)
    for fmt in ("raw", "qcow2"):
        shutil.copyfile(images.read[fmt], images.write[fmt])
    for fmt, path in images.write_disk.items():
        shutil.copyfile(images.read[fmt], path)
    os.sync()
    log("images: %d MiB random raw + qcow2 copy + write copies in %s (%.1f s)" % (
        size_mib, images.dir, time.monotonic() - t0))


def warm_file(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def warm_cache(images):
    """Read every image once so the page cache holds it."""
    for path in images.all_paths():
        warm_file(path)


def flush_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_fio(job, filename, args):
    argv = jobsmod.fio_argv(job, filename, args.runtime, args.ramp)
    p = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=args.runtime + args.ramp + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        procs.forget(p)
        raise jobsmod.FioError("fio did not finish within %.0f s (server hung?)" % (
            args.runtime + args.ramp + 60))
    procs.forget(p)
    text = out.decode(errors="replace")
    if p.returncode != 0:
        raise jobsmod.FioError("fio exited with %d: %s" % (
            p.returncode, jobsmod.first_errors(err.decode(errors="replace") or text)))
    return jobsmod.parse_fio(text, job)


def machine_info():
    try:
        with open("/proc/cpuinfo") as f:
            models = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
    except OSError:
        models = []
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for l in f:
                if l.startswith("MemTotal:"):
                    mem = int(l.split()[1]) // 1024
    except OSError:
        pass
    return {"hostname": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "cpu_model": models[0] if models else None,
            "mem_mib": mem}


def tool_versions(args):
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None
    return {"fio": first_line(["fio", "--version"]),
            "qemu-storage-daemon": first_line([args.qsd, "--version"]),
            "qemu-img": first_line(["qemu-img", "--version"])}


def render(jobs, res, labels, checks):
    parts = []
    for title, headers, rows in report.sections(jobs, res, labels):
        parts.append(report.format_table(headers, rows, title=title))
    if res.qmp:
        title, headers, rows, align = report.qmp_table(res, labels)
        parts.append(report.format_table(headers, rows, title=title, align=align))
    title, headers, rows, align = report.checks_table(checks)
    if rows:
        parts.append(report.format_table(headers, rows, title=title, align=align))
    return "\n\n".join(parts)


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv):
    args = parse_args(argv)
    log = lambda msg: print("bench: " + msg, flush=True)
    # --jobs picks from the full list even in quick mode: quick then only
    # means a small image, one repetition and short runs.
    jobs = jobsmod.select_jobs(jobsmod.job_list(args.quick and not args.jobs), args.jobs)
    if not jobs:
        log("no job matches --jobs %r" % args.jobs)
        return 2
    probe_key = jobsmod.QMP_PROBE_JOB_QUICK if args.quick else jobsmod.QMP_PROBE_JOB
    for tool in ("fio", "qemu-img", "fusermount3"):
        if shutil.which(tool) is None:
            log("%s is required and was not found in PATH" % tool)
            return 2
    if not os.path.exists("/dev/fuse"):
        log("/dev/fuse is missing: no FUSE target can run")

    root = repo_root()
    builddir = os.path.join(root, "build", "bench")
    targets = make_targets(args)
    skipped = {}          # target id -> reason (whole target)
    failed_kind = {}      # job_kind() -> reason the target could not start

    # SIGINT too: a shell starting the bench in the background leaves SIGINT
    # ignored, and Python then never raises KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    workdir = os.path.realpath(tempfile.mkdtemp(prefix="exportd-bench-", dir=args.workdir))
    images = Images(os.path.join(workdir, "images"))
    ctx = Context(workdir, builddir, images)
    os.makedirs(ctx.rundir)
    res = Results()
    warnings = []
    started = time.time()
    load_before = os.getloadavg()
    interrupted = False
    the_plan = []
    perf_files = []
    try:
        for t in targets:
            try:
                t.prepare(ctx)
            except TargetError as e:
                skipped[t.id] = str(e)
                log("SKIPPING %s: %s" % (t.id, e))
        live = [t for t in targets if t.id not in skipped]
        if EXPORTD_PT not in [t.id for t in live]:
            # The buffered rows only compare passthrough with the image.
            jobs = [j for j in jobs if not j.buffered]
        the_plan = plan(jobs, live, args.reps)
        nruns = sum(len(ts) for _, _, ts in the_plan)
        est = nruns * (args.runtime + args.ramp + RUN_OVERHEAD)
        log("%d jobs x %d reps, %d fio runs of %gs+%gs ramp on %s; about %.0f s" % (
            len(jobs), args.reps, nruns, args.runtime, args.ramp,
            ", ".join(t.label for t in live), est))
        if args.list:
            for rep, job, ts in the_plan:
                print("rep %d  %-32s %s" % (rep + 1, job.key, " ".join(t.id for t in ts)))
            return 0
        for attempt in (1, 2, 3):
            try:
                make_images(images, args.size, log)
                break
            except (OSError, subprocess.CalledProcessError) as e:
                # The disk is shared: another user's test may fill it for a
                # moment.  Try again a little later before giving up.
                log("cannot create the images in %s: %s" % (images.dir, e))
                shutil.rmtree(images.dir, ignore_errors=True)
                if attempt == 3:
                    return 1
                log("trying again in 20 s")
                time.sleep(20)
        n = 0
        for rep in range(args.reps):
            warm_cache(images)
            for r, job, ts in the_plan:
                if r != rep:
                    continue
                for t in ts:
                    n += 1
                    kind = job_kind(t, job)
                    if kind in failed_kind:
                        res.add_error(t.id, job.key, "not run: " + failed_kind[kind])
                        continue
                    run_one(t, job, args, ctx, res, probe_key, failed_kind, warnings, log,
                            "[%d/%d] rep %d" % (n, nruns, rep + 1))
        if the_plan and any(j.fmt == "qcow2" and j.writes for j in jobs):
            # Every daemon wrote into the same qcow2 scratch image: a broken
            # qcow2 write path shows up here.
            r = subprocess.run(["qemu-img", "check", images.write["qcow2"]],
                               capture_output=True, text=True)
            if r.returncode:
                warnings.append("qemu-img check of the qcow2 write image failed (%d): %s" % (
                    r.returncode, " | ".join(r.stdout.strip().splitlines()[-3:] +
                                             r.stderr.strip().splitlines()[-2:])))
            else:
                log("qemu-img check of the qcow2 write image: no errors")
        if args.perf:
            perf_files.extend(run_perf(args, jobs, live, ctx, builddir, log))
    except KeyboardInterrupt as e:
        interrupted = True
        log("interrupted (%s): cleaning up" % (e or "Ctrl-C"))
    finally:
        # A second Ctrl-C must not cut the cleanup short; every step of it
        # has its own timeout.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for t in targets:
            try:
                warnings.extend(t.stop())
            except Exception as e:   # cleanup must go on
                warnings.append("stopping %s: %s" % (t.id, e))
        left = procs.cleanup_all()
        if left:
            log("WARNING: still mounted after cleanup: %s" % ", ".join(left))
        if args.keep or left:
            log("kept %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.list:
        return 0

    labels = {t.id: t.label for t in targets}
    checks = report.target_checks(jobs, res)
    text = render(jobs, res, labels, checks)
    elapsed = time.time() - started
    load_after = os.getloadavg()
    header = ("exportd bench, %s, %s, %d CPUs, Linux %s; image %d MiB; %d rep(s) x %gs "
              "(+%gs ramp), median%s\nload average %.1f at start, %.1f at end (%.0f s)") % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), platform.node(),
        os.cpu_count(), platform.release(), args.size, args.reps, args.runtime, args.ramp,
        "; QUICK" if args.quick else "", load_before[0], load_after[0], elapsed)
    print()
    print(header)
    print()
    print(text)
    notes = []
    for t in targets:
        if t.id not in skipped:
            notes.extend(t.notes())
    notes.extend(data_path_notes(res.info, labels))
    for tid, why in skipped.items():
        notes.append("skipped %s: %s" % (tid, why))
    for (tid, fmt, buf, writes), why in failed_kind.items():
        notes.append("%s could not serve %s %s %s jobs: %s" % (
            tid, "buffered" if buf else "O_DIRECT", fmt, "write" if writes else "read", why))
    for tid, slots in res.runs.items():
        for key, s in slots.items():
            for e in s["errors"]:
                if not e.startswith("not run:") and e not in failed_kind.values():
                    notes.append("%s %s: %s" % (tid, key, e))
    notes.extend("warning: " + w for w in warnings)
    notes.extend("perf profile: " + p for p in perf_files)
    if notes:
        print()
        print("\n".join(notes))

    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(elapsed, 1),
        "interrupted": interrupted,
        "machine": dict(machine_info(), loadavg_start=load_before, loadavg_end=load_after),
        "tools": tool_versions(args),
        "config": {"quick": args.quick, "reps": args.reps, "runtime_s": args.runtime,
                   "ramp_s": args.ramp, "image_mib": args.size,
                   "fio": "ioengine=libaio, direct=1 unless buffered (then invalidate=0)",
                   "qmp_probe_job": probe_key, "qmp_interval_ms": args.qmp_interval},
        "targets": {t.id: {"label": t.label, "description": t.describe(),
                           "skipped": skipped.get(t.id)} for t in targets},
        "jobs": [{"key": j.key, "label": j.label, "format": j.fmt, "rw": j.rw, "bs": j.bs,
                  "iodepth": j.iodepth, "numjobs": j.numjobs, "buffered": j.buffered,
                  "unit": j.unit} for j in jobs],
        "results": {tid: {key: dict(s, median=report.median(s["values"]))
                          for key, s in slots.items()} for tid, slots in res.runs.items()},
        "export_info": res.info,
        "qmp": {tid: report.latency_summary(s) for tid, s in res.qmp.items()},
        "checks": checks,
        "notes": notes,
        "table": header + "\n\n" + text,
    }
    path = args.json or os.path.join(builddir, time.strftime(
        "bench-%Y%m%d-%H%M%S.json", time.gmtime(started)))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print()
    log("JSON results: %s (%.0f s)" % (path, elapsed))
    return 130 if interrupted else 0


def run_perf(args, jobs, live, ctx, outdir, log):
    """--perf: one profiled extra run per daemon target; summary paths."""
    import bench_perf
    if not bench_perf.available():
        log("--perf: perf is not installed, no profile")
        return []
    keys = ["raw-randread-4k-qd16"] if args.perf == "auto" else \
        [k.strip() for k in args.perf.split(",") if k.strip()]
    known = {j.key: j for j in jobsmod.job_list(False)}
    os.makedirs(outdir, exist_ok=True)
    out = []
    for key in keys:
        job = known.get(key)
        if job is None:
            log("--perf: no job %r (see --list)" % key)
            continue
        for t in live:
            if t.qmp_capable and t.applies(job):
                p = bench_perf.profile(t, job, ctx, args, outdir, run_fio, log)
                if p:
                    log("perf profile of %s: %s" % (t.id, p))
                    out.append(p)
    return out


def data_path_notes(info, labels):
    """One line per daemon target: the data path(s) and threads it reported."""
    out = []
    for tid, by_job in sorted(info.items()):
        seen = []
        for key, e in sorted(by_job.items()):
            if "x-data-path" not in e:
                continue
            d = "%s (%s)" % (e["x-data-path"], e.get("x-data-path-reason", "?"))
            if "x-num-threads" in e:
                d += ", %s threads" % e["x-num-threads"]
            if d not in seen:
                seen.append(d)
        if seen:
            out.append("%s exports reported: %s" % (labels.get(tid, tid), "; ".join(seen)))
    return out


def job_kind(t, job):
    """Jobs that a target sets up alike: once one fails to start, the others
    of the same kind are not tried again (a daemon refusing writable
    passthrough may still serve reads)."""
    return (t.id, job.fmt, job.buffered, job.writes)


def run_one(t, job, args, ctx, res, probe_key, failed_kind, warnings, log, tag):
    """One fio run of job on target t; results and failures go into res."""
    kind = job_kind(t, job)
    if job.buffered:
        # Earlier O_DIRECT writes into the same scratch copy dropped what
        # they wrote from the page cache; whichever target ran the first
        # buffered write of a repetition paid for it (ran at half speed).
        warm_file(t.image(job, ctx))
    try:
        filename = t.start(job, ctx)
    except TargetError as e:
        failed_kind[kind] = str(e)
        res.add_error(t.id, job.key, str(e))
        log("%s %s %s: cannot start: %s" % (tag, job.key, t.id, e))
        return
    probe = None
    extra = {}
    try:
        if t.info:
            res.info.setdefault(t.id, {})[job.key] = t.info
        pid = t.server_pid()
        cpu0 = procs.cpu_seconds(pid) if pid else None
        if t.qmp is not None and job.key == probe_key:
            probe = QmpProbe(t.qmp, args.ramp, args.runtime * 0.95, args.qmp_interval)
            probe.start()
        t0 = time.monotonic()
        try:
            value, extra = run_fio(job, filename, args)
        finally:
            wall = time.monotonic() - t0
            if probe is not None:
                probe.halt.set()
                probe.join(15)
        cpu1 = procs.cpu_seconds(pid) if pid else None
        if cpu0 is not None and cpu1 is not None:
            extra["server_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / wall, 1)
        res.add(t.id, job.key, value, extra)
        msg = "%s %-28s %-10s %8s %s" % (tag, job.key, t.id, report.fmt_value(value), job.unit)
        if "server_cpu_pct" in extra:
            msg += "  (server CPU %.0f%%)" % extra["server_cpu_pct"]
        if probe is not None:
            res.add_qmp(t.id, probe.samples)
            s = report.latency_summary(probe.samples)
            msg += "  QMP p50 %s p99 %s ms (%d)" % (report.fmt_ms(s["p50_ms"]),
                                                   report.fmt_ms(s["p99_ms"]), s["samples"])
            if probe.error:
                res.add_error(t.id, job.key, "QMP probe: " + probe.error)
        log(msg)
    except jobsmod.FioError as e:
        res.add_error(t.id, job.key, str(e))
        log("%s %s %s: FAILED: %s" % (tag, job.key, t.id, e))
    finally:
        warnings.extend("%s %s: %s" % (t.id, job.key, w) for w in t.stop())
        if job.writes:
            flush_file(t.image(job, ctx))
