"""exportctl, the command-line client, run for real against a real exportd
(issue: exportctl).  Every command, --json output parsed, rollback of a
failed add, exit statuses, and the interactive shell through a pty."""

import json
import errno
import os
import pty
import select
import shutil
import signal
import subprocess
import time

import pytest

from harness import QMPError, build_path, make_pattern_image, pattern_bytes, fuse_mounts

MiB = 1 << 20


def exportctl(daemon, *args, socket=None, env=None, timeout=30, input=None):
    """Run exportctl against daemon; a CompletedProcess with text output."""
    sock = socket if socket is not None else daemon.socket_path
    cmd = [build_path("exportctl"), "--socket", sock, *args]
    full_env = dict(os.environ)
    full_env.pop("EXPORTD_SOCKET", None)
    if env:
        full_env.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, input=input)


def ok(daemon, *args, **kwargs):
    r = exportctl(daemon, *args, **kwargs)
    assert r.returncode == 0, f"exportctl {args} failed ({r.returncode}): {r.stderr}"
    return r


def mounted(path):
    return os.path.realpath(path) in fuse_mounts()


def node_names(qmp):
    return sorted(n["node-name"] for n in qmp.cmd("query-named-block-nodes"))


# ---- command line, help and usage errors (no daemon needed) ----

def test_help_lists_every_command_from_the_table(daemon):
    r = ok(daemon, "help")
    assert "valid commands:" in r.stdout
    for cmd in ("add", "del", "list", "nodes", "version", "events", "schema",
                "qmp", "shell"):
        assert f"  {cmd} " in r.stdout


def test_command_help_shows_its_options(daemon):
    r = ok(daemon, "add", "--help")
    for opt in ("--mountpoint", "--image", "--node", "--format", "--writable",
                "--growable", "--allow-other", "--id", "--read-only"):
        assert opt in r.stdout


def test_no_command_is_a_usage_error(daemon):
    r = exportctl(daemon)
    assert r.returncode == 2
    assert "valid commands:" in r.stderr


def test_unknown_command_is_a_usage_error(daemon):
    r = exportctl(daemon, "frobnicate")
    assert r.returncode == 2
    assert "unknown command: frobnicate" in r.stderr
    assert "valid commands:" in r.stderr


def test_ambiguous_prefix_names_the_candidates(daemon):
    r = exportctl(daemon, "s")
    assert r.returncode == 2
    assert "ambiguous command: s (stats, schema, shell)" in r.stderr


def test_unique_prefix_runs_the_command(daemon):
    r = ok(daemon, "--json", "vers")
    assert "qemu" in json.loads(r.stdout)


def test_bad_option_is_a_usage_error(daemon):
    r = exportctl(daemon, "list", "--bogus")
    assert r.returncode == 2
    assert "exportctl: unknown option: --bogus" in r.stderr


def test_option_of_another_command_is_a_usage_error(daemon):
    r = exportctl(daemon, "list", "--hard")
    assert r.returncode == 2


def test_bad_enum_value_is_a_usage_error(daemon, tmp_path):
    r = exportctl(daemon, "add", "--mountpoint", str(tmp_path / "m"),
                  "--image", "x", "--format", "qed")
    assert r.returncode == 2
    assert "invalid value 'qed' for --format" in r.stderr


@pytest.mark.parametrize("args,why", [
    (["--image", "x"], "--mountpoint is required"),
    (["--mountpoint", "m"], "exactly one of --image and --node"),
    (["--mountpoint", "m", "--image", "x", "--node", "n"], "exactly one of --image and --node"),
    (["--mountpoint", "m", "--image", "x", "--growable"], "--growable needs --writable"),
    (["--mountpoint", "m", "--image", "x", "--writable", "--read-only"], "contradict"),
    (["--mountpoint", "m", "--node", "n", "--format", "raw"], "--format applies to --image"),
])
def test_add_usage_errors(daemon, args, why):
    r = exportctl(daemon, "add", *args)
    assert r.returncode == 2
    assert why in r.stderr


def test_del_without_id_is_a_usage_error(daemon):
    r = exportctl(daemon, "del")
    assert r.returncode == 2
    assert "missing argument" in r.stderr


def test_superfluous_argument_is_a_usage_error(daemon):
    r = exportctl(daemon, "list", "extra")
    assert r.returncode == 2
    assert "superfluous argument: extra" in r.stderr


# ---- connecting ----

