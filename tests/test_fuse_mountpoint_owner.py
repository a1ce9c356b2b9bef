"""A root daemon mounting in a directory that another user can write
(issue 12): that user must not be able to point the mount at a file of
root's by planting a symbolic link, and a mount must stay the one the
daemon checked and made, whatever the user renames afterwards.  Checked
with a real second user (the `other_user` fixture)."""

import errno
import os
import subprocess

import pytest

from fusetest import (QMPError, add_export, add_file_node, as_user, del_export,
                      export_cleanup, export_info, kernel_has_passthrough, mounted,
                      random_image)

MiB = 1 << 20
ROOTS_DATA = b"root's file: must never be covered by an export\n"


@pytest.fixture
def layout(shared_dir, other_user, user_home):
    """shared_dir (root's) holds an image, a file of root's, and home/,
    a directory of the other user's with her own empty mountpoint file."""
    img = random_image(os.path.join(shared_dir, "t.raw"), MiB)
    roots = os.path.join(shared_dir, "roots-file")
    with open(roots, "wb") as f:
        f.write(ROOTS_DATA)
    home = user_home
    mp = os.path.join(home, "vm.fuse")
    r = as_user(other_user, "touch", mp)
    assert r.returncode == 0, r.stderr
    return {"img": img, "roots": roots, "home": home, "mp": mp}


def user_run(user, *cmd):
    r = as_user(user, *cmd)
    assert r.returncode == 0, "%s: %s" % (cmd, r.stderr.decode(errors="replace"))


def assert_roots_file_intact(roots):
    assert not mounted(roots)
    with open(roots, "rb") as f:
        assert f.read() == ROOTS_DATA


def test_users_own_mountpoint_is_mounted(qmp, layout):
    try:
        add_file_node(qmp, "f", layout["img"])
        add_export(qmp, "e", "f", layout["mp"])
        assert export_info(qmp, "e")["x-mountpoint"] == layout["mp"]
        assert mounted(layout["mp"])
        assert os.path.getsize(layout["mp"]) == MiB
    finally:
        export_cleanup(qmp, layout["mp"])


def test_users_symlink_to_roots_file_is_refused(qmp, layout, other_user):
    """The user replaces her mountpoint with a link to a file of root's."""
    mp = layout["mp"]
    user_run(other_user, "ln", "-sf", layout["roots"], mp)
    try:
        add_file_node(qmp, "f", layout["img"])
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e", "f", mp)
        assert exc.value.desc == (
            "Refusing mountpoint '%s': '%s' is a symbolic link owned by uid %d (only "
            "links owned by root in directories owned by root are followed)"
            % (mp, mp, other_user.pw_uid))
        assert qmp.cmd("query-block-exports") == []
        assert_roots_file_intact(layout["roots"])
    finally:
        export_cleanup(qmp, mp, layout["roots"])


def test_users_symlinked_directory_is_refused(qmp, layout, other_user, shared_dir):
    """A directory on the way is swapped for a link to a directory of
    root's that holds a file of the same name."""
    rootdir = os.path.join(shared_dir, "rootdir")
    os.mkdir(rootdir)
    target = os.path.join(rootdir, "vm.fuse")
    with open(target, "wb") as f:
        f.write(ROOTS_DATA)
    sub = os.path.join(layout["home"], "sub")
    user_run(other_user, "ln", "-s", rootdir, sub)
    mp = os.path.join(sub, "vm.fuse")
    try:
        add_file_node(qmp, "f", layout["img"])
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e", "f", mp)
        assert "Refusing mountpoint '%s': '%s' is a symbolic link owned by uid %d" % (
            mp, sub, other_user.pw_uid) in exc.value.desc
        assert_roots_file_intact(target)
    finally:
        export_cleanup(qmp, mp, target)


def test_roots_symlink_in_users_directory_is_refused(qmp, layout, other_user):
    """Even a link of root's is not followed in a directory the user owns:
    she could have swapped it for her own a moment before."""
    link = os.path.join(layout["home"], "rootslink")
    os.symlink(layout["roots"], link)
    os.lchown(link, 0, 0)
    try:
        add_file_node(qmp, "f", layout["img"])
        with pytest.raises(QMPError) as exc:
            add_export(qmp, "e", "f", link)
        assert ("'%s' is a symbolic link in a directory owned by uid %d"
                % (link, other_user.pw_uid)) in exc.value.desc
        assert_roots_file_intact(layout["roots"])
    finally:
        export_cleanup(qmp, link, layout["roots"])


