"""Per-export I/O statistics: x-query-export-stats, query-blockstats (QEMU's
shape) and exportctl stats / list --stats, checked against a known number of
O_DIRECT reads and writes of known sizes through a real FUSE export (O_DIRECT
so that the page cache neither hides nor merges requests)."""

import errno
import json
import mmap
import os
import subprocess
import threading

import pytest

from fusetest import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE,
                      QMPError, add_export, add_file_node, del_export, export_cleanup,
                      expect_errno, export_info, fallocate, random_image)
from harness import QSD, QSD_MISSING, QMPClient, build_path, qsd_monitor

MiB = 1 << 20
OPS = ["read", "write", "flush", "discard", "zero", "other"]


@pytest.fixture
def img(tmp_path):
    return random_image(tmp_path / "s.raw", 4 * MiB)


@pytest.fixture
def mp(tmp_path):
    p = tmp_path / "s.fuse"
    p.touch()
    return p


@pytest.fixture
def export(qmp, img, mp):
    """A writable export served in userspace (every request reaches us)."""
    add_file_node(qmp, "f", img)
    add_export(qmp, "e", "f", mp, writable=True, passthrough="off", num_threads=2)
    try:
        yield "e"
    finally:
        export_cleanup(qmp, mp)


def stats(qmp, exp_id="e"):
    [st] = qmp.cmd("x-query-export-stats", id=exp_id)
    return st


def aligned(size):
    buf = mmap.mmap(-1, size)
    buf.write(os.urandom(size))
    return buf


def direct_io(mp, reads=(), writes=()):
    """O_DIRECT preadv/pwritev of (offset, size) pairs; returns nothing."""
    fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
    try:
        for off, size in reads:
            buf = aligned(size)
            assert os.preadv(fd, [buf], off) == size
            buf.close()
        for off, size in writes:
            buf = aligned(size)
            assert os.pwritev(fd, [buf], off) == size
            buf.close()
    finally:
        os.close(fd)


def exportctl(daemon, *args):
    return subprocess.run([build_path("exportctl"), "--socket", daemon.socket_path, *args],
                          capture_output=True, text=True, timeout=30)


def test_counts_match_known_reads_and_writes(qmp, export, mp):
    reads = [(i * 65536, 65536) for i in range(10)] + [(3 * MiB, 4096)] * 3
    writes = [(MiB + i * 8192, 4096) for i in range(5)] + [(2 * MiB, 131072)]
    direct_io(mp, reads, writes)
    st = stats(qmp)
    rd, wr = st["ops"]["read"], st["ops"]["write"]
    assert rd["requests"] == 13
    assert rd["bytes"] == 10 * 65536 + 3 * 4096
    assert rd["errors"] == 0
    assert wr["requests"] == 6
    assert wr["bytes"] == 5 * 4096 + 131072
    assert wr["errors"] == 0
    assert st["wr-highest-offset"] == 2 * MiB + 131072
    assert st["ops"]["other"]["requests"] >= 1       # OPEN, RELEASE, ...
    assert st["uncounted"] == []
    assert st["slots"] == 2
    assert st["age-ns"] > 0 and st["idle-time-ns"] >= 0
    for op in (rd, wr):
        assert sum(n for _, n in op["latency-us"]) == op["requests"]
        bounds = [b for b, _ in op["latency-us"] if b is not None]
        assert bounds == sorted(bounds) and all(b & (b - 1) == 0 for b in bounds)
        assert 0 < op["avg-latency-ns"] <= op["max-latency-ns"]
        assert op["total-latency-ns"] >= op["max-latency-ns"]
        assert op["p50-latency-ns"] <= op["p90-latency-ns"] <= op["p99-latency-ns"] \
            <= op["max-latency-ns"]
        # The slowest request lies in the last non-empty bucket.
        top = op["latency-us"][-1][0]
        assert top is None or op["max-latency-ns"] < top * 1000
    # query-block-exports carries the same numbers.
    assert export_info(qmp, "e")["x-stats"]["read"]["requests"] == 13


def test_requests_on_many_threads_add_up(qmp, export, mp):
    """Several readers at once, two request threads: nothing lost in the sums."""
    errors = []

    def reader(k):
        try:
            direct_io(mp, reads=[((k * 64 + i) * 4096, 4096) for i in range(50)])
        except Exception as e:      # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rd = stats(qmp)["ops"]["read"]
    assert rd["requests"] == 200
    assert rd["bytes"] == 200 * 4096


def test_errors_are_counted(qmp, export, mp):
    fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
    buf = aligned(4096)
    try:
        # A write at the end of a fixed-size export fails (EIO, as qsd).
        for _ in range(2):
            with pytest.raises(OSError):
                os.pwritev(fd, [buf], 4 * MiB)
        assert os.pwritev(fd, [buf], 0) == 4096
    finally:
        os.close(fd)
        buf.close()
    wr = stats(qmp)["ops"]["write"]
    assert wr["requests"] == 3
    assert wr["errors"] == 2
    assert wr["bytes"] == 4096      # failed requests moved no data
    [bs] = qmp.cmd("query-blockstats")
    assert bs["stats"]["failed_wr_operations"] == 2
    assert bs["stats"]["wr_operations"] == 3


