"""The replica plan: how many replicas each failure domain should hold.

This follows the meaning of Swift's ring builder (``_build_weighted_replicas_by_tier``,
``_build_wanted_replicas_by_tier``, ``_build_target_replicas_by_tier`` and
``_set_parts_wanted``), computed over the tier tree — a loop over tiers and
devices, never over partitions.

A *tier* is a tuple: ``(region,)``, ``(region, zone)``, ``(region, zone, ip)``
or ``(region, zone, ip, dev_id)``; ``()`` is the whole cluster. Only devices with
a positive weight take part in the plan.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nubis.ring.devices import Device
from nubis.ring.errors import RingValidationError

Tier = tuple[object, ...]
EPSILON = 1e-10
#: Tier depths: region, zone, server, device.
LEVELS = 4


def tiers_for(dev: Device) -> tuple[Tier, Tier, Tier, Tier]:
    """Return the device's tiers from the widest (region) to its own."""
    return ((dev.region,), (dev.region, dev.zone), (dev.region, dev.zone, dev.ip),
            (dev.region, dev.zone, dev.ip, dev.id))


def tier_tree(devs: Iterable[Device]) -> dict[Tier, list[Tier]]:
    """Map each tier to its sorted child tiers (``()`` is the root)."""
    children: dict[Tier, set[Tier]] = defaultdict(set)
    for dev in devs:
        parent: Tier = ()
        for tier in tiers_for(dev):
            children[parent].add(tier)
            parent = tier
    return {t: sorted(c, key=repr) for t, c in children.items()}


@dataclass(frozen=True)
class ReplicaPlan:
    """Per-tier replica targets and the per-device partition quotas.

    Attributes:
        target: Replicanths each tier should hold on average per partition.
        plan_max: Most replicas of one partition a tier may hold under the plan.
        topo_max: Most replicas of one partition a tier may hold if spread as far
            as the topology allows (Swift's ``_build_max_replicas_by_tier``);
            dispersion is measured against this.
        quota: Part-replicas each device should hold (dev id -> count).
        required_overload: Overload needed for full dispersion (a fraction).
    """

    target: dict[Tier, float]
    plan_max: dict[Tier, int]
    topo_max: dict[Tier, float]
    quota: dict[int, int]
    required_overload: float


def weighted_replicas(devs: Sequence[Device], replicas: float) -> dict[Tier, float]:
    """Return replicanths per tier by weight alone (a device holds at most one replica)."""
    total = sum(d.weight for d in devs)
    share = {d.id: min(1.0, d.weight * replicas / total) for d in devs}
    for _ in range(len(devs) + 1):
        remaining = replicas - sum(share.values())
        room = [i for i, s in share.items() if s < 1]
        if remaining < EPSILON or not room:
            break
        grow = remaining / sum(share[i] for i in room)
        for i in room:
            share[i] = min(1.0, share[i] * (grow + 1))
    out: dict[Tier, float] = defaultdict(float)
    for dev in devs:
        out[()] += share[dev.id]
        for tier in tiers_for(dev):
            out[tier] += share[dev.id]
    return out


def max_replicas(tree: dict[Tier, list[Tier]], replicas: float,
                 bound: str = "ceil") -> dict[Tier, float]:
    """Return the most replicas per tier when spread evenly down the tree."""
    out: dict[Tier, float] = {}
    stack: list[tuple[Tier, float]] = [((), replicas)]
    while stack:
        tier, count = stack.pop()
        if len(tier) == LEVELS:
            count = min(1.0, count)
        out[tier] = count
        kids = tree.get(tier, [])
        for kid in kids:
            share = count / len(kids)
            stack.append((kid, float(math.ceil(share)) if bound == "ceil" else share))
    return out


def wanted_replicas(devs: Sequence[Device], tree: dict[Tier, list[Tier]], replicas: float,
                    weighted: dict[Tier, float]) -> dict[Tier, float]:
    """Return replicanths per tier for the widest dispersion weights allow (Swift's "wanted")."""
    even = max_replicas(tree, replicas, bound="float")
    lo = {t: math.floor(r) for t, r in even.items()}
    hi = {t: math.ceil(r) for t, r in even.items()}
    ndevs: dict[Tier, int] = defaultdict(int)
    for dev in devs:
        ndevs[()] += 1
        for tier in tiers_for(dev):
            ndevs[tier] += 1
    wanted: dict[Tier, float] = {}
    stack: list[tuple[Tier, float]] = [((), replicas)]
    while stack:
        tier, amount = stack.pop()
        if amount > ndevs[tier] + EPSILON:
            raise RingValidationError(f"more replicas ({amount:g}) than devices "
                                      f"({ndevs[tier]}) in tier {tier}")
        wanted[tier] = amount
        kids = tree.get(tier, [])
        if kids:
            placed = _spread(amount, kids, weighted, lo, hi, ndevs)
            stack.extend((k, placed[k]) for k in kids)
    return wanted


