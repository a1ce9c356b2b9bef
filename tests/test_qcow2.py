"""qcow2 images through a real exportd and real FUSE exports, with qemu-img
as the oracle: images made by qemu-img read back byte-identical, writes
through an export leave images that `qemu-img check` finds clean and
`qemu-img compare` finds equal to a raw reference, concurrent overlapping
writes land where they belong, and a kill -9 in the middle of a random
write load leaves a consistent image holding every fsync'd byte."""

import os
import random
import signal
import subprocess
import threading

import pytest

from harness import Daemon, QMPError, unmount_all_under, wait_until

MiB = 1 << 20


def qemu_img(*args, check=True):
    return subprocess.run(["qemu-img"] + [str(a) for a in args], capture_output=True,
                          text=True, check=check, timeout=120)


def write_raw(path, size, seed):
    """A raw image of data runs and zero runs (so that converted images have holes)."""
    rnd = random.Random(seed)
    out = bytearray(size)
    for off in range(0, size, 64 * 1024):
        n = min(64 * 1024, size - off)
        if rnd.random() < 0.6:
            out[off:off + n] = rnd.randbytes(n)
    path.write_bytes(bytes(out))
    return bytes(out)


def add_qcow2(qmp, name, path, read_only=False, **extra):
    args = {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": str(path)}}
    if read_only:
        args["read-only"] = True
    args.update(extra)
    qmp.cmd("blockdev-add", **args)


def export(qmp, exp_id, node, mountpoint, writable=False, growable=False):
    mountpoint.touch()
    extra = {"growable": True} if growable else {}
    try:
        qmp.cmd("block-export-add", type="fuse", id=exp_id, **{"node-name": node},
                mountpoint=str(mountpoint), writable=writable, **extra)
    except QMPError as e:
        if e.cls == "CommandNotFound":
            pytest.skip("block-export-add is not in this build, so FUSE exports cannot "
                        "be tested")
        raise


def unexport(qmp, exp_id):
    qmp.cmd("block-export-del", id=exp_id)
    qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10)


def check_clean(img, allow_leaks=False):
    # Exit status 3: leaked clusters only; 2: corruption.
    r = qemu_img("check", img, check=False)
    ok = (0, 3) if allow_leaks else (0,)
    assert r.returncode in ok, f"qemu-img check {img}: {r.returncode}\n{r.stdout}{r.stderr}"


def compare_raw(img, raw):
    r = qemu_img("compare", "-f", "qcow2", "-F", "raw", img, raw, check=False)
    assert r.returncode == 0, f"qemu-img compare: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("opts,compress", [
    ("cluster_size=64k", False),
    ("cluster_size=512,compat=0.10", False),
    ("cluster_size=2M,refcount_bits=1", False),
    ("cluster_size=64k", True),
    ("cluster_size=4k,compression_type=zstd", True),
])
def test_read_back_identical(qmp, tmp_path, opts, compress):
    raw = tmp_path / "r.raw"
    img = tmp_path / "r.qcow2"
    data = write_raw(raw, 5 * MiB + 4096, seed=len(opts))
    qemu_img("convert", *(["-c"] if compress else []), "-f", "raw", "-O", "qcow2",
             "-o", opts, raw, img)
    add_qcow2(qmp, "q", img, read_only=True)
    mp = tmp_path / "q.fuse"
    export(qmp, "e", "q", mp)
    try:
        assert mp.read_bytes() == data
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})


def test_read_backing_chain_depth3(qmp, tmp_path):
    base = tmp_path / "base.raw"
    write_raw(base, 4 * MiB, seed=5)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
             tmp_path / "l1.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "l1.qcow2", "-F", "qcow2",
             tmp_path / "l2.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "l2.qcow2",
             "-F", "qcow2", tmp_path / "top.qcow2", "5M")
    for img, cmds in (("l1.qcow2", ["write -P 1 100000 200000"]),
                      ("l2.qcow2", ["write -P 2 250000 70000", "write -z 1000000 65536"]),
                      ("top.qcow2", ["write -P 3 0 4096", "write -P 4 4300000 9000"])):
        args = ["qemu-io", "-f", "qcow2"]
        for c in cmds:
            args += ["-c", c]
        subprocess.run(args + [str(tmp_path / img)], check=True, capture_output=True)
    ref = tmp_path / "ref.raw"
    qemu_img("convert", "-O", "raw", tmp_path / "top.qcow2", ref)
    add_qcow2(qmp, "top", tmp_path / "top.qcow2", read_only=True)
    nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    assert nodes["top"]["backing_file_depth"] == 3
    assert nodes["top"]["image"]["cluster-size"] == 4096
    assert nodes["top"]["image"]["backing-filename"] == "l2.qcow2"
    mp = tmp_path / "top.fuse"
    export(qmp, "e", "top", mp)
    try:
        assert mp.read_bytes() == ref.read_bytes()
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "top"})


