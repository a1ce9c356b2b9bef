"""bench_targets: the servers that scripts/bench compares, started one run at a time.

Each target turns a job's image into a file that fio can open: exportd and
qemu-storage-daemon export it over FUSE (set up through QMP, as a management
tool would), libfuse's passthrough example serves the directory holding it,
and the direct target is the image file itself.  The -null targets export a
null-co node of the image's size instead, to measure the daemons alone.  A target is started for one
fio run and stopped right after it, so that no two servers ever hold the same
image (both take image locks) and each run starts from a fresh server.
"""

import os
import subprocess
import time

import bench_procs as procs
from bench_qmp import QMPClient, QMPError
from bench_report import DIRECT, FUSEPT


class TargetError(Exception):
    """This target cannot serve this kind of job; the message says why."""


def _tail(path, n=6, offset=0):
    """The last n lines a server logged since offset, on one line."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(lines[-n:])


class Images:
    """The benchmark images: read copies and write scratch copies."""

    def __init__(self, directory):
        self.dir = directory
        self.read = {"raw": os.path.join(directory, "bench.raw"),
                     "qcow2": os.path.join(directory, "bench.qcow2")}
        self.write = {"raw": os.path.join(directory, "bench-w.raw"),
                      "qcow2": os.path.join(directory, "bench-w.qcow2")}
        # Targets whose O_DIRECT writes reach the disk (the bare image,
        # kernel passthrough) write their own copy: an O_DIRECT write drops
        # the written range from the page cache, and the next FUSE server
        # writing into the same file then ran at a fifth of its speed.
        self.write_disk = {"raw": os.path.join(directory, "bench-wd.raw")}

    def all_paths(self):
        return list(self.read.values()) + list(self.write.values()) + \
            list(self.write_disk.values())

    def path(self, job, disk_writer=False):
        # Writes go to a scratch copy so later read jobs see the original.
        if not job.writes:
            return self.read[job.fmt]
        if disk_writer and job.fmt in self.write_disk:
            return self.write_disk[job.fmt]
        return self.write[job.fmt]


class Target:
    id = None
    label = None
    qmp_capable = False
    disk_writer = False     # its O_DIRECT writes bypass the page cache

    def __init__(self):
        self.proc = None
        self.qmp = None
        self.info = None

    def prepare(self, ctx):
        """Check (and build) what the target needs; raise TargetError to skip it."""

    def applies(self, job):
        raise NotImplementedError

    def start(self, job, ctx):
        """Serve job's image; return the path fio must open."""
        raise NotImplementedError

    def stop(self):
        """Tear down; return a list of warnings (empty when all went well)."""
        return []

    def server_pid(self):
        return self.proc.pid if self.proc is not None else None

    def image(self, job, ctx):
        """The image file this target serves for job."""
        return ctx.images.path(job, disk_writer=self.disk_writer)

    def describe(self):
        return self.label

    def notes(self):
        """Limitations worth printing under the table."""
        return []


class DirectTarget(Target):
    """The raw image itself, no FUSE: the ceiling of this machine."""
    id = DIRECT
    label = "direct"
    disk_writer = True

    def applies(self, job):
        return job.fmt == "raw"

    def start(self, job, ctx):
        return self.image(job, ctx)

    def describe(self):
        return "the raw image file read by fio directly, without FUSE"


