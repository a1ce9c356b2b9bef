"""Tests of scripts/bench's pure parts: options, job list, fio command line and
output parsing, medians, ratios, percentiles, target checks and table layout.
No fio, no server, no mount: these run in well under a second."""

import json
import os
import sys

import pytest

BENCH_D = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "scripts", "benchlib")
sys.path.insert(0, BENCH_D)

import bench_jobs as jobs  # noqa: E402
import bench_main  # noqa: E402
import bench_procs  # noqa: E402
import bench_report as rep  # noqa: E402
from bench_targets import DirectTarget, QmpDaemonTarget  # noqa: E402


# --- options -------------------------------------------------------------

def test_defaults_full_run():
    a = bench_main.parse_args([], environ={})
    assert (a.quick, a.reps, a.runtime, a.ramp, a.size) == (False, 5, 2.0, 0.5, 1024)
    assert a.target_ids == bench_main.ALL_TARGETS


def test_bench_quick_env_selects_quick_defaults():
    a = bench_main.parse_args([], environ={"BENCH_QUICK": "1"})
    assert (a.quick, a.reps, a.runtime, a.size) == (True, 1, 2.0, 256)


def test_bench_quick_zero_is_off():
    assert not bench_main.parse_args([], environ={"BENCH_QUICK": "0"}).quick


def test_explicit_options_override_quick():
    a = bench_main.parse_args(["--quick", "--reps", "2", "--size", "64"], environ={})
    assert (a.reps, a.size) == (2, 64)


def test_unknown_target_is_rejected(capsys):
    with pytest.raises(SystemExit):
        bench_main.parse_args(["--targets", "qsd,nbdkit"], environ={})
    assert "nbdkit" in capsys.readouterr().err


def test_zero_reps_is_rejected():
    with pytest.raises(SystemExit):
        bench_main.parse_args(["--reps", "0"], environ={})


def test_targets_from_environment():
    a = bench_main.parse_args([], environ={"BENCH_TARGETS": "qsd, direct"})
    assert a.target_ids == ["qsd", "direct"]


# --- jobs and fio ----------------------------------------------------------

def test_full_job_list_matches_the_issue():
    js = jobs.job_list(quick=False)
    raw = [j for j in js if j.fmt == "raw" and not j.buffered]
    qcow2 = [j for j in js if j.fmt == "qcow2"]
    assert [j.label for j in raw] == [
        "seq read 1M qd1", "seq read 128k qd4", "rand read 4k qd1", "rand read 4k qd16",
        "rand read 4k qd16 x2", "seq write 1M qd1", "rand write 4k qd16"]
    assert [j.label for j in qcow2] == [j.label for j in raw]
    assert all(j.fmt == "raw" for j in js if j.buffered)
    assert len({j.key for j in js}) == len(js)
    assert jobs.QMP_PROBE_JOB in {j.key for j in js}


def test_quick_job_list_is_small_and_has_the_probe_job():
    js = jobs.job_list(quick=True)
    assert len(js) <= 6
    assert jobs.QMP_PROBE_JOB_QUICK in {j.key for j in js}


def test_units():
    assert jobs.Job("raw", "read", "1M", 1).unit == "MiB/s"
    assert jobs.Job("raw", "randwrite", "4k", 16).unit == "kIOPS"


def test_select_jobs_by_substring():
    js = jobs.job_list()
    sel = jobs.select_jobs(js, "qcow2-randread,buffered")
    assert sel and all("qcow2-randread" in j.key or "buffered" in j.key for j in sel)
    assert jobs.select_jobs(js, "") == js


def test_fio_argv_direct_and_buffered():
    j = jobs.Job("raw", "randread", "4k", 16, 2)
    argv = jobs.fio_argv(j, "/x/f", 3, 1)
    assert "--direct=1" in argv and "--ioengine=libaio" in argv
    assert "--iodepth=16" in argv and "--numjobs=2" in argv and "--filename=/x/f" in argv
    assert "--invalidate=0" in argv   # never evict the image from the page cache
    b = jobs.fio_argv(jobs.Job("raw", "read", "1M", 1, buffered=True), "/x/f", 3, 1)
    assert "--direct=0" in b and "--invalidate=0" in b


