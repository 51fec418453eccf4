"""Scheduler benchmark: nubis's vectorized pass + claim vs a per-host Nova-style loop.

``python -m nubis.bench scheduler --hosts 1000,10000,100000 [--requests N] [--json]``

For each host count, one generated cloud (inventories, usage, facts, traits,
AZ aggregates) goes into a real SQLite placement database; the scheduler service
loads it, then serves requests sequentially (filters + weighers + atomic claim
committed to SQLite) and from several threads at once (placements/s, then an
overcommit check on the database; concurrent callers are combined, one commit
per batch of claims). The pass runs the compiled kernel ``nubis.fastpath.sched``
unless ``NUBIS_NO_EXTENSIONS=1``. The reference is the per-host Python loop of
``nubis.bench.scheduler_reference`` (Nova's filter/weigher semantics), timed on
the same hosts and requests for a bounded number of requests — and without any
claim, so the ratio is conservative.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import statistics
import tempfile
import threading
import time
import tracemalloc
import uuid as uuidlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from nubis.bench import scheduler_reference as ref
from nubis.daemons.scheduler import store as st
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.engine import Engine, undo
from nubis.daemons.scheduler.errors import NoValidHost, SchedulerError
from nubis.daemons.scheduler.hoststate import Aggregate, HostFacts, Inventory
from nubis.daemons.scheduler.request import RequestSpec, parse_request_spec
from nubis.daemons.scheduler.service import SchedulerService

FILTERS = ("ComputeFilter", "AvailabilityZoneFilter", "ComputeCapabilitiesFilter",
           "ImagePropertiesFilter", "ServerGroupAntiAffinityFilter",
           "ServerGroupAffinityFilter", "AggregateInstanceExtraSpecsFilter",
           "AggregateMultiTenancyIsolation", "SameHostFilter", "DifferentHostFilter",
           "NumInstancesFilter", "IoOpsFilter", "IsolatedHostsFilter")
NOW = 1_000_000.0


def make_cloud(n: int, rng: random.Random) -> ref.Cloud:
    """Generate ``n`` hosts in 4 AZ aggregates, with some usage."""
    hosts = []
    supported = [(("x86_64", "qemu", "hvm"),), (("x86_64", "kvm", "hvm"),
                                                ("i686", "kvm", "hvm"))]
    for i in range(n):
        vcpus = rng.choice([16, 32, 64])
        ram = rng.choice([65536, 131072, 262144])
        disk = rng.choice([500, 1000, 2000])
        invs = {"VCPU": Inventory(vcpus, 0, 1, 0, 1, 4.0),
                "MEMORY_MB": Inventory(ram, 512, 1, 0, 1, 1.0),
                "DISK_GB": Inventory(disk, 0, 1, 0, 1, 1.0)}
        used = {"VCPU": rng.randrange(0, vcpus * 2), "MEMORY_MB": rng.randrange(0, ram // 2),
                "DISK_GB": rng.randrange(0, disk // 2)}
        facts = HostFacts(hypervisor_type="QEMU", hypervisor_version=8002000,
                          cpu_info={"arch": "x86_64"},
                          supported_instances=rng.choice(supported),
                          enabled=rng.random() > 0.01, num_io_ops=rng.randrange(0, 4))
        hosts.append(ref.HostDesc(f"cn{i:06d}", str(uuidlib.UUID(int=i + 1)), invs, used,
                                  facts, frozenset(rng.choice([(), ("HW_CPU_X86_AVX",)])),
                                  last_seen=NOW))
    aggs = [Aggregate(f"00000000-0000-0000-0000-aaaaaaaaaa{z:02d}", f"az{z}",
                      {"availability_zone": f"az{z}"},
                      frozenset(h.name for j, h in enumerate(hosts) if j % 4 == z))
            for z in range(4)]
    return ref.Cloud(hosts, aggs)


def populate(engine: sa.engine.Engine, cloud: ref.Cloud) -> None:
    """Bulk-insert the cloud (providers, inventories, facts, usage) into placement."""
    with engine.begin() as conn:
        conn.execute(st.resource_providers.insert(), [
            {"id": i + 1, "uuid": h.uuid, "name": h.name, "generation": 1,
             "parent_uuid": None, "root_uuid": h.uuid} for i, h in enumerate(cloud.hosts)])
        conn.execute(st.inventories.insert(), [
            {"rp_id": i + 1, "resource_class": rc, "total": inv.total,
             "reserved": inv.reserved, "min_unit": inv.min_unit,
             "max_unit": inv.effective_max_unit, "step_size": inv.step_size,
             "allocation_ratio": inv.allocation_ratio}
            for i, h in enumerate(cloud.hosts) for rc, inv in h.inventories.items()])
        conn.execute(st.consumers.insert(), [
            {"uuid": str(uuidlib.UUID(int=(1 << 100) + i)), "project_id": "old",
             "user_id": "old", "generation": 1} for i in range(len(cloud.hosts))])
        conn.execute(st.allocations.insert(), [
            {"consumer_uuid": str(uuidlib.UUID(int=(1 << 100) + i)), "rp_id": i + 1,
             "resource_class": rc, "used": amount}
            for i, h in enumerate(cloud.hosts) for rc, amount in h.used.items() if amount])
        conn.execute(st.compute_hosts.insert(), [
            {"name": h.name, "rp_uuid": h.uuid, "facts_json": json.dumps({
                "hypervisor_type": h.facts.hypervisor_type,
                "hypervisor_version": h.facts.hypervisor_version,
                "cpu_info": dict(h.facts.cpu_info),
                "supported_instances": [list(t) for t in h.facts.supported_instances],
                "enabled": h.facts.enabled, "num_io_ops": h.facts.num_io_ops})}
            for h in cloud.hosts])
        conn.execute(st.traits.insert(), [{"name": "HW_CPU_X86_AVX"}])
        conn.execute(st.rp_traits.insert(), [
            {"rp_id": i + 1, "trait": t} for i, h in enumerate(cloud.hosts) for t in h.traits])
    store = st.PlacementStore(engine)
    with engine.begin() as conn:
        for agg in cloud.aggregates:
            store.save_host_aggregate(conn, agg.uuid, agg.name, agg.metadata, agg.hosts)


def make_requests(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Generate request specs of a typical mix."""
    out = []
    for _ in range(count):
        body: dict[str, Any] = {
            "project_id": "p", "user_id": "u",
            "flavor": rng.choice([
                {"vcpus": 1, "memory_mb": 2048, "root_gb": 20},
                {"vcpus": 2, "memory_mb": 4096, "root_gb": 40},
                {"vcpus": 4, "memory_mb": 8192, "root_gb": 80,
                 "extra_specs": {"capabilities:hypervisor_type": "s== QEMU"}},
                {"vcpus": 8, "memory_mb": 16384, "root_gb": 160,
                 "extra_specs": {"trait:HW_CPU_X86_AVX": "required"}}]),
            "image": {"id": "img", "properties": {"hw_architecture": "x86_64"}}}
        if rng.random() < 0.3:
            body["availability_zone"] = f"az{rng.randrange(4)}"
        out.append(body)
    return out


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values``."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def time_nubis(svc: SchedulerService, specs: list[RequestSpec]) -> tuple[list[float], int]:
    """Serve ``specs`` one by one (pass + claim); return latencies (s) and placements."""
    lat = []
    placed = 0
    for spec in specs:
        t0 = time.perf_counter()
        with contextlib.suppress(NoValidHost):
            placed += len(svc.select_destinations(spec))
        lat.append(time.perf_counter() - t0)
    return lat, placed