class QmpDaemonTarget(Target):
    """A daemon with qemu-storage-daemon's command line and QMP (qsd, exportd)."""
    qmp_capable = True

    def __init__(self, tid, label, binary, export_opts=None, formats=("raw", "qcow2"),
                 buffered=False, expect_path=None, soft_opts=(), file_opts=None,
                 disk_writer=False, write_opts=None, null_co=False):
        super().__init__()
        # Serve a null-co node of the image's size instead of the image:
        # no storage below the export, so the row is the daemon's own cost.
        self.null_co = null_co
        # Export options of the jobs that write (exportd-pt: growable, the
        # only kind of export whose writes the kernel may pass through).
        self.write_opts = dict(write_opts or {})
        self.disk_writer = disk_writer
        self.id = tid
        self.label = label
        self.binary = binary
        self.export_opts = dict(export_opts or {})
        self.soft_opts = soft_opts       # export options to drop if refused
        self.dropped = []
        self.file_opts = dict(file_opts or {})
        self.formats = formats
        self.buffered = buffered
        self.expect_path = expect_path   # substring x-data-path must contain
        self.mnt = None
        self.log = None
        self.log_offset = 0

    def prepare(self, ctx):
        if not self.binary or not os.path.isfile(self.binary):
            raise TargetError("%s not found (%s)" % (self.label, self.binary or "no path"))
        if not os.access(self.binary, os.X_OK):
            raise TargetError("%s is not executable" % self.binary)

    def applies(self, job):
        # buffered: False = O_DIRECT jobs only, True = buffered only, None = both
        return job.fmt in self.formats and self.buffered in (None, job.buffered)

    def start(self, job, ctx):
        sock = os.path.join(ctx.rundir, self.id + ".sock")
        self.mnt = os.path.join(ctx.rundir, self.id + ".mnt")
        self.log = os.path.join(ctx.rundir, self.id + ".log")
        for p in (sock,):
            if os.path.exists(p):
                os.unlink(p)
        with open(self.mnt, "w"):
            pass
        argv = [self.binary, "--chardev", "socket,id=m,path=%s,server=on,wait=off" % sock,
                "--monitor", "chardev=m"]
        logf = open(self.log, "ab")
        self.log_offset = logf.tell()
        try:
            self.proc = procs.spawn(argv, stdout=logf, stderr=logf)
        finally:
            logf.close()
        procs.register_mount(self.mnt)
        step = "start"
        try:
            self._connect(sock)
            img = self.image(job, ctx)
            step = "blockdev-add"
            ro = not job.writes
            if self.null_co:
                self.qmp.cmd("blockdev-add", driver="null-co", size=os.path.getsize(img),
                             **{"node-name": "f", "read-only": ro, "read-zeroes": True})
            else:
                self.qmp.cmd("blockdev-add", driver="file", filename=img, **dict({
                    "node-name": "f", "read-only": ro}, **self.file_opts))
            node = "f"
            if job.fmt == "qcow2":
                self.qmp.cmd("blockdev-add", driver="qcow2", file="f", **{
                    "node-name": "q", "read-only": ro})
                node = "q"
            args = {"type": "fuse", "id": "e", "node-name": node,
                    "mountpoint": self.mnt, "writable": job.writes}
            args.update(self.export_opts)
            if job.writes:
                args.update(self.write_opts)
            step = "block-export-add"
            for o in self.dropped:
                args.pop(o, None)
            try:
                self.qmp.cmd("block-export-add", **args)
            except QMPError as e:
                soft = [o for o in self.soft_opts if o in args and o in e.desc]
                if not soft:
                    raise
                for o in soft:
                    args.pop(o)
                self.dropped.extend(soft)
                self.qmp.cmd("block-export-add", **args)
            if not procs.wait_mounted(self.mnt, self.proc, 10):
                raise TargetError("export of %s did not appear at %s" % (img, self.mnt))
            step = "query-block-exports"
            exports = self.qmp.cmd("query-block-exports") or []
            self.info = exports[0] if exports else {}
            path = self.info.get("x-data-path")
            reason = self.info.get("x-data-path-reason", "no reason")
            if self.expect_path and path is not None and self.expect_path not in path:
                raise TargetError("export uses the %s data path, not %s (%s)" % (
                    path, self.expect_path, reason))
            if self.expect_path and path is not None and job.writes and self.write_opts \
                    and "writes" not in reason:
                raise TargetError("the kernel does not pass this export's writes "
                                  "through (%s)" % reason)
        except (QMPError, OSError, ConnectionError, ValueError, TargetError) as e:
            self.stop()
            if isinstance(e, TargetError):
                msg = str(e)
            elif isinstance(e, QMPError):
                msg = "%s: %s" % (step, e)
            else:
                msg = "%s: %s: %s" % (step, type(e).__name__, e)
            tail = _tail(self.log, offset=self.log_offset)
            if e.__class__ is QMPError:
                tail = ""       # the QMP error says it all; the log repeats it
            raise TargetError(msg + (" [log: %s]" % tail if tail else ""))
        return self.mnt

    def _connect(self, sock):
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise TargetError("%s exited with status %d at start" % (
                    self.label, self.proc.returncode))
            try:
                self.qmp = QMPClient(sock, timeout=10).connect()
                return
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise TargetError("no QMP socket at %s after 10 s" % sock)
                time.sleep(0.02)

    def stop(self):
        warnings = []
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.proc is not None:
            if self.proc.poll() is not None:
                warnings.append("%s had exited (status %d) before stop" % (
                    self.label, self.proc.returncode))
                procs.forget(self.proc)
            elif not procs.reap(self.proc, term_timeout=10):
                warnings.append("%s ignored SIGTERM for 10 s, killed" % self.label)
            self.proc = None
        if self.mnt is not None:
            if procs.is_mounted(self.mnt):
                warnings.append("%s left %s mounted" % (self.label, self.mnt))
                procs.force_unmount(self.mnt)
            if not procs.is_mounted(self.mnt):
                procs.release_mount(self.mnt)
        return warnings

    def describe(self):
        opts = dict(self.export_opts)
        for o in self.dropped:
            opts.pop(o, None)
        opts.update(("file." + k, v) for k, v in self.file_opts.items())
        opts.update(("writes: " + k, v) for k, v in self.write_opts.items())
        s = ", ".join("%s=%s" % kv for kv in sorted(opts.items()))
        what = " serving null-co (read-zeroes=on)" if self.null_co else ""
        return "%s (%s)%s%s" % (self.label, self.binary, what, " " + s if s else "")

    def notes(self):
        if self.dropped:
            return ["%s: the daemon refused %s, so it ran without it" % (
                self.label, ", ".join(self.dropped))]
        return []


