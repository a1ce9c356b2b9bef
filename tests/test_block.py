"""The block layer through QMP (issue 4, "Block layer"): blockdev-add,
blockdev-del and query-named-block-nodes with QEMU's names and error
messages (compared side by side with qemu-storage-daemon 7.2 where the two
must agree), implicit inline children, and image locks against qemu-io,
qemu-img and a second exportd."""

import os
import shutil
import subprocess
import time

import pytest

from fusetest import blockdev_add_error as add_error
from harness import QSD, QSD_MISSING, Daemon, QMPClient, QMPError, make_pattern_image, qsd_monitor

QEMU_IO = shutil.which("qemu-io")
QEMU_IMG = shutil.which("qemu-img")
MiB = 1 << 20


def add_file(qmp, name, path, **extra):
    return qmp.cmd("blockdev-add", driver="file", **{"node-name": name, "filename": str(path)},
                   **extra)


def nodes(qmp):
    return {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}


@pytest.fixture
def img(tmp_path):
    return make_pattern_image(tmp_path / "disk.img", MiB)


# ---- blockdev-add / query-named-block-nodes ----

def test_add_file_node_is_listed_with_its_image(qmp, img):
    add_file(qmp, "f", img)
    info = nodes(qmp)["f"]
    assert info["drv"] == "file"
    assert info["file"] == str(img)
    assert info["ro"] is False
    assert info["image"]["virtual-size"] == MiB
    assert info["image"]["filename"] == str(img)
    assert info["image"]["format"] == "file"
    assert info["image"]["actual-size"] == os.stat(img).st_blocks * 512
    assert info["cache"] == {"writeback": True, "direct": False, "no-flush": False}
    assert info["backing_file_depth"] == 0 and info["encrypted"] is False
    assert all(info[k] == 0 for k in ("bps", "bps_rd", "bps_wr", "iops", "iops_rd",
                                      "iops_wr", "write_threshold"))


def test_root_node_needs_a_node_name(qmp, img):
    assert add_error(qmp, driver="file", filename=str(img)) == \
        "'node-name' must be specified for the root node"


def test_node_name_must_be_well_formed(qmp, img):
    assert add_error(qmp, driver="file", filename=str(img), **{"node-name": "1x"}) == \
        "Invalid node-name: '1x'"


def test_duplicate_node_name_is_refused(qmp, img):
    add_file(qmp, "f", img)
    assert add_error(qmp, driver="file", filename=str(img), **{"node-name": "f"}) == \
        "Duplicate nodes with node-name='f'"
    assert list(nodes(qmp)) == ["f"]


def test_missing_image_says_why(qmp, tmp_path):
    path = tmp_path / "nope.img"
    assert add_error(qmp, driver="file", filename=str(path), **{"node-name": "f"}) == \
        f"Could not open '{path}': No such file or directory"
    assert nodes(qmp) == {}


def test_raw_on_unknown_node_is_refused(qmp):
    assert add_error(qmp, driver="raw", file="zz", **{"node-name": "r"}) == \
        "Cannot find device='zz' nor node-name='zz'"


def test_raw_window_must_fit_in_its_file(qmp, img):
    add_file(qmp, "f", img)
    assert add_error(qmp, driver="raw", file="f", offset=512, size=MiB,
                     **{"node-name": "r"}) == \
        ("The sum of offset (512) and size (1048576) has to be smaller or equal to the  "
         "actual size of the containing file (1048576)")


def test_inline_child_is_an_implicit_node(qmp, img):
    qmp.cmd("blockdev-add", driver="raw", **{"node-name": "r", "read-only": True},
            file={"driver": "file", "filename": str(img)})
    listed = qmp.cmd("query-named-block-nodes")
    assert [n["node-name"] for n in listed][0] == "r"
    child = listed[1]
    assert child["node-name"].startswith("#block")
    assert child["drv"] == "file" and child["ro"] is True   # read-only propagates
    assert listed[0]["x-children"] == [child["node-name"]]
    with pytest.raises(QMPError) as e:
        qmp.cmd("blockdev-del", **{"node-name": child["node-name"]})
    assert e.value.desc == f"Node {child['node-name']} is not owned by the monitor"


