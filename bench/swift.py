"""Object PUT/GET: nubis vs a real Swift 2.38 all-in-one, same load generator, one run.

``python -m nubis.bench swift [--quick] [--only nubis|swift] [--rounds N] [--keep]
[--policy rep3|ec42]``

Workloads (16 keep-alive connections, raw asyncio client from
:mod:`nubis.bench.loadgen`): 4 KiB x 2,000 and 1 MiB x 200 objects, PUT then
GET, every GET body compared byte for byte with what was PUT (the client
runs on uvloop; it costs both systems the same). Both systems run the same
layout: one proxy and four storage nodes (object, container and account server
each) on loopback, 3 replicas, part power 10, tempauth. The disk's ceiling for
3 x fsync'd 1 MiB writes is measured in the same run.

What differs (printed with the table):
* nubis fsyncs every object (file + directory, or LMDB commit for inline
  objects <= 64 KiB), like Swift -- but concurrent commits share one fsync
  (group commit), and small objects live in LMDB instead of a file + xattrs;
* both update container listings before answering the PUT: a nubis object
  server first stores the update durably with the object (LMDB pending queue),
  then sends it -- concurrent updates to one container server batched in one
  request over a pooled connection -- and awaits the reply (at most
  ``update_timeout``; the queue retries later if the container server is
  down); Swift sends each update over a new TCP connection and falls back to an
  async pending file on failure;
* the nubis proxy buffers PUT bodies up to 2 MiB (within a per-worker memory
  budget), computes their MD5 once and sends it with an xxh3-64 of the body:
  each object server checks the body against the xxh3 and stores that MD5 as
  the ETag (Swift's object servers each compute the MD5); bigger bodies stream
  with 100-continue and, as in Swift, the object servers hash them and the
  proxy requires a quorum of nodes agreeing on the MD5;
* the nubis proxy keeps pooled keep-alive backend connections; Swift opens a new
  TCP connection for every backend request.
* the nubis storage servers run on nubis' own asyncio HTTP/1.1 server (uvloop +
  httptools); the proxy runs its ``[proxy] frontend``: by default nubis' own
  server, with ``--frontend asgi`` the same proxy as a Falcon ASGI app on uvicorn.
  Swift's servers run on eventlet's WSGI server.
* with ``--policy ec42`` both write erasure-coded 4+2 objects with ISA-L (nubis:
  Cauchy, ``isa_l_rs_cauchy``; Swift: ``isa_l_rs_vand``; encoding costs the same),
  1 MiB segments, to 6 of 8 devices, in two phases (archives, then a commit
  once k + 1 nodes hold them). The nubis proxy buffers EC bodies up to 8 MiB
  and sends each archive in one request with its MD5 and xxh3 (no
  100-continue), then one commit POST per node; Swift streams the archives
  with 100-continue and MIME footers, then sends its commit confirmation on the
  same connections. GETs decode from the k data fragments in both.
* both proxies run ``--proxy-workers`` workers (default 1, Swift's SAIO
  setting; on this 2-core box one nubis proxy worker measured as fast as two
  for 4 KiB and faster for 1 MiB); every storage server runs one worker / one
  process per node in both systems.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from nubis.bench import loadgen, procstat
from nubis.bench.saio import SwiftAIO

CONCURRENCY = 16


@dataclass(frozen=True)
class Workload:
    """One object size and count."""

    label: str
    size: int
    count: int


@dataclass(frozen=True)
class Row:
    """One measured line of the table."""

    system: str
    workload: str
    op: str
    result: loadgen.Result
    size: int


def free_port_base(span: int = 100) -> int:
    """Return a base port with ``span`` free ports above it (loopback)."""
    # Below the kernel's ephemeral range (32768+), where a poll can self-connect.
    # Candidates in random order: benchmarks started at the same moment by
    # different users of a shared machine must not pick the same range.
    bases = list(range(21000, 32768 - span, 137))
    random.shuffle(bases)
    for base in bases:
        ok = True
        for p in range(base, base + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def payloads(w: Workload) -> list[bytes]:
    """Return distinct deterministic bodies for a workload."""
    seed = os.urandom(w.size)
    return [i.to_bytes(8, "little") + seed[8:] for i in range(w.count)]


async def put_get(host: str, port: int, path_prefix: str, token: str, w: Workload,
                  bodies: list[bytes], tag: str,
                  pids: Callable[[], list[int]] | None = None,
                  ) -> tuple[loadgen.Result, loadgen.Result, list[str]]:
    """PUT every body, then GET and verify every one; describe the servers' CPU per op."""
    auth = (("X-Auth-Token", token),)
    puts = [loadgen.Request("PUT", f"{path_prefix}/{tag}-{w.label}-{i:06d}",
                            (*auth, ("Content-Type", "application/octet-stream")), b)
            for i, b in enumerate(bodies)]
    gets = [loadgen.Request("GET", f"{path_prefix}/{tag}-{w.label}-{i:06d}", auth)
            for i in range(len(bodies))]
    usage = [procstat.snapshot(pids())] if pids else []
    put = await loadgen.run(host, port, puts, CONCURRENCY, expect=(201,))
    if pids:
        usage.append(procstat.snapshot(pids()))
    get = await loadgen.run(host, port, gets, CONCURRENCY, loadgen.bytes_verifier(bodies),
                            expect=(200,))
    if pids:
        usage.append(procstat.snapshot(pids()))
        return put, get, [procstat.per_op(usage[0], usage[1], put.ok),
                          procstat.per_op(usage[1], usage[2], get.ok)]
    return put, get, ["", ""]


