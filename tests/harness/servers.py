"""Real NBD and web servers for the remote block drivers' tests: qemu-nbd
and nbdkit on a UNIX socket or loopback TCP, nginx on 127.0.0.1 with its
own prefix, configuration and (for https) a self-signed certificate made
by openssl.  Each runs in the foreground as our child, is ready when its
pidfile exists and its socket accepts, and is killed and reaped when the
test ends: nothing is left behind.  A missing server program skips the
test loudly (need_program)."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess

import pytest

from harness.wait import wait_until


def need_program(name, package):
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)
    if not path:
        pytest.skip(f"{name} is not installed (Debian package {package})")
    return path


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(addr):
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.connect(addr)
            return True
        except OSError:
            return False


def _log_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class Server:
    """One server process; start() waits until addr accepts connections."""

    def __init__(self, argv, addr, log_path, what):
        self.argv, self.addr, self.log_path, self.what = argv, addr, log_path, what
        self.proc = None

    def start(self, timeout=15.0):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}:\n"
                                   f"{_log_text(self.log_path)}")
            return _accepts(self.addr)
        wait_until(ready, f"{self.what} to accept connections on {self.addr}", timeout)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()
        if isinstance(self.addr, str):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.addr)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def qemu_nbd(directory, image, fmt="raw", export="exp", sock=None, tcp_port=None,
             read_only=False):
    """qemu-nbd serving image as `export`, persistent, several clients."""
    exe = need_program("qemu-nbd", "qemu-utils")
    argv = [exe, "-f", fmt, "-x", export, "-t", "-e", "8", "--cache=writeback"]
    if read_only:
        argv.append("-r")
    if sock:
        argv += ["-k", str(sock)]
        addr = str(sock)
    else:
        argv += ["-b", "127.0.0.1", "-p", str(tcp_port)]
        addr = ("127.0.0.1", tcp_port)
    argv.append(str(image))
    return Server(argv, addr, os.path.join(str(directory), "qemu-nbd.log"), "qemu-nbd")


def nbdkit(directory, plugin_args, sock=None, tcp_port=None):
    """nbdkit in the foreground with plugin_args ("file", "file=...")."""
    exe = need_program("nbdkit", "nbdkit")
    argv = [exe, "-f", "-v" if os.environ.get("NBDKIT_VERBOSE") else "--log=stderr"]
    if sock:
        argv += ["-U", str(sock)]
        addr = str(sock)
    else:
        argv += ["-i", "127.0.0.1", "-p", str(tcp_port)]
        addr = ("127.0.0.1", tcp_port)
    argv += list(plugin_args)
    return Server(argv, addr, os.path.join(str(directory), "nbdkit.log"), "nbdkit")


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 (key, cert paths)."""
    exe = need_program("openssl", "openssl")
    key = os.path.join(str(directory), "server.key")
    cert = os.path.join(str(directory), "server.crt")
    subprocess.run([exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return key, cert


NGINX_CONF = """
daemon off;
master_process off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    keepalive_requests 100000;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {certs}
        root {root};
        location /private/ {{
            if ($cookie_session != "letmein") {{ return 403; }}
        }}
    }}
}}
"""


def nginx(directory, root, port, https=False):
    """nginx serving directory root on 127.0.0.1:port (https with a
    self-signed certificate); /private/ needs the cookie session=letmein."""
    exe = need_program("nginx", "nginx-light")
    prefix = os.path.join(str(directory), "https" if https else "http")
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    certs = ""
    if https:
        key, cert = make_certificate(prefix)
        certs = f"ssl_certificate {cert}; ssl_certificate_key {key};"
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(prefix=prefix, port=port, root=root,
                                  ssl=" ssl" if https else "", certs=certs))
    argv = [exe, "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf]
    return Server(argv, ("127.0.0.1", port), os.path.join(prefix, "stderr.log"), "nginx")