def _spread(amount: float, kids: list[Tier], weighted: dict[Tier, float],
            lo: dict[Tier, int], hi: dict[Tier, int],
            ndevs: dict[Tier, int]) -> dict[Tier, float]:
    """Split ``amount`` replicanths over child tiers by weight within [lo, hi] bounds."""
    placed = dict.fromkeys(kids, 0.0)
    spread_over = list(kids)
    device_limited = False
    for _ in range(10 * len(kids) + 10):
        base = sum(weighted[k] for k in spread_over) or 1.0
        rel = (amount - sum(placed.values())) / base
        for k in spread_over:
            value = placed[k] + weighted[k] * rel
            if value < lo[k]:
                value = lo[k]
            elif value > hi[k] and not device_limited:
                value = hi[k]
            placed[k] = min(value, ndevs[k])
        remaining = amount - sum(placed.values())
        if remaining < -EPSILON:
            spread_over = [k for k in kids if placed[k] > lo[k]]
        elif remaining > EPSILON:
            spread_over = [k for k in kids if ndevs[k] > placed[k] < hi[k]]
            if not spread_over:
                device_limited = True
                spread_over = [k for k in kids if placed[k] < ndevs[k]]
        else:
            break
        if not spread_over:
            break
    return placed


def build_plan(devs: Sequence[Device], replicas: float, overload: float,
               parts: int, slots: int) -> ReplicaPlan:
    """Compute the replica plan for the weighted devices ``devs``.

    Args:
        devs: Devices with a positive weight.
        replicas: The ring's replica count.
        overload: Extra share (fraction) a device may take for dispersion.
        parts: Partition count.
        slots: Total part-replicas to place (sum of the row lengths).
    """
    tree = tier_tree(devs)
    weighted = weighted_replicas(devs, replicas)
    wanted = wanted_replicas(devs, tree, replicas, weighted)
    required = 0.0
    for dev in devs:
        tier = tiers_for(dev)[-1]
        required = max(required, (wanted[tier] - weighted[tier]) / weighted[tier])
    if required <= 0.0:
        target = dict(wanted)
    else:
        used = min(overload, required)
        target = {t: (wanted.get(t, 0.0) - w) / required * used + w
                  for t, w in weighted.items()}
    plan_max = {t: math.ceil(r - EPSILON) for t, r in target.items()}
    quota_by_tier = _place_quotas(tree, target, plan_max, parts, slots)
    quota = {dev.id: quota_by_tier.get(tiers_for(dev)[-1], 0) for dev in devs}
    return ReplicaPlan(target=target, plan_max=plan_max, topo_max=max_replicas(tree, replicas),
                       quota=quota, required_overload=required)


def _place_quotas(tree: dict[Tier, list[Tier]], target: dict[Tier, float],
                  plan_max: dict[Tier, int], parts: int, slots: int) -> dict[Tier, int]:
    """Split ``slots`` part-replicas down the tree by target (largest remainder, capped)."""
    quota: dict[Tier, int] = {}
    stack: list[tuple[Tier, int]] = [((), slots)]
    while stack:
        tier, amount = stack.pop()
        quota[tier] = amount
        kids = tree.get(tier, [])
        if not kids:
            continue
        cap = {k: max(1, plan_max[k]) * parts for k in kids}
        ideal = {k: target[k] * parts for k in kids}
        share = {k: min(cap[k], math.floor(ideal[k] + EPSILON)) for k in kids}
        left = amount - sum(share.values())
        while left > 0:
            room = sorted((k for k in kids if share[k] < cap[k]),
                          key=lambda k: share[k] - ideal[k])
            if not room:
                room = sorted(kids, key=lambda k: share[k] - ideal[k])
            for k in room[:left]:
                share[k] += 1
            left = amount - sum(share.values())
        while left < 0:
            for k in sorted(kids, key=lambda k: ideal[k] - share[k])[:-left]:
                if share[k] > 0:
                    share[k] -= 1
            left = amount - sum(share.values())
        stack.extend((k, share[k]) for k in kids)
    return quota
