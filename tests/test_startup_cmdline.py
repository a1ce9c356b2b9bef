"""qemu-storage-daemon's command line runs unchanged with exportd:
--blockdev and --export in key=value and JSON form, validated by the same
schema as QMP; a failing start-up leaves no mount behind (issue: FUSE
exports).  Started that way, it is as quiet as qsd and owns no socket but
those its command line asks for (issue 23)."""

import filecmp
import json
import os
import signal
import subprocess
import time

from harness import (Daemon, QMPClient, build_path, fuse_mounts, make_pattern_image,
                     unmount_all_under)


def start(tmp_path, args):
    d = Daemon(tmp_path / "d")
    d.start(args)
    return d


def test_keyval_blockdev_and_export_serve_the_image(tmp_path):
    img = make_pattern_image(tmp_path / "x.img", 4 << 20)
    mnt = tmp_path / "m.raw"
    mnt.touch()
    d = start(tmp_path, [
        "--blockdev", f"driver=file,node-name=f,filename={img}",
        "--export", f"type=fuse,id=e,node-name=f,mountpoint={mnt},writable=on"])
    try:
        assert str(mnt) in fuse_mounts()
        assert filecmp.cmp(img, mnt, shallow=False)
        exports = d.new_client().cmd("query-block-exports")
        assert [e["id"] for e in exports] == ["e"]
        assert d.stop() == 0
        assert str(mnt) not in fuse_mounts()
    finally:
        d.cleanup()