def test_implicit_child_goes_away_with_its_parent(qmp, img):
    qmp.cmd("blockdev-add", driver="raw", **{"node-name": "r"},
            file={"driver": "file", "filename": str(img)})
    assert len(nodes(qmp)) == 2
    qmp.cmd("blockdev-del", **{"node-name": "r"})
    assert nodes(qmp) == {}


def test_del_unknown_node(qmp):
    with pytest.raises(QMPError) as e:
        qmp.cmd("blockdev-del", **{"node-name": "nope"})
    assert e.value.desc == "Failed to find node with node-name='nope'"


def test_del_refused_while_a_parent_uses_the_node(qmp, img):
    add_file(qmp, "f", img)
    qmp.cmd("blockdev-add", driver="raw", file="f", **{"node-name": "r"})
    with pytest.raises(QMPError) as e:
        qmp.cmd("blockdev-del", **{"node-name": "f"})
    assert e.value.desc == "Node 'f' is in use by node 'r' (as its file)"
    qmp.cmd("blockdev-del", **{"node-name": "r"})
    qmp.cmd("blockdev-del", **{"node-name": "f"})
    assert nodes(qmp) == {}


def test_del_closes_the_image(qmp, daemon, img):
    add_file(qmp, "f", img)
    fds = os.listdir(f"/proc/{daemon.pid}/fd")
    opened = [f for f in fds if os.path.realpath(f"/proc/{daemon.pid}/fd/{f}") == str(img)]
    assert len(opened) == 1
    qmp.cmd("blockdev-del", **{"node-name": "f"})
    fds = os.listdir(f"/proc/{daemon.pid}/fd")
    assert not [f for f in fds
                if os.path.realpath(f"/proc/{daemon.pid}/fd/{f}") == str(img)]


def test_read_only_raw_over_writable_reference(qmp, img):
    add_file(qmp, "f", img, **{"read-only": True})
    qmp.cmd("blockdev-add", driver="raw", file="f", **{"node-name": "r"})
    assert nodes(qmp)["f"]["ro"] is True


def test_flat_query_leaves_out_nothing_for_raw(qmp, img):
    add_file(qmp, "f", img)
    assert qmp.cmd("query-named-block-nodes", flat=True) == \
        qmp.cmd("query-named-block-nodes", flat=False)


# ---- side by side with qemu-storage-daemon ----

@pytest.fixture
def qsd(tmp_path):
    if QSD is None:
        pytest.skip(QSD_MISSING)
    with qsd_monitor(tmp_path) as sock:
        c = QMPClient(sock)
        yield c
        c.close()


def same_requests(img, tmp_path):
    f = str(img)
    return [
        ("blockdev-add", {"driver": "file", "filename": f}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "1x"}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "a b"}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "b" * 32}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "c" * 31}),
        ("blockdev-del", {"node-name": "c" * 31}),
        ("blockdev-add", {"driver": "raw", "node-name": "r", "file": {
            "driver": "file", "filename": f, "node-name": "#x"}}),
        ("blockdev-add", {"driver": "raw", "node-name": "r", "file": {
            "driver": "file", "filename": f, "node-name": "r"}}),
        ("blockdev-add", {"driver": "file", "filename": str(tmp_path / "no"),
                          "node-name": "f0"}),
        ("blockdev-add", {"driver": "file", "filename": str(tmp_path), "node-name": "d"}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "f"}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "f"}),
        ("blockdev-add", {"driver": "host_device", "filename": f, "node-name": "h"}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "s",
                          "force-share": True}),
        ("blockdev-add", {"driver": "file", "filename": f, "node-name": "n",
                          "aio": "native"}),
        ("blockdev-add", {"driver": "raw", "file": "zz", "node-name": "r"}),
        ("blockdev-add", {"driver": "raw", "file": "f", "node-name": "r", "size": 1000}),
        ("blockdev-add", {"driver": "raw", "file": "f", "node-name": "r", "offset": -1}),
        ("blockdev-add", {"driver": "raw", "file": "f", "node-name": "r",
                          "offset": MiB + 1}),
        ("blockdev-add", {"driver": "raw", "file": "f", "node-name": "r",
                          "offset": 4096, "size": MiB}),
        ("blockdev-add", {"driver": "raw", "file": "f", "node-name": "r",
                          "offset": 4096, "size": 8192}),
        ("blockdev-add", {"driver": "raw", "node-name": "i", "read-only": True,
                          "file": {"driver": "file", "filename": f, "node-name": "kid"}}),
        ("blockdev-del", {"node-name": "kid"}),
        ("blockdev-del", {"node-name": "nope"}),
        ("blockdev-del", {"node-name": "i"}),
        ("blockdev-del", {"node-name": "r"}),
        ("blockdev-del", {"node-name": "f"}),
    ]


