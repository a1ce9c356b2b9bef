"""The null-co and blkdebug block drivers (QEMU's, issue 23): null-co stores
nothing and reads zeroes; blkdebug injects errors, so that the errno a
FUSE reader or writer sees when the storage fails can be checked; what
exportd leaves out of blkdebug is refused, never ignored."""

import errno
import mmap
import os
import shutil
import subprocess

import pytest

from fusetest import (QMPError, add_export, add_file_node, del_export, expect_errno,
                      export_cleanup, random_image)

MiB = 1 << 20


def add_blkdebug(qmp, name, image, inject=(), **extra):
    qmp.cmd("blockdev-add", driver="blkdebug", **{"node-name": name}, image=image,
            **{"inject-error": list(inject)}, **extra)


def test_null_co_export_reads_zeroes_and_swallows_writes(qmp, mp):
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "n"})
    try:
        add_export(qmp, "e", "n", mp, writable=True)
        assert os.path.getsize(mp) == 1 << 30
        # O_DIRECT, so that the read reaches the node, not the page cache.
        fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
        buf = mmap.mmap(-1, 4096)
        try:
            buf.write(b"x" * 4096)
            assert os.pwritev(fd, [buf], 8192) == 4096
            os.fsync(fd)
            assert os.pread(fd, 4096, 8192) == bytes(4096)
        finally:
            os.close(fd)
            buf.close()
    finally:
        export_cleanup(qmp, mp)


def test_null_co_size_and_its_node_query(qmp):
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "n"}, size=4 * MiB,
            **{"read-zeroes": True})
    [info] = qmp.cmd("query-named-block-nodes")
    assert info["drv"] == "null-co"
    assert info["image"]["virtual-size"] == 4 * MiB
    assert info["file"] == "null-co://"


def test_read_eio_reaches_the_reader(qmp, tmp_path, mp):
    img = random_image(tmp_path / "i.raw", MiB)
    add_file_node(qmp, "f", img)
    add_blkdebug(qmp, "b", "f", [{"event": "none", "iotype": "read", "errno": errno.EIO}])
    try:
        add_export(qmp, "e", "b", mp, writable=True)
        fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
        try:
            expect_errno(errno.EIO, os.pread, fd, 4096, 0)
            # Only reads fail: a write still reaches the image.
            buf = mmap.mmap(-1, 4096)
            buf.write(b"w" * 4096)
            assert os.pwritev(fd, [buf], 4096) == 4096
            buf.close()
        finally:
            os.close(fd)
        with open(img, "rb") as f:
            f.seek(4096)
            assert f.read(4096) == b"w" * 4096
    finally:
        export_cleanup(qmp, mp)


def test_write_enospc_reaches_the_writer(qmp, tmp_path, mp):
    img = random_image(tmp_path / "i.raw", MiB)
    before = img.read_bytes()
    add_file_node(qmp, "f", img)
    add_blkdebug(qmp, "b", "f", [{"event": "none", "iotype": "write",
                                  "errno": errno.ENOSPC}])
    try:
        add_export(qmp, "e", "b", mp, writable=True)
        fd = os.open(mp, os.O_RDWR)
        try:
            expect_errno(errno.ENOSPC, os.pwrite, fd, b"x" * 4096, 0)
            assert os.pread(fd, 4096, 0) == before[:4096]
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes() == before


def test_once_and_sector_fail_one_request_at_one_place(qmp, mp):
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "n"}, size=MiB)
    add_blkdebug(qmp, "b", "n", [{"event": "none", "iotype": "read", "sector": 16,
                                  "once": True}])
    try:
        add_export(qmp, "e", "b", mp)
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECT)
        try:
            assert os.pread(fd, 4096, 0) == bytes(4096)       # does not cover byte 8192
            expect_errno(errno.EIO, os.pread, fd, 4096, 8192)
            assert os.pread(fd, 4096, 8192) == bytes(4096)    # once: used up
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)


def test_set_state_arms_a_rule_after_the_first_read(qmp, mp):
    """set-state moves the node to state 2 on the first read; the rule that
    waits for read_aio in state 2 then fails the second read."""
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "n"}, size=MiB)
    add_blkdebug(qmp, "b", "n", [{"event": "read_aio", "state": 2, "iotype": "read",
                                  "errno": errno.EIO}],
                 **{"set-state": [{"event": "read_aio", "state": 1, "new_state": 2}]})
    try:
        add_export(qmp, "e", "b", mp)
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECT)
        try:
            assert os.pread(fd, 4096, 0) == bytes(4096)
            expect_errno(errno.EIO, os.pread, fd, 4096, 0)
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)


@pytest.mark.parametrize("extra, message", [
    ({"config": "/etc/blkdebug.conf"}, "blkdebug: 'config' is not supported by exportd"),
    ({"align": 4096}, "blkdebug: 'align' is not supported by exportd"),
    ({"inject-error": [{"event": "l2_load"}]},
     "blkdebug: inject-error event 'l2_load' is not supported by exportd"),
    ({"inject-error": [{"event": "bogus"}]},
     "Parameter 'inject-error[0].event' does not accept value 'bogus'"),
])
def test_what_exportd_leaves_out_is_refused(qmp, extra, message):
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "n"})
    with pytest.raises(QMPError) as exc:
        qmp.cmd("blockdev-add", driver="blkdebug", **{"node-name": "b"}, image="n", **extra)
    assert message in exc.value.desc
    assert [n["node-name"] for n in qmp.cmd("query-named-block-nodes")] == ["n"]


def test_qemu_iotest_file_io_error(qmp, mp):
    """QEMU's iotest tests/file-io-error, against exportd: a FUSE export whose
    every request fails; qemu-io fails gracefully; the export goes away."""
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io is not installed (package qemu-utils)")
    qmp.cmd("blockdev-add", driver="blkdebug", **{"node-name": "node0"},
            **{"inject-error": [{"event": "none"}]}, image={"driver": "null-co"})
    try:
        add_export(qmp, "exp0", "node0", mp, writable=True)
        r = subprocess.run(["qemu-io", "-f", "file", "-c", "write 0 64M", str(mp)],
                           capture_output=True, text=True, timeout=60)
        assert "write failed: Input/output error" in r.stdout + r.stderr
        del_export(qmp, "exp0")
        qmp.cmd("blockdev-del", **{"node-name": "node0"})
    finally:
        export_cleanup(qmp, mp)
