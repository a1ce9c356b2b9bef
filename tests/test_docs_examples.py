"""Every example of the README's "Using it" block and of the man pages'
code blocks, run as written on a real daemon (issue 16 item 1): the README
had a check that could not work (`cmp` against `qemu-img convert` to a
pipe, under the export's write lock), and nothing noticed.

Commands run in bash, in a sandbox: the working directory holds the images
the examples name (vm1.qcow2, disk.img), and absolute paths under /srv/,
/var/lib/ and /run/ are moved into the sandbox; nothing else of a line is
changed.  A daemon started in the foreground (as qemu-storage-daemon is)
runs until its mountpoints are up, then gets SIGTERM and must exit 0.
`--follow` runs until it has printed an event.  Every other line must exit 0.
A code block this file does not know fails the test: add it to BLOCKS."""

import contextlib
import errno
import json
import os
import re
import select
import shutil
import signal
import subprocess

import pytest

from harness import build_path, fuse_mounts, unmount_all_under, wait_pid_gone
from harness.wait import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20


def code_blocks(text):
    """The shell blocks (``` or ```sh) of a markdown text, each a list of
    commands (a line ending in a backslash continues on the next); the
    ```python ones are test_python_client.py's."""
    blocks, cur, inside, shell = [], None, False, False
    for line in text.splitlines():
        if line.startswith("```"):
            if inside and shell:
                blocks.append(cur)
            elif not inside:
                cur = []
                shell = line[3:].strip() in ("", "sh")
            inside = not inside
            continue
        if inside:
            if cur and cur[-1].endswith("\\"):
                cur[-1] = cur[-1][:-1] + line
            elif line.strip():
                cur.append(line)
    return blocks


def section(text, title):
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def readme():
    with open(os.path.join(REPO, "README.md")) as f:
        return f.read()


def man(name):
    with open(os.path.join(REPO, "doc", name)) as f:
        return f.read()