def _fio_doc(read_iops=0.0, read_bw=0, write_iops=0.0, write_bw=0, error=0, ios=1000):
    side = lambda iops, bw: {"iops": iops, "bw_bytes": bw, "total_ios": ios,
                             "clat_ns": {"percentile": {"50.000000": 150000,
                                                        "99.000000": 900000}}}
    return json.dumps({"fio version": "fio-3.33", "jobs": [{
        "jobname": "x", "error": error, "usr_cpu": 10.0, "sys_cpu": 30.0,
        "read": side(read_iops, read_bw), "write": side(write_iops, write_bw)}]})


def test_parse_fio_random_read_in_kiops():
    v, extra = jobs.parse_fio(_fio_doc(read_iops=48500.0), jobs.Job("raw", "randread", "4k", 16))
    assert v == pytest.approx(48.5)
    assert extra["clat_p50_us"] == pytest.approx(150.0)
    assert extra["clat_p99_us"] == pytest.approx(900.0)


def test_parse_fio_seq_write_uses_write_side_in_mib():
    doc = _fio_doc(read_bw=1 << 30, write_bw=512 << 20)
    v, _ = jobs.parse_fio(doc, jobs.Job("raw", "write", "1M", 1))
    assert v == pytest.approx(512.0)


def test_parse_fio_skips_leading_warnings():
    text = "fio: some warning\n" + _fio_doc(read_bw=100 << 20)
    assert jobs.parse_fio(text, jobs.Job("raw", "read", "1M", 1))[0] == pytest.approx(100.0)


def test_parse_fio_job_error_raises():
    with pytest.raises(jobs.FioError):
        jobs.parse_fio(_fio_doc(error=5), jobs.Job("raw", "read", "1M", 1))


def test_parse_fio_no_io_raises():
    with pytest.raises(jobs.FioError):
        jobs.parse_fio(_fio_doc(ios=0), jobs.Job("raw", "read", "1M", 1))


def test_parse_fio_garbage_raises():
    with pytest.raises(jobs.FioError):
        jobs.parse_fio("fio: engine libaio not loadable", jobs.Job("raw", "read", "1M", 1))


def test_first_errors_collapses_repeats():
    err = ("fio: io_u error on file f: Invalid argument: write offset=1, buflen=4096\n"
           "fio: io_u error on file f: Invalid argument: write offset=2, buflen=4096\n"
           "fio: pid=7, err=22/file:io_u.c:1889\n")
    assert jobs.first_errors(err) == ("fio: io_u error on file f: Invalid argument: write"
                                      " | fio: pid=7, err=22/file:io_u.c:1889")


# --- aggregation -------------------------------------------------------------

def test_median():
    assert rep.median([3, 1, 2]) == 2
    assert rep.median([4, 1, 3, 2]) == 2.5
    assert rep.median([]) is None
    assert rep.median([None, 5]) == 5


def test_ratio():
    assert rep.ratio(3.0, 1.5) == 2.0
    assert rep.ratio(None, 1) is None
    assert rep.ratio(1, 0) is None


def test_percentile_nearest_rank():
    s = list(range(1, 101))
    assert rep.percentile(s, 50) == 50
    assert rep.percentile(s, 99) == 99
    assert rep.percentile(s, 100) == 100
    assert rep.percentile([7.0], 99) == 7.0
    assert rep.percentile([], 50) is None


def test_latency_summary():
    s = rep.latency_summary([1.0, 2.0, 30.0])
    assert s == {"samples": 3, "p50_ms": 2.0, "p99_ms": 30.0, "max_ms": 30.0}


def test_results_median_over_reps():
    r = rep.Results()
    for v in (10.0, 30.0, 20.0):
        r.add("qsd", "raw-read-1M-qd1", v, {"server_cpu_pct": v})
    assert r.value("qsd", "raw-read-1M-qd1") == 20.0
    assert r.extra_median("qsd", "raw-read-1M-qd1", "server_cpu_pct") == 20.0
    assert r.value("qsd", "other") is None and r.value("exportd", "x") is None


def _results(values):
    r = rep.Results()
    for (t, k), v in values.items():
        r.add(t, k, v)
    return r


