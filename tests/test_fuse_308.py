"""Port of QEMU iotest 308 (FUSE exports) against exportd: real daemon,
real mounts, one behaviour per test.

Every test runs three times: with `passthrough: off` (requests answered in
userspace), `auto` (the kernel serves reads itself where that is exactly
right: read-only exports of whole files) and `on` (also writable exports of
whole files: readers passed through, writers served in userspace -- except
on growable exports, whose writes the kernel serves too), since the
semantics must not depend on the data path.  Where `on` cannot apply
(qcow2) those tests use `auto`.
"""

import errno
import os
import stat
import subprocess
import time

import pytest

from fusetest import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, QMPError, add_export,
                      add_file_node, assert_identical, del_export, export_cleanup,
                      export_info, expect_errno, fallocate, mounted, random_image)

MiB = 1 << 20


@pytest.fixture(params=["off", "auto", "on"], ids=["pt-off", "pt-auto", "pt-on"])
def pt(request):
    return request.param


def pt_possible(pt):
    """`on` where passthrough cannot apply: let the export choose."""
    return "auto" if pt == "on" else pt


@pytest.fixture
def img(tmp_path):
    return random_image(tmp_path / "t.raw", 64 * MiB)


@pytest.fixture
def node(qmp, img):
    add_file_node(qmp, "node-protocol", img)
    return "node-protocol"


def test_mountpoint_missing(qmp, node, tmp_path, pt):
    missing = tmp_path / "missing.fuse"
    with pytest.raises(QMPError) as exc:
        add_export(qmp, "export-err", node, missing, passthrough=pt)
    assert exc.value.cls == "GenericError"
    assert exc.value.desc == "Failed to stat '%s': No such file or directory" % missing
    assert not mounted(missing)


def test_mountpoint_directory(qmp, node, tmp_path, pt):
    d = tmp_path / "dir.fuse"
    d.mkdir()
    with pytest.raises(QMPError) as exc:
        add_export(qmp, "export-err", node, d, passthrough=pt)
    assert exc.value.desc == "'%s' is not a regular file" % d
    assert not mounted(d)


