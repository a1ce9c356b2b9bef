"""allow-other off/on/auto, checked with a second, non-root user that the
test creates (and removes), and auto's fallback when exportd itself runs
as a user that /etc/fuse.conf does not allow allow_other."""

import os
import subprocess

import pytest

from fusetest import (QMPError, add_export, add_file_node, as_user, export_cleanup,
                      export_info, mounted, need, random_image)
from harness import Daemon, QMPClient

MiB = 1 << 20


def setup_export(qmp, shared_dir, allow_other):
    img = random_image(os.path.join(shared_dir, "t.raw"), MiB)
    os.chmod(img, 0o644)
    mp = os.path.join(shared_dir, "t.fuse")
    open(mp, "w").close()
    add_file_node(qmp, "f", img)
    add_export(qmp, "e", "f", mp, allow_other=allow_other)
    return img, mp


def test_allow_other_off(qmp, other_user, shared_dir):
    try:
        img, mp = setup_export(qmp, shared_dir, "off")
        assert export_info(qmp, "e")["x-allow-other"] is False
        # Without allow_other, group/other bits make no sense: EPERM.
        with pytest.raises(PermissionError):
            os.chmod(mp, 0o444)
        r = as_user(other_user, "cat", mp)
        assert r.returncode != 0
        assert b"Permission denied" in r.stderr
    finally:
        export_cleanup(qmp, os.path.join(shared_dir, "t.fuse"))


def test_allow_other_on(qmp, other_user, shared_dir):
    try:
        img, mp = setup_export(qmp, shared_dir, "on")
        assert export_info(qmp, "e")["x-allow-other"] is True
        # default_permissions: the mode decides.
        r = as_user(other_user, "cat", mp)
        assert r.returncode != 0
        os.chmod(mp, 0o444)
        r = as_user(other_user, "cat", mp)
        assert r.returncode == 0, r.stderr
        with open(img, "rb") as f:
            assert r.stdout == f.read()
        # uid/gid can change with allow_other.
        os.chown(mp, other_user.pw_uid, other_user.pw_gid)
        st = os.stat(mp)
        assert (st.st_uid, st.st_gid) == (other_user.pw_uid, other_user.pw_gid)
    finally:
        export_cleanup(qmp, os.path.join(shared_dir, "t.fuse"))


def test_allow_other_auto_as_root(qmp, other_user, shared_dir):
    try:
        img, mp = setup_export(qmp, shared_dir, "auto")
        assert export_info(qmp, "e")["x-allow-other"] is True
        os.chmod(mp, 0o444)
        r = as_user(other_user, "cat", mp)
        assert r.returncode == 0, r.stderr
    finally:
        export_cleanup(qmp, os.path.join(shared_dir, "t.fuse"))


def user_allow_other_configured():
    try:
        with open("/etc/fuse.conf") as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False


@pytest.fixture
def dev_fuse_for_users():
    """Debian's udev rule makes /dev/fuse mode 0666 so that users can mount;
    containers without udev leave it 0600.  Give it the usual mode for the
    test and put the old one back."""
    old = os.stat("/dev/fuse").st_mode & 0o777
    if old & 0o006 != 0o006:
        os.chmod("/dev/fuse", old | 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", old)


def test_auto_falls_back_for_users(other_user, user_home, dev_fuse_for_users):
    """exportd run by a user: allow_other is refused by fusermount3, auto
    falls back, on fails clearly; passthrough (CAP_SYS_ADMIN) falls back
    to the userspace path and says why."""
    need("fusermount3")
    if user_allow_other_configured():
        pytest.skip("/etc/fuse.conf has user_allow_other, so there is nothing to fall back from")
    home = user_home
    img = random_image(os.path.join(home, "t.raw"), MiB)
    mp = os.path.join(home, "t.fuse")
    open(mp, "w").close()
    for p in (img, mp):
        os.chown(p, other_user.pw_uid, other_user.pw_gid)
    d = Daemon(home, env={"HOME": home},
               wrapper=["setpriv", "--reuid=%d" % other_user.pw_uid,
                        "--regid=%d" % other_user.pw_gid, "--clear-groups", "--"])
    try:
        try:
            d.start()
        except RuntimeError as e:
            pytest.skip("exportd cannot run as another user here: %s" % e)
        qmp = QMPClient(d.socket_path)
        try:
            add_file_node(qmp, "f", img, read_only=True)
            with pytest.raises(QMPError) as exc:
                add_export(qmp, "on", "f", mp, allow_other="on")
            assert exc.value.desc == "Failed to mount FUSE session to export"
            assert not mounted(mp)
            add_export(qmp, "e", "f", mp, allow_other="auto")
            info = export_info(qmp, "e")
            assert info["x-allow-other"] is False
            assert info["x-data-path"] == "userspace"
            assert "BACKING_OPEN" in info["x-data-path-reason"]
            r = as_user(other_user, "cat", mp)
            assert r.returncode == 0, r.stderr
            with open(img, "rb") as f:
                assert r.stdout == f.read()
            # Root is "other" too for a user's mount without allow_other.
            with pytest.raises(PermissionError):
                open(mp, "rb")
        finally:
            qmp.close()
        assert d.stop() == 0, d.log()
        assert not mounted(mp)
    finally:
        d.cleanup()
        if mounted(mp):
            subprocess.run(["umount", "-l", mp], check=False)