def time_pass_only(svc: SchedulerService, specs: list[RequestSpec]) -> list[float]:
    """Time the filter/weigher pass alone (no claim)."""
    engine = Engine(svc.config)
    rng = random.Random(0)  # like the service's own (seeding one per plan costs ~50 us)
    lat = []
    for spec in specs:
        t0 = time.perf_counter()
        with contextlib.suppress(NoValidHost):
            undo(svc.state, engine.plan(svc.state, spec, NOW, rng))
        lat.append(time.perf_counter() - t0)
    return lat


def concurrent(svc: SchedulerService, bodies: list[dict[str, Any]], threads: int,
               seconds: float) -> tuple[float, int]:
    """Claim from ``threads`` threads for up to ``seconds``; return placements/s, placed."""
    placed = [0] * threads
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        i = k
        while time.monotonic() < stop and i < len(bodies):
            with contextlib.suppress(SchedulerError):
                placed[k] += len(svc.select_destinations(parse_request_spec(bodies[i])))
            i += threads
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(placed) / (time.perf_counter() - t0), sum(placed)


def overcommitted(engine: sa.engine.Engine) -> int:
    """Return how many (provider, class) pairs exceed capacity in the database."""
    q = sa.text(
        "SELECT count(*) FROM (SELECT a.rp_id, a.resource_class, sum(a.used) AS u, "
        "(i.total - i.reserved) * i.allocation_ratio AS cap "
        "FROM placement_allocations a JOIN placement_inventories i "
        "ON i.rp_id = a.rp_id AND i.resource_class = a.resource_class "
        "GROUP BY a.rp_id, a.resource_class) WHERE u > cap")
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def host_state_bytes(config: SchedulerConfig, engine: sa.engine.Engine) -> int:
    """Return the memory a freshly loaded scheduler service keeps (tracemalloc)."""
    tracemalloc.start()
    svc = SchedulerService(config, engine, clock=lambda: NOW)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del svc
    return held


