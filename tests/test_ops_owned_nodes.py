"""Nodes that follow their export (issue 15): block-export-add's
x-delete-nodes deletes the nodes named when the export ends for any reason
(here: an external umount), so the image is unlocked and the names free
again; exportctl add sets it; exportctl del of an export that already
ended deletes the nodes add made for it instead of saying "not found"."""

import os
import subprocess

import pytest

from fusetest import add_export, add_file_node, need
from harness import QMPError, build_path


def exportctl(daemon, *args):
    env = dict(os.environ)
    env.pop("EXPORTD_SOCKET", None)
    return subprocess.run([build_path("exportctl"), "--socket", daemon.socket_path, *args],
                          capture_output=True, text=True, timeout=30, env=env,
                          stdin=subprocess.DEVNULL)


def node_names(qmp):
    return sorted(n["node-name"] for n in qmp.cmd("query-named-block-nodes"))


@pytest.fixture
def qcow2(tmp_path):
    need("qemu-img")
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "4M"], check=True)
    return img


def qemu_img_check(img):
    return subprocess.run(["qemu-img", "check", str(img)], capture_output=True, text=True)


def add_qcow2_nodes(qmp, img, prefix):
    add_file_node(qmp, f"{prefix}-file", img)
    qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": f"{prefix}-fmt",
                                              "file": f"{prefix}-file"})


def umount_externally(qmp, mp, exp_id):
    subprocess.run(["umount", "-l", str(mp)], check=True)
    qmp.wait_event("BLOCK_EXPORT_DELETED", match={"id": exp_id})


def test_nodes_named_go_when_the_export_is_unmounted_from_outside(daemon, qmp, qcow2, mp):
    add_qcow2_nodes(qmp, qcow2, "e")
    add_export(qmp, "e", "e-fmt", mp, writable=True, x_delete_nodes=["e-fmt", "e-file"])
    # Locked while exported.
    assert qemu_img_check(qcow2).returncode != 0
    umount_externally(qmp, mp, "e")
    assert node_names(qmp) == []
    r = qemu_img_check(qcow2)
    assert r.returncode == 0, r.stderr
    # The names are free: the same add works again.
    add_qcow2_nodes(qmp, qcow2, "e")
    assert node_names(qmp) == ["e-file", "e-fmt"]


def test_nodes_not_named_stay(daemon, qmp, qcow2, mp):
    add_qcow2_nodes(qmp, qcow2, "e")
    add_export(qmp, "e", "e-fmt", mp, x_delete_nodes=["e-fmt"])
    umount_externally(qmp, mp, "e")
    assert node_names(qmp) == ["e-file"]


def test_unknown_node_in_x_delete_nodes_is_refused(daemon, qmp, qcow2, mp):
    add_qcow2_nodes(qmp, qcow2, "e")
    with pytest.raises(QMPError) as e:
        add_export(qmp, "e", "e-fmt", mp, x_delete_nodes=["e-fmt", "nope"])
    assert e.value.desc == "x-delete-nodes: Cannot find device='' nor node-name='nope'"
    assert qmp.cmd("query-block-exports") == []


def test_exportctl_add_nodes_end_with_an_external_umount(daemon, qmp, qcow2, tmp_path):
    mp = tmp_path / "vm.raw"
    r = exportctl(daemon, "add", "--fuse", "--mountpoint", str(mp), "--image", str(qcow2),
                  "--format", "qcow2", "--writable", "--id", "vm")
    assert r.returncode == 0, r.stderr
    umount_externally(qmp, mp, "vm")
    assert node_names(qmp) == []
    r = exportctl(daemon, "add", "--fuse", "--mountpoint", str(mp), "--image", str(qcow2),
                  "--format", "qcow2", "--id", "vm")
    assert r.returncode == 0, r.stderr
    r = exportctl(daemon, "del", "vm")
    assert r.returncode == 0, r.stderr
    assert node_names(qmp) == []


def test_exportctl_del_of_an_ended_export_deletes_its_nodes(daemon, qmp, qcow2, mp):
    # As an exportctl add of before x-delete-nodes left them.
    add_qcow2_nodes(qmp, qcow2, "vm")
    add_export(qmp, "vm", "vm-fmt", mp)
    umount_externally(qmp, mp, "vm")
    assert node_names(qmp) == ["vm-file", "vm-fmt"]
    r = exportctl(daemon, "del", "vm")
    assert r.returncode == 0, r.stderr
    assert "export 'vm' had already ended; its nodes are deleted now" in r.stderr
    assert node_names(qmp) == []
    r = qemu_img_check(qcow2)
    assert r.returncode == 0, r.stderr
    # Nothing of that name left: now it is "not found".
    r = exportctl(daemon, "del", "vm")
    assert r.returncode != 0
    assert "not found" in r.stderr
