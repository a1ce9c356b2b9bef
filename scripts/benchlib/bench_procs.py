"""bench_procs: child processes and FUSE mounts that must never outlive scripts/bench.

Every server and fio run is started here, in its own session (so that Ctrl-C
reaches only the bench, which then tears things down in order) and with
PR_SET_PDEATHSIG (so that a killed bench still takes its children with it).
Each pid and each mountpoint is registered until it is gone; cleanup_all()
kills leftover processes by pid and lazily unmounts leftover mounts, and is
called from a finally block and from the signal handlers.
"""

import ctypes
import os
import signal
import subprocess
import time

_PR_SET_PDEATHSIG = 1
_libc = None


def _child_setup():
    # Runs in the child between fork and exec.
    try:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _load_libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)


_procs = {}     # pid -> Popen
_mounts = []    # mountpoints we created and may still be mounted


def spawn(argv, stdout=None, stderr=None):
    """Start argv in its own session; registered for cleanup.

    Call from the main thread: PR_SET_PDEATHSIG fires when the spawning
    thread exits, not when the process does."""
    _load_libc()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                         start_new_session=True, preexec_fn=_child_setup)
    _procs[p.pid] = p
    return p


def reap(p, term_timeout=10.0):
    """Stop p: SIGTERM, wait, then SIGKILL.  Returns True if it left on SIGTERM."""
    clean = True
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(term_timeout)
        except subprocess.TimeoutExpired:
            clean = False
            p.kill()
            p.wait()
    _procs.pop(p.pid, None)
    return clean


def forget(p):
    """p exited on its own and was waited for."""
    _procs.pop(p.pid, None)


def mounted_paths():
    """Mount points currently listed in /proc/self/mountinfo."""
    paths = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                paths.add(_unescape(fields[4]))
    return paths


def _unescape(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def is_mounted(path):
    # No stat or realpath here: a hung FUSE server would hang them too.
    # Callers pass absolute, already-resolved paths.
    return path in mounted_paths()


def register_mount(path):
    if path not in _mounts:
        _mounts.append(path)


def wait_mounted(path, proc=None, timeout=10.0):
    """Wait until path is a mount point; False if proc died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_mounted(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def wait_unmounted(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_mounted(path):
            return True
        time.sleep(0.01)
    return not is_mounted(path)


def force_unmount(path):
    """fusermount3 -u -z, then umount -l as a last resort.  True if gone."""
    if not is_mounted(path):
        return True
    subprocess.run(["fusermount3", "-u", "-z", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    if is_mounted(path):
        subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return not is_mounted(path)


def release_mount(path):
    """Forget a mountpoint that is known to be unmounted."""
    if path in _mounts:
        _mounts.remove(path)


def cleanup_all():
    """Kill every registered process and unmount every registered mount.

    fio first (it may hold the files open), then servers with SIGTERM so
    they unmount themselves, then lazy unmounts, then SIGKILL."""
    procs = list(_procs.values())
    fios = [p for p in procs if os.path.basename(str(p.args[0])) == "fio"]
    others = [p for p in procs if p not in fios]
    for p in fios:
        if p.poll() is None:
            p.kill()
    for p in fios:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        _procs.pop(p.pid, None)
    for p in others:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for p in others:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for m in list(_mounts):
        force_unmount(m)
        if not is_mounted(m):
            _mounts.remove(m)
    for p in others:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _procs.pop(p.pid, None)
    left = [m for m in _mounts if is_mounted(m)]
    return left


def cpu_seconds(pid):
    """User+system CPU time of a process (all its threads) so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    # utime and stime are fields 14 and 15 of stat, 12 and 13 after "(comm) ".
    ticks = int(fields[11]) + int(fields[12])
    return ticks / float(os.sysconf("SC_CLK_TCK"))
