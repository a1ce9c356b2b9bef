"""exportctl and its docs as a newcomer meets them (issue 16): one test per
friction found by following the README and the man pages, each against a
real daemon (or none, where "no daemon" is the point)."""

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios

import pytest

from harness import build_path
from test_exportctl import Pty, exportctl, ok

VERSION = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "VERSION")).read().strip()


# ---- item 3: -v means one thing; --version; version without a daemon ----

def test_dash_v_after_list_is_the_qmp_traffic_not_stats_columns(daemon):
    r = ok(daemon, "list", "-v")
    assert '"execute":"query-block-exports"' in r.stderr
    assert "RD-OPS" not in r.stdout


def test_dash_dash_version_needs_no_daemon(tmp_path):
    r = subprocess.run([build_path("exportctl"), "--socket", str(tmp_path / "none.sock"),
                        "--version"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"exportctl {VERSION}\n", "")


def test_version_without_a_daemon_shows_exportctl_and_says_why_it_fails(tmp_path):
    sock = str(tmp_path / "none.sock")
    r = subprocess.run([build_path("exportctl"), "--socket", sock, "version"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stdout == f"exportctl {VERSION}\n"
    assert r.stderr == f"exportd is not running on {sock}\n"


# ---- item 7: errors in exportctl's terms, the daemon's text kept; --json errors ----

def test_add_with_a_taken_id_says_so_in_exportctl_terms(daemon, fuse, tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "a.raw"), "--image", raw_image,
       "--id", "b")
    other = tmp_path / "other.img"
    other.write_bytes(b"\0" * 65536)
    r = exportctl(daemon, "add", "--mountpoint", str(tmp_path / "b.raw"), "--image",
                  str(other), "--id", "b")
    assert r.returncode == 1
    assert r.stderr == ("exportctl: export id 'b' is taken: its node names are in use "
                        "(give another --id; exportctl nodes lists them) (exportd: "
                        "Duplicate nodes with node-name='b-file')\n")
    assert not (tmp_path / "b.raw").exists(), "the mountpoint add created is removed again"
    ok(daemon, "del", "b")


def test_del_of_an_open_export_names_the_hard_flag(daemon, fuse, tmp_path, raw_image):
    mp = tmp_path / "busy.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    fd = os.open(mp, os.O_RDONLY)
    try:
        r = exportctl(daemon, "del", "busy")
        assert r.returncode == 1
        assert r.stderr.startswith("exportctl: export 'busy' is still open: close its "
                                   "file, or give --hard to remove it anyway (exportd: ")
        assert "mode=hard" in r.stderr, "the daemon's own text is kept after ours"
    finally:
        os.close(fd)
    ok(daemon, "del", "busy")


def test_second_writable_export_of_an_image_names_the_first(daemon, fuse, tmp_path,
                                                            raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "one.raw"), "--image", raw_image,
       "--writable", "--id", "one")
    r = exportctl(daemon, "add", "--mountpoint", str(tmp_path / "two.raw"), "--image",
                  raw_image, "--writable", "--id", "two")
    assert r.returncode == 1
    assert r.stderr.startswith(f"exportctl: '{raw_image}' is already exported by this "
                               "daemon, as export 'one' (exportd: Failed to get ")
    ok(daemon, "del", "one")


def test_json_errors_go_to_stdout_as_the_daemons_json(daemon):
    r = exportctl(daemon, "--json", "stats", "nope")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"error": {"class": "GenericError",
                                              "desc": "Export 'nope' is not found"}}
    assert r.stderr == "exportctl: Export 'nope' is not found\n"


# ---- item 9: del removes the mountpoint file add created, and only that ----

def test_del_removes_the_mountpoint_file_add_created(daemon, fuse, tmp_path, raw_image):
    mp = tmp_path / "made.raw"
    r = ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    assert f"created mountpoint file {mp}" in r.stdout
    r = ok(daemon, "del", "made")
    assert r.stdout == f"deleted export made\nremoved mountpoint file {mp}\n"
    assert not mp.exists()


def test_del_keeps_a_mountpoint_file_that_was_there_before(daemon, fuse, tmp_path,
                                                          raw_image):
    mp = tmp_path / "mine.raw"
    mp.touch()
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    r = ok(daemon, "del", "mine")
    assert r.stdout == "deleted export mine\n"
    assert mp.exists()


