"""Sampled placement: put most moving part-replicas on devices without scoring them all.

:func:`place_sampled` is the first step of every placement pass of
:mod:`nubis.ring.rebalance`. Each open slot (one per partition in a pass) draws a
device in two steps:

1. a *zone* among those its partition may still use — the zone and its region stay
   within the plan's maxima — in proportion to the zones' spare quota;
2. a device of that zone in proportion to its own spare quota.

Draws that also keep the server and device limits are accepted, up to each device's
spare quota. Slots are served most constrained first (least spare quota in the zones
they may use): after a zone is removed, a replica whose partition already has its
other region's share may go only to its own region, and flexible slots drawn first
would take that room. What is still open after the rounds goes to exhaustive scoring.

Zone choices depend on a slot only through the zones its partition's other replicas
occupy, so they are computed once per distinct *signature* (that multiset of zones),
and a zone is drawn for all slots at once with one ``searchsorted`` over the
signatures' concatenated cumulative weights — no ``(slots, zones)`` temporaries.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from nubis.ring.plan import LEVELS
from nubis.ring.topology import Topology

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

#: Slots handled per block where a whole-row temporary would cost a table's worth.
BLOCK = 1 << 20
#: Sampling rounds, and the fewest open slots worth a round.
SAMPLE_ROUNDS = 32
MIN_SAMPLED = 64
#: Open slots drawn at once; later blocks see the spare quota earlier ones left.
SAMPLE_BLOCK = 1 << 16
#: Matrix-scaling iterations of the zone plan, and their relative tolerance.
PLAN_ITERATIONS = 500
PLAN_TOLERANCE = 1e-6
#: Most signature keys looked up in a table rather than sorted.
SIGNATURE_TABLE = 1 << 22
#: Tier levels of the zone draw.
REGION, ZONE = 0, 1


def place_sampled(table: I32, topo: Topology, rows: I64, parts: I64, remaining: I64,
                  rng: np.random.Generator) -> Bools:
    """Place slots (distinct partitions) on sampled devices; return which got one.

    ``remaining`` (spare quota per device) is decreased by what is placed.
    """
    done = np.zeros(len(parts), dtype=np.bool_)
    if len(parts) < MIN_SAMPLED:
        return done
    zones = ZoneView(topo)
    sig, allowed = zones.signatures(table, parts)
    # PERF: most constrained first, so flexible slots do not take the only room of
    # constrained ones (bench: ring scale, remove a zone)
    room = allowed.astype(np.float64) @ zones.spare(topo, remaining)
    rank = np.empty(len(room), dtype=np.int32)
    rank[np.argsort(room, kind="stable")] = np.arange(len(room), dtype=np.int32)
    # PERF: a stable sort of small int32 ranks is a radix sort; int32 slot indices
    # (bench: ring scale, peak RSS)
    index_type = np.int32 if len(parts) < 1 << 31 else np.int64
    order = np.argsort(rank[sig], kind="stable").astype(index_type)
    for _ in range(SAMPLE_ROUNDS):
        todo = order[~done[order]]
        if len(todo) < MIN_SAMPLED:
            break
        placed = 0
        demand = np.bincount(sig[todo], minlength=len(allowed)).astype(np.float64)
        plan = zone_plan(allowed, demand, zones.spare(topo, remaining))
        for lo in range(0, len(todo), SAMPLE_BLOCK):
            placed += _sample_block(table, topo, zones, rows, parts, sig, plan,
                                    todo[lo:lo + SAMPLE_BLOCK], remaining, done, rng)
        if placed < len(todo) // 64:
            break  # what is left is hard to place: score it exhaustively
    return done


class ZoneView:
    """Zone-level arrays of a topology: zone ids, their regions and plan maxima."""

    def __init__(self, topo: Topology) -> None:
        n = topo.n
        self.zone = topo.tier[ZONE]
        self.region = topo.tier[REGION]
        self.count = int(self.zone[:n].max()) + 1 if n else 1
        regions = int(self.region[:n].max()) + 1 if n else 1
        self.region_of = np.zeros(self.count, dtype=np.int64)
        self.region_of[self.zone[:n]] = self.region[:n]
        self.zone_max = np.zeros(self.count, dtype=np.int64)
        self.zone_max[self.zone[:n]] = topo.plan_max[ZONE, :n]
        self.region_max = np.zeros(regions, dtype=np.int64)
        self.region_max[self.region[:n]] = topo.plan_max[REGION, :n]
        self.regions = regions

    def signatures(self, table: I32, parts: I64) -> tuple[I64, Bools]:
        """Return per slot a signature index, and ``(signatures, zones)`` allowed zones.

        A signature is the sorted zones of the partition's other replicas.
        """
        rows = table.shape[0]
        base = self.count + 1
        if float(base) ** rows >= 2.0 ** 62:  # too many zones x replicas for a key
            return np.arange(len(parts), dtype=np.int64), self._allowed(self._zones(table, parts))
        key = np.empty(len(parts), dtype=np.int64)
        # PERF: blocks bound the (rows, slots) temporaries (bench: ring scale, peak RSS)
        for lo in range(0, len(parts), BLOCK):
            zid = self._zones(table, parts[lo:lo + BLOCK])
            part = np.zeros(zid.shape[1], dtype=np.int64)
            for r in range(rows):
                part = part * base + (zid[r] + 1)
            key[lo:lo + BLOCK] = part
        span = base ** rows
        if span > max(SIGNATURE_TABLE, 4 * len(parts)):
            _keys, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            del key
            sig = inverse.ravel().astype(np.int64)
        else:
            # PERF: few possible keys: a lookup table instead of sorting (bench: ring scale)
            index = np.zeros(span, dtype=np.int64)
            index[key] = 1
            np.cumsum(index, out=index)
            index -= 1
            sig = key  # PERF: in place of the keys (bench: ring scale, peak RSS)
            np.take(index, key, out=sig)
            first = np.zeros(int(index[-1]) + 1, dtype=np.int64)
            first[sig] = np.arange(len(parts))  # any member stands for its signature
        return sig, self._allowed(self._zones(table, parts[first]))

    def _zones(self, table: I32, parts: I64) -> I64:
        """Return ``(rows, len(parts))`` sorted zone ids of the partitions' replicas (-1: none)."""
        held = table[:, parts]
        zid: I64 = self.zone[np.where(held >= 0, held, 0)].astype(np.int64)
        zid[held < 0] = -1
        zid.sort(axis=0)
        return zid

    def _allowed(self, zid: I64) -> Bools:
        """Return ``(columns, zones)``: True where one replica more keeps both limits."""
        cols = np.arange(zid.shape[1])
        zc = np.zeros((zid.shape[1], self.count), dtype=np.int8)
        rc = np.zeros((zid.shape[1], self.regions), dtype=np.int8)
        for r in range(zid.shape[0]):
            has = zid[r] >= 0
            z = zid[r, has]
            zc[cols[has], z] += 1  # one replica per row: no repeated (column, zone)
            rc[cols[has], self.region_of[z]] += 1
        ok: Bools = (zc < self.zone_max[None, :]) & \
            (rc[:, self.region_of] < self.region_max[self.region_of][None, :])
        return ok

    def spare(self, topo: Topology, remaining: I64) -> F64:
        """Return the spare quota of each zone (weighted devices only)."""
        devs = topo.weighted
        room = np.maximum(remaining[devs], 0).astype(np.float64)
        out: F64 = np.bincount(self.zone[devs], weights=room,
                               minlength=self.count).astype(np.float64)
        return out


