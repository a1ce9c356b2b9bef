"""Side by side with qemu-storage-daemon 7.2, the reference: the same
requests must get the same replies, byte for byte where a client can see
them (issue: foundation).  Skips loudly when qsd is not installed."""

import pytest

from harness import QSD, QSD_MISSING, QMPClient, qsd_monitor

pytestmark = pytest.mark.skipif(QSD is None, reason=QSD_MISSING)


@pytest.fixture
def qsd(tmp_path):
    with qsd_monitor(tmp_path) as sock:
        yield sock


def raw_session(path):
    c = QMPClient(path, negotiate=False)
    return c


# Requests whose replies must be identical, in this order, on one session.
SAME = [
    b'{"execute": "query-version"}',
    b'{"execute": "qmp_capabilities"}',
    b'{"execute": "qmp_capabilities"}',
    b'[1]',
    b'42',
    b'{"arguments": {}}',
    b'{"execute": 5}',
    b'{"execute": "query-version", "arguments": []}',
    b'{"execute": "query-version", "x": 1}',
    b'{"execute": "nope", "id": {"a": [1, "b"]}}',
    b'{"execute": "block-export-del", "arguments": {"id": 1}}',
    b'{"execute": "block-export-del", "arguments": {"id": "x", "mode": "bad"}}',
    b'{"execute": "block-export-del", "arguments": {}}',
    b'{"execute": "block-export-del", "arguments": {"id": "x", "zz": 1}}',
    b'{"execute": "query-version", "arguments": {"x": 1}}',
    b'{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "x", '
    b'"file": {"driver": "file"}}}',
    b'{"execute": "blockdev-add", "arguments": {"driver": "raw", "node-name": "x", "file": 5}}',
    b'{"execute": "blockdev-add", "arguments": {"driver": "file", "node-name": "x", '
    b'"filename": "/etc/hostname", "cache": {"direct": "yes"}}}',
    b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}',
    b'{"execute": "query-block-exports", "id": 99}',
]


def test_replies_are_identical_to_qsd(daemon, qsd):
    ours = raw_session(daemon.socket_path)
    theirs = raw_session(qsd)
    try:
        for req in SAME:
            ours.send_raw(req + b"\n")
            theirs.send_raw(req + b"\n")
            a = ours.recv_line_raw()
            b = theirs.recv_line_raw()
            assert a == b, f"for {req!r}:\n  exportd: {a!r}\n  qsd:     {b!r}"
    finally:
        ours.close()
        theirs.close()


def test_greeting_has_the_same_shape_as_qsd(daemon, qsd):
    ours = raw_session(daemon.socket_path).greeting
    theirs = raw_session(qsd).greeting
    assert list(ours) == list(theirs) == ["QMP"]
    assert list(ours["QMP"]) == list(theirs["QMP"])
    assert list(ours["QMP"]["version"]) == list(theirs["QMP"]["version"])
    assert list(ours["QMP"]["version"]["qemu"]) == list(theirs["QMP"]["version"]["qemu"])


def test_parse_errors_have_the_same_prefix_as_qsd(daemon, qsd):
    for path in (daemon.socket_path, qsd):
        c = raw_session(path)
        c.send_raw(b"foo\n")
        reply = c.recv()
        assert reply["error"]["class"] == "GenericError"
        assert reply["error"]["desc"].startswith("JSON parse error, ")
        c.close()


# QEMU's framing and JSON dialect (issues 12 and 23): the same bytes must get
# the same replies, in the same number.  Grammar errors are worded by
# jansson, not QEMU's parser, so only their prefix is compared; lexing errors
# ("stray ...") are exportd's own and must match QEMU's exactly.
FRAMING = [
    b"{'execute': 'qmp_capabilities'}\n",
    b"{'execute': 'query-block-exports', 'id': 'it\\'s \"q\"'}\n",
    b'{"execute": "query-block-exports", "id": "a\\\'b"}\n',
    b'{"exec\n{"execute": "query-block-exports", "id": 1}\n',
    b'{"a\x01b"}{"execute": "query-block-exports", "id": 2}',
    b'\xff{"execute": "query-block-exports", "id": 3}',
    b'01\n%d\n-x\n{"execute": "query-block-exports", "id": 4}\n',
    b'1-2 [1,2]: }\n{"execute": "query-block-exports", "id": 5}\n',
    b'{"execute": "query-block-exports", "id": [1 2]}\n',
]


def replies_until_end(client):
    client.send_raw(b'{"execute": "query-block-exports", "id": "end"}\n')
    out = []
    while True:
        msg = client.recv()
        assert msg is not None, f"connection closed after {out}"
        if msg.get("id") == "end":
            return out
        desc = msg.get("error", {}).get("desc", "")
        if desc.startswith("JSON parse error, ") and "stray" not in desc:
            msg["error"]["desc"] = "JSON parse error, ..."
        out.append(msg)


def test_framing_and_dialect_like_qsd(daemon, qsd):
    # One session each (qsd starts once), inputs in order: the first one
    # negotiates with single quotes.
    ours, theirs = raw_session(daemon.socket_path), raw_session(qsd)
    try:
        for data in FRAMING:
            ours.send_raw(data)
            theirs.send_raw(data)
            a, b = replies_until_end(ours), replies_until_end(theirs)
            assert a == b, f"for {data!r}:\n  exportd: {a}\n  qsd:     {b}"
    finally:
        ours.close()
        theirs.close()