@pytest.mark.parametrize("opts", ["cluster_size=64k", "cluster_size=512,compat=0.10"])
def test_writes_then_check_and_compare(qmp, tmp_path, opts):
    raw = tmp_path / "w.raw"
    img = tmp_path / "w.qcow2"
    size = 6 * MiB
    ref = bytearray(write_raw(raw, size, seed=11))
    qemu_img("convert", "-f", "raw", "-O", "qcow2", "-o", opts, raw, img)
    add_qcow2(qmp, "q", img)
    mp = tmp_path / "w.fuse"
    export(qmp, "e", "q", mp, writable=True)
    rnd = random.Random(17)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            for i in range(300):
                off = rnd.randrange(0, size - 1)
                n = min(rnd.choice([1, 511, 4096, 65536, 200000]), size - off)
                buf = rnd.randbytes(n)
                assert os.pwrite(fd, buf, off) == n
                ref[off:off + n] = buf
                if i % 64 == 0:
                    os.fsync(fd)
            os.fsync(fd)
            assert os.pread(fd, size, 0) == bytes(ref)
        finally:
            os.close(fd)
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    raw.write_bytes(bytes(ref))
    check_clean(img)
    compare_raw(img, raw)


def test_concurrent_overlapping_writes(qmp, tmp_path):
    """Threads write interleaved sectors of the same clusters of a fresh image
    over a backing file: every cluster is allocated by several writers at once."""
    base = tmp_path / "b.raw"
    img = tmp_path / "c.qcow2"
    size = 4 * MiB
    write_raw(base, size, seed=23)
    qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", img)
    add_qcow2(qmp, "q", img)
    mp = tmp_path / "c.fuse"
    export(qmp, "e", "q", mp, writable=True)
    nthreads = 4
    errors = []

    def writer(t):
        try:
            fd = os.open(mp, os.O_RDWR)
            try:
                for rnd_pass in range(2):
                    for off in range(t * 512, size, nthreads * 512):
                        os.pwrite(fd, bytes([t + 1 + rnd_pass * 16]) * 512, off)
                os.fsync(fd)
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    try:
        threads = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        expect = b"".join(bytes([(s % nthreads) + 1 + 16]) * 512 for s in range(size // 512))
        assert mp.read_bytes() == expect
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    ref = tmp_path / "ref.raw"
    ref.write_bytes(expect)
    check_clean(img)
    compare_raw(img, ref)


def test_crash_kill9_keeps_fsynced_data(tmp_path):
    """kill -9 during random writes with fsyncs: the image may leak clusters
    but is never corrupt, and every byte fsync'd before the kill is there."""
    img = tmp_path / "k.qcow2"
    size = 8 * MiB
    block = 4096
    nblocks = size // block
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", img, size)
    durable = {}     # block -> its value as of the last completed fsync
    since = {}       # block -> values written (or in flight) since then
    latest = {}      # block -> last value written
    d = Daemon(tmp_path / "d")
    d.start()
    try:
        qmp = d.new_client()
        add_qcow2(qmp, "q", img)
        mp = tmp_path / "k.fuse"
        export(qmp, "e", "q", mp, writable=True)
        stop = threading.Event()
        fsyncs = []

        def load():
            rnd = random.Random(29)
            try:
                fd = os.open(mp, os.O_RDWR)
            except OSError:
                return
            try:
                i = 0
                while not stop.is_set():
                    b = rnd.randrange(nblocks)
                    vals = [rnd.randrange(1, 256) for _ in range(min(rnd.choice([1, 3, 17]),
                                                                     nblocks - b))]
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
        # Kill mid-stream: after ten fsyncs, with writes since the last one.
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
    check_clean(img, allow_leaks=True)
    ref = tmp_path / "after.raw"
    qemu_img("convert", "-O", "raw", img, ref)
    data = ref.read_bytes()
    for blk in set(durable) | set(since):
        got = data[blk * block]
        allowed = {durable.get(blk, 0)} | since.get(blk, set())
        assert got in allowed, f"block {blk} holds {got}, expected one of {allowed}"
        assert data[blk * block:(blk + 1) * block] == bytes([got]) * block, f"block {blk} torn"


def test_growable_export_grows_the_image(qmp, tmp_path):
    """Writes past the end of a growable export resize the qcow2 image, across
    L1 growth, and the grown image stays clean and equal to the reference."""
    img = tmp_path / "g.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", img, "1M")
    add_qcow2(qmp, "q", img)
    mp = tmp_path / "g.fuse"
    mp.touch()
    try:
        qmp.cmd("block-export-add", type="fuse", id="e", **{"node-name": "q"},
                mountpoint=str(mp), writable=True, growable=True)
    except QMPError as e:
        if e.cls == "CommandNotFound":
            pytest.skip("block-export-add is not in this build")
        raise
    ref = bytearray(1 * MiB)
    rnd = random.Random(41)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            for off in (MiB - 100, 3 * MiB + 5, 9 * MiB + 4096):
                buf = rnd.randbytes(70000)
                assert os.pwrite(fd, buf, off) == len(buf)
                if len(ref) < off + len(buf):
                    ref.extend(bytes(off + len(buf) - len(ref)))
                ref[off:off + len(buf)] = buf
            os.fsync(fd)
            assert os.fstat(fd).st_size >= len(ref)
            got = os.pread(fd, len(ref), 0)
            assert got == bytes(ref)
        finally:
            os.close(fd)
    finally:
        unexport(qmp, "e")
    qmp.cmd("blockdev-del", **{"node-name": "q"})
    raw = tmp_path / "g.raw"
    raw.write_bytes(bytes(ref))
    check_clean(img)
    compare_raw(img, raw)
