"""The Python in the tree (tests, harness, scripts) has no unused imports,
undefined names or other mistakes pyflakes finds: a test helper that
imports a name it never uses is how copies of fixtures go unnoticed."""

import importlib.util
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_files():
    out = []
    for d in ("tests", "tests/harness", "scripts", "scripts/benchlib"):
        for name in sorted(os.listdir(os.path.join(REPO, d))):
            path = os.path.join(REPO, d, name)
            if not os.path.isfile(path):
                continue
            if name.endswith(".py"):
                out.append(path)
            elif "." not in name:
                with open(path, "rb") as f:
                    if f.readline().startswith(b"#!/usr/bin/python3"):
                        out.append(path)
    return out


def test_pyflakes_is_clean():
    if importlib.util.find_spec("pyflakes") is None:
        pytest.skip("pyflakes is not installed (Debian package python3-pyflakes)")
    files = python_files()
    assert len(files) > 20
    r = subprocess.run(["/usr/bin/python3", "-m", "pyflakes", *files],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
