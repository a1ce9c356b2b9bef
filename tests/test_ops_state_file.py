"""exportd --state-file (issue 15): the nodes and exports QMP made are
written to the file after each change (atomically) and re-created at the
next start, after a clean stop and after kill -9 under write load (images
clean, no byte acknowledged by fsync lost); what cannot be re-created, and
a write that fails, are logged and shown by x-query-state-file while the
daemon goes on."""

import json
import os
import subprocess
import sys

import pytest

from fusetest import add_export, add_file_node, need
from harness import Daemon, wait_until

BLOCK = 65536


@pytest.fixture
def qcow2(tmp_path):
    need("qemu-img")
    img = tmp_path / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    return img


def start(tmp_path, name, state):
    return Daemon(tmp_path / name, extra_args=["--state-file", str(state)]).start()


def add_qcow2_export(qmp, img, mp, exp_id="e"):
    add_file_node(qmp, f"{exp_id}-file", img)
    qmp.cmd("blockdev-add", driver="qcow2", **{"node-name": f"{exp_id}-fmt",
                                              "file": f"{exp_id}-file"})
    add_export(qmp, exp_id, f"{exp_id}-fmt", mp, writable=True,
               x_delete_nodes=[f"{exp_id}-fmt", f"{exp_id}-file"])


def entries(state):
    return json.loads(state.read_text())["entries"]


