"""The filter/weigher pass over the host-state matrix (no I/O).

For each instance of a request, like Nova's ``FilterScheduler._schedule``: run the
placement pre-filters and the enabled filters (each one mask, counting how many
hosts it removed), weigh the survivors, choose randomly among the best
``host_subset_size``, keep the next best as alternates, and consume the chosen
host's resources in the matrix before placing the next instance. The caller
commits the result atomically or calls :func:`undo`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from nubis.daemons.scheduler import filters as flt
from nubis.daemons.scheduler import weighers as wgh
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.errors import NoValidHost
from nubis.daemons.scheduler.hoststate import FloatArray, HostState, IntArray
from nubis.daemons.scheduler.request import RequestSpec
from nubis.fastpath import sched

#: Request shapes whose weigher extremes an Engine remembers.
_EXTREMES_CACHED = 64


@dataclass(frozen=True)
class Placement:
    """One instance's destination and alternates (row indexes into the matrix)."""

    instance_uuid: str
    row: int
    alternates: tuple[int, ...]
    resources: Mapping[str, int]


@dataclass
class Plan:
    """The outcome of a pass: placements (already consumed in the matrix)."""

    placements: list[Placement] = field(default_factory=list)
    #: Per-filter ``(name, removed, entered)`` of the last instance's pass.
    counts: list[tuple[str, int, int]] = field(default_factory=list)


