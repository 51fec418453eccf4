"""The vectorized rebalance: assign part-replicas to devices with numpy.

Nothing here loops over partitions in Python; loops run over tier levels,
replica rows, device groups and a handful of assignment passes.

Vocabulary:

* ``table`` — the assignment, an ``int32`` array of shape ``(rows, parts)``;
  ``table[r, p]`` is the device of replica ``r`` of partition ``p``, ``-1`` when
  unassigned or beyond a short (fractional) last row.
* ``Topology`` — per-device arrays indexed by device id: tier ids for the four
  levels (region, zone, server, device), the plan's per-tier maxima, quotas.
  Index ``n`` (one past the last device) stands for "no device" (``-1``).

Two placement strategies:

* :func:`initial_assignment` (a ring that was never balanced) uses a *grouped
  stride*: the part-replica tokens of every device, sorted so that each tier is
  one contiguous block, are laid out row after row; a partition's replicas sit
  exactly one row length apart, so a tier holding ``k`` row-lengths of tokens
  can give a partition at most ``k`` replicas. The tokens are dealt into 64
  groups, each with its own random tier order, so replica sets mix well.
* :func:`place` (everything else) takes the part-replicas that must move and
  places them in bulk passes of one replica per partition: first by sampling
  (:mod:`nubis.ring.sample`: a zone the partition may use, then a device, both in
  proportion to spare quota, most constrained slots first), then the few slots
  left are scored against every candidate device (tier-count violations first,
  then spare quota), sampled in proportion to spare quota, and accepted up to
  each device's spare quota.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.ring.plan import LEVELS
from nubis.ring.sample import BLOCK, limit_per_device, place_sampled
from nubis.ring.topology import CODE_BITS, Topology

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Progress = Callable[[str], None]
#: Stride groups for the initial assignment (a power of two, so it divides 2**part_power).
STRIDE_GROUPS = 64
#: Slots scored at once against all candidates (bounds memory to ~chunk x devices).
CHUNK = 1 << 16
#: Most (slot, candidate) cells scored at once.
MATRIX = 1 << 23
#: Violation weights: coarser failure domains matter more; a duplicate device never happens.
LEVEL_PENALTY = np.array([8, 4, 2, 64], dtype=np.int64)
MAX_PASSES = 64


def row_mask(row_lengths: list[int], parts: int) -> Bools:
    """Return ``(rows, parts)``: True where a replica slot exists."""
    # PERF: an int32 range where it fits (bench: ring scale, peak RSS)
    index: npt.NDArray[Any] = np.arange(parts, dtype=np.int32 if parts < 1 << 31 else np.int64)
    lengths = np.asarray(row_lengths, dtype=np.int64)
    mask: Bools = index[None, :] < lengths[:, None]
    return mask


def device_counts(table: I32, n: int) -> I64:
    """Return the number of part-replicas on each device id."""
    # -1 (unassigned) lands in bin 0 and is dropped
    counts = np.zeros(n + 1, dtype=np.int64)
    for row in table:
        counts += row_counts(row, n)
    return counts[1:]


def row_counts(row: I32, n: int) -> I64:
    """Return ``(n + 1,)`` counts of ``row + 1`` (index 0 = unassigned slots)."""
    # PERF: bincount widens its input to int64; blocks keep that copy small
    # (bench: ring scale, peak RSS)
    counts = np.zeros(n + 1, dtype=np.int64)
    for lo in range(0, len(row), BLOCK):
        counts += np.bincount(row[lo:lo + BLOCK] + 1, minlength=n + 1)[:n + 1]
    return counts


# ----------------------------------------------------------- initial placement


def initial_assignment(topo: Topology, row_lengths: list[int], parts: int,
                       rng: np.random.Generator) -> I32:
    """Assign every slot of a never-balanced ring with the grouped stride."""
    groups = min(STRIDE_GROUPS, parts)
    full_rows = sum(1 for length in row_lengths if length == parts)
    short = row_lengths[full_rows] if len(row_lengths) > full_rows else 0
    table = np.full((len(row_lengths), parts), -1, dtype=np.int32)
    counts = _dealt_counts(topo, groups)
    part_groups = _partition_groups(parts, short, groups, rng)
    for g in range(groups):
        order = _group_device_order(topo, rng)
        tokens = np.repeat(order, counts[g, order]).astype(np.int32)
        members = part_groups[g]
        width = len(members)
        for r in range(full_rows):
            table[r, members] = tokens[r * width:(r + 1) * width]
        if short:
            extra = len(tokens) - full_rows * width
            table[full_rows, members[:extra]] = tokens[full_rows * width:]
    return table


def _dealt_counts(topo: Topology, groups: int) -> I64:
    """Deal the tier-sorted global token sequence round-robin into groups; return counts."""
    order = _tier_order(topo.sort_key, topo.weighted)
    quota = topo.quota[order]
    end = np.cumsum(quota)
    start = end - quota
    g = np.arange(groups)[:, None]
    # number of k in [start, end) with k % groups == g
    counts_sorted = (end[None, :] - g + groups - 1) // groups - \
        (start[None, :] - g + groups - 1) // groups
    counts = np.zeros((groups, topo.n), dtype=np.int64)
    counts[:, order] = counts_sorted
    return counts


def _tier_order(sort_key: I64, devices: I64) -> I64:
    """Return ``devices`` ordered so that every tier is contiguous."""
    keys = tuple(sort_key[level, devices] for level in reversed(range(LEVELS)))
    return devices[np.lexsort(keys)]


def _group_device_order(topo: Topology, rng: np.random.Generator) -> I64:
    """Return the weighted devices in a random order that keeps every tier contiguous."""
    devices = topo.weighted
    keys = []
    for level in reversed(range(LEVELS)):
        ids = topo.tier[level, devices]
        shuffled = rng.permutation(int(ids.max()) + 1)
        keys.append(shuffled[ids])
    return devices[np.lexsort(tuple(keys))]


def _partition_groups(parts: int, short: int, groups: int,
                      rng: np.random.Generator) -> list[I64]:
    """Split partitions into equal random groups; those with a short-row replica come first.

    Group ``g`` gets ``short // groups`` (+1 for ``g < short % groups``) partitions
    below ``short`` — matching the round-robin deal of the token sequence.
    """
    with_short = rng.permutation(short)
    without = short + rng.permutation(parts - short)
    size = parts // groups
    n_short = short // groups + (np.arange(groups) < short % groups)
    a_end = np.cumsum(n_short)
    b_end = np.cumsum(size - n_short)
    out: list[I64] = []
    for g in range(groups):
        a = with_short[a_end[g] - n_short[g]:a_end[g]]
        b = without[b_end[g] - (size - n_short[g]):b_end[g]]
        out.append(np.concatenate([a, b]).astype(np.int64))
    return out


# ------------------------------------------------------------------- gathering


def pair_depths(table: I32, topo: Topology) -> dict[tuple[int, int], npt.NDArray[np.uint8]]:
    """Return, for each row pair ``i < j``, how many tier levels their devices share."""
    rows, parts = table.shape
    out = {(i, j): np.empty(parts, dtype=np.uint8)
           for i in range(rows) for j in range(i + 1, rows)}
    # PERF: blocks of partitions keep the id gathers small (bench: ring scale, peak RSS)
    for lo in range(0, parts, BLOCK):
        block = table[:, lo:lo + BLOCK]
        ids = np.where(block >= 0, block, topo.n)
        for (i, j), d in out.items():
            d[lo:lo + BLOCK] = _depths(ids[i], ids[j], topo)
    return out


def _depths(a: I32, b: I32, topo: Topology) -> npt.NDArray[np.uint8]:
    """Return how many tier levels devices ``a`` and ``b`` share, slot by slot."""
    if topo.depth is not None:
        # PERF: flat take beats 2-d fancy indexing (bench: ring rebalance)
        shared: npt.NDArray[np.uint8] = topo.depth.ravel()[a * (topo.n + 1) + b]
        return shared
    if topo.code is not None:
        # PERF: one gather per side of the packed (region, zone, server) ids instead of
        # one per side and level (bench: ring scale, 10,000 devices)
        x = topo.code[a] ^ topo.code[b]
        d: npt.NDArray[np.uint8] = (x == 0).astype(np.uint8)
        d += (x >> CODE_BITS) == 0
        d += (x >> (2 * CODE_BITS)) == 0
        d += a == b
    else:
        d = np.zeros(len(a), dtype=np.uint8)
        for level in range(LEVELS):
            d += topo.tier[level][a] == topo.tier[level][b]
    d[(a == topo.n) | (b == topo.n)] = 0
    return d


def one_per_partition(parts: I64, n_parts: int, rng: np.random.Generator) -> Bools:
    """Return a mask keeping one random entry of ``parts`` per distinct partition."""
    # PERF: scatter "last writer wins" instead of np.unique (bench: ring rebalance after add)
    # PERF: int32 owners where they fit (bench: ring scale, peak RSS)
    index_type = np.int32 if len(parts) < 1 << 31 else np.int64
    order = rng.permutation(len(parts)).astype(index_type)
    owner = np.full(n_parts, -1, dtype=index_type)
    owner[parts[order]] = order
    keep: Bools = owner[parts] == np.arange(len(parts), dtype=index_type)
    return keep


def _max_depth(depths: dict[tuple[int, int], npt.NDArray[np.uint8]]) -> int:
    """Return the deepest tier level any two replicas of a partition share."""
    return max((int(d.max()) for d in depths.values() if len(d)), default=0)


def same_tier_ranks(table: I32, depths: dict[tuple[int, int], npt.NDArray[np.uint8]],
                    level: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Return per slot (count, rank) of the partition's replicas sharing its tier at ``level``.

    ``rank`` counts earlier rows in the same tier; unassigned slots get count 0.
    """
    # PERF: int8 counters (at most ``rows`` replicas share a tier) (bench: ring rebalance)
    count = (table >= 0).astype(np.int8)
    rank = np.zeros(table.shape, dtype=np.int8)
    for (i, j), d in depths.items():
        same = d > level
        count[i] += same
        count[j] += same
        rank[j] += same
    return count, rank