def test_target_checks_thresholds():
    js = [jobs.Job("raw", "randread", "4k", 16), jobs.Job("raw", "read", "1M", 1),
          jobs.Job("qcow2", "randread", "4k", 1)]
    r = _results({("exportd", "raw-randread-4k-qd16"): 50.0,
                  ("qsd", "raw-randread-4k-qd16"): 26.0,     # 1.92 < 2.0
                  ("exportd", "raw-read-1M-qd1"): 1500.0,
                  ("qsd", "raw-read-1M-qd1"): 1000.0,        # 1.5 >= 1.5
                  ("fusept", "raw-read-1M-qd1"): 2000.0,     # 0.75 < 0.9
                  ("qsd", "qcow2-randread-4k-qd1"): 10.0})   # exportd missing
    r.add_qmp("exportd", [1.0] * 99 + [12.0, 12.0])
    by = {(c["job"], c["what"].split(" (")[0]): c for c in rep.target_checks(js, r)}
    assert by[("raw-randread-4k-qd16", "exportd / qsd")]["status"] == "FAIL"
    assert by[("raw-randread-4k-qd16", "exportd / qsd")]["need"] == 2.0
    assert by[("raw-read-1M-qd1", "exportd / qsd")]["status"] == "PASS"
    assert by[("raw-read-1M-qd1", "exportd / FUSE passthrough example, reads")]["status"] \
        == "FAIL"
    assert by[("qcow2-randread-4k-qd1", "exportd / qsd")]["status"] == "n/a"
    assert by[("exportd", "QMP query-block-exports p99 under load < 10 ms")]["status"] == "FAIL"
    assert by[("exportd-pt", "QMP query-block-exports p99 under load < 10 ms")]["status"] == "n/a"


def test_writes_are_not_checked_against_the_passthrough_example():
    js = [jobs.Job("raw", "randwrite", "4k", 16)]
    whats = [c["what"] for c in rep.target_checks(js, rep.Results())]
    assert not any("passthrough example" in w for w in whats)


# --- tables ------------------------------------------------------------------

def test_format_value_and_ratio():
    assert rep.fmt_value(None) == "-"
    assert rep.fmt_value(1234.4) == "1234"
    assert rep.fmt_value(48.56) == "48.6"
    assert rep.fmt_value(1.234) == "1.23"
    assert rep.fmt_ratio(1.876, need=2.0) == "1.88!"
    assert rep.fmt_ratio(2.0, need=2.0) == "2.00"
    assert rep.fmt_ratio(None) == "-"


def test_format_table_aligns_columns():
    t = rep.format_table(["job", "unit", "qsd"], [["seq read 1M qd1", "MiB/s", "1205"],
                                                  ["rand read 4k qd16", "kIOPS", "26.6"]],
                         title="raw")
    lines = t.splitlines()
    assert lines[0] == "raw"
    assert lines[1] == "job                 unit   qsd"
    assert lines[2] == "-----------------  -----  ----"
    assert lines[3] == "seq read 1M qd1    MiB/s  1205"
    assert lines[4] == "rand read 4k qd16  kIOPS  26.6"


def test_sections_show_medians_and_ratios():
    js = [jobs.Job("raw", "randread", "4k", 16), jobs.Job("qcow2", "randread", "4k", 16)]
    r = _results({("exportd", "raw-randread-4k-qd16"): 60.0,
                  ("qsd", "raw-randread-4k-qd16"): 30.0,
                  ("fusept", "raw-randread-4k-qd16"): 50.0,
                  ("direct", "raw-randread-4k-qd16"): 75.0,
                  ("exportd-pt", "raw-randread-4k-qd16"): 72.0,
                  ("qsd", "qcow2-randread-4k-qd16"): 40.0})
    secs = rep.sections(js, r, {"fusept": "passthrough_ll"})
    raw_title, raw_headers, raw_rows = secs[0]
    assert raw_headers[-1] == "exportd/passthrough_ll"
    assert raw_rows == [["rand read 4k qd16", "kIOPS", "60.0", "30.0", "50.0", "75.0",
                         "2.00", "1.20"]]
    assert secs[1][2] == [["rand read 4k qd16", "kIOPS", "-", "40.0", "-"]]
    assert secs[2][2] == [["rand read 4k qd16", "O_DIRECT", "kIOPS", "72.0", "75.0",
                           "0.96", "2.40"]]


def test_null_co_section_compares_the_daemons_alone():
    js = [jobs.Job("raw", "randread", "4k", 16), jobs.Job("qcow2", "randread", "4k", 16)]
    r = _results({("exportd-null", "raw-randread-4k-qd16"): 90.0,
                  ("qsd-null", "raw-randread-4k-qd16"): 45.0})
    title, headers, rows = rep.sections(js, r, {})[-1]
    assert title.startswith("null-co")
    assert headers[2:] == ["exportd-null", "qsd-null", "exportd/qsd"]
    assert rows == [["rand read 4k qd16", "kIOPS", "90.0", "45.0", "2.00"]]