def test_failed_write_is_counted_as_an_error(qmp, img, mp):
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, writable=True, passthrough="off")
        fd = os.open(mp, os.O_WRONLY | os.O_DIRECT)
        try:
            # Past the end of a fixed-size export: ENOSPC, from the daemon.
            expect_errno(errno.ENOSPC, os.pwrite, fd, mmap.mmap(-1, 4096),
                         os.fstat(fd).st_size)
        finally:
            os.close(fd)
        st = stats(qmp)["ops"]
        assert st["write"]["errors"] == 1 and st["write"]["requests"] == 1
        assert st["write"]["bytes"] == 0
    finally:
        export_cleanup(qmp, mp)


def test_flush_discard_and_zero(qmp, export, mp):
    fd = os.open(mp, os.O_RDWR)
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 131072)
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 8192)
        os.fsync(fd)
    finally:
        os.close(fd)
    ops = stats(qmp)["ops"]
    assert ops["discard"]["requests"] == 1 and ops["discard"]["bytes"] == 131072
    assert ops["zero"]["requests"] == 1 and ops["zero"]["bytes"] == 8192
    assert ops["flush"]["requests"] >= 1
    [bs] = qmp.cmd("query-blockstats")
    s = bs["stats"]
    assert s["unmap_operations"] == 1 and s["unmap_bytes"] == 131072
    # Write-zeroes is a write in QEMU's accounting.
    assert s["wr_operations"] == 1 and s["wr_bytes"] == 8192
    assert s["flush_operations"] == ops["flush"]["requests"]


def qsd_blockstats_members(directory):
    """BlockStats and BlockDeviceStats members of the installed qsd 7.2."""
    with qsd_monitor(directory) as sock, QMPClient(sock) as c:
        return members_of(c.cmd("query-qmp-schema"), "query-blockstats")


def members_of(schema, command):
    """({BlockStats member: optional}, {BlockDeviceStats member: optional})."""
    by = {e["name"]: e for e in schema}
    ret = by[by[command]["ret-type"]]
    bstats = by[ret["element-type"]]
    outer = {m["name"]: "default" in m for m in bstats["members"]}
    inner_t = by[[m for m in bstats["members"] if m["name"] == "stats"][0]["type"]]
    inner = {m["name"]: "default" in m for m in inner_t["members"]}
    return outer, inner


def test_query_blockstats_has_qemus_shape(qmp, export, mp, tmp_path):
    direct_io(mp, reads=[(0, 4096)], writes=[(8192, 4096)])
    [bs] = qmp.cmd("query-blockstats")
    assert bs["qdev"] == "e" and bs["node-name"] == "f" and bs["device"] == ""
    s = bs["stats"]
    assert s["rd_operations"] == 1 and s["rd_bytes"] == 4096
    assert s["wr_operations"] == 1 and s["wr_bytes"] == 4096
    assert s["wr_highest_offset"] == 12288
    assert s["rd_total_time_ns"] > 0
    assert s["timed_stats"] == []
    h = s["rd_latency_histogram"]
    assert len(h["bins"]) == len(h["boundaries"]) + 1 and sum(h["bins"]) == 1
    # Our introspection and our replies agree with each other...
    outer, inner = members_of(qmp.cmd("query-qmp-schema"), "query-blockstats")
    assert {k for k, opt in inner.items() if not opt} <= set(s) <= set(inner)
    assert set(bs) <= set(outer)
    # ...and with qemu-storage-daemon 7.2's schema, member for member.
    if QSD is None:
        pytest.skip(QSD_MISSING)
    ref_outer, ref_inner = qsd_blockstats_members(tmp_path)
    assert {k for k, opt in ref_inner.items() if not opt} <= set(s)
    assert set(s) <= set(ref_inner)
    assert set(bs) <= set(ref_outer)


def test_query_blockstats_per_node(qmp, export, mp, tmp_path):
    direct_io(mp, reads=[(0, 4096)] * 3)
    other = random_image(tmp_path / "o.raw", MiB)
    add_file_node(qmp, "unused", other)
    by_node = {e["node-name"]: e["stats"] for e in
               qmp.cmd("query-blockstats", **{"query-nodes": True})}
    assert set(by_node) == {"f", "unused"}
    assert by_node["f"]["rd_operations"] == 3
    assert by_node["unused"]["rd_operations"] == 0
    assert "idle_time_ns" not in by_node["unused"]


