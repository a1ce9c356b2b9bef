"""FUSE over io_uring ('io-uring': true, Linux 6.14+): the key behaviours of
the FUSE export when its requests come over io_uring instead of /dev/fuse
reads, and the errors when the kernel cannot do it.

The fuse module's enable_uring parameter is off by default; the `uring`
fixture switches it on for one test and always puts the old value back.
The parameter is machine-wide, so the fixture holds a lock on it for the
whole test: two suites on one host (a second checkout, a helper's run) must
not switch it under each other's mounts."""

import errno
import fcntl
import mmap
import os
import subprocess

import pytest

from fusetest import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, QMPError, add_export,
                      add_file_node, assert_identical, del_export, export_cleanup,
                      export_info, expect_errno, fallocate, mounted, need, random_image,
                      sigterm_with_a_writer_open, wait_deleted, wait_io_started)

MiB = 1 << 20
PARAM = "/sys/module/fuse/parameters/enable_uring"
# Outside every run's TMPDIR on purpose: all suites on the host share it.
PARAM_LOCK = "/run/lock/exportd-tests-fuse-enable_uring.lock"


def _set_param(value):
    with open(PARAM, "w") as f:
        f.write(value)


def _param_fixture(value):
    if not os.path.exists(PARAM):
        pytest.skip("this kernel has no %s (FUSE over io_uring needs Linux 6.14+ with "
                    "CONFIG_FUSE_IO_URING), so the io_uring path cannot be tested" % PARAM)
    lock = os.open(PARAM_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(PARAM) as f:
            old = f.read().strip()
        try:
            _set_param(value)
        except OSError as e:
            pytest.skip("cannot write %s (%s), so the io_uring path cannot be tested"
                        % (PARAM, e))
        try:
            yield
        finally:
            _set_param(old)
    finally:
        os.close(lock)


@pytest.fixture
def uring():
    yield from _param_fixture("Y")


@pytest.fixture
def uring_off():
    yield from _param_fixture("N")


@pytest.fixture
def img(tmp_path):
    return random_image(tmp_path / "t.raw", 8 * MiB)


@pytest.fixture
def exp(qmp, uring, img, mp):
    """A writable io_uring export of img on mp, removed at the end."""
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, writable=True, io_uring=True)
        yield export_info(qmp, "e")
    finally:
        export_cleanup(qmp, mp)


def _odirect_buf(size):
    return mmap.mmap(-1, size)


def _ring_requests(qmp):
    """Reads served so far (the counters include the ring queues)."""
    return export_info(qmp, "e")["x-stats"]["read"]["requests"]


def _possible_cpus():
    n = 0
    with open("/sys/devices/system/cpu/possible") as f:
        for part in f.read().strip().split(","):
            a, _, b = part.partition("-")
            n += int(b or a) - int(a) + 1
    return n


