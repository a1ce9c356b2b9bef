"""LUKS through a real exportd and real FUSE exports, with qemu-img as the
oracle: LUKS1 images (`-f luks`, several ciphers) and qcow2 images with
`encrypt.format=luks`, unlocked with a secret object, read back equal to
`qemu-img convert --image-opts ... -O raw`; writes through an export leave
images that `qemu-img check` finds clean and `qemu-img compare` finds equal
to a raw reference; a wrong passphrase and the old qcow2 AES get QEMU's
errors and the daemon keeps running; kill -9 under writes to an encrypted
qcow2 keeps the image consistent and every fsync'd byte."""

import base64
import os
import random
import signal
import subprocess
import threading

import pytest

from harness import Daemon, QMPError, build_path, unmount_all_under, wait_until

MiB = 1 << 20
PASS = "open sesame"
SECRET = f"secret,id=s,data={PASS}"


def qemu_img(*args, check=True):
    return subprocess.run(["qemu-img"] + [str(a) for a in args], capture_output=True,
                          text=True, check=check, timeout=300)


def make_encrypted(raw, img, fmt, opts=""):
    """qemu-img convert to luks or qcow2+luks.  Key setup benchmarks PBKDF2
    against the thread's CPU clock and fails ("Unable to get accurate CPU
    usage") when a busy VM's clock reads 0 ms: a small fixed iter-time and a
    bounded number of tries (as tests/unit/test-qcow2-io.c)."""
    prefix = "encrypt." if fmt == "qcow2" else ""
    o = f"{prefix}key-secret=s,{prefix}iter-time=10"
    if fmt == "qcow2":
        o = "encrypt.format=luks," + o
    if opts:
        o += "," + opts
    for _ in range(10):
        r = qemu_img("convert", "-f", "raw", "-O", fmt, "--object", SECRET, "-o", o,
                     raw, img, check=False)
        if r.returncode == 0:
            return
        assert "Unable to get accurate CPU usage" in r.stderr, r.stderr
    pytest.fail(f"qemu-img convert -O {fmt} failed 10 times: {r.stderr}")


def image_opts(img, fmt):
    key = "encrypt.key-secret" if fmt == "qcow2" else "key-secret"
    return f"driver={fmt},{key}=s,file.filename={img}"


def oracle_raw(img, fmt, out):
    qemu_img("convert", "--object", SECRET, "--image-opts", image_opts(img, fmt),
             "-O", "raw", out)
    return out.read_bytes()


def add_encrypted(qmp, name, img, fmt, secret="s"):
    args = {"driver": fmt, "node-name": name,
            "file": {"driver": "file", "filename": str(img)}}
    if fmt == "qcow2":
        args["encrypt"] = {"format": "luks", "key-secret": secret}
    else:
        args["key-secret"] = secret
    qmp.cmd("blockdev-add", **args)


def export(qmp, exp_id, node, mountpoint, writable=False):
    mountpoint.touch()
    qmp.cmd("block-export-add", type="fuse", id=exp_id, **{"node-name": node},
            mountpoint=str(mountpoint), writable=writable)


def unexport(qmp, exp_id):
    qmp.cmd("block-export-del", id=exp_id)
    qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10)


def random_raw(path, size, seed):
    rnd = random.Random(seed)
    out = bytearray(size)
    for off in range(0, size, 64 * 1024):
        if rnd.random() < 0.7:  # holes too
            out[off:off + 64 * 1024] = rnd.randbytes(64 * 1024)
    path.write_bytes(bytes(out))
    return bytes(out)


@pytest.mark.parametrize("fmt,opts", [
    ("luks", ""),  # QEMU's default: aes-256-xts-plain64, sha256
    ("luks", "cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256"),
    ("luks", "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=plain,hash-alg=sha1"),
    ("qcow2", ""),
    ("qcow2", "cluster_size=4k,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=xts"),
])
def test_export_reads_back_as_qemu_img_decrypts(qmp, tmp_path, fmt, opts):
    raw = tmp_path / "ref.raw"
    random_raw(raw, 4 * MiB, seed=len(opts))
    img = tmp_path / f"i.{fmt}"
    make_encrypted(raw, img, fmt, opts)
    expect = oracle_raw(img, fmt, tmp_path / "oracle.raw")
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "s", "data": PASS})
    add_encrypted(qmp, "n", img, fmt)
    mp = tmp_path / "e.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert mp.read_bytes() == expect
        nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
        assert nodes["n"]["encrypted"] is True
    finally:
        unexport(qmp, "e")


