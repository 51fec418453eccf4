"""Host weighers: each one vectorized score, Nova's normalisation and multipliers.

A weigher returns raw values for the candidate rows; the pass normalises them to
[0, 1] by min–max (all equal → all 0), multiplies by the weigher's multiplier
(per host: the minimum of the aggregates' ``<name>_weight_multiplier`` metadata,
else the config value) and adds them up in registration order — the same float
operations, in the same order, as ``nova.weights.BaseWeightHandler``. Higher wins;
ties keep host order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nubis.common.errors import ConfigError
from nubis.daemons.scheduler.filters import (
    FilterContext,
    any_aggregate_has,
    min_num_value,
    values_from_key,
)
from nubis.daemons.scheduler.hoststate import FloatArray, IntArray

Values = Callable[[FilterContext, IntArray], FloatArray]


@dataclass(frozen=True)
class Weigher:
    """A registered weigher: raw values plus the name of its multiplier option."""

    name: str
    values: Values
    multiplier: str


WEIGHERS: dict[str, Weigher] = {}


def weigher(name: str, multiplier: str) -> Callable[[Values], Values]:
    """Register a weigher under Nova's class name with its multiplier option."""
    def deco(fn: Values) -> Values:
        WEIGHERS[name] = Weigher(name, fn, multiplier)
        return fn
    return deco


def resolve_weighers(names: tuple[str, ...]) -> list[Weigher]:
    """Return the configured weighers (``all`` = every registered one, in order)."""
    if "all" in names:
        return list(WEIGHERS.values())
    out = []
    for name in names:
        if name not in WEIGHERS:
            known = ", ".join(WEIGHERS)
            raise ConfigError(f"config.toml: [scheduler] weight_classes: unknown weigher "
                              f"{name!r} (known: all, {known})")
        out.append(WEIGHERS[name])
    return out


@weigher("RAMWeigher", "ram_weight_multiplier")
def ram(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Free RAM in MB (spread by default)."""
    return ctx.state.free_ram_mb()[rows].astype(np.float64)


@weigher("CPUWeigher", "cpu_weight_multiplier")
def cpu(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Free vCPUs: ``vcpus_total * cpu_allocation_ratio - vcpus_used``."""
    return ctx.state.vcpus_free()[rows]


@weigher("DiskWeigher", "disk_weight_multiplier")
def disk(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Free disk in MB."""
    return ctx.state.free_disk_mb()[rows].astype(np.float64)


@weigher("IoOpsWeigher", "io_ops_weight_multiplier")
def io_ops(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Concurrent I/O-heavy operations (the default multiplier -1 prefers idle hosts)."""
    return ctx.state.num_io_ops[rows].astype(np.float64)


@weigher("NumInstancesWeigher", "num_instances_weight_multiplier")
def num_instances(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Number of instances on the host."""
    return ctx.state.num_instances[rows].astype(np.float64)


def _members_on_host(ctx: FilterContext, rows: IntArray, policy: str) -> FloatArray:
    out = np.zeros(len(rows), dtype=np.float64)
    if ctx.policy() != policy or not ctx.group_members:
        return out
    counts = np.zeros(ctx.state.n, dtype=np.float64)
    for member in ctx.group_members:
        row = ctx.state.instance_row.get(member)
        if row is not None:
            counts[row] += 1
    return counts[rows]


@weigher("ServerGroupSoftAffinityWeigher", "soft_affinity_weight_multiplier")
def soft_affinity(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Group members already on the host (policy ``soft-affinity``)."""
    return _members_on_host(ctx, rows, "soft-affinity")


@weigher("ServerGroupSoftAntiAffinityWeigher", "soft_anti_affinity_weight_multiplier")
def soft_anti_affinity(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Minus the group members on the host (policy ``soft-anti-affinity``)."""
    return -1 * _members_on_host(ctx, rows, "soft-anti-affinity")


@weigher("BuildFailureWeigher", "build_failure_weight_multiplier")
def build_failures(ctx: FilterContext, rows: IntArray) -> FloatArray:
    """Minus the recent build failures on the host."""
    return -1 * ctx.state.failed_builds[rows].astype(np.float64)


def multiplier(ctx: FilterContext, w: Weigher, rows: IntArray) -> float | FloatArray:
    """Return the multiplier of ``w`` per row (aggregate overrides) or one float."""
    default = float(getattr(ctx.config, w.multiplier))
    if not any_aggregate_has(ctx.state, w.multiplier):
        return default
    per_host = ctx.agg_map(
        lambda aggs: min_num_value(values_from_key(aggs, w.multiplier), default, float),
        np.float64)
    return per_host[rows]  # type: ignore[no-any-return]


def weigh(ctx: FilterContext, weighers: list[Weigher], rows: IntArray) -> FloatArray:
    """Return the summed normalised weights of ``rows``."""
    total = np.zeros(len(rows), dtype=np.float64)
    if len(rows) <= 1:
        return total
    for w in weighers:
        raw = w.values(ctx, rows)
        lo = float(raw.min())
        hi = float(raw.max())
        if lo == hi:
            continue  # normalises to all zeros: adding 0 changes nothing
        norm = (raw - lo) / (hi - lo)
        total += multiplier(ctx, w, rows) * norm
    return total


def best_order(weights: FloatArray, k: int) -> IntArray:
    """Return the positions of the ``k`` highest weights, best first, ties by position.

    PERF: ``k`` argmax scans instead of a full sort (``python -m nubis.bench scheduler``);
    argmax returns the first maximum, which is exactly a stable descending sort.
    """
    n = len(weights)
    if k >= n or k > 16:
        return np.argsort(-weights, kind="stable")[:k]
    w = weights.copy()
    out = np.empty(k, dtype=np.int64)
    for i in range(k):
        j = int(np.argmax(w))
        out[i] = j
        w[j] = -np.inf
    return out