def _io_uring_fds(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[io_uring]":
                n += 1
        except OSError:
            pass
    return n


def test_query_says_io_uring(daemon, exp):
    assert exp["x-data-path"] == "io_uring", exp
    assert "io_uring" in exp["x-data-path-reason"]
    # One ring per CPU queue, as the kernel requires before it uses them.
    assert _io_uring_fds(daemon.pid) >= _possible_cpus()


def test_read_matches_image(qmp, exp, img, mp):
    before = _ring_requests(qmp)
    assert_identical(mp, img)
    # O_DIRECT: every read is a FUSE request, served through a ring.
    fd = os.open(mp, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = _odirect_buf(MiB)
        assert os.preadv(fd, [buf], 3 * MiB) == MiB
        assert bytes(buf) == img.read_bytes()[3 * MiB:4 * MiB]
    finally:
        os.close(fd)
    assert _ring_requests(qmp) > before


def test_writes_land_in_image(exp, img, mp):
    data = os.urandom(256 * 1024)
    fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
    try:
        buf = _odirect_buf(len(data))
        buf[:] = data
        assert os.pwritev(fd, [buf], 5 * MiB + 4096) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(img, "rb") as f:
        f.seek(5 * MiB + 4096)
        assert f.read(len(data)) == data


def test_short_read_at_eof(exp, mp):
    fd = os.open(mp, os.O_RDONLY)
    try:
        assert len(os.pread(fd, 65536, 8 * MiB - 1000)) == 1000
        assert os.pread(fd, 4096, 8 * MiB) == b""
    finally:
        os.close(fd)


def test_write_past_eof_fails(exp, mp):
    fd = os.open(mp, os.O_WRONLY)
    try:
        expect_errno(errno.ENOSPC, os.pwrite, fd, b"x" * 4096, 8 * MiB)   # as QEMU 10+
    finally:
        os.close(fd)
    assert os.path.getsize(mp) == 8 * MiB


def test_punch_hole_reads_zeroes(exp, img, mp):
    fd = os.open(mp, os.O_RDWR)
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MiB, 2 * MiB)
        assert os.pread(fd, 2 * MiB, MiB) == bytes(2 * MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(img, "rb") as f:
        f.seek(MiB)
        assert f.read(2 * MiB) == bytes(2 * MiB)


def test_seek_data_hole(qmp, uring, tmp_path, mp):
    sparse = tmp_path / "sparse.raw"
    with open(sparse, "wb") as f:
        f.truncate(8 * MiB)
        f.seek(4 * MiB)
        f.write(b"d" * MiB)
    add_file_node(qmp, "s", sparse)
    try:
        add_export(qmp, "e", "s", mp, io_uring=True)
        assert export_info(qmp, "e")["x-data-path"] == "io_uring"
        fd = os.open(mp, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_DATA) == 4 * MiB
            assert os.lseek(fd, 4 * MiB, os.SEEK_HOLE) == 5 * MiB
            expect_errno(6, os.lseek, fd, 8 * MiB, os.SEEK_DATA)   # ENXIO
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)


def test_fsync_reaches_server(qmp, exp, mp):
    before = export_info(qmp, "e")["x-stats"]["flush"]["requests"]
    fd = os.open(mp, os.O_RDWR)
    try:
        os.pwrite(fd, b"abc", 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert export_info(qmp, "e")["x-stats"]["flush"]["requests"] > before


def _fio(mp, *extra, runtime=None):
    cmd = ["fio", "--name=u", "--filename=%s" % mp, "--ioengine=libaio", "--direct=1",
           "--iodepth=16", "--bs=4k", "--size=8M", "--output-format=terse"] + list(extra)
    if runtime:
        cmd += ["--time_based", "--runtime=%d" % runtime]
    return cmd


def test_fio_verify_qd16(exp, img, mp):
    need("fio")
    r = subprocess.run(_fio(mp, "--rw=randwrite", "--verify=crc32c", "--do_verify=1",
                            "--verify_fatal=1", "--verify_state_save=0",
                            "--bssplit=4k/50:64k/30:1m/20"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_identical(mp, img)


def test_delete_while_fio_runs(qmp, exp, mp):
    need("fio")
    proc = subprocess.Popen(_fio(mp, "--rw=randrw", runtime=20), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_io_started(qmp, "e", proc)
        qmp.cmd("block-export-del", id="e", mode="hard")
        wait_deleted(qmp, "e", timeout=10)
        assert not mounted(mp)
        # fio sees errors and ends; nothing hangs.
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_safe_delete_refused_while_open(qmp, exp, mp):
    fd = os.open(mp, os.O_RDONLY)
    try:
        with pytest.raises(QMPError) as exc:
            qmp.cmd("block-export-del", id="e", mode="safe")
        assert "in use" in exc.value.desc
    finally:
        os.close(fd)
    del_export(qmp, "e", mode="safe")
    assert not mounted(mp)


def test_sigterm_with_a_writer_open(daemon, qmp, uring, img, mp):
    # The kernel tears a ring down in a worker after the daemon has exited:
    # requests made until it is done are aborted (ECONNABORTED, or ECANCELED
    # when the ring's cancellation reaches them first) rather than refused.
    sigterm_with_a_writer_open(daemon, qmp, img, mp, io_uring=True,
                               errnos=(errno.ENOTCONN, errno.ECONNABORTED, errno.ECANCELED))


def test_error_when_kernel_disables_it(qmp, uring_off, img, mp):
    add_file_node(qmp, "f", img)
    try:
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e", "f", mp, io_uring=True)
        assert exc.value.desc == ("FUSE over io_uring is disabled in the kernel "
                                  "(echo Y > /sys/module/fuse/parameters/enable_uring)")
        assert not mounted(mp)
        assert qmp.cmd("query-block-exports") == []
    finally:
        export_cleanup(qmp, mp)


def test_passthrough_on_refused(qmp, uring, img, mp):
    add_file_node(qmp, "f", img)
    try:
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e", "f", mp, io_uring=True, passthrough="on")
        assert "do not combine" in exc.value.desc
        assert not mounted(mp)
    finally:
        export_cleanup(qmp, mp)


def test_threaded_path_unchanged(qmp, uring, img, mp):
    """Without 'io-uring', enable_uring=Y changes nothing: request threads."""
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, passthrough="off")
        assert export_info(qmp, "e")["x-data-path"] == "userspace"
        assert_identical(mp, img)
    finally:
        export_cleanup(qmp, mp)


def test_external_umount_deletes_export(qmp, exp, mp):
    """The kernel aborts the rings' entries; the export goes away cleanly."""
    subprocess.run(["umount", str(mp)], check=True, timeout=10)
    wait_deleted(qmp, "e")
    assert qmp.cmd("query-block-exports") == []


def test_rings_run_on_the_loops(daemon, qmp, uring, img, tmp_path):
    """A ring signals an eventfd on one of the I/O loops: io_uring exports
    start no thread (before: one per queue and export), and still serve."""
    add_file_node(qmp, "f", img)
    before = len(os.listdir(f"/proc/{daemon.proc.pid}/task"))
    mps = [tmp_path / f"u{i}.fuse" for i in range(3)]
    try:
        for i, mp in enumerate(mps):
            mp.touch()
            add_export(qmp, f"u{i}", "f", mp, io_uring=True)
            assert export_info(qmp, f"u{i}")["x-data-path"] == "io_uring"
        assert len(os.listdir(f"/proc/{daemon.proc.pid}/task")) == before
        for mp in mps:
            assert_identical(mp, img)
    finally:
        export_cleanup(qmp, *mps)
