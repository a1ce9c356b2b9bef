"""scripts/qemu-iotests-relay, the stand-in for $QEMU in QEMU's FUSE iotests.

QEMU's iotest 308 starts `$QEMU ... -monitor none -qmp stdio` and talks QMP
on its stdin/stdout.  These tests start the relay the same way, with the
build tree's exportd behind it, and check that QMP goes through both ways
untouched, that a FUSE export works through it, and that exportd ends with
the relay: when its stdin closes, and when the relay is killed outright
(iotests' _cleanup_qemu uses SIGKILL)."""

import json
import os
import select
import signal
import subprocess
import time

import pytest

from fusetest import mounted
from harness import build_path
from harness.daemon import SANITIZER_MARKERS
from harness.images import make_pattern_image
from harness.wait import wait_pid_gone, wait_until

RELAY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "scripts", "qemu-iotests-relay")

# What iotests' common.rc and common.qemu put on $QEMU's command line.
QEMU_ARGS = ["-nodefaults", "-display", "none", "-accel", "qtest",
             "-nographic", "-serial", "none", "-monitor", "none", "-qmp", "stdio"]


class Relay:
    """The relay as a child with pipes on stdin/stdout and its stderr
    (exportd's too) in a log file."""

    def __init__(self, directory, *extra_args):
        self.log_path = directory / "relay.log"
        env = dict(os.environ, EXPORTD=build_path("exportd"))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([RELAY] + QEMU_ARGS + list(extra_args),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, env=env)
        self.buf = b""

    def readline(self, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what} "
                                   f"from the relay; log:\n{self.log()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    raise EOFError(f"relay closed stdout before {what}; log:\n{self.log()}")
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def execute(self, command, arguments=None):
        """Send a command as a multi-line object, as the iotests do, and
        return its reply (events before it are skipped)."""
        msg = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.send(json.dumps(msg, indent=4) + "\n")
        while True:
            reply = self.readline(f"the reply to {command}")
            if "event" not in reply:
                return reply

    def exportd_pid(self):
        """exportd, the relay's only child."""
        def child():
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                pids = f.read().split()
            return int(pids[0]) if pids else None
        return wait_until(child, "the relay to start exportd")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def assert_no_sanitizer_report(self):
        with open(self.log_path, "rb") as f:
            data = f.read()
        assert not any(m in data for m in SANITIZER_MARKERS), data.decode(errors="replace")


@pytest.fixture
def relay(tmp_path):
    r = Relay(tmp_path)
    yield r
    if r.proc.poll() is None:
        r.proc.kill()
    r.proc.wait()


def test_relay_passes_qmp_through_and_serves_a_fuse_export(relay, tmp_path, mp):
    greeting = relay.readline("the QMP greeting")
    assert "capabilities" in greeting["QMP"]
    assert relay.execute("qmp_capabilities") == {"return": {}}

    img = tmp_path / "t.raw"
    make_pattern_image(str(img), 1 << 20)
    reply = relay.execute("blockdev-add", {"driver": "file", "node-name": "node-protocol",
                                           "filename": str(img)})
    assert reply == {"return": {}}
    reply = relay.execute("block-export-add", {"type": "fuse", "id": "export-mp",
                                               "node-name": "node-protocol",
                                               "mountpoint": str(mp)})
    assert reply == {"return": {}}
    assert mounted(str(mp))
    with open(mp, "rb") as exported, open(img, "rb") as original:
        assert exported.read() == original.read()

    reply = relay.execute("query-block-exports")
    assert [e["id"] for e in reply["return"]] == ["export-mp"]
    # An error comes back as exportd says it, not as the relay's.
    reply = relay.execute("blockdev-del", {"node-name": "no-such-node"})
    assert reply["error"]["class"] == "GenericError"
    relay.proc.stdin.close()
    assert relay.proc.wait(timeout=30) == 0
    assert not mounted(str(mp))
    relay.assert_no_sanitizer_report()


def test_relay_ends_exportd_when_stdin_closes(relay):
    relay.readline("the QMP greeting")
    assert relay.execute("qmp_capabilities") == {"return": {}}
    pid = relay.exportd_pid()
    relay.proc.stdin.close()
    assert relay.proc.wait(timeout=30) == 0, relay.log()
    wait_pid_gone(pid, "exportd to exit after the relay's stdin closed")
    relay.assert_no_sanitizer_report()


def test_relay_killed_takes_exportd_and_its_mount_along(relay, tmp_path, mp):
    relay.readline("the QMP greeting")
    assert relay.execute("qmp_capabilities") == {"return": {}}
    img = tmp_path / "t.raw"
    make_pattern_image(str(img), 1 << 20)
    relay.execute("blockdev-add", {"driver": "file", "node-name": "f", "filename": str(img)})
    assert relay.execute("block-export-add", {"type": "fuse", "id": "e", "node-name": "f",
                                              "mountpoint": str(mp)}) == {"return": {}}
    pid = relay.exportd_pid()
    relay.proc.send_signal(signal.SIGKILL)
    relay.proc.wait()
    wait_pid_gone(pid, "exportd to exit after its relay was killed")
    assert not mounted(str(mp))
    relay.assert_no_sanitizer_report()


def test_relay_answers_the_drive_format_probe_from_exportd(tmp_path):
    env = dict(os.environ, EXPORTD=build_path("exportd"))
    out = subprocess.run([RELAY, "-drive", "format=help"], env=env, timeout=30,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("Supported formats: ")
    formats = out.split(":", 1)[1].split()
    assert "file" in formats and "raw" in formats
