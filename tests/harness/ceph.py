"""A real single-node Ceph cluster on loopback, for the rbd driver's tests.

One monitor on 127.0.0.1 (msgr2 on a free port) and one OSD on memstore
(its objects in RAM: nothing to format, nothing left on disk), with cephx
keys generated for the run and every file in one directory: ceph.conf, the
keyring, the monitor's store, logs and admin sockets.  No manager daemon:
pools and images are monitor and OSD work.  Readiness is polled with a
deadline (the monitor answers `ceph status`, the OSD is up, the pool
takes an image), never slept for; stop() kills what start() started, by
pid, and removes the directory.

Debian's ceph-mon, ceph-osd and ceph-common (Ceph 16) are what it runs;
where they are missing, or cannot start here, the tests using it skip with
the reason."""

import os
import shutil
import signal
import socket
import subprocess
import uuid

from .wait import wait_until

TOOLS = ("ceph-mon", "ceph-osd", "ceph", "rbd", "ceph-authtool", "monmaptool")


class CephUnavailable(Exception):
    """The packages are missing or cannot run here: tests skip with this."""


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, n=20):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


class CephCluster:
    """A monitor and an OSD in `directory`, with one pool `pool`."""

    def __init__(self, directory, pool="rbd"):
        self.dir = str(directory)
        self.pool = pool
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.keyring = os.path.join(self.dir, "keyring")
        self.procs = {}
        self.port = None
        self.fsid = str(uuid.uuid4())

    # ---- commands ----------------------------------------------------

    def run(self, prog, *args, timeout=60, check=True, input=None):
        """Run a Ceph client tool (ceph, rbd) against this cluster."""
        r = subprocess.run([prog, "-c", self.conf] + [str(a) for a in args],
                           capture_output=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise RuntimeError("%s %s failed (%d): %s" % (
                prog, " ".join(map(str, args)), r.returncode,
                r.stderr.decode(errors="replace")))
        return r

    def rbd(self, *args, **kw):
        return self.run("rbd", *args, **kw)

    def ceph(self, *args, **kw):
        return self.run("ceph", *args, **kw)

    def create_image(self, name, size):
        self.rbd("create", "--size", "%dB" % size, "%s/%s" % (self.pool, name))
        return name

    def export_image(self, spec, path):
        """`rbd export` of pool/image[@snap] into the file path."""
        self.rbd("export", "--no-progress", "%s/%s" % (self.pool, spec), str(path))

    def image_size(self, name):
        import json
        out = self.rbd("info", "--format", "json", "%s/%s" % (self.pool, name)).stdout
        return json.loads(out)["size"]

    def blockdev(self, image, **extra):
        """BlockdevOptionsRbd for image, reaching this cluster."""
        opts = {"driver": "rbd", "pool": self.pool, "image": image, "conf": self.conf}
        opts.update(extra)
        return opts

    # ---- life cycle --------------------------------------------------

    def _write_conf(self):
        d = self.dir
        conf = f"""[global]
fsid = {self.fsid}
mon_host = v2:127.0.0.1:{self.port}
ms_bind_msgr1 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = {self.keyring}
run_dir = {d}/run
admin_socket = {d}/run/$name.$pid.asok
log_file = {d}/log/$name.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_crit = 0
mon_data_avail_warn = 0
[mon]
mon_data = {d}/mon
pid_file = {d}/run/mon.pid
[osd]
osd_objectstore = memstore
memstore_device_bytes = {1 << 30}
osd_data = {d}/osd$id
pid_file = {d}/run/osd.pid
"""
        with open(self.conf, "w") as f:
            f.write(conf)

    def _tool(self, *args):
        r = subprocess.run(list(args), capture_output=True, timeout=60)
        if r.returncode != 0:
            raise CephUnavailable("%s failed (%d): %s" % (
                " ".join(args), r.returncode, r.stderr.decode(errors="replace").strip()))

    def _spawn(self, name, args):
        log = open(os.path.join(self.dir, "log", name + ".out"), "ab")
        try:
            self.procs[name] = subprocess.Popen(args, stdout=log, stderr=log,
                                                stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def _alive(self, name):
        p = self.procs[name]
        if p.poll() is not None:
            raise CephUnavailable("%s exited with %d during start-up:\n%s" % (
                name, p.returncode, _tail(os.path.join(self.dir, "log", name + ".out"))))
        return True

    def _ceph_ok(self, *args):
        return self.run("ceph", "--connect-timeout", "5", *args, check=False,
                        timeout=30).returncode == 0

    def start(self, timeout=60):
        miss = missing_tools()
        if miss:
            raise CephUnavailable("Ceph is not installed (missing %s: apt-get install "
                                  "ceph-mon ceph-osd ceph-common)" % ", ".join(miss))
        for sub in ("mon", "osd0", "run", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.port = _free_port()
        self._write_conf()
        kr = self.keyring
        self._tool("ceph-authtool", "--create-keyring", kr, "--gen-key", "-n", "mon.",
                   "--cap", "mon", "allow *")
        self._tool("ceph-authtool", kr, "--gen-key", "-n", "client.admin",
                   "--cap", "mon", "allow *", "--cap", "osd", "allow *",
                   "--cap", "mgr", "allow *")
        self._tool("ceph-authtool", kr, "--gen-key", "-n", "osd.0",
                   "--cap", "mon", "allow profile osd", "--cap", "osd", "allow *",
                   "--cap", "mgr", "allow profile osd")
        monmap = os.path.join(self.dir, "monmap")
        self._tool("monmaptool", "--create", "--addv", "a",
                   "[v2:127.0.0.1:%d]" % self.port, "--fsid", self.fsid, monmap)
        self._tool("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap,
                   "--keyring", kr)
        self._spawn("mon", ["ceph-mon", "-c", self.conf, "-i", "a", "-f"])
        wait_until(lambda: self._alive("mon") and self._ceph_ok("status"),
                   "the Ceph monitor on 127.0.0.1:%d to answer `ceph status`" % self.port,
                   timeout)
        osd_uuid = str(uuid.uuid4())
        self.ceph("osd", "new", osd_uuid, "0")
        self._tool("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn("osd", ["ceph-osd", "-c", self.conf, "-i", "0", "-f"])
        wait_until(lambda: self._alive("osd") and
                   b'"num_up_osds":1' in self.ceph("osd", "stat", "--format", "json",
                                                   check=False).stdout.replace(b" ", b""),
                   "OSD 0 to be up", timeout)
        self.ceph("osd", "pool", "create", self.pool, "8")
        self.rbd("pool", "init", self.pool)
        # The pool's placement groups are active once it takes an image.
        probe = "readiness-probe"
        wait_until(lambda: self.rbd("create", "--size", "1M", "%s/%s" % (self.pool, probe),
                                    check=False, timeout=30).returncode == 0,
                   "pool %r to take an image" % self.pool, timeout)
        self.rbd("rm", "--no-progress", "%s/%s" % (self.pool, probe))

    def stop(self):
        """Delete the pool, stop the daemons (by pid), remove every file."""
        try:
            if "osd" in self.procs and self.procs["osd"].poll() is None:
                self.ceph("osd", "pool", "delete", self.pool, self.pool,
                          "--yes-i-really-really-mean-it", check=False, timeout=30)
        finally:
            for name in ("osd", "mon"):
                p = self.procs.get(name)
                if p is None or p.poll() is not None:
                    continue
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_image_gone_from_watchers(cluster, image, timeout=20.0):
    """Wait until no client watches image (an exportd that closed it)."""
    def idle():
        out = cluster.rbd("status", "%s/%s" % (cluster.pool, image), check=False).stdout
        return b"Watchers: none" in out
    wait_until(idle, "rbd image %r to have no watcher" % image, timeout)
