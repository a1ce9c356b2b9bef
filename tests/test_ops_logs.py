"""Where exportd's words go (issue 15): --log-file, reopened on SIGHUP for
logrotate; syslog priority prefixes on stderr when stderr is the journal
(JOURNAL_STREAM); --daemonize with no syslog falls back to a file and
says where."""

import os
import signal
import subprocess

import pytest

from fusetest import need, wait_process_exit
from harness import Daemon, QMPClient, QMPError, build_path, wait_until


def test_log_file_is_reopened_on_sighup(tmp_path):
    log = tmp_path / "exportd.log"
    d = Daemon(tmp_path / "d", extra_args=["--log-file", str(log)])
    try:
        d.start()
        assert "ready" in log.read_text()
        os.rename(log, tmp_path / "exportd.log.1")   # as logrotate does
        d.signal(signal.SIGHUP)
        wait_until(lambda: log.exists() and "log reopened" in log.read_text(),
                   f"exportd to reopen {log} after SIGHUP")
        assert "log reopened" not in (tmp_path / "exportd.log.1").read_text()
        assert d.stop() == 0
        assert "exportd stopped" in log.read_text()
        # The log file took what stderr would have had.
        assert "ready" not in d.log()
    finally:
        d.cleanup()


def _run_with_stderr(tmp_path, journal_stream_of):
    """Start and stop exportd with stderr to a file; JOURNAL_STREAM names
    journal_stream_of's device and inode.  Returns what stderr got."""
    err = tmp_path / "stderr"
    err.touch()
    st = os.stat(journal_stream_of or err)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    sock = tmp_path / "s.sock"
    with open(err, "ab") as f:
        proc = subprocess.Popen([build_path("exportd"), "--socket", str(sock)], env=env,
                                stdout=f, stderr=f, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: "ready" in err.read_text(), "exportd to say it is ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err.read_text()


def test_priority_prefixes_only_when_stderr_is_the_journal(tmp_path):
    (tmp_path / "j").mkdir()
    text = _run_with_stderr(tmp_path / "j", None)
    lines = text.splitlines()
    assert lines and all(line.startswith("<") for line in lines), text
    assert any(line.startswith("<6>exportd: info: exportd ") and "ready" in line
               for line in lines), text
    # JOURNAL_STREAM inherited from a parent whose stderr was the journal.
    (tmp_path / "n").mkdir()
    other = tmp_path / "n" / "not-stderr"
    other.touch()
    text = _run_with_stderr(tmp_path / "n", other)
    assert "ready" in text
    assert not any(line.startswith("<") for line in text.splitlines()), text


def test_daemonize_without_syslog_logs_to_a_file_and_says_where(tmp_path):
    need("unshare")
    if os.path.exists("/dev/log"):
        pytest.skip("a syslog listens on /dev/log here: run where none does")
    pidfile = tmp_path / "d.pid"
    # A private /var/log, so that the fallback file is the test's own.
    script = ('mount -t tmpfs tmpfs /var/log && exec %s --daemonize --socket %s '
              '--pidfile %s' % (build_path("exportd"), tmp_path / "s.sock", pidfile))
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    try:
        assert "no syslog listens on /dev/log: logging to /var/log/exportd.log" in r.stderr
        fallback = f"/proc/{pid}/root/var/log/exportd.log"
        with QMPClient(str(tmp_path / "s.sock")) as q:
            q.cmd("query-version")
        wait_until(lambda: "logging to /var/log/exportd.log" in open(fallback).read(),
                   f"the fallback log {fallback}")
        # The file lives in the daemon's namespace: keep it open past its end.
        with open(fallback) as f:
            os.kill(pid, signal.SIGTERM)
            wait_process_exit(pid)
            assert "exportd stopped" in f.read()
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_process_exit(pid)


def test_the_mount_failure_text_of_libfuse_reaches_the_qmp_error(tmp_path):
    """/dev/fuse replaced by a plain file in a private mount namespace:
    mount(2) refuses it, and libfuse's words come back in the reply."""
    need("unshare")
    fake = tmp_path / "not-a-fuse-device"
    fake.touch()
    img = tmp_path / "img.raw"
    img.write_bytes(b"\0" * 65536)
    mp = tmp_path / "t.fuse"
    mp.touch()
    d = Daemon(tmp_path / "d", wrapper=[
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        'mount --bind "$0" /dev/fuse && exec "$@"', str(fake)])
    try:
        d.start()
        q = d.new_client()
        q.cmd("blockdev-add", driver="file", **{"node-name": "n", "filename": str(img)})
        with pytest.raises(QMPError) as e:
            q.cmd("block-export-add", type="fuse", id="e", **{"node-name": "n",
                                                              "mountpoint": str(mp)})
        assert e.value.desc.startswith("Failed to mount FUSE session to export: fuse: "), \
            e.value.desc
        assert "Invalid argument" in e.value.desc or "failed to open" in e.value.desc
        assert d.stop() == 0
    finally:
        d.cleanup()