def test_daemon_not_running_is_one_clear_line(daemon, tmp_path):
    sock = str(tmp_path / "nobody.sock")
    r = exportctl(daemon, "list", socket=sock)
    assert r.returncode == 1
    assert r.stderr == f"exportd is not running on {sock}\n"


def test_stale_socket_file_counts_as_not_running(daemon, tmp_path):
    import socket as so
    sock = str(tmp_path / "stale.sock")
    s = so.socket(so.AF_UNIX)
    s.bind(sock)
    s.close()   # the file stays, nobody listens
    r = exportctl(daemon, "version", socket=sock)
    assert r.returncode == 1
    assert r.stderr == f"exportd is not running on {sock}\n"


def test_socket_from_environment(daemon):
    cmd = [build_path("exportctl"), "--json", "version"]
    env = dict(os.environ, EXPORTD_SOCKET=daemon.socket_path)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "package" in json.loads(r.stdout)


def test_verbose_shows_the_qmp_traffic(daemon):
    r = ok(daemon, "-v", "version")
    assert '-> {"execute":"qmp_capabilities"' in r.stderr
    assert "<- " in r.stderr


# ---- version, schema, qmp ----

def test_version(daemon, qmp):
    r = ok(daemon, "version")
    info = qmp.cmd("query-version")
    assert r.stdout.startswith("exportctl ")
    assert info["package"] in r.stdout
    j = json.loads(ok(daemon, "--json", "version").stdout)
    assert j == info


def test_schema_lists_commands_and_events(daemon, qmp):
    r = ok(daemon, "schema")
    assert "commands:" in r.stdout and "events:" in r.stdout
    for c in qmp.cmd("query-commands"):
        assert f"  {c['name']}\n" in r.stdout


def test_schema_of_one_command(daemon):
    r = ok(daemon, "schema", "block-export-del")
    assert "block-export-del (command)" in r.stdout
    assert "id" in r.stdout and "[mode]" in r.stdout
    assert "safe|hard" in r.stdout


def test_schema_json_of_one_command_includes_its_types(daemon):
    entries = json.loads(ok(daemon, "--json", "schema", "query-version").stdout)
    names = [e["name"] for e in entries]
    assert names[0] == "query-version"
    cmd = entries[0]
    assert cmd["meta-type"] == "command"
    assert cmd["ret-type"] in names


def test_schema_of_unknown_command_fails(daemon):
    r = exportctl(daemon, "schema", "no-such-command")
    assert r.returncode == 1
    assert "no-such-command" in r.stderr


def test_qmp_passthrough_returns_json(daemon, qmp):
    r = ok(daemon, "--json", "qmp", "query-version")
    assert json.loads(r.stdout) == qmp.cmd("query-version")


def test_qmp_passthrough_error_is_the_daemons(daemon):
    r = exportctl(daemon, "qmp", "no-such-command")
    assert r.returncode == 1
    assert r.stderr == "exportctl: The command no-such-command has not been found\n"


def test_qmp_passthrough_key_value_and_json_args(daemon, qmp, raw_image):
    ok(daemon, "qmp", "blockdev-add", "driver=file", "node-name=kv",
       f"filename={raw_image}", "read-only=true")
    ok(daemon, "qmp", "blockdev-add",
       json.dumps({"driver": "raw", "node-name": "js", "file": "kv"}))
    nodes = {n["node-name"]: n for n in qmp.cmd("query-named-block-nodes")}
    assert nodes["kv"]["ro"] is True
    assert nodes["js"]["drv"] == "raw"


def test_qmp_passthrough_bad_args_is_a_usage_error(daemon):
    r = exportctl(daemon, "qmp", "query-version", "{not json")
    assert r.returncode == 2
    r = exportctl(daemon, "qmp", "query-version", "novalue")
    assert r.returncode == 2


# ---- add / list / nodes / del ----

def test_add_raw_image_then_list_and_del(daemon, qmp, fuse, tmp_path, raw_image):
    mp = tmp_path / "disk.raw"
    r = ok(daemon, "add", "--fuse", "--mountpoint", str(mp), "--image", raw_image)
    assert f"created mountpoint file {mp}" in r.stdout
    assert "id: disk" in r.stdout
    assert f"mountpoint: {mp}" in r.stdout
    assert mounted(mp)
    with open(mp, "rb") as f:
        assert f.read() == pattern_bytes(0, 4 * MiB, seed=7)

    r = ok(daemon, "list", "--wide")
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["ID", "MOUNTPOINT", "NODE", "FORMAT", "IMAGE", "SIZE",
                              "WRITABLE", "GROWABLE", "ALLOW-OTHER", "DATA-PATH", "OPEN"]
    assert row.split()[:6] == ["disk", str(mp), "disk-fmt", "raw", raw_image, "4"]
    assert row.split()[7] == "no"   # writable

    r = ok(daemon, "del", "disk")
    assert "deleted export disk" in r.stdout
    assert not mounted(mp)
    assert node_names(qmp) == []
    assert qmp.cmd("query-block-exports") == []


