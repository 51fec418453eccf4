"""Network benchmark: IPAM under concurrency (``python -m nubis.bench network``).

Creates ``--ports`` ports on one subnet (a /22) through :class:`NetworkStore` (the
code behind ``POST /v2.0/ports``: MAC, address and the port row in one retried
transaction) from ``--threads`` threads, and the same with every port creation
holding one lock for the whole subnet (the reference: a per-port loop that locks the
subnet, as an IPAM that serializes on a subnet row does). Both run on a fresh SQLite
file; the report gives ports/s, per-port latency percentiles and a check that no
address was handed out twice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nubis.api.network import ipam
from nubis.api.network.store import NetworkStore, encode
from nubis.common.db import make_engine


def _store(url: str) -> tuple[NetworkStore, str]:
    store = NetworkStore(make_engine(url))
    store.migrate()
    net = store.create_network({"project_id": "bench", "name": "bench",
                                "network_type": "vxlan", "mtu": 1450})
    cidr = ipam.parse_cidr("10.0.0.0/22")
    gateway = ipam.default_gateway(cidr)
    store.create_subnet(encode({
        "project_id": "bench", "network_id": net.id, "ip_version": 4, "cidr": str(cidr),
        "gateway_ip": str(gateway),
        "allocation_pools": [p.as_dict() for p in ipam.default_pools(cidr, gateway)]}))
    return store, net.id


def run(ports: int, threads: int, locked: bool, url: str) -> dict[str, Any]:
    """Create ``ports`` ports from ``threads`` threads; return throughput and latencies."""
    store, net_id = _store(url)
    subnet_lock = threading.Lock()
    latencies: list[float] = []
    addresses: list[str] = []
    guard = threading.Lock()
    per_thread = [ports // threads + (1 if i < ports % threads else 0) for i in range(threads)]

    def create() -> list[str]:
        port = store.create_port({"project_id": "bench", "network_id": net_id}, None, [])
        return [ip for _sub, ip in port.fixed_ips]

    def one(step: Callable[[], list[str]]) -> None:
        t0 = time.perf_counter()
        if locked:
            with subnet_lock:
                got = step()
        else:
            got = step()
        dt = time.perf_counter() - t0
        with guard:
            latencies.append(dt)
            addresses.extend(got)

    def worker(count: int) -> None:
        for _ in range(count):
            one(create)

    pool = [threading.Thread(target=worker, args=(n,)) for n in per_thread]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = time.perf_counter() - start
    latencies.sort()
    return {"variant": "subnet lock (reference)" if locked else "nubis (no subnet lock)",
            "ports": ports, "threads": threads, "seconds": round(total, 3),
            "ports_per_s": round(ports / total, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "unique_addresses": len(set(addresses)) == len(addresses) == ports}


def main(argv: list[str]) -> int:
    """Run both variants and print a table (or JSON)."""
    parser = argparse.ArgumentParser(prog="python -m nubis.bench network")
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url", default="",
                        help="an empty PostgreSQL database per run is the caller's (default: "
                        "fresh SQLite files)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nubis-bench-network-") as tmp:
        rows = [run(args.ports, args.threads, locked,
                    args.database_url or f"sqlite:///{Path(tmp) / f'{locked}.db'}")
                for locked in (False, True)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'variant':28} {'ports/s':>8} {'p50 ms':>8} {'p99 ms':>8} unique")
    for r in rows:
        print(f"{r['variant']:28} {r['ports_per_s']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} "
              f"{r['unique_addresses']}")
    ratio = rows[0]["ports_per_s"] / rows[1]["ports_per_s"]
    print(f"ratio nubis / reference (throughput): {ratio:.2f}x")
    return 0 if all(r["unique_addresses"] for r in rows) else 1
