"""scripts/check-includes (issue 13): the layering is checked by make check;
here the checker itself, on small trees made for it, and on ours."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "check-includes")


def tree(root, files):
    for path, text in files.items():
        p = os.path.join(root, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return str(root)


def check(root, *args):
    return subprocess.run(["/usr/bin/python3", SCRIPT, "--root", root, *args],
                          capture_output=True, text=True)


def test_our_tree_passes_and_block_knows_nothing_above_it():
    r = subprocess.run(["/usr/bin/python3", SCRIPT, "--graph"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    edges = set(r.stdout.split("\n"))
    assert "block -> rpc" in edges
    assert not {e for e in edges if e.startswith("block -> ") and
                e.split(" -> ")[1] in ("export", "fuse", "monitor", "top")}
    assert not {e for e in edges if e.startswith("rpc -> ")}


def test_an_upward_include_is_refused(tmp_path):
    root = tree(tmp_path, {
        "daemon/block/block.h": "",
        "daemon/export/export.h": '#include "block/block.h"\n',
        "daemon/block/raw.c": '#include "config.h"\n#include "export/export.h"\n'})
    r = check(root)
    assert r.returncode == 1
    assert ("daemon/block/raw.c (block) includes daemon/export/export.h (export): "
            "block may include only ['bottom', 'object', 'rpc']") in r.stderr


def test_an_unqualified_include_is_refused(tmp_path):
    root = tree(tmp_path, {
        "rpc/qmp.h": "", "daemon/block/block.h": '#include "qmp.h"\n'})
    r = check(root)
    assert r.returncode == 1
    assert "daemon/block/block.h: includes \"qmp.h\", which is none of our files" in r.stderr


def test_rpc_includes_nothing_of_the_daemon(tmp_path):
    root = tree(tmp_path, {"daemon/util.h": "", "rpc/qmp.c": '#include "util.h"\n'})
    r = check(root)
    assert r.returncode == 1
    assert "rpc may include only itself" in r.stderr


def test_a_private_header_stays_in_its_folder(tmp_path):
    root = tree(tmp_path, {
        "daemon/block/block.h": "", "daemon/fuse/internal.h": '#include "block/block.h"\n',
        "daemon/monitor/x.c": '#include "fuse/internal.h"\n'})
    r = check(root)
    assert r.returncode == 1
    assert "daemon/monitor/x.c: includes daemon/fuse/internal.h, private to fuse/" in r.stderr


def test_objects_know_nothing_of_the_block_layer(tmp_path):
    """Secrets and iothreads sit under every subsystem that names them (on
    nothing but the I/O loops and the bottom)."""
    root = tree(tmp_path, {
        "daemon/block/block.h": "",
        "daemon/object/secret.c": '#include "config.h"\n#include "block/block.h"\n'})
    r = check(root)
    assert r.returncode == 1
    assert "object may include only ['bottom', 'iothread', 'rpc']" in r.stderr
