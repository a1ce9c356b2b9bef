"""SHUTDOWN, BLOCK_EXPORT_DELETED and the reply of the command that caused
them come in QEMU's order (10 and later: iotests 308, fuse-allow-other,
file-io-error): block-export-del replies first and the event follows;
quit sends SHUTDOWN, then the events of the exports it can end at once,
then its reply.  (qemu-storage-daemon 7.2 sent block-export-del's event
first, which QEMU's newer tests no longer expect.)"""

import json
import os
import signal
import threading
import time

from fusetest import add_export, add_file_node, export_cleanup, mounted, random_image

MiB = 1 << 20


def messages_until_reply(qmp, request):
    """Send request; every message up to and including its reply, in order."""
    qmp.send_raw(json.dumps(request))
    out = []
    while True:
        msg = qmp.recv(timeout=30)
        assert msg is not None, f"connection closed after {out}"
        out.append(msg)
        if "return" in msg or "error" in msg:
            return out


def kinds(msgs):
    return [m["event"] if "event" in m else "return" if "return" in m else "error"
            for m in msgs]


def test_del_replies_then_sends_the_event(qmp, tmp_path, mp):
    add_file_node(qmp, "f", random_image(tmp_path / "i.raw", MiB))
    try:
        add_export(qmp, "e", "f", mp)
        msgs = messages_until_reply(qmp, {"execute": "block-export-del",
                                          "arguments": {"id": "e"}, "id": 7})
        assert kinds(msgs) == ["return"] and msgs[0]["id"] == 7
        ev = qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10, match={"id": "e"})
        assert ev["data"] == {"id": "e"}
        assert not mounted(mp)
        assert qmp.cmd("query-block-exports") == []
    finally:
        export_cleanup(qmp, mp)


def test_quit_sends_every_event_before_its_reply(daemon, qmp, tmp_path):
    add_file_node(qmp, "f", random_image(tmp_path / "i.raw", MiB), read_only=True)
    mps = []
    for i in range(2):
        m = tmp_path / f"m{i}"
        m.touch()
        mps.append(m)
        add_export(qmp, f"e{i}", "f", m)
    msgs = messages_until_reply(qmp, {"execute": "quit"})
    assert kinds(msgs) == ["SHUTDOWN"] + ["BLOCK_EXPORT_DELETED"] * 2 + ["return"]
    assert msgs[0]["data"] == {"guest": False, "reason": "host-qmp-quit"}
    assert sorted(m["data"]["id"] for m in msgs[1:3]) == ["e0", "e1"]
    assert daemon.wait() == 0
    assert not any(mounted(m) for m in mps)


def daemon_thread_sleeping(pid):
    """Whether a thread of pid sleeps in nanosleep (null-co's latency)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                if "nanosleep" in f.read():
                    return True
        except OSError:
            pass
    return False


def test_a_running_request_puts_the_event_after_the_reply(daemon, qmp, mp):
    """A request that outlasts the wait (null-co's latency-ns, 3 s): hard
    delete replies at once, and the event follows when the request ends."""
    qmp.cmd("blockdev-add", driver="null-co", **{"node-name": "n"}, size=MiB,
            **{"latency-ns": 3_000_000_000})
    try:
        add_export(qmp, "e", "n", mp)
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECT)
        result = {}

        def reader():
            try:
                result["data"] = os.pread(fd, 4096, 0)
            except OSError as e:
                result["errno"] = e.errno

        t = threading.Thread(target=reader)
        t.start()
        deadline = time.monotonic() + 10
        while not daemon_thread_sleeping(daemon.pid):
            assert time.monotonic() < deadline, "the read never reached null-co's latency"
            time.sleep(0.01)
        msgs = messages_until_reply(qmp, {"execute": "block-export-del",
                                          "arguments": {"id": "e", "mode": "hard"}})
        assert kinds(msgs) == ["return"]
        ev = qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=15, match={"id": "e"})
        assert ev["data"] == {"id": "e"}
        t.join(timeout=15)
        assert not t.is_alive()
        try:
            os.close(fd)
        except OSError:
            pass    # the connection is gone: closing may say so
    finally:
        export_cleanup(qmp, mp)


def test_sigterm_sends_shutdown_before_the_exports_go(daemon, qmp, tmp_path, mp):
    add_file_node(qmp, "f", random_image(tmp_path / "i.raw", MiB), read_only=True)
    add_export(qmp, "e", "f", mp)
    daemon.signal(signal.SIGTERM)
    shutdown = qmp.wait_event("SHUTDOWN", timeout=10)
    assert shutdown["data"] == {"guest": False, "reason": "host-signal"}
    qmp.wait_event("BLOCK_EXPORT_DELETED", timeout=10, match={"id": "e"})
    assert daemon.wait() == 0
    assert not mounted(mp)
