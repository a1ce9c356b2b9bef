"""The shipped systemd units (issue 15), run as systemd would run them where
systemd is not PID 1: exportd.service's ExecStart under a real
systemd-socket-activate holding exportd.socket's ListenStream (paths moved
into the test's directory), with a notify socket of the test's; the README's
`exportctl add`; then a crash (kill -9) and the restart that
Restart=on-failure makes: the export is back on its mountpoint."""

import os
import shlex
import signal
import subprocess

from fusetest import need
from harness import QMPClient, build_path, wait_until
from harness.daemon import REPO
from test_ops_systemd import NotifyListener

# Options that give the service a mount namespace (its mounts would be
# invisible to the host) or deny /dev/fuse: exportd.service must not use them.
FORBIDDEN = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
             "PrivateMounts", "ProtectKernelTunables", "ProtectKernelModules",
             "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ReadOnlyPaths",
             "InaccessiblePaths", "BindPaths", "TemporaryFileSystem", "DevicePolicy",
             "DeviceAllow", "ProtectClock", "PrivateUsers")


def unit(name):
    """{key: [values]} of a unit file in scripts/."""
    keys = {}
    for line in open(os.path.join(REPO, "scripts", name)):
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    return keys


def test_service_unit_settings():
    svc = unit("exportd.service")
    assert svc["Type"] == ["notify"]
    assert svc["LimitNOFILE"] == ["65536"]
    assert svc["Restart"] == ["on-failure"]
    assert "exportd.socket" in svc["Requires"][0]
    assert not [k for k in svc if k in FORBIDDEN]
    sock = unit("exportd.socket")
    assert sock["ListenStream"] == ["/run/exportd/exportd.sock"]
    assert sock["SocketMode"] == ["0600"]


class Activated:
    """exportd.service's command line behind systemd-socket-activate."""

    def __init__(self, tmp_path, notify):
        svc = unit("exportd.service")
        argv = shlex.split(svc["ExecStart"][0])
        assert argv[0] == "@SBINDIR@/exportd"
        state = argv.index("--state-file") + 1
        assert argv[state] == "/var/lib/exportd/state.json"
        argv[0] = build_path("exportd")
        argv[state] = str(tmp_path / "state.json")
        self.sock = tmp_path / "exportd.sock"
        self.log = tmp_path / "exportd.log"
        # It passes on only the variables it is told to, as systemd does.
        self.argv = ["systemd-socket-activate", "-l", str(self.sock),
                     "-E", f"NOTIFY_SOCKET={notify.path}", *argv]
        self.env = dict(os.environ)
        self.proc = None

    def start(self):
        if self.sock.exists():
            self.sock.unlink()
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=f, stderr=f,
                                         stdin=subprocess.DEVNULL)
        wait_until(self.sock.exists, f"systemd-socket-activate to bind {self.sock}")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def exportctl(sock, *args):
    env = dict(os.environ)
    env.pop("EXPORTD_SOCKET", None)
    return subprocess.run([build_path("exportctl"), "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=30, env=env)


def test_units_run_restart_after_a_crash_with_the_export_back(tmp_path):
    need("systemd-socket-activate")
    need("qemu-img")
    img = tmp_path / "vm1.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "8M"], check=True)
    mp = tmp_path / "vm1.raw"
    notify = NotifyListener(tmp_path / "notify.sock")
    svc = Activated(tmp_path, notify)
    try:
        svc.start()
        # The README's command; its first connection starts exportd.
        r = exportctl(svc.sock, "add", "--fuse", "--mountpoint", str(mp), "--image",
                      str(img), "--writable")
        assert r.returncode == 0, r.stderr + svc.log.read_text()
        notify.wait_for("READY=1")
        notify.wait_for("STATUS=1 export")
        with open(mp, "r+b") as f:
            f.write(b"survives a crash")
            os.fsync(f.fileno())
        assert svc.stop(signal.SIGKILL) == -signal.SIGKILL
        # Restart=on-failure: the same command line again.
        svc.start()
        with QMPClient(str(svc.sock)) as q:
            assert [e["id"] for e in q.cmd("query-block-exports")] == ["vm1"]
        notify.wait_for("READY=1", times=2)
        assert mp.read_bytes()[:16] == b"survives a crash"
        r = exportctl(svc.sock, "del", "vm1")
        assert r.returncode == 0, r.stderr
        assert svc.stop() == 0
        notify.wait_for("STOPPING=1")
    finally:
        svc.cleanup()
        notify.close()
    r = subprocess.run(["qemu-img", "check", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