def test_del_keeps_a_file_put_where_an_earlier_add_created_one(daemon, qmp, fuse,
                                                              tmp_path, raw_image):
    mp = tmp_path / "swap.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image, "--id", "swap")
    # Another client removes the export behind exportctl's back...
    qmp.cmd("block-export-del", id="swap")
    qmp.wait_event("BLOCK_EXPORT_DELETED", match={"id": "swap"})
    # (the nodes add made went with it: x-delete-nodes)
    assert qmp.cmd("query-named-block-nodes") == []
    # ...and the user puts a file of their own there and exports it again.
    mp.unlink()
    mp.touch()
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image, "--id", "swap")
    r = ok(daemon, "del", "swap")
    assert r.stdout == "deleted export swap\n"
    assert mp.exists()


# ---- item 8: key=value booleans as the daemon's own command line takes them ----

@pytest.mark.parametrize("word,ro", [("on", True), ("yes", True), ("off", False),
                                     ("no", False), ("true", True)])
def test_qmp_key_value_takes_on_off_where_the_schema_says_boolean(daemon, qmp, word, ro):
    ok(daemon, "qmp", "blockdev-add", "driver=null-co", "node-name=n", f"read-only={word}")
    [node] = qmp.cmd("query-named-block-nodes")
    assert node["ro"] is ro


def test_shell_key_value_takes_on_where_the_schema_says_boolean(daemon, qmp):
    r = exportctl(daemon, "shell", input="blockdev-add driver=null-co node-name=s "
                  "read-only=on\n")
    assert r.returncode == 0, r.stderr
    assert [n["ro"] for n in qmp.cmd("query-named-block-nodes")] == [True]


def test_qmp_key_value_a_bad_boolean_gets_the_daemons_error(daemon):
    r = exportctl(daemon, "qmp", "blockdev-add", "driver=null-co", "node-name=n",
                  "read-only=maybe")
    assert r.returncode == 1
    assert r.stderr == ("exportctl: Invalid parameter type for 'read-only', "
                        "expected: boolean\n")


# ---- item 6: the shell's own words, quit that asks, a script's exit status ----

def test_shell_exit_leaves_without_running_the_rest(daemon):
    r = exportctl(daemon, "--json", "shell", input="exit\nquery-version\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_shell_help_says_what_to_type(daemon):
    r = exportctl(daemon, "shell", input="help\n")
    assert r.returncode == 0, r.stderr
    assert "CommandNotFound" not in r.stdout
    assert "query-commands" in r.stdout and "exit (or Ctrl-D)" in r.stdout


def test_shell_script_exits_1_when_a_command_failed(daemon):
    r = exportctl(daemon, "--json", "shell", input="query-version\nno-such-command\n")
    assert r.returncode == 1
    assert json.loads(r.stdout.splitlines()[1])["error"]["class"] == "CommandNotFound"


def test_shell_bare_quit_with_exports_does_not_stop_the_daemon(daemon, qmp, fuse,
                                                              tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "q.raw"), "--image", raw_image)
    r = exportctl(daemon, "shell", input="quit\n")
    assert r.returncode == 1
    assert r.stderr == ("error: quit would stop exportd and unmount every export (q): "
                        'send {"execute": "quit"} to mean it\n')
    assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["q"]
    ok(daemon, "del", "q")


