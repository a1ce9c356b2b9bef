"""Python clients of exportd (issue 16 item 10): QEMU's qemu.qmp works
unchanged, and exportd.qmp (client/python, installed by make install) is a
stdlib-only client for those without it.  The README's Python examples run
as written, on a real daemon, with the socket path moved to the test's."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "client", "python"))

from exportd.qmp import QMPClient, QMPError  # noqa: E402


def readme_python_blocks():
    with open(os.path.join(REPO, "README.md")) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def run_example(code, daemon):
    code = code.replace("/run/exportd/exportd.sock", daemon.socket_path)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "client", "python"))
    return subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True,
                          text=True, env=env, timeout=60)


def test_readme_has_the_two_python_examples():
    blocks = readme_python_blocks()
    assert [("qemu.qmp" in b, "exportd.qmp" in b) for b in blocks] == \
        [(True, False), (False, True)]


def test_readme_qemu_qmp_example_runs(daemon):
    if importlib.util.find_spec("qemu") is None or \
            importlib.util.find_spec("qemu.qmp") is None:
        pytest.skip("QEMU's qemu.qmp package is not installed (pip install qemu.qmp): "
                    "its README example cannot be run")
    [code] = [b for b in readme_python_blocks() if "qemu.qmp" in b]
    r = run_example(code, daemon)
    assert (r.returncode, r.stdout) == (0, "[]\n"), r.stderr


def test_readme_exportd_qmp_example_runs(daemon):
    [code] = [b for b in readme_python_blocks() if "exportd.qmp" in b]
    r = run_example(code, daemon)
    assert (r.returncode, r.stdout) == (0, "[]\n"), r.stderr


def test_exportd_qmp_errors_carry_the_class(daemon):
    with QMPClient(daemon.socket_path) as qmp:
        with pytest.raises(QMPError) as e:
            qmp.execute("block-export-del", id="nope")
        assert (e.value.cls, e.value.desc) == ("GenericError", "Export 'nope' is not found")
        with pytest.raises(QMPError) as e:
            qmp.execute("no-such-command")
        assert e.value.cls == "CommandNotFound"
        assert qmp.greeting["QMP"]["version"]["package"].startswith("exportd ")


def test_exportd_qmp_keeps_events_for_wait_event(daemon, tmp_path):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("an export needs /dev/fuse, which is missing")
    mp = tmp_path / "e.raw"
    mp.touch()
    with QMPClient(daemon.socket_path) as qmp:
        qmp.execute("blockdev-add", driver="null-co", **{"node-name": "n"})
        qmp.execute("block-export-add", type="fuse", id="e", mountpoint=str(mp),
                    **{"node-name": "n"})
        qmp.execute("block-export-del", id="e")
        ev = qmp.wait_event("BLOCK_EXPORT_DELETED", match={"id": "e"}, timeout=10)
        assert ev["data"] == {"id": "e"}
        with pytest.raises(TimeoutError):
            qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=0.05)


def test_exportd_qmp_has_a_manual():
    r = subprocess.run(["/usr/bin/python3", "-m", "pydoc", "exportd.qmp"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "client",
                                                                    "python")))
    assert r.returncode == 0
    for part in ("SYNOPSIS", "DESCRIPTION", "execute(command", "wait_event(name",
                 "SEE ALSO"):
        assert part in r.stdout, part
