"""A qemu-storage-daemon command line with a remote --blockdev (nbd,
https) runs unchanged with exportd (issue 17): the very same arguments
are given to qsd 7.2 and to exportd, against the same real servers, and
both exports read the image's bytes."""

import os

import pytest

from fusetest import random_image
from harness import QSD, QSD_MISSING, Daemon, fuse_mounts, qsd_process, unmount_all_under
from harness.servers import free_port, nginx, qemu_nbd

pytestmark = pytest.mark.skipif(QSD is None, reason=QSD_MISSING)

MiB = 1 << 20


def qsd_has_curl():
    """qsd loads its curl driver (http, https) from a module."""
    return os.path.exists("/usr/lib/x86_64-linux-gnu/qemu/block-curl.so")


def serve_with_both(tmp_path, args_for, expect):
    """Run qsd, then exportd, with args_for(mountpoint); each export must
    read expect."""
    qmnt = tmp_path / "qsd.raw"
    qmnt.touch()
    with qsd_process(str(tmp_path), args_for(qmnt)):
        assert str(qmnt) in fuse_mounts()
        assert qmnt.read_bytes() == expect
    unmount_all_under(str(tmp_path))
    emnt = tmp_path / "exportd.raw"
    emnt.touch()
    d = Daemon(tmp_path / "d")
    d.start(args_for(emnt))
    try:
        assert emnt.read_bytes() == expect
        assert d.stop() == 0
    finally:
        d.cleanup()
        unmount_all_under(str(tmp_path))


def test_nbd_blockdev_of_a_qsd_command_line(tmp_path):
    img = random_image(tmp_path / "disk.raw", 2 * MiB)
    sock = tmp_path / "nbd.sock"
    with qemu_nbd(tmp_path, img, sock=sock, read_only=True).start():
        serve_with_both(tmp_path, lambda mnt: [
            "--blockdev", f"driver=nbd,node-name=n,server.type=unix,server.path={sock},"
                          "export=exp,read-only=on",
            "--export", f"type=fuse,id=e,node-name=n,mountpoint={mnt}"],
            img.read_bytes())


def test_https_blockdev_of_a_qsd_command_line(tmp_path):
    if not qsd_has_curl():
        pytest.skip("qemu-storage-daemon has no https driver here "
                    "(Debian package qemu-block-extra)")
    www = tmp_path / "www"
    www.mkdir()
    img = random_image(www / "disk.raw", MiB)
    port = free_port()
    with nginx(tmp_path, www, port, https=True).start():
        serve_with_both(tmp_path, lambda mnt: [
            "--blockdev", f"driver=https,node-name=h,url=https://127.0.0.1:{port}/disk.raw,"
                          "sslverify=off,read-only=on,timeout=10",
            "--export", f"type=fuse,id=e,node-name=h,mountpoint={mnt}"],
            img.read_bytes())
