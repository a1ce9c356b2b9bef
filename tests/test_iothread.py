"""FUSE exports on I/O loops (issue 14): each export's /dev/fuse fds are
events on shared loops, so the daemon's threads do not grow with the number
of exports, and exports on one loop are served side by side."""

import os

import pytest

from fusetest import (QMPError, add_export, add_file_node, export_cleanup, export_info,
                      random_image)
from harness.daemon import Daemon

MiB = 1 << 20


def thread_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture
def node(qmp, tmp_path):
    add_file_node(qmp, "f", random_image(tmp_path / "t.raw", MiB), read_only=True)
    return "f"


def test_threads_do_not_grow_with_exports(daemon, qmp, node, tmp_path):
    """Ten exports with four channels each cost no thread: the loops started
    with the daemon serve them all (before: four threads per export)."""
    pid = daemon.proc.pid
    before = thread_count(pid)
    mps = []
    try:
        for i in range(10):
            mp = tmp_path / f"e{i}.fuse"
            mp.touch()
            mps.append(mp)
            add_export(qmp, f"e{i}", node, mp, num_threads=4, passthrough="off")
        assert thread_count(pid) == before
        data = (tmp_path / "t.raw").read_bytes()
        for mp in mps:
            assert mp.read_bytes() == data
        assert export_info(qmp, "e9")["x-num-threads"] == 4
    finally:
        export_cleanup(qmp, *mps)


def add_iothreads(qmp, *ids):
    for i in ids:
        qmp.cmd("object-add", {"qom-type": "iothread", "id": i})


def test_default_pool(qmp, node, mp):
    """Without 'iothread', the export's fds are on the default pool."""
    try:
        add_export(qmp, "e", node, mp)
        names = export_info(qmp, "e")["x-iothreads"]
        assert names and all(n.startswith("pool-") for n in names)
    finally:
        export_cleanup(qmp, mp)


def test_iothread_list(qmp, node, mp, tmp_path):
    """QEMU 11's list: one /dev/fuse fd per listed iothread, and the loops
    cannot be deleted while the export uses them."""
    add_iothreads(qmp, "io0", "io1")
    try:
        add_export(qmp, "e", node, mp, iothread=["io0", "io1"])
        info = export_info(qmp, "e")
        assert info["x-iothreads"] == ["io0", "io1"]
        assert info["x-num-threads"] == 2
        assert mp.read_bytes() == (tmp_path / "t.raw").read_bytes()
        with pytest.raises(QMPError, match="object 'io1' is in use, can not be deleted"):
            qmp.cmd("object-del", id="io1")
    finally:
        export_cleanup(qmp, mp)
    qmp.cmd("object-del", id="io1")
    qmp.cmd("object-del", id="io0")


def test_single_iothread(qmp, node, mp, tmp_path):
    add_iothreads(qmp, "io0")
    try:
        add_export(qmp, "e", node, mp, iothread="io0", fixed_iothread=True)
        assert export_info(qmp, "e")["x-iothreads"] == ["io0"]
        assert mp.read_bytes() == (tmp_path / "t.raw").read_bytes()
    finally:
        export_cleanup(qmp, mp)


@pytest.mark.parametrize("opts, message", [
    ({"iothread": ["io0", "io1"], "fixed_iothread": True},
     "Cannot use fixed-iothread for a multi-threaded export"),
    ({"iothread": []}, "The set of I/O threads must not be empty"),
    ({"iothread": ["io0", "nothread", "io1"]}, 'iothread "nothread" not found'),
    ({"iothread": "nothread"}, 'iothread "nothread" not found'),
])
def test_iothread_errors(qmp, node, mp, opts, message):
    """QEMU 11's messages (its iotest 307), and nothing mounted."""
    add_iothreads(qmp, "io0", "io1")
    with pytest.raises(QMPError) as exc:
        add_export(qmp, "e", node, mp, **opts)
    assert exc.value.desc == message
    assert qmp.cmd("query-block-exports") == []
    # Nothing kept the loops in use.
    qmp.cmd("object-del", id="io0")


def test_iothread_list_on_the_command_line(tmp_path):
    """qsd 11's command-line spelling of the list: iothread.0=X,iothread.1=Y."""
    img = random_image(tmp_path / "c.raw", MiB)
    mnt = tmp_path / "c.fuse"
    mnt.touch()
    d = Daemon(tmp_path / "d")
    d.start(["--object", "iothread,id=a", "--object", "iothread,id=b",
             "--blockdev", f"file,node-name=f,filename={img},read-only=on",
             "--export", f"fuse,id=e,node-name=f,mountpoint={mnt},iothread.0=a,iothread.1=b"])
    try:
        info = d.new_client().cmd("query-block-exports")[0]
        assert info["x-iothreads"] == ["a", "b"]
        assert mnt.read_bytes() == img.read_bytes()
        assert d.stop() == 0
    finally:
        d.cleanup()