def _per_slot(values: npt.NDArray[Any], table: I32, n: int) -> npt.NDArray[Any]:
    """Return ``values[device of each slot]`` (a scalar when all devices agree)."""
    if (values == np.round(values)).all() and np.abs(values).max() < 127:
        # PERF: tier limits are small integers; as int8, arithmetic with the int8 counts
        # stays int8 instead of a float64 table (bench: ring scale, peak RSS)
        values = values.astype(np.int8)
    present = values[:n]
    if len(present) and (present == present[0]).all():
        return present[:1].reshape(1, 1)
    return values[np.where(table >= 0, table, n)]


def gather_for_dispersion(table: I32, topo: Topology, movable: Bools) -> Bools:
    """Unassign replicas beyond a tier's plan maximum; return the partitions touched.

    A partition moves only if ``movable``, except that a second replica on the same
    device always moves.
    """
    if 2 * int(np.count_nonzero(movable)) > table.shape[1]:
        return _gather_tiers(table, topo, movable, LEVELS)
    # PERF: few movable partitions (none within min_part_hours): look at those alone,
    # and at the rest only for duplicates (bench: ring scale, remove a zone)
    touched = _drop_duplicates(table)
    cols = np.flatnonzero(movable)
    if not len(cols):
        return touched
    sub = table[:, cols]
    moved = _gather_tiers(sub, topo, np.ones(len(cols), dtype=np.bool_), LEVELS - 1)
    table[:, cols] = sub
    touched[cols] |= moved
    return touched


