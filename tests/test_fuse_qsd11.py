"""File semantics that qemu-storage-daemon gained after 7.2 (QEMU 10/11)
and exportd follows: O_TRUNC (QEMU's iotest fuse-truncate) and the
`allow-inactive` option."""

import os

from fusetest import (add_export, add_file_node, export_cleanup, random_image)

MiB = 1 << 20


def test_o_trunc_leaves_a_fixed_size_export_alone(qmp, tmp_path, mp):
    """Opening with O_TRUNC ('w+b') neither fails nor shrinks the disk."""
    img = random_image(tmp_path / "t.raw", MiB)
    before = img.read_bytes()
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, writable=True)
        with open(mp, "w+b") as f:
            f.seek(0, os.SEEK_END)
            assert f.tell() == MiB
            f.seek(0)
            f.write(b"test")
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes() == b"test" + before[4:]


def test_o_trunc_empties_a_growable_export(qmp, tmp_path, mp):
    img = random_image(tmp_path / "t.raw", MiB)
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, writable=True, growable=True)
        with open(mp, "w+b") as f:
            f.seek(0, os.SEEK_END)
            assert f.tell() == 0
            f.write(b"test")
    finally:
        export_cleanup(qmp, mp)
    assert img.read_bytes() == b"test"


def test_allow_inactive_is_accepted(qmp, tmp_path, mp):
    img = random_image(tmp_path / "t.raw", MiB)
    add_file_node(qmp, "f", img)
    try:
        add_export(qmp, "e", "f", mp, allow_inactive=True)
        assert mp.read_bytes() == img.read_bytes()
    finally:
        export_cleanup(qmp, mp)
