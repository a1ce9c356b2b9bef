"""FUSE passthrough (Linux 6.9+): where the kernel serves an export's reads
and writes from the image itself, where it must not, and what
query-block-exports says about it.  The semantics tests of test_fuse_308
run with passthrough off and auto; these check the data path itself."""

import errno
import os
import subprocess

import pytest

from fusetest import (QMPError, add_export, add_file_node, add_writable_export, del_export,
                      export_cleanup, export_info, kernel_has_passthrough, mounted, need,
                      expect_errno, random_image)

MiB = 1 << 20


@pytest.fixture
def img(tmp_path):
    return random_image(tmp_path / "t.raw", 16 * MiB)


@pytest.fixture
def loopdev(img):
    """A block device: a loop device over img."""
    need("losetup")
    r = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip("no loop device available (%s), so block devices cannot be tested"
                    % r.stderr.strip())
    dev = r.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_readonly_file_served_by_kernel(qmp, img, mp):
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp)
        info = export_info(qmp, "e")
        kernel_has_passthrough(info)
        assert info["x-data-path"] == "passthrough", info["x-data-path-reason"]
        assert mp.read_bytes() == img.read_bytes()
        # O_DIRECT goes to the image too.
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECT)
        try:
            import mmap
            buf = mmap.mmap(-1, 65536)
            assert os.preadv(fd, [buf], MiB) == 65536
            assert bytes(buf) == img.read_bytes()[MiB:MiB + 65536]
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)


def test_writable_block_device(qmp, img, loopdev, mp):
    """The kernel takes regular files only as backing files: a block device
    is served in userspace, says why, takes writes and cannot grow."""
    add_file_node(qmp, "d", loopdev)
    pattern = os.urandom(65536)
    try:
        add_export(qmp, "e", "d", mp, writable=True)
        info = export_info(qmp, "e")
        assert info["x-data-path"] == "userspace"
        assert "block device" in info["x-data-path-reason"]
        size = os.stat(mp).st_size
        assert size == 16 * MiB
        fd = os.open(mp, os.O_RDWR)
        try:
            assert os.pwrite(fd, pattern, 3 * MiB) == 65536
            os.fsync(fd)
            assert os.pread(fd, 65536, 3 * MiB) == pattern
            # A fixed-size export cannot grow.
            with pytest.raises(OSError) as exc:
                os.pwrite(fd, b"x" * 4096, size)
            assert exc.value.errno == errno.ENOSPC
        finally:
            os.close(fd)
        assert os.stat(mp).st_size == size
        del_export(qmp, "e")
    finally:
        export_cleanup(qmp, mp)
    with open(loopdev, "rb") as f:
        f.seek(3 * MiB)
        assert f.read(65536) == pattern


def test_readonly_block_device_is_userspace(qmp, img, loopdev, mp):
    """The kernel takes regular files only as backing files."""
    add_file_node(qmp, "d", loopdev, read_only=True)
    try:
        add_export(qmp, "e", "d", mp)
        info = export_info(qmp, "e")
        assert info["x-data-path"] == "userspace"
        assert "block device" in info["x-data-path-reason"]
        assert mp.read_bytes() == img.read_bytes()
    finally:
        export_cleanup(qmp, mp)


