"""Host weighers: each one vectorized score, Nova's normalisation and multipliers.

A weigher returns raw values for the candidate rows; the pass normalises them to
[0, 1] by min-max (all equal → all 0), multiplies by the weigher's multiplier
(per host: the minimum of the aggregates' ``<name>_weight_multiplier`` metadata,
else the config value) and adds them up in registration order — the same float
operations, in the same order, as ``nova.weights.BaseWeightHandler``. Higher wins;
ties keep host order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.common.errors import ConfigError
from nubis.daemons.scheduler.filters import (
    FilterContext,
    any_aggregate_has,
    min_num_value,
    values_from_key,
)
from nubis.daemons.scheduler.hoststate import BoolArray, FloatArray, IntArray

#: Raw values of the given rows (all rows for ``None``), or ``None`` when constant.
Values = Callable[[FilterContext, "IntArray | None"], "FloatArray | None"]
#: The raw values as ``(column over all rows, factor)``: value = ``column[row] * factor``.
#: ``None`` when the values are constant (they normalise to zeros).
Column = Callable[[FilterContext], "tuple[FloatArray | IntArray, float] | None"]


@dataclass(frozen=True)
class Weigher:
    """A registered weigher: raw values plus the name of its multiplier option."""

    name: str
    values: Values
    multiplier: str
    #: The same values as a stored column (for the fused kernel), if there is one.
    column: Column | None = None


WEIGHERS: dict[str, Weigher] = {}


def weigher(name: str, multiplier: str,
            column: Column | None = None) -> Callable[[Values], Values]:
    """Register a weigher under Nova's class name with its multiplier option."""
    def deco(fn: Values) -> Values:
        WEIGHERS[name] = Weigher(name, fn, multiplier, column)
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


def _take(col: npt.NDArray[Any], n: int, rows: IntArray | None) -> npt.NDArray[Any]:
    return col[:n] if rows is None else col[rows]


@weigher("RAMWeigher", "ram_weight_multiplier",
         lambda ctx: (ctx.state.resources["MEMORY_MB"].free[: ctx.state.n], 1.0))
