"""The nbd block driver (issue 17) against real NBD servers on this
machine: qemu-nbd and nbdkit on UNIX sockets and loopback TCP, raw and
qcow2 on top, block status from the server's extents, trim and write
zeroes passed on, a server killed under load and brought back."""

import errno
import mmap
import os
import subprocess
import threading

import pytest

from fusetest import (QMPError, add_export, add_file_node, export_cleanup, fallocate,
                      random_image)
from harness.servers import free_port, nbdkit, qemu_nbd
from harness.wait import wait_until

MiB = 1 << 20


def add_nbd_node(qmp, name, sock=None, port=None, export="exp", **extra):
    server = ({"type": "unix", "path": str(sock)} if sock else
              {"type": "inet", "host": "127.0.0.1", "port": str(port)})
    qmp.cmd("blockdev-add", driver="nbd", **{"node-name": name}, server=server,
            export=export, **extra)


def read_all(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        out = bytearray()
        while True:
            buf = mmap.mmap(-1, MiB)
            n = os.readv(fd, [buf])
            out += buf[:n]
            buf.close()
            if n < MiB:
                return bytes(out)
    finally:
        os.close(fd)


def test_raw_export_of_qemu_nbd_reads_the_image(qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 4 * MiB)
    with qemu_nbd(tmp_path, img, sock=tmp_path / "nbd.sock").start():
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock")
        try:
            add_export(qmp, "e", "n", mp)
            assert os.path.getsize(mp) == 4 * MiB
            assert read_all(mp) == img.read_bytes()
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "n"})


def test_writes_reach_the_image_behind_qemu_nbd(qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 4 * MiB)
    expect = bytearray(img.read_bytes())
    with qemu_nbd(tmp_path, img, sock=tmp_path / "nbd.sock").start():
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock")
        try:
            add_export(qmp, "e", "n", mp, writable=True)
            data = os.urandom(3 * 65536)
            with open(mp, "r+b") as f:
                f.seek(MiB + 512)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            expect[MiB + 512:MiB + 512 + len(data)] = data
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "n"})
    assert img.read_bytes() == bytes(expect)


def test_nbdkit_over_tcp_uses_several_connections_when_it_allows_multi_conn(
        qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 2 * MiB)
    port = free_port()
    with nbdkit(tmp_path, ["file", f"file={img}"], tcp_port=port).start():
        add_nbd_node(qmp, "n", port=port)
        try:
            [info] = qmp.cmd("query-named-block-nodes")
            assert info["drv"] == "nbd"
            assert info["file"] == f"nbd://127.0.0.1:{port}/exp"
            assert info["x-connections"] == 4
            add_export(qmp, "e", "n", mp)
            assert read_all(mp) == img.read_bytes()
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "n"})


def test_one_connection_where_the_server_does_not_allow_multi_conn(qmp, tmp_path):
    img = random_image(tmp_path / "disk.raw", MiB)
    with nbdkit(tmp_path, ["--filter=multi-conn", "file", f"file={img}",
                           "multi-conn-mode=disable"], sock=tmp_path / "nbd.sock").start():
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock")
        try:
            [info] = qmp.cmd("query-named-block-nodes")
            assert info["x-connections"] == 1
            assert info["file"] == f"nbd+unix:///exp?socket={tmp_path}/nbd.sock"
        finally:
            qmp.cmd("blockdev-del", **{"node-name": "n"})


def test_seek_data_and_hole_follow_the_servers_extents(qmp, tmp_path, mp):
    img = tmp_path / "sparse.raw"
    with open(img, "wb") as f:
        f.truncate(8 * MiB)
        f.seek(2 * MiB)
        f.write(os.urandom(MiB))
        f.seek(6 * MiB)
        f.write(os.urandom(MiB))
    with qemu_nbd(tmp_path, img, sock=tmp_path / "nbd.sock").start():
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock")
        try:
            add_export(qmp, "e", "n", mp)
            fd = os.open(mp, os.O_RDONLY)
            try:
                assert os.lseek(fd, 0, os.SEEK_DATA) == 2 * MiB
                assert os.lseek(fd, 2 * MiB, os.SEEK_HOLE) == 3 * MiB
                assert os.lseek(fd, 3 * MiB, os.SEEK_DATA) == 6 * MiB
                assert os.lseek(fd, 6 * MiB, os.SEEK_HOLE) == 7 * MiB
            finally:
                os.close(fd)
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "n"})


