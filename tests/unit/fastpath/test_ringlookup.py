"""Ring lookup kernels: compiled and pure twins against each other and a Swift-style reference."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nubis.fastpath import _hashpath_py as hashref
from nubis.fastpath import _ringlookup_py as ref
from nubis.fastpath import ringlookup

Kernels = Callable[[str], ModuleType]
SEED = hashref.cluster_seed(b"pre", b"suf")
DTYPES = [np.uint8, np.uint16, np.uint32]


@dataclass
class Topo:
    """A synthetic ring: table, row lengths, per-device tier keys (None = removed)."""

    table: npt.NDArray[Any]
    lengths: npt.NDArray[np.int64]
    keys: list[tuple[Any, ...] | None]  # (region, zone, ip, port) per device

    @property
    def tiers(self) -> npt.NDArray[np.int32]:
        out = np.full((3, len(self.keys)), -1, dtype=np.int32)
        ids: list[dict[tuple[Any, ...], int]] = [{}, {}, {}]
        for d, k in enumerate(self.keys):
            if k is None:
                continue
            for lv, key in enumerate((k[:1], k[:2], k)):
                out[lv, d] = ids[lv].setdefault(key, len(ids[lv]))
        return out


def make_topo(part_power: int, replicas: float, regions: int, zones: int, servers: int,
              per_server: int, seed: int, removed: int = 0, dtype: Any = np.uint16) -> Topo:
    """Build a random ring whose partitions prefer distinct regions/zones."""
    rng = np.random.default_rng(seed)
    keys: list[tuple[Any, ...] | None] = []
    for r in range(regions):
        for z in range(zones):
            for s in range(servers):
                keys.extend([(r, z, f"127.{r}.{z}.{s}", 6200)] * per_server)
    ndev = len(keys)
    parts = 1 << part_power
    whole = int(replicas)
    lengths = [parts] * whole
    if replicas - whole > 1e-9:
        lengths.append(round((replicas - whole) * parts))
    table = np.zeros((len(lengths), parts), dtype=dtype)
    for r, n in enumerate(lengths):
        table[r, :n] = rng.integers(0, ndev, size=n)
    for d in rng.choice(ndev, size=min(removed, ndev - 1), replace=False):
        keys[int(d)] = None
    return Topo(table, np.array(lengths, dtype=np.int64), keys)


def reference_handoffs(topo: Topo, primaries: list[int], start: int, stride: int) -> list[int]:
    """Swift's get_more_nodes loops, written plainly over tier tuples."""
    table, lengths, keys = topo.table, topo.lengths, topo.keys
    parts = table.shape[1]
    walk = [(start + k * stride) % parts for k in range(-(-parts // stride))]

    def tier(d: int, lv: int) -> tuple[Any, ...]:
        key = keys[d]
        assert key is not None
        return key[: lv + 1] if lv < 2 else key

    assigned = {int(d) for r in range(len(lengths)) for d in table[r, : lengths[r]]
                if keys[int(d)] is not None}
    used = set(primaries)
    seen = [{tier(d, lv) for d in primaries} for lv in range(3)]
    out: list[int] = []
    for lv in range(4):
        total = len({tier(d, lv) for d in assigned}) if lv < 3 else len(assigned)
        done = (len(seen[lv]) if lv < 3 else len(used)) == total
        for p in walk:
            if done:
                break
            for r in range(len(lengths)):
                if p >= lengths[r]:
                    continue
                d = int(table[r, p])
                if keys[d] is None or d in used or (lv < 3 and tier(d, lv) in seen[lv]):
                    continue
                out.append(d)
                used.add(d)
                for level in range(3):
                    seen[level].add(tier(d, level))
                if (len(seen[lv]) if lv < 3 else len(used)) == total:
                    done = True
                    break
    return out


def primaries_of(topo: Topo, part: int) -> list[int]:
    out: list[int] = []
    for r in range(len(topo.lengths)):
        if part < topo.lengths[r]:
            d = int(topo.table[r, part])
            if d not in out and topo.keys[d] is not None:
                out.append(d)
    return out


def table_of(k: ModuleType, topo: Topo) -> Any:
    return k.RingTable(topo.table, topo.lengths, topo.tiers)


def handoffs(k: ModuleType, topo: Topo, part: int) -> list[int]:
    return [int(x) for x in table_of(k, topo).handoffs(part)]


# ------------------------------------------------------------------ tests


def test_compiled_ringlookup_loaded() -> None:
    expected = "python" if os.environ.get("NUBIS_NO_EXTENSIONS") else "cython"
    assert expected == ringlookup.IMPLEMENTATION


@pytest.mark.parametrize("dtype", DTYPES)
def test_primary_devs_matches_table(kernels: Kernels, dtype: Any) -> None:
    k = kernels("ringlookup")
    topo = make_topo(6, 2.5, 1, 3, 2, 2, seed=1, dtype=dtype)
    parts = np.arange(64, dtype=np.uint32)
    out = table_of(k, topo).primary_devs(parts)
    assert out.shape == (64, 3) and out.dtype == np.int32
    for p in range(64):
        for r in range(3):
            want = int(topo.table[r, p]) if p < topo.lengths[r] else -1
            assert out[p, r] == want


def test_primary_devs_rejects_out_of_range_part(kernels: Kernels) -> None:
    topo = make_topo(3, 3, 1, 3, 1, 1, seed=2)
    with pytest.raises(IndexError):
        table_of(kernels("ringlookup"), topo).primary_devs(np.array([8]))
    with pytest.raises(IndexError):
        table_of(kernels("ringlookup"), topo).primaries(8)
    with pytest.raises(IndexError):
        table_of(kernels("ringlookup"), topo).handoffs(-1)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.binary(max_size=64), max_size=200),
       part_power=st.integers(0, 12), replicas=st.sampled_from([1.0, 2.0, 2.5, 3.0, 3.25]))
def test_batch_nodes_agree(names: list[bytes], part_power: int, replicas: float) -> None:
    compiled = importlib.import_module("nubis.fastpath._ringlookup_c")
    topo = make_topo(part_power, replicas, 1, 4, 1, 2, seed=part_power)
    p1, d1 = table_of(ref, topo).batch_nodes(SEED, names)
    p2, d2 = table_of(compiled, topo).batch_nodes(SEED, names)
    assert p1.dtype == p2.dtype == np.uint32
    assert np.array_equal(p1, p2)
    assert np.array_equal(d1, d2)
    assert np.array_equal(p1, hashref.batch_partitions(SEED, names, part_power))
    assert np.array_equal(d1, table_of(ref, topo).primary_devs(p1))


def test_batch_nodes_checks_input(kernels: Kernels) -> None:
    k = kernels("ringlookup")
    topo = make_topo(4, 3, 1, 3, 1, 1, seed=3)
    parts, devs = table_of(k, topo).batch_nodes(SEED, [])
    assert parts.shape == (0,) and devs.shape == (0, 3)
    with pytest.raises(TypeError):
        table_of(k, topo).batch_nodes(SEED, ["not-bytes"])


@pytest.mark.parametrize(("table", "lengths", "tiers", "error"), [
    (np.zeros((3, 6), np.uint8), [6, 6, 6], np.zeros((3, 1)), ValueError),  # not 2**n
    (np.zeros((3, 8), np.int64), [8, 8, 8], np.zeros((3, 1)), TypeError),
    (np.zeros((3, 8), np.uint8), [8, 8], np.zeros((3, 1)), ValueError),
    (np.zeros((3, 8), np.uint8), [8, 8, 9], np.zeros((3, 1)), ValueError),
    (np.full((3, 8), 4, np.uint8), [8, 8, 8], np.zeros((3, 2)), ValueError),
    (np.zeros((3, 8), np.uint8), [8, 8, 8], np.zeros((2, 1)), ValueError),
])
def test_ring_table_rejects_bad_shapes(kernels: Kernels, table: Any, lengths: Any, tiers: Any,
                                       error: type[Exception]) -> None:
    with pytest.raises(error):
        kernels("ringlookup").RingTable(table, lengths, tiers)


def test_handoff_walk_is_deterministic_and_in_range(kernels: Kernels) -> None:
    k = kernels("ringlookup")
    for power in (0, 1, 8, 16, 18, 24):
        for part in (0, 1, (1 << power) - 1):
            start, stride = k.handoff_walk(part, power)
            assert 0 <= start < (1 << power)
            assert stride == max((1 << power) // 65536, 1)
            assert (start, stride) == k.handoff_walk(part, power)


@settings(max_examples=60, deadline=None)
@given(part_power=st.integers(0, 9), replicas=st.sampled_from([1.0, 2.0, 2.5, 3.0, 4.0]),
       regions=st.integers(1, 3), zones=st.integers(1, 4), servers=st.integers(1, 3),
       per_server=st.integers(1, 3), removed=st.integers(0, 3), seed=st.integers(0, 99),
       part_seed=st.integers(0, 2**32))
def test_handoffs_match_swift_reference(part_power: int, replicas: float, regions: int,
                                        zones: int, servers: int, per_server: int,
                                        removed: int, seed: int, part_seed: int) -> None:
    compiled = importlib.import_module("nubis.fastpath._ringlookup_c")
    topo = make_topo(part_power, replicas, regions, zones, servers, per_server, seed, removed)
    part = part_seed % (1 << part_power)
    start, stride = ref.handoff_walk(part, part_power)
    want = reference_handoffs(topo, primaries_of(topo, part), start, stride)
    assert handoffs(ref, topo, part) == want
    assert handoffs(compiled, topo, part) == want
    assert table_of(ref, topo).primaries(part) == table_of(compiled, topo).primaries(part)
    nodes = [[{"dev": d, "index": i} for i in range(len(topo.lengths))]
             for d in range(len(topo.keys))]
    for k in (ref, compiled):
        got = table_of(k, topo).primary_nodes(part, nodes)
        assert got == [{"dev": d, "index": i}
                       for i, d in enumerate(primaries_of(topo, part))]
        assert all(g is not nodes[g["dev"]][g["index"]] for g in got)  # copies


@pytest.mark.parametrize("dtype", DTYPES)
def test_handoffs_cover_every_assigned_device_once(kernels: Kernels, dtype: Any) -> None:
    k = kernels("ringlookup")
    topo = make_topo(8, 3, 2, 3, 2, 2, seed=5, removed=2, dtype=dtype)
    tiers = topo.tiers
    counts = k.tier_counts(topo.table, topo.lengths, tiers)
    live = {d for d, key in enumerate(topo.keys) if key is not None}
    assert counts[3] == len(live)  # every live device holds something in this ring
    for part in range(0, 256, 17):
        prim = primaries_of(topo, part)
        got = handoffs(k, topo, part)
        assert len(got) == len(set(got))
        assert set(got) | set(prim) == live and not set(got) & set(prim)


def test_handoffs_with_stride_walk_a_subset(kernels: Kernels) -> None:
    """At part_power 17 the walk has stride 2 and visits 65536 partitions."""
    k = kernels("ringlookup")
    topo = make_topo(17, 3, 1, 5, 2, 2, seed=9)
    for part in (0, 12345, (1 << 17) - 1):
        start, stride = k.handoff_walk(part, 17)
        assert stride == 2
        want = reference_handoffs(topo, primaries_of(topo, part), start, stride)
        assert handoffs(k, topo, part) == want


def test_tier_counts_only_count_assigned_devices(kernels: Kernels) -> None:
    k = kernels("ringlookup")
    topo = make_topo(4, 1, 2, 2, 1, 1, seed=0)
    topo.table[:] = 0  # only device 0 (region 0, zone 0) holds partitions
    counts = k.tier_counts(topo.table, topo.lengths, topo.tiers)
    assert counts.tolist() == [1, 1, 1, 1]
    assert handoffs(k, topo, 3) == []
    assert table_of(k, topo).n_assigned == 1
