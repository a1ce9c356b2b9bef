"""pytest fixtures shared by every integration test: a real exportd on a
temp socket (`daemon`) and a negotiated QMP client to it (`qmp`).

At teardown the daemon is stopped with SIGTERM; it must exit 0 with no
sanitizer report in its log (so ASan/UBSan/LSan findings fail the test),
and no FUSE mount may remain under the test's directory."""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fusetest import need  # noqa: E402
from harness import Daemon, build_path, unmount_all_under  # noqa: E402


def pytest_configure(config):
    for prog in ("exportd",):
        if not os.access(build_path(prog), os.X_OK):
            raise pytest.UsageError(f"{build_path(prog)} is not built: run make first")


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path / "d")
    d.start()
    yield d
    try:
        status = d.stop() if d.proc.poll() is None else d.proc.returncode
        report = d.sanitizer_report()
        assert report is None, f"sanitizer report:\n{report}"
        assert status == 0, f"exportd exited with {status}:\n{d.log()}"
    finally:
        d.cleanup()
        left = unmount_all_under(str(tmp_path))
        assert not left, f"FUSE mounts left behind: {left}"


@pytest.fixture
def qmp(daemon):
    return daemon.new_client()


@pytest.fixture
def mp(tmp_path):
    """An empty regular file to mount an export on."""
    p = tmp_path / "t.fuse"
    p.touch()
    return p


@pytest.fixture
def other_user():
    """A second, non-root user that the test creates and removes (its
    pwd entry)."""
    need("useradd")
    need("setpriv")
    if os.geteuid() != 0:
        pytest.skip("creating a second user needs root")
    name = "exportdt%s" % uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                    name], check=True, capture_output=True)
    try:
        import pwd
        pw = pwd.getpwnam(name)
        yield pw
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def shared_dir():
    """A directory every user can reach (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="exportd-ao-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for line in open("/proc/self/mountinfo"):
            p = line.split()[4]
            if p.startswith(d + "/"):
                subprocess.run(["umount", "-l", p], check=False)
        shutil.rmtree(d, ignore_errors=True)