def _drop_duplicates(table: I32) -> Bools:
    """Unassign a partition's second replica on one device; return the partitions touched."""
    touched = np.zeros(table.shape[1], dtype=np.bool_)
    for lo in range(0, table.shape[1], BLOCK):
        block = table[:, lo:lo + BLOCK]  # a view: writes go to the table
        for j in range(1, block.shape[0]):
            for i in range(j):
                dup = (block[j] == block[i]) & (block[j] >= 0)
                if dup.any():
                    block[j, dup] = -1
                    touched[lo:lo + BLOCK] |= dup
    return touched


def _gather_tiers(table: I32, topo: Topology, movable: Bools, levels: int) -> Bools:
    """Unassign replicas beyond the first ``levels`` tier maxima; return partitions touched.

    Only ``movable`` partitions give up replicas above the device level; a second
    replica on one device always goes.
    """
    touched = np.zeros(table.shape[1], dtype=np.bool_)
    depths = pair_depths(table, topo)
    for level in range(levels):
        if _max_depth(depths) <= level:
            break  # no two replicas share a tier here or deeper, and every limit is >= 1
        _count, rank = same_tier_ranks(table, depths, level)
        limit = _per_slot(topo.plan_max[level], table, topo.n)
        excess = (table >= 0) & (rank >= np.maximum(limit, 1))
        if level < LEVELS - 1:
            excess &= movable[None, :]
        if excess.any():
            table[excess] = -1
            touched |= excess.any(axis=0)
            depths = pair_depths(table, topo)
    return touched