def ram(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Free RAM in MB (spread by default)."""
    return _take(ctx.state.resources["MEMORY_MB"].free, ctx.state.n, rows)


@weigher("CPUWeigher", "cpu_weight_multiplier",
         lambda ctx: (ctx.state.resources["VCPU"].vfree[: ctx.state.n], 1.0))
def cpu(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Free vCPUs: ``vcpus_total * cpu_allocation_ratio - vcpus_used``."""
    return _take(ctx.state.resources["VCPU"].vfree, ctx.state.n, rows)


@weigher("DiskWeigher", "disk_weight_multiplier",
         lambda ctx: (ctx.state.resources["DISK_GB"].free[: ctx.state.n], 1024.0))
def disk(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Free disk in MB."""
    return _take(ctx.state.resources["DISK_GB"].free, ctx.state.n, rows) * 1024


def _int_column(col: IntArray, n: int, rows: IntArray | None,
                negate: bool = False) -> FloatArray | None:
    if not col[:n].any():
        return None  # all zero: normalises to zeros
    out = _take(col, n, rows).astype(np.float64)
    return -out if negate else out


def _nonzero_column(col: IntArray, factor: float) -> tuple[IntArray, float] | None:
    """Return ``(col, factor)``, or ``None`` for an all-zero column.

    PERF: one SIMD reduction instead of a min/max pass in the kernel, as build
    failures are usually all zero (``python -m nubis.bench scheduler``).
    """
    return (col, factor) if col.any() else None


@weigher("IoOpsWeigher", "io_ops_weight_multiplier",
         lambda ctx: (ctx.state.num_io_ops[: ctx.state.n], 1.0))
def io_ops(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Concurrent I/O-heavy operations (the default multiplier -1 prefers idle hosts)."""
    return _int_column(ctx.state.num_io_ops, ctx.state.n, rows)


@weigher("NumInstancesWeigher", "num_instances_weight_multiplier",
         lambda ctx: (ctx.state.num_instances[: ctx.state.n], 1.0))
def num_instances(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Number of instances on the host."""
    return _int_column(ctx.state.num_instances, ctx.state.n, rows)


def _members_on_host(ctx: FilterContext, rows: IntArray | None,
                     policy: str) -> FloatArray | None:
    if ctx.policy() != policy or not ctx.group_members:
        return None
    counts = np.zeros(ctx.state.n, dtype=np.float64)
    for member in ctx.group_members:
        row = ctx.state.instance_row.get(member)
        if row is not None:
            counts[row] += 1
    return _take(counts, ctx.state.n, rows)


@weigher("ServerGroupSoftAffinityWeigher", "soft_affinity_weight_multiplier")
def soft_affinity(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Group members already on the host (policy ``soft-affinity``)."""
    return _members_on_host(ctx, rows, "soft-affinity")


@weigher("ServerGroupSoftAntiAffinityWeigher", "soft_anti_affinity_weight_multiplier")
def soft_anti_affinity(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Minus the group members on the host (policy ``soft-anti-affinity``)."""
    counts = _members_on_host(ctx, rows, "soft-anti-affinity")
    return None if counts is None else -1 * counts


@weigher("BuildFailureWeigher", "build_failure_weight_multiplier",
         lambda ctx: None if ctx.state.all_below("failed_builds", 1) else
         _nonzero_column(ctx.state.failed_builds[: ctx.state.n], -1.0))
def build_failures(ctx: FilterContext, rows: IntArray | None) -> FloatArray | None:
    """Minus the recent build failures on the host."""
    return _int_column(ctx.state.failed_builds, ctx.state.n, rows, negate=True)


def multiplier(ctx: FilterContext, w: Weigher, rows: IntArray | None) -> float | FloatArray:
    """Return the multiplier of ``w`` per row (aggregate overrides) or one float."""
    default = float(getattr(ctx.config, w.multiplier))
    if not any_aggregate_has(ctx.state, w.multiplier):
        return default
    per_host = ctx.agg_map(
        lambda aggs: min_num_value(values_from_key(aggs, w.multiplier), default, float),
        np.float64)
    return _take(per_host, ctx.state.n, rows)


def weigh(ctx: FilterContext, weighers: list[Weigher], alive: BoolArray,
          count: int) -> tuple[FloatArray, IntArray | None]:
    """Return the summed normalised weights of the alive rows, and those rows.

    The rows are ``None`` when every row is alive (weights then cover all rows).
    Each weight is exactly Nova's ``sum(multiplier * (value - min) / (max - min))``
    over the alive hosts, summed in weigher order.

    PERF: precomputed float columns, no work for constant or zero-multiplier
    weighers, whole-column views when nothing was filtered out, in-place arithmetic
    (``python -m nubis.bench scheduler``).
    """
    n = ctx.state.n
    rows = None if count == n else np.flatnonzero(alive)
    total = np.zeros(count, dtype=np.float64)
    if count <= 1:
        return total, rows
    buf = np.empty(count, dtype=np.float64)
    for w in weighers:
        mult = multiplier(ctx, w, rows)
        if isinstance(mult, float) and mult == 0.0:
            continue  # adds exactly 0.0 to every weight
        raw = w.values(ctx, rows)
        if raw is None:
            continue  # constant: normalises to all zeros
        lo = float(raw.min())
        hi = float(raw.max())
        if lo == hi:
            continue
        np.subtract(raw, lo, out=buf)
        buf /= hi - lo
        # x * 1.0 == x and t + (x * -1.0) == t - x exactly: skip the multiply then.
        if isinstance(mult, float) and mult in (1.0, -1.0):
            if mult == 1.0:
                total += buf
            else:
                total -= buf
            continue
        buf *= mult
        total += buf
    return total, rows


def best_order(weights: FloatArray, rows: IntArray | None, k: int) -> IntArray:
    """Return the rows of the ``k`` highest weights, ties by row order.

    PERF: ``k`` argmax scans instead of a full sort (``python -m nubis.bench scheduler``);
    argmax returns the first maximum, which is exactly a stable descending sort.
    """
    if k > 16:
        idx = np.argsort(-weights, kind="stable")[:k]
    else:
        w = weights.copy()
        idx = np.empty(k, dtype=np.int64)
        for i in range(k):
            j = int(np.argmax(w))
            idx[i] = j
            w[j] = -np.inf
    return idx if rows is None else rows[idx]
