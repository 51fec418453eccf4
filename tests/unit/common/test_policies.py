"""Storage policies: the type registry, config parsing, lookups and /info entries."""

from __future__ import annotations

import pytest
from nubis.common.cluster import ClusterConfig
from nubis.common.config import ConfigError, parse_section
from nubis.common.policies import (
    POLICY_TYPES,
    ECPolicy,
    PolicyConfig,
    PolicyError,
    PolicySet,
    ReplicationPolicy,
    StoragePolicy,
    policy_type,
)


def test_types_register_by_decorator() -> None:
    assert POLICY_TYPES["replication"] is ReplicationPolicy
    assert POLICY_TYPES["erasure_coding"] is ECPolicy
    with pytest.raises(PolicyError):
        policy_type("replication")(ReplicationPolicy)


def test_default_set() -> None:
    ps = ClusterConfig().policies()
    assert [p.name for p in ps] == ["rep3", "rep2", "ec42", "ec84"]
    assert ps.default.name == "rep3" and ps.default.index == 0
    ec = ps.by_name("EC42")
    assert isinstance(ec, ECPolicy) and (ec.k, ec.m, ec.segment_size) == (4, 2, 1 << 20)
    assert ec.is_ec and ec.ring_replicas == 6 and ec.quorum(6) == 5
    assert ec.ring_name == "object-2"
    ec84 = ps.by_name("ec84")
    assert isinstance(ec84, ECPolicy) and ec84.ring_replicas == 12
    rep2 = ps.by_name("rep2")
    assert isinstance(rep2, ReplicationPolicy) and rep2.ring_replicas == 2
    assert rep2.quorum(2) == 2 and ps.by_index[0].quorum(3) == 2
    assert ps.info() == [{"name": "rep3", "aliases": "rep3", "default": True},
                         {"name": "rep2", "aliases": "rep2"},
                         {"name": "ec42", "aliases": "ec42"},
                         {"name": "ec84", "aliases": "ec84"}]


def test_segments_and_archive_sizes() -> None:
    ec = ClusterConfig().policies().by_name("ec42")
    assert isinstance(ec, ECPolicy)
    assert ec.segments(0) == []
    assert ec.segments((1 << 20) * 2 + 5) == [1 << 20, 1 << 20, 5]
    assert ec.archive_size((1 << 20) * 2 + 5) == 2 * (1 << 18) + 2
    frags = ec.codec.encode(b"x" * 4096)
    assert len(frags) == 6 and all(len(f) == 1024 for f in frags)


def test_config_tables_aliases_and_errors() -> None:
    conf = parse_section(ClusterConfig, {"storage_policies": {
        "gold": {"index": 0, "replicas": 2},
        "cold": {"index": 4, "type": "erasure_coding", "aliases": ["archive"],
                 "ec_num_data_fragments": 10, "ec_num_parity_fragments": 4,
                 "deprecated": True}}}, "cluster")
    ps = conf.policies()
    assert ps.default.name == "gold"  # policy 0 when none is named
    assert ps.by_name("ARCHIVE") is ps.get(4)
    assert ps.info() == [{"name": "gold", "aliases": "gold", "default": True}]
    with pytest.raises(ConfigError):
        parse_section(ClusterConfig, {"storage_policies": {"x": {"bogus": 1}}}, "cluster")
    with pytest.raises(PolicyError, match="unknown type"):
        PolicySet.from_config({"a": PolicyConfig(index=0, type="mirror")})
    with pytest.raises(PolicyError, match="index 0"):
        PolicySet.from_config({"a": PolicyConfig(index=1)})
    with pytest.raises(PolicyError, match="used twice"):
        PolicySet.from_config({"a": PolicyConfig(index=0),
                               "b": PolicyConfig(index=1, aliases=["A"])})
    with pytest.raises(PolicyError, match="ec_type"):
        PolicySet.from_config({"a": PolicyConfig(index=0),
                               "b": PolicyConfig(index=1, type="erasure_coding",
                                                 ec_type="jerasure_rs_vand")})


def test_new_types_plug_in() -> None:
    @policy_type("test-mirror")
    class Mirror(ReplicationPolicy):
        pass

    try:
        ps = PolicySet.from_config({"m": PolicyConfig(index=0, type="test-mirror")})
        got: StoragePolicy | None = ps.get(0)
        assert isinstance(got, Mirror) and got.policy_type == "test-mirror"
    finally:
        del POLICY_TYPES["test-mirror"]
