"""exportd under systemd (issue 15): readiness notification on the
NOTIFY_SOCKET datagram socket (READY=1 once the QMP socket listens,
STATUS= with the export count, STOPPING=1), socket activation through
LISTEN_FDS with a real systemd-socket-activate, and --daemonize leaving
the caller's directory for "/" after resolving the relative paths it was
given.  systemd is not PID 1 here, so a socket of the test's stands for
its notify socket."""

import os
import signal
import socket
import subprocess

import pytest

from fusetest import add_export, add_file_node, del_export, need, wait_process_exit
from harness import Daemon, QMPClient, build_path, wait_until


class NotifyListener:
    """A fake systemd notify socket: collects the datagrams exportd sends."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages = []

    def _drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return

    def count(self, line):
        self._drain()
        return sum(line in m.split("\n") for m in self.messages)

    def wait_for(self, line, times=1, timeout=15):
        wait_until(lambda: self.count(line) >= times,
                   f"'{line}' {times} time(s) on the notify socket", timeout)

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifyListener(tmp_path / "notify.sock")
    yield n
    n.close()


def test_notify_ready_once_the_socket_listens(tmp_path, notify):
    d = Daemon(tmp_path / "d", env={"NOTIFY_SOCKET": notify.path})
    try:
        d.start(wait=False)
        notify.wait_for("READY=1")
        # READY=1 promises a listening socket: connecting must work now.
        QMPClient(d.socket_path).close()
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_notify_status_counts_exports_and_stopping(tmp_path, notify, mp):
    img = tmp_path / "img.raw"
    img.write_bytes(b"\0" * 65536)
    d = Daemon(tmp_path / "d", env={"NOTIFY_SOCKET": notify.path})
    try:
        d.start()
        notify.wait_for("STATUS=0 exports")
        q = d.new_client()
        add_file_node(q, "n", img)
        add_export(q, "e", "n", mp)
        notify.wait_for("STATUS=1 export")
        del_export(q, "e")
        notify.wait_for("STATUS=0 exports", times=2)
        d.signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert d.wait() == 0
    finally:
        d.cleanup()


def test_socket_activation_with_systemd_socket_activate(tmp_path):
    need("systemd-socket-activate")
    sock = tmp_path / "activated.sock"
    log = tmp_path / "exportd.log"
    # No --socket: the socket systemd-socket-activate passes is the QMP socket.
    with open(log, "wb") as logf:
        proc = subprocess.Popen(["systemd-socket-activate", "-l", str(sock),
                                 build_path("exportd"), "--log-level", "debug"],
                                stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: sock.exists(), f"systemd-socket-activate to bind {sock}")
        # The first connection starts exportd, which must greet on it.
        with QMPClient(str(sock), timeout=15) as q:
            assert q.greeting["QMP"]["version"]
            assert q.cmd("query-block-exports") == []
        text = log.read_text()
        assert "listening on the QMP socket passed as fd 3" in text, text
        assert "listening on /run/exportd" not in text, text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_listen_fds_that_is_not_a_socket_is_refused(tmp_path):
    # LISTEN_PID must be exportd's own pid: the shell's, which exec keeps.
    script = ('LISTEN_PID=$$ LISTEN_FDS=1 exec %s --socket %s 3</dev/null'
              % (build_path("exportd"), tmp_path / "s.sock"))
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "fd 3 is not a listening stream socket" in r.stderr


def test_daemonize_chdir_root_after_resolving_relative_paths(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([build_path("exportd"), "--daemonize", "--socket", "q.sock",
                        "--pidfile", "d.pid", "--log-file", "d.log"],
                       cwd=work, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    pid = int((work / "d.pid").read_text())
    try:
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        with QMPClient(str(work / "q.sock")) as q:
            q.cmd("query-version")
        assert "ready" in (work / "d.log").read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_process_exit(pid)
    # Removed by their absolute names, though the daemon ran in "/".
    assert not (work / "d.pid").exists()
    assert not (work / "q.sock").exists()
    assert "exportd stopped" in (work / "d.log").read_text()
