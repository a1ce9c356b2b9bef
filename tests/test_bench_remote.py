"""scripts/bench-remote (issue 17) runs end to end on a tiny image: both
daemons and the backend give a figure for each backend, and nothing is
left behind (the session checks processes, mounts and temp files)."""

import os
import shutil
import subprocess

import pytest

from harness import QSD, QSD_MISSING, build_path

pytestmark = pytest.mark.skipif(QSD is None, reason=QSD_MISSING)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_remote_prints_a_row_per_backend(tmp_path):
    for tool, package in (("fio", "fio"), ("qemu-nbd", "qemu-utils")):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (Debian package {package})")
    env = dict(os.environ, EXPORTD_BUILD=os.path.dirname(build_path("exportd")),
               TMPDIR=str(tmp_path))
    r = subprocess.run([os.path.join(ROOT, "scripts", "bench-remote"), "--reps", "1",
                        "--runtime", "1", "--size", "8", "--backends", "nbd"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["backend", "exportd", "qsd", "backend", "exportd/qsd",
                                "exportd/backend"]
    row = lines[2].split()
    assert row[0] == "nbd"
    assert float(row[1]) > 0 and float(row[3]) > 0 and float(row[5]) > 0
    assert os.listdir(tmp_path) == []