class Engine:
    """Filters and weighers resolved from config, applied to one HostState."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.filters = flt.resolve_filters(config.enabled_filters)
        self.weighers = wgh.resolve_weighers(config.weight_classes)
        #: The kernel's work space, reused (PERF: no page faults per pass).
        self._scratch = np.empty(0, dtype=np.float64)
        #: Weigher extremes of recent passes, by a rough request shape (a guess only).
        self._extremes: dict[tuple[Any, ...], FloatArray] = {}
        #: The weighers that can add anything, with their multipliers, for one config
        #: and set of aggregate metadata keys (``None``: some multiplier is per host).
        self._weighing: tuple[Any, frozenset[str],
                              list[tuple[wgh.Weigher, float]] | None] = (None, frozenset(), None)

    def context(self, state: HostState, spec: RequestSpec, now: float,
                rng: random.Random) -> flt.FilterContext:
        """Build the per-request context (server-group hosts and members included)."""
        ctx = flt.FilterContext(state=state, spec=spec, config=self.config, now=now, rng=rng)
        group = spec.instance_group
        if group is not None:
            ctx.group_members = set(group.members)
            ctx.group_hosts = set(group.hosts)
            for member in group.members:
                row = state.instance_row.get(member)
                if row is not None:
                    ctx.group_hosts.add(state.names[row])
        return ctx

    def _filters_for(self, spec: RequestSpec) -> list[tuple[str, flt.Filter]]:
        """Return the enabled filters, none for a forced host (as Nova's host manager)."""
        return [] if spec.force_hosts and spec.requested_hosts else self.filters

    def run_filters(self, ctx: flt.FilterContext) -> tuple[np.ndarray, int,
                                                           list[tuple[str, int, int]]]:
        """Return the surviving-rows mask, how many survive, and the per-filter counts."""
        alive = ~ctx.state.retired[: ctx.state.n]
        entered = int(np.count_nonzero(alive))
        counts: list[tuple[str, int, int]] = []
        for name, fn in flt.prefilters(ctx.spec) + self._filters_for(ctx.spec):
            mask = fn(ctx)
            if mask is None:  # every host passes
                counts.append((name, 0, entered))
                continue
            alive &= mask
            left = int(np.count_nonzero(alive))
            counts.append((name, entered - left, entered))
            entered = left
            if left == 0:
                break
        return alive, entered, counts

    def place_one(self, ctx: flt.FilterContext) -> tuple[Placement | None,
                                                          list[tuple[str, int, int]]]:
        """Filter, weigh and choose a host for ``ctx.instance_uuid``."""
        k = self.config.host_subset_size + self.config.max_attempts - 1
        fast = self.fused_pass(ctx, k)
        if fast is not None:
            count, best = fast
            counts: list[tuple[str, int, int]] = []
            if count == 0:  # explain it: which filter removed how many
                return None, self.run_filters(ctx)[2]
            order = [int(r) for r in best]
        else:
            alive, count, counts = self.run_filters(ctx)
            if count == 0:
                return None, counts
            weights, rows = wgh.weigh(ctx, self.weighers, alive, count)
            order = [int(r) for r in wgh.best_order(weights, rows, min(count, k))]
        subset = min(self.config.host_subset_size, count)
        chosen = order.pop(ctx.rng.randrange(subset))
        alternates = tuple(order[: self.config.max_attempts - 1])
        return Placement(ctx.instance_uuid, chosen, alternates,
                         ctx.memo("resources", ctx.spec.resources)), counts

    def fused_pass(self, ctx: flt.FilterContext,
                   k: int) -> tuple[int, IntArray] | None:
        """Run the filters and weighers with the fused kernel; ``None`` if it can't.

        Returns the survivor count and the ``k`` best rows, the same as
        :meth:`run_filters` + :func:`weighers.weigh` + :func:`weighers.best_order`
        (without the per-filter counts, which only a failure needs).

        PERF: the resource fit and every weigher run in one compiled two-pass kernel
        over the columns; the other filters' masks come mostly from the SigColumn
        caches (``python -m nubis.bench scheduler``).
        """
        st, n = ctx.state, ctx.state.n
        terms = self._terms(ctx)
        if terms is None:
            return None
        alive = ~st.retired[:n]
        limits = []
        amounts = []
        for rc, amount in ctx.memo("resources", ctx.spec.resources).items():
            cols = st.resources.get(rc)
            if cols is None:
                return 0, np.empty(0, dtype=np.int64)
            if cols.units_trivial:
                limits.append(cols.limit[:n])
                amounts.append(amount)
            else:
                alive &= cols.fits(amount, n)
        if len(limits) > sched.MAX_TERMS:
            return None
        placement = ctx.memo("placement_filters", lambda: flt.placement_filters(ctx.spec))
        key: list[Any] = [n, len(terms), *amounts]
        for _name, fn in placement + self._filters_for(ctx.spec):
            mask = fn(ctx)
            if mask is not None:
                alive &= mask
                key.append(id(mask if mask.base is None else mask.base))
        if len(self._scratch) < 2 * n + 2:
            self._scratch = np.empty(2 * st.size + 2, dtype=np.float64)
        # PERF: the weighers' min/max over the survivors of a request like this one
        # (same amounts, same filter masks) rarely change, so the kernel can weigh in
        # its first sweep and skip the second; a wrong guess costs only the second
        # sweep (``python -m nubis.bench scheduler``).
        pkey = tuple(key)
        bounds = np.empty(2 * len(terms), dtype=np.float64)
        found = sched.select(alive.view(np.uint8), limits, amounts, terms, k, self._scratch,
                             self._extremes.get(pkey), bounds)
        if len(self._extremes) >= _EXTREMES_CACHED:
            self._extremes.clear()
        self._extremes[pkey] = bounds
        return found  # type: ignore[no-any-return]

    def _active_weighers(self, ctx: flt.FilterContext) -> list[tuple[wgh.Weigher, float]] | None:
        """Return the weighers with a non-zero multiplier, ``None`` if one is per host.

        PERF: memoized until the aggregates' metadata keys change
        (``python -m nubis.bench scheduler``).
        """
        keys = ctx.state.aggregate_keys()
        if self._weighing[0] is not ctx.config or self._weighing[1] is not keys:
            active: list[tuple[wgh.Weigher, float]] = []
            for w in self.weighers:
                mult = float(getattr(ctx.config, w.multiplier))
                if mult != 0.0:  # zero adds exactly 0.0 to every weight
                    active.append((w, mult))
            per_host = any(w.multiplier in keys for w in self.weighers)
            self._weighing = (ctx.config, keys, None if per_host else active)
        return self._weighing[2]

    def _terms(self, ctx: flt.FilterContext) -> list[tuple[Any, float, float]] | None:
        """Return the kernel's weigher terms, or ``None`` for per-host multipliers."""
        active = self._active_weighers(ctx)
        if active is None:
            return None
        terms: list[tuple[Any, float, float]] = []
        for w, mult in active:
            if w.column is not None:
                column = w.column(ctx)
                if column is not None:
                    terms.append((column[0], column[1], mult))
                continue
            raw = w.values(ctx, None)
            if raw is not None:
                terms.append((np.ascontiguousarray(raw, dtype=np.float64), 1.0, mult))
        return terms if len(terms) <= sched.MAX_TERMS else None

    def plan(self, state: HostState, spec: RequestSpec, now: float,
             rng: random.Random | None = None) -> Plan:
        """Place every instance of ``spec`` (consuming in ``state``) or raise NoValidHost.

        At least ``spec.min_count`` instances must fit, else nothing is consumed.
        """
        ctx = self.context(state, spec, now, rng or random.Random())
        plan = Plan()
        for uuid in spec.instance_uuids:
            ctx.instance_uuid = uuid
            placement, plan.counts = self.place_one(ctx)
            if placement is None:
                break
            state.add_instance(placement.row, uuid, placement.resources)
            ctx.group_hosts.add(state.names[placement.row])
            plan.placements.append(placement)
        if len(plan.placements) < spec.min_count:
            reason = explain(plan, len(spec.instance_uuids))
            undo(state, plan)
            raise NoValidHost(reason, plan.counts)
        return plan


def undo(state: HostState, plan: Plan) -> None:
    """Give back what ``plan`` consumed in the matrix."""
    for p in reversed(plan.placements):
        state.remove_instance(p.instance_uuid, p.resources)
    plan.placements.clear()


def explain(plan: Plan, wanted: int) -> str:
    """Return NoValidHost's reason: which filter removed how many hosts."""
    parts = [f"{name}: {removed:,} of {entered:,} removed"
             for name, removed, entered in plan.counts if removed]
    head = "No valid host was found."
    if wanted > 1:
        head += f" Placed {len(plan.placements)} of {wanted} instances; the next one failed."
    if not plan.counts:
        return head + " There are no compute hosts."
    return f"{head} {'; '.join(parts)}" if parts else head