def zone_plan(allowed: Bools, demand: F64, spare: F64) -> F64:
    """Return ``(signatures, zones)`` expected placements: rows sum to the demand.

    A transport plan by matrix scaling (Sinkhorn): only allowed zones with spare
    quota, each zone filled in proportion to its spare quota (all of it when the
    demand equals the spare quota in total, as after a removal). Drawing zones in
    proportion to spare quota alone would fill the zones few partitions may use too
    slowly, and leave the last slots with room only where they may not go.
    """
    kernel = allowed * (spare > 0)[None, :]
    total = float(spare.sum())
    target = spare * min(1.0, float(demand.sum()) / total) if total > 0 else spare
    scale = np.ones(len(spare))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        for step in range(PLAN_ITERATIONS):
            new = _ratio(target, kernel.T @ _ratio(demand, kernel @ scale))
            top = float(new.max(initial=0.0))
            if top > 0:  # only ratios matter; where no plan meets every zone's target
                new /= top  # the scaling would otherwise grow without bound
            done = step % 8 == 7 and float(np.abs(new - scale).max(initial=0.0)) <= \
                PLAN_TOLERANCE
            scale = new
            if done:
                break
        row = _ratio(demand, kernel @ scale)  # last: every row meets its demand
        plan: F64 = kernel * row[:, None] * scale[None, :]
    bad = ~np.isfinite(plan).all(axis=1)
    if bad.any():  # spare quota alone, as if there were no plan
        plan[bad] = (allowed * spare[None, :])[bad]
    return plan


def _ratio(num: F64, den: F64) -> F64:
    """Return ``num / den``, 0 where ``den`` is 0."""
    out: F64 = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return out


