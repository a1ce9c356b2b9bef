"""Hardening of the block-node graph and of the files it opens (issue 12):
no cycle and no unbounded depth in the graph, no blocking open of a FIFO,
no device node opened because an image names it, and no format probe that
follows a backing file a guest could have written.  Each test drives a real
daemon over QMP (or exportctl against it) and checks that the daemon still
answers afterwards."""

import os
import subprocess

import pytest

from fusetest import add_export, export_cleanup, need
from harness import QMPClient, QMPError, build_path, make_pattern_image, pattern_bytes

MiB = 1 << 20
# Long enough for a loaded machine, short enough that a daemon stuck in
# open(2) on a FIFO fails the test instead of hanging the suite.
ANSWER_DEADLINE = 15.0


def qemu_img(*args):
    need("qemu-img")
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def qcow2(path, size=MiB, backing=None, backing_fmt=None):
    """A qcow2 image; -u: the backing file is not opened (it may be a FIFO)."""
    args = ["create", "-q", "-f", "qcow2"]
    if backing:
        args += ["-u", "-b", str(backing), "-F", backing_fmt or "raw"]
    qemu_img(*args, str(path), str(size))
    return path


def strip_backing_format(path):
    """Hide the backing format extension (0xe2792aca) so that it is probed."""
    with open(path, "r+b") as f:
        head = f.read(4096)
        at = head.find(bytes.fromhex("e2792aca"), 104)
        assert at > 0 and at % 8 == 0, f"{path} has no backing format extension"
        f.seek(at)
        f.write(b"\x12")


def add_error(qmp, **args):
    with pytest.raises(QMPError) as e:
        qmp.cmd("blockdev-add", **args)
    assert e.value.cls == "GenericError"
    return e.value.desc


def node_names(qmp):
    return sorted(n["node-name"] for n in qmp.cmd("query-named-block-nodes"))


def inline_qcow2(name, path, **extra):
    return {"driver": "qcow2", "node-name": name, "read-only": True,
            "file": {"driver": "file", "filename": str(path)}, **extra}


@pytest.fixture
def slow_qmp(daemon):
    """A client whose every reply must come within ANSWER_DEADLINE."""
    c = QMPClient(daemon.socket_path, timeout=ANSWER_DEADLINE)
    yield c
    c.close()


@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


# ---- cycles and depth ----

def test_node_cannot_be_its_own_backing_file(qmp, tmp_path):
    img = qcow2(tmp_path / "q.qcow2")
    desc = add_error(qmp, **inline_qcow2("Q", img, backing="Q"))
    assert desc == "Making 'Q' a backing child of 'Q' would create a cycle"
    assert node_names(qmp) == []


def test_two_node_cycle_through_inline_backing_is_refused(qmp, tmp_path):
    a, b = qcow2(tmp_path / "a.qcow2"), qcow2(tmp_path / "b.qcow2")
    desc = add_error(qmp, **inline_qcow2("A", a, backing=inline_qcow2("B", b, backing="A")))
    assert desc == "Making 'A' a backing child of 'B' would create a cycle"
    assert node_names(qmp) == []


def test_graph_deeper_than_the_limit_is_refused_and_the_deepest_allowed_reads(
        qmp, daemon, tmp_path, mp):
    # 128 raw nodes stacked on a file node: 128 levels below l128, the most allowed.
    img = make_pattern_image(str(tmp_path / "deep.img"), MiB, seed=5)
    qmp.cmd("blockdev-add", driver="file", filename=img,
            **{"node-name": "l0", "read-only": True})
    for i in range(1, 129):
        qmp.cmd("blockdev-add", driver="raw", file=f"l{i - 1}",
                **{"node-name": f"l{i}", "read-only": True})
    desc = add_error(qmp, driver="raw", file="l128", **{"node-name": "l129"})
    assert desc == ("Making 'l128' a file child of 'l129' would nest the block graph "
                    "deeper than 128 levels")
    nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    assert "l129" not in nodes and nodes["l128"]["image"]["virtual-size"] == MiB
    add_export(qmp, "deep", "l128", mp)
    try:
        with open(mp, "rb") as f:
            assert f.read() == pattern_bytes(0, MiB, seed=5)
    finally:
        export_cleanup(qmp, mp)


