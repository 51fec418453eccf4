"""The vectorized pass must agree with the per-host reference (Nova's semantics).

Hypothesis generates random clouds (hosts, inventories, usage, facts, traits,
instances, aggregates with metadata), requests (flavors with extra specs, images,
AZs, hints, JSON queries, server groups, instance counts) and configs; every
filter mask must match the reference host by host, and whole requests must pick
the same hosts, alternates included, in the same order.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nubis.bench import scheduler_reference as ref
from nubis.daemons.scheduler import filters as flt
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.engine import Engine
from nubis.daemons.scheduler.errors import NoValidHost
from nubis.daemons.scheduler.hoststate import Aggregate, HostFacts, Inventory
from nubis.daemons.scheduler.request import parse_request_spec

NOW = 1000.0
POOL = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(8)]
ALL_FILTERS = tuple(ref.REF_FILTERS)
SUPPORTED = [("x86_64", "qemu", "hvm"), ("i686", "kvm", "hvm"), ("aarch64", "qemu", "hvm"),
             ("x86_64", "xen", "xen")]
AGG_META = {
    "availability_zone": ["az1", "az2"],
    "filter_tenant_id": ["p1", "p1,p2"],
    "filter_tenant_id2": ["p3"],
    "max_instances_per_host": ["1", "3", "x"],
    "max_io_ops_per_host": ["2", "5"],
    "ram_weight_multiplier": ["-1.0", "2.0", "bad"],
    "cpu_weight_multiplier": ["0.5"],
    "foo": ["bar", "baz, qux"],
    "ssd": ["true"],
}
EXTRA_SPECS = {
    "capabilities:hypervisor_type": ["s== QEMU", "<or> QEMU <or> KVM", "QEMU"],
    "capabilities:free_ram_mb": [">= 1024", "= 4096", "s== 2048"],
    "capabilities:vcpus_total": ["<= 8", "== 4"],
    "capabilities:cpu_info:arch": ["x86_64", "s!= aarch64"],
    "capabilities:cpu_info:features": ["<in> avx", "<all-in> sse avx"],
    "capabilities:stats:foo": ["s== a"],
    "foo": ["bar", "<in> qu", "s>= b"],
    "num_x": [">= 2", "<= 1"],
    "aggregate_instance_extra_specs:ssd": ["true", "<is> True"],
    "hw:cpu_policy": ["dedicated"],
    "trait:HW_CPU_X86_AVX": ["required", "forbidden"],
    "trait:CUSTOM_A": ["required"],
    "resources:VCPU": ["2", "3"],
}
QUERIES = [
    None,
    ["and", [">=", "$free_ram_mb", 1024], [">=", "$free_disk_mb", 2048]],
    ["or", ["=", "$hypervisor_type", "QEMU"], ["<", "$num_instances", 1]],
    ["not", ["=", "$stats.foo", "a"]],
    ["in", "$host", "h0", "h2", "h5"],
    ["and", ["not", ["<", "$vcpus_used", 2]], [">", "$vcpus_total", 2]],
    ["<", "$free_ram_mb", "abc"],
    [">=", "$nosuch", 3],
    ["=", "$cpu_info.arch", "x86_64"],
    [],
]


@st.composite
def inventories(draw: Any) -> tuple[dict[str, Inventory], dict[str, int]]:
    invs = {}
    used = {}
    for rc, totals in (("VCPU", [1, 2, 4, 8, 16]), ("MEMORY_MB", [1024, 2048, 4096, 8192]),
                       ("DISK_GB", [10, 20, 40, 100])):
        total = draw(st.sampled_from(totals))
        reserved = draw(st.sampled_from([0, 0, total // 4]))
        ratio = draw(st.sampled_from([1.0, 1.5, 2.0]))
        step = draw(st.sampled_from([1, 1, 1, 2])) if rc == "VCPU" else 1
        max_unit = draw(st.sampled_from([0, 0, max(1, total // 2)]))
        invs[rc] = Inventory(total, reserved, 1, max_unit, step, ratio)
        cap = invs[rc].capacity
        used[rc] = draw(st.integers(0, max(0, cap)))
    return invs, used


@st.composite
def hosts(draw: Any, count: int) -> list[ref.HostDesc]:
    pool = list(POOL)
    out = []
    for i in range(count):
        invs, used = draw(inventories())
        mine = draw(st.lists(st.sampled_from(pool), max_size=2, unique=True)) if pool else []
        pool = [u for u in pool if u not in mine]
        facts = HostFacts(
            hypervisor_type=draw(st.sampled_from(["QEMU", "KVM", "xen"])),
            hypervisor_version=draw(st.sampled_from([0, 6000000, 8002000])),
            cpu_info=draw(st.sampled_from([{}, {"arch": "x86_64", "features": ["sse", "avx"]},
                                           {"arch": "aarch64", "features": ["neon"]}])),
            stats=draw(st.sampled_from([{}, {"foo": "a"}, {"foo": "b", "num_x": "3"},
                                        {"num_x": "1"}])),
            supported_instances=tuple(draw(st.lists(st.sampled_from(SUPPORTED), max_size=3,
                                                    unique=True))),
            enabled=draw(st.sampled_from([True, True, True, False])),
            num_io_ops=draw(st.integers(0, 6)),
            failed_builds=draw(st.sampled_from([0, 0, 1, 3])))
        out.append(ref.HostDesc(
            name=f"h{i}", uuid=f"10000000-0000-0000-0000-{i:012d}", inventories=invs,
            used=used, facts=facts,
            traits=frozenset(draw(st.lists(st.sampled_from(
                ["HW_CPU_X86_AVX", "CUSTOM_A", "COMPUTE_X"]), max_size=3, unique=True))),
            instances=tuple(mine),
            last_seen=NOW - draw(st.sampled_from([0.0, 10.0, 30.0, 120.0]))))
    return out


@st.composite
def clouds(draw: Any) -> ref.Cloud:
    n = draw(st.integers(1, 10))
    hs = draw(hosts(n))
    aggs = []
    for a in range(draw(st.integers(0, 3))):
        keys = draw(st.lists(st.sampled_from(sorted(AGG_META)), max_size=3, unique=True))
        meta = {k: draw(st.sampled_from(AGG_META[k])) for k in keys}
        members = draw(st.lists(st.sampled_from([h.name for h in hs]), max_size=n,
                                unique=True))
        aggs.append(Aggregate(f"a{a}", f"agg{a}", meta, frozenset(members)))
    return ref.Cloud(hs, aggs)


@st.composite
def requests(draw: Any) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(EXTRA_SPECS)), max_size=3, unique=True))
    props = {}
    for name, choices in (("hw_architecture", ["x86_64", "amd64", "i386", "aarch64"]),
                          ("img_hv_type", ["qemu", "kvm", "xapi"]),
                          ("hw_vm_mode", ["hvm", "pv"]),
                          ("img_hv_requested_version", [">=6.0", ">=8.0,<9", "<7"])):
        if draw(st.booleans()):
            props[name] = draw(st.sampled_from(choices))
    max_count = draw(st.integers(1, 3))
    hints: dict[str, Any] = {}
    if draw(st.booleans()):
        hints["same_host"] = draw(st.lists(st.sampled_from(POOL), max_size=2))
    if draw(st.booleans()):
        hints["different_host"] = draw(st.lists(st.sampled_from(POOL), max_size=2))
    query = draw(st.sampled_from(QUERIES))
    if query is not None:
        hints["query"] = json.dumps(query)
    body: dict[str, Any] = {
        "instance_uuids": [f"20000000-0000-0000-0000-{i:012d}" for i in range(max_count)],
        "min_count": draw(st.integers(1, max_count)),
        "project_id": draw(st.sampled_from(["p1", "p2", "p3"])),
        "flavor": {"vcpus": draw(st.integers(1, 4)),
                   "memory_mb": draw(st.sampled_from([256, 512, 2048])),
                   "root_gb": draw(st.integers(0, 20)),
                   "ephemeral_gb": draw(st.sampled_from([0, 5])),
                   "swap": draw(st.sampled_from([0, 512, 2048])),
                   "extra_specs": {k: draw(st.sampled_from(EXTRA_SPECS[k])) for k in keys}},
        "image": {"id": draw(st.sampled_from(["img1", "img2", None])), "properties": props},
        "availability_zone": draw(st.sampled_from([None, "az1", "az2", "nova"])),
        "scheduler_hints": hints,
    }
    if draw(st.booleans()):
        body["instance_group"] = {
            "uuid": "g1",
            "policy": draw(st.sampled_from(["affinity", "anti-affinity", "soft-affinity",
                                            "soft-anti-affinity"])),
            "rules": draw(st.sampled_from([{}, {"max_server_per_host": 2}])),
            "members": draw(st.lists(st.sampled_from(POOL), max_size=4, unique=True))}
    return body


@st.composite
def configs(draw: Any) -> SchedulerConfig:
    order = draw(st.permutations(ALL_FILTERS))
    enabled = tuple(order[: draw(st.integers(0, len(order)))])
    mult = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 2.0])
    return SchedulerConfig(
        enabled_filters=enabled, host_subset_size=draw(st.integers(1, 3)),
        max_attempts=draw(st.integers(1, 4)),
        ram_weight_multiplier=draw(mult), cpu_weight_multiplier=draw(mult),
        disk_weight_multiplier=draw(mult), io_ops_weight_multiplier=draw(mult),
        num_instances_weight_multiplier=draw(mult),
        soft_affinity_weight_multiplier=abs(draw(mult)),
        soft_anti_affinity_weight_multiplier=abs(draw(mult)),
        build_failure_weight_multiplier=draw(st.sampled_from([0.0, 1000000.0])),
        max_instances_per_host=draw(st.integers(1, 4)),
        max_io_ops_per_host=draw(st.integers(1, 8)),
        isolated_images=tuple(draw(st.lists(st.sampled_from(["img1", "img2"]), max_size=1))),
        isolated_hosts=tuple(draw(st.lists(st.sampled_from(["h0", "h1", "h3"]), max_size=2))),
        restrict_isolated_hosts_to_isolated_images=draw(st.booleans()))


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(cloud=clouds(), body=requests(), config=configs())
def test_every_filter_mask_matches_reference(cloud: ref.Cloud, body: dict[str, Any],
                                             config: SchedulerConfig) -> None:
    spec = parse_request_spec(body)
    state = ref.build_state(cloud)
    ref_hosts = ref.build_ref(cloud)
    engine = Engine(replace(config, enabled_filters=ALL_FILTERS))
    ctx = engine.context(state, spec, NOW, random.Random(0))
    ctx.instance_uuid = spec.instance_uuids[0]
    rq = ref.RefRequest(spec, config, NOW, spec.instance_uuids[0])
    if spec.instance_group is not None:
        rq.group_members = list(spec.instance_group.members)
        rq.group_hosts = sorted(ctx.group_hosts)
    ctx.config = config
    for name in ALL_FILTERS:
        got = flt.FILTERS[name](ctx)
        if got is None:
            got = np.ones(state.n, dtype=bool)
        want = np.array([ref.REF_FILTERS[name](h, rq) for h in ref_hosts], dtype=bool)
        assert got.tolist() == want.tolist(), name
    placement = np.array([ref.placement_passes(h, rq) for h in ref_hosts], dtype=bool)
    mask = np.ones(state.n, dtype=bool)
    for _name, fn in flt.prefilters(spec):
        got = fn(ctx)
        if got is not None:
            mask &= got
    assert mask.tolist() == placement.tolist()


@SETTINGS
@given(cloud=clouds(), body=requests(), config=configs(), seed=st.integers(0, 2**32))
def test_selected_hosts_match_reference(cloud: ref.Cloud, body: dict[str, Any],
                                        config: SchedulerConfig, seed: int) -> None:
    spec = parse_request_spec(body)
    state = ref.build_state(cloud)
    want = ref.schedule(ref.build_ref(cloud), spec, config, NOW, random.Random(seed))
    try:
        plan = Engine(config).plan(state, spec, NOW, random.Random(seed))
    except NoValidHost:
        assert want is None
        return
    got = [(state.names[p.row], [state.names[r] for r in p.alternates])
           for p in plan.placements]
    assert got == want


@pytest.mark.parametrize("hosts_n", [40])
def test_weights_match_reference_on_many_hosts(hosts_n: int) -> None:
    rng = random.Random(7)
    descs = []
    for i in range(hosts_n):
        invs = {"VCPU": Inventory(rng.choice([4, 8, 16]), 0, 1, 0, 1, rng.choice([1.0, 4.0])),
                "MEMORY_MB": Inventory(rng.choice([4096, 8192, 16384])),
                "DISK_GB": Inventory(rng.choice([40, 100]))}
        used = {rc: rng.randrange(0, inv.capacity // 2 + 1) for rc, inv in invs.items()}
        descs.append(ref.HostDesc(f"h{i}", f"u{i}", invs, used,
                                  HostFacts(num_io_ops=rng.randrange(3),
                                            failed_builds=rng.choice([0, 0, 0, 1])),
                                  last_seen=NOW))
    cloud = ref.Cloud(descs, [Aggregate("a", "a", {"ram_weight_multiplier": "3.0"},
                                        frozenset({"h1", "h5", "h9"}))])
    config = SchedulerConfig(enabled_filters=ALL_FILTERS, host_subset_size=1, max_attempts=4)
    spec = parse_request_spec({"max_count": 10, "flavor": {"vcpus": 1, "memory_mb": 512,
                                                           "root_gb": 1}})
    state = ref.build_state(cloud)
    want = ref.schedule(ref.build_ref(cloud), spec, config, NOW, random.Random(1))
    plan = Engine(config).plan(state, spec, NOW, random.Random(1))
    assert [(state.names[p.row], [state.names[r] for r in p.alternates])
            for p in plan.placements] == want
