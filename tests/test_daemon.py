"""exportd as a process: options, socket handling, signals, daemonizing
(issue: foundation)."""

import os
import signal
import socket
import stat
import subprocess

from harness import Daemon, QMPClient, build_path, wait_pid_gone, wait_until


def run_exportd(*args, timeout=20):
    return subprocess.run([build_path("exportd"), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_version():
    r = run_exportd("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("exportd ")


def test_help_lists_options():
    r = run_exportd("--help")
    assert r.returncode == 0
    for opt in ("--socket", "--daemonize", "--pidfile", "--log-level", "--blockdev", "--export"):
        assert opt in r.stdout


def test_unknown_option_is_a_usage_error():
    r = run_exportd("--frobnicate")
    assert r.returncode == 2
    assert "frobnicate" in r.stderr


def test_bad_log_level_is_a_usage_error():
    r = run_exportd("--log-level", "loud")
    assert r.returncode == 2
    assert "'loud'" in r.stderr


def test_socket_is_created_mode_0600(daemon):
    st = os.stat(daemon.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_sigterm_shuts_down_cleanly_and_removes_socket(daemon):
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert not os.path.exists(daemon.socket_path)


def test_sigint_shuts_down_cleanly(daemon):
    daemon.signal(signal.SIGINT)
    assert daemon.wait() == 0
    assert not os.path.exists(daemon.socket_path)


def test_sighup_reopens_log_and_keeps_running(daemon, qmp):
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "reopening the log" in daemon.log(), "exportd to log 'reopening the log'")
    assert daemon.proc.poll() is None
    assert "return" in qmp.execute({"execute": "query-version"})
    assert "reopening the log" in daemon.log()


def test_quit_replies_then_exits(daemon, qmp):
    assert qmp.cmd("quit") == {}
    assert daemon.wait() == 0
    assert not os.path.exists(daemon.socket_path)


def test_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / "d" / "exportd.sock"
    path.parent.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: stale
    d = Daemon(tmp_path / "d")
    try:
        d.start()
        assert "replacing stale socket" in d.log()
        assert "return" in d.new_client().execute({"execute": "query-version"})
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_second_daemon_on_same_socket_refuses_to_start(daemon):
    r = run_exportd("--socket", daemon.socket_path)
    assert r.returncode == 1
    assert "already listening" in r.stderr
    # the first one is unharmed
    assert "return" in daemon.new_client().execute({"execute": "query-version"})


def test_socket_path_that_is_a_regular_file_is_not_replaced(tmp_path):
    f = tmp_path / "notasocket"
    f.write_text("keep me")
    r = run_exportd("--socket", str(f))
    assert r.returncode == 1
    assert "is not a socket" in r.stderr
    assert f.read_text() == "keep me"


def test_daemonize_with_pidfile(tmp_path):
    sock = tmp_path / "s.sock"
    pidfile = tmp_path / "exportd.pid"
    r = run_exportd("--socket", str(sock), "--daemonize", "--pidfile", str(pidfile))
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    try:
        with QMPClient(str(sock)) as c:
            assert "return" in c.execute({"execute": "query-version"})
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_pid_gone(pid, f"the daemonized exportd (pid {pid}) to exit after SIGTERM")
    assert not sock.exists()
    assert not pidfile.exists()


def test_daemonize_reports_startup_failure_in_exit_status(tmp_path):
    r = run_exportd("--socket", str(tmp_path / "no" / "such" / "dir" / "s.sock"),
                    "--daemonize")
    assert r.returncode == 1
    assert "Failed to bind" in r.stderr


def test_qsd_style_chardev_and_monitor(tmp_path):
    sock = tmp_path / "qsd.sock"
    d = Daemon(tmp_path / "d")
    d.socket_path = str(sock)
    try:
        d.start(["--chardev", f"socket,id=m,path={sock},server=on,wait=off",
                 "--monitor", "chardev=m"], socket_arg=False)
        assert "return" in d.new_client().execute({"execute": "query-version"})
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_monitor_naming_unknown_chardev_is_a_usage_error(tmp_path):
    r = run_exportd("--monitor", "chardev=nope")
    assert r.returncode == 2
    assert "'nope'" in r.stderr


def test_invalid_blockdev_option_fails_startup_with_schema_error(tmp_path):
    r = run_exportd("--socket", str(tmp_path / "s"), "--blockdev",
                    "driver=file,node-name=f,filename=x,locking=maybe")
    assert r.returncode == 1
    assert "--blockdev: Parameter 'locking' does not accept value 'maybe'" in r.stderr
    assert not (tmp_path / "s").exists()