def gather_for_balance(table: I32, topo: Topology, movable: Bools,
                       rng: np.random.Generator) -> Bools:
    """Unassign replicas from over-quota devices, at most one per movable partition.

    Rows are visited in random order; from each, every over-quota device gives up
    what it still has in excess, from partitions not touched yet.
    Returns the partitions that gave up a replica.
    """
    counts = device_counts(table, topo.n)
    over = np.append(np.maximum(counts - topo.quota, 0), 0)  # index -1 / n: "no device"
    touched = np.zeros(table.shape[1], dtype=np.bool_)
    for r in rng.permutation(table.shape[0]):
        if not over.any():
            break
        # PERF: one row at a time, thinned at random to a little more than each device's
        # excess before the exact per-device cut; usually the first row covers all
        # excess (bench: ring rebalance after add)
        row = table[r]
        held = np.append(row_counts(row, topo.n)[1:], 0).astype(np.float64)
        spare = over[:topo.n + 1].astype(np.float64)
        rate = np.minimum(1.0, (spare + 3.0 * np.sqrt(spare) + 8.0) / np.maximum(held, 1.0))
        rate[spare <= 0] = 0.0
        rate = np.append(rate, 0.0).astype(np.float32)  # index -1: unassigned
        parts = np.concatenate([
            lo + np.flatnonzero((rng.random(len(block), dtype=np.float32) < rate[block])
                                & movable[lo:lo + BLOCK] & ~touched[lo:lo + BLOCK])
            for lo, block in ((lo, row[lo:lo + BLOCK]) for lo in range(0, len(row), BLOCK))])
        if not len(parts):
            continue
        devs = table[r, parts].astype(np.int64)
        take = limit_per_device(devs, over, topo.n, rng)
        parts = parts[take]
        table[r, parts] = -1
        touched[parts] = True
        over -= np.bincount(devs[take], minlength=topo.n + 1)
    return touched


def depth_to(table: I32, topo: Topology, dev: int) -> npt.NDArray[np.uint8]:
    """Return, per slot, how many tier levels its device shares with ``dev``."""
    ids = np.where(table >= 0, table, topo.n)
    if topo.depth is not None:
        return topo.depth[:, dev][ids]
    out = np.zeros(table.shape, dtype=np.uint8)
    for level in range(LEVELS):
        out += topo.tier[level][ids] == topo.tier[level][dev]
    out[ids == topo.n] = 0
    return out


