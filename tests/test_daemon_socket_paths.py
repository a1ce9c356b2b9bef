"""The QMP socket and its directory (issue 12): the daemon removes only the
socket file it created, and as root refuses a default directory
(/run/exportd) that is a link, belongs to someone else or that others can
write.  The default-directory tests run the daemon in a private mount
namespace with a tmpfs on /run, so that the machine's /run is not touched."""

import os
import subprocess

import pytest

from fusetest import need, wait_process_exit
from harness import build_path


def test_socket_replaced_meanwhile_is_not_removed(daemon, tmp_path):
    """At exit, a file put in place of the socket stays where it is."""
    other = tmp_path / "other"
    other.write_text("not exportd's\n")
    os.rename(other, daemon.socket_path)
    assert daemon.stop() == 0
    with open(daemon.socket_path) as f:
        assert f.read() == "not exportd's\n"
    assert "is no longer the socket exportd created; leaving it" in daemon.log()


def run_with_private_run(setup, tmp_path):
    """Run `exportd --daemonize` with no --socket (so /run/exportd) after the
    shell commands `setup`, in a mount namespace of its own whose /run is an
    empty tmpfs.  Returns (exit status, stderr, what the script reports)."""
    need("unshare")
    if os.geteuid() != 0:
        pytest.skip("the default socket directory is root's, and so is unshare -m")
    script = """
set -u
mount -t tmpfs tmpfs /run
%s
"$EXPORTD" --daemonize --pidfile /run/exportd.pid
rc=$?
echo "rc=$rc" >&3
# (A daemon that failed may still be on its way out, removing its pidfile.)
if [ "$rc" = 0 ]; then
    echo "pid=$(cat /run/exportd.pid)" >&3
    stat -c 'mode=%%a' /run/exportd >&3
    [ -S /run/exportd/exportd.sock ] && echo "socket=yes" >&3
    kill "$(cat /run/exportd.pid)"
fi
[ -e /run/elsewhere/exportd.sock ] && echo "elsewhere=yes" >&3
exit 0
""" % setup
    report = tmp_path / "report"
    with open(report, "w") as out:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "exec 3>&1 1>&2; " + script],
                           stdout=out, stderr=subprocess.PIPE, text=True, timeout=60,
                           env=dict(os.environ, EXPORTD=build_path("exportd")))
    if r.returncode != 0 or "rc=" not in report.read_text():
        pytest.skip("cannot run exportd in a private mount namespace here: %s" % r.stderr)
    facts = dict(line.split("=", 1) for line in report.read_text().split())
    if "pid" in facts:
        wait_process_exit(int(facts["pid"]))
    return int(facts["rc"]), r.stderr, facts


def test_default_directory_is_created_0700(tmp_path):
    rc, err, facts = run_with_private_run("", tmp_path)
    assert rc == 0, err
    assert facts.get("mode") == "700"
    assert facts.get("socket") == "yes"


def test_default_directory_that_is_a_link_is_refused(tmp_path):
    rc, err, facts = run_with_private_run(
        "mkdir /run/elsewhere && ln -s /run/elsewhere /run/exportd", tmp_path)
    assert rc == 1
    assert ("'/run/exportd' is a symbolic link; exportd keeps its socket in a directory of "
            "its own: remove the link") in err
    assert "elsewhere" not in facts


def test_default_directory_of_another_user_is_refused(tmp_path, other_user):
    rc, err, facts = run_with_private_run(
        "mkdir -m 700 /run/exportd && chown %d /run/exportd" % other_user.pw_uid, tmp_path)
    assert rc == 1
    assert ("'/run/exportd' is owned by uid %d, not by exportd's user (uid 0)"
            % other_user.pw_uid) in err


def test_default_directory_others_can_write_is_refused(tmp_path):
    rc, err, facts = run_with_private_run("mkdir -m 1777 /run/exportd", tmp_path)
    assert rc == 1
    assert "'/run/exportd' can be written by other users (mode 1777); it must not be" in err