def test_shell_quit_on_a_terminal_asks_and_no_keeps_the_daemon(daemon, qmp, fuse,
                                                                tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "t.raw"), "--image", raw_image)
    home = tmp_path / "home"
    home.mkdir()
    sh = Pty(daemon, home)
    try:
        sh.expect(b"(exportd) ")
        sh.send(b"quit\r")
        sh.expect(b"quit stops exportd and unmounts every export (t). Really quit? "
                  b"Type y to confirm.")
        sh.send(b"n\r")
        sh.expect(b"(exportd) ")
        assert [e["id"] for e in qmp.cmd("query-block-exports")] == ["t"]
        sh.send(b"exit\r")
        assert sh.wait() == 0
    finally:
        try:
            os.kill(sh.pid, signal.SIGKILL)
            os.waitpid(sh.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    ok(daemon, "del", "t")


# ---- item 4: list fits the terminal, numbers right, the open-handle count ----

def run_on_terminal(daemon, args, columns=80):
    """exportctl with stdout on a pseudo-terminal `columns` wide; its output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = dict(os.environ)
    env.pop("EXPORTD_SOCKET", None)
    p = subprocess.Popen([build_path("exportctl"), "--socket", daemon.socket_path, *args],
                         stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:     # EIO: the other end is closed
            break
        if not data:
            break
        out += data
    os.close(master)
    assert p.wait(timeout=30) == 0, p.stderr.read()
    return out.decode().replace("\r\n", "\n")


def test_list_fits_an_80_column_terminal_with_a_long_mountpoint(daemon, fuse, tmp_path,
                                                                raw_image):
    deep = tmp_path / ("a-rather-long-directory-name-" * 3) / "more" / "levels"
    deep.mkdir(parents=True)
    mp = deep / "vm1-export-with-a-long-name.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image, "--id", "long")
    try:
        for args in (["list"], ["list", "--stats"]):
            out = run_on_terminal(daemon, args)
            lines = out.splitlines()
            assert all(len(ln) <= 80 for ln in lines), out
            head, row = lines[0], lines[1]
            assert head.split()[0] == "ID" and "OPEN" in head.split()
            assert "..." in row and row.split()[1].endswith(".raw"), \
                "a long path is shortened in the middle, keeping its end"
        # A pipe gets whole cells, for scripts.
        assert str(mp) in ok(daemon, "list").stdout
    finally:
        ok(daemon, "del", "long")


def test_list_shows_open_handles_right_aligned(daemon, fuse, tmp_path, raw_image):
    mp = tmp_path / "o.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    fds = [os.open(mp, os.O_RDONLY) for _ in range(12)]
    try:
        out = ok(daemon, "list", "-o", "id,size,open").stdout
        assert out == "ID   SIZE  OPEN\no   4 MiB    12\n"
    finally:
        for fd in fds:
            os.close(fd)
    ok(daemon, "del", "o")


def test_list_default_has_no_prose_under_the_table_and_wide_has_reasons(
        daemon, fuse, tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "r.raw"), "--image", raw_image)
    assert len(ok(daemon, "list").stdout.splitlines()) == 2
    wide = ok(daemon, "list", "--wide").stdout.splitlines()
    assert wide[2] == "" and wide[3].startswith("r: ")
    ok(daemon, "del", "r")


def test_list_unknown_column_is_a_usage_error(daemon):
    r = exportctl(daemon, "list", "-o", "id,bogus")
    assert r.returncode == 2
    assert r.stderr.startswith("exportctl: list: unknown column 'bogus' in -o")


def test_help_fits_an_80_column_terminal(daemon):
    for cmd in ("--help", "help add", "help list", "help stats", "help del"):
        out = ok(daemon, *cmd.split()).stdout
        assert all(len(ln) <= 80 for ln in out.splitlines()), out


# ---- item 5: info, wait, stats -i ----

def test_info_tells_everything_about_one_export(daemon, fuse, tmp_path):
    base = tmp_path / "base.qcow2"
    top = tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F",
                    "qcow2", str(top)], check=True)
    mp = tmp_path / "i.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", str(top), "--format", "qcow2",
       "--id", "i")
    fd = os.open(mp, os.O_RDONLY)
    try:
        os.pread(fd, 4096, 0)
        out = run_on_terminal(daemon, ["info", "i"])
    finally:
        os.close(fd)
    # Every line fits, but for a path too long to fit alone (the test's own
    # temporary paths may be): info shows whole paths, wrapped at blanks.
    assert all(len(ln) <= 80 or len(ln[16:].split()) == 1 for ln in out.splitlines()), out
    lines = out.splitlines()
    assert lines[0] == "export i"
    assert f"  mountpoint    {mp}" in lines
    assert "  open handles  1" in lines
    assert "  size          8 MiB" in lines
    assert "  nodes         i-fmt: qcow2" in lines
    assert any(ln.startswith("  data path     userspace: ") for ln in lines)
    flat = " ".join(out.split())    # long paths wrap: compare the words
    assert f"-> i-file: file {top}" in flat
    assert f"image chain {top} (qcow2, 8 MiB) backing {base} (qcow2, 8 MiB)" in flat
    assert re.search(r"requests read [1-9]\d* \(\d+ KiB\), write 0 \(0 B\), errors 0",
                     flat), out
    j = json.loads(ok(daemon, "--json", "info", "i").stdout)
    assert j["export"]["id"] == "i" and j["stats"]["id"] == "i"
    r = exportctl(daemon, "info", "nope")
    assert (r.returncode, r.stderr) == (1, "exportctl: no export 'nope' "
                                           "(exportctl list shows them)\n")
    ok(daemon, "del", "i")


def test_wait_returns_when_the_export_is_deleted(daemon, qmp, fuse, tmp_path, raw_image):
    mp = tmp_path / "w.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image)
    waiter = subprocess.Popen([build_path("exportctl"), "--socket", daemon.socket_path,
                               "-v", "wait", "w"], stderr=subprocess.PIPE, text=True)
    try:
        # Once it has asked for the exports, a deletion reaches it as an event.
        # -v shows its request ("->") and then the reply ("<-").
        line = ""
        while not (line.startswith("->") and "query-block-exports" in line):
            line = waiter.stderr.readline()
            assert line, "exportctl wait ended early"
        while not line.startswith("<-"):
            line = waiter.stderr.readline()
            assert line, "exportctl wait ended early"
        assert waiter.poll() is None, "wait must not return while the export exists"
        ok(daemon, "del", "w")
        assert waiter.wait(timeout=30) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_wait_times_out_saying_what_it_waited_for(daemon, fuse, tmp_path, raw_image):
    ok(daemon, "add", "--mountpoint", str(tmp_path / "t.raw"), "--image", raw_image)
    r = exportctl(daemon, "wait", "t", "--timeout", "0.2")
    assert (r.returncode, r.stderr) == (1, "exportctl: export 't' still exists after "
                                           "0.2 seconds\n")
    r = exportctl(daemon, "wait", "nope", "--mounted", "--timeout", "0.2")
    assert (r.returncode, r.stderr) == (1, "exportctl: export 'nope' does not exist "
                                           "after 0.2 seconds\n")
    ok(daemon, "wait", "t", "--mounted")
    ok(daemon, "del", "t")
    ok(daemon, "wait", "t")


def test_stats_interval_prints_rates_per_op(daemon, fuse, tmp_path, raw_image):
    mp = tmp_path / "s.raw"
    ok(daemon, "add", "--mountpoint", str(mp), "--image", raw_image, "--writable")
    p = subprocess.Popen([build_path("exportctl"), "--socket", daemon.socket_path,
                          "--json", "stats", "-i", "1", "-c", "1", "s"],
                         stdout=subprocess.PIPE, text=True)
    fd = os.open(mp, os.O_RDWR | os.O_DIRECT)
    import mmap
    buf = mmap.mmap(-1, 65536)
    try:
        # Writes until the report is out: every one lands in its interval.
        while p.poll() is None:
            os.pwritev(fd, [buf], 0)
    finally:
        os.close(fd)
    [line] = p.stdout.read().splitlines()
    rates = json.loads(line)
    assert rates["id"] == "s" and 0.9 < rates["interval-s"] < 5
    assert rates["ops"]["write"]["requests-per-s"] > 0
    w = rates["ops"]["write"]
    assert abs(w["mib-per-s"] - w["requests-per-s"] / 16) < 0.01 * w["mib-per-s"] + 1e-9
    out = run_on_terminal(daemon, ["stats", "-i", "0.1", "-c", "2", "s"])
    tables = [b for b in out.split("\n\n") if b.strip()]
    assert len(tables) == 2
    for t in tables:
        lines = t.splitlines()
        assert lines[1].split() == ["OP", "REQ/S", "MIB/S"]
        assert [ln.split()[0] for ln in lines[2:]] == ["read", "write", "flush", "discard",
                                                       "zero", "other"]
        assert all(len(ln) <= 80 for ln in lines)
    ok(daemon, "del", "s")
