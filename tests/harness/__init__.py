"""Test harness for exportd: start a real daemon on its own temp socket, talk
QMP to it, and always clean up (kill the daemon by PID, unmount every FUSE
mount it may have left under the test's directories).

Debian's /usr/bin/python3 with the standard library only (PyPI is not
reachable here), so this is self-contained.
"""

from .daemon import Daemon, build_path, fuse_mounts, unmount_all_under
from .qmp import QMPClient, QMPError
from .images import make_pattern_image, pattern_bytes
from .qsd import QSD, QSD_MISSING, qsd_monitor, qsd_process
from .wait import wait_pid_gone, wait_until

__all__ = [
    "Daemon", "QMPClient", "QMPError", "build_path", "fuse_mounts",
    "unmount_all_under", "make_pattern_image", "pattern_bytes", "QSD", "QSD_MISSING",
    "qsd_monitor", "qsd_process", "wait_pid_gone", "wait_until",
]
