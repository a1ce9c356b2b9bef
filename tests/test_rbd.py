"""The rbd protocol driver against a real Ceph cluster (issue 17): a single
monitor and a memstore OSD on loopback, started once for the whole module
(tests/harness/ceph.py) and torn down at its end.  Every test makes its
own image with `rbd create`, exports it through a real FUSE mount, and
checks the bytes against what Ceph itself says (`rbd export`, `rbd info`)
or against qemu-storage-daemon's own rbd driver.  Where Ceph or the
driver is not there, the tests skip and say why."""

import errno
import glob
import json
import os
import subprocess
import uuid

import pytest

from fusetest import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, add_export, del_export,
                      expect_errno, fallocate, need, random_image)
from harness import (QSD, QSD_MISSING, Daemon, QMPError, build_path, qsd_process,
                     unmount_all_under)
from harness.ceph import CephCluster, CephUnavailable

MiB = 1 << 20


@pytest.fixture(scope="module")
def ceph(tmp_path_factory):
    cluster = CephCluster(tmp_path_factory.mktemp("ceph"))
    try:
        cluster.start()
    except CephUnavailable as e:
        cluster.stop()
        pytest.skip("no Ceph cluster can run here, so the rbd driver is not tested: %s" % e)
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def image(ceph):
    """A fresh 16 MiB image, removed afterwards."""
    name = "t-" + uuid.uuid4().hex[:10]
    ceph.create_image(name, 16 * MiB)
    yield name
    ceph.rbd("snap", "purge", "--no-progress", "%s/%s" % (ceph.pool, name), check=False)
    ceph.rbd("rm", "--no-progress", "%s/%s" % (ceph.pool, name), check=False)


def rbd_node(qmp, ceph, image, name="r", **extra):
    """blockdev-add an rbd node; skips if this build has no rbd driver."""
    opts = ceph.blockdev(image)
    opts.update(extra)
    try:
        qmp.cmd("blockdev-add", **{"node-name": name}, **opts)
    except QMPError as e:
        if "not available in this build" in e.desc:
            pytest.skip("exportd was configured without librbd: %s" % e.desc)
        raise


def write_through_rbd(ceph, image, data, tmp_path, offset=0):
    """Put data into the image with `rbd import` of a file (Ceph's own client)."""
    src = tmp_path / ("src-" + uuid.uuid4().hex[:6])
    src.write_bytes(b"\0" * offset + data)
    ceph.rbd("rm", "--no-progress", "%s/%s" % (ceph.pool, image))
    ceph.rbd("import", "--no-progress", str(src), "%s/%s" % (ceph.pool, image))
    src.unlink()


def test_export_reads_what_rbd_wrote(qmp, ceph, image, mp, tmp_path):
    src = random_image(tmp_path / "src.img", 16 * MiB, seed=3)
    ceph.rbd("rm", "--no-progress", "%s/%s" % (ceph.pool, image))
    ceph.rbd("import", "--no-progress", str(src), "%s/%s" % (ceph.pool, image))
    rbd_node(qmp, ceph, image, **{"read-only": True})
    add_export(qmp, "e", "r", mp)
    try:
        assert os.path.getsize(mp) == 16 * MiB
        with open(mp, "rb") as f, open(src, "rb") as g:
            assert f.read() == g.read()
    finally:
        del_export(qmp, "e")


