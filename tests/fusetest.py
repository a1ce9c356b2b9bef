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
import subprocess
import time

import pytest

from harness import QMPError

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
        while qmp.cmd("query-block-exports") and time.monotonic() < deadline:
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
