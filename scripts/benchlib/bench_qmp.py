"""bench_qmp: the smallest QMP client that scripts/bench needs.

It speaks to qemu-storage-daemon and to exportd alike over a UNIX socket:
read the greeting, negotiate with qmp_capabilities, then send one command at
a time and wait for its reply, skipping any event that arrives in between.
Standard library only, so `make bench` runs on a bare Debian python3.
"""

import json
import socket
import time


class QMPError(Exception):
    """The server answered {"error": ...}; .cls and .desc say what."""

    def __init__(self, cls, desc):
        super().__init__("%s: %s" % (cls, desc))
        self.cls = cls
        self.desc = desc


class QMPClient:
    def __init__(self, path, timeout=10.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.events = []
        self.greeting = None
        self._next_id = 0

    def connect(self, wait=0.0):
        """Connect, retrying for up to `wait` seconds while the server starts."""
        deadline = time.monotonic() + wait
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        self.sock = s
        self.greeting = self._read_message()
        if "QMP" not in self.greeting:
            raise QMPError("ProtocolError",
                           "no QMP greeting on %s: %r" % (self.path, self.greeting))
        self.cmd("qmp_capabilities")
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read_message(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP connection to %s closed" % self.path)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.strip()
        if not line:
            return self._read_message()
        return json.loads(line)

    def execute(self, msg):
        """Send one raw message and return the whole reply dict."""
        self._next_id += 1
        msg = dict(msg)
        msg.setdefault("id", self._next_id)
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read_message()
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def cmd(self, name, **arguments):
        """Run one command; return its 'return' value or raise QMPError."""
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        reply = self.execute(msg)
        if "error" in reply:
            err = reply["error"]
            raise QMPError(err.get("class", "?"), err.get("desc", "?"))
        return reply.get("return")