def test_fio_verify_then_rbd_export_has_the_same_bytes(qmp, ceph, image, mp, tmp_path):
    need("fio")
    rbd_node(qmp, ceph, image)
    add_export(qmp, "e", "r", mp, writable=True)
    try:
        r = subprocess.run(["fio", "--name=v", f"--filename={mp}", "--rw=randwrite",
                            "--bs=4k", "--size=8M", "--direct=1", "--ioengine=libaio",
                            "--iodepth=16", "--verify=crc32c", "--verify_fatal=1",
                            "--do_verify=1", "--randrepeat=0",
                            "--output-format=terse"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(mp, "rb") as f:
            exported = f.read()
    finally:
        del_export(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "r"})
    out = tmp_path / "out.img"
    ceph.export_image(image, out)
    data = out.read_bytes()
    out.unlink()
    assert data == exported
    assert data[:8 * MiB] != b"\0" * (8 * MiB)


def test_writes_reach_the_cluster_after_fsync(qmp, ceph, image, mp, tmp_path):
    rbd_node(qmp, ceph, image)
    add_export(qmp, "e", "r", mp, writable=True)
    payload = os.urandom(MiB)
    try:
        fd = os.open(mp, os.O_WRONLY)
        try:
            os.pwrite(fd, payload, 3 * MiB + 512)
            os.fsync(fd)
        finally:
            os.close(fd)
        # Read by Ceph's own client while exportd still has the image open.
        out = tmp_path / "out.img"
        ceph.export_image(image, out)
        data = out.read_bytes()
        out.unlink()
        assert data[3 * MiB + 512:4 * MiB + 512] == payload
    finally:
        del_export(qmp, "e")


def test_punch_hole_reads_back_zeroes(qmp, ceph, image, mp, tmp_path):
    write_through_rbd(ceph, image, b"\xa5" * (16 * MiB), tmp_path)
    rbd_node(qmp, ceph, image, discard="unmap")
    add_export(qmp, "e", "r", mp, writable=True)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            # Unaligned on both ends, across an object boundary (4 MiB).
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * MiB - 1000, MiB + 3000)
            assert os.pread(fd, MiB + 3000, 4 * MiB - 1000) == b"\0" * (MiB + 3000)
            assert os.pread(fd, 1, 4 * MiB - 1001) == b"\xa5"
            assert os.pread(fd, 1, 5 * MiB + 2000) == b"\xa5"
        finally:
            os.close(fd)
    finally:
        del_export(qmp, "e")
    out = tmp_path / "out.img"
    ceph.export_image(image, out)
    data = out.read_bytes()
    out.unlink()
    assert data[4 * MiB - 1000:5 * MiB + 2000] == b"\0" * (MiB + 3000)


def test_snapshot_is_read_only_and_keeps_old_data(qmp, ceph, image, mp, tmp_path):
    old = os.urandom(MiB)
    write_through_rbd(ceph, image, old, tmp_path)
    ceph.rbd("snap", "create", "%s/%s@s1" % (ceph.pool, image))
    # Overwrite the head with Ceph's own client after the snapshot.
    ceph.rbd("bench", "--io-type", "write", "--io-size", "4096", "--io-total", "1M",
             "--io-pattern", "seq", "%s/%s" % (ceph.pool, image))
    head = tmp_path / "head.img"
    ceph.export_image(image, head)
    assert head.read_bytes()[:MiB] != old
    head.unlink()
    with pytest.raises(QMPError) as exc:
        rbd_node(qmp, ceph, image, snapshot="s1")
    assert exc.value.desc == "rbd snapshots are read-only"
    rbd_node(qmp, ceph, image, snapshot="s1", **{"read-only": True})
    add_export(qmp, "e", "r", mp)
    try:
        with open(mp, "rb") as f:
            assert f.read(MiB) == old
        expect_errno(errno.EROFS, os.open, mp, os.O_WRONLY)
    finally:
        del_export(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "r"})
    # auto-read-only opens the snapshot read-only instead of failing.
    rbd_node(qmp, ceph, image, name="a", snapshot="s1", **{"auto-read-only": True})
    nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    assert nodes["a"]["ro"] is True


