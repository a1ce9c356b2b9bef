"""The reference: qemu-storage-daemon 7.2 with a QMP socket, for tests that
compare exportd with it side by side."""

import contextlib
import os
import shutil
import subprocess
import time

QSD = shutil.which("qemu-storage-daemon")
QSD_MISSING = ("qemu-storage-daemon is not installed (package qemu-system-common): "
               "no reference to compare with")


@contextlib.contextmanager
def qsd_monitor(directory):
    """Run qsd with a QMP socket in directory; yields the socket path and
    kills qsd afterwards."""
    sock = f"{directory}/qsd.sock"
    proc = subprocess.Popen([QSD, "--chardev", f"socket,id=m,path={sock},server=on,wait=off",
                             "--monitor", "chardev=m"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        yield sock
    finally:
        proc.kill()
        proc.wait()