@pytest.fixture
def movable(layout, other_user, shared_dir):
    """home/sub/vm.fuse, all the user's, and a directory of root's with a
    file of the same name that a link in place of sub/ would lead to."""
    sub = os.path.join(layout["home"], "sub")
    user_run(other_user, "mkdir", sub)
    mp = os.path.join(sub, "vm.fuse")
    user_run(other_user, "touch", mp)
    rootdir = os.path.join(shared_dir, "rootdir")
    os.mkdir(rootdir)
    decoy = os.path.join(rootdir, "vm.fuse")
    with open(decoy, "wb") as f:
        f.write(ROOTS_DATA)
    moved = os.path.join(layout["home"], "moved")
    return {"sub": sub, "mp": mp, "rootdir": rootdir, "decoy": decoy, "moved": moved,
            "moved_mp": os.path.join(moved, "vm.fuse")}


def move_away_and_plant_link(user, m):
    """While exported: sub/ moves away (allowed: only the mountpoint itself
    is pinned) and a link to root's directory takes its name."""
    user_run(user, "mv", m["sub"], m["moved"])
    user_run(user, "ln", "-s", m["rootdir"], m["sub"])
    assert mounted(m["moved_mp"])


def test_renamed_directory_still_unmounts_the_export(qmp, layout, movable, other_user):
    """Deleting the export removes the daemon's own mount, not whatever
    the path leads to now, and leaves root's file alone."""
    m = movable
    try:
        add_file_node(qmp, "f", layout["img"])
        add_export(qmp, "e", "f", m["mp"], passthrough="off")
        assert mounted(m["mp"])
        move_away_and_plant_link(other_user, m)
        del_export(qmp, "e")
        assert not mounted(m["moved_mp"])
        assert_roots_file_intact(m["decoy"])
    finally:
        export_cleanup(qmp, m["moved_mp"], m["decoy"])


def test_renamed_directory_still_revokes_passthrough(qmp, layout, movable, other_user):
    """Revoking passthrough handles at a hard delete asks our own mount,
    not the file the path leads to now: an open handle fails afterwards."""
    m = movable
    try:
        add_file_node(qmp, "f", layout["img"], read_only=True)
        add_export(qmp, "e", "f", m["mp"])
        kernel_has_passthrough(export_info(qmp, "e"))
        fd = os.open(m["mp"], os.O_RDONLY)
        try:
            assert len(os.pread(fd, 4096, 0)) == 4096
            move_away_and_plant_link(other_user, m)
            del_export(qmp, "e", mode="hard")
            assert not mounted(m["moved_mp"])
            with pytest.raises(OSError) as exc:
                os.pread(fd, 4096, 0)
            assert exc.value.errno == errno.EIO
        finally:
            try:
                os.close(fd)
            except OSError:
                pass    # close() reports the revoked inode's EIO too
        assert_roots_file_intact(m["decoy"])
    finally:
        export_cleanup(qmp, m["moved_mp"], m["decoy"])


def test_swapping_the_mountpoint_during_adds_never_covers_roots_file(qmp, layout,
                                                                     other_user):
    """The race: while root adds and deletes the export again and again, the
    user keeps renaming a link to root's file and a file of hers, in turn,
    over the mountpoint's name.  Each add refuses the link, mounts her
    file, or fails because the file it checked was renamed over before
    the mount; never covers root's."""
    home, mp, roots = layout["home"], layout["mp"], layout["roots"]
    swapper = subprocess.Popen(
        ["setpriv", "--reuid=%d" % other_user.pw_uid, "--regid=%d" % other_user.pw_gid,
         "--clear-groups", "--", "sh", "-c",
         "cd %s && while :; do ln -sfn %s l && mv -fT l vm.fuse 2>/dev/null; "
         ": > f && mv -fT f vm.fuse 2>/dev/null; done" % (home, roots)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outcomes = {"mounted": 0, "refused": 0}
    try:
        add_file_node(qmp, "f", layout["img"])
        for _ in range(200):
            try:
                add_export(qmp, "e", "f", mp, passthrough="off")
            except QMPError as e:
                # The link is refused; or the name is gone for a moment; or
                # the file checked lost its name before the mount.
                assert ("Refusing mountpoint" in e.desc or "Failed to stat" in e.desc or
                        "was removed or replaced while it was being mounted" in e.desc), e.desc
                outcomes["refused"] += 1
            else:
                outcomes["mounted"] += 1
                assert not mounted(roots)
                del_export(qmp, "e")
            assert_roots_file_intact(roots)
    finally:
        swapper.kill()
        swapper.wait()
        export_cleanup(qmp, mp, roots)
    # Both sides of the race were exercised.
    assert outcomes["mounted"] and outcomes["refused"], outcomes