def test_readonly_export_identical(qmp, node, img, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        assert mounted(mp)
        assert os.stat(mp).st_size == os.stat(img).st_size
        assert_identical(mp, img)
    finally:
        export_cleanup(qmp, mp)


def test_chmod(qmp, node, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        assert stat.S_IMODE(os.stat(mp).st_mode) == 0o400
        # +w on a read-only export: EROFS, mode unchanged.
        expect_errno(errno.EROFS, os.chmod, mp, 0o600)
        assert stat.S_IMODE(os.stat(mp).st_mode) == 0o400
        # +x neither (QEMU 10+, iotest 308; qsd 7.2 allowed it).
        expect_errno(errno.EROFS, os.chmod, mp, 0o500)
        assert stat.S_IMODE(os.stat(mp).st_mode) == 0o400
    finally:
        export_cleanup(qmp, mp)


def test_export_over_image_itself(qmp, node, img, mp, tmp_path, pt):
    copy = tmp_path / "copy.raw"
    with open(img, "rb") as f:
        orig = f.read()
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        add_export(qmp, "export-img", node, img, passthrough=pt)
        assert mounted(img)
        # Both exports at the same time: a concurrency test, too.
        assert_identical(mp, img)
        subprocess.run(["cp", str(img), str(copy)], check=True)
        assert copy.read_bytes() == orig
    finally:
        export_cleanup(qmp, mp, img)
    assert not mounted(img)
    assert img.read_bytes() == orig


def test_double_export_refused(qmp, node, mp, tmp_path, daemon, pt):
    link = tmp_path / "link.fuse"
    link.symlink_to(mp)
    sub = tmp_path / "sub"
    sub.mkdir()
    cwd = os.readlink("/proc/%d/cwd" % daemon.pid)
    spellings = [
        str(mp),
        str(tmp_path / "sub" / ".." / "t.fuse"),
        str(tmp_path) + "//./t.fuse",
        str(link),
        os.path.relpath(mp, cwd),
    ]
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        for sp in spellings:
            start = time.monotonic()
            with pytest.raises(QMPError) as exc:
                add_export(qmp, "export-err", node, sp, passthrough=pt)
            # qsd 7.2 deadlocks on a re-spelled mountpoint: we must answer.
            assert time.monotonic() - start < 1.0, sp
            assert exc.value.desc == "There already is a FUSE export on '%s'" % sp
        assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["export-mp"]
    finally:
        export_cleanup(qmp, mp)


def test_delete_event_and_old_size(qmp, node, img, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        assert os.stat(mp).st_size == 64 * MiB
        ev = del_export(qmp, "export-mp")
        assert ev["data"] == {"id": "export-mp"}
        assert not mounted(mp)
        assert os.stat(mp).st_size == 0
        assert qmp.cmd("query-block-exports") == []
    finally:
        export_cleanup(qmp, mp)


def test_writes_land_in_image(qmp, node, img, mp, tmp_path, pt):
    pattern = bytes([42]) * 65536
    with open(img, "rb") as f:
        want = bytearray(f.read())
    want[MiB:MiB + 65536] = pattern
    try:
        add_export(qmp, "export-mp", node, mp, writable=True, passthrough=pt)
        assert stat.S_IMODE(os.stat(mp).st_mode) == 0o600
        fd = os.open(mp, os.O_WRONLY)
        try:
            assert os.pwrite(fd, pattern, MiB) == 65536
        finally:
            os.close(fd)
        del_export(qmp, "export-mp")
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes() == bytes(want)


def test_readonly_export_refuses_writes(qmp, node, img, mp, pt):
    before = img.read_bytes()[:4096]
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        # Even root (CAP_DAC_OVERRIDE) cannot open it for writing: a
        # read-only file system (QEMU 10+; qsd 7.2 let the open succeed).
        expect_errno(errno.EROFS, os.open, mp, os.O_WRONLY)
        expect_errno(errno.EROFS, os.open, mp, os.O_RDWR)
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes()[:4096] == before


def test_growing_fixed_export_fails(qmp, node, img, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, writable=True, passthrough=pt)
        size = os.stat(mp).st_size
        r = subprocess.run(["dd", "if=/dev/zero", "of=%s" % mp, "bs=1", "count=65536",
                            "seek=%d" % size, "conv=notrunc"],
                           capture_output=True, text=True)
        assert r.returncode != 0
        assert "error writing" in r.stderr
        assert os.stat(mp).st_size == size
        assert os.stat(img).st_size == size
    finally:
        export_cleanup(qmp, mp)


def test_fallocate_at_eof_grows(qmp, node, img, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, writable=True, passthrough=pt)
        size = os.stat(mp).st_size
        blocks = os.stat(img).st_blocks
        subprocess.run(["fallocate", "-o", str(size), "-l", "65536", str(mp)], check=True)
        assert os.stat(mp).st_size == size + 65536
        assert os.stat(img).st_size == size + 65536
        assert os.stat(img).st_blocks > blocks
        # mode 0 before EOF is not something an export can do.
        fd = os.open(mp, os.O_RDWR)
        try:
            expect_errno(errno.EOPNOTSUPP, fallocate, fd, 0, 0, 4096)
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)


def test_growable_export_grows_and_shrinks(qmp, node, img, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, writable=True, growable=True, passthrough=pt)
        size = os.stat(mp).st_size
        subprocess.run(["dd", "if=/dev/zero", "of=%s" % mp, "bs=1", "count=65536",
                        "seek=%d" % size, "conv=notrunc", "status=none"], check=True)
        assert os.stat(mp).st_size == size + 65536
        assert os.stat(img).st_size == size + 65536
        subprocess.run(["truncate", "-s", str(size), str(mp)], check=True)
        assert os.stat(mp).st_size == size
        assert os.stat(img).st_size == size
    finally:
        export_cleanup(qmp, mp)


def test_punch_hole_reads_zeroes(qmp, node, img, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, writable=True, passthrough=pt)
        fd = os.open(mp, os.O_RDWR)
        try:
            # Unaligned on purpose: partial blocks must read back zeroes too.
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 3 * MiB)
            assert os.pread(fd, 3 * MiB, 1000) == bytes(3 * MiB)
            assert os.fstat(fd).st_size == 64 * MiB
        finally:
            os.close(fd)
        del_export(qmp, "export-mp")
    finally:
        export_cleanup(qmp, mp)
    with open(img, "rb") as f:
        f.seek(1000)
        assert f.read(3 * MiB) == bytes(3 * MiB)


def seek(fd, off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return errno.errorcode[e.errno]


def test_seek_data_hole(qmp, tmp_path, mp, pt):
    sparse = tmp_path / "sparse.raw"
    with open(sparse, "wb") as f:
        f.truncate(16 * MiB)
        f.seek(MiB)
        f.write(b"d" * MiB)
        f.seek(8 * MiB)
        f.write(b"e" * 65536)
    add_file_node(qmp, "sparse", sparse)
    try:
        add_export(qmp, "export-mp", "sparse", mp, passthrough=pt)
        fd = os.open(mp, os.O_RDONLY)
        ref = os.open(sparse, os.O_RDONLY)
        try:
            for off in [0, 4096, MiB, MiB + 100, 2 * MiB, 8 * MiB, 8 * MiB + 65535,
                        15 * MiB]:
                for whence in (os.SEEK_DATA, os.SEEK_HOLE):
                    assert seek(fd, off, whence) == seek(ref, off, whence), (off, whence)
            # At EOF: a hole, no data; past EOF: ENXIO for both.
            assert os.lseek(fd, 16 * MiB, os.SEEK_HOLE) == 16 * MiB
            expect_errno(errno.ENXIO, os.lseek, fd, 16 * MiB, os.SEEK_DATA)
            expect_errno(errno.ENXIO, os.lseek, fd, 16 * MiB + 1, os.SEEK_HOLE)
        finally:
            os.close(fd)
            os.close(ref)
    finally:
        export_cleanup(qmp, mp)


def test_parallel_reads(qmp, node, img, mp, pt):
    import random
    import threading

    data = img.read_bytes()
    errors = []

    def reader(seed):
        rnd = random.Random(seed)
        fd = os.open(mp, os.O_RDONLY)
        try:
            for _ in range(2000):
                off = rnd.randrange(0, len(data) - 4096) & ~511
                n = rnd.choice([512, 4096, 65536])
                got = os.pread(fd, n, off)
                if got != data[off:off + n]:
                    errors.append((seed, off, n))
                    return
        except OSError as e:
            errors.append((seed, e))
        finally:
            os.close(fd)

    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        export_cleanup(qmp, mp)


def test_quit_unmounts(daemon, qmp, node, mp, pt):
    try:
        add_export(qmp, "export-mp", node, mp, passthrough=pt)
        assert mounted(mp)
        qmp.cmd("quit")
        ev = qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10)
        assert ev["data"]["id"] == "export-mp"
        assert daemon.wait(timeout=20) == 0
        assert not mounted(mp)
    finally:
        if mounted(mp):
            subprocess.run(["umount", "-l", str(mp)], check=False)
            pytest.fail("quit left %s mounted" % mp)


def test_qcow2_export(qmp, tmp_path, mp, pt):
    """308 runs with a format node too: a qcow2 image appears raw, compares
    identical, takes writes, and stays consistent."""
    src = random_image(tmp_path / "src.raw", 16 * MiB)
    img = tmp_path / "t.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(src), str(img)], check=True)
    add_file_node(qmp, "node-protocol", img)
    try:
        qmp.cmd("blockdev-add", driver="qcow2", file="node-protocol",
                **{"node-name": "node-format"})
    except QMPError as e:
        pytest.skip("this build has no qcow2 driver (%s)" % e.desc)
    pattern = bytes([42]) * 65536
    try:
        add_export(qmp, "export-mp", "node-format", mp, writable=True,
                   passthrough=pt_possible(pt))
        info = export_info(qmp, "export-mp")
        assert info["x-data-path"] == "userspace"
        assert os.stat(mp).st_size == 16 * MiB
        r = subprocess.run(["qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2", str(mp),
                            str(img)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        fd = os.open(mp, os.O_WRONLY)
        try:
            assert os.pwrite(fd, pattern, MiB) == 65536
        finally:
            os.close(fd)
        del_export(qmp, "export-mp")
    finally:
        export_cleanup(qmp, mp)
    qmp.cmd("blockdev-del", **{"node-name": "node-format"})
    qmp.cmd("blockdev-del", **{"node-name": "node-protocol"})
    r = subprocess.run(["qemu-img", "check", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(img), str(out)], check=True)
    want = bytearray(src.read_bytes())
    want[MiB:MiB + 65536] = pattern
    assert out.read_bytes() == bytes(want)
