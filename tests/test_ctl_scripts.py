"""What ships around exportctl (issue: exportctl): the man pages rendered
by scripts/md2man, the bash completion, and scripts/demo, the README's main
job, run for real on its own directory."""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from harness import build_path, fuse_mounts, unmount_all_under, wait_pid_gone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"


def md2man(name):
    r = subprocess.run([PYTHON, os.path.join(REPO, "scripts", "md2man"),
                        os.path.join(REPO, "doc", name)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("name,title", [("exportd.8.md", ".TH EXPORTD 8 "),
                                        ("exportctl.1.md", ".TH EXPORTCTL 1 ")])
def test_man_page_renders_without_groff_warnings(name, title):
    roff = md2man(name)
    assert roff.startswith(title)
    if not shutil.which("groff"):
        pytest.skip("roff output cannot be checked because groff is missing")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=roff,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_md2man_is_deterministic():
    env = dict(os.environ, SOURCE_DATE_EPOCH="0")
    out = [subprocess.run([PYTHON, os.path.join(REPO, "scripts", "md2man"),
                           os.path.join(REPO, "doc", "exportctl.1.md")],
                          capture_output=True, text=True, env=env).stdout
           for _ in range(2)]
    assert out[0] == out[1]
    assert '"1970-01-01"' in out[0]


def test_md2man_refuses_a_name_without_section(tmp_path):
    bad = tmp_path / "page.md"
    bad.write_text("# NAME\n")
    r = subprocess.run([PYTHON, os.path.join(REPO, "scripts", "md2man"), str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "NAME.SECTION.md" in r.stderr


def test_exportd_man_page_documents_every_command_of_the_schema():
    roff = md2man("exportd.8.md")
    with open(os.path.join(REPO, "schema", "exportd-schema.json")) as f:
        schema = json.load(f)
    names = [d.get("command") or d.get("event") for d in schema["definitions"]
             if "command" in d or "event" in d]
    assert names
    for n in names:
        assert "\\fB" + n.replace("-", "\\-") + "\\fR" in roff, n


def test_exportctl_man_page_documents_every_command(daemon):
    roff = md2man("exportctl.1.md")
    r = subprocess.run([build_path("exportctl"), "help"], capture_output=True, text=True)
    commands = re.findall(r"^  (\w+) ", r.stdout, re.M)
    assert "add" in commands and "shell" in commands
    for c in commands:
        assert "\\fB" + c in roff, c


# ---- bash completion ----

COMPLETE = r'''
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMPREPLY=()
_exportctl
printf '%s\n' "${COMPREPLY[@]}"
'''


def complete(*words, env=None):
    script = os.path.join(REPO, "scripts", "exportctl.bash-completion")
    full_env = dict(os.environ, PATH=os.path.dirname(build_path("exportctl")) + ":" +
                    os.environ.get("PATH", ""))
    full_env.update(env or {})
    r = subprocess.run(["bash", "-c", COMPLETE, "complete", script, "exportctl", *words],
                       capture_output=True, text=True, env=full_env, timeout=30)
    assert r.returncode == 0, r.stderr
    return sorted(x for x in r.stdout.splitlines() if x)


def test_completion_of_commands_and_options():
    assert complete("") == sorted(["add", "del", "list", "stats", "info", "wait", "nodes",
                                   "version", "events", "schema", "qmp", "shell", "help"])
    assert complete("n") == ["nodes"]
    assert complete("add", "--for") == ["--format"]
    assert complete("add", "--format", "") == ["auto", "qcow2", "raw"]
    assert complete("add", "--allow-other", "") == ["auto", "off", "on"]
    assert complete("events", "--f") == ["--follow"]
    assert complete("list", "--st") == ["--stats"]


def test_completion_asks_the_daemon_for_ids_and_commands(daemon, qmp, tmp_path):
    img = tmp_path / "c.img"
    img.write_bytes(b"\0" * 65536)
    qmp.cmd("blockdev-add", driver="file", filename=str(img),
            **{"node-name": "cnode", "read-only": True})
    env = {"EXPORTD_SOCKET": daemon.socket_path}
    assert complete("add", "--node", "", env=env) == ["cnode"]
    assert "query-block-exports" in complete("qmp", "query-b", env=env)
    assert complete("schema", "block-export-d", env=env) == ["block-export-del"]
    assert "x-query-export-stats" in complete("qmp", "x-query-e", env=env)
    # An explicit --socket on the line is used too.
    assert complete("--socket", daemon.socket_path, "add", "--node", "c") == ["cnode"]


# ---- the demo ----

def test_demo_runs_and_stops(tmp_path):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("the demo cannot run because /dev/fuse is missing")
    if not shutil.which("qemu-img"):
        pytest.skip("the demo cannot run because qemu-img is missing")
    demo_dir = tmp_path / "demo"
    env = dict(os.environ, DEMO_DIR=str(demo_dir),
               EXPORTD=build_path("exportd"), EXPORTCTL=build_path("exportctl"))
    demo = os.path.join(REPO, "scripts", "demo")
    pidfile = demo_dir / "exportd.pid"
    try:
        r = subprocess.run([demo], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Hello from exportd!" in r.stdout
        assert "byte for byte the image's contents" in r.stdout
        assert re.search(r"^demo\s+\S+demo\.raw\s+qcow2\s+64 MiB\s+ro\s", r.stdout, re.M)
        assert str(demo_dir / "demo.raw") in fuse_mounts()
        # The demo says how to reach its daemon, and a plain `exportctl list`
        # then works (issue 16 item 2).
        sock = demo_dir / "exportd.sock"
        assert f"export EXPORTD_SOCKET={sock}\n" in r.stdout
        plain = subprocess.run([build_path("exportctl"), "list"], capture_output=True,
                               text=True, env=dict(os.environ, EXPORTD_SOCKET=str(sock)),
                               timeout=30)
        assert plain.returncode == 0 and "demo.raw" in plain.stdout, plain.stderr
        # A second start refuses while the first runs.
        again = subprocess.run([demo], capture_output=True, text=True, env=env, timeout=60)
        assert again.returncode == 1
        assert "already running" in again.stderr

        r = subprocess.run([demo, "--stop"], capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "exportd stopped" in r.stdout
        assert not demo_dir.exists()
    finally:
        if pidfile.exists():
            try:
                pid = int(pidfile.read_text())
                os.kill(pid, signal.SIGKILL)
                wait_pid_gone(pid, f"the demo's exportd (pid {pid}) to die of SIGKILL")
            except (ProcessLookupError, ValueError):
                pass
        left = unmount_all_under(str(tmp_path))
        assert not left, f"FUSE mounts left behind: {left}"