def test_write_open_refused_on_readonly_passthrough(qmp, img, mp):
    """Root could open a read-only export for writing (CAP_DAC_OVERRIDE); it
    is refused at open with EROFS, also while readers have it open: any
    handle of a passthrough export is passthrough, and the kernel would map
    a shared writable mmap of it straight onto the image."""
    import mmap
    add_file_node(qmp, "f", img)
    before = img.read_bytes()
    try:
        add_export(qmp, "e", "f", mp)
        kernel_has_passthrough(export_info(qmp, "e"))
        rfd = os.open(mp, os.O_RDONLY)
        try:
            expect_errno(errno.EROFS, os.open, mp, os.O_RDWR)
            with pytest.raises(PermissionError):
                mmap.mmap(rfd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            assert os.pread(rfd, 4096, 0) == before[:4096]
        finally:
            os.close(rfd)
        expect_errno(errno.EROFS, os.open, mp, os.O_WRONLY)
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes() == before


def test_writable_file_readers_and_writers(qmp, img, mp):
    """Writable export of a file with passthrough: on: readers are passed
    through, writers are served in userspace (a passthrough write could grow
    the image), both at once, and readers see the writes at once."""
    add_file_node(qmp, "f", img)
    pattern = os.urandom(65536)
    try:
        add_export(qmp, "e", "f", mp, writable=True, passthrough="on")
        info = export_info(qmp, "e")
        kernel_has_passthrough(info)
        assert info["x-data-path"] == "passthrough", info["x-data-path-reason"]
        assert "open for writing are served in userspace" in info["x-data-path-reason"]
        size = os.stat(mp).st_size
        rfd = os.open(mp, os.O_RDONLY)
        wfd = os.open(mp, os.O_RDWR)
        try:
            assert os.pread(rfd, 4096, 0) == img.read_bytes()[:4096]
            assert os.pwrite(wfd, pattern, 2 * MiB) == 65536
            assert os.pread(rfd, 65536, 2 * MiB) == pattern
            assert os.pread(wfd, 65536, 2 * MiB) == pattern
            # The export's semantics hold for the writer: no growing.
            with pytest.raises(OSError) as exc:
                os.pwrite(wfd, b"x" * 4096, size)
            assert exc.value.errno == errno.ENOSPC
            assert export_info(qmp, "e")["x-open-handles"] == 2
            st = export_info(qmp, "e")["x-stats"]
            assert st["write"]["requests"] >= 2
        finally:
            os.close(rfd)
            os.close(wfd)
        assert os.stat(mp).st_size == size
        assert os.stat(img).st_size == size
        del_export(qmp, "e")
    finally:
        export_cleanup(qmp, mp)
    with open(img, "rb") as f:
        f.seek(2 * MiB)
        assert f.read(65536) == pattern


def test_block_device_userspace_off(qmp, img, loopdev, mp):
    """passthrough: off on a block device: the same data, our path."""
    add_file_node(qmp, "d", loopdev)
    pattern = os.urandom(65536)
    try:
        add_export(qmp, "e", "d", mp, writable=True, passthrough="off")
        info = export_info(qmp, "e")
        assert info["x-data-path"] == "userspace"
        assert "passthrough: off" in info["x-data-path-reason"]
        fd = os.open(mp, os.O_RDWR)
        try:
            assert os.pwrite(fd, pattern, 5 * MiB) == 65536
            os.fsync(fd)
        finally:
            os.close(fd)
        del_export(qmp, "e")
    finally:
        export_cleanup(qmp, mp)
    with open(loopdev, "rb") as f:
        f.seek(5 * MiB)
        assert f.read(65536) == pattern


@pytest.mark.parametrize("case,opts,reason", [
    ("off", {"passthrough": "off"}, "passthrough: off"),
    ("growable", {"writable": True, "growable": True},
     "passthrough of its reads and writes needs 'passthrough': 'on'"),
    ("writable", {"writable": True}, "needs 'passthrough': 'on'"),
])
def test_fallback_reasons(qmp, img, mp, case, opts, reason):
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, **opts)
        info = export_info(qmp, "e")
        assert info["x-data-path"] == "userspace"
        assert reason in info["x-data-path-reason"], info
    finally:
        export_cleanup(qmp, mp)


def test_fallback_raw_window(qmp, img, mp):
    add_file_node(qmp, "f", img)
    qmp.cmd("blockdev-add", driver="raw", file="f", offset=MiB, **{"node-name": "r"})
    try:
        add_export(qmp, "e", "r", mp)
        info = export_info(qmp, "e")
        assert info["x-data-path"] == "userspace"
        assert "offset" in info["x-data-path-reason"], info
        assert mp.read_bytes() == img.read_bytes()[MiB:]
    finally:
        export_cleanup(qmp, mp)


def test_raw_over_whole_file_passes_through(qmp, img, mp):
    add_file_node(qmp, "f", img)
    qmp.cmd("blockdev-add", driver="raw", file="f", **{"node-name": "r"})
    try:
        add_export(qmp, "e", "r", mp)
        info = export_info(qmp, "e")
        kernel_has_passthrough(info)
        assert info["x-data-path"] == "passthrough", info["x-data-path-reason"]
        assert mp.read_bytes() == img.read_bytes()
    finally:
        export_cleanup(qmp, mp)


@pytest.mark.parametrize("case,node,opts,reason", [
    ("window", {"driver": "raw", "offset": MiB}, {}, "offset"),
    ("growable-writethrough", None, {"writable": True, "growable": True, "writethrough": True},
     "writethrough"),
    ("growable-detect-zeroes", {"driver": "raw", "detect-zeroes": "on"},
     {"writable": True, "growable": True}, "detect-zeroes"),
])
def test_on_refuses_when_not_possible(qmp, img, mp, case, node, opts, reason):
    add_file_node(qmp, "f", img)
    name = "f"
    if node:
        qmp.cmd("blockdev-add", file="f", **{"node-name": "r"}, **node)
        name = "r"
    with pytest.raises(QMPError) as exc:
        add_export(qmp, "e", name, mp, passthrough="on", **opts)
    assert exc.value.desc.startswith("Cannot use FUSE passthrough for export 'e': ")
    assert reason in exc.value.desc
    assert not mounted(mp)
    assert qmp.cmd("query-block-exports") == []


