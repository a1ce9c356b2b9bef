"""QMP protocol behaviour of exportd (issue: foundation): greeting,
negotiation, framing, bad input with QEMU's wording, ids, and
introspection.  Each test is one behaviour against a real daemon."""

import json
import socket

import pytest


def error_of(reply):
    assert "error" in reply, f"expected an error, got {reply}"
    return reply["error"]["class"], reply["error"]["desc"]


def test_greeting_is_qemu_shaped_and_crlf_terminated(daemon):
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.socket_path)
    line = s.makefile("rb").readline()
    s.close()
    assert line.endswith(b"}\r\n")
    msg = json.loads(line)
    assert list(msg) == ["QMP"]
    assert msg["QMP"]["capabilities"] == []
    version = msg["QMP"]["version"]
    assert set(version["qemu"]) == {"micro", "minor", "major"}
    assert all(isinstance(v, int) for v in version["qemu"].values())
    assert version["package"].startswith("exportd ")


def test_replies_use_qemu_separators(daemon):
    c = daemon.new_client(negotiate=False)
    c.send_raw('{"execute": "qmp_capabilities"}\n')
    assert c.recv_line_raw() == b'{"return": {}}\r\n'


def test_command_before_negotiation_is_refused(daemon):
    c = daemon.new_client(negotiate=False)
    cls, desc = error_of(c.execute({"execute": "query-version"}))
    assert cls == "CommandNotFound"
    assert desc == "Expecting capabilities negotiation with 'qmp_capabilities'"
    # and the session still negotiates afterwards
    assert c.execute({"execute": "qmp_capabilities"}) == {"return": {}}


def test_second_qmp_capabilities_is_an_error(qmp):
    cls, desc = error_of(qmp.execute({"execute": "qmp_capabilities"}))
    assert cls == "CommandNotFound"
    assert "already complete" in desc


def test_requesting_oob_capability_is_refused(daemon):
    c = daemon.new_client(negotiate=False)
    cls, desc = error_of(c.execute({"execute": "qmp_capabilities",
                                    "arguments": {"enable": ["oob"]}}))
    assert desc == "Capability 'oob' not available"


@pytest.mark.parametrize("ident", [1, "abc", [1, {"x": None}], {"a": 1.5}, None, True])
def test_any_json_id_is_echoed(qmp, ident):
    reply = qmp.execute({"execute": "query-version", "id": ident})
    assert "return" in reply
    assert reply["id"] == ident


def test_id_is_echoed_on_errors(qmp):
    reply = qmp.execute({"execute": "no-such-command", "id": "x1"})
    assert reply["id"] == "x1"
    assert reply["error"]["class"] == "CommandNotFound"


@pytest.mark.parametrize("raw,expected", [
    (b"foo\n", "JSON parse error, "),
    (b'{"execute": }\n', "JSON parse error, "),
    (b"[1, 2]\n", "QMP input must be a JSON object"),
    (b"42\n", "QMP input must be a JSON object"),
    (b'{"arguments": {}}\n', "QMP input lacks member 'execute'"),
    (b'{"execute": 5}\n', "QMP input member 'execute' must be a string"),
    (b'{"execute": "query-version", "arguments": []}\n',
     "QMP input member 'arguments' must be an object"),
    (b'{"execute": "query-version", "extra": 1}\n', "QMP input member 'extra' is unexpected"),
])
def test_bad_input_gets_qemu_wording_and_session_survives(qmp, raw, expected):
    cls, desc = error_of(qmp.execute(raw))
    assert cls == "GenericError"
    assert desc.startswith(expected), desc
    assert "return" in qmp.execute({"execute": "query-version"})


def test_unknown_command(qmp):
    cls, desc = error_of(qmp.execute({"execute": "frobnicate"}))
    assert cls == "CommandNotFound"
    assert desc == "The command frobnicate has not been found"


def test_exec_oob_is_clearly_unsupported(qmp):
    cls, desc = error_of(qmp.execute({"exec-oob": "query-version"}))
    assert cls == "GenericError"
    assert "exec-oob" in desc and "out-of-band" in desc
    assert "return" in qmp.execute({"execute": "query-version"})


def test_messages_without_newline_are_accepted(daemon):
    # python's legacy QEMUMonitorProtocol sends objects back to back.
    c = daemon.new_client(negotiate=False)
    c.send_raw('{"execute": "qmp_capabilities"}{"execute": "query-version", "id": 7}')
    assert c.recv_reply() == {"return": {}}
    assert c.recv_reply()["id"] == 7


def test_message_split_across_writes(qmp):
    qmp.send_raw('{"execute": "query-')
    qmp.send_raw('version", "id": "split"}')
    assert qmp.recv_reply()["id"] == "split"


def test_strings_with_braces_do_not_confuse_framing(qmp):
    reply = qmp.execute({"execute": "query-version", "id": "}{\"]["})
    assert reply["id"] == "}{\"]["


def test_query_version(qmp):
    v = qmp.cmd("query-version")
    assert v["package"].startswith("exportd ")
    assert isinstance(v["qemu"]["major"], int)


def test_query_commands_lists_the_schema_commands(qmp):
    names = {c["name"] for c in qmp.cmd("query-commands")}
    for expected in ("qmp_capabilities", "query-version", "query-commands",
                     "query-qmp-schema", "quit", "blockdev-add", "blockdev-del",
                     "query-named-block-nodes", "block-export-add", "block-export-del",
                     "query-block-exports"):
        assert expected in names


