"""The ring builder: devices, the partition assignment, and its statistics.

:class:`RingBuilder` keeps what Swift's builder keeps — devices, the
replica→partition→device table, the hours since each partition last moved —
and rebalances with the vectorized algorithm in :mod:`nubis.ring.rebalance`.
Balance and dispersion have swift-ring-builder's meaning:

* balance: the largest percentage by which a device's part-replica count
  differs from its weighted share (999.99 for a zero-weight device holding any);
* dispersion: the percentage of part-replicas placed in a tier that already holds
  more replicas of that partition than the topology requires.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import compress, count, repeat
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.ring import rebalance as rb
from nubis.ring.devices import Device, matches, normalize_address
from nubis.ring.errors import DeviceError, RingBuilderError, RingValidationError
from nubis.ring.plan import ReplicaPlan, build_plan
from nubis.ring.ringdata import MAX_PART_POWER, RingData, expected_row_lengths, smallest_dtype
from nubis.ring.topology import Topology, build_topology

MAX_BALANCE = 999.99
#: Rebalance gathers for balance at most this many times (like Swift's gather loop).
BALANCE_ROUNDS = 3
MAX_HOURS = 255


@dataclass(frozen=True)
class RebalanceResult:
    """What a rebalance did.

    Attributes:
        changed: Part-replicas whose device changed (Swift's "reassigned").
        balance: Balance after the rebalance.
        removed: Devices removed for good by this rebalance.
        dispersion: Dispersion after the rebalance.
    """

    changed: int
    balance: float
    removed: int
    dispersion: float


class RingBuilder:
    """Build and rebalance a ring (see the module docstring).

    Args:
        part_power: The ring has ``2 ** part_power`` partitions (0..32).
        replicas: Replicas per partition, >= 1; a fraction makes the last row short.
        min_part_hours: Hours before a moved partition may move again.
        overload: Extra fraction of its weighted share a device may take for dispersion.
    """

    def __init__(self, part_power: int, replicas: float, min_part_hours: int,
                 overload: float = 0.0) -> None:
        check_part_power(part_power)
        check_replicas(replicas)
        check_min_part_hours(min_part_hours)
        self.part_power = part_power
        self.replicas = float(replicas)
        self.min_part_hours = min_part_hours
        self.overload = check_overload(overload)
        self.version = 0
        self.devs: list[Device | None] = []
        self.devs_changed = False
        self.dispersion = 0.0
        self.id = uuid.uuid4().hex
        self.table: npt.NDArray[np.int32] | None = None
        self._last_part_moves: npt.NDArray[np.uint8] | None = None  # allocated on first use
        self.last_part_moves_epoch = 0
        self.remove_devs: list[int] = []
        self.clock: Callable[[], float] = time.time
        #: (ip, port, device) -> device id, built on first use (a cache, never saved).
        self._addresses: dict[tuple[str, int, str], int] | None = None
        #: The last replica plan and what it was computed from (a cache, never saved).
        self._plan: tuple[tuple[Any, ...], ReplicaPlan] | None = None
        self._plan_epoch = 0

    # ---------------------------------------------------------------- basics

    @property
    def parts(self) -> int:
        """Return the partition count."""
        return 1 << self.part_power

    @property
    def last_part_moves(self) -> npt.NDArray[np.uint8]:
        """Return hours since each partition last moved (255 = long ago)."""
        if self._last_part_moves is None:
            self._last_part_moves = np.full(self.parts, MAX_HOURS, dtype=np.uint8)
        return self._last_part_moves

    @last_part_moves.setter
    def last_part_moves(self, value: npt.NDArray[np.uint8]) -> None:
        self._last_part_moves = value

    def move_history(self) -> npt.NDArray[np.uint8] | None:
        """Return the move-hours array if it was ever allocated (what a builder file keeps)."""
        return self._last_part_moves

    @property
    def ever_rebalanced(self) -> bool:
        """Tell whether the ring has an assignment table."""
        return self.table is not None

    @property
    def row_lengths(self) -> list[int]:
        """Return the length of each replica row for the current replica count."""
        return [int(n) for n in expected_row_lengths(self.part_power, self.replicas)]

    def iter_devs(self) -> list[Device]:
        """Return the existing devices (no holes)."""
        return [d for d in self.devs if d is not None]

    def get_dev(self, dev_id: int) -> Device:
        """Return the device with ``dev_id``.

        Raises:
            DeviceError: no such device.
        """
        if 0 <= dev_id < len(self.devs) and self.devs[dev_id] is not None:
            return self.devs[dev_id]  # type: ignore[return-value]
        raise DeviceError(f"no device with id {dev_id}")

    def weight_of_one_part(self) -> float:
        """Return part-replicas per unit of weight.

        Raises:
            RingBuilderError: the ring has no weight at all.
        """
        total = sum(d.weight for d in self.iter_devs())
        if total <= 0:
            raise RingBuilderError("there are no devices with weight in this ring")
        return float(self.parts * self.replicas / total)

    def min_part_seconds_left(self) -> int:
        """Return seconds until ``min_part_hours`` have passed since the last rebalance."""
        elapsed = int(self.clock() - self.last_part_moves_epoch)
        return max(self.min_part_hours * 3600 - elapsed, 0)

    # -------------------------------------------------------------- mutation

    def add_dev(self, *, region: int, zone: int, ip: str, port: int, device: str,
                weight: float, meta: str = "", replication_ip: str | None = None,
                replication_port: int | None = None, dev_id: int | None = None) -> int:
        """Add a device (takes effect at the next rebalance); return its id.

        Raises:
            DeviceError: bad field, duplicate id, or ip:port/device already used.
        """
        ip = normalize_address(ip)
        rep_ip = normalize_address(replication_ip) if replication_ip else ip
        _check_fields(region, zone, port, replication_port or port, device, weight)
        _check_meta(meta)
        if dev_id is None:
            # PERF: an identity scan in C, no Device.__eq__ (bench: ring scale)
            holes = compress(count(), map(operator.is_, self.devs, repeat(None)))
            dev_id = next(holes, len(self.devs))
        if dev_id < 0:
            raise DeviceError(f"invalid device id {dev_id}")
        if dev_id < len(self.devs) and self.devs[dev_id] is not None:
            raise DeviceError(f"duplicate device id {dev_id}")
        self._check_unique(ip, port, device)
        dev = Device(id=dev_id, region=region, zone=zone, ip=ip, port=port, device=device,
                     weight=float(weight), meta=meta, replication_ip=rep_ip,
                     replication_port=replication_port or port)
        while len(self.devs) <= dev_id:
            self.devs.append(None)
        self.devs[dev_id] = dev
        self._changed()
        if self._addresses is not None:
            self._addresses[ip, port, device] = dev_id
        return dev_id

    def _check_unique(self, ip: str, port: int, device: str, skip: int = -1) -> None:
        """Raise if another device already serves ``ip:port/device``."""
        # PERF: an address index built once, not a scan per added device (bench: ring scale)
        if self._addresses is None:
            self._addresses = {(d.ip, d.port, d.device): d.id for d in self.iter_devs()}
        other = self._addresses.get((ip, port, device))
        dev = self.devs[other] if other is not None and other < len(self.devs) else None
        if dev is not None and dev.id != skip and (dev.ip, dev.port, dev.device) == \
                (ip, port, device):
            raise DeviceError(f"device d{dev.id} already uses {ip}:{port}/{device}")

    def set_dev_weight(self, dev_id: int, weight: float) -> None:
        """Set a device's weight.

        Raises:
            DeviceError: unknown device, bad weight, or device marked for removal.
        """
        dev = self.get_dev(dev_id)
        if dev_id in self.remove_devs:
            raise DeviceError(f"device d{dev_id} is marked for removal")
        if not (weight >= 0 and math.isfinite(weight)):
            raise DeviceError(f"invalid weight {weight!r} (must be a number >= 0)")
        self.devs[dev_id] = dev.with_changes(weight=float(weight))
        self._changed()

    def set_dev_info(self, dev_id: int, changes: dict[str, Any]) -> Device:
        """Change ip/port/replication ip/port/device name/meta of a device; return it.

        Raises:
            DeviceError: unknown device, bad value, or the new ip:port/device is taken.
        """
        dev = self.get_dev(dev_id)
        new = dev.with_changes(**changes)
        _check_fields(new.region, new.zone, new.port, new.replication_port, new.device,
                      new.weight)
        _check_meta(new.meta)
        self._check_unique(new.ip, new.port, new.device, skip=dev_id)
        self.devs[dev_id] = new
        self._addresses = None
        self._changed()
        return new

    def remove_dev(self, dev_id: int) -> None:
        """Mark a device for removal: its weight drops to 0 and the next rebalance drops it."""
        dev = self.get_dev(dev_id)
        self.devs[dev_id] = dev.with_changes(weight=0.0)
        if dev_id not in self.remove_devs:
            self.remove_devs.append(dev_id)
        self._changed()

    def set_replicas(self, replicas: float) -> None:
        """Change the replica count (applied at the next rebalance)."""
        check_replicas(replicas)
        if expected_row_lengths(self.part_power, replicas) != self.row_lengths:
            self.devs_changed = True
        self.replicas = float(replicas)
        self.version += 1

    def set_overload(self, overload: float) -> None:
        """Set the overload fraction (0.1 = 10%)."""
        self.overload = check_overload(overload)
        self.version += 1

    def change_min_part_hours(self, hours: int) -> None:
        """Set ``min_part_hours``."""
        check_min_part_hours(hours)
        self.min_part_hours = hours
        self.version += 1

    def pretend_min_part_hours_passed(self) -> None:
        """Mark every partition as moved long ago, so the next rebalance may move any."""
        self.last_part_moves_epoch = 0
        if self._last_part_moves is not None:
            self._last_part_moves[:] = MAX_HOURS

    def _changed(self) -> None:
        self.devs_changed = True
        self.version += 1
        self._plan_epoch += 1

    # --------------------------------------------------------------- search

    def search_devs(self, search: dict[str, Any]) -> list[Device]:
        """Return the devices matching a parsed search value."""
        return [d for d in self.iter_devs() if matches(d, search)]

    # ------------------------------------------------------------ rebalance

    def replica_plan(self) -> ReplicaPlan:
        """Compute the replica plan for the current devices.

        Raises:
            RingBuilderError: no weight, or fewer weighted devices than replicas.
        """
        # PERF: one plan per device change, not one per caller (bench: ring scale)
        key = (self._plan_epoch, id(self.devs), len(self.devs), self.replicas, self.overload,
               self.part_power, tuple(self.remove_devs))
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        weighted = [d for d in self.iter_devs()
                    if d.weight > 0 and d.id not in self.remove_devs]
        if not weighted:
            raise RingBuilderError("cannot rebalance: no devices, or all weights are zero")
        if len(weighted) < self.replicas:
            raise RingBuilderError(f"replica count of {self.replicas:g} requires at least "
                                   f"{math.ceil(self.replicas)} devices with weight "
                                   f"(have {len(weighted)})")
        plan = build_plan(weighted, self.replicas, self.overload, self.parts,
                          sum(self.row_lengths))
        self._plan = (key, plan)
        return plan

    def rebalance(self, seed: int | None = None,
                  progress: rb.Progress | None = None) -> RebalanceResult:
        """Reassign part-replicas to devices (see :mod:`nubis.ring.rebalance`).

        Raises:
            RingBuilderError: the ring cannot be balanced (no weight, too few devices).
        """
        plan = self.replica_plan()
        self._check_memory()
        topo = build_topology(self.devs, plan)
        rng = np.random.default_rng(seed)
        self._update_last_part_moves()
        old = self.table
        if old is None:
            _say(progress, "initial assignment")
            table = rb.initial_assignment(topo, self.row_lengths, self.parts, rng)
        else:
            table = self._resized_table(old)
            if self._anything_movable(table):
                table = self._reassign(table, topo, rng, progress)
            else:
                _say(progress, "nothing may move yet (min_part_hours)")
                if table.shape == old.shape and all(
                        (old[r, length:] < 0).all() for r, length in enumerate(self.row_lengths)):
                    table = old  # PERF: unchanged; no diff needed (bench: ring scale no-op)
        if table is old:
            changed = 0
        else:
            changed_parts, changed = _changes(old, table)
            self.last_part_moves[changed_parts] = 0
        self.table = table
        gone = [i for i in self.remove_devs if 0 <= i < topo.n]
        removed = self._drop_removed()
        self.devs_changed = False
        self.version += 1
        _say(progress, "computing dispersion")
        # PERF: the rebalance's own topology serves the statistics; dropped devices had
        # weight 0, so the plan is the same and they only stop existing (bench: ring
        # scale, remove a zone)
        stats_topo = topo
        if removed:
            exists = topo.exists.copy()
            exists[gone] = False
            stats_topo = dataclasses.replace(topo, exists=exists)
        value, _ = rb.dispersion(table, stats_topo, self.replicas)
        self.dispersion = float(value)
        return RebalanceResult(changed=changed, balance=self.get_balance(), removed=removed,
                               dispersion=self.dispersion)

    def _check_memory(self) -> None:
        """Refuse a rebalance that cannot fit in this machine's memory."""
        # the table is int32; a rebalance holds about eight table-sized temporaries
        need = len(self.row_lengths) * self.parts * 4 * 8
        try:
            have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return
        if need > have:
            raise RingBuilderError(f"rebalancing 2**{self.part_power} partitions x "
                                   f"{self.replicas:g} replicas needs about {need / 2**30:.0f} "
                                   f"GiB of memory; this machine has {have / 2**30:.0f} GiB")

    def _resized_table(self, old: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """Return a copy of ``old`` with rows added/cut for the current replica count."""
        lengths = self.row_lengths
        table = np.full((len(lengths), self.parts), -1, dtype=np.int32)
        for r, length in enumerate(lengths[:old.shape[0]]):
            table[r, :length] = old[r, :length]
        return table

    def _reassign(self, table: npt.NDArray[np.int32], topo: Topology,
                  rng: np.random.Generator,
                  progress: rb.Progress | None) -> npt.NDArray[np.int32]:
        """Gather what must move (removed devices, dispersion, balance) and place it."""
        slots = rb.row_mask(self.row_lengths, self.parts)
        table[~slots] = -1
        # PERF: the previous table is the origin when the shape is unchanged, saving a
        # table-sized copy (bench: ring scale, peak RSS)
        previous = self.table
        origin = previous if previous is not None and previous.shape == table.shape \
            else table.copy()
        # partitions getting a replica in a new row count as moved (as in Swift)
        moved: npt.NDArray[np.bool_] = np.asarray((slots & (table < 0)).any(axis=0))
        if self.remove_devs:
            # PERF: a per-device mask, indexed by the table (bench: ring scale, remove a zone)
            removing = np.zeros(topo.n + 1, dtype=np.bool_)  # index -1: empty slot
            removing[[i for i in self.remove_devs if 0 <= i < topo.n]] = True
            gone = removing[table]
            table[gone] = -1
            moved |= gone.any(axis=0)
        moved |= rb.gather_for_dispersion(table, topo, self._movable(moved))
        _say(progress, "placing gathered part-replicas")
        rb.place(table, topo, slots, rng, progress)
        touched = rb.gather_for_balance(table, topo, self._movable(moved), rng)
        if touched.any():
            moved |= touched
            _say(progress, "placing part-replicas for balance")
            rb.place(table, topo, slots, rng, progress, origin)
        for _ in range(BALANCE_ROUNDS):
            if (rb.device_counts(table, topo.n) <= topo.quota).all():
                break
            _say(progress, "moving part-replicas to under-filled devices")
            touched = rb.pull_for_balance(table, topo, self._movable(moved), rng)
            if not touched.any():
                break
            moved |= touched
        return table

    def _anything_movable(self, table: npt.NDArray[np.int32]) -> bool:
        """Tell whether a rebalance could change anything at all.

        Nothing can move when every slot is filled, no replica sits on a device
        being removed, and ``min_part_hours`` holds every partition in place. Found
        in time linear in the partition count, before any gathering or placing.
        """
        # PERF: the no-op rebalance ends here (bench: ring, no-op scenarios)
        gone = np.zeros(len(self.devs) + 1, dtype=np.bool_)
        gone[[i for i in self.remove_devs if 0 <= i < len(self.devs)]] = True
        for r, length in enumerate(self.row_lengths):
            row = table[r, :length]
            if (row < 0).any() or gone[row].any():  # empty slot, or on a device being removed
                return True
        hours = min(self.min_part_hours, MAX_HOURS)
        return bool(hours == 0 or (self.last_part_moves >= hours).any())

    def _movable(self, moved: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Return partitions that may move now (min_part_hours passed, not moved yet)."""
        return (self.last_part_moves >= min(self.min_part_hours, MAX_HOURS)) & ~moved

    def _update_last_part_moves(self) -> None:
        """Age every partition by the whole hours since the last rebalance."""
        now = self.clock()
        elapsed = int(now - self.last_part_moves_epoch) // 3600
        if elapsed <= 0:
            return
        aged = self.last_part_moves.astype(np.int64) + elapsed
        self.last_part_moves = np.minimum(aged, MAX_HOURS).astype(np.uint8)
        self.last_part_moves_epoch = int(now)

    def _drop_removed(self) -> int:
        """Forget devices marked for removal; return how many."""
        count = 0
        for dev_id in self.remove_devs:
            if 0 <= dev_id < len(self.devs) and self.devs[dev_id] is not None:
                self.devs[dev_id] = None
                count += 1
        self.remove_devs = []
        self._addresses = None
        while self.devs and self.devs[-1] is None:
            self.devs.pop()
        return count

    # ------------------------------------------------------------ statistics

    def dev_parts(self) -> npt.NDArray[np.int64]:
        """Return part-replica counts indexed by device id."""
        if self.table is None:
            return np.zeros(len(self.devs), dtype=np.int64)
        counts: npt.NDArray[np.int64] = rb.device_counts(self.table, len(self.devs))
        return counts

    def balance_per_dev(self) -> dict[int, float]:
        """Return each device's balance (percent above/below its weighted share)."""
        counts = self.dev_parts()
        if not any(d.weight for d in self.iter_devs()):
            return {d.id: (MAX_BALANCE if counts[d.id] else 0.0) for d in self.iter_devs()}
        wop = self.weight_of_one_part()
        out: dict[int, float] = {}
        for dev in self.iter_devs():
            if not dev.weight:
                out[dev.id] = MAX_BALANCE if counts[dev.id] else 0.0
            else:
                out[dev.id] = 100.0 * float(counts[dev.id]) / (dev.weight * wop) - 100.0
        return out

    def get_balance(self) -> float:
        """Return the ring's balance (the worst device's absolute balance)."""
        per_dev = self.balance_per_dev()
        return max((abs(b) for b in per_dev.values()), default=0.0)

    def get_required_overload(self) -> float:
        """Return the overload (fraction) needed for full dispersion."""
        return float(self.replica_plan().required_overload)

    def _stats_topology(self) -> Topology:
        """Return a topology for statistics (plan from current weights)."""
        return build_topology(self.devs, self.replica_plan())

    def get_dispersion(self) -> float:
        """Return Swift's dispersion of the current table (0 when not balanced yet)."""
        if self.table is None:
            return 0.0
        value, _ = rb.dispersion(self.table, self._stats_topology(), self.replicas)
        return float(value)

    def dispersion_report(self) -> dict[str, Any]:
        """Return dispersion, balance, overloads and per-tier replica histograms."""
        if self.table is None:
            raise RingBuilderError("the ring has not been rebalanced yet")
        topo = self._stats_topology()
        plan = self.replica_plan()
        value, _ = rb.dispersion(self.table, topo, self.replicas)
        tiers: list[dict[str, Any]] = []
        for level in range(4):
            ids, matrix = rb.dispersion_graph(self.table, topo, level)
            for tid, row in zip(ids.tolist(), matrix.tolist(), strict=True):
                tier = topo.tier_names[level].get(tid)
                if tier is None:
                    continue
                max_r = plan.topo_max.get(tier, 0.0)
                at_risk = sum(n for k, n in enumerate(row) if k > max_r)
                tiers.append({"tier": tier, "level": level, "max_replicas": max_r,
                              "replicas": row, "parts_at_risk": at_risk})
        return {"dispersion": value, "balance": self.get_balance(),
                "overload": self.overload, "required_overload": plan.required_overload,
                "tiers": tiers}

    def validate(self, stats: bool = False) -> tuple[npt.NDArray[np.int64] | None, float | None]:
        """Check the table: every slot on a real device, no partition twice on one device.

        Returns:
            With ``stats``: (part-replicas per device id, worst device skew in %).

        Raises:
            RingValidationError: the table is missing or inconsistent.
        """
        table = self.table
        if table is None:
            raise RingValidationError("the ring has no assignment; did you forget to rebalance?")
        lengths = self.row_lengths
        if table.shape != (len(lengths), self.parts):
            raise RingValidationError(f"assignment table has shape {table.shape}, expected "
                                      f"{(len(lengths), self.parts)}")
        slots = rb.row_mask(lengths, self.parts)
        existing = np.array([d is not None for d in self.devs] + [False])
        ids = np.where(slots, table, len(self.devs))
        bad = slots & ((table < 0) | (table >= len(self.devs)) |
                       ~existing[np.clip(ids, 0, len(self.devs))])
        if bad.any():
            r, p = (int(x[0]) for x in np.nonzero(bad))
            raise RingValidationError(f"partition {p}, replica {r} is not assigned to a device")
        if (table[~slots] != -1).any():
            raise RingValidationError("assignments found beyond the short last replica row")
        _check_no_duplicates(table, slots)
        if not stats:
            return None, None
        usage = self.dev_parts()
        worst = max((abs(b) for b in self.balance_per_dev().values()), default=0.0)
        return usage, worst

    def list_parts(self, dev_ids: list[int]) -> list[tuple[int, int]]:
        """Return (partition, replicas on the given devices), most matches first."""
        if self.table is None:
            raise RingBuilderError("the ring has not been rebalanced yet")
        hits = np.isin(self.table, np.asarray(dev_ids, dtype=np.int32)).sum(axis=0)
        parts = np.flatnonzero(hits)
        order = np.lexsort((parts, -hits[parts]))
        return [(int(p), int(hits[p])) for p in parts[order]]

    def get_ring(self) -> RingData:
        """Return the ring file data (devices + compact replica rows)."""
        if self.table is None:
            raise RingBuilderError("the ring has not been rebalanced yet")
        dtype = smallest_dtype(max(len(self.devs) - 1, 0))
        rows = [np.ascontiguousarray(self.table[r, :length], dtype=dtype)
                for r, length in enumerate(self.row_lengths)]
        devs: list[dict[str, Any] | None] = [d.to_dict() if d else None for d in self.devs]
        return RingData(part_power=self.part_power, replicas=self.replicas,
                        replica2part2dev=rows, devs=devs, version=self.version)


# ------------------------------------------------------------------- helpers


def check_part_power(part_power: int) -> int:
    """Return ``part_power`` if it is an int in 0..32."""
    if isinstance(part_power, bool) or not isinstance(part_power, int) or \
            not 0 <= part_power <= MAX_PART_POWER:
        raise RingBuilderError(f"part_power must be an integer 0..{MAX_PART_POWER} "
                               f"(was {part_power!r})")
    return part_power


def check_replicas(replicas: float) -> float:
    """Return ``replicas`` if it is a finite number >= 1."""
    if not (isinstance(replicas, int | float) and math.isfinite(replicas) and replicas >= 1):
        raise RingBuilderError(f"replicas must be a number >= 1 (was {replicas!r})")
    return float(replicas)


def check_min_part_hours(hours: int) -> int:
    """Return ``hours`` if it is a non-negative integer."""
    if isinstance(hours, bool) or not isinstance(hours, int) or hours < 0:
        raise RingBuilderError(f"min_part_hours must be an integer >= 0 (was {hours!r})")
    return hours


def check_overload(overload: float) -> float:
    """Return ``overload`` if it is a finite number >= 0."""
    if not (math.isfinite(overload) and overload >= 0):
        raise RingBuilderError(f"overload must be a number >= 0 (was {overload!r})")
    return float(overload)


def _check_fields(region: int, zone: int, port: int, rep_port: int, device: str,
                  weight: float) -> None:
    """Raise DeviceError unless the device fields are sane."""
    if region < 0 or zone < 0:
        raise DeviceError(f"region and zone must be >= 0 (got r{region}z{zone})")
    for what, value in (("port", port), ("replication port", rep_port)):
        if not 0 < value <= 65535:
            raise DeviceError(f"invalid {what} {value} (must be 1..65535)")
    if not device or "/" in device or device in (".", "..") or not _is_clean_text(device):
        raise DeviceError(f"invalid device name {device!r}")
    if not (weight >= 0 and math.isfinite(weight)):
        raise DeviceError(f"invalid weight {weight!r} (must be a number >= 0)")


def _is_clean_text(value: str) -> bool:
    """Return whether ``value`` is valid UTF-8 text without control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from undecodable argv bytes
        return False
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def _check_meta(meta: str) -> None:
    """Raise DeviceError unless ``meta`` is valid UTF-8 text without control characters."""
    if not _is_clean_text(meta):
        raise DeviceError(f"invalid device meta {meta!r}")


def _check_no_duplicates(table: npt.NDArray[np.int32], slots: npt.NDArray[np.bool_]) -> None:
    """Raise if a partition has two replicas on one device."""
    rows = table.shape[0]
    for r in range(rows):
        for j in range(r + 1, rows):
            dup = slots[r] & slots[j] & (table[r] == table[j])
            if dup.any():
                p = int(np.flatnonzero(dup)[0])
                raise RingValidationError(f"partition {p} has two replicas on device "
                                          f"{int(table[r, p])}")


def _changes(old: npt.NDArray[np.int32] | None,
             new: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.bool_], int]:
    """Return (partitions with any replica changed, number of changed part-replicas)."""
    if old is None:
        assigned = new >= 0
        return np.asarray(assigned.any(axis=0)), int(assigned.sum())
    rows = min(old.shape[0], new.shape[0])
    diff = np.zeros(new.shape, dtype=np.bool_)
    diff[:rows] = (old[:rows] != new[:rows]) & (new[:rows] >= 0)
    diff[rows:] = new[rows:] >= 0
    return np.asarray(diff.any(axis=0)), int(diff.sum())


def _say(progress: rb.Progress | None, message: str) -> None:
    """Report a rebalance step if someone listens."""
    if progress is not None:
        progress(message)