def test_json_form_of_blockdev_and_export(tmp_path):
    img = make_pattern_image(tmp_path / "x.img", 1 << 20)
    mnt = tmp_path / "m.raw"
    mnt.touch()
    d = start(tmp_path, [
        "--blockdev", json.dumps({"driver": "file", "node-name": "f", "filename": str(img)}),
        "--blockdev", json.dumps({"driver": "raw", "node-name": "r", "file": "f"}),
        "--export", json.dumps({"type": "fuse", "id": "e", "node-name": "r",
                                "mountpoint": str(mnt)})])
    try:
        assert filecmp.cmp(img, mnt, shallow=False)
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_failing_export_at_startup_exits_1_and_unmounts_earlier_ones(tmp_path):
    img = make_pattern_image(tmp_path / "x.img", 1 << 20)
    good = tmp_path / "good.raw"
    good.touch()
    r = subprocess.run([
        build_path("exportd"), "--socket", str(tmp_path / "s"),
        "--blockdev", f"driver=file,node-name=f,filename={img}",
        "--export", f"type=fuse,id=e1,node-name=f,mountpoint={good}",
        "--export", f"type=fuse,id=e2,node-name=f,mountpoint={tmp_path}/missing.raw"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "--export: Failed to stat" in r.stderr
    assert str(good) not in fuse_mounts()
    assert not (tmp_path / "s").exists()


def test_keyval_type_errors_name_the_option(tmp_path):
    r = subprocess.run([
        build_path("exportd"), "--socket", str(tmp_path / "s"),
        "--export", "type=fuse,id=e,node-name=f,mountpoint=m,writable=perhaps"],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "--export: Parameter 'writable' expects 'on' or 'off'" in r.stderr


def test_sigterm_unmounts_every_export(tmp_path):
    img = make_pattern_image(tmp_path / "x.img", 1 << 20)
    mnts = []
    args = ["--blockdev", f"driver=file,node-name=f,filename={img},read-only=on"]
    for i in range(3):
        m = tmp_path / f"m{i}.raw"
        m.touch()
        mnts.append(str(m))
        args += ["--export", f"type=fuse,id=e{i},node-name=f,mountpoint={m}"]
    d = start(tmp_path, args)
    try:
        assert all(m in fuse_mounts() for m in mnts)
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
        assert not any(m in fuse_mounts() for m in mnts)
        assert all(os.path.getsize(m) == 0 for m in mnts)
    finally:
        d.cleanup()


def test_implied_keys_as_qsd(tmp_path):
    """qsd's implied first keys: --blockdev DRIVER,..., --export TYPE,...,
    --object QOM-TYPE,..., --chardev BACKEND,..., --monitor CHARDEV."""
    img = make_pattern_image(tmp_path / "x.img", 1 << 20)
    mnt = tmp_path / "m.raw"
    mnt.touch()
    sock = tmp_path / "qmp.sock"
    d = Daemon(tmp_path / "d")
    d.socket_path = str(sock)
    d.start(["--object", "iothread,id=t",
             "--chardev", f"socket,id=m,path={sock},server=on,wait=off",
             "--monitor", "m",
             "--blockdev", f"file,node-name=f,filename={img}",
             "--blockdev", "raw,file=f,node-name=r",
             "--export", f"fuse,id=e,node-name=r,mountpoint={mnt}"], socket_arg=False)
    try:
        assert filecmp.cmp(img, mnt, shallow=False)
        nodes = {n["node-name"]: n["drv"] for n in d.new_client().cmd("query-named-block-nodes")}
        assert nodes == {"f": "file", "r": "raw"}
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_only_the_first_element_may_imply_its_key(tmp_path):
    r = subprocess.run([
        build_path("exportd"), "--socket", str(tmp_path / "s"),
        "--blockdev", "node-name=n,raw"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "--blockdev: Expected '=' after parameter 'raw'" in r.stderr


def wait_mounted(proc, mnt, stderr_path, timeout=15.0):
    """Readiness of a daemon without a socket: its export is mounted."""
    deadline = time.monotonic() + timeout
    while str(mnt) not in fuse_mounts():
        if proc.poll() is not None:
            raise AssertionError(f"exportd exited with {proc.returncode}: "
                                 f"{open(stderr_path).read()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"exportd did not mount {mnt} within {timeout}s")
        time.sleep(0.02)


def start_qsd_style(tmp_path, name, args):
    err = tmp_path / f"{name}.stderr"
    with open(err, "wb") as f:
        proc = subprocess.Popen([build_path("exportd")] + args, stdout=f, stderr=f,
                                stdin=subprocess.DEVNULL)
    return proc, err


def test_started_as_qsd_prints_nothing_on_stderr(tmp_path):
    img = make_pattern_image(tmp_path / "x.img", 1 << 20)
    mnt = tmp_path / "m.raw"
    mnt.touch()
    sock = tmp_path / "qmp.sock"
    proc, err = start_qsd_style(tmp_path, "d", [
        "--chardev", f"socket,id=m,path={sock},server=on,wait=off", "--monitor", "m",
        "--blockdev", f"file,node-name=f,filename={img}",
        "--export", f"fuse,id=e,node-name=f,mountpoint={mnt}"])
    try:
        wait_mounted(proc, mnt, err)
        with QMPClient(str(sock)) as c:
            c.cmd("block-export-del", id="e")
            c.wait_event("BLOCK_EXPORT_DELETED")
            c.cmd("quit")
        assert proc.wait(timeout=20) == 0
        assert err.read_text() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        unmount_all_under(str(tmp_path))


def test_several_socketless_qsd_style_daemons_run_at_once(tmp_path):
    """No --socket and no --monitor: as qsd, no QMP socket at all, so a
    second daemon does not fight the first for a default one."""
    procs = []
    try:
        for i in range(2):
            img = make_pattern_image(tmp_path / f"x{i}.img", 1 << 20, seed=i)
            mnt = tmp_path / f"m{i}.raw"
            mnt.touch()
            procs.append(start_qsd_style(tmp_path, f"d{i}", [
                "--blockdev", f"file,node-name=f,filename={img}",
                "--export", f"fuse,id=e,node-name=f,mountpoint={mnt}"]) + (img, mnt))
        for proc, err, img, mnt in procs:
            wait_mounted(proc, mnt, err)
            assert filecmp.cmp(img, mnt, shallow=False)
        for proc, err, img, mnt in procs:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert err.read_text() == ""
            assert str(mnt) not in fuse_mounts()
    finally:
        for proc, *_ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        unmount_all_under(str(tmp_path))


def test_log_level_brings_the_info_lines_back(tmp_path):
    sock = tmp_path / "qmp.sock"
    proc, err = start_qsd_style(tmp_path, "d", [
        "--log-level", "info",
        "--chardev", f"socket,id=m,path={sock},server=on,wait=off", "--monitor", "m"])
    try:
        deadline = time.monotonic() + 15
        while "ready" not in err.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "no 'ready' line within 15s"
            time.sleep(0.02)
        with QMPClient(str(sock)) as c:
            c.cmd("quit")
        assert proc.wait(timeout=20) == 0
        assert "exportd: info: " in err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