def test_add_json_output_and_list_json(daemon, qmp, fuse, tmp_path, raw_image):
    mp = tmp_path / "j.raw"
    mp.touch()
    added = json.loads(ok(daemon, "--json", "add", "--mountpoint", str(mp),
                          "--image", raw_image, "--writable", "--id", "jx").stdout)
    assert added["id"] == "jx"
    assert added["mountpoint"] == str(mp)
    assert added["format"] == "raw"
    assert added["created-mountpoint"] is False
    exports = json.loads(ok(daemon, "--json", "list").stdout)
    assert exports == qmp.cmd("query-block-exports")
    (e,) = exports
    assert e["id"] == "jx" and e["node-name"] == "jx-fmt"
    assert e.get("x-mountpoint") == str(mp)
    assert e.get("x-writable") is True
    ok(daemon, "del", "jx")


def test_add_writable_writes_land_in_the_image(daemon, fuse, tmp_path, raw_image):
    mp = tmp_path / "w.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image, "--writable")
    with open(mp, "r+b") as f:
        f.seek(MiB)
        f.write(b"written through exportctl")
        f.flush()
        os.fsync(f.fileno())
    ok(daemon, "del", "w")
    with open(raw_image, "rb") as f:
        f.seek(MiB)
        assert f.read(25) == b"written through exportctl"


def test_add_read_only_refuses_writes(daemon, fuse, tmp_path, raw_image):
    mp = tmp_path / "ro.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image, "--read-only")
    with pytest.raises(OSError):
        with open(mp, "r+b") as f:
            f.write(b"x")
            f.flush()
    ok(daemon, "del", "ro")


def test_add_qcow2_is_probed(daemon, qmp, fuse, tmp_path):
    if not shutil.which("qemu-img"):
        pytest.skip("qcow2 probing cannot be tested because qemu-img is missing")
    src = make_pattern_image(str(tmp_path / "src.raw"), 2 * MiB, seed=3)
    img = str(tmp_path / "disk.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, img], check=True)
    qmp.cmd("blockdev-add", driver="file", filename=img,
            **{"node-name": "probe-file", "read-only": True})
    try:
        qmp.cmd("blockdev-add", driver="qcow2", file="probe-file",
                **{"node-name": "probe", "read-only": True})
        qmp.cmd("blockdev-del", **{"node-name": "probe"})
    except QMPError as e:
        qmp.cmd("blockdev-del", **{"node-name": "probe-file"})
        pytest.skip(f"qcow2 exports cannot be tested because exportd cannot open "
                    f"a qcow2 node: {e.desc}")
    qmp.cmd("blockdev-del", **{"node-name": "probe-file"})
    mp = tmp_path / "q.raw"
    r = ok(daemon, "--json", "add", "--mountpoint", str(mp), "--image", img)
    added = json.loads(r.stdout)
    assert added["format"] == "qcow2"
    # The exported file holds the guest's view, not the qcow2 file.
    cmp = subprocess.run(["qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2",
                          str(mp), img], capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    row = ok(daemon, "list", "--wide").stdout.splitlines()[1].split()
    assert row[3] == "qcow2" and row[5:7] == ["2", "MiB"]
    ok(daemon, "del", added["id"])


def test_add_quiet_prints_only_the_id(daemon, fuse, tmp_path, raw_image):
    r = ok(daemon, "-q", "add", "--mountpoint", str(tmp_path / "quiet.raw"),
           "--image", raw_image)
    assert r.stdout == "quiet\n"
    ok(daemon, "-q", "del", "quiet")


def test_add_picks_a_free_id(daemon, fuse, tmp_path, raw_image):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ok(daemon, "-q", "add", "--mountpoint", str(tmp_path / "a" / "same.raw"),
       "--image", raw_image)
    r = ok(daemon, "-q", "add", "--mountpoint", str(tmp_path / "b" / "same.raw"),
           "--image", raw_image)
    assert r.stdout == "same-2\n"
    ok(daemon, "del", "same-2")
    ok(daemon, "del", "same")


def test_add_node_made_by_hand_is_kept_on_del(daemon, qmp, fuse, tmp_path, raw_image):
    qmp.cmd("blockdev-add", driver="file", filename=raw_image,
            **{"node-name": "mine", "read-only": True})
    mp = tmp_path / "n.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--node", "mine", "--id", "n")
    assert qmp.cmd("query-block-exports")[0]["node-name"] == "mine"
    ok(daemon, "del", "n")
    assert node_names(qmp) == ["mine"]


def test_failed_export_rolls_back_nodes(daemon, qmp, fuse, tmp_path, raw_image):
    mp = tmp_path / "adir"
    mp.mkdir()      # a directory: block-export-add refuses it
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    assert r.returncode == 1
    assert r.stderr.startswith("exportctl: ")
    assert "not a regular file" in r.stderr
    assert node_names(qmp) == []
    assert qmp.cmd("query-block-exports") == []


def test_failed_node_rolls_back_and_removes_created_mountpoint(daemon, qmp, tmp_path,
                                                               raw_image):
    mp = tmp_path / "never.raw"
    # A raw file opened as qcow2: the second blockdev-add fails.
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image", raw_image,
                  "--format", "qcow2")
    assert r.returncode == 1
    assert r.stderr.startswith("exportctl: ")
    assert node_names(qmp) == []
    assert not mp.exists()


