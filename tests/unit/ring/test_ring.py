"""Ring lookups: names to partitions to devices, handoffs, batch calls, reloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nubis.fastpath import hashpath
from nubis.ring import Ring, RingData, write_ring_file
from nubis.ring.errors import RingError, RingFileError
from nubis.ring.ring import build_path
from nubis.ring.ringdata import expected_row_lengths

from tests.unit.fastpath.test_ringlookup import Topo, reference_handoffs

PREFIX, SUFFIX = b"pre", b"suf"
SEED = hashpath.cluster_seed(PREFIX, SUFFIX)


def devices(regions: int, zones: int, servers: int, per_server: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in range(1, regions + 1):
        for z in range(1, zones + 1):
            for s in range(servers):
                for d in range(per_server):
                    ip = f"127.{r}.{z}.{s}"
                    out.append({"id": len(out), "region": r, "zone": z, "ip": ip,
                                "port": 6200, "device": f"sd{d}", "weight": 1.0, "meta": "",
                                "replication_ip": ip, "replication_port": 6200})
    return out


def dispersed_rows(devs: list[dict[str, Any] | None], part_power: int, replicas: float,
                   seed: int = 0) -> list[np.ndarray[Any, Any]]:
    """Give every partition devices in distinct zones (a well-dispersed ring)."""
    rng = np.random.default_rng(seed)
    by_zone: dict[tuple[int, int], list[int]] = {}
    for d in devs:
        if d is not None:
            by_zone.setdefault((d["region"], d["zone"]), []).append(d["id"])
    zones = list(by_zone)
    lengths = expected_row_lengths(part_power, replicas)
    rows = [np.zeros(n, dtype=np.uint16) for n in lengths]
    for p in range(1 << part_power):
        picks = rng.permutation(len(zones))
        for r, n in enumerate(lengths):
            if p < n:
                zone = zones[int(picks[r % len(zones)])]
                rows[r][p] = by_zone[zone][int(rng.integers(len(by_zone[zone])))]
    return rows


def write_ring(path: Path, part_power: int = 8, replicas: float = 3.0, topology: tuple[int, ...]
               = (2, 3, 2, 2), version: int = 1, removed: tuple[int, ...] = ()) -> RingData:
    devs: list[dict[str, Any] | None] = list(devices(*topology))
    rows = dispersed_rows(devs, part_power, replicas)
    for i in removed:
        devs[i] = None
    data = RingData(part_power, replicas, rows, devs, version)
    write_ring_file(path, data)
    return data


@pytest.fixture
def ring(tmp_path: Path) -> Ring:
    write_ring(tmp_path / "object.ring")
    return Ring(tmp_path / "object.ring", PREFIX, SUFFIX)


# ----------------------------------------------------------------- names


@pytest.mark.parametrize(("args", "path"), [
    (("a",), b"/a"),
    (("a", "c"), b"/a/c"),
    (("a", "c", "o"), b"/a/c/o"),
    (("AUTH_t", "c", "dir/sub/o"), b"/AUTH_t/c/dir/sub/o"),
    (("\u00e9", "c\u2603", "o"), "/\u00e9/c\u2603/o".encode()),
    ((b"a", b"c", b"o\xff"), b"/a/c/o\xff"),
])
def test_get_nodes_hashes_the_right_path(ring: Ring, args: tuple[Any, ...], path: bytes) -> None:
    want = hashpath.partition(SEED, path, 8)
    assert build_path(*args) == path
    assert ring.get_part(*args) == want
    part, nodes = ring.get_nodes(*args)
    assert part == want
    assert nodes == ring.get_part_nodes(want)


def test_object_needs_container(ring: Ring) -> None:
    with pytest.raises(ValueError):
        ring.get_nodes("a", None, "o")


def test_prefix_and_suffix_change_placement(tmp_path: Path) -> None:
    write_ring(tmp_path / "r.ring", part_power=16)
    a = Ring(tmp_path / "r.ring", b"x", b"y")
    b = Ring(tmp_path / "r.ring", b"x", b"z")
    c = Ring(tmp_path / "r.ring", seed=hashpath.cluster_seed(b"x", b"y"))
    names = [f"o{i}" for i in range(50)]
    assert [a.get_part("a", "c", n) for n in names] != [b.get_part("a", "c", n) for n in names]
    assert [a.get_part("a", "c", n) for n in names] == [c.get_part("a", "c", n) for n in names]


def test_properties(tmp_path: Path) -> None:
    data = write_ring(tmp_path / "r.ring", part_power=5, replicas=2.5, version=9)
    ring = Ring(tmp_path / "r.ring")
    assert ring.part_power == 5 and ring.partition_count == 32
    assert ring.replica_count == 2.5 and ring.version == 9
    assert ring.devs == data.devs and ring.device_count == 24


# ------------------------------------------------------------- primaries


def test_part_nodes_follow_the_table(tmp_path: Path) -> None:
    data = write_ring(tmp_path / "r.ring", part_power=4, replicas=2.5)
    ring = Ring(tmp_path / "r.ring")
    for part in range(16):
        ids = [int(row[part]) for row in data.replica2part2dev if part < len(row)]
        nodes = ring.get_part_nodes(part)
        assert [n["id"] for n in nodes] == ids
        assert [n["index"] for n in nodes] == list(range(len(ids)))
        assert all(n["ip"] == data.devs[n["id"]]["ip"] for n in nodes)  # type: ignore[index]


def test_duplicate_and_removed_devices_are_skipped(tmp_path: Path) -> None:
    devs: list[dict[str, Any] | None] = list(devices(1, 3, 1, 1))
    rows = [np.array([0, 1], np.uint8), np.array([0, 2], np.uint8), np.array([1, 1], np.uint8)]
    devs[2] = None
    write_ring_file(tmp_path / "r.ring", RingData(1, 3.0, rows, devs, 1))
    ring = Ring(tmp_path / "r.ring")
    assert [n["id"] for n in ring.get_part_nodes(0)] == [0, 1]
    assert [(n["id"], n["index"]) for n in ring.get_part_nodes(1)] == [(1, 0)]
    assert [n["id"] for n in ring.get_more_nodes(1)] == [0]


def test_part_out_of_range(ring: Ring) -> None:
    with pytest.raises(RingError):
        ring.get_part_nodes(256)
    with pytest.raises(RingError):
        list(ring.get_more_nodes(-1))
    with pytest.raises(RingError):
        ring.get_primary_dev_ids([0, 256])


# -------------------------------------------------------------- handoffs


def _tier_novelty(dev: dict[str, Any], seen: list[set[Any]]) -> int:
    """0 = new region, 1 = new zone, 2 = new server, 3 = nothing new."""
    keys = [(dev["region"],), (dev["region"], dev["zone"]),
            (dev["region"], dev["zone"], dev["ip"], dev["port"])]
    level = next((lv for lv, key in enumerate(keys) if key not in seen[lv]), 3)
    for lv, key in enumerate(keys):
        seen[lv].add(key)
    return level


@pytest.mark.parametrize("part", [0, 1, 77, 255])
def test_more_nodes_order_and_coverage(ring: Ring, part: int) -> None:
    primaries = ring.get_part_nodes(part)
    more = list(ring.get_more_nodes(part))
    ids = [d["id"] for d in more]
    assert len(ids) == len(set(ids))
    assert set(ids) == {d["id"] for d in ring.devs if d} - {d["id"] for d in primaries}
    assert [d["handoff_index"] for d in more] == list(range(len(more)))
    seen: list[set[Any]] = [set(), set(), set()]
    for d in primaries:
        _tier_novelty(d, seen)
    novelty = [_tier_novelty(d, seen) for d in more]
    assert novelty == sorted(novelty)  # new regions, then zones, then servers, then the rest
    if len({d["region"] for d in primaries}) == 1:
        assert novelty[0] == 0  # the untouched region comes first
    assert novelty.count(0) == 2 - len({d["region"] for d in primaries})
    zones_left = 6 - len({(d["region"], d["zone"]) for d in primaries})
    assert novelty.count(0) + novelty.count(1) == zones_left  # each new region brings a zone


def test_more_nodes_match_swift_reference(tmp_path: Path) -> None:
    data = write_ring(tmp_path / "r.ring", part_power=10, replicas=2.5, removed=(3, 17))
    ring = Ring(tmp_path / "r.ring")
    parts = len(data.replica2part2dev[0])
    table = np.zeros((3, parts), np.uint16)
    for r, row in enumerate(data.replica2part2dev):
        table[r, : len(row)] = row
    keys = [None if d is None else (d["region"], d["zone"], d["ip"], d["port"])
            for d in data.devs]
    topo = Topo(table, np.array([len(r) for r in data.replica2part2dev]), keys)
    for part in range(0, parts, 61):
        start, stride = hashpath_walk(part)
        prim = [d["id"] for d in ring.get_part_nodes(part)]
        assert [d["id"] for d in ring.get_more_nodes(part)] == reference_handoffs(
            topo, prim, start, stride)


def hashpath_walk(part: int) -> tuple[int, int]:
    from nubis.fastpath.ringlookup import handoff_walk

    return handoff_walk(part, 10)  # type: ignore[no-any-return]


def test_more_nodes_never_yield_removed_devices(tmp_path: Path) -> None:
    write_ring(tmp_path / "r.ring", removed=(0, 5, 9))
    ring = Ring(tmp_path / "r.ring")
    for part in range(0, 256, 31):
        more = [d["id"] for d in ring.get_more_nodes(part)]
        assert not {0, 5, 9} & set(more)
        assert all(n["id"] not in (0, 5, 9) for n in ring.get_part_nodes(part))


def test_more_nodes_is_lazy_and_stable(ring: Ring) -> None:
    gen = ring.get_more_nodes(3)
    first = next(gen)
    assert first == next(ring.get_more_nodes(3))
    assert [d["id"] for d in ring.get_more_nodes(3)] == [d["id"] for d in ring.get_more_nodes(3)]


# ----------------------------------------------------------- batch calls


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(max_size=40).map(lambda s: "/a/c/" + s), max_size=100))
def test_batch_calls_agree_with_single_lookups(ring: Ring, names: list[str]) -> None:
    parts = ring.get_partitions(names)
    assert parts.dtype == np.uint32
    singles = [ring.get_part("a", "c", n[5:]) for n in names]
    assert parts.tolist() == singles
    assert np.array_equal(ring.get_partitions([n.encode() for n in names]), parts)
    bparts, devs = ring.get_batch_nodes(names)
    assert np.array_equal(bparts, parts)
    assert np.array_equal(devs, ring.get_primary_dev_ids(parts))
    for p, row in zip(singles, devs.tolist(), strict=True):
        assert [d["id"] for d in ring.get_part_nodes(p)] == [d for d in row if d >= 0]


def test_primary_dev_ids_fractional_rows(tmp_path: Path) -> None:
    write_ring(tmp_path / "r.ring", part_power=3, replicas=2.5)
    ids = Ring(tmp_path / "r.ring").get_primary_dev_ids(np.arange(8))
    assert ids.shape == (8, 3)
    assert (ids[:4, 2] >= 0).all() and (ids[4:, 2] == -1).all()


# --------------------------------------------------------------- reloads


def _bump_mtime(path: Path) -> None:
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10_000_000))


def test_reloads_when_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    write_ring(path, version=1)
    ring = Ring(path, reload_time=0)
    write_ring(path, version=2, part_power=5)
    _bump_mtime(path)
    assert ring.version == 2 and ring.part_power == 5


def test_reload_check_is_rate_limited(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    write_ring(path, version=1)
    ring = Ring(path, reload_time=3600)
    write_ring(path, version=2)
    _bump_mtime(path)
    assert ring.has_changed()
    assert ring.version == 1  # not checked again yet
    ring.reload()
    assert ring.version == 2


def test_bad_new_file_keeps_the_old_ring(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    write_ring(path, version=1)
    ring = Ring(path, reload_time=0)
    path.write_bytes(b"garbage")
    _bump_mtime(path)
    assert ring.version == 1
    assert isinstance(ring.reload_error, RingFileError)
    write_ring(path, version=3)
    _bump_mtime(path)
    assert ring.version == 3 and ring.reload_error is None
    with pytest.raises(RingFileError):
        path.write_bytes(b"garbage")
        ring.reload()  # an explicit reload reports the problem


def test_bad_ring_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "r.ring"
    write_ring(path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(raw)
    with pytest.raises(RingFileError, match="checksum"):
        Ring(path)
    with pytest.raises(RingFileError, match="cannot read"):
        Ring(tmp_path / "missing.ring")


def test_part_power_zero(tmp_path: Path) -> None:
    write_ring(tmp_path / "r.ring", part_power=0, replicas=3)
    ring = Ring(tmp_path / "r.ring")
    part, nodes = ring.get_nodes("a", "c", "o")
    assert part == 0 and len(nodes) == 3
    assert ring.get_partitions(["/a", "/b"]).tolist() == [0, 0]
    # Like Swift, handoffs come only from devices that hold some partition.
    assert list(ring.get_more_nodes(0)) == []


def test_ring_written_by_the_builder(tmp_path: Path) -> None:
    from nubis.ring import RingBuilder

    builder = RingBuilder(10, 3, 1)
    for r in (1, 2):
        for z in (1, 2, 3):
            for s in (1, 2):
                for d in (1, 2):
                    builder.add_dev(region=r, zone=z, ip=f"127.{r}.{z}.{s}", port=6200,
                                    device=f"sd{d}", weight=100.0)
    builder.rebalance(seed=3)
    data = builder.get_ring()
    write_ring_file(tmp_path / "object.ring", data)
    ring = Ring(tmp_path / "object.ring", PREFIX, SUFFIX)
    assert ring.partition_count == 1024 and ring.replica_count == 3
    for part in range(0, 1024, 97):
        primaries = ring.get_part_nodes(part)
        assert [n["id"] for n in primaries] == [int(r[part]) for r in data.replica2part2dev]
        seen: list[set[Any]] = [set(), set(), set()]
        for d in primaries:
            _tier_novelty(d, seen)
        more = list(ring.get_more_nodes(part))
        novelty = [_tier_novelty(d, seen) for d in more]
        assert novelty == sorted(novelty)
        assert len(more) + len(primaries) == 24
