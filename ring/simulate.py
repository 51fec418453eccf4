"""What-if simulation: apply changes to a copy of a builder and rebalance until it settles.

Nothing is written: the builder is loaded, changed and rebalanced in memory. The
first rebalance happens "now" (partitions still inside ``min_part_hours`` stay put);
each further one is ``min_part_hours`` later, as an operator would space them, until
a rebalance moves nothing or leaves balance and dispersion where they were.

A *change* is one of (search values as in swift-ring-builder: ``d3``, ``r1z2``, ...):

* ``add <add_value> <weight>`` — a new device (``r1z1-10.0.0.1:6200/sdb``);
* ``remove <search>`` — every matching device, drained and dropped;
* ``set_weight <search> <weight>`` — every matching device;
* ``fail <search>`` — a failure of every matching device (``fail r2`` loses a region,
  ``fail r1z3`` a zone): their replicas are rebuilt elsewhere, as for a removal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.ring.builder import RingBuilder
from nubis.ring.devices import Device, parse_add_value, parse_search_value
from nubis.ring.errors import RingBuilderError

#: Arguments each change verb takes.
CHANGE_ARITY = {"add": 2, "remove": 1, "set_weight": 2, "fail": 1}
#: Balance (percent) at or below which a ring counts as balanced (swift-ring-builder's NOTE).
BALANCED = 1.0


@dataclass(frozen=True)
class Change:
    """One what-if change: a verb and its arguments."""

    verb: str
    args: tuple[str, ...]

    def describe(self) -> str:
        """Return the change as typed."""
        return " ".join((self.verb, *self.args))


@dataclass(frozen=True)
class Round:
    """One simulated rebalance.

    Attributes:
        hours: Hours after now at which it runs.
        moved: Part-replicas it reassigned.
        balance: Balance after it.
        dispersion: Dispersion after it.
    """

    hours: int
    moved: int
    balance: float
    dispersion: float


@dataclass(frozen=True)
class Simulation:
    """What the changes would do.

    Attributes:
        changes: The changes, as typed.
        rounds: The rebalances until the ring settled (or the limit).
        converged: Whether the last rebalance settled the ring.
        moved: Part-replicas whose device changed, first table to last.
        per_device: Rows ``{id, device, region, zone, weight, gained, lost, parts}``.
        per_zone: Rows ``{region, zone, gained, lost}``.
        bytes_per_replica: Bytes one part-replica holds (0 when unknown).
        parts: The ring's partition count.
    """

    changes: list[str]
    rounds: list[Round]
    converged: bool
    moved: int
    per_device: list[dict[str, Any]] = field(default_factory=list)
    per_zone: list[dict[str, Any]] = field(default_factory=list)
    bytes_per_replica: float = 0.0
    parts: int = 0

    @property
    def bytes_copied(self) -> float:
        """Return the bytes replication would copy (moved part-replicas x their size)."""
        return self.moved * self.bytes_per_replica

    def to_json(self) -> dict[str, Any]:
        """Return the simulation as plain JSON data."""
        return {"changes": self.changes, "converged": self.converged,
                "rebalances": len(self.rounds), "moved": self.moved,
                "moved_percent": 100.0 * self.moved / self.parts if self.parts else 0.0,
                "bytes_copied": self.bytes_copied,
                "rounds": [r.__dict__ for r in self.rounds],
                "per_zone": self.per_zone, "per_device": self.per_device}


def parse_changes(argv: list[str]) -> list[Change]:
    """Split ``add X W remove S ...`` into changes.

    Raises:
        RingBuilderError: an unknown verb or a verb missing its arguments.
    """
    changes: list[Change] = []
    i = 0
    while i < len(argv):
        verb = argv[i]
        arity = CHANGE_ARITY.get(verb)
        if arity is None:
            raise RingBuilderError(f"unknown change {verb!r} (expected one of "
                                   f"{', '.join(CHANGE_ARITY)})")
        args = tuple(argv[i + 1:i + 1 + arity])
        if len(args) != arity:
            raise RingBuilderError(f"change {verb!r} needs {arity} argument(s)")
        changes.append(Change(verb, args))
        i += 1 + arity
    if not changes:
        raise RingBuilderError("simulate needs at least one change, e.g. "
                               "simulate add r1z1-10.0.0.1:6200/sdb 100")
    return changes


def apply_change(builder: RingBuilder, change: Change) -> None:
    """Apply one change to ``builder``.

    Raises:
        RingError: a bad add value, weight, or a search matching no device.
    """
    if change.verb == "add":
        fields = parse_add_value(change.args[0])
        builder.add_dev(weight=_weight(change.args[1]), **fields)
        return
    devs = builder.search_devs(parse_search_value(change.args[0]))
    if not devs:
        raise RingBuilderError(f"no device matches {change.args[0]!r}")
    for dev in devs:
        if change.verb == "set_weight":
            builder.set_dev_weight(dev.id, _weight(change.args[1]))
        else:  # remove, fail
            builder.remove_dev(dev.id)


def _weight(text: str) -> float:
    """Parse a weight or raise a one-line RingBuilderError."""
    try:
        return float(text)
    except ValueError:
        raise RingBuilderError(f"invalid weight: {text!r}") from None


def simulate(builder: RingBuilder, changes: list[Change], max_rebalances: int = 10,
             bytes_per_replica: float = 0.0, seed: int | None = None) -> Simulation:
    """Apply ``changes`` to ``builder`` (changed in place) and rebalance until settled.

    Raises:
        RingBuilderError: the ring was never rebalanced, or cannot be after the changes.
    """
    if builder.table is None:
        raise RingBuilderError("the ring has not been rebalanced yet; nothing to simulate")
    start = builder.table.copy()
    devs_before = list(builder.devs)
    for change in changes:
        apply_change(builder, change)
    now = builder.clock()
    hours = 0
    rounds: list[Round] = []
    converged = False
    for n in range(max_rebalances):
        builder.clock = _fixed_clock(now + hours * 3600)
        pinned = builder.min_part_seconds_left() > 0
        before = (builder.get_balance(), builder.dispersion)
        result = builder.rebalance(seed=None if seed is None else seed + n)
        rounds.append(Round(hours, result.changed, result.balance, result.dispersion))
        if _settled(result.changed, pinned, before, (result.balance, result.dispersion)):
            converged = True
            break
        hours += max(builder.min_part_hours, 1)
    per_device, per_zone, moved = _moves(start, builder, devs_before)
    return Simulation(changes=[c.describe() for c in changes], rounds=rounds,
                      converged=converged, moved=moved, per_device=per_device,
                      per_zone=per_zone, bytes_per_replica=bytes_per_replica,
                      parts=builder.parts)


def _fixed_clock(when: float) -> Callable[[], float]:
    """Return a clock that always says ``when``."""
    return lambda: when


def _settled(changed: int, pinned: bool, before: tuple[float, float],
             after: tuple[float, float]) -> bool:
    """Tell whether a rebalance left the ring where more rebalances would not improve it."""
    if changed == 0:
        return not pinned  # pinned by min_part_hours: the next one may move
    if after[0] <= BALANCED and after[1] <= before[1]:
        return True
    return abs(before[0] - after[0]) < 0.01 and abs(before[1] - after[1]) < 0.01


def _moves(start: npt.NDArray[np.int32], builder: RingBuilder,
           devs_before: list[Device | None]) -> tuple[list[dict[str, Any]],
                                                      list[dict[str, Any]], int]:
    """Return per-device rows, per-zone rows and the total part-replicas moved."""
    end = builder.table
    assert end is not None
    rows = min(start.shape[0], end.shape[0])
    diff = (start[:rows] != end[:rows]) & (end[:rows] >= 0)
    devs: dict[int, Device] = {d.id: d for d in devs_before if d is not None}
    devs.update({d.id: d for d in builder.iter_devs()})
    size = max(devs, default=-1) + 2
    gained = np.bincount(end[:rows][diff] + 1, minlength=size)[1:]
    lost = np.bincount(start[:rows][diff & (start[:rows] >= 0)] + 1, minlength=size)[1:]
    if end.shape[0] > rows:  # new replica rows: all gained
        extra = end[rows:]
        gained = gained + np.bincount(extra[extra >= 0] + 1, minlength=size)[1:]
    parts = builder.dev_parts()
    per_device: list[dict[str, Any]] = []
    zones: dict[tuple[int, int], dict[str, Any]] = {}
    for dev_id, dev in sorted(devs.items()):
        g, lo = int(gained[dev_id]), int(lost[dev_id])
        gone = dev_id >= len(builder.devs) or builder.devs[dev_id] is None
        if g or lo or gone:
            per_device.append({"id": dev_id, "device": dev.describe(), "region": dev.region,
                               "zone": dev.zone, "weight": 0.0 if gone else
                               builder.devs[dev_id].weight,  # type: ignore[union-attr]
                               "gained": g, "lost": lo,
                               "parts": 0 if gone else int(parts[dev_id]),
                               "removed": gone})
        zone = zones.setdefault((dev.region, dev.zone), {"region": dev.region,
                                                         "zone": dev.zone, "gained": 0,
                                                         "lost": 0})
        zone["gained"] += g
        zone["lost"] += lo
    moved = int(gained.sum())
    return per_device, [z for _, z in sorted(zones.items())], moved