def outcome(client, name, args):
    try:
        client.cmd(name, **args)
        return "ok"
    except QMPError as e:
        return (e.cls, e.desc)


def test_blockdev_replies_match_qsd(qmp, qsd, img, tmp_path):
    for name, args in same_requests(img, tmp_path):
        ours, theirs = outcome(qmp, name, args), outcome(qsd, name, args)
        assert ours == theirs, f"{name} {args}:\n  exportd: {ours}\n  qsd:     {theirs}"


def test_query_matches_qsd(qmp, qsd, img):
    for c in (qmp, qsd):
        c.cmd("blockdev-add", driver="file", filename=str(img), **{"node-name": "f"})
        c.cmd("blockdev-add", driver="raw", file="f", **{"node-name": "r"})
    ours, theirs = qmp.cmd("query-named-block-nodes"), qsd.cmd("query-named-block-nodes")
    assert [n["node-name"] for n in ours] == [n["node-name"] for n in theirs]
    for a, b in zip(ours, theirs):
        a.pop("x-children", None)
        assert a == b


def test_del_in_use_says_by_what(qmp, img):
    """qsd says "Block device f is in use"; exportd names the user."""
    add_file(qmp, "f", img)
    qmp.cmd("blockdev-add", driver="raw", file="f", **{"node-name": "r"})
    with pytest.raises(QMPError) as e:
        qmp.cmd("blockdev-del", **{"node-name": "f"})
    assert "is in use by node 'r'" in e.value.desc


# ---- image locks: exports take them, other processes see them ----

def export_fuse(qmp, node, mnt, writable, **extra):
    try:
        return qmp.cmd("block-export-add", type="fuse", id=f"e-{node}", mountpoint=str(mnt),
                       writable=writable, **{"node-name": node}, **extra)
    except QMPError as e:
        if e.cls == "CommandNotFound" or "not in this test build" in e.desc:
            pytest.skip(f"FUSE exports are not built yet: {e.desc}")
        raise


def unexport(qmp, node):
    qmp.cmd("block-export-del", id=f"e-{node}")
    qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10)


@pytest.fixture
def mnt(tmp_path):
    p = tmp_path / "mnt.raw"
    p.touch()
    return p


def need(tool, path):
    if path is None:
        pytest.skip(f"{tool} is not installed (qemu-utils): cannot check lock interop")


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_writable_export_refuses_qemu_io_writer(qmp, img, mnt):
    need("qemu-io", QEMU_IO)
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, True)
    r = run(QEMU_IO, "-f", "raw", "-c", "write 0 512", str(img))
    assert r.returncode != 0
    assert 'Failed to get "write" lock' in r.stderr
    unexport(qmp, "f")


def test_writable_export_lets_readers_in(qmp, img, mnt):
    need("qemu-io", QEMU_IO)
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, True)
    r = run(QEMU_IO, "-r", "-f", "raw", "-c", "read 0 512", str(img))
    assert r.returncode == 0, r.stderr
    unexport(qmp, "f")


