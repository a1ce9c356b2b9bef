"""The http and https block drivers (issue 17) against a real nginx on
127.0.0.1 (its own prefix and configuration, a self-signed certificate
for https): raw and qcow2 images read with Range requests and compared
with the files, a local qcow2 overlay over a remote backing file, the
server going away, and QEMU's option checks."""

import errno
import mmap
import os
import subprocess

import pytest

from fusetest import QMPError, add_export, add_file_node, export_cleanup, random_image
from harness.servers import free_port, nginx

MiB = 1 << 20


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    (root / "private").mkdir(parents=True)
    return root


@pytest.fixture
def http_server(tmp_path, www):
    port = free_port()
    with nginx(tmp_path, www, port).start() as server:
        server.url = f"http://127.0.0.1:{port}"
        yield server


@pytest.fixture
def https_server(tmp_path, www):
    port = free_port()
    with nginx(tmp_path, www, port, https=True).start() as server:
        server.url = f"https://127.0.0.1:{port}"
        yield server


def add_http_node(qmp, name, url, **extra):
    driver = "https" if url.startswith("https:") else "http"
    qmp.cmd("blockdev-add", driver=driver, **{"node-name": name}, url=url,
            **{"read-only": True}, **extra)


def read_all(path, chunk=MiB):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, chunk)
    try:
        out = bytearray()
        while True:
            n = os.readv(fd, [buf])
            out += buf[:n]
            if n < chunk:
                return bytes(out)
    finally:
        buf.close()
        os.close(fd)


def del_nodes(qmp, *names):
    for n in names:
        try:
            qmp.cmd("blockdev-del", **{"node-name": n})
        except QMPError:
            pass


# qsd 7.2 hangs on a 128 KiB FUSE read with readahead=65536; exportd must not.
@pytest.mark.parametrize("readahead", [None, 0, 65536])
def test_raw_image_over_http_reads_the_file(qmp, www, http_server, mp, readahead):
    img = random_image(www / "disk.raw", 3 * MiB + 4096)
    add_http_node(qmp, "h", f"{http_server.url}/disk.raw",
                  **({} if readahead is None else {"readahead": readahead}))
    try:
        [info] = qmp.cmd("query-named-block-nodes")
        assert info["drv"] == "http" and info["ro"] is True
        assert info["file"] == f"{http_server.url}/disk.raw"
        add_export(qmp, "e", "h", mp)
        assert os.path.getsize(mp) == 3 * MiB + 4096
        # Small reads at scattered offsets, then the whole file.
        fd = os.open(mp, os.O_RDONLY)
        try:
            data = img.read_bytes()
            for off in (0, 12345, 2 * MiB - 7, 3 * MiB + 4000):
                assert os.pread(fd, 1000, off) == data[off:off + 1000]
        finally:
            os.close(fd)
        assert read_all(mp) == img.read_bytes()
    finally:
        export_cleanup(qmp, mp)
        del_nodes(qmp, "h")


def test_qcow2_image_over_https_reads_as_the_image(qmp, tmp_path, www, https_server, mp):
    src = random_image(tmp_path / "src.raw", 4 * MiB)
    qcow = www / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(qcow)],
                   check=True)
    add_http_node(qmp, "h", f"{https_server.url}/disk.qcow2", sslverify=False)
    qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": "q"}, file="h",
            **{"read-only": True})
    try:
        add_export(qmp, "e", "q", mp)
        assert read_all(mp) == src.read_bytes()
    finally:
        export_cleanup(qmp, mp)
        del_nodes(qmp, "q", "h")


def test_local_qcow2_overlay_over_a_backing_file_on_https(qmp, tmp_path, www,
                                                          https_server, mp):
    base = random_image(www / "golden.raw", 2 * MiB)
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(overlay), str(2 * MiB)],
                   check=True, capture_output=True)
    add_http_node(qmp, "golden", f"{https_server.url}/golden.raw", sslverify=False)
    add_file_node(qmp, "ovf", overlay)
    qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": "ov"}, file="ovf",
            backing="golden")
    try:
        add_export(qmp, "e", "ov", mp, writable=True)
        with open(mp, "r+b") as f:
            f.seek(4096)
            f.write(b"mine" * 1024)
            f.flush()
            os.fsync(f.fileno())
        got = read_all(mp)
        expect = bytearray(base.read_bytes())
        expect[4096:8192] = b"mine" * 1024
        assert got == bytes(expect)
    finally:
        export_cleanup(qmp, mp)
        del_nodes(qmp, "ov", "ovf", "golden")
    subprocess.run(["qemu-img", "check", str(overlay)], check=True, capture_output=True)


