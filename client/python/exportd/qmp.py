"""exportd.qmp - a small synchronous QMP client, standard library only

SYNOPSIS
    from exportd.qmp import QMPClient, QMPError

    with QMPClient("/run/exportd/exportd.sock") as qmp:
        qmp.execute("blockdev-add", driver="file", filename="/srv/disk.img",
                    **{"node-name": "disk"})
        print(qmp.execute("query-block-exports"))
        ev = qmp.wait_event("BLOCK_EXPORT_DELETED", match={"id": "vm1"})

DESCRIPTION
    QMPClient(path, timeout=30.0) connects to the UNIX socket at path, reads
    the greeting (kept in .greeting) and leaves capabilities negotiation
    with qmp_capabilities, as QEMU's docs/interop/qmp-spec.rst describes.

    execute(command, **arguments) sends one command with an id of its own
    and returns the "return" value of the reply with that id.  Member names
    with a dash are given with **{"node-name": ...}.  An {"error": ...}
    reply raises QMPError, whose .cls and .desc are the daemon's class and
    description.  Events that arrive meanwhile are kept, in order, in
    .events.

    wait_event(name, match=None, timeout=None) returns the first kept or
    arriving event called name whose "data" has every member of the dict
    match, removing it from .events; TimeoutError when timeout seconds pass
    first.

    close(), or leaving a with block, closes the connection.  A connection
    the daemon closes raises ConnectionError from the call waiting on it.

    Management software already written for QEMU can use QEMU's own
    package, qemu.qmp (asyncio), against exportd unchanged; this module is
    for those without it.

SEE ALSO
    exportd(8), exportctl(1), QEMU's docs/interop/qmp-spec.rst
"""

import itertools
import json
import socket
import time

__all__ = ["QMPClient", "QMPError"]


class QMPError(Exception):
    """The daemon refused a command: .cls is the error class, .desc its text."""

    def __init__(self, cls, desc):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc


class QMPClient:
    """One QMP session on a UNIX socket (see the module's documentation)."""

    def __init__(self, path, timeout=30.0):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._timeout = timeout
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._buf = b""
        self._ids = itertools.count(1)
        self._decoder = json.JSONDecoder()
        self.events = []
        self.greeting = self._recv()
        if "QMP" not in self.greeting:
            raise QMPError(*self._error(self.greeting))
        self.execute("qmp_capabilities")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._sock.close()

    @staticmethod
    def _error(reply):
        err = reply.get("error", {})
        return err.get("class", "GenericError"), err.get("desc", str(reply))

    def _recv(self, timeout=None):
        """The next message; QMP messages need not end in a newline."""
        while True:
            text = self._buf.lstrip()
            if text:
                try:
                    msg, end = self._decoder.raw_decode(text.decode())
                except (ValueError, UnicodeDecodeError):
                    msg = None
                if msg is not None:
                    self._buf = text.decode()[end:].encode()
                    return msg
            self._sock.settimeout(self._timeout if timeout is None else max(timeout, 0.001))
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the QMP connection")
            self._buf += chunk

    def execute(self, command, **arguments):
        """Run command; its "return" value, or QMPError."""
        ident = f"exportd.qmp-{next(self._ids)}"
        req = {"execute": command, "id": ident}
        if arguments:
            req["arguments"] = arguments
        self._sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self._recv()
            if "event" in msg:
                self.events.append(msg)
            elif msg.get("id") == ident:
                if "error" in msg:
                    raise QMPError(*self._error(msg))
                return msg.get("return")

    def wait_event(self, name, match=None, timeout=None):
        """The first event called name whose data has match's members."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def fits(ev):
            data = ev.get("data", {})
            return ev["event"] == name and all(data.get(k) == v
                                               for k, v in (match or {}).items())
        while True:
            for i, ev in enumerate(self.events):
                if fits(ev):
                    return self.events.pop(i)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"no {name} event within {timeout} s")
            try:
                msg = self._recv(left)
            except socket.timeout:
                continue
            if "event" in msg:
                self.events.append(msg)