@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_writes_through_export_check_clean_and_compare(qmp, tmp_path, fmt):
    raw = tmp_path / "ref.raw"
    data = bytearray(random_raw(raw, 4 * MiB, seed=7))
    img = tmp_path / f"w.{fmt}"
    make_encrypted(raw, img, fmt, "cluster_size=4k" if fmt == "qcow2" else "")
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "s", "data": PASS})
    add_encrypted(qmp, "n", img, fmt)
    mp = tmp_path / "w.fuse"
    export(qmp, "e", "n", mp, writable=True)
    rnd = random.Random(3)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            for i in range(300):
                # Unaligned offsets and lengths: partial sectors and clusters.
                n = rnd.randrange(1, 40000)
                off = rnd.randrange(0, len(data) - n)
                buf = bytes(n) if i % 7 == 0 else rnd.randbytes(n)
                assert os.pwrite(fd, buf, off) == n
                data[off:off + n] = buf
            os.fsync(fd)
        finally:
            os.close(fd)
        assert mp.read_bytes() == bytes(data)
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "n"})
    raw.write_bytes(bytes(data))
    if fmt == "qcow2":
        r = qemu_img("check", "--object", SECRET, "--image-opts", image_opts(img, fmt),
                     check=False)
        assert r.returncode == 0, f"qemu-img check: {r.stdout}{r.stderr}"
    r = qemu_img("compare", "--object", SECRET, "--image-opts", image_opts(img, fmt),
                 f"driver=raw,file.filename={raw}", check=False)
    assert r.returncode == 0, f"qemu-img compare: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("fmt", ["luks", "qcow2"])
def test_wrong_passphrase_refused_daemon_keeps_running(qmp, tmp_path, fmt):
    raw = tmp_path / "ref.raw"
    random_raw(raw, MiB, seed=1)
    img = tmp_path / f"p.{fmt}"
    make_encrypted(raw, img, fmt)
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "bad", "data": "not it"})
    with pytest.raises(QMPError) as exc:
        add_encrypted(qmp, "n", img, fmt, secret="bad")
    assert exc.value.desc == "Invalid password, cannot unlock any keyslot"
    with pytest.raises(QMPError) as exc:
        add_encrypted(qmp, "n", img, fmt, secret="nosuch")
    assert exc.value.desc == "No secret with id 'nosuch'"
    args = {"driver": fmt, "node-name": "n",
            "file": {"driver": "file", "filename": str(img)}}
    with pytest.raises(QMPError) as exc:
        qmp.cmd("blockdev-add", **args)
    prefix = "encrypt." if fmt == "qcow2" else ""
    assert exc.value.desc == f"Parameter '{prefix}key-secret' is required for cipher"
    assert qmp.cmd("query-named-block-nodes") == []


def test_qcow2_old_aes_refused_with_qemus_message(qmp, tmp_path):
    img = tmp_path / "a.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "--object", SECRET, "-o",
             "encrypt.format=aes,encrypt.key-secret=s", img, "1M")
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "s", "data": PASS})
    with pytest.raises(QMPError) as exc:
        qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": "n"},
                file={"driver": "file", "filename": str(img)},
                encrypt={"format": "aes", "key-secret": "s"})
    assert exc.value.desc.startswith("Use of AES-CBC encrypted qcow2 images is no longer "
                                     "supported in system emulators")
    assert qmp.cmd("query-named-block-nodes") == []


def test_crash_kill9_encrypted_qcow2_keeps_fsynced_data(tmp_path):
    """qcow2's promise holds encrypted too: kill -9 during random writes may
    leak clusters but never corrupts, and every fsync'd block decrypts to
    what was written (a bare LUKS image has no metadata to keep consistent:
    it promises what the file below promises)."""
    size = 8 * MiB
    block = 4096
    nblocks = size // block
    raw = tmp_path / "zero.raw"
    raw.write_bytes(bytes(size))
    img = tmp_path / "k.qcow2"
    make_encrypted(raw, img, "qcow2", "cluster_size=4k")
    durable, since, latest = {}, {}, {}
    d = Daemon(tmp_path / "d")
    d.start()
    try:
        qmp = d.new_client()
        qmp.cmd("object-add", **{"qom-type": "secret", "id": "s", "data": PASS})
        add_encrypted(qmp, "q", img, "qcow2")
        mp = tmp_path / "k.fuse"
        export(qmp, "e", "q", mp, writable=True)
        stop = threading.Event()
        fsyncs = []

        def load():
            rnd = random.Random(31)
            try:
                fd = os.open(mp, os.O_RDWR)
            except OSError:
                return
            try:
                i = 0
                while not stop.is_set():
                    b = rnd.randrange(nblocks)
                    vals = [rnd.randrange(1, 256)
                            for _ in range(min(rnd.choice([1, 3, 17]), nblocks - b))]
                    for k, v in enumerate(vals):
                        since.setdefault(b + k, set()).add(v)
                    os.pwrite(fd, b"".join(bytes([v]) * block for v in vals), b * block)
                    for k, v in enumerate(vals):
                        latest[b + k] = v
                    i += 1
                    if i % 20 == 0:
                        os.fsync(fd)
                        for blk in since:
                            durable[blk] = latest[blk]
                        since.clear()
                        fsyncs.append(i)
            except OSError:
                pass  # the daemon died under us: expected
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass

        th = threading.Thread(target=load)
        th.start()
        wait_until(lambda: len(fsyncs) >= 10 and since or not th.is_alive(),
                   "ten fsyncs and a write after them through the export", timeout=60)
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(timeout=10)
        stop.set()
        th.join(timeout=30)
        assert len(fsyncs) >= 10, "the load did not get going before the kill"
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        unmount_all_under(str(tmp_path))
        d.cleanup()
    r = qemu_img("check", "--object", SECRET, "--image-opts", image_opts(img, "qcow2"),
                 check=False)
    assert r.returncode in (0, 3), f"qemu-img check: {r.returncode}\n{r.stdout}{r.stderr}"
    data = oracle_raw(img, "qcow2", tmp_path / "after.raw")
    for blk in set(durable) | set(since):
        got = data[blk * block]
        allowed = {durable.get(blk, 0)} | since.get(blk, set())
        assert got in allowed, f"block {blk} holds {got}, expected one of {allowed}"
        assert data[blk * block:(blk + 1) * block] == bytes([got]) * block, f"block {blk} torn"


