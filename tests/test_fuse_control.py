"""FUSE exports on the control plane: argument errors, query-block-exports,
safe and hard removal, and shutdown (SIGTERM, quit) leaving no mount."""

import os
import signal
import time

import pytest

from fusetest import (QMPError, add_export, add_file_node, del_export, export_cleanup,
                      export_info, mounted, random_image, sigterm_with_a_writer_open,
                      wait_deleted)

MiB = 1 << 20


@pytest.fixture
def img(tmp_path):
    return random_image(tmp_path / "t.raw", 4 * MiB)


@pytest.fixture
def node(qmp, img):
    add_file_node(qmp, "f", img)
    return "f"


def test_unknown_node(qmp, mp):
    with pytest.raises(QMPError) as exc:
        add_export(qmp, "e", "nosuch", mp)
    assert exc.value.desc == "Cannot find device='' nor node-name='nosuch'"
    assert not mounted(mp)


def test_duplicate_id(qmp, node, mp, tmp_path):
    mp2 = tmp_path / "t2.fuse"
    mp2.touch()
    try:
        add_export(qmp, "e", node, mp)
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e", node, mp2)
        assert exc.value.desc == "Block export id 'e' is already in use"
        assert not mounted(mp2)
    finally:
        export_cleanup(qmp, mp, mp2)


@pytest.mark.parametrize("n", [0, -1, 65])
def test_num_threads_range(qmp, node, mp, n):
    with pytest.raises(QMPError) as exc:
        add_export(qmp, "e", node, mp, num_threads=n)
    assert "'num-threads' must be between 1 and 64" in exc.value.desc
    assert not mounted(mp)


def test_writable_export_of_read_only_node(qmp, img, mp):
    add_file_node(qmp, "ro", img, read_only=True)
    with pytest.raises(QMPError):
        add_export(qmp, "e", "ro", mp, writable=True)
    assert not mounted(mp)
    assert qmp.cmd("query-block-exports") == []


def test_query(qmp, node, mp):
    try:
        add_export(qmp, "e", node, mp, writable=True, num_threads=3, passthrough="off")
        info = export_info(qmp, "e")
        assert info["type"] == "fuse"
        assert info["node-name"] == node
        assert info["shutting-down"] is False
        assert info["x-mountpoint"] == str(mp)
        assert info["x-writable"] is True
        assert info["x-growable"] is False
        assert info["x-num-threads"] == 3
        assert info["x-allow-other"] is True   # auto, as root
        assert info["x-data-path"] == "userspace"
        assert "passthrough: off" in info["x-data-path-reason"]
        assert info["x-open-handles"] == 0
        with open(mp, "rb"):
            assert export_info(qmp, "e")["x-open-handles"] == 1
    finally:
        export_cleanup(qmp, mp)


def test_default_threads(qmp, node, mp):
    try:
        add_export(qmp, "e", node, mp)
        assert export_info(qmp, "e")["x-num-threads"] == min(os.cpu_count(), 8)
    finally:
        export_cleanup(qmp, mp)


