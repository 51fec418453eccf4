"""Ring lookup kernels, pure-Python (numpy) twin of ``_ringlookup_c.pyx``.

:class:`RingTable` wraps a ring's assignment table once per ring load:
``table[replica, part] -> dev id`` (uint8/16/32, C-contiguous, ``2**n``
columns) plus ``lengths[replica]`` (a fractional replica's row is shorter;
entries at ``part >= lengths[r]`` are padding to ignore) and the device tiers,
dense integer ids per device: ``tiers[0]`` region, ``tiers[1]`` zone (region,
zone), ``tiers[2]`` server (region, zone, ip, port); ``-1`` marks a removed
device, which every lookup skips.

Handoffs follow Swift's ``Ring.get_more_nodes``: walk the partitions from a
pseudo-random start with a stride (covering at most :data:`WALK_SPAN`
partitions), reading every replica's device at each step, and take first
devices in regions not used yet, then in new zones, then on new servers, then
any unused device. Only devices that hold some partition count, like Swift's
bookkeeping, so each phase stops as soon as nothing new can be found. This twin
yields lazily (like Swift's generator); the compiled kernel returns the whole
list, which costs it less than one Python-level step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash

#: The handoff walk visits at most this many partitions (Swift: 65536).
WALK_SPAN = 65536
#: Number of tier levels before the plain device phase (region, zone, server).
TIER_LEVELS = 3

IntArray = npt.NDArray[np.int32]
TableArray = npt.NDArray[Any]


def handoff_walk(part: int, part_power: int) -> tuple[int, int]:
    """Return ``(start, stride)`` of the handoff walk for ``part``.

    The start is pseudo-random per partition (unseeded xxh3 of the partition
    number as 8 little-endian bytes, top ``part_power`` bits); the stride makes the walk span
    :data:`WALK_SPAN` partitions at most, like Swift's md5-based start and
    ``parts // 65536``.
    """
    if part_power == 0:
        return 0, 1
    start = xxhash.xxh3_64_intdigest(part.to_bytes(8, "little")) >> (64 - part_power)
    return int(start), max((1 << part_power) // WALK_SPAN, 1)


def tier_counts(table: TableArray, lengths: npt.NDArray[np.int64],
                tiers: IntArray) -> npt.NDArray[np.int64]:
    """Count distinct regions, zones, servers and devices among assigned live devices."""
    ndev = tiers.shape[1]
    assigned = np.zeros(ndev, dtype=np.bool_)
    for r in range(table.shape[0]):
        row = table[r, : int(lengths[r])]
        assigned |= np.bincount(row, minlength=ndev)[:ndev] > 0
    assigned &= tiers[0] >= 0
    counts = [len(np.unique(tiers[lv][assigned])) for lv in range(TIER_LEVELS)]
    return np.array([*counts, int(assigned.sum())], dtype=np.int64)


class RingTable:
    """A ring's assignment table and device tiers, ready for lookups.

    Args:
        table: ``(replicas, 2**part_power)`` device ids, C-contiguous.
        lengths: Valid length of each replica row.
        tiers: ``(3, n_devs)`` dense region/zone/server ids, ``-1`` = removed.
    """

    def __init__(self, table: TableArray, lengths: npt.ArrayLike, tiers: npt.ArrayLike) -> None:
        self.table, self.lengths, self.tiers = _checked(table, lengths, tiers)
        self.part_power = self.table.shape[1].bit_length() - 1
        self.counts = tier_counts(self.table, self.lengths, self.tiers)
        # PERF: memoryview rows index to Python ints quickly (bench: ring_lookup).
        self._rows = [self.table[r, : int(n)].data for r, n in enumerate(self.lengths)]
        self._live = (self.tiers[0] >= 0).tolist()
        self._tier_lists = [self.tiers[lv].tolist() for lv in range(TIER_LEVELS)]

    @property
    def n_assigned(self) -> int:
        """Return the number of live devices holding at least one partition."""
        return int(self.counts[TIER_LEVELS])

    def primaries(self, part: int) -> list[int]:
        """Return the distinct live primary device ids of ``part``, in replica order."""
        if not 0 <= part < self.table.shape[1]:
            raise IndexError(f"partition {part} out of range")
        out: list[int] = []
        live = self._live
        for row in self._rows:
            if part < len(row):
                dev = row[part]
                if live[dev] and dev not in out:
                    out.append(dev)
        return out

    def primary_nodes(self, part: int, nodes: Sequence[Sequence[Any]]) -> list[Any]:
        """Return ``nodes[dev][index].copy()`` for each distinct live primary of ``part``.

        ``nodes[dev][i]`` is the caller's prepared node dict for device ``dev``
        at primary index ``i``.
        """
        return [nodes[d][i].copy() for i, d in enumerate(self.primaries(part))]

    def primary_devs(self, parts: npt.ArrayLike) -> IntArray:
        """Return the ``(len(parts), replicas)`` int32 matrix of device ids (``-1`` = none)."""
        p = np.asarray(parts, dtype=np.int64)
        if p.size and (p.min() < 0 or p.max() >= self.table.shape[1]):
            raise IndexError("partition out of range")
        out = self.table[:, p].T.astype(np.int32)
        out[p[:, None] >= self.lengths[None, :]] = -1
        return out

    def batch_nodes(self, seed: int, paths: Sequence[bytes],
                    ) -> tuple[npt.NDArray[np.uint32], IntArray]:
        """Hash many paths and look up their primaries: ``(parts, dev id matrix)``."""
        out = np.zeros(len(paths), dtype=np.uint32)
        if self.part_power:
            shift = 64 - self.part_power
            digest = xxhash.xxh3_64_intdigest
            for i, p in enumerate(paths):
                if not isinstance(p, bytes):
                    raise TypeError("paths must be bytes")
                out[i] = digest(p, seed=seed) >> shift
        return out, self.primary_devs(out)

    def handoffs(self, part: int) -> Iterator[int]:
        """Return every handoff device id for ``part``, in Swift's order (lazily)."""
        prim = self.primaries(part)  # validates part now, not at the first next()
        return self._handoffs(part, prim)

    def _handoffs(self, part: int, prim: list[int]) -> Iterator[int]:
        """Yield the handoffs phase by phase, like Swift's generator."""
        tiers, rows, live = self._tier_lists, self._rows, self._live
        used = set(prim)
        seen = [{key[d] for d in prim} for key in tiers]
        start, stride = handoff_walk(part, self.part_power)
        mask = self.table.shape[1] - 1
        n_walk = max((mask + 1) // stride, 1)
        totals = [int(c) for c in self.counts]
        for level in range(TIER_LEVELS + 1):
            key = tiers[level] if level < TIER_LEVELS else None
            done = used if key is None else seen[level]
            # For the tier phases ``done`` holds tier values; for the last, device ids.
            for k in range(n_walk):
                if len(done) >= totals[level]:
                    break
                p = (start + k * stride) & mask
                for row in rows:
                    if p >= len(row):
                        continue
                    d = row[p]
                    if not live[d] or d in used or (key is not None and key[d] in done):
                        continue
                    yield d
                    used.add(d)
                    for lv in range(TIER_LEVELS):
                        seen[lv].add(tiers[lv][d])
                    if len(done) >= totals[level]:
                        break


def _checked(table: TableArray, lengths: npt.ArrayLike,
             tiers: npt.ArrayLike) -> tuple[TableArray, npt.NDArray[np.int64], IntArray]:
    """Validate and normalize the constructor arguments."""
    if table.ndim != 2 or table.dtype not in (np.uint8, np.uint16, np.uint32):
        raise TypeError("table must be a 2-d uint8/uint16/uint32 array")
    parts = table.shape[1]
    if parts < 1 or parts & (parts - 1):
        raise ValueError("partition count must be a power of two")
    lens = np.ascontiguousarray(lengths, dtype=np.int64)
    tier = np.ascontiguousarray(tiers, dtype=np.int32)
    if lens.shape != (table.shape[0],) or lens.min(initial=0) < 0 or lens.max(initial=0) > parts:
        raise ValueError("lengths must give one length <= partitions per replica row")
    if tier.ndim != 2 or tier.shape[0] != TIER_LEVELS:
        raise ValueError("tiers must have shape (3, n_devs)")
    top = max((int(table[r, : int(n)].max(initial=0)) for r, n in enumerate(lens)), default=0)
    if top >= tier.shape[1]:
        raise ValueError(f"table names device {top} but tiers cover {tier.shape[1]}")
    return np.ascontiguousarray(table), lens, tier
