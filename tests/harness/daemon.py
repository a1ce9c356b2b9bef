"""Start and stop a real exportd on a temp socket; clean up after it."""

import os
import signal
import subprocess
import time

from .qmp import QMPClient

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SANITIZER_MARKERS = (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
                     b"runtime error:", b"ERROR: UndefinedBehaviorSanitizer")


def build_path(name):
    """Absolute path of a program in the build tree."""
    return os.path.join(os.environ.get("EXPORTD_BUILD", REPO), name)


def _unescape_mount(path):
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    return (path.replace("\\040", " ").replace("\\011", "\t")
            .replace("\\012", "\n").replace("\\134", "\\"))


def fuse_mounts():
    """Mountpoints of every FUSE mount on the machine."""
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and (fields[2] == "fuse" or fields[2].startswith("fuse.")):
                out.append(_unescape_mount(fields[1]))
    return out


def unmount_all_under(directory):
    """Lazily unmount every FUSE mount at or below directory; returns them."""
    directory = os.path.realpath(directory)
    gone = []
    for mnt in fuse_mounts():
        if mnt == directory or mnt.startswith(directory + "/"):
            subprocess.run(["fusermount3", "-u", "-z", mnt],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if mnt in fuse_mounts():
                subprocess.run(["umount", "-l", mnt],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            gone.append(mnt)
    return gone


class Daemon:
    """One exportd process on its own socket in tmpdir."""

    def __init__(self, tmpdir, extra_args=None, env=None, wrapper=None):
        self.tmpdir = str(tmpdir)
        os.makedirs(self.tmpdir, exist_ok=True)
        self.socket_path = os.path.join(self.tmpdir, "exportd.sock")
        self.log_path = os.path.join(self.tmpdir, "exportd.log")
        self.extra_args = list(extra_args or [])
        self.env = env
        self.wrapper = list(wrapper or [])    # e.g. setpriv ... -- to run as another user
        self.proc = None
        self.clients = []

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, extra_args=None, wait=True, socket_arg=True):
        if extra_args is not None:
            self.extra_args = list(extra_args)
        args = self.wrapper + [build_path("exportd")]
        if socket_arg:
            args += ["--socket", self.socket_path]
        args += ["--log-level", "debug"] + self.extra_args
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if self.env:
            env.update(self.env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=self._log, env=env,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exportd exited with {self.proc.returncode} "
                                   f"during start-up:\n{self.log()}")
            try:
                QMPClient(self.socket_path, negotiate=False, timeout=2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"exportd did not listen on {self.socket_path}:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def sanitizer_report(self):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        for marker in SANITIZER_MARKERS:
            if marker in data:
                return data.decode(errors="replace")
        return None

    def new_client(self, negotiate=True):
        c = QMPClient(self.socket_path, negotiate=negotiate)
        self.clients.append(c)
        return c

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20.0):
        """Wait for exit; returns the exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=20.0):
        """SIGTERM and wait; returns the exit status (kills on timeout)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def cleanup(self):
        """Always safe: close clients, kill the process, unmount leftovers."""
        for c in self.clients:
            c.close()
        self.clients = []
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        return unmount_all_under(self.tmpdir)