def test_duplicate_id_is_refused_and_rolled_back(daemon, qmp, fuse, tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "one.raw"), "--image", raw_image,
       "--id", "dup")
    before = node_names(qmp)
    r = exportctl(daemon, "add", "--mountpoint", str(tmp_path / "two.raw"),
                  "--image", raw_image, "--id", "dup")
    assert r.returncode == 1
    assert node_names(qmp) == before
    assert not (tmp_path / "two.raw").exists()
    ok(daemon, "del", "dup")


def test_missing_image_fails_before_touching_anything(daemon, qmp, tmp_path):
    mp = tmp_path / "m.raw"
    r = exportctl(daemon, "add", "--mountpoint", str(mp), "--image",
                  str(tmp_path / "nope.img"))
    assert r.returncode == 1
    assert "No such file or directory" in r.stderr
    assert not mp.exists()
    assert node_names(qmp) == []


def test_del_unknown_id_fails(daemon):
    r = exportctl(daemon, "del", "ghost")
    assert r.returncode == 1
    assert r.stderr.startswith("exportctl: ")
    assert "ghost" in r.stderr


def test_del_safe_refuses_open_file_and_hard_forces(daemon, qmp, fuse, tmp_path, raw_image):
    mp = tmp_path / "busy.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    fd = os.open(mp, os.O_RDONLY)
    try:
        r = exportctl(daemon, "del", "busy")
        assert r.returncode == 1, "safe mode must refuse while the file is open"
        assert r.stderr.startswith("exportctl: ")
        assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["busy"]
        r = ok(daemon, "del", "--hard", "busy")
        assert "deleted export busy" in r.stdout
    finally:
        # After a hard delete the connection is gone: close() may say so
        # (EIO where the export was passed through: its handle was revoked).
        try:
            os.close(fd)
        except OSError as e:
            assert e.errno in (errno.ENOTCONN, errno.EIO)
    assert not mounted(mp)
    assert node_names(qmp) == []


def test_nodes(daemon, qmp, raw_image):
    r = ok(daemon, "nodes")
    assert r.stdout == "no block nodes\n"
    qmp.cmd("blockdev-add", driver="file", filename=raw_image,
            **{"node-name": "nf", "read-only": True})
    r = ok(daemon, "nodes")
    header, row = r.stdout.splitlines()
    assert header.split() == ["NODE", "DRIVER", "READ-ONLY", "SIZE", "FILE"]
    assert row.split() == ["nf", "file", "yes", "4", "MiB", raw_image]
    nodes = json.loads(ok(daemon, "--json", "nodes").stdout)
    assert [n["node-name"] for n in nodes] == ["nf"]


def test_list_empty(daemon):
    assert ok(daemon, "list").stdout == "no exports\n"
    assert json.loads(ok(daemon, "--json", "list").stdout) == []


# ---- events ----

