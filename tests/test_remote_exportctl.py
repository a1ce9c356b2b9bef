"""`exportctl add --image URL` (issue 17): nbd://, nbd+unix:// and
http(s):// images become the right protocol node (with a format node on
top) against real servers; malformed URLs get one clear line."""

import os
import subprocess

import pytest

from fusetest import random_image
from harness import build_path
from harness.servers import free_port, nginx, qemu_nbd

MiB = 1 << 20


def exportctl(daemon, *args):
    env = dict(os.environ)
    env.pop("EXPORTD_SOCKET", None)
    return subprocess.run([build_path("exportctl"), "--socket", daemon.socket_path, *args],
                          capture_output=True, text=True, timeout=60, env=env)


def add_and_check(daemon, qmp, mp, url, expect, *extra):
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", url, *extra)
    assert r.returncode == 0, r.stderr
    try:
        with open(mp, "rb") as f:
            assert f.read() == expect
        return {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    finally:
        [e] = qmp.cmd("query-block-exports")
        r = exportctl(daemon, "del", e["id"])
        assert r.returncode == 0, r.stderr


def test_add_nbd_unix_url(daemon, qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 2 * MiB)
    sock = tmp_path / "nbd.sock"
    with qemu_nbd(tmp_path, img, sock=sock, export="vm1").start():
        nodes = add_and_check(daemon, qmp, mp, f"nbd+unix:///vm1?socket={sock}",
                              img.read_bytes())
    [proto] = [n for n in nodes.values() if n["drv"] == "nbd"]
    assert proto["file"] == f"nbd+unix:///vm1?socket={sock}"
    assert qmp.cmd("query-named-block-nodes") == []


def test_add_nbd_tcp_url_with_a_qcow2_image(daemon, qmp, tmp_path, mp):
    src = random_image(tmp_path / "src.raw", 2 * MiB)
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(src), str(qcow)], check=True)
    port = free_port()
    with qemu_nbd(tmp_path, qcow, tcp_port=port, export="vm 1").start():
        nodes = add_and_check(daemon, qmp, mp, f"nbd://127.0.0.1:{port}/vm%201",
                              src.read_bytes(), "--format", "qcow2")
    assert sorted(n["drv"] for n in nodes.values()) == ["nbd", "qcow2"]


def test_add_http_url(daemon, qmp, tmp_path, mp):
    www = tmp_path / "www"
    www.mkdir()
    img = random_image(www / "disk.raw", MiB)
    port = free_port()
    with nginx(tmp_path, www, port).start():
        nodes = add_and_check(daemon, qmp, mp, f"http://127.0.0.1:{port}/disk.raw",
                              img.read_bytes())
    assert sorted(n["drv"] for n in nodes.values()) == ["http", "raw"]


@pytest.mark.parametrize("url, why", [
    ("nbd+unix:///exp", "needs exactly one '?socket=PATH'"),
    ("nbd+unix://host/exp?socket=/s", "nbd+unix:// takes no host"),
    ("nbd://:10809/exp", "expected nbd://HOST[:PORT]/EXPORT"),
    ("nbd://host:port/exp", "expected nbd://HOST[:PORT]/EXPORT"),
    ("nbd://host/e%zzx", "malformed %-escape in the export name"),
])
def test_malformed_urls_are_one_clear_line(daemon, qmp, mp, url, why):
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", url)
    assert r.returncode != 0
    assert why in r.stderr and url in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert qmp.cmd("query-named-block-nodes") == []