def test_unknown_export(qmp):
    with pytest.raises(QMPError) as exc:
        qmp.cmd("x-query-export-stats", id="nope")
    assert "Export 'nope' is not found" in exc.value.desc
    assert qmp.cmd("x-query-export-stats") == []
    assert qmp.cmd("query-blockstats") == []


def test_a_new_export_starts_from_zero(qmp, export, mp):
    direct_io(mp, reads=[(0, 4096)])
    assert stats(qmp)["ops"]["read"]["requests"] == 1
    del_export(qmp, "e")
    add_export(qmp, "e", "f", mp, writable=True, passthrough="off")
    st = stats(qmp)
    assert st["ops"]["read"]["requests"] == 0
    assert "idle-time-ns" not in st or st["ops"]["other"]["requests"] > 0


def test_passthrough_reads_are_reported_uncounted(qmp, img, mp, daemon):
    add_file_node(qmp, "f", img, read_only=True)
    try:
        add_export(qmp, "e", "f", mp)
        info = export_info(qmp, "e")
        if info["x-data-path"] != "passthrough":
            pytest.skip("the export is not passed through (%s), so the kernel serves no "
                        "read itself" % info["x-data-path-reason"])
        assert mp.read_bytes() == img.read_bytes()
        st = stats(qmp)
        assert st["uncounted"] == ["read"]
        # The kernel served them: we do not pretend to have seen them.
        assert st["ops"]["read"]["requests"] == 0
        r = exportctl(daemon, "stats", "e")
        assert r.returncode == 0, r.stderr
        assert "not counting the requests that the kernel serves itself" in r.stdout
        assert [ln for ln in r.stdout.splitlines() if ln.startswith("read ")][0].split()[1] \
            == "0*"
        r = exportctl(daemon, "list", "--stats")
        assert "0*" in r.stdout and "FUSE passthrough" in r.stdout
    finally:
        export_cleanup(qmp, mp)


def test_exportctl_stats_table_and_json(qmp, export, mp, daemon):
    direct_io(mp, reads=[(0, 65536)] * 4, writes=[(0, 4096)] * 2)
    r = exportctl(daemon, "stats", "e")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("export e: node f, 2 request threads")
    assert lines[1].split() == ["OP", "REQUESTS", "BYTES", "ERRORS", "AVG", "P50", "P90",
                                "P99", "MAX"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:]}
    assert list(rows) == OPS
    assert rows["read"][1:4] == ["4", "256", "KiB"]
    assert rows["write"][1:4] == ["2", "8", "KiB"]
    assert rows["zero"][1:] == ["0", "0", "B", "0", "-", "-", "-", "-", "-"]
    for cell in rows["read"][5:]:
        assert cell.endswith(("ns", "us", "ms", "s")), cell
    # -q: only the table.
    r = exportctl(daemon, "-q", "stats", "e")
    assert r.stdout.splitlines()[0].split()[0] == "OP"
    # --json: the daemon's reply.
    r = exportctl(daemon, "--json", "stats", "e")
    assert r.returncode == 0, r.stderr
    [j] = json.loads(r.stdout)
    assert j["id"] == "e" and j["ops"]["read"]["requests"] == 4
    assert set(j["ops"]) == set(OPS)
    assert "latency-us" in j["ops"]["read"]
    r = exportctl(daemon, "stats", "nope")
    assert r.returncode == 1
    assert r.stderr == "exportctl: Export 'nope' is not found\n"


def test_exportctl_list_stats_adds_columns(qmp, export, mp, daemon):
    direct_io(mp, reads=[(0, 4096)] * 3, writes=[(0, 65536)])
    plain = exportctl(daemon, "list").stdout.splitlines()
    assert "RD-OPS" not in plain[0]
    r = exportctl(daemon, "list", "--stats")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    head, row = r.stdout.splitlines()[:2]
    assert head.split()[-4:] == ["RD-OPS", "RD-BYTES", "WR-OPS", "WR-BYTES"]
    assert row.split()[-6:] == ["3", "12", "KiB", "1", "64", "KiB"]
    r = exportctl(daemon, "-v", "list")
    assert "RD-OPS" not in r.stdout and "x-query-export-stats" not in r.stderr
    assert '"execute":"query-block-exports"' in r.stderr
    r = exportctl(daemon, "list", "--stats", "--verbose")
    assert "RD-OPS" in r.stdout and '"execute":"x-query-export-stats"' in r.stderr


def test_completion_of_stats_ids(qmp, export, daemon):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "scripts", "exportctl.bash-completion")
    prog = ('source "$1"; COMP_WORDS=(exportctl stats ""); COMP_CWORD=2; _exportctl; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    env = dict(os.environ, EXPORTD_SOCKET=daemon.socket_path,
               PATH=os.path.dirname(build_path("exportctl")) + ":" + os.environ["PATH"])
    r = subprocess.run(["bash", "-c", prog, "c", script], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.stdout.split() == ["e"]