def _sample_block(table: I32, topo: Topology, zones: ZoneView, rows: I64, parts: I64,
                  sig: I64, plan: F64, todo: I64, remaining: I64, done: Bools,
                  rng: np.random.Generator) -> int:
    """Run one sampling round over the open slots ``todo``; return how many were placed."""
    hungry = topo.weighted[remaining[topo.weighted] > 0]
    if not len(hungry):
        return 0
    # hungry devices grouped by zone: each zone's devices are one run of the cumsum
    hungry = hungry[np.argsort(zones.zone[hungry], kind="stable")]
    cum = np.cumsum(remaining[hungry])
    zone_spare = np.bincount(zones.zone[hungry], weights=remaining[hungry].astype(np.float64),
                             minlength=zones.count)
    zone_start = np.cumsum(zone_spare) - zone_spare
    zone = _draw_zones(plan * (zone_spare > 0)[None, :], sig[todo], rng)
    open_ = np.flatnonzero(zone >= 0)
    if not len(open_):
        return 0
    zone = zone[open_]
    offset = np.minimum(np.floor(rng.random(len(open_)) * zone_spare[zone]), zone_spare[zone] - 1)
    cand = hungry[np.searchsorted(cum, (zone_start[zone] + offset).astype(np.int64),
                                  side="right")]
    # the zone draw kept the region and zone limits; servers and devices are left
    fit = np.flatnonzero(clean_fit(table, topo, parts[todo[open_]], cand, ZONE + 1))
    # the block is in priority order: where a device is wanted too often, the most
    # constrained slots get it
    take = fit[limit_per_device(cand[fit], remaining, topo.n, rng, rotate=False)]
    slot = todo[open_[take]]
    table[rows[slot], parts[slot]] = cand[take].astype(np.int32)
    remaining -= np.bincount(cand[take], minlength=len(remaining))[:len(remaining)]
    done[slot] = True
    return len(take)


def _draw_zones(weights: F64, sig: I64, rng: np.random.Generator) -> I64:
    """Draw a zone per slot from its signature's row of ``weights``; -1 where all are 0."""
    groups, count = weights.shape
    cw = np.cumsum(weights, axis=1)
    total = cw[:, -1]
    # PERF: each signature's cumsum shifted past the previous ones: one searchsorted
    # draws every slot's zone (bench: ring scale, remove a zone)
    shift = np.arange(groups, dtype=np.float64) * (float(total.max()) + 1.0)
    flat = (cw + shift[:, None]).ravel()
    u = shift[sig] + rng.random(len(sig)) * total[sig]
    pos = np.searchsorted(flat, u, side="right") - sig * count
    zone: I64 = np.where(total[sig] > 0, np.minimum(pos, count - 1), -1)
    return zone


def clean_fit(table: I32, topo: Topology, parts: I64, cand: I64, first: int = 0) -> Bools:
    """Return, per slot, whether device ``cand`` keeps every tier of its partition in limits.

    Levels above ``first`` are taken as checked already.
    """
    if len(parts) > BLOCK:  # PERF: bounded temporaries (bench: ring scale, peak RSS)
        return np.concatenate([clean_fit(table, topo, parts[lo:lo + BLOCK], cand[lo:lo + BLOCK],
                                         first)
                               for lo in range(0, len(parts), BLOCK)])
    held = table[:, parts]
    others = np.where(held >= 0, held, topo.n)  # (rows, S)
    fits = np.ones(len(parts), dtype=np.bool_)
    if first == LEVELS - 2 and topo.code is not None:
        # PERF: packed ids tell "same server" in one gather per row (bench: ring scale)
        mine = topo.code[cand]
        count = np.zeros(len(parts), dtype=np.int8)
        for r in range(others.shape[0]):
            count += topo.code[others[r]] == mine
            fits &= others[r] != cand
        fits &= count < topo.plan_max[LEVELS - 2][cand]
        return fits
    for level in range(first, LEVELS):
        mine = topo.tier[level][cand]
        count = np.zeros(len(parts), dtype=np.int8)
        for r in range(others.shape[0]):
            count += topo.tier[level][others[r]] == mine
        limit = topo.plan_max[level][cand]
        if level == LEVELS - 1:
            limit = np.maximum(limit, 1)
        fits &= count < limit
    return fits


def limit_per_device(devs: I64, limit: I64, n: int, rng: np.random.Generator,
                     rotate: bool = True) -> I64:
    """Return indices into ``devs`` keeping at most ``limit[d]`` per device.

    Like Swift's gather, candidates are taken in order from a random starting point
    (from the first one unless ``rotate``).
    """
    m = len(devs)
    start = int(rng.integers(m)) if m and rotate else 0
    rotated = np.concatenate([np.arange(start, m), np.arange(0, start)])
    # PERF: a stable sort of 16-bit keys is a radix sort (bench: ring rebalance after add)
    key = devs[rotated].astype(np.uint16 if n < 1 << 16 else np.int64)
    order = rotated[np.argsort(key, kind="stable")]
    sorted_devs = devs[order]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sorted_devs, minlength=n)[:n], out=starts[1:])
    rank = np.arange(m) - starts[sorted_devs]
    kept: I64 = order[rank < limit[sorted_devs]]
    return kept
