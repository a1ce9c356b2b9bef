"""exportctl and its docs as a newcomer meets them (issue 16): one test per
friction found by following the README and the man pages, each against a
real daemon (or none, where "no daemon" is the point)."""

import os
import subprocess

import pytest

from harness import build_path
from test_exportctl import exportctl, ok, fuse, raw_image  # noqa: F401 (fixtures)

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