def test_punch_hole_is_passed_to_the_server_as_trim(qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 4 * MiB)
    with qemu_nbd(tmp_path, img, sock=tmp_path / "nbd.sock").start():
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock", discard="unmap")
        try:
            add_export(qmp, "e", "n", mp, writable=True)
            fd = os.open(mp, os.O_RDWR)
            try:
                fallocate(fd, 0x02 | 0x01, MiB, MiB)  # PUNCH_HOLE | KEEP_SIZE
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "n"})
    data = img.read_bytes()
    assert data[MiB:2 * MiB] == bytes(MiB)
    # qemu-nbd punched the hole in the file itself: the server got a
    # trim or a write-zeroes that may unmap, not a megabyte of zeroes.
    fd = os.open(img, os.O_RDONLY)
    try:
        assert os.lseek(fd, MiB, os.SEEK_HOLE) == MiB
    finally:
        os.close(fd)


def test_qcow2_on_nbd_reads_writes_and_stays_consistent(qmp, tmp_path, mp):
    src = random_image(tmp_path / "src.raw", 4 * MiB)
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(qcow)],
                   check=True)
    expect = bytearray(src.read_bytes())
    # The server passes the qcow2 file's bytes on; exportd parses it.
    with qemu_nbd(tmp_path, qcow, fmt="raw", sock=tmp_path / "nbd.sock").start():
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock")
        qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": "q"}, file="n")
        try:
            add_export(qmp, "e", "q", mp, writable=True)
            assert read_all(mp) == bytes(expect)
            data = os.urandom(200000)
            with open(mp, "r+b") as f:
                f.seek(3 * MiB - 1000)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            expect[3 * MiB - 1000:3 * MiB - 1000 + len(data)] = data
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "q"})
            qmp.cmd("blockdev-del", **{"node-name": "n"})
    subprocess.run(["qemu-img", "check", str(qcow)], check=True, capture_output=True)
    out = tmp_path / "out.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(qcow), str(out)], check=True)
    assert out.read_bytes() == bytes(expect)


def test_local_qcow2_overlay_over_an_nbd_backing_file(qmp, tmp_path, mp):
    base = random_image(tmp_path / "base.raw", 4 * MiB)
    base_bytes = base.read_bytes()
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(overlay), str(4 * MiB)],
                   check=True, capture_output=True)
    with qemu_nbd(tmp_path, base, sock=tmp_path / "nbd.sock", read_only=True).start():
        add_nbd_node(qmp, "golden", sock=tmp_path / "nbd.sock", **{"read-only": True})
        add_file_node(qmp, "ovf", overlay)
        qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": "ov"}, file="ovf",
                backing="golden")
        try:
            add_export(qmp, "e", "ov", mp, writable=True)
            assert read_all(mp) == base_bytes
            with open(mp, "r+b") as f:
                f.seek(MiB)
                f.write(b"local" * 1000)
                f.flush()
                os.fsync(f.fileno())
            got = read_all(mp)
            assert got[MiB:MiB + 5000] == b"local" * 1000
            assert got[:MiB] == base_bytes[:MiB]
        finally:
            export_cleanup(qmp, mp)
            qmp.cmd("blockdev-del", **{"node-name": "ov"})
            qmp.cmd("blockdev-del", **{"node-name": "ovf"})
            qmp.cmd("blockdev-del", **{"node-name": "golden"})
    assert base.read_bytes() == base_bytes
    subprocess.run(["qemu-img", "check", str(overlay)], check=True, capture_output=True)


def test_no_server_is_a_clear_error(qmp, tmp_path):
    with pytest.raises(QMPError) as exc:
        add_nbd_node(qmp, "n", sock=tmp_path / "nobody.sock")
    assert f"Failed to connect to '{tmp_path}/nobody.sock'" in str(exc.value)
    assert qmp.cmd("query-named-block-nodes") == []


def test_unknown_export_name_is_a_clear_error(qmp, tmp_path):
    img = random_image(tmp_path / "disk.raw", MiB)
    with qemu_nbd(tmp_path, img, sock=tmp_path / "nbd.sock").start():
        with pytest.raises(QMPError) as exc:
            add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock", export="nosuch")
        assert "Failed to connect to" in str(exc.value)
        assert "nosuch" in str(exc.value) or "export" in str(exc.value)


