"""Replication catch-up: bring back a wiped device, nubis vs Swift's object replicator.

``python -m nubis.bench replication [--objects N] [--size BYTES] [--only nubis|swift] [--keep]``

Both systems run the same all-in-one layout (one proxy, four storage nodes,
3 replicas, part power 10; :class:`~nubis.bench.swift.NubisAIO` and
:class:`~nubis.bench.saio.SwiftAIO`), no background daemons running. Each gets
N objects of ``--size`` bytes through its proxy (16 connections), then node
1's device is wiped (nubis: its object server is stopped, the device emptied
and the server started again; Swift: the device directory is emptied under
the running server). Timed: one replicator pass on each of the other three
nodes, run at the same time (``nubis daemon object-replicator --once`` /
``swift-object-replicator ... once`` with ``sync_method = ssync``), both with
``concurrency = 4``. Then the objects on the wiped device are counted (LMDB
records / ``.data`` files) against what it held before, and a second pass
with nothing to repair is timed too ("idle pass": the steady-state cost).

What differs: nubis compares per-suffix hashes kept current in an LMDB index
(no directory listing or hashing of files) and pushes each object as one
HTTP request over pooled connections; Swift rehashes suffix directories
(``hashes.pkl``) and streams objects over one SSYNC request per partition.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lmdb
from nubis.bench import loadgen
from nubis.bench.refswift import SWIFT_HASH_SETUP, swift_python
from nubis.bench.saio import SwiftAIO
from nubis.bench.swift import NubisAIO, free_port_base, login, make_container

CONCURRENCY = 16
WIPED = 1
_SWIFT_REPLICATOR = SWIFT_HASH_SETUP + (
    "import sys\n"
    "from swift.common.daemon import run_daemon\n"
    "from swift.obj.replicator import ObjectReplicator\n"
    "run_daemon(ObjectReplicator, sys.argv[1], once=True, verbose=False)\n"
)


def put_objects(auth_url: str, user: str, key: str, bodies: list[bytes]) -> float:
    """PUT every body through the proxy; return ops/s."""
    storage_url, token = login(auth_url, user, key)
    make_container(storage_url, token, "repl")
    hostport, path = storage_url.split("//", 1)[1].split("/", 1)
    host, port = hostport.rsplit(":", 1)
    auth = (("X-Auth-Token", token),)
    reqs = [loadgen.Request("PUT", f"/{path}/repl/o-{i:06d}",
                            (*auth, ("Content-Type", "application/octet-stream")), b)
            for i, b in enumerate(bodies)]
    res = loadgen.run_loop(loadgen.run(host, int(port), reqs, CONCURRENCY, expect=(201,)))
    if res.failed:  # not counted: the device is counted before it is wiped
        print(f"  warning: {res.failed} of {len(bodies)} PUTs failed", flush=True)
    return res.ops


def run_all(commands: list[tuple[list[str], dict[str, str]]]) -> float:
    """Start every command at once, wait for all; return the wall time."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for cmd, env in commands]
    for p in procs:
        _, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"replicator failed: {err.decode(errors='replace')[-2000:]}")
    return time.monotonic() - t0


# --- nubis ------------------------------------------------------------------------

def nubis_count(device: Path) -> int:
    """Return how many live objects a nubis device holds."""
    env = lmdb.open(str(device / "objects.lmdb"), max_dbs=8, readonly=True, lock=False)
    try:
        with env.begin(db=env.open_db(b"parts", create=False)) as txn:
            return sum(1 for _, v in txn.cursor() if not v.endswith(b"t"))
    finally:
        env.close()


