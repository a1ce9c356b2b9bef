"""The image formats other hypervisors make (vdi, vpc, vmdk, vhdx) through a
real exportd and real FUSE exports, with qemu-img as the oracle: an image
qemu-img made in each subformat reads back as `qemu-img convert -O raw` of it
does; writes through a writable export leave an image that `qemu-img check`
finds clean (where qemu-img checks the format) and that compares equal to a
raw reference; SEEK_DATA/SEEK_HOLE follow the format's block map exactly; a
corrupt header gets a clear error and the daemon keeps serving."""

import os
import random
import signal
import subprocess
import threading

import pytest

from harness import Daemon, QMPError, build_path, unmount_all_under, wait_until

MiB = 1 << 20


def qemu_img(*args, check=True):
    return subprocess.run(["qemu-img"] + [str(a) for a in args], capture_output=True,
                          text=True, check=check, timeout=120)


# (driver, qemu-img create options, block granularity of holes, does
# `qemu-img check` know the format, can we write it)
SUBFORMATS = {
    "vdi-dynamic": ("vdi", "static=off", MiB, True, True),
    "vdi-static": ("vdi", "static=on", MiB, True, True),
    "vpc-dynamic": ("vpc", "subformat=dynamic", 2 * MiB, False, True),
    "vpc-fixed": ("vpc", "subformat=fixed", 2 * MiB, False, True),
    "vpc-dynamic-force_size": ("vpc", "subformat=dynamic,force_size=on", 2 * MiB, False, True),
    "vpc-fixed-force_size": ("vpc", "subformat=fixed,force_size=on", 2 * MiB, False, True),
    "vmdk-monolithicSparse": ("vmdk", "subformat=monolithicSparse", 64 * 1024, True, True),
    "vmdk-streamOptimized": ("vmdk", "subformat=streamOptimized", 64 * 1024, True, False),
    "vmdk-monolithicFlat": ("vmdk", "subformat=monolithicFlat", 64 * 1024, True, True),
    "vmdk-twoGbMaxExtentSparse": ("vmdk", "subformat=twoGbMaxExtentSparse", 64 * 1024, True,
                                  True),
    "vmdk-twoGbMaxExtentFlat": ("vmdk", "subformat=twoGbMaxExtentFlat", 64 * 1024, True, True),
    "vhdx-dynamic": ("vhdx", "subformat=dynamic,block_size=1M", MiB, True, True),
    "vhdx-fixed": ("vhdx", "subformat=fixed,block_size=1M", MiB, True, True),
}


def write_raw(path, size, gran, seed):
    """A raw image of random data blocks and zero blocks (holes once converted),
    each `gran` bytes: data in the even blocks, zeroes in the odd ones, and a
    run of two zero blocks after the fourth so that holes span blocks."""
    rnd = random.Random(seed)
    out = bytearray(size)
    for i, off in enumerate(range(0, size, gran)):
        n = min(gran, size - off)
        if i % 2 == 0 and i != 4:
            out[off:off + n] = rnd.randbytes(n)
    path.write_bytes(bytes(out))
    return bytes(out)


def make_image(tmp_path, sub, size, seed=1):
    drv, opts, gran, _, _ = SUBFORMATS[sub]
    raw = tmp_path / "src.raw"
    img = tmp_path / f"img.{drv}"
    data = write_raw(raw, size, gran, seed)
    qemu_img("convert", "-f", "raw", "-O", drv, "-o", opts, raw, img)
    return img, data


def add_node(qmp, drv, name, img, read_only=False):
    args = {"driver": drv, "node-name": name,
            "file": {"driver": "file", "filename": str(img)}}
    if read_only:
        args["read-only"] = True
    qmp.cmd("blockdev-add", **args)


def export(qmp, exp_id, node, mountpoint, writable=False):
    mountpoint.touch()
    qmp.cmd("block-export-add", type="fuse", id=exp_id, **{"node-name": node},
            mountpoint=str(mountpoint), writable=writable)


def unexport(qmp, exp_id, node):
    qmp.cmd("block-export-del", id=exp_id)
    qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10, match={"id": exp_id})
    qmp.cmd("blockdev-del", **{"node-name": node})


def raw_of(img, drv, tmp_path):
    # -f: qemu-img probes a fixed VHD (footer at the end only) as raw.
    ref = tmp_path / "ref.raw"
    qemu_img("convert", "-f", drv, "-O", "raw", img, ref)
    return ref