def run_one(n: int, requests: int, ref_requests: int, threads: int,
            workdir: Path) -> dict[str, Any]:
    """Benchmark one host count; return the result row."""
    rng = random.Random(n)
    cloud = make_cloud(n, rng)
    bodies = make_requests(requests + ref_requests + 4000, rng)
    engine = st.open_engine(f"sqlite:///{workdir / f'sched-{n}.sqlite'}")
    populate(engine, cloud)
    config = SchedulerConfig(enabled_filters=FILTERS, max_attempts=3)
    t0 = time.perf_counter()
    svc = SchedulerService(config, engine, clock=lambda: NOW)
    load_s = time.perf_counter() - t0
    mem = host_state_bytes(config, engine) if n <= 10000 else None
    gc.collect()
    gc.freeze()  # as the daemon does after loading its host state
    specs = [parse_request_spec(b) for b in bodies[:requests]]
    pass_lat = time_pass_only(svc, specs)
    lat, placed = time_nubis(svc, specs)
    # the reference, on the same hosts and the same requests, bounded in count
    ref_hosts = ref.build_ref(cloud)
    ref_lat = []
    for spec in specs[:ref_requests]:
        t1 = time.perf_counter()
        ref.schedule(ref_hosts, spec, config, NOW, random.Random(0))
        ref_lat.append(time.perf_counter() - t1)
    rate, conc_placed = concurrent(svc, bodies[requests + ref_requests:], threads, 3.0)
    p50 = percentile(lat, 0.5) * 1000
    ref_p50 = percentile(ref_lat, 0.5) * 1000
    return {"hosts": n, "nubis_p50_ms": round(p50, 3),
            "nubis_p99_ms": round(percentile(lat, 0.99) * 1000, 3),
            "nubis_pass_p50_ms": round(percentile(pass_lat, 0.5) * 1000, 3),
            "reference_p50_ms": round(ref_p50, 3), "reference_requests": len(ref_lat),
            "ratio": round(ref_p50 / p50, 1),
            "pass_ratio": round(ref_p50 / (percentile(pass_lat, 0.5) * 1000), 1),
            "placements_per_s": round(rate, 1), "concurrent_threads": threads,
            "sequential_placed": placed, "concurrent_placed": conc_placed,
            "overcommitted": overcommitted(engine),
            "column_bytes_per_host": round(svc.state.memory_bytes() / n, 1),
            "bytes_per_host": None if mem is None else round(mem / n, 1),
            "load_s": round(load_s, 2)}


def main(argv: list[str]) -> int:
    """Run the benchmark and print a table (or JSON lines)."""
    p = argparse.ArgumentParser(prog="python -m nubis.bench scheduler")
    p.add_argument("--hosts", default="1000,10000,100000")
    p.add_argument("--requests", type=int, default=300, help="timed nubis requests")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",") if x]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nubis-bench-sched-") as tmp:
        for n in counts:
            ref_requests = max(2, min(30, 300_000 // max(n, 1) // 10))
            row = run_one(n, args.requests, ref_requests, args.threads, Path(tmp))
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print_table(rows)
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the results as a plain table."""
    head = ("hosts", "nubis p50 ms", "nubis p99 ms", "pass-only p50", "reference p50 ms",
            "ratio", "placements/s", "overcommit", "bytes/host (numpy columns, whole service)")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(str(x) for x in (
            r["hosts"], r["nubis_p50_ms"], r["nubis_p99_ms"], r["nubis_pass_p50_ms"],
            f"{r['reference_p50_ms']} (n={r['reference_requests']})", f"{r['ratio']}x",
            f"{r['placements_per_s']} ({r['concurrent_threads']} threads)",
            r["overcommitted"],
            f"{r['column_bytes_per_host']} columns, {r['bytes_per_host'] or '-'} total")))