def test_null_co_targets_serve_null_co_on_raw_jobs_only():
    a = bench_main.parse_args([], environ={})
    ts = {t.id: t for t in bench_main.make_targets(a)}
    for tid in ("exportd-null", "qsd-null"):
        assert ts[tid].null_co
        assert ts[tid].applies(jobs.Job("raw", "randread", "4k", 16))
        assert not ts[tid].applies(jobs.Job("qcow2", "randread", "4k", 16))
    assert not ts["exportd"].null_co


# --- plan and mounts -------------------------------------------------------

def test_plan_rotates_targets_and_skips_inapplicable_ones():
    ts = [QmpDaemonTarget("exportd", "exportd", "/nonexistent"),
          QmpDaemonTarget("qsd", "qsd", "/nonexistent"), DirectTarget()]
    js = [jobs.Job("raw", "read", "1M", 1), jobs.Job("qcow2", "read", "1M", 1)]
    p = bench_main.plan(js, ts, reps=2)
    orders = [[t.id for t in tl] for _, _, tl in p]
    assert orders[0] == ["exportd", "qsd", "direct"]
    assert orders[1] == ["qsd", "exportd"]            # no direct target on qcow2
    assert orders[2] == ["qsd", "direct", "exportd"]  # next rep starts elsewhere
    assert [r for r, _, _ in p] == [0, 0, 1, 1]


def test_missing_binary_is_a_loud_skip():
    t = QmpDaemonTarget("exportd", "exportd", "/nonexistent/exportd")
    with pytest.raises(Exception) as e:
        t.prepare(None)
    assert "/nonexistent/exportd" in str(e.value)


def test_mountinfo_unescape():
    assert bench_procs._unescape("/tmp/a\\040b") == "/tmp/a b"
    assert bench_procs._unescape("/plain") == "/plain"


def test_exportd_options_from_the_command_line():
    a = bench_main.parse_args(["--exportd-opt", "num-threads=4", "--exportd-opt",
                               "io-uring=true", "--exportd-file-opt", "aio=io_uring"],
                              environ={})
    assert a.exportd_export_opts == {"num-threads": 4, "io-uring": True}
    assert a.exportd_file_opts == {"aio": "io_uring"}
    ts = {t.id: t for t in bench_main.make_targets(a)}
    assert ts["exportd"].export_opts == {"passthrough": "off", "num-threads": 4,
                                         "io-uring": True}
    assert ts["exportd-pt"].export_opts["passthrough"] == "on"
    assert ts["exportd"].file_opts == {"aio": "io_uring"}
    assert "file_opts" not in vars(ts["qsd"]) or ts["qsd"].file_opts == {}


def test_bad_key_value_is_rejected():
    with pytest.raises(SystemExit):
        bench_main.parse_args(["--exportd-opt", "num-threads"], environ={})


def test_data_path_notes_summarise_what_exports_reported():
    info = {"exportd": {
        "raw-read-1M-qd1": {"x-data-path": "userspace",
                            "x-data-path-reason": "disabled (passthrough: off)",
                            "x-num-threads": 2},
        "qcow2-read-1M-qd1": {"x-data-path": "userspace",
                              "x-data-path-reason": "disabled (passthrough: off)",
                              "x-num-threads": 2}},
        "qsd": {"raw-read-1M-qd1": {"id": "e"}}}
    assert bench_main.data_path_notes(info, {}) == [
        "exportd exports reported: userspace (disabled (passthrough: off)), 2 threads"]


def test_images_keep_reads_and_disk_writes_apart():
    from bench_targets import Images
    im = Images("/i")
    r, w = jobs.Job("raw", "randread", "4k", 16), jobs.Job("raw", "randwrite", "4k", 16)
    q = jobs.Job("qcow2", "write", "1M", 1)
    assert im.path(r) == im.path(r, disk_writer=True) == "/i/bench.raw"
    assert im.path(w) == "/i/bench-w.raw"
    assert im.path(w, disk_writer=True) == "/i/bench-wd.raw"
    assert im.path(q, disk_writer=True) == "/i/bench-w.qcow2"
    assert DirectTarget().image(w, type("C", (), {"images": im})()) == "/i/bench-wd.raw"
    assert len(set(im.all_paths())) == 5
