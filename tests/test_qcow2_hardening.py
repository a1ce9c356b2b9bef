"""qcow2 hardening (issue 12): a real exportd exporting images made by
qemu-img through real FUSE mounts.  Growth that needs more refcount blocks
than one covers finishes and leaves a clean image; metadata whose refcount
was zeroed is never handed out for guest data (the write fails with EIO,
the image is marked corrupt, the rest of it is intact); sizes that qcow2
cannot hold are refused as qemu-storage-daemon 7.2 refuses them; headers
with out-of-range counts and sizes are refused at open."""

import errno
import os
import struct
import subprocess
import time

import pytest

from fusetest import fallocate
from harness import QSD, QSD_MISSING, QMPClient, qsd_monitor
from test_qcow2 import add_qcow2, export, qemu_img, unexport

MiB = 1 << 20
PUNCH_HOLE = 0x01 | 0x02    # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
GiB = 1 << 30


def check_clean(img):
    r = qemu_img("check", img, check=False)
    assert r.returncode == 0, f"qemu-img check {img}: {r.returncode}\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("cluster_size,start,grown", [
    ("4k", "1G", 3 << 40),
    ("512", "1M", 2 * GiB),
])
def test_growth_needing_several_refcount_blocks_finishes(qmp, tmp_path, cluster_size,
                                                         start, grown):
    """The new L1 table needs more clusters than one refcount block covers:
    the truncate finishes, the file stays small, and the image is clean."""
    img = tmp_path / "g.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster_size}", img, start)
    add_qcow2(qmp, "q", img)
    mp = tmp_path / "g.fuse"
    export(qmp, "e", "q", mp, writable=True, growable=True)
    try:
        r = subprocess.run(["truncate", "-s", str(grown), str(mp)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert mp.stat().st_size == grown
        with open(mp, "r+b") as f:
            f.seek(grown - 4096)
            f.write(b"\xab" * 4096)
            f.flush()
            os.fsync(f.fileno())
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    # The L1 table of the grown image is at most 12 MiB; the refcount
    # structures a few more.  The bug grew the file to hundreds of GB.
    assert img.stat().st_size < 64 * MiB, f"image file grew to {img.stat().st_size} bytes"
    check_clean(img)
    info = qemu_img("info", "--output=json", img).stdout
    assert f'"virtual-size": {grown}' in info
    out = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c",
                          f"read -P 0xab {grown - 4096} 4096", str(img)],
                         capture_output=True, text=True, timeout=60)
    assert "Pattern verification failed" not in out.stdout and out.returncode == 0, out.stdout