def nubis_round(nubis: NubisAIO, auth: str, bodies: list[bytes]) -> tuple[float, int, int, float]:
    """Load, wipe node 1, replicate twice; return (seconds, before, after, idle pass)."""
    put_objects(auth, "test:tester", "testing", bodies)
    device = nubis.state / "devices" / f"node{WIPED}" / f"d{WIPED + 1}"
    before = nubis_count(device)
    pid_file = nubis.state / "run" / f"object-server-{WIPED}.pid"
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    shutil.rmtree(device)
    device.mkdir()
    r = subprocess.run([sys.executable, "-m", "nubis", "up", "--state-dir", str(nubis.state),
                        "--no-test-image"], capture_output=True, text=True, timeout=300,
                       check=False)
    if r.returncode != 0:
        raise RuntimeError(f"nubis up failed: {r.stderr}")
    conf = str(nubis.state / "nubis.toml")
    cmds = [([sys.executable, "-m", "nubis", "daemon", "object-replicator", "--once",
              "--config", conf], {**os.environ, "NUBIS_STORAGE_NODE": str(n)})
            for n in range(4) if n != WIPED]
    seconds = run_all(cmds)
    idle = run_all(cmds)
    return seconds, before, nubis_count(device), idle


# --- Swift ------------------------------------------------------------------------

def swift_count(device: Path) -> int:
    """Return how many ``.data`` files a Swift device holds."""
    return sum(1 for _ in (device / "objects").rglob("*.data")) if device.exists() else 0


def swift_round(swift: SwiftAIO, auth: str, bodies: list[bytes]) -> tuple[float, int, int, float]:
    """Load, wipe node 1, replicate twice; return (seconds, before, after, idle pass)."""
    put_objects(auth, "test:tester", "testing", bodies)
    device = swift.root / f"node{WIPED}" / f"sdb{WIPED + 1}"
    before = swift_count(device)
    shutil.rmtree(device)
    device.mkdir()
    recon = swift.root / "recon"
    recon.mkdir(exist_ok=True)
    py = str(swift_python())
    cmds = []
    for n in range(4):
        if n == WIPED:
            continue
        conf = swift.root / "etc" / f"object-{n}.conf"
        text = conf.read_text()
        if "[object-replicator]" not in text:
            conf.write_text(text + f"\n[object-replicator]\nsync_method = ssync\n"
                                   f"concurrency = 4\nrecon_cache_path = {recon}\n")
        cmds.append(([py, "-c", _SWIFT_REPLICATOR, str(conf)], dict(os.environ)))
    seconds = run_all(cmds)
    idle = run_all(cmds)
    return seconds, before, swift_count(device), idle


def main(argv: list[str]) -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench replication")
    ap.add_argument("--objects", type=int, default=2000, help="objects written (default 2000)")
    ap.add_argument("--size", type=int, default=4096, help="object size in bytes")
    ap.add_argument("--only", choices=("nubis", "swift"), help="measure one system")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)
    seed = os.urandom(args.size)
    bodies = [i.to_bytes(8, "little") + seed[8:] for i in range(args.objects)]
    root = Path(tempfile.mkdtemp(prefix="nubis-bench-repl-",
                                 dir=os.environ.get("NUBIS_BENCH_DIR")))
    results: dict[str, tuple[float, int, int, float]] = {}
    try:
        if args.only in (None, "nubis"):
            nubis = NubisAIO(root, 1)
            print("nubis: starting", flush=True)
            auth = nubis.start()
            try:
                results["nubis"] = nubis_round(nubis, auth, bodies)
            finally:
                nubis.stop()
        if args.only in (None, "swift"):
            swift = SwiftAIO(root / "swift", free_port_base())
            print("swift: starting (building rings and configs)", flush=True)
            auth = swift.start()
            try:
                results["swift"] = swift_round(swift, auth, bodies)
            finally:
                swift.stop()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report(results, args.objects, args.size)
    return 0


def report(results: dict[str, tuple[float, int, int, float]], objects: int, size: int) -> None:
    """Print the table (and the ratio when both ran)."""
    print(f"\nreplication catch-up: {objects} objects x {size} B, node {WIPED}'s device wiped, "
          "one pass on the other 3 nodes")
    print(f"{'system':8} {'seconds':>9} {'restored':>16} {'objects/s':>10} {'idle pass s':>12}")
    for name, (secs, before, after, idle) in results.items():
        print(f"{name:8} {secs:9.2f} {after:>7} of {before:<6} {after / secs:10.1f} "
              f"{idle:12.2f}")
    if "nubis" in results and "swift" in results:
        print(f"nubis/swift speed-up: {results['swift'][0] / results['nubis'][0]:.1f}x")