# Candidates, best first: (name, source file, compiler, extra flags).
FUSE_EXAMPLES = [
    ("passthrough_hp", "passthrough_hp.cc", "c++", ["-std=c++17"]),
    ("passthrough_ll", "passthrough_ll.c", "cc", []),
]
EXAMPLES_DIR = "/usr/share/doc/libfuse3-dev/examples"


class FusePassthroughTarget(Target):
    """libfuse's passthrough example serving the image directory."""
    id = FUSEPT
    label = "passthrough_ll"

    def __init__(self, examples_dir=EXAMPLES_DIR):
        super().__init__()
        self.examples_dir = examples_dir
        self.binary = None
        self.name = None
        self.mnt = None
        self.log = None

    def prepare(self, ctx):
        cflags = subprocess.run(["pkg-config", "--cflags", "fuse3"], capture_output=True,
                                text=True)
        libs = subprocess.run(["pkg-config", "--libs", "fuse3"], capture_output=True,
                              text=True)
        if cflags.returncode or libs.returncode:
            raise TargetError("pkg-config fuse3 failed (is libfuse3-dev installed?)")
        errors = []
        for name, src, cc, extra in FUSE_EXAMPLES:
            path = os.path.join(self.examples_dir, src)
            if not os.path.exists(path):
                errors.append("%s: %s not shipped" % (name, path))
                continue
            out = os.path.join(ctx.builddir, name)
            if not (os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(path)):
                os.makedirs(ctx.builddir, exist_ok=True)
                compiler = os.environ.get("CXX" if cc == "c++" else "CC", cc)
                argv = [compiler, "-O2", "-Wall"] + extra + cflags.stdout.split() + \
                    ["-I" + self.examples_dir, "-o", out, path] + libs.stdout.split() + \
                    ["-lpthread"]
                r = subprocess.run(argv, capture_output=True, text=True)
                if r.returncode:
                    errors.append("%s: build failed: %s" % (name, r.stderr.strip()[-400:]))
                    continue
            self.binary, self.name, self.label = out, name, name
            return
        raise TargetError("no libfuse passthrough example could be built: " + "; ".join(errors))

    def applies(self, job):
        # No write rows: the example opens the backing file with the caller's
        # O_DIRECT and pwrite()s from the request buffer, where the data
        # follows the 80-byte FUSE header, so every O_DIRECT write fails with
        # EINVAL (tried on Debian's libfuse 3.14).  Issue 7 compares reads only.
        return job.fmt == "raw" and not job.buffered and not job.writes

    def notes(self):
        return ["%s: no write rows, its O_DIRECT writes fail with EINVAL (it pwrite()s "
                "an unaligned request buffer to a backing file opened O_DIRECT)" % self.name]

    def start(self, job, ctx):
        self.mnt = os.path.join(ctx.rundir, "fusept.mnt")
        self.log = os.path.join(ctx.rundir, "fusept.log")
        os.makedirs(self.mnt, exist_ok=True)
        if self.name == "passthrough_hp":
            argv = [self.binary, ctx.images.dir, self.mnt]
        else:
            # Multi-threaded loop with one cloned /dev/fuse fd per thread:
            # the tuned configuration the example offers.
            argv = [self.binary, "-f", "-o", "source=" + ctx.images.dir,
                    "-o", "clone_fd", self.mnt]
        logf = open(self.log, "ab")
        offset = logf.tell()
        try:
            self.proc = procs.spawn(argv, stdout=logf, stderr=logf)
        finally:
            logf.close()
        procs.register_mount(self.mnt)
        if not procs.wait_mounted(self.mnt, self.proc, 10):
            self.stop()
            raise TargetError("%s did not mount %s [log: %s]" % (
                self.name, self.mnt, _tail(self.log, offset=offset)))
        return os.path.join(self.mnt, os.path.basename(self.image(job, ctx)))

    def stop(self):
        warnings = []
        if self.mnt is not None and procs.is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if self.proc is not None:
            try:
                self.proc.wait(5)
                procs.forget(self.proc)
            except subprocess.TimeoutExpired:
                if not procs.reap(self.proc, term_timeout=5):
                    warnings.append("%s ignored SIGTERM, killed" % self.name)
            self.proc = None
        if self.mnt is not None:
            if not procs.force_unmount(self.mnt):
                warnings.append("%s still mounted" % self.mnt)
            else:
                procs.release_mount(self.mnt)
        return warnings

    def describe(self):
        return "libfuse %s example (%s), serving %s" % (
            self.name, self.binary, "the image directory")