def test_canonical_mountpoint(qmp, node, mp, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(mp)
    try:
        add_export(qmp, "e", node, str(tmp_path / "." / "link"))
        assert export_info(qmp, "e")["x-mountpoint"] == str(mp)
        assert mounted(mp)
    finally:
        export_cleanup(qmp, mp)


def test_del_unknown(qmp):
    with pytest.raises(QMPError) as exc:
        qmp.cmd("block-export-del", id="nosuch")
    assert exc.value.desc == "Export 'nosuch' is not found"


def test_safe_del_refused_while_open(qmp, node, mp):
    try:
        add_export(qmp, "e", node, mp)
        f = open(mp, "rb")
        try:
            with pytest.raises(QMPError) as exc:
                qmp.cmd("block-export-del", id="e")
            assert "export 'e' still in use" in exc.value.desc
            assert "mode=hard" in exc.value.desc
            assert mounted(mp)
        finally:
            f.close()
        # RELEASE follows close() asynchronously; safe mode waits for it.
        del_export(qmp, "e")
        assert not mounted(mp)
    finally:
        export_cleanup(qmp, mp)


def test_hard_del_while_open(qmp, node, mp):
    # (With passthrough the kernel keeps serving an open handle from the
    # image itself, which nothing can revoke: test the userspace path.)
    try:
        add_export(qmp, "e", node, mp, passthrough="off")
        fd = os.open(mp, os.O_RDONLY)
        try:
            assert len(os.pread(fd, 4096, 0)) == 4096
            del_export(qmp, "e", mode="hard")
            assert not mounted(mp)
            # The client gets errors, never a hang.
            with pytest.raises(OSError):
                os.pread(fd, 4096, MiB)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass    # FLUSH on a dead connection: ENOTCONN
    finally:
        export_cleanup(qmp, mp)


def test_del_twice(qmp, node, mp):
    try:
        add_export(qmp, "e", node, mp)
        qmp.cmd("block-export-del", id="e")
        # Either already gone, or shutting down: never a second deletion.
        try:
            qmp.cmd("block-export-del", id="e")
        except QMPError as e:
            assert e.desc in ("Export 'e' is not found",
                              "Export 'e' is already shutting down")
        wait_deleted(qmp, "e")
        assert qmp.cmd("query-block-exports") == []
    finally:
        export_cleanup(qmp, mp)


def test_readd_same_mountpoint(qmp, node, mp):
    try:
        for _ in range(3):
            add_export(qmp, "e", node, mp)
            assert mounted(mp)
            del_export(qmp, "e")
            assert not mounted(mp)
    finally:
        export_cleanup(qmp, mp)


def test_node_in_use_by_export(qmp, node, mp):
    try:
        add_export(qmp, "e", node, mp)
        with pytest.raises(QMPError) as exc:
            qmp.cmd("blockdev-del", **{"node-name": node})
        assert "export 'e'" in exc.value.desc, exc.value.desc
        del_export(qmp, "e")
        qmp.cmd("blockdev-del", **{"node-name": node})
    finally:
        export_cleanup(qmp, mp)


def test_sigterm_unmounts_everything(daemon, qmp, node, tmp_path):
    mps = []
    for i in range(3):
        p = tmp_path / ("m%d" % i)
        p.touch()
        mps.append(p)
        add_export(qmp, "e%d" % i, node, p)
    assert all(mounted(p) for p in mps)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    assert not any(mounted(p) for p in mps)


def test_sigterm_with_a_writer_open(daemon, qmp, img, mp):
    sigterm_with_a_writer_open(daemon, qmp, img, mp, passthrough="off")


def test_external_umount_deletes_export(qmp, node, mp):
    import subprocess
    try:
        add_export(qmp, "e", node, mp)
        subprocess.run(["umount", str(mp)], check=True)
        # The export notices and goes away cleanly, with its event.
        wait_deleted(qmp, "e")
        assert qmp.cmd("query-block-exports") == []
    finally:
        export_cleanup(qmp, mp)


def test_many_exports_one_node(qmp, node, img, tmp_path):
    mps = []
    try:
        for i in range(8):
            p = tmp_path / ("m%d" % i)
            p.touch()
            mps.append(p)
            add_export(qmp, "e%d" % i, node, p, num_threads=1)
        data = img.read_bytes()
        for p in mps:
            assert p.read_bytes() == data
        start = time.monotonic()
        for i in range(8):
            qmp.cmd("block-export-del", id="e%d" % i)
        for i in range(8):
            wait_deleted(qmp, "e%d" % i)
        assert time.monotonic() - start < 10
        assert not any(mounted(p) for p in mps)
    finally:
        export_cleanup(qmp, *mps)


def test_writethrough(qmp, node, img, mp):
    data = os.urandom(8192)
    try:
        add_export(qmp, "e", node, mp, writable=True, writethrough=True)
        fd = os.open(mp, os.O_WRONLY)
        try:
            assert os.pwrite(fd, data, 4096) == 8192
        finally:
            os.close(fd)
        # Flushed after the write: visible in the image right away.
        with open(img, "rb") as f:
            f.seek(4096)
            assert f.read(8192) == data
    finally:
        export_cleanup(qmp, mp)


def test_stats(qmp, node, mp):
    try:
        add_export(qmp, "e", node, mp, writable=True, passthrough="off")
        fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
        import mmap
        buf = mmap.mmap(-1, 65536)
        try:
            for i in range(10):
                assert os.preadv(fd, [buf], i * 65536) == 65536
            for i in range(3):
                assert os.pwritev(fd, [buf], i * 65536) == 65536
            os.fsync(fd)
            # A write past the end of a fixed export: an error.
            with pytest.raises(OSError):
                os.pwritev(fd, [buf], 4 * MiB)
        finally:
            os.close(fd)
            buf.close()
        st = export_info(qmp, "e")["x-stats"]
        assert st["read"]["requests"] == 10
        assert st["read"]["bytes"] == 10 * 65536
        assert st["write"]["requests"] == 4
        assert st["write"]["bytes"] == 3 * 65536
        assert st["write"]["errors"] == 1
        assert st["flush"]["requests"] >= 1
        assert st["other"]["requests"] >= 1      # OPEN, GETATTR, ...
        hist = st["read"]["latency-us"]
        assert sum(count for _, count in hist) == 10
        bounds = [b for b, _ in hist if b is not None]
        assert bounds == sorted(bounds)
    finally:
        export_cleanup(qmp, mp)
