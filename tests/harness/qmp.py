"""A small synchronous QMP client (qmp-spec.rst): greeting, negotiation,
commands with ids, and events collected as they arrive."""

import json
import socket
import time


class QMPError(Exception):
    """An {"error": {"class", "desc"}} reply."""

    def __init__(self, cls, desc, reply=None):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc
        self.reply = reply


class QMPClient:
    def __init__(self, path, negotiate=True, timeout=30.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buf = b""
        self._id = 0
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            self.cmd("qmp_capabilities")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        """Send bytes as they are (for malformed-input tests)."""
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def recv(self, timeout=None):
        """Next message from the daemon (reply or event), as a dict.
        Returns None when the daemon closed the connection."""
        if timeout is not None:
            old = self.sock.gettimeout()
            self.sock.settimeout(timeout)
        try:
            while b"\n" not in self._buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self._buf += chunk
        finally:
            if timeout is not None:
                self.sock.settimeout(old)
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def recv_line_raw(self):
        """Next raw line including its line ending (for wire-format tests)."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line + b"\n"

    def recv_reply(self):
        """Next non-event message; events are appended to self.events."""
        while True:
            msg = self.recv()
            if msg is None:
                raise ConnectionError("exportd closed the QMP connection")
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def execute(self, request):
        """Send a whole request dict (or raw str/bytes) and return the reply dict."""
        if isinstance(request, (str, bytes)):
            self.send_raw(request)
        else:
            self.send_raw(json.dumps(request))
        return self.recv_reply()

    def cmd(self, name, args=None, **kwargs):
        """Run a command; return its 'return' value or raise QMPError."""
        arguments = dict(args or {})
        arguments.update(kwargs)
        self._id += 1
        req = {"execute": name, "id": self._id}
        if arguments:
            req["arguments"] = arguments
        reply = self.execute(req)
        if "error" in reply:
            raise QMPError(reply["error"]["class"], reply["error"]["desc"], reply)
        assert reply.get("id") == self._id, f"reply id mismatch: {reply}"
        return reply["return"]

    def wait_event(self, name, timeout=10.0, match=None):
        """Wait for an event called name (and, if given, whose data matches
        the dict match); returns it and removes it from self.events."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name and (
                        match is None or all(ev.get("data", {}).get(k) == v
                                             for k, v in match.items())):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name} event within {timeout}s "
                                   f"(got {self.events})")
            try:
                msg = self.recv(timeout=left)
            except socket.timeout:
                continue
            if msg is None:
                raise ConnectionError("exportd closed the QMP connection")
            if "event" in msg:
                self.events.append(msg)