def login(auth_url: str, user: str, key: str) -> tuple[str, str]:
    """Return ``(storage_url, token)`` from a tempauth endpoint."""
    req = urllib.request.Request(auth_url, headers={"X-Auth-User": user, "X-Auth-Key": key})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers["X-Storage-Url"], resp.headers["X-Auth-Token"]


def make_container(storage_url: str, token: str, name: str, policy: str = "") -> None:
    """Create a container (of storage policy ``policy``, else the default)."""
    headers = {"X-Auth-Token": token, "Content-Length": "0"}
    if policy:
        headers["X-Storage-Policy"] = policy
    req = urllib.request.Request(f"{storage_url}/{name}", method="PUT", headers=headers)
    with urllib.request.urlopen(req, timeout=30):
        pass


def measure(system: str, auth_url: str, user: str, key: str,
            workloads: list[Workload], data: dict[str, list[bytes]], tag: str,
            policy: str = "", pids: Callable[[], list[int]] | None = None) -> list[Row]:
    """Run every workload against one system (in a container of ``policy``)."""
    storage_url, token = login(auth_url, user, key)
    container = f"bench-{policy}" if policy else "bench"
    make_container(storage_url, token, container, policy)
    hostport = storage_url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    prefix = "/" + storage_url.split("//", 1)[1].split("/", 1)[1] + "/" + container
    rows = []
    for w in workloads:
        put, get, usage = loadgen.run_loop(put_get(host, int(port), prefix, token, w,
                                                   data[w.label], tag, pids))
        for (op, res), used in zip((("PUT", put), ("GET", get)), usage, strict=True):
            rows.append(Row(system, w.label, op, res, w.size))
            print(f"  {system:6} {w.label:6} {op}: {res.ops:9.1f} ops/s "
                  f"{res.ok * w.size / res.seconds / 1e6 if res.seconds else 0:8.1f} MB/s "
                  f"p50 {res.percentile(50):7.1f} ms  p99 {res.percentile(99):7.1f} ms  "
                  f"failed {res.failed}"
                  + (f" (statuses {dict(sorted(res.statuses.items()))})" if res.failed else "")
                  + (f"\n         {used}" if used else ""), flush=True)
    return rows


