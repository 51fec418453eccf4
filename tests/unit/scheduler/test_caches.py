"""Caches of the pass never change an answer: a long-lived state vs. the reference.

The host state remembers bounds (largest instance / I/O counts, oldest heartbeat,
all hosts enabled) and per-value predicate tables; the engine remembers active
weighers and the weigher extremes of earlier passes. After every change below, a
long-lived state and engine must place exactly like the per-host reference loop
(``nubis.bench.scheduler_reference``) on the same hosts.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from nubis.bench import scheduler_reference as ref
from nubis.daemons.scheduler import filters as flt
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.engine import Engine, undo
from nubis.daemons.scheduler.errors import NoValidHost
from nubis.daemons.scheduler.hoststate import Aggregate, HostFacts, Inventory
from nubis.daemons.scheduler.request import parse_request_spec

NOW = 5000.0
CONFIG = SchedulerConfig(enabled_filters=tuple(ref.REF_FILTERS), max_attempts=3,
                         max_instances_per_host=3, max_io_ops_per_host=4)
#: Without the Aggregate* variants, which would hide a stale bound of the plain ones.
PLAIN = replace(CONFIG, enabled_filters=tuple(
    f for f in ref.REF_FILTERS if not f.startswith("Aggregate") or "Tenancy" in f))
SUPPORTED = ((("x86_64", "qemu", "hvm"),), (("x86_64", "kvm", "hvm"),), ())
#: The best hosts, so taking one out changes the answers.
BIG = frozenset({7, 8, 9, 10, 11, 60})


def _facts(i: int, **over: Any) -> HostFacts:
    base: dict[str, Any] = {"hypervisor_type": "QEMU", "hypervisor_version": 8002000,
                            "supported_instances": SUPPORTED[i % 3], "num_io_ops": i % 3}
    base.update(over)
    return HostFacts(**base)


def _cloud() -> ref.Cloud:
    rng = random.Random(11)
    hosts = []
    for i in range(300):
        invs = {"VCPU": Inventory(rng.choice([4, 8, 16]), 0, 1, 0, 1, 2.0),
                "MEMORY_MB": Inventory(rng.choice([8192, 16384, 32768]), 512),
                "DISK_GB": Inventory(rng.choice([100, 200]))}
        used = {"VCPU": rng.randrange(0, 8), "MEMORY_MB": rng.randrange(0, 4096)}
        if i in BIG:
            invs = {"VCPU": Inventory(64), "MEMORY_MB": Inventory(262144),
                    "DISK_GB": Inventory(4000)}
            used = {}
        hosts.append(ref.HostDesc(f"h{i}", f"u{i}", invs, used, _facts(i),
                                  frozenset({"HW_CPU_X86_AVX"}) if i % 2 else frozenset(),
                                  last_seen=NOW))
    return ref.Cloud(hosts, [])


class Scenario:
    """The hosts as the reference sees them, and a long-lived HostState kept in step."""

    def __init__(self) -> None:
        self.cloud = _cloud()
        self.state = ref.build_state(self.cloud)

    def facts(self, row: int, when: float = NOW, **over: Any) -> None:
        """Take a compute report."""
        facts = _facts(row, **over)
        self.cloud.hosts[row] = replace(self.cloud.hosts[row], facts=facts, last_seen=when)
        self.state.set_facts(row, facts, when)

    def instances(self, row: int, uuids: list[str]) -> None:
        """Start instances (counted, no resources) on ``row``."""
        h = self.cloud.hosts[row]
        self.cloud.hosts[row] = replace(h, instances=h.instances + tuple(uuids))
        for uuid in uuids:
            self.state.add_instance(row, uuid, {}, io_ops=False)

    def release(self, row: int, uuid: str) -> None:
        """Delete an instance."""
        h = self.cloud.hosts[row]
        self.cloud.hosts[row] = replace(h, instances=tuple(u for u in h.instances
                                                           if u != uuid))
        self.state.remove_instance(uuid, {})

    def aggregate(self, uuid: str, metadata: dict[str, str], hosts: range) -> None:
        """Create or replace an aggregate."""
        agg = Aggregate(uuid, uuid, metadata, frozenset(f"h{i}" for i in hosts))
        aggs = [a for a in self.cloud.aggregates if a.uuid != uuid] + [agg]
        self.cloud = ref.Cloud(self.cloud.hosts, aggs)
        self.state.set_aggregate(agg)

    def drop_aggregate(self, uuid: str) -> None:
        """Delete an aggregate."""
        aggs = [a for a in self.cloud.aggregates if a.uuid != uuid]
        self.cloud = ref.Cloud(self.cloud.hosts, aggs)
        self.state.delete_aggregate(uuid)


STEPS: list[Any] = [
    lambda s: None,
    lambda s: s.aggregate("az1", {"availability_zone": "az1"}, range(0, 120)),
    lambda s: s.facts(7, enabled=False),
    lambda s: s.facts(8, num_io_ops=4),
    lambda s: s.instances(9, ["full-0", "full-1", "full-2"]),
    lambda s: s.release(9, "full-1"),
    lambda s: s.aggregate("w", {"ram_weight_multiplier": "-2.0"}, range(0, 300, 7)),
    lambda s: s.drop_aggregate("w"),
    lambda s: s.facts(10, when=NOW - 10_000),  # down: no heartbeat for a long time
    lambda s: s.facts(7),
    lambda s: s.aggregate("t", {"filter_tenant_id": "p2"}, range(0, 12)),
    lambda s: s.facts(11, failed_builds=2),
    lambda s: s.aggregate("az1", {"availability_zone": "az1"}, range(50, 150)),
    lambda s: s.aggregate("az1", {"availability_zone": "az2"}, range(50, 150)),
]

BODIES: list[dict[str, Any]] = [
    {"project_id": "p", "flavor": {"vcpus": 1, "memory_mb": 1024, "root_gb": 10}},
    {"project_id": "p2", "availability_zone": "az1",
     "flavor": {"vcpus": 2, "memory_mb": 2048, "root_gb": 20}},
    {"project_id": "p", "availability_zone": "az2", "flavor": {"vcpus": 1, "memory_mb": 64}},
    {"project_id": "p", "max_count": 4, "flavor": {
        "vcpus": 4, "memory_mb": 4096, "root_gb": 40,
        "extra_specs": {"trait:HW_CPU_X86_AVX": "required"}}},
    {"project_id": "p", "flavor": {"vcpus": 1, "memory_mb": 512, "root_gb": 1},
     "image": {"properties": {"hw_architecture": "x86_64", "img_hv_type": "kvm"}}},
    {"project_id": "p", "flavor": {"vcpus": 64, "memory_mb": 512, "root_gb": 1}},
]


@pytest.mark.parametrize("config", [CONFIG, PLAIN], ids=["all-filters", "plain-filters"])
def test_long_lived_state_places_like_the_reference(config: SchedulerConfig) -> None:
    sc = Scenario()
    engine = Engine(config)
    assert set(ref.REF_FILTERS) <= set(flt.FILTERS)
    for step, change in enumerate(STEPS):
        change(sc)
        io_ops = sc.state.num_io_ops.copy()
        for i, body in enumerate(BODIES * 2):  # twice: the second round hits the caches
            spec = parse_request_spec(body)
            want = ref.schedule(ref.build_ref(sc.cloud), spec, config, NOW, random.Random(i))
            try:
                plan = engine.plan(sc.state, spec, NOW, random.Random(i))
            except NoValidHost:
                assert want is None, (step, i)
                continue
            got = [(sc.state.names[p.row], [sc.state.names[r] for r in p.alternates])
                   for p in plan.placements]
            assert got == want, (step, i)
            undo(sc.state, plan)
            sc.state.num_io_ops[:] = io_ops  # a release keeps the I/O count, as in Nova