class Sandbox:
    def __init__(self, root):
        self.root = root
        self.cwd = root / "work"
        for d in ("work", "srv", "var/lib", "run/exportd"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.dirname(build_path("exportd")) + ":" + self.env["PATH"]
        self.env.pop("EXPORTD_SOCKET", None)
        self.procs = []

    def rewrite(self, cmd):
        return re.sub(r"(?<![\w.])/(srv|var/lib|run)/", lambda m: f"{self.root}/{m.group(1)}/",
                      cmd)

    def qcow2(self, name):
        raw = self.cwd / (name + ".src")
        with open(raw, "wb") as f:
            f.truncate(8 * MiB)
            f.seek(MiB)
            f.write(b"exportd docs example " * 100)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                        str(self.cwd / name)], check=True, capture_output=True)
        raw.unlink()

    def raw(self, name, size=4 * MiB):
        with open(self.cwd / name, "wb") as f:
            f.truncate(size)

    def sh(self, cmd, timeout=60):
        cmd = self.rewrite(cmd)
        r = subprocess.run(["bash", "-c", cmd], cwd=self.cwd, env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        assert r.returncode == 0, f"`{cmd}` exited {r.returncode}:\n{r.stdout}{r.stderr}"
        return r

    def foreground_daemon(self, cmd):
        """exportd without --daemonize: up until its mountpoints are, then SIGTERM."""
        cmd = self.rewrite(cmd)
        mps = [os.path.join(self.cwd, m) for m in re.findall(r"mountpoint=([^,\s]+)", cmd)]
        assert mps, f"`{cmd}`: a foreground daemon example without a mountpoint"
        p = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=self.cwd, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        wait_until(lambda: p.poll() is not None or all(m in fuse_mounts() for m in mps),
                   f"the mountpoints {mps} of `{cmd}`")
        assert p.poll() is None, f"`{cmd}` exited {p.returncode}: {p.stdout.read()}"
        return p, mps

    def stop(self, p, what):
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0, f"`{what}` exited {p.returncode} on SIGTERM: {out}"

    def follow(self, cmd, trigger):
        """A --follow command: runs until it has printed a line; trigger()
        makes an event happen (again, until the command has connected)."""
        cmd = self.rewrite(cmd)
        p = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=self.cwd, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.procs.append(p)

        def printed():
            trigger()
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            return p.stdout.readline() if r else None
        line = wait_until(printed, f"an event printed by `{cmd}`")
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
        return line

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        unmount_all_under(str(self.root))


def daemons_with_socket(sock):
    """Pids of the exportd processes (ours) started with EXPORTD_SOCKET=sock."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"EXPORTD_SOCKET={sock}".encode() in f.read().split(b"\0"):
                    with open(f"/proc/{pid}/comm") as c:
                        if c.read().strip() == "exportd":
                            pids.append(int(pid))
        except OSError:
            pass
    return pids


@pytest.fixture
def sandbox(tmp_path):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the examples export through FUSE and /dev/fuse is missing")
    if not shutil.which("qemu-img"):
        pytest.skip("the examples use qemu-img, which is missing")
    sb = Sandbox(tmp_path)
    try:
        yield sb
    finally:
        sb.cleanup()


# The systemd examples: systemctl needs systemd as PID 1, which a test host
# does not have; test_ops_units.py runs exportd.service and exportd.socket
# as systemd would (systemd-socket-activate, a notify socket) with these
# blocks' exportctl line.  Here: the blocks are exactly those.
SYSTEMD_BLOCKS = [
    ["systemctl enable --now exportd.socket exportd.service   # QMP socket "
     "/run/exportd/exportd.sock",
     "exportctl add --fuse --mountpoint /srv/vm1.raw --image vm1.qcow2 --writable",
     "systemctl status exportd                 # Status: \"1 export\"; logs: "
     "journalctl -u exportd"],
    ["systemctl enable --now exportd.socket exportd.service",
     "exportctl add --mountpoint /srv/vm1.raw --image vm1.qcow2 --writable",
     "systemctl status exportd        # Status: \"1 export\""],
]


def without_systemd_blocks(blocks):
    """blocks less the systemd ones, which must be those test_ops_units runs."""
    out = []
    for b in blocks:
        if b[0].startswith("systemctl "):
            assert b in SYSTEMD_BLOCKS, f"a systemd example this test does not know: {b}"
        else:
            out.append(b)
    return out


def test_readme_using_it_block_runs_as_written(sandbox):
    [block] = without_systemd_blocks(code_blocks(section(readme(), "Using it")))
    sock = str(sandbox.root / "run" / "exportd.sock")
    sandbox.env["EXPORTD_SOCKET"] = sock
    sandbox.qcow2("vm1.qcow2")
    try:
        assert block[0].startswith("exportd --daemonize")
        for cmd in block:
            r = sandbox.sh(cmd)
            if cmd.startswith("exportctl list "):
                assert "vm1" in r.stdout
        assert not os.path.exists(sock), "the block's last line stops the daemon"
        assert not os.path.exists(sandbox.root / "srv" / "vm1.raw"), \
            "del removes the mountpoint file add created"
    finally:
        # The block's `quit` leaves the daemon exiting (slowly under ASan):
        # one that is already gone is fine, but none may outlive the test.
        for pid in daemons_with_socket(sock):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_pid_gone(pid, "the README's exportd")


def test_readme_qsd_style_command_line_runs_as_written(sandbox):
    intro = readme()[:readme().index("\n## ")]
    blocks = [b for b in code_blocks(intro) if b[0].startswith("exportd ")]
    assert len(blocks) == 1
    sandbox.raw("disk.img")
    sandbox.raw("disk.raw", 0)
    [cmd] = blocks[0]
    p, _ = sandbox.foreground_daemon(cmd)
    sandbox.stop(p, cmd)


# exportctl(1): each block by its first line, with what it needs first and
# what undoes it after (not part of the example).
EXPORTCTL_BLOCKS = {
    "exportctl add --mountpoint /srv/vm1.raw --image vm1.qcow2 --writable":
        ([], []),
    "exportctl qmp blockdev-add driver=file node-name=disk filename=/var/lib/disk.img":
        (["truncate -s 4M /var/lib/disk.img"],
         ["exportctl del disk", "exportctl qmp blockdev-del node-name=disk"]),
    "exportctl list --stats":
        (["exportctl add --mountpoint /srv/vm1.raw --image vm1.qcow2"],
         ["exportctl del vm1"]),
    "exportctl --json events --follow":
        ([], []),
}


def test_exportctl_man_page_examples_run_as_written(sandbox, daemon, qmp):
    section_text = man("exportctl.1.md")
    examples = section_text[section_text.index("# EXAMPLES"):]
    blocks = code_blocks(examples)
    assert [b[0] for b in blocks] == list(EXPORTCTL_BLOCKS), \
        "a man page example this test does not know: add it to EXPORTCTL_BLOCKS"
    sandbox.env["EXPORTD_SOCKET"] = daemon.socket_path
    sandbox.qcow2("vm1.qcow2")
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "ev"})
    mp = sandbox.root / "srv" / "ev.raw"
    mp.touch()

    def trigger():
        qmp.cmd("block-export-add", type="fuse", id="ev", mountpoint=str(mp),
                **{"node-name": "ev"})
        qmp.cmd("block-export-del", id="ev")
        qmp.wait_event("BLOCK_EXPORT_DELETED", match={"id": "ev"})

    for block in blocks:
        setup, undo = EXPORTCTL_BLOCKS[block[0]]
        for cmd in setup:
            sandbox.sh(cmd)
        for cmd in block:
            if "--follow" in cmd:
                ev = json.loads(sandbox.follow(cmd, trigger))
                assert ev["event"] == "BLOCK_EXPORT_DELETED"
            else:
                sandbox.sh(cmd)
        for cmd in undo:
            sandbox.sh(cmd)
    assert qmp.cmd("query-block-exports") == []


def test_exportd_man_page_examples_run_as_written(sandbox):
    blocks = without_systemd_blocks(code_blocks(man("exportd.8.md")))
    assert len(blocks) == 3, "a man page example this test does not know: add it here"
    blkdebug, qsd_style, daemonized = blocks

    # NULL-CO AND BLKDEBUG: "makes every write to full.raw fail with ENOSPC".
    sandbox.raw("full.raw", 0)
    [cmd] = blkdebug
    p, [mp] = sandbox.foreground_daemon(cmd)
    fd = os.open(mp, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x" * 4096, 0)
        assert e.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    sandbox.stop(p, cmd)

    # EXAMPLES: qemu-storage-daemon's command line, with a socket.
    sandbox.raw("disk.img")
    sandbox.raw("disk.raw", 0)
    [cmd] = qsd_style
    p, _ = sandbox.foreground_daemon(cmd)
    sock = sandbox.root / "run" / "exportd" / "disk.sock"
    wait_until(lambda: os.path.exists(sock) or p.poll() is not None, f"{sock}")
    assert p.poll() is None
    sandbox.stop(p, cmd)

    # EXAMPLES: in the background, with exportctl (on EXPORTD_SOCKET).
    sandbox.env["EXPORTD_SOCKET"] = str(sandbox.root / "run" / "bg.sock")
    sandbox.qcow2("vm1.qcow2")
    pidfile = sandbox.root / "run" / "exportd.pid"
    try:
        for cmd in daemonized:
            sandbox.sh(cmd)
        assert str(sandbox.root / "srv" / "vm1.raw") in fuse_mounts()
        sandbox.sh("exportctl del vm1")
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_pid_gone(pid, "the daemonized exportd of exportd(8)")