# --- nubis -------------------------------------------------------------------------

#: The SAIO runs no background daemons; neither does the nubis side of a benchmark.
#: Nor the network agent: the SAIO runs only Swift, and the agent's periodic
#: reconciliation took 0.3-0.7 ms of CPU per 4 KiB PUT from the 2 cores.
BACKGROUND_OFF = "".join(f"\n[{s}]\nenabled = false\n" for s in (
    "object_replicator", "object_auditor", "object_updater", "object_expirer",
    "object_reconstructor", "container_replicator", "account_replicator",
    "network_agent"))

class NubisAIO:
    """A nubis all-in-one started with ``nubis up`` in a scratch state dir."""

    def __init__(self, root: Path, proxy_workers: int, frontend: str = "native",
                 extra_config: str = BACKGROUND_OFF) -> None:
        self.state = root / "nubis"
        self.proxy_workers = proxy_workers
        self.frontend = frontend
        self.extra_config = extra_config
        self.port = 0

    def start(self) -> str:
        from nubis import defaults
        from nubis.registry import DAEMONS
        from nubis.supervisor import PER_NODE

        base = free_port_base()
        ports = defaults.Ports(proxy=base + 90, object=base, container=base + 1,
                               account=base + 2)
        others = {}
        for i, (name, spec) in enumerate(DAEMONS.items()):
            if spec.kind == "server" and name not in PER_NODE and name != "proxy":
                others[name.replace("-", "_")] = base + 91 + i
        others = {k: v for k, v in others.items() if _has_port(k)}
        defaults.write_default_config(self.state / "nubis.toml", self.state, ports,
                                      self.proxy_workers, others)
        conf = self.state / "nubis.toml"
        conf.write_text(conf.read_text().replace(
            "[proxy]\n", f"[proxy]\nfrontend = \"{self.frontend}\"\n", 1) + self.extra_config)
        self.port = ports.proxy
        r = subprocess.run([sys.executable, "-m", "nubis", "up", "--state-dir",
                            str(self.state), "--no-test-image"], capture_output=True,
                           text=True, timeout=180,
                           check=False)
        if r.returncode != 0:
            raise RuntimeError(f"nubis up failed: {r.stdout}\n{r.stderr}")
        return f"http://127.0.0.1:{self.port}/auth/v1.0"

    def pids(self) -> list[int]:
        """Return every process of this cloud (each daemon's process group)."""
        pgids = []
        for pid_file in (self.state / "run").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pgids.append(int(pid_file.read_text().split()[0]))
        return procstat.group_pids(pgids)

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "nubis", "down", "--state-dir",
                        str(self.state)], capture_output=True, timeout=120, check=False)


def _has_port(section: str) -> bool:
    from nubis.settings import Config

    return hasattr(getattr(Config(), section, None), "port")


# --- disk ceiling ------------------------------------------------------------------

def fsync_ceiling(root: Path, count: int) -> float:
    """Return 1 MiB objects/s if each object is three fsync'd 1 MiB files (16 threads)."""
    d = root / "fsync"
    d.mkdir(parents=True, exist_ok=True)
    data = os.urandom(1 << 20)

    def write(i: int) -> None:
        path = d / f"f{i}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(write, range(3 * count)))
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(d, ignore_errors=True)
    return count / elapsed


# --- report ------------------------------------------------------------------------

def best_rows(rows: list[Row]) -> list[Row]:
    """Keep the best (highest ops/s) round of each system, workload and operation."""
    best: dict[tuple[str, str, str], Row] = {}
    for r in rows:
        key = (r.system, r.workload, r.op)
        if key not in best or r.result.ops > best[key].result.ops:
            best[key] = r
    return list(best.values())


