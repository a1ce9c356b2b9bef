"""The reference: qemu-storage-daemon 7.2 with a QMP socket, for tests that
compare exportd with it side by side.

Readiness is qsd's --pidfile: qsd writes it after it has created its
chardevs, monitors and exports and before it serves anyone (its documented
ordering).  The socket file alone is not enough: the chardev listens before
the monitor is attached to it, and a client that connects in between is
greeted twice."""

import contextlib
import os
import shutil
import subprocess
import time

QSD = shutil.which("qemu-storage-daemon")
QSD_MISSING = ("qemu-storage-daemon is not installed (package qemu-system-common): "
               "no reference to compare with")


def _log_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


@contextlib.contextmanager
def qsd_process(directory, args, timeout=15.0):
    """Run qsd with args plus a pidfile in directory; yields the Popen once
    the pidfile exists, and kills qsd afterwards."""
    pidfile = os.path.join(directory, "qsd.pid")
    log_path = os.path.join(directory, "qsd.log")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pidfile)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([QSD, "--pidfile", pidfile] + list(args),
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(pidfile) or os.path.getsize(pidfile) == 0:
            if proc.poll() is not None:
                raise RuntimeError(f"qemu-storage-daemon exited with {proc.returncode} "
                                   f"during start-up:\n{_log_text(log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"qemu-storage-daemon wrote no pidfile {pidfile} "
                                   f"within {timeout} s:\n{_log_text(log_path)}")
            time.sleep(0.01)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def qsd_monitor(directory):
    """Run qsd with a QMP socket in directory; yields the socket path once
    qsd is ready, and kills qsd afterwards."""
    sock = os.path.join(str(directory), "qsd.sock")
    with qsd_process(str(directory), ["--chardev", f"socket,id=m,path={sock},server=on,wait=off",
                                      "--monitor", "chardev=m"]):
        yield sock