def pull_for_balance(table: I32, topo: Topology, movable: Bools,
                     rng: np.random.Generator) -> Bools:
    """Move replicas straight from over-quota devices to each under-quota device.

    For every device below its quota (a loop over devices), pick movable partitions
    holding a replica on an over-quota device where the under-quota device is a
    clean fit for that replica (no tier above its plan maximum), and move it.
    Returns the partitions moved.
    """
    parts_n = table.shape[1]
    touched = np.zeros(parts_n, dtype=np.bool_)
    counts = device_counts(table, topo.n)
    deficit = topo.quota - counts
    over = np.append(np.maximum(counts - topo.quota, 0), 0)
    hungry = topo.weighted[deficit[topo.weighted] > 0]
    # PERF: only movable partitions are looked at, so a ring pinned by min_part_hours
    # costs one pass over it, not one per hungry device (bench: ring scale, remove a zone)
    pool = np.flatnonzero(movable)
    if not len(pool):
        return touched
    for dev in hungry[np.argsort(-deficit[hungry], kind="stable")]:
        if not over.any():
            break
        need = int(deficit[dev])
        # PERF: look at a random window of partitions first (bench: ring rebalance after add)
        width = min(len(pool), BLOCK, max(1 << 13, 64 * need))
        covered = 0
        while need > 0 and covered < len(pool):
            # a strided sample across the movable partitions, from a random start;
            # PERF: windows grow 4x up to BLOCK columns, never the whole ring at once
            # (bench: ring scale +10% devices, peak RSS)
            stride = max(1, len(pool) // width)
            cols = pool[(int(rng.integers(len(pool))) + np.arange(width) * stride) % len(pool)]
            need -= _pull_window(table, topo, cols, int(dev), need, over,
                                 movable & ~touched, touched, rng)
            covered += width
            width = min(len(pool), BLOCK, width * 4)
    return touched


def _pull_window(table: I32, topo: Topology, cols: I64, dev: int, need: int, over: I64,
                 movable: Bools, touched: Bools, rng: np.random.Generator) -> int:
    """Move up to ``need`` replicas onto ``dev`` from partitions ``cols``; return how many."""
    sub = table[:, cols]
    source = (over[sub] > 0) & movable[cols][None, :]
    if not source.any():
        return 0
    rows, idx = np.nonzero(source & _fits_instead(sub, topo, dev))
    if not len(idx):
        return 0
    pick = one_per_partition(idx, len(cols), rng)
    rows, idx = rows[pick], idx[pick]
    srcs = sub[rows, idx].astype(np.int64)
    take = limit_per_device(srcs, over, topo.n, rng)
    take = take[rng.permutation(len(take))[:need]]
    parts = cols[idx[take]]
    table[rows[take], parts] = dev
    over -= np.bincount(srcs[take], minlength=len(over))
    touched[parts] = True
    return len(take)


def _fits_instead(table: I32, topo: Topology, dev: int) -> Bools:
    """Return ``(rows, parts)``: True where ``dev`` could replace that slot's device."""
    depth = depth_to(table, topo, dev)
    fits = np.ones(table.shape, dtype=np.bool_)
    for level in range(LEVELS):
        inside = depth > level
        total = inside.sum(axis=0, dtype=np.int8)
        limit = max(int(topo.plan_max[level, dev]), 1) if level == LEVELS - 1 \
            else int(topo.plan_max[level, dev])
        fits &= (total[None, :] - inside) < limit
    return fits


# -------------------------------------------------------------------- placement


def place(table: I32, topo: Topology, slots: Bools, rng: np.random.Generator,
          progress: Progress | None = None, origin: I32 | None = None) -> int:
    """Assign every slot marked in ``slots`` (empty, existing) in bulk passes.

    ``origin`` is the table before gathering: a slot no device with spare quota can
    take cleanly goes back where it came from when that is as good as anywhere.
    Returns the number of slots placed (all of them unless no device can take one).
    """
    rows, parts = np.nonzero(slots & (table < 0))
    remaining = topo.quota - device_counts(table, topo.n)
    placed = 0
    total = len(parts)
    for _ in range(MAX_PASSES):
        if not len(parts):
            break
        # one replica per partition per pass, so replicas placed together never clash
        batch = np.flatnonzero(one_per_partition(parts, table.shape[1], rng))
        done = np.zeros(len(parts), dtype=np.bool_)
        # PERF: most slots find a clean device by sampling alone, in O(slots) per round;
        # only the rest are scored against every candidate (bench: ring incremental)
        done[batch] = place_sampled(table, topo, rows[batch], parts[batch], remaining, rng)
        batch = batch[~done[batch]]
        # PERF: chunks shrink as candidates grow, bounding each chunk's score matrices
        # to ~MATRIX cells (bench: ring scale, remove a zone)
        chunk = max(64, min(CHUNK, MATRIX // max(len(topo.weighted), 1)))
        for lo in range(0, len(batch), chunk):
            idx = batch[lo:lo + chunk]
            home = None if origin is None else origin[rows[idx], parts[idx]]
            # each chunk gets its share of the spare quota, so later chunks' slots
            # (which may have fewer options) still find room in this pass
            share = np.ceil(np.maximum(remaining, 0) * (len(idx) / (len(batch) - lo)))
            done[idx] = _place_chunk(table, topo, rows[idx], parts[idx], remaining, rng, home,
                                     share.astype(np.int64))
        placed += int(done.sum())
        rows, parts = rows[~done], parts[~done]
        if progress is not None:
            progress(f"placed {placed}/{total} part-replicas")
    return placed


def _place_chunk(table: I32, topo: Topology, rows: I64, parts: I64, remaining: I64,
                 rng: np.random.Generator, home: I32 | None = None,
                 share: I64 | None = None) -> Bools:
    """Choose devices for one chunk of slots (distinct partitions); return which got one.

    ``share`` caps what each device accepts from this chunk (default: its spare quota).
    """
    hungry = topo.weighted[remaining[topo.weighted] > 0]
    choice = np.full(len(parts), -1, dtype=np.int64)
    forced = np.zeros(len(parts), dtype=np.bool_)
    options = np.zeros(len(parts), dtype=np.int64)  # fewer options: served first
    if len(hungry):
        # PERF: try only devices with spare quota first (bench: ring rebalance after add)
        penalty = _penalties(table, topo, parts, hungry)
        clean = penalty == 0
        options = clean.sum(axis=1)
        ok = options > 0
        choice[ok] = _sample(hungry, remaining[hungry], clean[ok], rng)
    rest = np.flatnonzero(choice < 0)
    if len(rest):
        cands = topo.weighted
        penalty = _penalties(table, topo, parts[rest], cands)
        best = penalty == penalty.min(axis=1, keepdims=True)
        spare = remaining[cands]
        with_room = best & (spare > 0)[None, :]
        has = with_room.any(axis=1)
        if has.any():
            choice[rest[has]] = _sample(cands, spare, with_room[has], rng)
        if (~has).any():
            stuck = int((~has).sum())
            score = spare[None, :] + rng.random((stuck, len(cands)))
            if home is not None:  # going back home is no move at all
                back = home[rest[~has]][:, None]
                score += (cands[None, :] == back) * (np.abs(spare).max() + 2.0)
            score = np.where(best[~has], score, -np.inf)
            choice[rest[~has]] = cands[np.argmax(score, axis=1)]
            forced[rest[~has]] = True
    accept = _accept(choice, forced, remaining if share is None else share, options, rng)
    table[rows[accept], parts[accept]] = choice[accept].astype(np.int32)
    remaining -= np.bincount(choice[accept], minlength=len(remaining))[:len(remaining)]
    return accept


def _penalties(table: I32, topo: Topology, parts: I64, cands: I64) -> npt.NDArray[np.int16]:
    """Return ``(len(parts), len(cands))`` tier-violation penalties of adding each candidate."""
    others = np.where(table[:, parts] >= 0, table[:, parts], topo.n)  # (rows, S)
    if topo.depth is not None:
        # PERF: shared tier depth from the device x device table (bench: ring rebalance)
        sub = topo.depth[:, cands]
        depths = [sub[others[r]] for r in range(others.shape[0])]  # each (S, C)
    else:
        depths = []
        for r in range(others.shape[0]):
            d = np.zeros((len(parts), len(cands)), dtype=np.uint8)
            for level in range(LEVELS):
                d += topo.tier[level][others[r]][:, None] == topo.tier[level][cands][None, :]
            d[others[r] == topo.n] = 0
            depths.append(d)
    penalty = np.zeros((len(parts), len(cands)), dtype=np.int16)
    for level in range(LEVELS):
        count = np.zeros((len(parts), len(cands)), dtype=np.uint8)
        for d in depths:
            count += d > level
        limit = topo.plan_max[level][cands]
        if level == LEVELS - 1:
            limit = np.maximum(limit, 1)
        penalty += (count >= limit[None, :]) * np.int16(LEVEL_PENALTY[level])
    return penalty


def _sample(cands: I64, spare: I64, allowed: Bools, rng: np.random.Generator) -> I64:
    """Pick one allowed candidate per row, with probability proportional to spare quota."""
    weights = np.where(allowed, np.maximum(spare, 0)[None, :].astype(np.float64), 0.0)
    cum = np.cumsum(weights, axis=1)
    draw = rng.random(len(cum)) * cum[:, -1]
    index = (cum <= draw[:, None]).sum(axis=1)
    index = np.minimum(index, len(cands) - 1)
    chosen: I64 = cands[index]
    return chosen


def _accept(choice: I64, forced: Bools, remaining: I64, options: I64,
            rng: np.random.Generator) -> Bools:
    """Accept choices up to each device's spare quota; forced ones always.

    Where a device is wanted by more slots than it has room for, slots with fewer
    clean options win (ties at random), so flexible slots make way for stuck ones.
    """
    accept = forced & (choice >= 0)
    wanting = np.flatnonzero(~forced & (choice >= 0))
    if len(wanting):
        shuffle = wanting[rng.permutation(len(wanting))]
        key = choice[shuffle] * (int(options.max()) + 1) + options[shuffle]
        order = shuffle[np.argsort(key, kind="stable")]
        devs = choice[order]
        starts = np.zeros(len(remaining) + 1, dtype=np.int64)
        np.cumsum(np.bincount(devs, minlength=len(remaining))[:len(remaining)],
                  out=starts[1:])
        rank = np.arange(len(order)) - starts[devs]
        accept[order[rank < np.maximum(remaining, 0)[devs]]] = True
    return accept


# ------------------------------------------------------------------ statistics


def dispersion(table: I32, topo: Topology,
               replicas: float) -> tuple[float, list[npt.NDArray[np.int8]]]:
    """Return Swift's dispersion (% of part-replicas placed worse than the topology allows).

    Also returns, per level, the per-partition count of replicas over the limit.
    """
    parts = table.shape[1]
    # PERF: int8 per partition (at most ``rows`` replicas are over) (bench: ring scale)
    worst = np.zeros(parts, dtype=np.int8)
    per_level: list[npt.NDArray[np.int8]] = []
    depths = pair_depths(table, topo)
    deepest = _max_depth(depths)
    for level in range(LEVELS):
        limits = topo.topo_max[level][:topo.n][topo.exists]
        if deepest <= level and (not len(limits) or limits.min() >= 1):
            per_level.append(np.zeros(parts, dtype=np.int8))
            continue  # one replica per tier at most, and every tier may hold one
        count, rank = same_tier_ranks(table, depths, level)
        limit = _per_slot(topo.topo_max[level], table, topo.n)
        beyond = count > limit
        if not beyond.any():
            per_level.append(np.zeros(parts, dtype=np.int8))
            continue
        first = (table >= 0) & (rank == 0) & beyond
        over = np.where(first, count - limit, 0).sum(axis=0, dtype=np.int8)
        per_level.append(over)
        worst = np.maximum(worst, over)
    slots = parts * replicas
    return (100.0 * float(worst.sum(dtype=np.int64)) / slots if slots else 0.0), per_level


def dispersion_graph(table: I32, topo: Topology, level: int) -> tuple[I64, I64]:
    """Return, for tiers at ``level``, tier ids and a ``(tiers, rows + 1)`` count matrix.

    ``matrix[i, k]`` is the number of partitions with exactly ``k`` replicas in tier i.
    """
    rows, parts = table.shape
    count, rank = same_tier_ranks(table, pair_depths(table, topo), level)
    tiers = topo.tier[level][np.where(table >= 0, table, topo.n)]
    first = (table >= 0) & (rank == 0)
    ids, inverse = np.unique(tiers[first], return_inverse=True)
    matrix = np.zeros((len(ids), rows + 1), dtype=np.int64)
    np.add.at(matrix, (inverse.ravel(), count[first].astype(np.int64)), 1)
    matrix[:, 0] = parts - matrix[:, 1:].sum(axis=1)
    return ids, matrix