def report(rows: list[Row], ceiling: float) -> None:
    """Print the comparison table."""
    by = {(r.system, r.workload, r.op): r for r in rows}
    print("\n| workload | op | nubis ops/s | nubis MB/s | nubis p50/p99 ms | "
          "swift ops/s | swift MB/s | swift p50/p99 ms | nubis/swift |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for w, op in sorted({(r.workload, r.op) for r in rows}, key=lambda k: (k[0], k[1] != "PUT")):
        n, s = by.get(("nubis", w, op)), by.get(("swift", w, op))

        def cells(r: Row | None) -> str:
            if r is None:
                return " - | - | - "
            mbps = r.result.ok * r.size / r.result.seconds / 1e6 if r.result.seconds else 0
            return (f" {r.result.ops:.1f} | {mbps:.1f} | "
                    f"{r.result.percentile(50):.1f}/{r.result.percentile(99):.1f} ")
        ratio = (f"{n.result.ops / s.result.ops:.1f}x" if n and s and s.result.ops else "-")
        print(f"| {w} | {op} |{cells(n)}|{cells(s)}| {ratio} |")
    print(f"\ndisk ceiling, 1 MiB objects as 3 x fsync'd 1 MiB writes (c{CONCURRENCY}): "
          f"{ceiling:.1f} objects/s = {ceiling * 1.048576:.1f} MB/s")
    for system in ("nubis", "swift"):
        r1 = by.get((system, "1MiB", "PUT"))
        if r1 is not None and ceiling:
            print(f"{system} 1 MiB PUT = {100 * r1.result.ops / ceiling:.0f}% of that ceiling")
    print("\n" + (__doc__ or "").split("What differs (printed with the table):", 1)[-1])


def main(argv: list[str]) -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(prog="python -m nubis.bench swift")
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--only", choices=("nubis", "swift"), help="measure one system")
    ap.add_argument("--proxy-workers", type=int, default=1,
                    help="proxy workers (the same number for nubis and Swift)")
    ap.add_argument("--frontend", choices=("asgi", "native"), default="native",
                    help="nubis proxy front end ([proxy] frontend)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--policy", choices=("rep3", "ec42"), default="rep3",
                    help="storage policy of the benchmark container (ec42: EC 4+2 with "
                         "ISA-L on both systems)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating measurement rounds per system (best counts)")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    workloads = [Workload("4KiB", 4096, 2000 // scale), Workload("1MiB", 1 << 20, 200 // scale)]
    data = {w.label: payloads(w) for w in workloads}
    root = Path(tempfile.mkdtemp(prefix="nubis-bench-", dir=os.environ.get("NUBIS_BENCH_DIR")))
    rows: list[Row] = []
    ceilings: list[float] = []
    nubises = ([NubisAIO(root, args.proxy_workers, args.frontend)]
               if args.only in (None, "nubis") else [])
    swift = (SwiftAIO(root / "swift", 0, args.proxy_workers)
             if args.only in (None, "swift") else None)
    try:
        systems: list[tuple[str, str, Callable[[], list[int]]]] = []
        for nubis in nubises:
            print("nubis: starting", flush=True)
            systems.append(("nubis", nubis.start(), nubis.pids))
        if swift is not None:
            print("swift: starting (building rings and configs)", flush=True)
            swift.set_base(free_port_base())
            systems.append(("swift", swift.start(), swift.all_pids))
        # The machine is shared and noisy: both systems stay up and are measured in
        # alternating rounds; the best round of each counts. The disk ceiling is
        # sampled once per round too.
        for r in range(args.rounds):
            ceilings.append(fsync_ceiling(root, 200 // scale))
            for name, auth, pids in systems:
                print(f"round {r + 1}: {name}", flush=True)
                rows += measure(name, auth, "test:tester", "testing", workloads, data, f"r{r}",
                                args.policy, pids)
        print("\nfsync ceiling samples (objects/s): "
              + ", ".join(f"{c:.1f}" for c in ceilings))
        report(best_rows(rows), max(ceilings))
    finally:
        for nubis in nubises:
            nubis.stop()
        if swift is not None:
            swift.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0