def test_query_qmp_schema_is_self_consistent(qmp):
    infos = qmp.cmd("query-qmp-schema")
    by_name = {i["name"]: i for i in infos}
    assert len(by_name) == len(infos), "duplicate SchemaInfo names"

    def check(type_name):
        assert type_name in by_name, f"type {type_name} referenced but not listed"

    for info in infos:
        mt = info["meta-type"]
        assert mt in ("builtin", "enum", "array", "object", "alternate", "command", "event")
        if mt == "command":
            check(info["arg-type"])
            check(info["ret-type"])
        elif mt == "event":
            check(info["arg-type"])
        elif mt == "object":
            for m in info["members"]:
                check(m["type"])
            for v in info.get("variants", []):
                check(v["type"])
        elif mt == "array":
            check(info["element-type"])
        elif mt == "alternate":
            for m in info["members"]:
                check(m["type"])
        elif mt == "enum":
            assert info["values"] == [m["name"] for m in info["members"]]
    add = by_name["block-export-add"]
    union = by_name[add["arg-type"]]
    assert union["tag"] == "type"
    assert {"case": "fuse", "type": "BlockExportOptionsFuse"} in union["variants"]


# --- schema validation: no handler runs on a rejected request ------------

@pytest.mark.parametrize("args,expected", [
    ({"id": "e", "bogus": 1}, "Parameter 'bogus' is unexpected"),
    ({}, "Parameter 'id' is missing"),
    ({"id": 5}, "Invalid parameter type for 'id', expected: string"),
    ({"id": "e", "mode": "gentle"}, "Parameter 'mode' does not accept value 'gentle'"),
    ({"id": "e", "mode": 1}, "Invalid parameter type for 'mode', expected: string"),
])
def test_arguments_are_validated_against_the_schema(qmp, args, expected):
    cls, desc = error_of(qmp.execute({"execute": "block-export-del", "arguments": args}))
    assert cls == "GenericError"
    assert desc == expected


def test_command_without_arguments_rejects_unknown_ones(qmp):
    cls, desc = error_of(qmp.execute({"execute": "query-version", "arguments": {"x": 1}}))
    assert desc == "Parameter 'x' is unexpected"


@pytest.mark.parametrize("args,expected", [
    ({"driver": "raw", "node-name": "n", "file": {"driver": "file"}},
     "Parameter 'file.filename' is missing"),
    ({"driver": "raw", "node-name": "n", "file": 5},
     "Invalid parameter type for 'file', expected: BlockdevRef"),
    ({"driver": "nbd", "node-name": "n"}, "Parameter 'driver' does not accept value 'nbd'"),
    ({"node-name": "n"}, "Parameter 'driver' is missing"),
    ({"driver": "file", "node-name": "n", "filename": "x", "locking": "maybe"},
     "Parameter 'locking' does not accept value 'maybe'"),
    ({"driver": "file", "node-name": "n", "filename": "x", "size": 5},
     "Parameter 'size' is unexpected"),
    ({"driver": "raw", "node-name": "n", "file": "f", "offset": "zero"},
     "Invalid parameter type for 'offset', expected: integer"),
    ({"driver": "file", "node-name": "n", "filename": "x", "cache": {"direct": "yes"}},
     "Invalid parameter type for 'cache.direct', expected: boolean"),
])
def test_union_and_nested_members_are_validated(qmp, args, expected):
    cls, desc = error_of(qmp.execute({"execute": "blockdev-add", "arguments": args}))
    assert desc == expected
    # nothing was created
    assert all(n.get("node-name") != "n" for n in qmp.cmd("query-named-block-nodes"))


def test_rejected_export_add_has_no_side_effect(qmp, tmp_path):
    mnt = tmp_path / "m"
    mnt.write_bytes(b"")
    cls, desc = error_of(qmp.execute({"execute": "block-export-add", "arguments": {
        "type": "fuse", "id": "e", "node-name": "none", "mountpoint": str(mnt),
        "writable": "yes"}}))
    assert desc == "Invalid parameter type for 'writable', expected: boolean"
    assert qmp.cmd("query-block-exports") == []


# --- framing of bad and QEMU-dialect input (issues 12 and 23) ------------

def test_raw_newline_in_a_string_gets_one_error_and_the_next_line_is_answered(qmp):
    qmp.send_raw(b'{"exec\n{"execute": "query-version", "id": "after"}\n')
    cls, desc = error_of(qmp.recv_reply())
    assert desc == "JSON parse error, stray '\"exec\n'"
    assert qmp.recv_reply()["id"] == "after"


def test_control_character_in_a_string_resynchronises_like_qemu(qmp):
    # QEMU restarts at the '}' (a stray closer: a second error), then reads on.
    qmp.send_raw(b'{"a\x01b"}{"execute": "query-version", "id": "after"}')
    assert error_of(qmp.recv_reply())[1] == "JSON parse error, stray '\"a\x01'"
    assert error_of(qmp.recv_reply())[1].startswith("JSON parse error, ")
    assert qmp.recv_reply()["id"] == "after"


def test_bytes_that_are_never_utf8_get_a_valid_json_error(qmp):
    qmp.send_raw(b'\xff{"execute": "query-version", "id": "after"}')
    assert error_of(qmp.recv_reply())[1] == "JSON parse error, stray '\ufffd'"
    assert qmp.recv_reply()["id"] == "after"


def test_single_quoted_strings_are_accepted_as_qemu_does(daemon):
    c = daemon.new_client(negotiate=False)
    c.send_raw(b"{'execute': 'qmp_capabilities'}\n")
    assert c.recv_reply() == {"return": {}}
    c.send_raw(b"{'execute': 'query-version', 'id': 'it\\'s \"quoted\"'}\n")
    assert c.recv_reply()["id"] == 'it\'s "quoted"'


def test_escaped_apostrophe_in_a_double_quoted_string(qmp):
    qmp.send_raw(b'{"execute": "query-version", "id": "it\\\'s"}')
    assert qmp.recv_reply()["id"] == "it's"
