"""Helpers shared by the FUSE export tests (tests/test_fuse_*.py).

Images, nodes and exports are created through the real daemon over QMP;
mounts are checked in /proc/self/mountinfo.  Every helper that can leave a
mount behind has a cleanup counterpart, and `export_cleanup` is used in
`finally:` blocks so that no test leaves a mount, whatever happens.
"""

import ctypes
import ctypes.util
import errno
import os
import random
import select
import shutil
import signal
import subprocess
import time

import pytest

from harness import QMPError, wait_until

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd, mode, offset, length):
    """fallocate(2) itself (os.posix_fallocate hides EOPNOTSUPP)."""
    if _libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def random_image(path, size, seed=1):
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rnd.randbytes(n))
            left -= n
    return path


def mounted(path):
    """Whether `path` is a mount point (in this mount namespace)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path:
                return True
    return False


def add_file_node(qmp, name, filename, read_only=False, **extra):
    args = {"driver": "file", "node-name": name, "filename": str(filename)}
    if read_only:
        args["read-only"] = True
    args.update(extra)
    qmp.cmd("blockdev-add", **args)


def blockdev_add_error(qmp, **args):
    """The desc of the GenericError that blockdev-add with args gets."""
    with pytest.raises(QMPError) as e:
        qmp.cmd("blockdev-add", **args)
    assert e.value.cls == "GenericError", e.value
    return e.value.desc


def add_export(qmp, exp_id, node, mountpoint, **opts):
    args = {"type": "fuse", "id": exp_id, "node-name": node,
            "mountpoint": str(mountpoint)}
    for k, v in opts.items():
        args[k.replace("_", "-")] = v
    qmp.cmd("block-export-add", **args)
    return args


def del_export(qmp, exp_id, mode=None, timeout=10):
    args = {"id": exp_id}
    if mode:
        args["mode"] = mode
    qmp.cmd("block-export-del", **args)
    return wait_deleted(qmp, exp_id, timeout)


def wait_deleted(qmp, exp_id, timeout=10):
    return qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=timeout, match={"id": exp_id})


def export_info(qmp, exp_id):
    for e in qmp.cmd("query-block-exports"):
        if e["id"] == exp_id:
            return e
    return None


def wait_io_started(qmp, exp_id, proc, image=None, timeout=30):
    """Wait until the load `proc` (fio) is doing I/O on export exp_id: the
    export has answered reads or writes, or (writes the kernel passes
    through, which the daemon never sees) the image has been written."""
    mtime = os.stat(image).st_mtime_ns if image else None

    def started():
        assert proc.poll() is None, "the load exited before it did any I/O: %s" % (
            proc.communicate(),)
        st = export_info(qmp, exp_id)["x-stats"]
        if st["read"]["requests"] or st["write"]["requests"]:
            return True
        return image is not None and os.stat(image).st_mtime_ns != mtime
    wait_until(started, "I/O on export %r" % exp_id, timeout)


def sigterm_with_a_writer_open(daemon, qmp, img, mp, errnos=(errno.ENOTCONN,), **opts):
    """What exportd(8) promises a handle that is open when the daemon shuts
    down: what was written through it is in the image, the mount is gone
    when the daemon has exited, and every later operation on the handle
    fails with an errno of errnos, close() included, and none hangs."""
    add_file_node(qmp, "f", img)
    add_export(qmp, "e", "f", mp, writable=True, **opts)
    fd = os.open(mp, os.O_RDWR)
    closed = False
    try:
        assert os.pwrite(fd, b"w" * 4096, 8192) == 4096
        os.kill(daemon.pid, signal.SIGTERM)
        assert daemon.proc.wait(timeout=10) == 0
        assert not mounted(mp)
        with open(img, "rb") as f:
            f.seek(8192)
            assert f.read(4096) == b"w" * 4096, "a write acknowledged before SIGTERM was lost"
        ops = [("pread", lambda: os.pread(fd, 4096, 0)),
               ("pwrite", lambda: os.pwrite(fd, b"x", 0)),
               ("fsync", lambda: os.fsync(fd)),
               ("close", lambda: os.close(fd))]
        for i, (name, op) in enumerate(ops):
            with pytest.raises(OSError) as exc:
                op()
            assert exc.value.errno in errnos, (
                "%s after shutdown: %s, expected %s" % (
                    name, exc.value, [errno.errorcode[e] for e in errnos]))
            closed = name == "close"
    finally:
        if not closed:
            try:
                os.close(fd)
            except OSError:
                pass
        if mounted(mp):
            subprocess.run(["umount", "-l", str(mp)], check=False)


def export_cleanup(qmp, *mountpoints):
    """Remove every export (hard) and make sure nothing stays mounted."""
    try:
        for e in qmp.cmd("query-block-exports"):
            if not e["shutting-down"]:
                try:
                    qmp.cmd("block-export-del", id=e["id"], mode="hard")
                except QMPError:
                    pass
        deadline = time.monotonic() + 10
        while qmp.cmd("query-block-exports"):
            if time.monotonic() > deadline:
                raise AssertionError("exports still there 10 s after a hard delete: %s"
                                     % qmp.cmd("query-block-exports"))
            time.sleep(0.05)
    finally:
        for mp in mountpoints:
            if mounted(mp):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def assert_identical(a, b):
    r = subprocess.run(["qemu-img", "compare", "-U", "-f", "raw", "-F", "raw", str(a), str(b)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Images are identical." in r.stdout


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed, so this behaviour cannot be checked" % tool)


def as_user(pw, *cmd):
    """Run cmd as the user pw (a pwd entry), without root's groups."""
    return subprocess.run(["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                           "--clear-groups", "--"] + list(cmd),
                          capture_output=True, timeout=30)


def wait_process_exit(pid, timeout=20):
    """Wait for a process that is not our child (a daemonized exportd) to
    end: its pidfd becomes readable when it does."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, "process %d did not exit within %ds" % (pid, timeout)
    finally:
        os.close(fd)


def expect_errno(err, fn, *args):
    with pytest.raises(OSError) as exc:
        fn(*args)
    assert exc.value.errno == err, "expected %s, got %r" % (errno.errorcode[err], exc.value)


def kernel_has_passthrough(info):
    """Skip (loudly) where the kernel cannot pass through at all."""
    if info["x-data-path"] != "passthrough" and "FUSE_PASSTHROUGH" in info["x-data-path-reason"]:
        pytest.skip("this kernel has no FUSE passthrough: %s" % info["x-data-path-reason"])


# The two ways a writer's data reaches the image: through the daemon, or
# (growable exports with passthrough: on) through the kernel directly.
WRITE_PATHS = {
    "userspace": {"writable": True, "passthrough": "off"},
    "kernel": {"writable": True, "growable": True, "passthrough": "on"},
}


def add_writable_export(qmp, exp_id, node, mountpoint, write_path, **opts):
    """An export whose writes take `write_path`; skips if the kernel cannot."""
    add_export(qmp, exp_id, node, mountpoint, **WRITE_PATHS[write_path], **opts)
    info = export_info(qmp, exp_id)
    if write_path == "kernel":
        kernel_has_passthrough(info)
        assert info["x-data-path"] == "passthrough", info["x-data-path-reason"]
        assert "writes" in info["x-data-path-reason"], info["x-data-path-reason"]
    else:
        assert info["x-data-path"] == "userspace", info["x-data-path-reason"]
    return info
