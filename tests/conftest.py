"""pytest fixtures shared by every integration test: a real exportd on a
temp socket (`daemon`) and a negotiated QMP client to it (`qmp`).

At teardown the daemon is stopped with SIGTERM; it must exit 0 with no
sanitizer report in its log (so ASan/UBSan/LSan findings fail the test),
and no FUSE mount may remain under the test's directory."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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
