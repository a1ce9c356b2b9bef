"""pytest fixtures shared by every integration test: a real exportd on a
temp socket (`daemon`) and a negotiated QMP client to it (`qmp`).

At teardown the daemon is stopped with SIGTERM; it must exit 0 with no
sanitizer report in its log (so ASan/UBSan/LSan findings fail the test),
and no FUSE mount may remain under the test's directory.

At the end of the session, whatever happened, nothing of the run may be
left: no FUSE mount under pytest's base temp dir, no process that names it
(a daemon, fio, qemu-storage-daemon) or that pytest started, and nothing
in the run's TMPDIR (a dir of its own, so that tempfile users are checked
too).  Leftovers are removed and fail the run."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fusetest import need  # noqa: E402
from harness import Daemon, build_path, make_pattern_image, unmount_all_under  # noqa: E402


def pytest_configure(config):
    for prog in ("exportd",):
        if not os.access(build_path(prog), os.X_OK):
            raise pytest.UsageError(f"{build_path(prog)} is not built: run make first")


def pytest_sessionstart(session):
    base = session.config._tmp_path_factory.getbasetemp()
    run_tmp = base / "tmpdir"
    run_tmp.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(run_tmp)
    tempfile.tempdir = str(run_tmp)


def _ancestors():
    """Our pid and our ancestors' (what started pytest may name base too)."""
    pids = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return pids


def _processes_left(base):
    """(pid, cmdline) of live processes that name base or are our children."""
    me = os.getpid()
    mine = _ancestors()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        if base in cmd or int(fields[1]) == me:
            out.append((int(entry), cmd))
    return out


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    base = str(config._tmp_path_factory.getbasetemp())
    problems = []
    procs = _processes_left(base)
    for pid, cmd in procs:
        problems.append(f"process left running: {pid} {cmd}")
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    mounts = unmount_all_under(base)
    problems += [f"FUSE mount left behind: {m}" for m in mounts]
    run_tmp = os.path.join(base, "tmpdir")
    if os.path.isdir(run_tmp):
        problems += [f"temp file left behind: {run_tmp}/{n}" for n in sorted(os.listdir(run_tmp))]
    if problems:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        text = "the test session left things behind:\n  " + "\n  ".join(problems)
        if reporter:
            reporter.write_line(text, red=True)
        else:
            print(text, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


@pytest.fixture
def user_home(shared_dir, other_user):
    """shared_dir/home: a directory (0755) of other_user's, where she may
    plant files and links for root's daemon to meet."""
    home = os.path.join(shared_dir, "home")
    os.mkdir(home, 0o755)
    os.chown(home, other_user.pw_uid, other_user.pw_gid)
    return home


@pytest.fixture
def fuse():
    """Skips the test loudly where there is no /dev/fuse."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("FUSE exports cannot be tested because /dev/fuse is missing")


@pytest.fixture
def raw_image(tmp_path):
    """A 4 MiB raw image of a known pattern."""
    return make_pattern_image(str(tmp_path / "disk.img"), 4 << 20, seed=7)