def qsd_client(sock, timeout=15.0):
    """A QMP client of the qsd at sock: qsd_monitor returns once the socket
    file exists, which is before qsd listens on it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return QMPClient(sock)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                pytest.fail(f"qemu-storage-daemon did not accept a QMP connection on "
                            f"{sock} within {timeout} s")
            time.sleep(0.01)


def unaligned_truncate(qmp, tmp_path, name):
    """Truncate a writable qcow2 export to 1000001 bytes; returns the errno
    (0 on success) and the size the export shows afterwards."""
    img = tmp_path / f"{name}.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", img, "1M")
    add_qcow2(qmp, name, img)
    mp = tmp_path / f"{name}.fuse"
    export(qmp, name, name, mp, writable=True)
    try:
        try:
            os.truncate(mp, 1000001)
            err = 0
        except OSError as e:
            err = e.errno
        size = mp.stat().st_size
    finally:
        unexport(qmp, name)
    return err, size


def test_truncate_to_unaligned_size_is_einval(qmp, tmp_path):
    err, size = unaligned_truncate(qmp, tmp_path, "u")
    assert err == errno.EINVAL
    assert size == MiB


@pytest.mark.skipif(QSD is None, reason=QSD_MISSING)
def test_truncate_to_unaligned_size_as_qsd(qmp, tmp_path):
    ours = unaligned_truncate(qmp, tmp_path, "u")
    ref_dir = tmp_path / "qsd"
    ref_dir.mkdir()
    with qsd_monitor(ref_dir) as sock:
        ref = qsd_client(sock)
        try:
            theirs = unaligned_truncate(ref, ref_dir, "u")
        finally:
            ref.close()
    assert ours == theirs


def be64(f, off):
    f.seek(off)
    return struct.unpack(">Q", f.read(8))[0]


def zero_refcount_of(img, table):
    """Set the refcount of the image's first L2 table or of its first
    refcount block to 0 (16-bit refcounts, a single refcount block, as
    qemu-img makes small images); returns that table's host offset."""
    with open(img, "r+b") as f:
        f.seek(20)
        cluster_bits = struct.unpack(">I", f.read(4))[0]
        l1_offset = be64(f, 40)
        rt_offset = be64(f, 48)
        f.seek(96)
        assert struct.unpack(">I", f.read(4))[0] == 4, "expected 16-bit refcounts"
        if table == "L2 table":
            target = be64(f, l1_offset) & 0x00fffffffffffe00
        else:
            target = be64(f, rt_offset)
        assert target, f"the image has no {table}"
        cluster = target >> cluster_bits
        per_block = (1 << cluster_bits) // 2
        block = be64(f, rt_offset + (cluster // per_block) * 8)
        f.seek(block + (cluster % per_block) * 2)
        assert struct.unpack(">H", f.read(2))[0] == 1
        f.seek(block + (cluster % per_block) * 2)
        f.write(b"\0\0")
    return target


@pytest.mark.parametrize("table", ["L2 table", "refcount block"])
def test_table_with_refcount_0_is_not_overwritten(qmp, tmp_path, table):
    """The allocator must not hand out an in-use L2 table or refcount block
    whose refcount reads 0: the write fails with EIO, the image is marked corrupt, later
    writes are refused, and what the image held is still there."""
    img = tmp_path / "c.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", img, "4M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k",
                    "-c", "write -P 0x6b 1M 64k", str(img)], check=True,
                   capture_output=True, timeout=60)
    zero_refcount_of(img, table)
    add_qcow2(qmp, "q", img)
    mp = tmp_path / "c.fuse"
    export(qmp, "e", "q", mp, writable=True)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            with pytest.raises(OSError) as exc:
                os.pwrite(fd, b"\x77" * 65536, 2 * MiB)    # needs a new cluster
                os.fsync(fd)
            assert exc.value.errno == errno.EIO
            # Marked corrupt: even a write in place is refused now.
            with pytest.raises(OSError) as exc:
                os.pwrite(fd, b"\x88" * 512, 0)
                os.fsync(fd)
            assert exc.value.errno == errno.EIO
            assert os.pread(fd, 65536, 0) == b"\x5a" * 65536
            assert os.pread(fd, 65536, MiB) == b"\x6b" * 65536
        finally:
            os.close(fd)
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    info = qemu_img("info", "--output=json", img).stdout
    assert '"corrupt": true' in info, info
    for cmd in ("read -P 0x5a 0 64k", "read -P 0x6b 1M 64k", "read -P 0 2M 64k"):
        r = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", cmd, str(img)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "verification failed" not in r.stdout, \
            f"{cmd}: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("action", ["write", "punch"])
def test_data_cluster_pointing_at_l2_table_is_left_alone(qmp, tmp_path, action):
    """An L2 entry that points at the L2 table itself: writing that guest
    cluster would overwrite the table, discarding it would drop the table's
    refcount to 0; either fails with EIO and the image is marked corrupt."""
    img = tmp_path / "p.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", img, "4M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(img)],
                   check=True, capture_output=True, timeout=60)
    with open(img, "r+b") as f:
        l2_offset = be64(f, be64(f, 40)) & 0x00fffffffffffe00
        f.seek(l2_offset + 8)       # guest cluster 1
        f.write(struct.pack(">Q", l2_offset | (1 << 63)))
    # discard=unmap: a punched cluster is freed, not kept as a zero cluster.
    add_qcow2(qmp, "q", img, discard="unmap")
    mp = tmp_path / "p.fuse"
    export(qmp, "e", "q", mp, writable=True)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            if action == "write":
                with pytest.raises(OSError) as exc:
                    os.pwrite(fd, b"\x77" * 4096, 65536)
                    os.fsync(fd)
                assert exc.value.errno == errno.EIO
            else:
                with pytest.raises(OSError) as exc:
                    fallocate(fd, PUNCH_HOLE, 65536, 65536)
                assert exc.value.errno == errno.EIO
            assert os.pread(fd, 65536, 0) == b"\x5a" * 65536
        finally:
            os.close(fd)
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    assert '"corrupt": true' in qemu_img("info", "--output=json", img).stdout
    with open(img, "rb") as f:
        assert be64(f, l2_offset) & 0x00fffffffffffe00, "the L2 table was overwritten"
    r = qemu_img("check", img, check=False)
    assert "refcount=0" not in r.stdout + r.stderr, r.stdout


def test_shrinking_a_huge_sparse_image_finishes(qmp, tmp_path):
    """Growing to the largest size qcow2 allows and shrinking back frees
    nothing but must not walk the 2^35 unallocated clusters one by one."""
    img = tmp_path / "h.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", img, "1G")
    add_qcow2(qmp, "q", img)
    mp = tmp_path / "h.fuse"
    export(qmp, "e", "q", mp, writable=True)
    try:
        for size in (1 << 56, MiB):
            r = subprocess.run(["truncate", "-s", str(size), str(mp)], capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert mp.stat().st_size == size
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    check_clean(img)
