"""scripts/test-repeat (issue 22): the suite N times, and the tests that
failed with their counts.  Run for real, on a test of the suite that passes
and on a test file of its own that fails."""

import os
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "test-repeat")


@pytest.fixture
def short_tmp():
    """A short TMPDIR for the runs: their daemons' socket paths must fit
    in 108 bytes, which a dir under this test's own tmp_path may not."""
    d = tempfile.mkdtemp(prefix="tr.", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(tmp, *args):
    return subprocess.run([SCRIPT] + list(args), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TMPDIR=tmp))


def test_passing_runs_are_counted(short_tmp):
    r = run(short_tmp, "2", "--one-cpu", "--no-unit", "--",
            "-k", "test_sigint_shuts_down_cleanly")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run 1/2: passed" in r.stdout and "run 2/2: passed" in r.stdout
    assert "2 run(s) one CPU: 2 passed, 0 failed" in r.stdout


def test_a_failing_test_is_named_with_its_count(tmp_path, short_tmp):
    t = tmp_path / "test_always_fails.py"
    t.write_text("def test_always_fails():\n    assert 1 == 2\n")
    r = run(short_tmp, "2", "--no-unit", "--", str(t), "-k", "test_always_fails")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 run(s): 0 passed, 2 failed" in r.stdout
    counts = r.stdout.split("failures per test:\n")[1].splitlines()
    assert len(counts) == 1 and counts[0].startswith("    2/2  "), r.stdout
    assert counts[0].endswith("/test_always_fails.py::test_always_fails"), r.stdout


def test_zero_runs_is_an_error(short_tmp):
    r = run(short_tmp, "0")
    assert r.returncode == 2
    assert "runs must be at least 1" in r.stderr