def qemu_img_check(img):
    r = subprocess.run(["qemu-img", "check", str(img)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_exports_come_back_after_a_clean_restart(tmp_path, qcow2, mp):
    state = tmp_path / "state.json"
    d1 = start(tmp_path, "d1", state)
    try:
        q = d1.new_client()
        add_qcow2_export(q, qcow2, mp)
        assert [list(e)[0] for e in entries(state)] == ["blockdev-add", "blockdev-add",
                                                       "block-export-add"]
        with open(mp, "r+b") as f:
            f.write(b"kept across restarts")
            os.fsync(f.fileno())
        assert d1.stop() == 0
    finally:
        d1.cleanup()
    # A clean stop ends the exports, but does not forget them.
    assert len(entries(state)) == 3
    assert not os.path.exists(str(state) + ".tmp")
    d2 = start(tmp_path, "d2", state)
    try:
        q = d2.new_client()
        [e] = q.cmd("query-block-exports")
        assert (e["id"], e["node-name"], e["x-mountpoint"]) == ("e", "e-fmt", str(mp))
        assert mp.read_bytes()[:20] == b"kept across restarts"
        assert q.cmd("x-query-state-file")["restore-failures"] == []
        assert d2.stop() == 0
    finally:
        d2.cleanup()
    qemu_img_check(qcow2)


def test_objects_come_back_and_deleted_ones_leave_the_file(tmp_path):
    """A node may need a secret: objects are kept before the nodes."""
    state = tmp_path / "state.json"
    key = tmp_path / "key"
    key.write_text("passphrase")
    d1 = start(tmp_path, "d1", state)
    try:
        q = d1.new_client()
        q.cmd("object-add", {"qom-type": "secret", "id": "k1", "file": str(key)})
        q.cmd("object-add", {"qom-type": "secret", "id": "k2", "data": "x"})
        q.cmd("object-del", id="k2")
        assert entries(state) == [{"object-add": {"qom-type": "secret", "id": "k1",
                                                  "file": str(key)}}]
        assert d1.stop() == 0
    finally:
        d1.cleanup()
    d2 = start(tmp_path, "d2", state)
    try:
        q = d2.new_client()
        assert q.cmd("x-query-state-file")["restore-failures"] == []
        q.cmd("object-del", id="k1")     # it is there again
        assert entries(state) == []
        assert d2.stop() == 0
    finally:
        d2.cleanup()


def test_deleted_and_ended_exports_leave_the_file(tmp_path, qcow2, mp):
    state = tmp_path / "state.json"
    raw = tmp_path / "b.raw"
    raw.write_bytes(b"\0" * BLOCK)
    mp2 = tmp_path / "b.fuse"
    mp2.touch()
    d = start(tmp_path, "d", state)
    try:
        q = d.new_client()
        add_qcow2_export(q, qcow2, mp)
        add_file_node(q, "b", raw)
        add_export(q, "b", "b", mp2)
        assert len(entries(state)) == 5
        # Ended by itself: its x-delete-nodes went with it, and so did the entries.
        subprocess.run(["umount", "-l", str(mp)], check=True)
        q.wait_event("BLOCK_EXPORT_DELETED", match={"id": "e"})
        wait_until(lambda: len(entries(state)) == 2, "the state file to drop export 'e'")
        q.cmd("block-export-del", id="b")
        q.wait_event("BLOCK_EXPORT_DELETED", match={"id": "b"})
        assert entries(state) == [{"blockdev-add": {"driver": "file", "node-name": "b",
                                                    "filename": str(raw)}}]
        q.cmd("blockdev-del", **{"node-name": "b"})
        assert entries(state) == []
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_what_cannot_be_recreated_is_reported_and_the_rest_goes_on(tmp_path, mp):
    state = tmp_path / "state.json"
    good = tmp_path / "good.raw"
    good.write_bytes(b"g" * BLOCK)
    gone = tmp_path / "gone.raw"
    state.write_text(json.dumps({"version": 1, "entries": [
        {"blockdev-add": {"driver": "file", "node-name": "lost", "filename": str(gone)}},
        {"block-export-add": {"type": "fuse", "id": "lost", "node-name": "lost",
                              "mountpoint": str(tmp_path / "lost.fuse")}},
        {"blockdev-add": {"driver": "file", "node-name": "good", "filename": str(good)}},
        {"block-export-add": {"type": "fuse", "id": "good", "node-name": "good",
                              "mountpoint": str(mp)}},
    ]}))
    d = start(tmp_path, "d", state)
    try:
        q = d.new_client()
        assert [e["id"] for e in q.cmd("query-block-exports")] == ["good"]
        assert mp.read_bytes() == good.read_bytes()
        info = q.cmd("x-query-state-file")
        assert (info["enabled"], info["path"], info["entries"]) == (True, str(state), 2)
        fails = info["restore-failures"]
        assert [(f["command"], f["error"]) for f in fails] == [
            ("blockdev-add", "Could not open '%s': No such file or directory" % gone),
            ("block-export-add", "Cannot find device='' nor node-name='lost'")]
        assert fails[0]["arguments"]["filename"] == str(gone)
        assert ("state file '%s': cannot re-create node 'lost': Could not open '%s'"
                % (state, gone)) in d.log()
        assert d.stop() == 0
    finally:
        d.cleanup()


def test_a_write_that_fails_is_reported_and_the_daemon_goes_on(tmp_path, mp):
    state = tmp_path / "no-such-dir" / "state.json"
    raw = tmp_path / "a.raw"
    raw.write_bytes(b"\0" * BLOCK)
    d = start(tmp_path, "d", state)
    try:
        q = d.new_client()
        add_file_node(q, "a", raw)
        err = ("Cannot write state file '%s.tmp': No such file or directory" % state)
        assert q.cmd("x-query-state-file")["write-error"] == err
        assert err in d.log()
        # Retried at the next change, and the error goes once a write works.
        os.mkdir(state.parent)
        add_export(q, "a", "a", mp)
        assert "write-error" not in q.cmd("x-query-state-file")
        assert len(entries(state)) == 2
        assert d.stop() == 0
    finally:
        d.cleanup()


WRITER = r"""
import os, struct, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
i = 0
try:
    while True:
        block = struct.pack("<Q", i) * (%d // 8)
        os.pwrite(fd, block, (i %% 200) * %d)
        os.fsync(fd)
        print(i, flush=True)
        i += 1
except OSError:
    pass
""" % (BLOCK, BLOCK)


def test_kill_9_under_write_load_loses_nothing_fsync_acknowledged(tmp_path, qcow2, mp):
    state = tmp_path / "state.json"
    d1 = start(tmp_path, "d1", state)
    d2 = writer = None
    try:
        q = d1.new_client()
        add_qcow2_export(q, qcow2, mp)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(mp)],
                                  stdout=subprocess.PIPE, text=True)
        acked = []
        for line in writer.stdout:
            acked.append(int(line))
            if len(acked) >= 300:     # past the 200-block ring: overwrites too
                break
        d1.proc.kill()
        d1.proc.wait()
        acked += [int(line) for line in writer.stdout]
        writer.wait(timeout=30)
        # The dead mount stays: the next daemon must recover it.
        d2 = start(tmp_path, "d2", state)
        q = d2.new_client()
        assert [e["id"] for e in q.cmd("query-block-exports")] == ["e"]
        assert "was the dead FUSE mount of an exportd" in d2.log()
        data = mp.read_bytes()
        # The last block acknowledged at each place is what is there.
        last = {}
        for i in acked:
            last[i % 200] = i
        for slot, i in last.items():
            got = data[slot * BLOCK:(slot + 1) * BLOCK]
            # A later write may have reached the image without its fsync's answer.
            n = int.from_bytes(got[:8], "little")
            assert n >= i and got == n.to_bytes(8, "little") * (BLOCK // 8), \
                f"block {slot}: acknowledged write {i} lost (found {n})"
        assert d2.stop() == 0
    finally:
        if writer and writer.poll() is None:
            writer.kill()
            writer.wait()
        if d2:
            d2.cleanup()
        d1.cleanup()
    qemu_img_check(qcow2)
