"""The QMP server at its limits (issue 12): out of file descriptors, over
the connection cap, and the open-file limit it starts with.  Each test runs
its own daemon, because each changes what that daemon may hold."""

import contextlib
import os
import resource
import socket
import subprocess
import time

import pytest

from harness import Daemon, QMPClient, build_path

ACCEPT_FAILED = "accept on the QMP socket failed: Too many open files"


def wait_for_log(d, text, timeout=10.0, more_than=0):
    """Wait until the daemon's log contains text more than more_than times;
    fail naming it."""
    deadline = time.monotonic() + timeout
    while d.log().count(text) <= more_than:
        assert d.proc.poll() is None, f"exportd exited:\n{d.log()}"
        assert time.monotonic() < deadline, f"no {text!r} in the log within {timeout}s:\n{d.log()}"
        time.sleep(0.02)


def cpu_seconds(pid):
    """User plus system CPU time of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def own_daemon(tmp_path, args=()):
    d = Daemon(tmp_path / "d", extra_args=list(args))
    d.start()
    try:
        yield d
        assert d.stop() == 0, d.log()
        assert d.sanitizer_report() is None, d.sanitizer_report()
    finally:
        d.cleanup()


def test_out_of_descriptors_pauses_accepting_quietly_and_recovers(tmp_path):
    with own_daemon(tmp_path, ["--max-connections", "1000"]) as d:
        admin = d.new_client()
        # Leave room for three more connections, then ask for twelve.
        in_use = len(os.listdir(f"/proc/{d.pid}/fd"))
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (in_use + 3, in_use + 3))
        clients = []
        for _ in range(12):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.socket_path)  # queued in the backlog if not accepted
            clients.append(s)
        wait_for_log(d, ACCEPT_FAILED)
        # While at the limit, the daemon serves what it has and neither spins
        # nor floods its log (it used to write 87 MB in 2 s).
        log_before, cpu_before = len(d.log()), cpu_seconds(d.pid)
        # A one-second window in which nobody asks the daemon anything: the
        # CPU it burns is its accept loop's.  (Not a wait for a state; a busy
        # machine can only make a spinning daemon look better, never an idle
        # one worse, so the check cannot fail by chance.)
        time.sleep(1.0)
        busy = cpu_seconds(d.pid) - cpu_before
        assert "return" in admin.execute({"execute": "query-version"})
        # (the debug log of admin's own commands does not count)
        about_accept = [line for line in d.log()[log_before:].splitlines() if "accept" in line]
        assert len(about_accept) <= 2, f"logged at EMFILE within a second: {about_accept[:5]}"
        assert busy < 0.5, f"exportd used {busy:.2f}s of CPU in a second at EMFILE"
        # Descriptors given back: new clients are served again.
        for s in clients:
            s.close()
        late = QMPClient(d.socket_path, timeout=10)
        assert "return" in late.execute({"execute": "query-version"})
        late.close()


def test_client_over_the_connection_cap_gets_an_error_and_is_closed(tmp_path):
    with own_daemon(tmp_path, ["--max-connections", "2"]) as d:
        a = d.new_client()
        d.new_client()
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(d.socket_path)
        f = s.makefile("rb")
        line = f.readline()
        assert line == (b'{"error": {"class": "GenericError", "desc": "Too many QMP '
                        b'connections: exportd serves at most 2 at once '
                        b'(--max-connections); try again later"}}\r\n')
        assert f.readline() == b""  # closed
        s.close()
        # Below the cap again, a client is served.
        closed = d.log().count(" closed")
        a.close()
        wait_for_log(d, " closed", more_than=closed)
        c = d.new_client()
        assert "return" in c.execute({"execute": "query-version"})


def test_soft_open_file_limit_is_raised_to_the_hard_limit(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)
    if low == hard:
        pytest.skip(f"the hard open-file limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        d = Daemon(tmp_path / "d")
        d.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert resource.prlimit(d.pid, resource.RLIMIT_NOFILE) == (hard, hard)
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_exportctl_says_why_it_was_refused(tmp_path):
    with own_daemon(tmp_path, ["--max-connections", "1"]) as d:
        d.new_client()
        r = subprocess.run([build_path("exportctl"), "--socket", d.socket_path, "list"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert "refused the connection: Too many QMP connections" in r.stderr, r.stderr
