"""`make install` with DESTDIR puts every installed file where it belongs
(issue: foundation; man pages, unit and completion from exportctl's issue)."""

import os
import subprocess

from harness import build_path


def test_make_install_destdir(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}"],
                       cwd=os.path.dirname(build_path("exportd")),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    prefix = None
    for root, _, files in os.walk(dest):
        if "exportd" in files and root.endswith("/sbin"):
            prefix = os.path.dirname(root)
    assert prefix, f"no sbin/exportd under {dest}"
    for rel in ("sbin/exportd", "bin/exportctl", "share/man/man8/exportd.8",
                "share/man/man1/exportctl.1", "share/exportd/exportd-schema.json",
                "share/exportd/qmp-reference.md", "lib/systemd/system/exportd.service",
                "share/bash-completion/completions/exportctl",
                "lib/python3/dist-packages/exportd/qmp.py",
                "lib/python3/dist-packages/exportd/__init__.py"):
        assert os.path.isfile(os.path.join(prefix, rel)), rel
    for prog in ("sbin/exportd", "bin/exportctl"):
        assert os.access(os.path.join(prefix, prog), os.X_OK)
    unit = open(os.path.join(prefix, "lib/systemd/system/exportd.service")).read()
    assert f"ExecStart={prefix[len(str(dest)):]}/sbin/exportd" in unit
    r = subprocess.run([os.path.join(prefix, "sbin/exportd"), "--version"],
                       capture_output=True, text=True)
    assert r.stdout.startswith("exportd ")
    # exportd.qmp imports from where it was installed.
    r = subprocess.run(["/usr/bin/python3", "-c", "import exportd.qmp; print(exportd.qmp.__file__)"],
                       capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.path.join(prefix, "lib/python3/dist-packages")))
    assert r.stdout.startswith(prefix), r.stderr