def test_read_only_export_shares_writing(qmp, img, mnt):
    need("qemu-io", QEMU_IO)
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, False)
    r = run(QEMU_IO, "-f", "raw", "-c", "write -P 0x11 0 512", str(img))
    assert r.returncode == 0, r.stderr
    unexport(qmp, "f")


def test_lock_goes_away_with_the_export(qmp, img, mnt):
    need("qemu-io", QEMU_IO)
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, True)
    unexport(qmp, "f")
    r = run(QEMU_IO, "-f", "raw", "-c", "write 0 512", str(img))
    assert r.returncode == 0, r.stderr


def byte_locked(path, byte):
    """Whether /proc/locks has an OFD lock on byte of path's inode."""
    ino = os.stat(path).st_ino
    for line in open("/proc/locks"):
        f = line.split()
        if "OFDLCK" in f and f[-3].endswith(f":{ino}") and int(f[-2]) <= byte <= int(f[-1]):
            return True
    return False


def test_export_refused_while_qemu_io_writes(qmp, img, mnt):
    need("qemu-io", QEMU_IO)
    add_file(qmp, "f", img)
    proc = subprocess.Popen([QEMU_IO, "-f", "raw", str(img)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not byte_locked(img, 101):
            assert time.time() < deadline, "qemu-io did not lock the image"
            time.sleep(0.05)
        with pytest.raises(QMPError) as e:
            export_fuse(qmp, "f", mnt, True)
        assert 'Failed to get shared "write" lock' in e.value.desc
        assert str(img) in e.value.desc
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_second_exportd_writer_is_refused(qmp, img, mnt, tmp_path):
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, True)
    other = Daemon(tmp_path / "other")
    other.start()
    try:
        c = other.new_client()
        add_file(c, "f", img)
        mnt2 = tmp_path / "mnt2.raw"
        mnt2.touch()
        with pytest.raises(QMPError) as e:
            c.cmd("block-export-add", type="fuse", id="e2", mountpoint=str(mnt2),
                  writable=True, **{"node-name": "f"})
        assert 'Failed to get "write" lock' in e.value.desc
        c.close()
    finally:
        other.stop()
        other.cleanup()
    unexport(qmp, "f")


def test_qemu_img_cannot_resize_under_a_writable_export(qmp, img, mnt):
    need("qemu-img", QEMU_IMG)
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, True)
    r = run(QEMU_IMG, "resize", "-f", "raw", str(img), "2M")
    assert r.returncode != 0 and "lock" in r.stderr
    assert os.path.getsize(img) == MiB
    unexport(qmp, "f")


def test_aio_io_uring_node(qmp, img):
    """The stretch path of issue 7: aio=io_uring is accepted where the kernel
    has io_uring (the unit tests run every file-driver test through it)."""
    try:
        add_file(qmp, "u", img, aio="io_uring")
    except QMPError as e:
        pytest.skip(f"io_uring is not usable here: {e.desc}")
    assert nodes(qmp)["u"]["drv"] == "file"


def test_aio_native_needs_direct(qmp, img):
    assert add_error(qmp, driver="file", filename=str(img), aio="native",
                     **{"node-name": "n"}) == \
        "aio=native was specified, but it requires cache.direct=on, which was not specified."


def test_query_order_with_a_backing_chain_matches_qsd(qmp, qsd, tmp_path):
    """QEMU lists a node after its file and before its backing chain."""
    need("qemu-img", QEMU_IMG)
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(base), "1M"], check=True)
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                    str(top)], check=True)
    shapes = []
    for c in (qmp, qsd):
        try:
            c.cmd("blockdev-add", driver="qcow2", **{"node-name": "t", "read-only": True},
                  file={"driver": "file", "filename": str(top)})
        except QMPError as e:
            pytest.skip(f"no qcow2 driver in this build: {e.desc}")
        shapes.append([(n["drv"], n["ro"], n["file"], n["node-name"] == "t",
                        n["backing_file_depth"])
                       for n in c.cmd("query-named-block-nodes")])
    assert shapes[0] == shapes[1]


