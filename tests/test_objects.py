"""User-creatable objects (QEMU's --object and object-add/object-del): the
registry, the `secret` type block drivers take keys from, the `iothread`
type qsd command lines name.  Error texts are qemu-storage-daemon 7.2's,
checked side by side where qsd gives the same error."""

import base64
import subprocess

import pytest

from harness import QSD, QSD_MISSING, QMPClient, QMPError, build_path, qsd_monitor


def add(qmp, **props):
    return qmp.cmd("object-add", props)


def error_of(qmp, name, args):
    with pytest.raises(QMPError) as exc:
        qmp.cmd(name, args)
    return exc.value.desc


def test_secret_add_and_del(qmp):
    add(qmp, **{"qom-type": "secret", "id": "s", "data": "hunter2"})
    qmp.cmd("object-del", id="s")
    assert error_of(qmp, "object-del", {"id": "s"}) == "object 's' not found"


def test_duplicate_id_refused(qmp):
    add(qmp, **{"qom-type": "secret", "id": "s", "data": "a"})
    desc = error_of(qmp, "object-add", {"qom-type": "iothread", "id": "s"})
    assert desc == "attempt to add duplicate property 's' to object (type 'container')"


def test_secret_needs_data_or_file(qmp):
    assert (error_of(qmp, "object-add", {"qom-type": "secret", "id": "s"})
            == "Either 'file' or 'data' must be provided")
    assert (error_of(qmp, "object-add", {"qom-type": "secret", "id": "s", "data": "a",
                                         "file": "/etc/hostname"})
            == "'file' and 'data' are mutually exclusive")


def test_secret_file_that_cannot_be_read(qmp, tmp_path):
    desc = error_of(qmp, "object-add", {"qom-type": "secret", "id": "s",
                                        "file": str(tmp_path / "missing")})
    assert desc == f"Unable to read {tmp_path}/missing: No such file or directory"


def test_secret_file_too_large_refused(qmp):
    desc = error_of(qmp, "object-add", {"qom-type": "secret", "id": "s",
                                        "file": "/dev/zero"})
    assert "larger than 1048576 bytes, not a secret" in desc


@pytest.mark.parametrize("data,error", [
    ("a$$=", "Base64 data contains invalid characters"),
    ("aGVsbG8", "Base64 data is not valid"),
    ("=aGVs", "Base64 data is not valid"),
    ("aGVsbG8=x===", "Base64 data is not valid"),
])
def test_secret_bad_base64_refused(qmp, data, error):
    desc = error_of(qmp, "object-add", {"qom-type": "secret", "id": "s", "data": data,
                                        "format": "base64"})
    assert desc == error


def test_secret_base64_file_with_newlines(qmp, tmp_path):
    """`echo KEY > file` writes a newline; QEMU takes it, so do we."""
    key = tmp_path / "key"
    key.write_text("aGVs\nbG8=\n")
    add(qmp, **{"qom-type": "secret", "id": "s", "file": str(key), "format": "base64"})


def test_secret_keyid_refused_not_ignored(qmp):
    desc = error_of(qmp, "object-add", {"qom-type": "secret", "id": "s", "data": "x",
                                        "keyid": "master", "iv": "AAAA"})
    assert "'keyid' and 'iv'" in desc


def test_objects_from_the_command_line(tmp_path):
    key = tmp_path / "key"
    key.write_text(base64.b64encode(b"\x00\x01secret").decode())
    sock = tmp_path / "s"
    proc = subprocess.Popen([build_path("exportd"), "--socket", str(sock),
                             "--pidfile", str(tmp_path / "pid"),
                             "--object", f"secret,id=k,file={key},format=base64",
                             "--object", "iothread,id=io0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        from harness.wait import wait_until
        wait_until(lambda: (tmp_path / "pid").exists() or proc.poll() is not None,
                   "exportd's pidfile")
        assert proc.poll() is None, proc.stderr.read()
        c = QMPClient(str(sock))
        # Both exist: a second one with either id is a duplicate.
        for oid in ("k", "io0"):
            with pytest.raises(QMPError, match="duplicate property"):
                c.cmd("object-add", {"qom-type": "iothread", "id": oid})
        c.cmd("quit")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_object_on_the_command_line_exits_1(tmp_path):
    r = subprocess.run([build_path("exportd"), "--socket", str(tmp_path / "s"),
                        "--object", "secret,id=k"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "--object: Either 'file' or 'data' must be provided" in r.stderr


@pytest.mark.skipif(QSD is None, reason=QSD_MISSING)
def test_errors_match_qsd(qmp, tmp_path):
    requests = [
        ("object-add", {"qom-type": "secret", "id": "a", "data": "x"}),
        ("object-add", {"qom-type": "secret", "id": "a", "data": "x"}),
        ("object-add", {"qom-type": "secret", "id": "b"}),
        ("object-add", {"qom-type": "secret", "id": "b", "data": "x", "file": "/etc/hostname"}),
        ("object-add", {"qom-type": "secret", "id": "b", "data": "a$$=", "format": "base64"}),
        ("object-del", {"id": "nope"}),
        ("object-del", {"id": "a"}),
    ]
    with qsd_monitor(tmp_path) as path:
        theirs = QMPClient(path)
        for name, args in requests:
            a = qmp.execute({"execute": name, "arguments": args})
            b = theirs.execute({"execute": name, "arguments": args})
            assert a == b, f"{name} {args}:\n  exportd: {a}\n  qsd:     {b}"