# ---- FIFOs and devices ----

def test_fifo_given_to_the_file_driver_is_refused_at_once(slow_qmp, fifo):
    # Read-only: open(O_RDONLY) of a FIFO waits for a writer, O_RDWR does not.
    desc = add_error(slow_qmp, driver="file", filename=str(fifo),
                     **{"node-name": "f", "read-only": True})
    assert desc == (f"'file' driver requires '{fifo}' to be a regular file or a "
                    f"block device")
    assert slow_qmp.cmd("query-named-block-nodes") == []


def test_fifo_named_as_backing_file_is_refused_at_once(slow_qmp, tmp_path, fifo):
    top = qcow2(tmp_path / "top.qcow2", backing=fifo)
    desc = add_error(slow_qmp, **inline_qcow2("top", top))
    assert desc == (f"Could not open backing file '{fifo}' of '{top}': '{fifo}' is named "
                    f"by an image, so it must be a regular file (a device is opened "
                    f"only when given as a 'file' or 'host_device' node)")
    assert slow_qmp.cmd("query-named-block-nodes") == []


def test_fifo_whose_format_is_probed_is_refused_at_once(slow_qmp, tmp_path, fifo):
    top = qcow2(tmp_path / "top.qcow2", backing=fifo)
    strip_backing_format(top)
    desc = add_error(slow_qmp, **inline_qcow2("top", top))
    assert "is named by an image, so it must be a regular file" in desc
    assert slow_qmp.cmd("query-named-block-nodes") == []


