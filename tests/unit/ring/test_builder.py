"""RingBuilder: devices, rebalance properties, statistics, persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from nubis.ring.builder import MAX_BALANCE, RingBuilder
from nubis.ring.builderfile import load_builder, save_builder
from nubis.ring.devices import (
    Device,
    parse_add_value,
    parse_change_value,
    parse_search_value,
)
from nubis.ring.errors import DeviceError, RingBuilderError, RingError, RingValidationError
from nubis.ring.ringdata import load_ring_file, write_ring_file


def make_builder(part_power: int = 8, replicas: float = 3, zones: int = 5, servers: int = 2,
                 disks: int = 2, weight: float = 100.0, min_part_hours: int = 1,
                 region: int = 1) -> RingBuilder:
    b = RingBuilder(part_power, replicas, min_part_hours)
    add_devices(b, zones, servers, disks, weight, region)
    return b


def add_devices(b: RingBuilder, zones: int, servers: int, disks: int, weight: float,
                region: int = 1, ip_base: int = 0) -> list[int]:
    ids = []
    for z in range(1, zones + 1):
        for s in range(servers):
            for d in range(disks):
                ids.append(b.add_dev(region=region, zone=z, ip=f"127.{region}.{z}.{s + ip_base}",
                                     port=6200, device=f"sd{chr(97 + d)}", weight=weight))
    return ids


def replica_sets(b: RingBuilder) -> np.ndarray:
    assert b.table is not None
    return b.table


def assert_distinct_devices(b: RingBuilder) -> None:
    t = b.table
    assert t is not None
    for i in range(t.shape[0]):
        for j in range(i + 1, t.shape[0]):
            both = (t[i] >= 0) & (t[j] >= 0)
            assert not (both & (t[i] == t[j])).any()


def zone_of(b: RingBuilder) -> np.ndarray:
    zones = np.full(len(b.devs) + 1, -1 - np.arange(len(b.devs) + 1))
    for d in b.iter_devs():
        zones[d.id] = d.region * 1000 + d.zone
    return zones


def assert_distinct_zones(b: RingBuilder) -> None:
    t = b.table
    assert t is not None
    z = zone_of(b)[np.where(t >= 0, t, len(b.devs))]
    for i in range(t.shape[0]):
        for j in range(i + 1, t.shape[0]):
            assert not ((t[i] >= 0) & (t[j] >= 0) & (z[i] == z[j])).any()


# ------------------------------------------------------------------- devices


def test_parse_add_value_full_form() -> None:
    got = parse_add_value("r2z3-127.0.0.1:6200R127.1.0.1:6300/sdb1_fast disk")
    assert got == {"region": 2, "zone": 3, "ip": "127.0.0.1", "port": 6200,
                   "replication_ip": "127.1.0.1", "replication_port": 6300,
                   "device": "sdb1", "meta": "fast disk"}


def test_parse_add_value_defaults_and_ipv6() -> None:
    got = parse_add_value("z1-[::1]:6200/sdb1")
    assert got["region"] == 1
    assert got["ip"] == "0000:0000:0000:0000:0000:0000:0000:0001"
    assert got["replication_ip"] == got["ip"] and got["replication_port"] == 6200


@pytest.mark.parametrize("bad", ["", "sdb1", "r1z1-127.0.0.1/sdb1", "r1z1-127.0.0.1:6200",
                                 "r1z1-127.0.0.1:6200/", "r1z1-999.0.0.1:6200/sdb1",
                                 "r1z1-127.0.0.1:99999/sdb1", "r1zx-127.0.0.1:6200/sdb1",
                                 "r1z1127.0.0.1:6200/sdb1"])
def test_parse_add_value_rejects_malformed(bad: str) -> None:
    with pytest.raises(DeviceError):
        parse_add_value(bad)


@pytest.mark.parametrize(("value", "expected"), [
    ("d74", {"id": 74}),
    ("r4", {"region": 4}),
    ("z1", {"zone": 1}),
    ("z1-1.2.3.4", {"zone": 1, "ip": "1.2.3.4"}),
    ("1.2.3.4", {"ip": "1.2.3.4"}),
    (":5678", {"port": 5678}),
    ("R5.6.7.8", {"replication_ip": "5.6.7.8"}),
    ("1.2.3.4R5.6.7.8", {"ip": "1.2.3.4", "replication_ip": "5.6.7.8"}),
    ("/sdb1", {"device": "sdb1"}),
    ("_shiny", {"meta": "shiny"}),
    ("r1z1-127.0.0.1:6200/sdb1", {"region": 1, "zone": 1, "ip": "127.0.0.1", "port": 6200,
                                  "device": "sdb1"}),
    ("d74r4z1-1.2.3.4:5678/sdb1_snet", {"id": 74, "region": 4, "zone": 1, "ip": "1.2.3.4",
                                        "port": 5678, "device": "sdb1", "meta": "snet"}),
])
def test_parse_search_value(value: str, expected: dict[str, object]) -> None:
    assert parse_search_value(value) == expected


@pytest.mark.parametrize("bad", ["", "x", "d", "dfoo", "z1 junk", "1.2.3.4.5.6"])
def test_parse_search_value_rejects(bad: str) -> None:
    with pytest.raises(DeviceError):
        parse_search_value(bad)


def test_parse_change_value() -> None:
    assert parse_change_value("127.0.0.2:6300R127.9.0.2:7300/sdc1_new") == {
        "ip": "127.0.0.2", "port": 6300, "replication_ip": "127.9.0.2",
        "replication_port": 7300, "device": "sdc1", "meta": "new"}
    assert parse_change_value(":6301") == {"port": 6301}
    assert parse_change_value("_meta only") == {"meta": "meta only"}
    with pytest.raises(DeviceError):
        parse_change_value("")


def test_device_round_trips_through_dict() -> None:
    dev = Device(id=3, region=1, zone=2, ip="127.0.0.1", port=6200, device="sdb", weight=1.5)
    assert dev.replication_ip == "127.0.0.1" and dev.replication_port == 6200
    assert Device.from_dict(dev.to_dict()) == dev
    with pytest.raises(DeviceError):
        Device.from_dict({"id": 1})


# ------------------------------------------------------------ builder basics


def test_add_dev_assigns_first_free_id_and_rejects_duplicates() -> None:
    b = RingBuilder(4, 3, 1)
    assert b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="a", weight=1) == 0
    assert b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="b", weight=1,
                     dev_id=5) == 5
    assert b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="c", weight=1) == 1
    with pytest.raises(DeviceError, match="duplicate device id"):
        b.add_dev(region=1, zone=1, ip="127.0.0.2", port=6200, device="x", weight=1, dev_id=5)
    with pytest.raises(DeviceError, match="already uses"):
        b.add_dev(region=1, zone=2, ip="127.0.0.1", port=6200, device="a", weight=1)
    with pytest.raises(DeviceError):
        b.add_dev(region=1, zone=2, ip="127.0.0.1", port=6200, device="z", weight=-1)


@pytest.mark.parametrize(("pp", "replicas", "mph"), [(33, 3, 1), (-1, 3, 1), (8, 0.5, 1),
                                                     (8, 3, -1), (8, math.nan, 1)])
def test_constructor_rejects_bad_shape(pp: int, replicas: float, mph: int) -> None:
    with pytest.raises(RingBuilderError):
        RingBuilder(pp, replicas, mph)


def test_rebalance_needs_weight_and_enough_devices() -> None:
    b = RingBuilder(6, 3, 1)
    with pytest.raises(RingBuilderError, match="all weights are zero"):
        b.rebalance()
    b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="a", weight=0)
    with pytest.raises(RingBuilderError, match="all weights are zero"):
        b.rebalance()
    b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="b", weight=1)
    with pytest.raises(RingBuilderError, match="requires at least 3"):
        b.rebalance()


def test_errors_share_one_tree() -> None:
    assert issubclass(DeviceError, RingBuilderError)
    assert issubclass(RingValidationError, RingError)


# --------------------------------------------------------------- rebalance


def test_initial_rebalance_is_valid_balanced_and_dispersed() -> None:
    b = make_builder(part_power=10)
    result = b.rebalance(seed=1)
    assert result.changed == 3 * 1024
    b.validate()
    assert_distinct_devices(b)
    assert_distinct_zones(b)
    assert result.dispersion == 0.0
    assert result.balance < 1.0
    counts = b.dev_parts()
    assert counts.sum() == 3 * 1024


def test_rebalance_is_deterministic_with_a_seed() -> None:
    a, b = make_builder(part_power=8), make_builder(part_power=8)
    a.rebalance(seed=7)
    b.rebalance(seed=7)
    assert a.table is not None and b.table is not None
    assert (a.table == b.table).all()


def test_weights_are_respected() -> None:
    b = RingBuilder(12, 3, 1)
    add_devices(b, zones=4, servers=2, disks=1, weight=100)
    add_devices(b, zones=4, servers=1, disks=1, weight=200, ip_base=5)
    b.rebalance(seed=3)
    b.validate()
    counts = b.dev_parts()
    wop = b.weight_of_one_part()
    for dev in b.iter_devs():
        assert abs(counts[dev.id] - dev.weight * wop) <= 0.01 * dev.weight * wop
    assert b.get_balance() < 1.0


def test_adding_devices_moves_little_and_respects_min_part_hours() -> None:
    b = make_builder(part_power=12, zones=5, servers=2, disks=2)
    b.rebalance(seed=1)
    before = b.table.copy()
    b.pretend_min_part_hours_passed()
    new = add_devices(b, zones=5, servers=1, disks=1, weight=100, ip_base=10)
    result = b.rebalance(seed=2)
    b.validate()
    assert_distinct_zones(b)
    ideal = sum(b.dev_parts()[i] for i in new)
    moved = int((before != b.table).sum())
    assert moved == result.changed
    assert moved <= 1.2 * ideal
    # at most one replica of any partition moved
    assert ((before != b.table).sum(axis=0) <= 1).all()
    assert result.balance < 1.0 and result.dispersion == 0.0
    # right after: nothing that just moved may move again
    moved_parts = (before != b.table).any(axis=0)
    b.set_dev_weight(new[0], 300)
    second = b.table.copy()
    b.rebalance(seed=3)
    again = (second != b.table).any(axis=0)
    assert not (again & moved_parts).any()


def test_min_part_hours_blocks_moves_after_initial_balance() -> None:
    b = make_builder(part_power=8)
    b.rebalance(seed=1)
    before = b.table.copy()
    add_devices(b, zones=1, servers=1, disks=1, weight=100, ip_base=9)
    result = b.rebalance(seed=2)
    assert result.changed == 0
    assert (before == b.table).all()


def test_nothing_movable_is_found_before_gathering(monkeypatch: pytest.MonkeyPatch) -> None:
    from nubis.ring import rebalance as rb

    b = make_builder(part_power=8)
    b.rebalance(seed=1)
    before = b.table.copy()
    add_devices(b, zones=5, servers=1, disks=1, weight=100, ip_base=9)

    def boom(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("gathered or placed although nothing may move")

    for name in ("gather_for_dispersion", "gather_for_balance", "place", "pull_for_balance"):
        monkeypatch.setattr(rb, name, boom)
    result = b.rebalance(seed=2)
    assert result.changed == 0 and result.removed == 0
    assert (before == b.table).all()


def test_removed_device_is_movable_within_min_part_hours() -> None:
    b = make_builder(part_power=8, min_part_hours=24)
    b.rebalance(seed=1)
    b.remove_dev(b.search_devs({"zone": 3})[0].id)
    assert b.rebalance(seed=2).changed > 0


def test_hours_age_with_the_clock() -> None:
    b = make_builder(part_power=8)
    now = [1_000_000.0]
    b.clock = lambda: now[0]
    b.rebalance(seed=1)
    add_devices(b, zones=1, servers=1, disks=1, weight=100, ip_base=9)
    assert b.min_part_seconds_left() == 3600
    now[0] += 2 * 3600
    assert b.min_part_seconds_left() == 0
    assert b.rebalance(seed=2).changed > 0


def test_remove_device_moves_its_parts_even_within_min_part_hours() -> None:
    b = make_builder(part_power=10, min_part_hours=24)
    b.rebalance(seed=1)
    victim = b.search_devs({"zone": 2})[0].id
    had = int(b.dev_parts()[victim])
    b.remove_dev(victim)
    result = b.rebalance(seed=2)
    assert result.removed == 1
    assert b.devs[victim] is None if victim < len(b.devs) else True
    assert result.changed == had
    b.validate()
    assert_distinct_zones(b)
    with pytest.raises(DeviceError):
        b.get_dev(victim)


def test_set_weight_zero_drains_a_device() -> None:
    b = make_builder(part_power=10)
    b.rebalance(seed=1)
    b.pretend_min_part_hours_passed()
    b.set_dev_weight(0, 0)
    b.rebalance(seed=2)
    assert b.dev_parts()[0] == 0
    b.validate()


def test_cannot_reweight_a_device_marked_for_removal() -> None:
    b = make_builder(part_power=6)
    b.remove_dev(0)
    with pytest.raises(DeviceError, match="marked for removal"):
        b.set_dev_weight(0, 10)


def test_fractional_replicas() -> None:
    b = make_builder(part_power=10, replicas=2.5)
    b.rebalance(seed=1)
    b.validate()
    assert b.table is not None
    assert (b.table[2, :512] >= 0).all() and (b.table[2, 512:] == -1).all()
    assert b.dev_parts().sum() == 2 * 1024 + 512
    assert_distinct_zones(b)
    ring = b.get_ring()
    assert [len(r) for r in ring.replica2part2dev] == [1024, 1024, 512]


def test_changing_replicas_adds_and_removes_rows() -> None:
    b = make_builder(part_power=9, replicas=3)
    b.rebalance(seed=1)
    b.set_replicas(3.25)
    assert b.devs_changed
    b.rebalance(seed=2)
    b.validate()
    assert b.dev_parts().sum() == 3 * 512 + 128
    assert_distinct_zones(b)
    b.set_replicas(2)
    b.rebalance(seed=3)
    b.validate()
    assert b.table.shape == (2, 512)
    assert b.dev_parts().sum() == 1024


def test_fewer_zones_than_replicas_spreads_over_servers() -> None:
    b = RingBuilder(10, 3, 1)
    add_devices(b, zones=2, servers=3, disks=2, weight=100)
    b.rebalance(seed=1)
    b.validate()
    assert_distinct_devices(b)
    assert b.dispersion == 0.0
    # no zone holds all three replicas of a partition; no server holds two
    report = b.dispersion_report()
    zones = [t for t in report["tiers"] if t["level"] == 1]
    assert all(t["replicas"][3] == 0 for t in zones)
    servers = [t for t in report["tiers"] if t["level"] == 2]
    assert all(t["replicas"][2] == 0 and t["replicas"][3] == 0 for t in servers)


def test_regions_are_spread_first() -> None:
    b = RingBuilder(10, 3, 1)
    add_devices(b, zones=3, servers=1, disks=2, weight=100, region=1)
    add_devices(b, zones=3, servers=1, disks=2, weight=100, region=2)
    b.rebalance(seed=1)
    report = b.dispersion_report()
    regions = [t for t in report["tiers"] if t["level"] == 0]
    assert len(regions) == 2
    assert all(t["replicas"][3] == 0 and t["replicas"][0] == 0 for t in regions)
    assert b.dispersion == 0.0


def test_unbalanceable_zone_weights_use_overload() -> None:
    b = RingBuilder(10, 3, 1)
    for z, w in ((1, 100), (2, 100), (3, 50)):
        for d in range(2):
            b.add_dev(region=1, zone=z, ip=f"127.0.{z}.1", port=6200, device=f"d{d}", weight=w)
    # without overload, weight wins (like Swift): some partitions get two replicas in a zone
    b.rebalance(seed=1)
    b.validate()
    assert b.dispersion > 0
    assert b.get_balance() < 1.0
    required = b.get_required_overload()
    assert required == pytest.approx(2 / 3)
    # with enough overload, dispersion wins: one replica per zone
    b.set_overload(required)
    b.pretend_min_part_hours_passed()
    b.rebalance(seed=2)
    b.validate()
    assert b.dispersion == 0.0
    assert_distinct_zones(b)


def test_balance_reports_max_for_zero_weight_device_holding_parts() -> None:
    b = make_builder(part_power=8)
    b.rebalance(seed=1)
    b.set_dev_weight(0, 0)
    assert b.balance_per_dev()[0] == MAX_BALANCE
    assert b.get_balance() == MAX_BALANCE


def test_validate_catches_corruption() -> None:
    b = make_builder(part_power=6)
    with pytest.raises(RingValidationError, match="rebalance"):
        b.validate()
    b.rebalance(seed=1)
    b.table[1, 5] = b.table[0, 5]
    with pytest.raises(RingValidationError, match="two replicas"):
        b.validate()
    b.table[1, 5] = -1
    with pytest.raises(RingValidationError, match="not assigned"):
        b.validate()


def test_validate_stats() -> None:
    b = make_builder(part_power=8)
    b.rebalance(seed=1)
    usage, worst = b.validate(stats=True)
    assert usage is not None and usage.sum() == 768
    assert worst == pytest.approx(b.get_balance())


def test_search_and_list_parts() -> None:
    b = make_builder(part_power=8)
    assert len(b.search_devs({"zone": 1})) == 4
    assert [d.id for d in b.search_devs(parse_search_value("d3"))] == [3]
    assert b.search_devs({"ip": "127.1.1.0", "device": "sda"})[0].zone == 1
    b.rebalance(seed=1)
    parts = b.list_parts([0, 1])
    assert sum(n for _p, n in parts) == int(b.dev_parts()[[0, 1]].sum())
    assert parts == sorted(parts, key=lambda pn: (-pn[1], pn[0]))


def test_set_dev_info() -> None:
    b = make_builder(part_power=6)
    new = b.set_dev_info(0, {"ip": "127.9.9.9", "port": 7000, "meta": "moved"})
    assert (new.ip, new.port, new.meta) == ("127.9.9.9", 7000, "moved")
    with pytest.raises(DeviceError, match="already uses"):
        b.set_dev_info(1, {"ip": "127.9.9.9", "port": 7000, "device": new.device})


def test_get_ring_round_trips_through_ring_file(tmp_path) -> None:
    b = make_builder(part_power=8)
    with pytest.raises(RingBuilderError):
        b.get_ring()
    b.rebalance(seed=1)
    ring = b.get_ring()
    assert ring.replica2part2dev[0].dtype == np.uint8
    path = tmp_path / "object.ring"
    write_ring_file(path, ring)
    loaded = load_ring_file(path)
    assert loaded.part_power == 8 and loaded.replicas == 3.0
    for row, orig in zip(loaded.replica2part2dev, b.table, strict=True):
        assert (row == orig).all()
    assert loaded.devs[0]["ip"] == b.devs[0].ip
    assert set(loaded.devs[0]) == {"id", "region", "zone", "ip", "port", "device", "weight",
                                   "meta", "replication_ip", "replication_port"}


# ------------------------------------------------------------- persistence


def test_builder_file_round_trip(tmp_path) -> None:
    b = make_builder(part_power=8, replicas=2.5)
    b.rebalance(seed=1)
    b.remove_dev(3)
    b.set_overload(0.1)
    path = tmp_path / "object.builder"
    save_builder(b, path)
    c = load_builder(path)
    assert (c.part_power, c.replicas, c.min_part_hours, c.overload) == (8, 2.5, 1, 0.1)
    assert c.devs == b.devs and c.remove_devs == [3] and c.id == b.id
    assert (c.table == b.table).all()
    assert (c.last_part_moves == b.last_part_moves).all()
    assert c.version == b.version and c.devs_changed
    c.rebalance(seed=2)
    c.validate()


def test_builder_file_never_rebalanced(tmp_path) -> None:
    b = RingBuilder(4, 3, 0)
    save_builder(b, tmp_path / "b.builder")
    c = load_builder(tmp_path / "b.builder")
    assert c.table is None and c.devs == []


def test_builder_file_missing_truncated_tampered(tmp_path) -> None:
    path = tmp_path / "x.builder"
    with pytest.raises(RingBuilderError, match="does not exist"):
        load_builder(path)
    b = make_builder(part_power=6)
    b.rebalance(seed=1)
    save_builder(b, path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-40])
    with pytest.raises(RingBuilderError, match="corrupt"):
        load_builder(path)
    tampered = bytearray(raw)
    tampered[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(tampered))
    with pytest.raises(RingBuilderError, match="corrupt"):
        load_builder(path)
    path.write_bytes(b"\x80\x02}q\x00.")  # a pickle
    with pytest.raises(RingBuilderError, match="not a nubis builder"):
        load_builder(path)


def test_builder_file_with_valid_checksum_but_bad_content(tmp_path) -> None:
    import hashlib
    import struct
    header = json.dumps({"part_power": 4}).encode()
    body = struct.pack("<8sII", b"NUBISBLD", 1, len(header)) + header
    path = tmp_path / "bad.builder"
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(RingBuilderError, match="malformed"):
        load_builder(path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path) -> None:
    b = make_builder(part_power=6)
    save_builder(b, tmp_path / "a.builder")
    save_builder(b, tmp_path / "a.builder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.builder"]
    with pytest.raises(RingBuilderError, match="cannot write"):
        save_builder(b, tmp_path / "missing-dir" / "a.builder")


def test_part_power_32_builder_is_cheap_until_rebalanced(tmp_path) -> None:
    b = RingBuilder(32, 3, 1)
    b.add_dev(region=1, zone=1, ip="127.0.0.1", port=6200, device="a", weight=1)
    save_builder(b, tmp_path / "big.builder")
    assert (tmp_path / "big.builder").stat().st_size < 10_000
    assert load_builder(tmp_path / "big.builder").part_power == 32


def test_rebalance_reports_progress() -> None:
    b = make_builder(part_power=8)
    seen: list[str] = []
    b.rebalance(seed=1, progress=seen.append)
    assert seen and "initial assignment" in seen[0]
    b.pretend_min_part_hours_passed()
    add_devices(b, zones=1, servers=1, disks=1, weight=100, ip_base=9)
    seen.clear()
    b.rebalance(seed=2, progress=seen.append)
    assert any("placed" in s for s in seen)


def test_removing_a_whole_zone_keeps_remaining_zones_distinct() -> None:
    b = make_builder(part_power=10, zones=5)
    b.rebalance(seed=1)
    for dev in b.search_devs({"zone": 5}):
        b.remove_dev(dev.id)
    result = b.rebalance(seed=2)
    assert result.removed == 4
    b.validate()
    assert_distinct_zones(b)
    assert result.dispersion == 0.0
    assert all(d.zone != 5 for d in b.iter_devs())


def test_rebalance_refuses_what_memory_cannot_hold() -> None:
    b = RingBuilder(32, 3, 1)
    add_devices(b, zones=3, servers=1, disks=1, weight=1)
    with pytest.raises(RingBuilderError, match="GiB of memory"):
        b.rebalance()