def compare(a, fa, b, fb):
    r = qemu_img("compare", "-f", fa, "-F", fb, a, b, check=False)
    assert r.returncode == 0, f"qemu-img compare {a} {b}: {r.stdout}{r.stderr}"


@pytest.mark.parametrize("sub", SUBFORMATS)
def test_read_back_equals_qemu_img_convert(qmp, tmp_path, sub):
    drv = SUBFORMATS[sub][0]
    img, _ = make_image(tmp_path, sub, 7 * MiB + 512 * 3)
    ref = raw_of(img, drv, tmp_path)
    add_node(qmp, drv, "n", img, read_only=True)
    mp = tmp_path / "r.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert os.path.getsize(mp) == os.path.getsize(ref)
        compare(mp, "raw", ref, "raw")
    finally:
        unexport(qmp, "e", "n")


@pytest.mark.parametrize("sub", [s for s in SUBFORMATS if SUBFORMATS[s][4]])
def test_writes_then_check_and_compare(qmp, tmp_path, sub):
    drv, _, gran, checkable, _ = SUBFORMATS[sub]
    size = 6 * MiB
    img, data = make_image(tmp_path, sub, size, seed=3)
    ref = bytearray(data)
    add_node(qmp, drv, "n", img)
    mp = tmp_path / "w.fuse"
    export(qmp, "e", "n", mp, writable=True)
    rnd = random.Random(7)
    try:
        fd = os.open(mp, os.O_RDWR)
        try:
            # Into holes, across block edges, unaligned, at the very end.
            writes = [(size - 100, 100), (gran - 300, 600), (0, 1)]
            writes += [(rnd.randrange(0, size - 1), rnd.choice([1, 511, 4096, 70000, 1500000]))
                       for _ in range(150)]
            for i, (off, n) in enumerate(writes):
                n = min(n, size - off)
                buf = rnd.randbytes(n)
                assert os.pwrite(fd, buf, off) == n
                ref[off:off + n] = buf
                if i % 50 == 0:
                    os.fsync(fd)
            os.fsync(fd)
            assert os.pread(fd, size, 0) == bytes(ref)
        finally:
            os.close(fd)
    finally:
        unexport(qmp, "e", "n")
    refpath = tmp_path / "ref.raw"
    refpath.write_bytes(bytes(ref))
    if checkable:
        r = qemu_img("check", "-f", drv, img, check=False)
        assert r.returncode == 0, f"qemu-img check: {r.returncode}\n{r.stdout}{r.stderr}"
    compare(img, drv, refpath, "raw")