@pytest.fixture
def loop_device(tmp_path):
    need("losetup")
    backing = make_pattern_image(str(tmp_path / "loop.img"), MiB, seed=9)
    r = subprocess.run(["losetup", "--find", "--show", "--read-only", backing],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device to test with: {r.stderr.strip()}")
    dev = r.stdout.strip()
    yield dev
    subprocess.run(["losetup", "-d", dev], check=False)


def test_block_device_named_by_an_image_is_refused(qmp, tmp_path, loop_device):
    top = qcow2(tmp_path / "top.qcow2", backing=loop_device)
    desc = add_error(qmp, **inline_qcow2("top", top))
    assert desc.endswith(f"'{loop_device}' is named by an image, so it must be a regular "
                         f"file (a device is opened only when given as a 'file' or "
                         f"'host_device' node)")
    assert node_names(qmp) == []


def test_block_device_named_by_the_user_is_still_a_backing_file(qmp, tmp_path, loop_device):
    top = qcow2(tmp_path / "top.qcow2", backing=loop_device)
    qmp.cmd("blockdev-add", driver="host_device", filename=loop_device,
            **{"node-name": "dev", "read-only": True})
    qmp.cmd("blockdev-add", **inline_qcow2("top", top, backing="dev"))
    qmp.cmd("blockdev-del", **{"node-name": "top"})
    qmp.cmd("blockdev-del", **{"node-name": "dev"})


# ---- probed formats ----

@pytest.fixture
def secret(tmp_path):
    p = tmp_path / "secret"
    p.write_bytes(b"root:secret-hash:19000:0:99999:7:::\n".ljust(4096, b"\0"))
    return p


@pytest.fixture
def guest_disk(tmp_path, secret):
    """A raw disk whose guest wrote a qcow2 header naming a host file."""
    return qcow2(tmp_path / "vm-disk.raw", backing=secret)


def test_probed_backing_file_may_not_name_a_backing_file(qmp, tmp_path, guest_disk):
    # top names the guest's raw disk without a format: the daemon probes it.
    top = qcow2(tmp_path / "top.qcow2", backing=guest_disk)
    strip_backing_format(top)
    desc = add_error(qmp, **inline_qcow2("top", top))
    assert desc == (f"Could not open backing file '{guest_disk}' of '{top}': Image "
                    f"'{guest_disk}' was probed as qcow2 and names a backing file "
                    f"'{guest_disk.parent / 'secret'}' itself; a probed image may not "
                    f"name other files (record the backing format in the image above "
                    f"it: qemu-img rebase -u -F qcow2)")
    assert node_names(qmp) == []


def exportctl(daemon, *args, timeout=ANSWER_DEADLINE):
    env = dict(os.environ)
    env.pop("EXPORTD_SOCKET", None)
    return subprocess.run([build_path("exportctl"), "--socket", daemon.socket_path, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_exportctl_add_does_not_follow_a_probed_backing_file(daemon, qmp, tmp_path,
                                                              guest_disk, secret):
    mp = tmp_path / "vm.raw"
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", str(guest_disk))
    assert r.returncode == 1, r.stdout
    assert r.stderr == (f"exportctl: '{guest_disk}' looks like a qcow2 image with the "
                        f"backing file '{secret}'; a probed image may not name other "
                        f"files: give --format qcow2 if you trust it\n")
    assert node_names(qmp) == [] and qmp.cmd("query-block-exports") == []
    assert not mp.exists()


def test_exportctl_add_format_qcow2_accepts_the_backing_file(daemon, qmp, tmp_path,
                                                             guest_disk, secret):
    # What doc/exportctl.1.md shows: the user who trusts the image says so.
    if not os.path.exists("/dev/fuse"):
        pytest.skip("FUSE exports cannot be tested because /dev/fuse is missing")
    mp = tmp_path / "vm.raw"
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", str(guest_disk),
                  "--format", "qcow2")
    assert r.returncode == 0, r.stderr
    try:
        with open(mp, "rb") as f:
            assert f.read(4096) == secret.read_bytes()
        backing = [n for n in qmp.cmd("query-named-block-nodes")
                   if n["image"]["filename"] == str(secret) and n["drv"] == "file"]
        assert backing and backing[0]["ro"] is True
    finally:
        export_cleanup(qmp, mp)


def test_exportctl_add_refuses_a_fifo_image_at_once(daemon, qmp, tmp_path, fifo):
    mp = tmp_path / "f.raw"
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", str(fifo))
    assert r.returncode == 1
    assert r.stderr == (f"exportctl: cannot probe '{fifo}': not a regular file or a "
                        f"block device\n")
    assert node_names(qmp) == []


def test_reads_and_block_status_walk_the_deepest_qcow2_chain(qmp, tmp_path, mp):
    # 127 qcow2 nodes over one empty image (read-only, so it can be shared),
    # each the backing of the next, over a raw base: every read and every
    # SEEK_DATA of the top recurses through all of them on an iothread.
    empty = qcow2(tmp_path / "empty.qcow2", size=MiB)
    base = make_pattern_image(str(tmp_path / "base.img"), MiB, seed=11)
    qmp.cmd("blockdev-add", driver="raw", file={"driver": "file", "filename": base},
            **{"node-name": "q0", "read-only": True})
    for i in range(1, 128):
        qmp.cmd("blockdev-add", **inline_qcow2(f"q{i}", empty, backing=f"q{i - 1}"))
    desc = add_error(qmp, **inline_qcow2("q128", empty, backing="q127"))
    assert desc.endswith("would nest the block graph deeper than 128 levels")
    top = [n for n in qmp.cmd("query-named-block-nodes") if n["node-name"] == "q127"][0]
    assert top["backing_file_depth"] == 127
    add_export(qmp, "deep", "q127", mp)
    try:
        fd = os.open(mp, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_DATA) == 0
            assert os.pread(fd, MiB, 0) == pattern_bytes(0, MiB, seed=11)
        finally:
            os.close(fd)
    finally:
        export_cleanup(qmp, mp)


def nested_raw(levels, filename):
    """`levels` raw nodes given inline one inside the other, over a file."""
    node = {"driver": "file", "filename": filename}
    for _ in range(levels):
        node = {"driver": "raw", "file": node}
    return node


def test_inline_children_nested_deeper_than_the_limit_are_refused(qmp, tmp_path):
    img = make_pattern_image(str(tmp_path / "n.img"), MiB, seed=2)
    # 128 raw nodes, the outer one named top, over the file: 128 levels, the most allowed.
    qmp.cmd("blockdev-add", **{"node-name": "top", "read-only": True},
            **nested_raw(128, img))
    assert "top" in node_names(qmp)
    qmp.cmd("blockdev-del", **{"node-name": "top"})
    desc = add_error(qmp, **{"node-name": "top", "read-only": True}, **nested_raw(129, img))
    assert desc.startswith("Node '#block") and \
        desc.endswith("': block graph nested deeper than 128 levels")
    assert node_names(qmp) == []