def test_writable_node_on_a_read_only_export_is_refused(qmp, tmp_path):
    img = random_image(tmp_path / "disk.raw", MiB)
    with qemu_nbd(tmp_path, img, sock=tmp_path / "nbd.sock", read_only=True).start():
        with pytest.raises(QMPError) as exc:
            add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock")
        assert "NBD export is read-only" in str(exc.value)
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock", **{"auto-read-only": True})
        [info] = qmp.cmd("query-named-block-nodes")
        assert info["ro"] is True
        qmp.cmd("blockdev-del", **{"node-name": "n"})


def test_tls_creds_is_refused_not_ignored(qmp, tmp_path):
    with pytest.raises(QMPError) as exc:
        add_nbd_node(qmp, "n", sock=tmp_path / "nbd.sock", **{"tls-creds": "tls0"})
    assert "'tls-creds' is not supported" in str(exc.value)


def _read_errors_until_stopped(path, stop, errors, reads):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 65536)
    try:
        off = 0
        while not stop.is_set():
            try:
                os.preadv(fd, [buf], off)
                reads.append(off)
            except OSError as e:
                errors.append(e.errno)
            off = (off + 65536) % (4 * MiB)
    finally:
        buf.close()
        try:
            os.close(fd)
        except OSError as e:   # close flushes, and the server is gone
            errors.append(e.errno)


def test_server_killed_under_load_gives_eio_and_the_export_reconnects(
        qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 4 * MiB)
    sock = tmp_path / "nbd.sock"
    server = qemu_nbd(tmp_path, img, sock=sock).start()
    try:
        add_nbd_node(qmp, "n", sock=sock)
        add_export(qmp, "e", "n", mp, writable=True)
        # Data acknowledged before the crash must survive it.
        data = os.urandom(MiB)
        with open(mp, "r+b") as f:
            f.seek(MiB)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        stop, errors, reads = threading.Event(), [], []
        readers = [threading.Thread(target=_read_errors_until_stopped,
                                    args=(mp, stop, errors, reads)) for _ in range(4)]
        for t in readers:
            t.start()
        try:
            wait_until(lambda: len(reads) > 20, "reads through the export")
            server.kill()
            wait_until(lambda: errors, "reads to fail once the server is gone")
        finally:
            stop.set()
            for t in readers:
                t.join()
        assert set(errors) == {errno.EIO}
        assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["e"]
        server = qemu_nbd(tmp_path, img, sock=sock).start()

        def read_back():
            try:
                with open(mp, "rb") as f:
                    f.seek(MiB)
                    return f.read(MiB) == data or "mismatch"
            except OSError as e:
                assert e.errno == errno.EIO
                return False
        assert wait_until(read_back, "reads to succeed after the server returned") is True
    finally:
        export_cleanup(qmp, mp)
        try:
            qmp.cmd("blockdev-del", **{"node-name": "n"})
        except QMPError:
            pass
        server.kill()
    expect = bytearray(random_image(tmp_path / "again.raw", 4 * MiB).read_bytes())
    expect[MiB:2 * MiB] = data
    assert img.read_bytes() == bytes(expect)


def test_reconnect_delay_holds_requests_until_the_server_returns(daemon, qmp, tmp_path, mp):
    img = random_image(tmp_path / "disk.raw", 4 * MiB)
    sock = tmp_path / "nbd.sock"
    out = tmp_path / "out.raw"
    server = qemu_nbd(tmp_path, img, sock=sock).start()
    try:
        add_nbd_node(qmp, "n", sock=sock, **{"reconnect-delay": 30})
        add_export(qmp, "e", "n", mp)
        server.kill()
        # The reader is another process: a thread of ours blocked in an
        # O_DIRECT read would hold this process's memory map, and the fork
        # that starts the new server would wait for that read, which waits
        # for the server (found as a 30 s EIO, one run in two).
        reader = subprocess.Popen(["dd", f"if={mp}", f"of={out}", "bs=1M", "iflag=direct",
                                   "status=none"], stderr=subprocess.PIPE)
        # Held: the daemon is trying to reconnect for a request.
        wait_until(lambda: "reconnecting failed" in daemon.log(),
                   "exportd to hold a read while the NBD server is away")
        server = qemu_nbd(tmp_path, img, sock=sock).start()
        assert reader.wait(timeout=60) == 0, reader.stderr.read()
        assert out.read_bytes() == img.read_bytes()
    finally:
        export_cleanup(qmp, mp)
        try:
            qmp.cmd("blockdev-del", **{"node-name": "n"})
        except QMPError:
            pass
        server.kill()