@pytest.mark.parametrize("sub", [s for s in SUBFORMATS if SUBFORMATS[s][4]])
def test_concurrent_writers_allocating_the_same_blocks(qmp, tmp_path, sub):
    """Threads write interleaved 4k pieces of the same unallocated blocks: every
    block is allocated by several writers at once, exactly once."""
    drv, _, _, checkable, _ = SUBFORMATS[sub]
    size = 4 * MiB
    img = tmp_path / f"c.{drv}"
    qemu_img("create", "-f", drv, "-o", SUBFORMATS[sub][1], img, size)
    add_node(qmp, drv, "n", img)
    mp = tmp_path / "c.fuse"
    export(qmp, "e", "n", mp, writable=True)
    nthreads, piece = 4, 4096
    errors = []

    def writer(t):
        try:
            fd = os.open(mp, os.O_RDWR)
            try:
                for off in range(t * piece, size, nthreads * piece):
                    os.pwrite(fd, bytes([t + 1]) * piece, off)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
    finally:
        unexport(qmp, "e", "n")
    expect = b"".join(bytes([(i % nthreads) + 1]) * piece for i in range(size // piece))
    refpath = tmp_path / "ref.raw"
    refpath.write_bytes(expect)
    if checkable:
        r = qemu_img("check", "-f", drv, img, check=False)
        assert r.returncode == 0, f"qemu-img check: {r.returncode}\n{r.stdout}{r.stderr}"
    compare(img, drv, refpath, "raw")


def seek_map(path, size):
    """The data runs of a file as SEEK_DATA/SEEK_HOLE report them."""
    runs = []
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            runs.append((start, end))
            off = end
    finally:
        os.close(fd)
    return runs


def qemu_img_data_runs(img, drv):
    import json
    out = json.loads(qemu_img("map", "-f", drv, "--output=json", img).stdout)
    runs = []
    for e in out:
        if e["data"]:
            if runs and runs[-1][1] == e["start"]:
                runs[-1] = (runs[-1][0], e["start"] + e["length"])
            else:
                runs.append((e["start"], e["start"] + e["length"]))
    return runs


@pytest.mark.parametrize("sub", [s for s in SUBFORMATS if "static" not in s
                                 and "fixed" not in s and "Flat" not in s])
def test_seek_data_hole_follow_the_block_map(qmp, tmp_path, sub):
    drv, gran = SUBFORMATS[sub][0], SUBFORMATS[sub][2]
    size = 9 * MiB
    img, data = make_image(tmp_path, sub, size, seed=5)
    # qemu-img convert leaves the all-zero blocks of the source unallocated.
    expect = []
    for off in range(0, size, gran):
        if any(data[off:off + gran]):
            end = min(off + gran, size)
            if expect and expect[-1][1] == off:
                expect[-1] = (expect[-1][0], end)
            else:
                expect.append((off, end))
    assert len(expect) > 1, f"the test image has no holes: {expect}"
    # qemu-img agrees where it can tell (its vhdx driver reports no holes).
    if drv != "vhdx":
        assert qemu_img_data_runs(img, drv) == expect
    add_node(qmp, drv, "n", img, read_only=True)
    mp = tmp_path / "s.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert seek_map(mp, size) == expect
    finally:
        unexport(qmp, "e", "n")


def test_static_vdi_has_no_holes(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vdi-static", 3 * MiB)
    add_node(qmp, "vdi", "n", img, read_only=True)
    mp = tmp_path / "s.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert seek_map(mp, 3 * MiB) == [(0, 3 * MiB)]
    finally:
        unexport(qmp, "e", "n")


def virtual_size(img, drv):
    import json
    return json.loads(qemu_img("info", "-f", drv, "--output=json", img).stdout)["virtual-size"]


@pytest.mark.parametrize("force", [False, True])
def test_vpc_size_follows_geometry_unless_force_size(qmp, tmp_path, force):
    """QEMU sizes its own 'qemu' images by their CHS geometry, 'qem2'
    (force_size) ones by the footer's current_size: a size that is no whole
    geometry tells the two apart."""
    img = tmp_path / "g.vpc"
    opts = "subformat=dynamic" + (",force_size=on" if force else "")
    qemu_img("create", "-f", "vpc", "-o", opts, img, 100000256)
    want = virtual_size(img, "vpc")
    assert (want == 100000256) == force
    add_node(qmp, "vpc", "n", img, read_only=True)
    mp = tmp_path / "g.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert os.path.getsize(mp) == want
    finally:
        unexport(qmp, "e", "n")


def patch(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def expect_open_error(qmp, drv, img, words):
    with pytest.raises(QMPError) as ei:
        add_node(qmp, drv, "bad", img, read_only=True)
    for w in words:
        assert w in ei.value.desc, ei.value.desc
    # The daemon lives on, and the node was not left half-made.
    names = [n["node-name"] for n in qmp.cmd("query-named-block-nodes")]
    assert "bad" not in names


VDI_CORRUPTIONS = [
    ("signature", 0x40, b"\0\0\0\0", ["Image not in VDI format", "bad signature"]),
    ("version", 0x44, (0x00020000).to_bytes(4, "little"), ["unsupported VDI image (version 2.0)"]),
    ("block size", 0x178, (4096).to_bytes(4, "little"), ["block size 4096 is not 1048576"]),
    ("huge block count", 0x180, (0x3fffffff).to_bytes(4, "little"),
     ["block map", "end of the file"]),
    ("allocated count", 0x184, (1000).to_bytes(4, "little"), ["1000 blocks allocated"]),
    ("parent uuid", 0x1b8, b"\1" * 16, ["non-NULL parent UUID"]),
]


@pytest.mark.parametrize("what,off,data,words", VDI_CORRUPTIONS,
                         ids=[c[0] for c in VDI_CORRUPTIONS])
def test_vdi_corrupt_header_clear_error(qmp, tmp_path, what, off, data, words):
    img, _ = make_image(tmp_path, "vdi-dynamic", 4 * MiB)
    patch(img, off, data)
    expect_open_error(qmp, "vdi", img, words)


def test_vdi_block_map_entries_checked(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vdi-dynamic", 4 * MiB)
    with open(img, "rb") as f:
        hdr = f.read(512)
    bmap = int.from_bytes(hdr[0x154:0x158], "little")
    # Guest block 3 onto data block 0, which block 0 already uses.
    patch(img, bmap + 12, (0).to_bytes(4, "little"))
    expect_open_error(qmp, "vdi", img, ["data block 0 is used twice"])
    patch(img, bmap + 12, (77).to_bytes(4, "little"))
    expect_open_error(qmp, "vdi", img, ["maps to data block 77"])


def vpc_fix_checksum(img, off):
    with open(img, "r+b") as f:
        f.seek(off)
        footer = bytearray(f.read(512))
        footer[64:68] = b"\0\0\0\0"
        f.seek(off + 64)
        f.write(((~sum(footer)) & 0xffffffff).to_bytes(4, "big"))


def vpc_patch_both_footers(img, off, data):
    """Change a footer field in the copy at 0 and at the end, checksums kept valid."""
    end = os.path.getsize(img) - 512
    for base in (0, end):
        patch(img, base + off, data)
        vpc_fix_checksum(img, base)


def test_vpc_bad_checksum_clear_error(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vpc-dynamic", 4 * MiB)
    end = os.path.getsize(img) - 512
    for base in (0, end):
        patch(img, base + 64, b"\1\2\3\4")
    expect_open_error(qmp, "vpc", img, ["Incorrect header checksum"])


def test_vpc_huge_bat_clear_error(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vpc-dynamic", 4 * MiB)
    patch(img, 512 + 28, (0x7fffffff).to_bytes(4, "big"))
    expect_open_error(qmp, "vpc", img, ["BAT", "beyond the end of the file"])


def test_vpc_overlapping_blocks_refused(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vpc-dynamic", 6 * MiB)
    with open(img, "rb") as f:
        f.seek(512 + 16)
        bat = int.from_bytes(f.read(8), "big")
        f.seek(bat)
        first = f.read(4)
    assert first != b"\xff" * 4
    patch(img, bat + 4, first)   # block 1 onto block 0's sectors
    expect_open_error(qmp, "vpc", img, ["overlaps another block"])


def test_vpc_differencing_refused(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vpc-dynamic", 4 * MiB)
    vpc_patch_both_footers(img, 60, (4).to_bytes(4, "big"))
    expect_open_error(qmp, "vpc", img, ["differencing disk"])


def test_vpc_torn_end_footer_uses_the_copy_at_0(qmp, tmp_path):
    """A crash while a block was appended can leave the end without a footer:
    the copy at 0 still opens the image, as QEMU does."""
    img, data = make_image(tmp_path, "vpc-dynamic", 4 * MiB)
    patch(img, os.path.getsize(img) - 512, b"\0" * 512)
    add_node(qmp, "vpc", "n", img, read_only=True)
    mp = tmp_path / "t.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert mp.read_bytes()[:len(data)] == data[:os.path.getsize(mp)]
    finally:
        unexport(qmp, "e", "n")


def exportctl(daemon, *args):
    env = dict(os.environ)
    env.pop("EXPORTD_SOCKET", None)
    return subprocess.run([build_path("exportctl"), "--socket", daemon.socket_path, *args],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("sub", ["vdi-dynamic", "vdi-static", "vpc-dynamic",
                                 "vmdk-monolithicSparse", "vmdk-streamOptimized",
                                 "vhdx-dynamic", "vhdx-fixed"])
def test_exportctl_add_probes_the_format(daemon, tmp_path, sub):
    import json
    drv = SUBFORMATS[sub][0]
    img, _ = make_image(tmp_path, sub, 3 * MiB)
    ref = raw_of(img, drv, tmp_path)
    mp = tmp_path / "p.raw"
    r = exportctl(daemon, "--json", "add", "--mountpoint", str(mp), "--image", str(img))
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    try:
        assert added["format"] == drv
        compare(mp, "raw", ref, "raw")
    finally:
        r = exportctl(daemon, "del", added["id"])
        assert r.returncode == 0, r.stderr


def test_exportctl_fixed_vhd_probes_as_raw_as_qemu(daemon, tmp_path):
    """QEMU's probe looks for the footer copy at 0, which a fixed VHD lacks:
    it is raw to a probe (and its footer the last sector), as to qemu-img."""
    import json
    img, _ = make_image(tmp_path, "vpc-fixed", 2 * MiB)
    mp = tmp_path / "p.raw"
    r = exportctl(daemon, "--json", "add", "--mountpoint", str(mp), "--image", str(img))
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    try:
        assert added["format"] == "raw"
        assert os.path.getsize(mp) == os.path.getsize(img)
    finally:
        r = exportctl(daemon, "del", added["id"])
        assert r.returncode == 0, r.stderr


GiB = 1 << 30


@pytest.mark.parametrize("sub", ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])
def test_vmdk_writes_across_extents(qmp, tmp_path, sub):
    """A 4.5 GiB image in 2 GiB extents: writes that straddle the extent
    boundaries land in both files, and qemu-img agrees with a raw reference."""
    size = 4 * GiB + 512 * MiB
    img = tmp_path / "x.vmdk"
    qemu_img("create", "-f", "vmdk", "-o", f"subformat={sub}", img, size)
    extents = [p for p in os.listdir(tmp_path) if p.startswith("x-")]
    assert len(extents) == 3, extents
    ref = tmp_path / "ref.raw"
    with open(ref, "wb") as f:
        f.truncate(size)
    add_node(qmp, "vmdk", "n", img)
    mp = tmp_path / "x.fuse"
    export(qmp, "e", "n", mp, writable=True)
    rnd = random.Random(9)
    try:
        assert os.path.getsize(mp) == size
        fd = os.open(mp, os.O_RDWR)
        rfd = os.open(ref, os.O_RDWR)
        try:
            for off, n in [(2 * GiB - 1000, 3000), (4 * GiB - 70000, 200000), (0, 4096),
                           (size - 1, 1), (2 * GiB + 12345, 99999)]:
                buf = rnd.randbytes(n)
                assert os.pwrite(fd, buf, off) == n
                os.pwrite(rfd, buf, off)
            os.fsync(fd)
            for off, n in [(2 * GiB - 4096, 8192), (4 * GiB - 70000, 200000), (size - 4096, 4096)]:
                assert os.pread(fd, n, off) == os.pread(rfd, n, off)
        finally:
            os.close(fd)
            os.close(rfd)
    finally:
        unexport(qmp, "e", "n")
    r = qemu_img("check", "-f", "vmdk", img, check=False)
    assert r.returncode == 0, f"qemu-img check: {r.returncode}\n{r.stdout}{r.stderr}"
    compare(img, "vmdk", ref, "raw")


def test_vmdk_stream_optimized_is_read_only(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vmdk-streamOptimized", 2 * MiB)
    with pytest.raises(QMPError) as ei:
        add_node(qmp, "vmdk", "n", img)
    # qemu-img makes them version 3: QEMU's words for that come first.
    assert "read only" in ei.value.desc or "read-only" in ei.value.desc, ei.value.desc


def test_vmdk_parent_refused(qmp, tmp_path):
    base = tmp_path / "base.vmdk"
    qemu_img("create", "-f", "vmdk", base, 4 * MiB)
    img = tmp_path / "top.vmdk"
    qemu_img("create", "-f", "vmdk", "-b", base, "-F", "vmdk", img)
    expect_open_error(qmp, "vmdk", img, ["names a parent image", "base.vmdk"])


def test_vmdk_descriptor_extent_must_be_a_regular_file(qmp, tmp_path):
    """An extent is named by image content: never a device or a FIFO."""
    img = tmp_path / "d.vmdk"
    img.write_text('# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
                   'createType="monolithicFlat"\n\nRW 2048 FLAT "/dev/null" 0\n')
    expect_open_error(qmp, "vmdk", img, ["/dev/null"])


def test_vmdk_corrupt_grain_directory_clear_error(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vmdk-monolithicSparse", 4 * MiB)
    patch(img, 56, (0x7fffffff).to_bytes(8, "little"))   # gdOffset far past the end
    expect_open_error(qmp, "vmdk", img, ["grain directory", "beyond the end of the file"])


def test_vmdk_huge_granularity_clear_error(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vmdk-monolithicSparse", 4 * MiB)
    patch(img, 20, (1 << 40).to_bytes(8, "little"))
    expect_open_error(qmp, "vmdk", img, ["Invalid granularity"])


def test_exportctl_probed_vmdk_descriptor_refused(daemon, tmp_path):
    """A descriptor names other files: probed, it is refused; named, it opens."""
    import json
    img, _ = make_image(tmp_path, "vmdk-monolithicFlat", 2 * MiB)
    mp = tmp_path / "p.raw"
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", str(img))
    assert r.returncode != 0
    assert "VMDK descriptor" in r.stderr and "--format vmdk" in r.stderr, r.stderr
    r = exportctl(daemon, "--json", "add", "--mountpoint", str(mp), "--image", str(img),
                  "--format", "vmdk")
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    try:
        compare(mp, "raw", raw_of(img, "vmdk", tmp_path), "raw")
    finally:
        r = exportctl(daemon, "del", added["id"])
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("sub", ["vdi-dynamic", "vpc-dynamic", "vmdk-monolithicSparse",
                                 "vhdx-dynamic"])
def test_crash_kill9_keeps_fsynced_data(tmp_path, sub):
    """kill -9 during random writes with fsyncs into fresh blocks: none of these
    formats has a journal (neither has QEMU), what they promise is that the
    image opens again, in qemu-img and in exportd, with every byte fsync'd
    before the kill (a block appended when the kill came may leak)."""
    drv, opts = SUBFORMATS[sub][0], SUBFORMATS[sub][1]
    img = tmp_path / f"k.{drv}"
    size = 16 * MiB
    block = 4096
    nblocks = size // block
    qemu_img("create", "-f", drv, "-o", opts, img, size)
    durable, since, latest = {}, {}, {}
    d = Daemon(tmp_path / "d")
    d.start()
    try:
        qmp = d.new_client()
        add_node(qmp, drv, "n", img)
        mp = tmp_path / "k.fuse"
        export(qmp, "e", "n", mp, writable=True)
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
    ref = raw_of(img, drv, tmp_path)
    data = ref.read_bytes()
    for blk in set(durable) | set(since):
        allowed = {durable.get(blk, 0)} | since.get(blk, set())
        if blk not in since:
            assert data[blk * block:(blk + 1) * block] == bytes([durable[blk]]) * block, \
                f"block {blk} lost its fsync'd value {durable[blk]}"
            continue
        # A write in flight at the kill may be torn where the image file's
        # pages fall (VDI data starts at a sector, not a page): per sector.
        for sec in range(blk * block, (blk + 1) * block, 512):
            got = data[sec]
            assert got in allowed, f"block {blk} holds {got}, expected one of {allowed}"
            assert data[sec:sec + 512] == bytes([got]) * 512, f"sector at {sec} torn"
    # exportd opens it again and reads what qemu-img reads.
    d2 = Daemon(tmp_path / "d2")
    d2.start()
    try:
        qmp = d2.new_client()
        add_node(qmp, drv, "n", img, read_only=True)
        mp = tmp_path / "k2.fuse"
        export(qmp, "e", "n", mp)
        try:
            compare(mp, "raw", ref, "raw")
        finally:
            unexport(qmp, "e", "n")
    finally:
        assert d2.stop() == 0
        d2.cleanup()


def vhdx_bat_offset(img):
    import uuid
    bat_guid = uuid.UUID("2DC27766-F623-4200-9D64-115E9BFD4A08").bytes_le
    with open(img, "rb") as f:
        f.seek(192 * 1024)
        r = f.read(64 * 1024)
    for i in range(int.from_bytes(r[8:12], "little")):
        e = r[16 + 32 * i:48 + 32 * i]
        if e[:16] == bat_guid:
            return int.from_bytes(e[16:24], "little")
    raise AssertionError("no BAT region")


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82f63b78 if crc & 1 else crc >> 1
    return crc ^ 0xffffffff


def with_crc(buf, at):
    buf[at:at + 4] = b"\0\0\0\0"
    buf[at:at + 4] = crc32c(bytes(buf)).to_bytes(4, "little")
    return buf


def make_dirty_vhdx(tmp_path):
    """A VHDX whose writer died with a BAT update only in its log: an image
    with data in block 3, whose BAT sector is logged (one log entry, one data
    descriptor, as [MS-VHDX] lays them out) and then wiped in place, and whose
    headers name the log.  qemu-img check -r all replays a copy: the oracle."""
    import uuid
    img = tmp_path / "dirty.vhdx"
    raw = tmp_path / "dirty-src.raw"
    content = bytearray(8 * MiB)
    content[3 * MiB:3 * MiB + 65536] = b"\x5a" * 65536
    raw.write_bytes(bytes(content))
    qemu_img("convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=1M",
             raw, img)
    bat = vhdx_bat_offset(img)
    data = bytearray(img.read_bytes())
    sector = bytes(data[bat:bat + 4096])
    assert sector[3 * 8] & 7 == 6, "block 3 is not present in the source image"
    seq, guid = 10, uuid.uuid4().bytes_le
    hdr = 64 * 1024 if (int.from_bytes(data[64 * 1024 + 8:64 * 1024 + 16], "little") >
                        int.from_bytes(data[128 * 1024 + 8:128 * 1024 + 16], "little")) \
        else 128 * 1024
    log_off = int.from_bytes(data[hdr + 72:hdr + 80], "little")
    entry = bytearray(8192)
    entry[0:4] = b"loge"
    entry[8:12] = (8192).to_bytes(4, "little")
    entry[16:24] = seq.to_bytes(8, "little")
    entry[24:28] = (1).to_bytes(4, "little")
    entry[32:48] = guid
    entry[48:56] = len(data).to_bytes(8, "little")
    entry[56:64] = len(data).to_bytes(8, "little")
    entry[64:68] = b"desc"
    entry[68:72] = sector[4092:4096]
    entry[72:80] = sector[0:8]
    entry[80:88] = bat.to_bytes(8, "little")
    entry[88:96] = seq.to_bytes(8, "little")
    entry[4096:4100] = b"data"
    entry[4100:4104] = (seq >> 32).to_bytes(4, "little")
    entry[4104:8188] = sector[8:4092]
    entry[8188:8192] = (seq & 0xffffffff).to_bytes(4, "little")
    data[log_off:log_off + 8192] = with_crc(entry, 4)
    data[bat + 3 * 8:bat + 4 * 8] = b"\0" * 8
    h = bytearray(data[hdr:hdr + 4096])
    h[48:64] = guid
    data[hdr:hdr + 4096] = with_crc(h, 4)
    img.write_bytes(bytes(data))
    oracle = tmp_path / "oracle.vhdx"
    oracle.write_bytes(bytes(data))
    r = qemu_img("check", "-r", "all", "-f", "vhdx", oracle, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    compare(oracle, "vhdx", raw, "raw")
    return img


def test_vhdx_dirty_log_refused_read_only(qmp, tmp_path):
    img = make_dirty_vhdx(tmp_path)
    expect_open_error(qmp, "vhdx", img, ["contains a log that needs to be replayed"])


def test_vhdx_dirty_log_replayed_on_writable_open(qmp, tmp_path):
    img = make_dirty_vhdx(tmp_path)
    add_node(qmp, "vhdx", "n", img)
    mp = tmp_path / "d.fuse"
    export(qmp, "e", "n", mp)
    try:
        with open(mp, "rb") as f:
            f.seek(3 * MiB)
            assert f.read(64 * 1024) == b"\x5a" * 65536
    finally:
        unexport(qmp, "e", "n")
    r = qemu_img("check", "-f", "vhdx", img, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    ref = tmp_path / "ref.raw"
    expect = bytearray(8 * MiB)
    expect[3 * MiB:3 * MiB + 65536] = b"\x5a" * 65536
    ref.write_bytes(bytes(expect))
    compare(img, "vhdx", ref, "raw")


def test_vhdx_corrupt_region_table_clear_error(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vhdx-dynamic", 4 * MiB)
    patch(img, 192 * 1024 + 100, b"garbage!")
    patch(img, 256 * 1024 + 100, b"garbage!")
    expect_open_error(qmp, "vhdx", img, ["no valid region table"])


def test_vhdx_block_outside_the_file_clear_error(qmp, tmp_path):
    img, _ = make_image(tmp_path, "vhdx-dynamic", 4 * MiB)
    bat = vhdx_bat_offset(img)
    patch(img, bat, ((1 << 40) | 6).to_bytes(8, "little"))
    expect_open_error(qmp, "vhdx", img, ["block 0", "not inside the file"])


def test_vmdk_descriptor_is_the_text_before_its_first_nul(qmp, tmp_path):
    """QEMU rewrites a descriptor in place when its CID gets shorter, leaving
    bytes after a NUL: the descriptor is the text before it, as in QEMU."""
    img, data = make_image(tmp_path, "vmdk-monolithicFlat", 2 * MiB)
    text = img.read_bytes().rstrip(b"\0")
    patch(img, len(text), b"\0\n")
    add_node(qmp, "vmdk", "n", img, read_only=True)
    mp = tmp_path / "t.fuse"
    export(qmp, "e", "n", mp)
    try:
        assert mp.read_bytes() == data
    finally:
        unexport(qmp, "e", "n")