def _start_events(daemon, *args):
    """exportctl events in the background, returned once it is negotiated."""
    cmd = [build_path("exportctl"), "--socket", daemon.socket_path, "-v", "events", *args]
    # The test stops it with SIGINT, which a shell's background job (a suite
    # run with &) inherits as ignored: give exportctl the default action.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 10
    seen = ""
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        seen += line
        if '<- {"return"' in line:
            return p
        if not line and p.poll() is not None:
            break
    p.kill()
    raise AssertionError(f"exportctl events did not negotiate: {seen}")


def test_events_prints_the_next_event(daemon, qmp, fuse, tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "ev.raw"), "--image", raw_image)
    p = _start_events(daemon, "--json", "--timeout", "20")
    qmp.cmd("block-export-del", id="ev")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    ev = json.loads(out)
    assert ev["event"] == "BLOCK_EXPORT_DELETED"
    assert ev["data"] == {"id": "ev"}
    assert set(ev["timestamp"]) == {"seconds", "microseconds"}


def test_events_follow_prints_every_event(daemon, qmp, fuse, tmp_path, raw_image):
    for name in ("f1", "f2"):
        ok(daemon, "add", "--mountpoint", str(tmp_path / f"{name}.raw"), "--image",
           raw_image)
    p = _start_events(daemon, "--follow")
    try:
        for name in ("f1", "f2"):
            qmp.cmd("block-export-del", id=name)
            qmp.wait_event("BLOCK_EXPORT_DELETED", match={"id": name})
        lines = [p.stdout.readline() for _ in range(2)]
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
    assert 'BLOCK_EXPORT_DELETED {"id":"f1"}' in lines[0]
    assert 'BLOCK_EXPORT_DELETED {"id":"f2"}' in lines[1]


def test_events_timeout_without_event_fails(daemon):
    r = exportctl(daemon, "events", "--timeout", "0.3")
    assert r.returncode == 1
    assert "no event within 0.3 seconds" in r.stderr


def test_events_follow_timeout_ends_cleanly(daemon):
    r = exportctl(daemon, "events", "--follow", "--timeout", "0.3")
    assert r.returncode == 0
    assert r.stdout == ""


# ---- shell ----

def test_shell_reads_commands_from_stdin(daemon, qmp, raw_image):
    lines = "\n".join([
        "query-version",
        f"blockdev-add driver=file node-name=sh filename={raw_image} read-only=true",
        '{"execute": "query-named-block-nodes"}',
        "no-such-command",
        "",
    ])
    r = exportctl(daemon, "--json", "shell", input=lines)
    assert r.returncode == 1, "no-such-command failed: a script's shell says so"
    replies = [json.loads(x) for x in r.stdout.splitlines()]
    assert replies[0]["return"] == qmp.cmd("query-version")
    assert replies[1] == {"return": {}}
    assert [n["node-name"] for n in replies[2]["return"]] == ["sh"]
    assert replies[3]["error"]["class"] == "CommandNotFound"


def test_shell_reports_bad_lines_and_goes_on(daemon):
    r = exportctl(daemon, "--json", "shell", input='{"broken\nquery-version novalue\nquery-version\n')
    assert r.returncode == 1, "bad lines are reported, the rest run, and the status says so"
    assert "error: invalid JSON" in r.stderr
    assert "error: expected KEY=VALUE" in r.stderr
    assert "return" in json.loads(r.stdout.splitlines()[-1])