def test_growable_luks_export_reads_zeroes_in_grown_area(qmp, tmp_path):
    """A write past the end of a growable export grows the LUKS payload; the
    sectors between the old end and the write read back as zeroes (QEMU
    leaves ciphertext of nothing there, which decrypts to noise)."""
    raw = tmp_path / "ref.raw"
    data = random_raw(raw, MiB, seed=5)
    img = tmp_path / "g.luks"
    make_encrypted(raw, img, "luks")
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "s", "data": PASS})
    add_encrypted(qmp, "n", img, "luks")
    mp = tmp_path / "g.fuse"
    mp.touch()
    qmp.cmd("block-export-add", type="fuse", id="e", **{"node-name": "n"},
            mountpoint=str(mp), writable=True, growable=True)
    tail = b"\xa5" * 4096
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            assert os.pwrite(fd, tail, 3 * MiB) == len(tail)
            os.fsync(fd)
        finally:
            os.close(fd)
        expect = data + bytes(2 * MiB) + tail
        assert mp.read_bytes() == expect
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "n"})
    assert oracle_raw(img, "luks", tmp_path / "after.raw") == expect


def test_exportctl_add_probes_luks_and_takes_key_secret(daemon, qmp, tmp_path):
    """exportctl add --image probes a LUKS image by its magic and unlocks it
    with --key-secret, the id of a secret the daemon holds from a file: the
    passphrase is never on exportctl's command line."""
    raw = tmp_path / "ref.raw"
    data = random_raw(raw, MiB, seed=9)
    img = tmp_path / "c.luks"
    make_encrypted(raw, img, "luks")
    key = tmp_path / "key"
    key.write_text(PASS)
    key.chmod(0o600)
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "k", "file": str(key)})
    mp = tmp_path / "c.fuse"
    ctl = [build_path("exportctl"), "--socket", daemon.socket_path]
    r = subprocess.run(ctl + ["add", "--mountpoint", str(mp), "--image", str(img),
                              "--key-secret", "k", "--id", "c"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
        assert nodes["c-fmt"]["drv"] == "luks"
        assert mp.read_bytes() == data
    finally:
        r = subprocess.run(ctl + ["del", "c"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    # Without the key: the daemon's message, and nothing left behind.
    r = subprocess.run(ctl + ["add", "--mountpoint", str(mp), "--image", str(img),
                              "--id", "c"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Parameter 'key-secret' is required for cipher" in r.stderr
    assert qmp.cmd("query-named-block-nodes") == []


def test_secret_encrypted_with_keyid_and_iv_unlocks_luks(qmp, tmp_path):
    """QEMU's keyid + iv: the passphrase travels AES-256-CBC encrypted under a
    32-byte master secret (openssl enc makes the ciphertext); the daemon
    decrypts it and the image unlocks with it."""
    raw = tmp_path / "ref.raw"
    data = random_raw(raw, MiB, seed=11)
    img = tmp_path / "k.luks"
    make_encrypted(raw, img, "luks")
    master, iv = bytes(range(32)), bytes(range(100, 116))
    ct = subprocess.run(["openssl", "enc", "-aes-256-cbc", "-K", master.hex(),
                         "-iv", iv.hex()], input=PASS.encode(), capture_output=True,
                        check=True).stdout
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "master", "format": "base64",
                             "data": base64.b64encode(master).decode()})
    qmp.cmd("object-add", **{"qom-type": "secret", "id": "s", "format": "base64",
                             "keyid": "master", "iv": base64.b64encode(iv).decode(),
                             "data": base64.b64encode(ct).decode()})
    add_encrypted(qmp, "n", img, "luks")
    mp = tmp_path / "k.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert mp.read_bytes() == data
    finally:
        unexport(qmp, "e")