def test_growable_writes_go_through_the_kernel(qmp, img, mp):
    """Growable + on: the kernel writes the image, and a write past the end
    grows it, as the daemon would; truncate, fsync and the size stay ours."""
    add_file_node(qmp, "f", img)
    size = os.stat(img).st_size
    try:
        add_writable_export(qmp, "e", "f", mp, "kernel")
        fd = os.open(mp, os.O_RDWR)
        try:
            assert os.pwrite(fd, b"k" * 8192, MiB) == 8192
            assert img.read_bytes()[MiB:MiB + 8192] == b"k" * 8192
            assert os.pwrite(fd, b"g" * 4096, size + 4096) == 4096
            assert os.stat(img).st_size == size + 8192
            assert os.fstat(fd).st_size == size + 8192
            # The daemon sees the new size too (GETATTR asks the file).
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            assert os.stat(mp).st_size == size + 8192
            os.fsync(fd)
            stats = export_info(qmp, "e")["x-stats"]
            assert stats["flush"]["requests"] >= 1
            # Passed-through writes are not ours to count, and say so.
            assert stats["write"]["requests"] == 0
            (own,) = qmp.cmd("x-query-export-stats", id="e")
            assert sorted(own["uncounted"]) == ["read", "write"]
            os.ftruncate(fd, size)
            assert os.stat(img).st_size == size
        finally:
            os.close(fd)
        del_export(qmp, "e")
    finally:
        export_cleanup(qmp, mp)


def assert_revoked(fd, writable):
    """The handle of a passthrough export that is gone fails with EIO."""
    with pytest.raises(OSError) as exc:
        os.pread(fd, 4096, 0)
    assert exc.value.errno == errno.EIO
    if writable:
        with pytest.raises(OSError) as exc:
            os.pwrite(fd, b"x" * 4096, 0)
        assert exc.value.errno == errno.EIO


def close_revoked(fd):
    try:
        os.close(fd)
    except OSError:
        pass    # close() reports the revoked inode's EIO too


@pytest.mark.parametrize("write_path", ["read-only", "kernel"])
def test_hard_delete_revokes_passthrough_handles(qmp, img, mp, write_path):
    """A handle opened before a hard delete fails afterwards (as the seed's
    do), instead of still reading or writing the image in the kernel."""
    add_file_node(qmp, "f", img)
    before = img.read_bytes()
    try:
        if write_path == "kernel":
            add_writable_export(qmp, "e", "f", mp, "kernel")
        else:
            add_export(qmp, "e", "f", mp)
            kernel_has_passthrough(export_info(qmp, "e"))
        fd = os.open(mp, os.O_RDWR if write_path == "kernel" else os.O_RDONLY)
        try:
            assert os.pread(fd, 4096, 0) == before[:4096]
            del_export(qmp, "e", mode="hard")
            assert not mounted(mp)
            assert_revoked(fd, write_path == "kernel")
        finally:
            close_revoked(fd)
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes() == before


def test_safe_delete_counts_passthrough_handles(qmp, img, mp):
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp)
        kernel_has_passthrough(export_info(qmp, "e"))
        f = open(mp, "rb")
        try:
            f.read(4096)
            assert export_info(qmp, "e")["x-open-handles"] == 1
            with pytest.raises(QMPError) as exc:
                qmp.cmd("block-export-del", id="e")
            assert "still in use" in exc.value.desc
        finally:
            f.close()
        del_export(qmp, "e")
        assert not mounted(mp)
    finally:
        export_cleanup(qmp, mp)


def test_shutdown_revokes_passthrough_handles(daemon, qmp, img, mp):
    """SIGTERM with a growable passthrough export still open for writing: the
    daemon exits at once, and the handle can no longer write the image."""
    add_file_node(qmp, "f", img)
    before = img.read_bytes()
    add_writable_export(qmp, "e", "f", mp, "kernel")
    fd = os.open(mp, os.O_RDWR)
    try:
        assert daemon.stop(timeout=10) == 0
        assert not mounted(mp)
        assert_revoked(fd, True)
    finally:
        close_revoked(fd)
    assert img.read_bytes() == before


def test_qcow2_reason(qmp, tmp_path, mp):
    need("qemu-img")
    img = tmp_path / "t.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    add_file_node(qmp, "f", img)
    qmp.cmd("blockdev-add", driver="qcow2", file="f", **{"node-name": "q"})
    try:
        add_export(qmp, "e", "q", mp)
        info = export_info(qmp, "e")
        assert info["x-data-path"] == "userspace"
        assert info["x-data-path-reason"].startswith("the node is a qcow2 image"), info
        mp2 = mp.with_name("mp2")
        mp2.touch()
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e2", "q", mp2, passthrough="on")
        assert "qcow2 image" in exc.value.desc
        assert not mounted(mp2)
    finally:
        export_cleanup(qmp, mp)