class Pty:
    """exportctl shell on a pseudo-terminal."""

    def __init__(self, daemon, home):
        env = dict(os.environ, HOME=str(home), TERM="xterm")
        env.pop("EXPORTD_SOCKET", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(build_path("exportctl"),
                      ["exportctl", "--socket", daemon.socket_path, "shell"], env)
        self.out = b""

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, needle, timeout=10):
        """Read until needle has appeared after what was already consumed."""
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen in {self.out!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"eof before {needle!r}: {self.out!r}")
                self.out += data
        i = self.out.index(needle) + len(needle)
        seen, self.out = self.out[:i], self.out[i:]
        return seen

    def wait(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                os.read(self.fd, 4096)
            except OSError:
                pass
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("exportctl shell did not exit")


def test_shell_on_a_terminal(daemon, qmp, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    sh = Pty(daemon, home)
    try:
        sh.expect(b"(exportd) ")
        sh.send(b"query-version\r")
        sh.expect(b'"package"')
        sh.expect(b"(exportd) ")
        # Up arrow recalls the last line; Enter runs it again.
        sh.send(b"\x1b[A")
        sh.expect(b"query-version")
        sh.send(b"\r")
        sh.expect(b'"package"')
        sh.expect(b"(exportd) ")
        # Tab completes a unique command name.
        sh.send(b"query-ver\t")
        sh.expect(b"query-version ")
        sh.send(b"\x15")    # Ctrl-U drops the line
        sh.send(b"no-such-command\r")
        sh.expect(b"CommandNotFound")
        sh.expect(b"(exportd) ")
        # Editing: type, move left, insert.
        sh.send(b"query-versio\x1b[D\x1b[C" + b"n\r")
        sh.expect(b'"package"')
        sh.expect(b"(exportd) ")
        sh.send(b"\x04")    # Ctrl-D on an empty line leaves
        assert sh.wait() == 0
    finally:
        try:
            os.kill(sh.pid, signal.SIGKILL)
            os.waitpid(sh.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    hist = (home / ".exportctl_history").read_text().splitlines()
    # Repeating the previous line does not store it twice.
    assert hist == ["query-version", "no-such-command", "query-version"]


def test_shell_prints_events_while_idle(daemon, qmp, fuse, tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "idle.raw"), "--image", raw_image)
    home = tmp_path / "home"
    home.mkdir()
    sh = Pty(daemon, home)
    try:
        sh.expect(b"(exportd) ")
        qmp.cmd("block-export-del", id="idle")
        sh.expect(b'"BLOCK_EXPORT_DELETED"')
        sh.expect(b"(exportd) ")
        sh.send(b"\x04")
        assert sh.wait() == 0
    finally:
        try:
            os.kill(sh.pid, signal.SIGKILL)
            os.waitpid(sh.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_list_shows_writable_growable_allow_other(daemon, fuse, tmp_path, raw_image):
    ok(daemon, "-q", "add", "--mountpoint", str(tmp_path / "g.raw"), "--image", raw_image,
       "--writable", "--growable", "--allow-other", "off")
    row = ok(daemon, "list", "--wide").stdout.splitlines()[1].split()
    assert row[0] == "g"
    assert row[-5:] == ["yes", "yes", "no", "userspace", "0"]
    (e,) = json.loads(ok(daemon, "--json", "list").stdout)
    assert (e.get("x-writable"), e.get("x-growable"), e.get("x-allow-other")) == \
        (True, True, False)
    # growable really grows: a write past the end extends the image.
    with open(tmp_path / "g.raw", "r+b") as f:
        f.seek(4 * MiB)
        f.write(b"tail")
    assert os.path.getsize(raw_image) >= 4 * MiB + 4
    ok(daemon, "del", "g")


@pytest.mark.parametrize("opts,path,why", [
    ([], "passthrough", "the kernel serves reads from the image directly"),
    (["--passthrough", "off"], "userspace", "disabled (passthrough: off)"),
    (["--writable", "--growable", "--passthrough", "on"], "passthrough",
     "the kernel serves reads and writes"),
])
def test_list_says_data_path_and_why(daemon, qmp, fuse, tmp_path, raw_image, opts, path, why):
    mp = tmp_path / "p.raw"
    ok(daemon, "-q", "add", "--mountpoint", str(mp), "--image", raw_image, *opts)
    (e,) = qmp.cmd("query-block-exports")
    if e["x-data-path"] != path and "FUSE_PASSTHROUGH" in e["x-data-path-reason"]:
        ok(daemon, "del", "--hard", "p")
        pytest.skip("this kernel has no FUSE passthrough: " + e["x-data-path-reason"])
    lines = ok(daemon, "list", "--wide").stdout.splitlines()
    assert lines[0].split()[-2:] == ["DATA-PATH", "OPEN"]
    assert lines[1].split()[-2:] == [path, "0"]
    assert lines[2] == ""
    assert lines[3].startswith("p: %s: %s" % (path, why)), lines[3]
    assert ok(daemon, "-q", "list", "--wide").stdout.splitlines()[1:] == [lines[1]]
    ok(daemon, "del", "--hard", "p")


def test_add_passthrough_value_is_checked(daemon, tmp_path, raw_image):
    r = exportctl(daemon, "add", "--mountpoint", str(tmp_path / "x.raw"), "--image",
                  raw_image, "--passthrough", "sometimes")
    assert r.returncode == 2
    assert r.stderr.startswith("exportctl: invalid value 'sometimes' for --passthrough "
                               "(valid: on, off, auto)\n"), r.stderr
