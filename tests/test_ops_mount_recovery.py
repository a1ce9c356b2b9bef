"""Mountpoints left behind (issue 15): an exportd killed with SIGKILL
leaves its mounts dead (ENOTCONN); the next export on such a mountpoint
lazily unmounts it, with a log line, and mounts.  A live export of another
exportd there, or any other file system mounted there, is refused with an
error that says what is mounted."""

import errno
import os
import subprocess

import pytest

from fusetest import add_export, add_file_node, mounted
from harness import Daemon, QMPError, unmount_all_under


@pytest.fixture
def image(tmp_path):
    img = tmp_path / "img.raw"
    img.write_bytes(bytes(range(256)) * 256)
    return img


def start_daemon(tmp_path, name):
    return Daemon(tmp_path / name).start()


def test_dead_exportd_mount_is_unmounted_and_reused(tmp_path, image, mp):
    d1 = start_daemon(tmp_path, "d1")
    d2 = None
    try:
        q1 = d1.new_client()
        add_file_node(q1, "n", image)
        add_export(q1, "e", "n", mp)
        d1.proc.kill()
        d1.proc.wait()
        with pytest.raises(OSError) as e:
            os.stat(mp)
        assert e.value.errno == errno.ENOTCONN
        d2 = start_daemon(tmp_path, "d2")
        q2 = d2.new_client()
        add_file_node(q2, "n", image)
        add_export(q2, "e", "n", mp)
        assert mp.read_bytes() == image.read_bytes()
        assert "was the dead FUSE mount of an exportd" in d2.log()
        q2.cmd("block-export-del", id="e")
        q2.wait_event("BLOCK_EXPORT_DELETED", match={"id": "e"})
        # One mount was stacked on nothing: none is left.
        assert not mounted(str(mp))
        assert d2.stop() == 0
    finally:
        if d2:
            d2.cleanup()
        d1.cleanup()


def test_live_export_of_another_exportd_is_refused(tmp_path, image, mp):
    d1 = start_daemon(tmp_path, "d1")
    d2 = start_daemon(tmp_path, "d2")
    try:
        q1 = d1.new_client()
        add_file_node(q1, "n", image, read_only=True)
        add_export(q1, "e", "n", mp)
        q2 = d2.new_client()
        add_file_node(q2, "n", image, read_only=True)
        with pytest.raises(QMPError) as e:
            add_export(q2, "e", "n", mp)
        assert e.value.desc == ("Cannot mount on '%s': another exportd serves a FUSE "
                                "export there" % mp)
        assert mp.read_bytes() == image.read_bytes()
        assert d2.stop() == 0
        assert d1.stop() == 0
    finally:
        d2.cleanup()
        d1.cleanup()


def test_other_mount_on_the_mountpoint_is_refused_and_named(tmp_path, image, mp, daemon,
                                                           qmp):
    other = tmp_path / "other"
    other.write_bytes(b"someone else's file\n")
    subprocess.run(["mount", "--bind", str(other), str(mp)], check=True)
    try:
        fstype = None
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if f[4] == str(mp):
                fstype = f[f.index("-") + 1]
                source = f[f.index("-") + 2]
        add_file_node(qmp, "n", image, read_only=True)
        with pytest.raises(QMPError) as e:
            add_export(qmp, "e", "n", mp)
        assert e.value.desc == ("Cannot mount on '%s': a %s file system from '%s' is "
                                "mounted there already (unmount it first)"
                                % (mp, fstype, source))
        assert mp.read_bytes() == b"someone else's file\n"
    finally:
        # Also whatever an exportd that stacked its mount on it left.
        while mounted(str(mp)) or any(line.split()[4] == str(mp)
                                      for line in open("/proc/self/mountinfo")):
            subprocess.run(["umount", "-l", str(mp)], check=True)
    assert unmount_all_under(str(tmp_path)) == []
