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

import numpy as np
from nubis.daemons.scheduler import filters as flt
from nubis.daemons.scheduler import weighers as wgh
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.errors import NoValidHost
from nubis.daemons.scheduler.hoststate import HostState
from nubis.daemons.scheduler.request import RequestSpec


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

    def run_filters(self, ctx: flt.FilterContext) -> tuple[np.ndarray, int,
                                                           list[tuple[str, int, int]]]:
        """Return the surviving-rows mask, how many survive, and the per-filter counts."""
        alive = ~ctx.state.retired[: ctx.state.n]
        entered = int(np.count_nonzero(alive))
        counts: list[tuple[str, int, int]] = []
        for name, fn in flt.prefilters(ctx.spec) + self.filters:
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
        alive, count, counts = self.run_filters(ctx)
        if count == 0:
            return None, counts
        weights, rows = wgh.weigh(ctx, self.weighers, alive, count)
        subset = min(self.config.host_subset_size, count)
        k = min(count, subset + self.config.max_attempts - 1)
        order = [int(r) for r in wgh.best_order(weights, rows, k)]
        chosen = order.pop(ctx.rng.randrange(subset))
        alternates = tuple(order[: self.config.max_attempts - 1])
        return Placement(ctx.instance_uuid, chosen, alternates, ctx.spec.resources()), counts

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
