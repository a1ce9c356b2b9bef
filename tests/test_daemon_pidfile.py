"""--pidfile (issue 12): never written through a link, mode 0644, locked for
the daemon's life (a second daemon with the same pidfile refuses and names
the first), held by the child with --daemonize, and removed at exit only if
it is still the file the daemon created."""

import os
import signal
import stat
import subprocess

import pytest

from fusetest import as_user, wait_process_exit
from harness import Daemon, QMPClient, build_path

ROOTS_DATA = b"root's file: never to be overwritten\n"


def run_exportd(*args, timeout=20, umask=None):
    return subprocess.run([build_path("exportd"), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


@pytest.fixture
def daemonized(tmp_path):
    """Start `exportd --daemonize` with a pidfile; SIGTERM it at the end."""
    started = []

    def start(pidfile, umask=None):
        sock = tmp_path / ("s%d.sock" % len(started))
        r = run_exportd("--socket", str(sock), "--daemonize", "--pidfile", str(pidfile),
                        umask=umask)
        assert r.returncode == 0, r.stderr
        pid = int(pidfile.read_text())
        started.append(pid)
        return pid, sock

    yield start
    for pid in started:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        wait_process_exit(pid)


def test_pidfile_link_planted_by_a_user_is_not_followed(shared_dir, other_user, user_home,
                                                       tmp_path):
    roots = os.path.join(shared_dir, "roots-file")
    with open(roots, "wb") as f:
        f.write(ROOTS_DATA)
    pidfile = os.path.join(user_home, "exportd.pid")
    r = as_user(other_user, "ln", "-s", roots, pidfile)
    assert r.returncode == 0, r.stderr
    r = run_exportd("--socket", str(tmp_path / "s.sock"), "--pidfile", pidfile)
    assert r.returncode == 1
    assert "Cannot open pid file '%s': it is a symbolic link" % pidfile in r.stderr
    with open(roots, "rb") as f:
        assert f.read() == ROOTS_DATA
    assert not (tmp_path / "s.sock").exists()


def test_pidfile_of_another_user_is_refused(other_user, user_home, tmp_path):
    """Its owner could write any pid in it, for root to signal later."""
    pidfile = os.path.join(user_home, "exportd.pid")
    r = as_user(other_user, "touch", pidfile)
    assert r.returncode == 0, r.stderr
    r = run_exportd("--socket", str(tmp_path / "s.sock"), "--pidfile", pidfile)
    assert r.returncode == 1
    assert ("Cannot use pid file '%s': it is owned by uid %d, not by exportd's user (uid %d)"
            % (pidfile, other_user.pw_uid, os.geteuid())) in r.stderr
    assert os.path.getsize(pidfile) == 0


def test_pidfile_mode_is_0644_whatever_the_umask(daemonized, tmp_path):
    pidfile = tmp_path / "exportd.pid"
    daemonized(pidfile, umask=0o077)
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644


def test_second_daemon_with_the_same_pidfile_refuses(tmp_path):
    pidfile = tmp_path / "exportd.pid"
    d = Daemon(tmp_path / "d", extra_args=["--pidfile", str(pidfile)])
    try:
        d.start()
        assert int(pidfile.read_text()) == d.pid
        r = run_exportd("--socket", str(tmp_path / "second.sock"), "--pidfile", str(pidfile),
                        timeout=10)
        assert r.returncode == 1
        assert ("Cannot lock pid file '%s': exportd (pid %d) is already running with it"
                % (pidfile, d.pid)) in r.stderr
        # Refused before doing anything, and the first one is unharmed.
        assert not (tmp_path / "second.sock").exists()
        assert int(pidfile.read_text()) == d.pid
        assert "return" in d.new_client().execute({"execute": "query-version"})
        assert d.stop() == 0
        assert not pidfile.exists()
    finally:
        d.cleanup()


def test_daemonized_child_holds_the_lock(daemonized, tmp_path):
    pidfile = tmp_path / "exportd.pid"
    pid, sock = daemonized(pidfile)
    with QMPClient(str(sock)) as c:
        assert "return" in c.execute({"execute": "query-version"})
    r = run_exportd("--socket", str(tmp_path / "second.sock"), "--daemonize",
                    "--pidfile", str(pidfile), timeout=10)
    assert r.returncode == 1
    assert "exportd (pid %d) is already running with it" % pid in r.stderr
    os.kill(pid, signal.SIGTERM)
    wait_process_exit(pid)
    assert not pidfile.exists()


def test_pidfile_replaced_meanwhile_is_not_removed(tmp_path):
    """Someone else's file under the pidfile's name by the time we exit
    stays where it is."""
    pidfile = tmp_path / "exportd.pid"
    d = Daemon(tmp_path / "d", extra_args=["--pidfile", str(pidfile)])
    try:
        d.start()
        other = tmp_path / "other"
        other.write_text("not exportd's\n")
        os.rename(other, pidfile)
        assert d.stop() == 0
        assert pidfile.read_text() == "not exportd's\n"
    finally:
        d.cleanup()