def test_growable_export_resizes_the_image(qmp, ceph, image, mp):
    rbd_node(qmp, ceph, image)
    add_export(qmp, "e", "r", mp, writable=True, growable=True)
    try:
        os.truncate(mp, 24 * MiB)
        assert ceph.image_size(image) == 24 * MiB
        fd = os.open(mp, os.O_WRONLY)
        try:
            os.pwrite(fd, b"tail", 30 * MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
        assert ceph.image_size(image) == 30 * MiB + 4
        assert os.path.getsize(mp) == 30 * MiB + 4
    finally:
        del_export(qmp, "e")


def test_resize_by_another_client_is_seen(qmp, ceph, image, mp):
    rbd_node(qmp, ceph, image, **{"read-only": True})
    add_export(qmp, "e", "r", mp)
    try:
        ceph.rbd("resize", "--no-progress", "--size", "32M", "%s/%s" % (ceph.pool, image))
        nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
        assert nodes["r"]["image"]["virtual-size"] == 32 * MiB
    finally:
        del_export(qmp, "e")


@pytest.mark.parametrize("extra,message", [
    ({"pool": "nopool"}, "error opening pool nopool: No such file or directory"),
    ({"image": "noimage"}, "error reading header from noimage: No such file or directory"),
    ({"namespace": "nons"}, "namespace 'nons' does not exist"),
    ({"conf": "/nonexistent/ceph.conf"},
     "error reading conf file /nonexistent/ceph.conf: No such file or directory"),
])
def test_bad_location_is_a_clear_error(qmp, ceph, image, extra, message):
    opts = ceph.blockdev(image)
    opts.update(extra)
    with pytest.raises(QMPError) as exc:
        rbd_node(qmp, ceph, opts.pop("image"), **opts)
    assert exc.value.desc == message
    assert qmp.cmd("query-named-block-nodes") == []


def test_wrong_user_fails_to_connect(qmp, ceph, image):
    with pytest.raises(QMPError) as exc:
        rbd_node(qmp, ceph, image, user="nosuchuser")
    assert exc.value.desc.startswith("error connecting: ")
    assert qmp.cmd("query-version")


def test_auth_client_required_none_is_refused_by_a_cephx_cluster(qmp, ceph, image):
    with pytest.raises(QMPError) as exc:
        rbd_node(qmp, ceph, image, **{"auth-client-required": ["none"]})
    assert exc.value.desc.startswith("error connecting: ")
    rbd_node(qmp, ceph, image, **{"auth-client-required": ["cephx", "none"]})


def test_server_list_replaces_mon_host(qmp, ceph, image, tmp_path):
    # A configuration without mon_host: only 'server' says where the monitor is.
    conf = tmp_path / "nomon.conf"
    conf.write_text("[global]\nkeyring = %s\nms_bind_msgr1 = false\n" % ceph.keyring)
    rbd_node(qmp, ceph, image, conf=str(conf),
             server=[{"host": "127.0.0.1", "port": str(ceph.port)}])
    nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    assert nodes["r"]["file"] == "rbd:%s/%s" % (ceph.pool, image)


def test_qcow2_on_rbd(qmp, ceph, image, mp, tmp_path):
    need("qemu-img")
    local = tmp_path / "l.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(local), "16M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -P 0x5c 1M 2M", str(local)], check=True,
                   capture_output=True)
    ceph.rbd("rm", "--no-progress", "%s/%s" % (ceph.pool, image))
    ceph.rbd("import", "--no-progress", str(local), "%s/%s" % (ceph.pool, image))
    qmp.cmd("blockdev-add", **{"node-name": "q", "driver": "qcow2",
                               "file": ceph.blockdev(image)})
    add_export(qmp, "e", "q", mp, writable=True)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            assert os.pread(fd, 2 * MiB, MiB) == b"\x5c" * (2 * MiB)
            assert os.pread(fd, MiB, 0) == b"\0" * MiB
            os.pwrite(fd, b"\x77" * MiB, 10 * MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        del_export(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    out = tmp_path / "out.qcow2"
    ceph.export_image(image, out)
    r = subprocess.run(["qemu-img", "check", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["qemu-io", "-c", "read -P 0x77 10M 1M", "-c", "read -P 0x5c 1M 2M",
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "Pattern verification failed" not in r.stdout, r.stdout
    out.unlink()


def test_local_qcow2_overlay_on_an_rbd_backing_image(qmp, ceph, image, mp, tmp_path):
    need("qemu-img")
    golden = os.urandom(2 * MiB)
    write_through_rbd(ceph, image, golden, tmp_path)
    overlay = tmp_path / "o.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(overlay), "16M"], check=True)
    qmp.cmd("blockdev-add", **{"node-name": "o", "driver": "qcow2",
                               "file": {"driver": "file", "filename": str(overlay)},
                               "backing": ceph.blockdev(image, **{"read-only": True})})
    add_export(qmp, "e", "o", mp, writable=True)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            assert os.pread(fd, 2 * MiB, 0) == golden
            os.pwrite(fd, b"\x11" * 4096, 8192)
            os.fsync(fd)
            assert os.pread(fd, 4096, 8192) == b"\x11" * 4096
        finally:
            os.close(fd)
    finally:
        del_export(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "o"})
    # The golden image is untouched; the write went to the local overlay.
    out = tmp_path / "gold.img"
    ceph.export_image(image, out)
    assert out.read_bytes()[:2 * MiB] == golden
    out.unlink()
    r = subprocess.run(["qemu-img", "check", str(overlay)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["qemu-io", "-c", "read -P 0x11 8k 4k", str(overlay)],
                       capture_output=True, text=True)
    assert "Pattern verification failed" not in r.stdout, r.stdout


def test_qsd_command_line_runs_unchanged(ceph, image, tmp_path):
    mnt = tmp_path / "m.raw"
    mnt.touch()
    data = os.urandom(MiB)
    write_through_rbd(ceph, image, data, tmp_path)
    args = ["--blockdev", "driver=rbd,node-name=r,pool=%s,image=%s,conf=%s,read-only=on"
            % (ceph.pool, image, ceph.conf),
            "--export", "type=fuse,id=e,node-name=r,mountpoint=%s" % mnt]
    d = Daemon(tmp_path / "d")
    try:
        d.start(args)
        with open(mnt, "rb") as f:
            assert f.read(MiB) == data
        assert d.stop() == 0
    finally:
        d.cleanup()
        unmount_all_under(str(tmp_path))


def test_reads_match_qemu_storage_daemon(qmp, ceph, image, mp, tmp_path):
    if QSD is None:
        pytest.skip(QSD_MISSING)
    if not glob.glob("/usr/lib/*/qemu/block-rbd.so"):
        pytest.skip("qemu-storage-daemon has no rbd driver (package qemu-block-extra): "
                    "no reference to compare with")
    src = random_image(tmp_path / "src.img", 16 * MiB, seed=9)
    ceph.rbd("rm", "--no-progress", "%s/%s" % (ceph.pool, image))
    ceph.rbd("import", "--no-progress", str(src), "%s/%s" % (ceph.pool, image))
    src.unlink()
    qmnt = tmp_path / "q.raw"
    qmnt.touch()
    qdir = tmp_path / "qsd"
    qdir.mkdir()
    blockdev = json.dumps(ceph.blockdev(image, **{"node-name": "r", "read-only": True}))
    try:
        with qsd_process(str(qdir), ["--blockdev", blockdev, "--export",
                                     "fuse,id=e,node-name=r,mountpoint=%s" % qmnt]):
            rbd_node(qmp, ceph, image, **{"read-only": True})
            add_export(qmp, "e", "r", mp)
            try:
                with open(mp, "rb") as f, open(qmnt, "rb") as g:
                    assert f.read() == g.read()
            finally:
                del_export(qmp, "e")
    finally:
        # qsd is killed, which leaves its FUSE mount to us.
        unmount_all_under(str(qmnt))


def exportctl(daemon, *args):
    return subprocess.run([build_path("exportctl"), "--socket", daemon.socket_path] +
                          [str(a) for a in args], capture_output=True, text=True, timeout=60)


def test_exportctl_add_rbd_spec_exports_the_image(daemon, qmp, ceph, image, mp, tmp_path):
    data = os.urandom(MiB)
    write_through_rbd(ceph, image, data, tmp_path)
    ceph.rbd("snap", "create", "%s/%s@s1" % (ceph.pool, image))
    spec = "rbd:%s/%s@s1:conf=%s" % (ceph.pool, image, ceph.conf)
    r = exportctl(daemon, "--json", "add", "--fuse", "--mountpoint", mp, "--image", spec)
    if "not available in this build" in r.stderr:
        pytest.skip("exportd was configured without librbd: %s" % r.stderr)
    assert r.returncode == 0, r.stderr
    nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    rbd = [n for n in nodes.values() if n["drv"] == "rbd"]
    assert len(rbd) == 1 and rbd[0]["file"] == "rbd:%s/%s@s1" % (ceph.pool, image)
    with open(mp, "rb") as f:
        assert f.read(MiB) == data
    r = exportctl(daemon, "del", json.loads(r.stdout)["id"])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("spec,message", [
    ("rbd:noslash", "invalid --image 'rbd:noslash': the pool name is required"),
    ("rbd:p/", "invalid --image 'rbd:p/': no image name after the pool"),
    ("rbd:p/i:mon_host=127.0.0.1",
     "invalid --image 'rbd:p/i:mon_host=127.0.0.1': option 'mon_host' cannot be passed"),
    ("rbd:p/i:conf", "invalid --image 'rbd:p/i:conf': conf option conf has no value"),
])
def test_exportctl_bad_rbd_spec_is_a_usage_error(daemon, qmp, mp, spec, message):
    r = exportctl(daemon, "add", "--fuse", "--mountpoint", mp, "--image", spec)
    assert r.returncode == 2
    assert message in r.stderr
    assert qmp.cmd("query-named-block-nodes") == []


def conf_without_keyring(ceph, tmp_path):
    """A ceph.conf that reaches the cluster but holds no key."""
    conf = tmp_path / "nokey.conf"
    conf.write_text("[global]\nmon_host = v2:127.0.0.1:%d\nms_bind_msgr1 = false\n"
                    "keyring = %s\n" % (ceph.port, tmp_path / "no-keyring"))
    return str(conf)


def test_key_secret_authenticates(qmp, ceph, image, tmp_path):
    key = ceph.ceph("auth", "get-key", "client.admin").stdout.decode().strip()
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "k", "data": key,
                             "format": "base64"})
    rbd_node(qmp, ceph, image, conf=conf_without_keyring(ceph, tmp_path),
             **{"key-secret": "k"})
    assert [n["drv"] for n in qmp.cmd("query-named-block-nodes")] == ["rbd"]


def test_wrong_key_secret_fails_to_connect(qmp, ceph, image, tmp_path):
    key = ceph.ceph("auth", "get-key", "client.admin").stdout.decode().strip()
    # The same length and header, another secret: its last bytes differ.
    i = len(key.rstrip("=")) - 2
    wrong = key[:i] + ("B" if key[i] != "B" else "C") + key[i + 1:]
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "k", "data": wrong,
                             "format": "base64"})
    with pytest.raises(QMPError) as exc:
        rbd_node(qmp, ceph, image, conf=conf_without_keyring(ceph, tmp_path),
                 **{"key-secret": "k"})
    assert exc.value.desc.startswith("error connecting: ")


def test_missing_key_secret_is_named(qmp, ceph, image):
    with pytest.raises(QMPError) as exc:
        rbd_node(qmp, ceph, image, **{"key-secret": "nosuch"})
    assert exc.value.desc == "No secret with id 'nosuch'"


def test_exportctl_add_rbd_spec_writable(daemon, qmp, ceph, image, mp, tmp_path):
    spec = "rbd:%s/%s:conf=%s" % (ceph.pool, image, ceph.conf)
    r = exportctl(daemon, "--json", "add", "--fuse", "--mountpoint", mp, "--image", spec,
                  "--writable")
    assert r.returncode == 0, r.stderr
    payload = os.urandom(64 * 1024)
    fd = os.open(mp, os.O_WRONLY)
    try:
        os.pwrite(fd, payload, MiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    r = exportctl(daemon, "del", json.loads(r.stdout)["id"])
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.img"
    ceph.export_image(image, out)
    assert out.read_bytes()[MiB:MiB + len(payload)] == payload
    out.unlink()


def test_seek_data_and_hole_follow_the_image_objects(qmp, ceph, image, mp):
    # 16 MiB in 4 MiB objects; only the third one gets data.
    rbd_node(qmp, ceph, image)
    add_export(qmp, "e", "r", mp, writable=True)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            os.pwrite(fd, b"\x42" * 4096, 8 * MiB + 4096)
            os.fsync(fd)
            assert os.lseek(fd, 0, os.SEEK_DATA) == 8 * MiB
            assert os.lseek(fd, 9 * MiB, os.SEEK_DATA) == 9 * MiB
            assert os.lseek(fd, 8 * MiB, os.SEEK_HOLE) == 12 * MiB
            assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
            expect_errno(errno.ENXIO, os.lseek, fd, 12 * MiB, os.SEEK_DATA)
        finally:
            os.close(fd)
    finally:
        del_export(qmp, "e")