def test_self_signed_certificate_is_refused_unless_sslverify_is_off(qmp, www,
                                                                    https_server):
    random_image(www / "disk.raw", MiB)
    with pytest.raises(QMPError) as exc:
        add_http_node(qmp, "h", f"{https_server.url}/disk.raw")
    assert "CURL: Error opening file:" in str(exc.value)
    assert "certificate" in str(exc.value).lower()
    assert qmp.cmd("query-named-block-nodes") == []


def test_cookie_is_sent_with_every_request(qmp, www, http_server, mp):
    img = random_image(www / "private" / "disk.raw", MiB)
    with pytest.raises(QMPError) as exc:
        add_http_node(qmp, "h", f"{http_server.url}/private/disk.raw")
    assert "HTTP status 403" in str(exc.value)
    add_http_node(qmp, "h", f"{http_server.url}/private/disk.raw", cookie="session=letmein")
    try:
        add_export(qmp, "e", "h", mp)
        assert read_all(mp) == img.read_bytes()
    finally:
        export_cleanup(qmp, mp)
        del_nodes(qmp, "h")


def test_server_gone_gives_eio_and_the_export_stays(qmp, www, http_server, mp):
    img = random_image(www / "disk.raw", 4 * MiB)
    add_http_node(qmp, "h", f"{http_server.url}/disk.raw", readahead=0)
    try:
        add_export(qmp, "e", "h", mp)
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 65536)
        try:
            assert os.preadv(fd, [buf], 0) == 65536
            assert buf[:] == img.read_bytes()[:65536]
            http_server.kill()
            with pytest.raises(OSError) as exc:
                os.preadv(fd, [buf], MiB)
            assert exc.value.errno == errno.EIO
        finally:
            buf.close()
            os.close(fd)
        assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["e"]
    finally:
        export_cleanup(qmp, mp)
        del_nodes(qmp, "h")


def test_no_server_is_a_clear_error(qmp):
    port = free_port()
    with pytest.raises(QMPError) as exc:
        add_http_node(qmp, "h", f"http://127.0.0.1:{port}/disk.raw")
    assert "CURL: Error opening file:" in str(exc.value)
    assert "127.0.0.1" in str(exc.value)


def test_missing_file_is_a_clear_error(qmp, http_server):
    with pytest.raises(QMPError) as exc:
        add_http_node(qmp, "h", f"{http_server.url}/nosuch.raw")
    assert "HTTP status 404" in str(exc.value)


def test_writable_node_is_refused_as_qemu_does(qmp, www, http_server):
    random_image(www / "disk.raw", MiB)
    with pytest.raises(QMPError) as exc:
        qmp.cmd("blockdev-add", driver="http", **{"node-name": "h"},
                url=f"{http_server.url}/disk.raw")
    assert "curl block device does not support writes" in str(exc.value)


@pytest.mark.parametrize("opts, message", [
    ({"readahead": 1000}, "HTTP_READAHEAD_SIZE 1000 is not a multiple of 512"),
    ({"timeout": -1}, "timeout parameter is too large or negative"),
    ({"timeout": 10001}, "timeout parameter is too large or negative"),
    ({"password-secret": "s0"}, "'password-secret' is not supported"),
])
def test_bad_options_get_qemus_errors(qmp, opts, message):
    with pytest.raises(QMPError) as exc:
        add_http_node(qmp, "h", "http://127.0.0.1:1/disk.raw", **opts)
    assert message in str(exc.value)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x/"])
def test_urls_other_than_http_are_refused(qmp, url):
    with pytest.raises(QMPError) as exc:
        add_http_node(qmp, "h", url)
    assert f"URL '{url}' is not http:// or https://" in str(exc.value)
