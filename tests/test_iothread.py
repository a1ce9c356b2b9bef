"""FUSE exports on I/O loops (issue 14): each export's /dev/fuse fds are
events on shared loops, so the daemon's threads do not grow with the number
of exports, and exports on one loop are served side by side."""

import os

import pytest

from fusetest import (add_export, add_file_node, export_cleanup, export_info,
                      random_image)

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