def test_full_backing_filesystem_gives_enospc(qmp, daemon, tmp_path, mnt):
    """A file on a full tmpfs: the writer gets ENOSPC, the daemon stays up."""
    fs = tmp_path / "fs"
    fs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "exportd-test", str(fs)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        img = fs / "sparse.img"
        with open(img, "wb") as f:
            f.truncate(8 * MiB)
        add_file(qmp, "f", img)
        export_fuse(qmp, "f", mnt, True)
        err = None
        fd = os.open(mnt, os.O_WRONLY)
        try:
            chunk = b"\x5a" * MiB
            for i in range(8):
                os.pwrite(fd, chunk, i * MiB)
            os.fsync(fd)
        except OSError as e:
            err = e
        finally:
            try:
                os.close(fd)
            except OSError as e:
                err = err or e
        assert err is not None and err.errno in (28, 5), err   # ENOSPC (or EIO)
        assert "f" in nodes(qmp)
        unexport(qmp, "f")
        qmp.cmd("blockdev-del", **{"node-name": "f"})
    finally:
        subprocess.run(["umount", "-l", str(fs)], capture_output=True)


# ---- image locks against qemu-storage-daemon ----

@pytest.fixture
def qsd_exporting(qsd, tmp_path):
    """qsd plus cleanup of any FUSE export it made under tmp_path."""
    from harness import unmount_all_under
    made = []
    yield qsd, made
    for eid in made:
        try:
            qsd.cmd("block-export-del", id=eid)
        except QMPError:
            continue
        # qsd unmounts when the export's last request is done, then says so.
        qsd.wait_event("BLOCK_EXPORT_DELETED", timeout=10, match={"id": eid})
    left = unmount_all_under(str(tmp_path))
    assert not left, f"qemu-storage-daemon left FUSE mounts behind: {left}"


def test_qsd_writable_export_refuses_our_writer(qmp, qsd_exporting, img, mnt, tmp_path):
    qsd, made = qsd_exporting
    qmnt = tmp_path / "qsd.raw"
    qmnt.touch()
    qsd.cmd("blockdev-add", driver="file", filename=str(img), **{"node-name": "q"})
    qsd.cmd("block-export-add", type="fuse", id="qe", mountpoint=str(qmnt), writable=True,
            **{"node-name": "q"})
    made.append("qe")
    add_file(qmp, "f", img)
    with pytest.raises(QMPError) as e:
        export_fuse(qmp, "f", mnt, True)
    assert 'Failed to get shared "write" lock' in e.value.desc


def test_our_writable_export_refuses_qsd_writer(qmp, qsd_exporting, img, mnt, tmp_path):
    qsd, made = qsd_exporting
    add_file(qmp, "f", img)
    export_fuse(qmp, "f", mnt, True)
    qmnt = tmp_path / "qsd.raw"
    qmnt.touch()
    qsd.cmd("blockdev-add", driver="file", filename=str(img), **{"node-name": "q"})
    with pytest.raises(QMPError) as e:
        qsd.cmd("block-export-add", type="fuse", id="qe", mountpoint=str(qmnt),
                writable=True, **{"node-name": "q"})
    assert e.value.desc == 'Failed to get "write" lock'
    unexport(qmp, "f")


def test_qsd_qcow2_node_keeps_our_writer_out(qmp, qsd, mnt, tmp_path):
    need("qemu-img", QEMU_IMG)
    q = tmp_path / "q.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(q), "1M"], check=True)
    qsd.cmd("blockdev-add", driver="qcow2", **{"node-name": "q"},
            file={"driver": "file", "filename": str(q)})
    add_file(qmp, "f", q)
    with pytest.raises(QMPError) as e:
        export_fuse(qmp, "f", mnt, True)
    assert 'Failed to get "write" lock' in e.value.desc
    # Reading is shared, as qsd itself allows it.
    export_fuse(qmp, "f", mnt, False)
    unexport(qmp, "f")
