"""Scalar helpers with Nova's semantics, request parsing, and host-state bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nubis.common.errors import ConfigError
from nubis.daemons.scheduler import attributes as attrs
from nubis.daemons.scheduler import jsonquery
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.engine import Engine
from nubis.daemons.scheduler.errors import BadRequest
from nubis.daemons.scheduler.hoststate import Aggregate, HostState, Inventory
from nubis.daemons.scheduler.request import parse_request_spec
from nubis.daemons.scheduler.weighers import best_order


@pytest.mark.parametrize(("value", "req", "expected"), [
    ("1024", ">= 512", True), ("1024", ">= 2048", False), ("1024", "= 1024", True),
    ("4", "== 4.0", True), ("4", "!= 4", False), ("3", "<= 3", True),
    ("QEMU", "s== QEMU", True), ("QEMU", "s!= QEMU", False), ("b", "s> a", True),
    ("abc", "s< abd", True), ("x86_64 avx", "<in> avx", True),
    ("['sse', 'avx']", "<all-in> sse avx", True), ("['sse']", "<all-in> sse avx", False),
    ("KVM", "<or> QEMU <or> KVM", True), ("xen", "<or> QEMU <or> KVM", False),
    ("QEMU", "QEMU", True), ("QEMU", "qemu", False),
    ("abc", ">= 3", False),  # not a number: no match (Nova would raise)
    ("3", ">=", False), ("x", "<or>", False),
])
def test_extra_specs_match(value: str, req: str, expected: bool) -> None:
    assert attrs.match(value, req) is expected


def test_canonical_names_and_versions() -> None:
    assert attrs.canonical_arch("AMD64") == "x86_64"
    assert attrs.canonical_arch("i386") == "i686"
    assert attrs.canonical_hv_type("XAPI") == "xen"
    assert attrs.canonical_vm_mode("hv") == "hvm"
    assert attrs.canonical_vm_mode("pv") == "xen"
    assert attrs.version_to_str(8002000) == "8.2.0"
    assert attrs.version_to_str(6000000) == "6.0.0"
    assert attrs.version_satisfied("8.2.0", ">=8.0, <9")
    assert not attrs.version_satisfied("8.2.0", "<8.2")
    assert attrs.version_satisfied("6.0.0", "==6.0")
    assert not attrs.version_satisfied("6.0.0", "~6")


def test_json_query_language() -> None:
    def run(query: list[object], **host: object) -> bool:
        return jsonquery.host_passes(query, lambda s: host.get(s[1:]))
    assert run(["and", [">=", "$ram", 1024], ["<", "$ios", 2]], ram=2048, ios=1)
    assert not run(["=", "$ram"], ram=1)  # fewer than two args: False
    assert run(["in", "$host", "a", "b"], host="b")
    assert run(["not", ["=", "$x", 1]], x=2)
    assert run(["and", ["not", ["=", "$x", 1]]], x=1)  # a non-empty list is truthy
    assert not run(["<", "$ram", "abc"], ram=5)  # type error fails the host
    assert run([">=", "$missing", 3]) is False
    for bad in ('["nope", 1]', '{"a": 1}', '["and", ["=", {"x": 1}, 2]]', "[1,"):
        with pytest.raises(BadRequest):
            jsonquery.parse(bad)


def test_unknown_weigher_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="weight_classes: unknown weigher 'FastWeigher'"):
        Engine(SchedulerConfig(weight_classes=("FastWeigher",)))


def test_request_resources_and_traits() -> None:
    spec = parse_request_spec({
        "flavor": {"vcpus": 2, "memory_mb": 1024, "root_gb": 10, "ephemeral_gb": 5,
                   "swap": 1500, "extra_specs": {"resources:VCPU": "0",
                                                 "resources:CUSTOM_GPU": "1",
                                                 "trait:HW_CPU_X86_AVX": "required",
                                                 "trait:CUSTOM_SLOW": "forbidden"}},
        "image": {"properties": {"traits_required": ["COMPUTE_X"]}}})
    assert spec.resources() == {"MEMORY_MB": 1024, "DISK_GB": 17, "CUSTOM_GPU": 1}
    assert spec.traits() == (frozenset({"HW_CPU_X86_AVX", "COMPUTE_X"}),
                             frozenset({"CUSTOM_SLOW"}))
    assert len(parse_request_spec({"max_count": 3}).instance_uuids) == 3
    group = parse_request_spec({"instance_uuids": ["a", "b"],
                                "instance_group": {"policy": "affinity", "members": ["x"]}})
    assert group.instance_group is not None
    assert group.instance_group.members == ("x", "a", "b")
    with pytest.raises(BadRequest):
        parse_request_spec({"scheduler_hints": {"query": json.dumps(["bogus"])}})


def test_host_state_incremental_updates() -> None:
    st = HostState()
    for i in range(100):  # grows past the initial size
        row = st.add_host(f"h{i}", f"u{i}")
        st.set_inventories(row, {"VCPU": Inventory(4, 0, 1, 2, 1, 2.0),
                                 "MEMORY_MB": Inventory(1000, 100)})
    vcpu = st.resources["VCPU"]
    assert vcpu.fits(2, st.n).all()
    assert not vcpu.fits(3, st.n).any()  # max_unit 2
    st.add_instance(5, "i1", {"VCPU": 2, "MEMORY_MB": 900})
    assert not st.resources["MEMORY_MB"].fits(1, st.n)[5]
    assert st.num_instances[5] == 1 and st.instance_row["i1"] == 5
    st.remove_instance("i1", {"VCPU": 2, "MEMORY_MB": 900})
    assert st.resources["MEMORY_MB"].fits(900, st.n)[5]
    st.set_aggregate(Aggregate("a", "a", {"availability_zone": "az1"}, frozenset({"h3"})))
    assert st.aggs.get(3) == frozenset({"a"}) and st.aggs.get(4) == frozenset()
    st.retire(7)
    assert "h7" not in st.row_of and st.retired[7]


def test_best_order_is_a_stable_descending_sort() -> None:
    w = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    assert best_order(w, None, 4).tolist() == [1, 2, 4, 3]
    rows = np.array([10, 11, 12, 13, 14])
    assert best_order(w, rows, 2).tolist() == [11, 12]
    assert best_order(w, None, 5).tolist() == np.argsort(-w, kind="stable").tolist()


def test_daemon_refuses_unknown_filter(capsys: pytest.CaptureFixture[str]) -> None:
    from nubis.common.cluster import ClusterConfig
    from nubis.daemons.scheduler.server import run

    assert run(SchedulerConfig(enabled_filters=("RamFliter",)), ClusterConfig(), None) == 2
    err = capsys.readouterr().err
    assert err.startswith("config.toml: [scheduler] enabled_filters: unknown filter 'RamFliter'")
