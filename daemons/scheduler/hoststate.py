"""Host state as numpy columns (struct of arrays), kept in step incrementally.

One row per compute host (root resource provider). Numbers (inventories, usage,
instance and I/O counts, heartbeats) are numpy columns; categorical per-host
data (aggregate membership, traits, supported instances, cpu_info, stats) is
stored as a *signature* column: an ``int32`` id into a table of distinct values,
so a filter evaluates its predicate once per distinct value and broadcasts it
with one fancy-index (``result[sig]``). Claims, releases and compute reports
update single rows in place; nothing reloads the whole matrix per request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Resource classes every compute host reports.
STANDARD_RCS: tuple[str, ...] = ("VCPU", "MEMORY_MB", "DISK_GB")
_INITIAL_ROWS = 64
#: Broadcast columns a SigColumn keeps (distinct predicate tables seen recently).
_SIG_CACHE_SIZE = 32
#: Predicate tables a SigColumn keeps (see :meth:`SigColumn.mask`).
_TABLE_CACHE_SIZE = 256


@dataclass(frozen=True)
class Inventory:
    """One resource class of one provider, as Placement stores it."""

    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = 0  # 0 means "total"
    step_size: int = 1
    allocation_ratio: float = 1.0

    @property
    def capacity(self) -> int:
        """Return what can be allocated: ``int((total - reserved) * ratio)``."""
        return int((self.total - self.reserved) * self.allocation_ratio)

    @property
    def effective_max_unit(self) -> int:
        """Return ``max_unit`` with 0 meaning ``total``."""
        return self.max_unit if self.max_unit > 0 else self.total

    def as_dict(self) -> dict[str, Any]:
        """Return the Placement JSON form."""
        return {"total": self.total, "reserved": self.reserved, "min_unit": self.min_unit,
                "max_unit": self.effective_max_unit, "step_size": self.step_size,
                "allocation_ratio": self.allocation_ratio}


@dataclass(frozen=True)
class Aggregate:
    """A Nova host aggregate: hosts plus metadata (``availability_zone``, ...)."""

    uuid: str
    name: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    hosts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HostFacts:
    """What a compute daemon reports about its host besides inventories."""

    hypervisor_type: str = "QEMU"
    hypervisor_version: int = 0
    hypervisor_hostname: str = ""
    cpu_info: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    #: ``(architecture, hypervisor type, vm mode)`` triples.
    supported_instances: tuple[tuple[str, str, str], ...] = ()
    enabled: bool = True
    num_io_ops: int = 0
    failed_builds: int = 0


class SigColumn:
    """An ``int32`` column of ids into a table of distinct hashable values."""

    def __init__(self, empty: Any) -> None:
        self.values: list[Any] = [empty]
        self._ids: dict[Hashable, int] = {self._key(empty): 0}
        #: PERF: ``intp`` ids gather ~4x faster than int32 (``python -m nubis.bench scheduler``).
        self.col = np.zeros(_INITIAL_ROWS, dtype=np.intp)
        #: Bumped whenever a row's id changes; the broadcast cache is valid for one stamp.
        self.stamp = 0
        self._cache: dict[tuple[bytes, str, int], npt.NDArray[Any]] = {}
        self._cache_stamp = -1
        #: Predicate tables by caller key: (distinct values seen, table or None = all pass).
        self._tables: dict[Hashable, tuple[int, npt.NDArray[np.bool_] | None]] = {}

    @staticmethod
    def _key(value: Any) -> Hashable:
        if isinstance(value, Mapping):
            return ("__map__", json.dumps(value, sort_keys=True, default=str))
        return value  # type: ignore[no-any-return]

    def grow(self, size: int) -> None:
        """Extend the column to ``size`` rows (new rows get id 0)."""
        new = np.zeros(size, dtype=np.intp)
        new[: len(self.col)] = self.col
        self.col = new
        self.stamp += 1

    def set(self, row: int, value: Any) -> None:
        """Store ``value`` for ``row``."""
        key = self._key(value)
        sid = self._ids.get(key)
        if sid is None:
            sid = len(self.values)
            self._ids[key] = sid
            self.values.append(value)
        if self.col[row] != sid:
            self.col[row] = sid
            self.stamp += 1

    def get(self, row: int) -> Any:
        """Return the value of ``row``."""
        return self.values[int(self.col[row])]

    def broadcast(self, table: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
        """Return ``table[id of row]`` for the first ``n`` rows (read-only, cached).

        PERF: the gather is O(rows) while ``table`` is O(distinct values); requests
        of the same flavor/image/AZ produce the same table, so the gathered column
        is kept until a row's id changes (``python -m nubis.bench scheduler``).
        """
        if table.dtype.kind not in "biuf":
            return table[self.col[:n]]  # type: ignore[no-any-return]
        if self._cache_stamp != self.stamp:
            self._cache.clear()
            self._cache_stamp = self.stamp
        key = (table.tobytes(), table.dtype.str, n)
        hit = self._cache.get(key)
        if hit is None:
            hit = table[self.col[:n]]
            hit.flags.writeable = False
            if len(self._cache) >= _SIG_CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def map(self, fn: Callable[[Any], Any], n: int, dtype: Any = np.bool_) -> npt.NDArray[Any]:
        """Evaluate ``fn`` once per distinct value; return it broadcast to ``n`` rows."""
        table = np.fromiter((fn(v) for v in self.values), dtype=dtype, count=len(self.values))
        return self.broadcast(table, n)

    def mask(self, fn: Callable[[Any], bool], n: int,
             key: Hashable = None) -> BoolArray | None:
        """Like :meth:`map` for predicates; ``None`` when every value passes.

        With a ``key`` naming everything ``fn`` depends on besides the value, the
        per-value table is kept until a new distinct value appears or
        :meth:`forget_tables` is called. PERF: no Python predicate calls per
        request (``python -m nubis.bench scheduler``).
        """
        count = len(self.values)
        if key is not None:
            hit = self._tables.get(key)
            if hit is not None and hit[0] == count:
                return None if hit[1] is None else self.broadcast(hit[1], n)
        table: BoolArray | None = np.fromiter((bool(fn(v)) for v in self.values),
                                              dtype=np.bool_, count=count)
        if table is not None and table.all():
            table = None
        if key is not None:
            if len(self._tables) >= _TABLE_CACHE_SIZE:
                self._tables.clear()
            self._tables[key] = (count, table)
        return None if table is None else self.broadcast(table, n)

    def forget_tables(self) -> None:
        """Drop the cached predicate tables (what they depend on changed)."""
        self._tables.clear()


class ResourceColumns:
    """Inventory and usage of one resource class across all hosts."""

    INT_FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "used",
                  "capacity")

    def __init__(self, size: int) -> None:
        self.present = np.zeros(size, dtype=np.bool_)
        self.ratio = np.ones(size, dtype=np.float64)
        self.ints: dict[str, IntArray] = {
            f: np.zeros(size, dtype=np.int64) for f in self.INT_FIELDS}
        #: PERF: ``min(capacity - used, max_unit)`` (-1 without inventory), so the
        #: common fit test is one comparison (``python -m nubis.bench scheduler``).
        self.limit = np.full(size, -1, dtype=np.int64)
        #: ``total - reserved - used`` and ``total * ratio - used`` as floats (weighers).
        self.free = np.zeros(size, dtype=np.float64)
        self.vfree = np.zeros(size, dtype=np.float64)
        #: False once any host has ``min_unit > 1`` or ``step_size > 1``.
        self.units_trivial = True

    def grow(self, size: int) -> None:
        """Extend every column to ``size`` rows."""
        def ext(a: npt.NDArray[Any], fill: Any) -> npt.NDArray[Any]:
            new = np.full(size, fill, dtype=a.dtype)
            new[: len(a)] = a
            return new
        self.present = ext(self.present, False)
        self.ratio = ext(self.ratio, 1.0)
        self.ints = {k: ext(v, 0) for k, v in self.ints.items()}
        self.limit = ext(self.limit, -1)
        self.free = ext(self.free, 0.0)
        self.vfree = ext(self.vfree, 0.0)

    def refresh(self, row: int) -> None:
        """Recompute the derived ``limit``, ``free`` and ``vfree`` of ``row``.

        PERF: ``item()`` reads, no numpy scalars (``python -m nubis.bench scheduler``).
        """
        i = self.ints
        total, used = i["total"].item(row), i["used"].item(row)
        self.free[row] = float(total - i["reserved"].item(row) - used)
        self.vfree[row] = total * self.ratio.item(row) - used
        if not self.present.item(row):
            self.limit[row] = -1
            return
        self.limit[row] = min(i["capacity"].item(row) - used, i["max_unit"].item(row))

    def add_used(self, row: int, delta: int) -> None:
        """Change the used amount of ``row`` by ``delta``."""
        self.ints["used"][row] += delta
        self.refresh(row)

    def set_used(self, row: int, used: int) -> None:
        """Set the used amount of ``row``."""
        self.ints["used"][row] = used
        self.refresh(row)

    def set(self, row: int, inv: Inventory | None) -> None:
        """Store the inventory of ``row`` (``None`` removes it)."""
        if inv is None:
            self.present[row] = False
            for name in ("total", "reserved", "capacity", "max_unit"):
                self.ints[name][row] = 0
            self.refresh(row)
            return
        self.present[row] = True
        self.ratio[row] = inv.allocation_ratio
        self.ints["total"][row] = inv.total
        self.ints["reserved"][row] = inv.reserved
        self.ints["min_unit"][row] = inv.min_unit
        self.ints["max_unit"][row] = inv.effective_max_unit
        self.ints["step_size"][row] = max(inv.step_size, 1)
        self.ints["capacity"][row] = inv.capacity
        if inv.min_unit > 1 or inv.step_size > 1:
            self.units_trivial = False
        self.refresh(row)

    def fits(self, amount: int, n: int) -> BoolArray:
        """Return the hosts where ``amount`` more fits (Placement's checks)."""
        ok: BoolArray = self.limit[:n] >= amount
        if not self.units_trivial:
            i = self.ints
            ok &= i["min_unit"][:n] <= amount
            ok &= (amount % i["step_size"][:n]) == 0
        return ok


class HostState:
    """The scheduler's view of every compute host, one row each."""

    def __init__(self) -> None:
        self.size = _INITIAL_ROWS
        self.n = 0
        self.names: list[str] = []
        self.uuids: list[str] = []
        self.row_of: dict[str, int] = {}
        self.row_of_uuid: dict[str, int] = {}
        self.resources: dict[str, ResourceColumns] = {
            rc: ResourceColumns(self.size) for rc in STANDARD_RCS}
        self.num_instances = np.zeros(self.size, dtype=np.int64)
        self.num_io_ops = np.zeros(self.size, dtype=np.int64)
        self.failed_builds = np.zeros(self.size, dtype=np.int64)
        self.hypervisor_version = np.zeros(self.size, dtype=np.int64)
        self.enabled = np.ones(self.size, dtype=np.bool_)
        #: Rows of deleted providers (rows are never removed, only retired).
        self.retired = np.zeros(self.size, dtype=np.bool_)
        #: Monotonic-clock time of the last report; +inf = no heartbeat tracking.
        self.last_seen = np.full(self.size, math.inf, dtype=np.float64)
        self.aggs = SigColumn(frozenset())
        self.traits = SigColumn(frozenset())
        self.host_facts: list[HostFacts] = []
        self.hv_type = SigColumn("")
        self.cpu_info = SigColumn({})
        self.stats = SigColumn({})
        self.images = SigColumn(((), 0))
        self.aggregates: dict[str, Aggregate] = {}
        #: Derived aggregate data, dropped whenever an aggregate changes.
        self._agg_memo: dict[Any, Any] = {}
        #: instance uuid -> row, and row -> instance uuids.
        self.instance_row: dict[str, int] = {}
        self.host_instances: list[set[str]] = []
        #: Bumped on every change; caches keyed on it stay correct.
        self.version = 0
        #: PERF (``python -m nubis.bench scheduler``): per count column, a number no
        #: smaller than its largest value (writes only raise it; :meth:`all_below`
        #: tightens it), so "every host is below the limit" is O(1) per request.
        self._upper: dict[str, int] = {"num_instances": 0, "num_io_ops": 0,
                                       "failed_builds": 0}
        #: Likewise a number no larger than the oldest heartbeat, and whether every
        #: host is enabled (``None``: unknown since the last report).
        self._oldest_seen = math.inf
        self._all_enabled: bool | None = True

    # -- rows -------------------------------------------------------------------
    def _grow(self) -> None:
        size = self.size * 2
        for name in ("num_instances", "num_io_ops", "failed_builds", "hypervisor_version"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        en = np.ones(size, dtype=np.bool_)
        en[: self.size] = self.enabled
        self.enabled = en
        rt = np.zeros(size, dtype=np.bool_)
        rt[: self.size] = self.retired
        self.retired = rt
        ls = np.full(size, math.inf, dtype=np.float64)
        ls[: self.size] = self.last_seen
        self.last_seen = ls
        for rcol in self.resources.values():
            rcol.grow(size)
        for sig in self.sig_columns():
            sig.grow(size)
        self.size = size

    def sig_columns(self) -> Iterable[SigColumn]:
        """Return every signature column."""
        return (self.aggs, self.traits, self.hv_type, self.cpu_info, self.stats,
                self.images)

    def add_host(self, name: str, uuid: str) -> int:
        """Add a host row (or return the existing one) and return its index."""
        row = self.row_of.get(name)
        if row is not None:
            if self.uuids[row] != uuid:
                self.row_of_uuid.pop(self.uuids[row], None)
                self.uuids[row] = uuid
                self.row_of_uuid[uuid] = row
            self.retired[row] = False
            return row
        if self.n == self.size:
            self._grow()
        row = self.n
        self.n += 1
        self.names.append(name)
        self.uuids.append(uuid)
        self.row_of[name] = row
        self.row_of_uuid[uuid] = row
        self.host_instances.append(set())
        self.host_facts.append(HostFacts())
        self.aggs.set(row, self._aggs_of(name))
        self.version += 1
        return row

    def rename(self, row: int, name: str) -> None:
        """Give ``row`` a new host name."""
        self.row_of.pop(self.names[row], None)
        self.names[row] = name
        self.row_of[name] = row
        self.aggs.set(row, self._aggs_of(name))
        self.version += 1

    def retire(self, row: int) -> None:
        """Take a deleted provider's row out of scheduling."""
        self.retired[row] = True
        self.set_inventories(row, {})
        self.row_of.pop(self.names[row], None)
        self.row_of_uuid.pop(self.uuids[row], None)

    def resource(self, rc: str) -> ResourceColumns:
        """Return the columns of ``rc`` (created on first use)."""
        cols = self.resources.get(rc)
        if cols is None:
            cols = self.resources[rc] = ResourceColumns(self.size)
        return cols

    def set_inventories(self, row: int, inventories: Mapping[str, Inventory]) -> None:
        """Replace the inventories of ``row``."""
        for rc in set(self.resources) | set(inventories):
            self.resource(rc).set(row, inventories.get(rc))
        self.version += 1

    def set_usage(self, row: int, usage: Mapping[str, int]) -> None:
        """Replace the used amounts of ``row``."""
        for rc, cols in self.resources.items():
            cols.set_used(row, int(usage.get(rc, 0)))
        for rc, amount in usage.items():
            self.resource(rc).set_used(row, int(amount))
        self.version += 1

    def set_facts(self, row: int, facts: HostFacts, now: float) -> None:
        """Store a compute report's facts for ``row``."""
        self.host_facts[row] = facts
        self.hv_type.set(row, facts.hypervisor_type)
        self.cpu_info.set(row, dict(facts.cpu_info))
        self.stats.set(row, dict(facts.stats))
        self.images.set(row, (facts.supported_instances, facts.hypervisor_version))
        self.hypervisor_version[row] = facts.hypervisor_version
        self.enabled[row] = facts.enabled
        self.num_io_ops[row] = facts.num_io_ops
        self.failed_builds[row] = facts.failed_builds
        self.last_seen[row] = now
        self._raise("num_io_ops", facts.num_io_ops)
        self._raise("failed_builds", facts.failed_builds)
        self._oldest_seen = min(self._oldest_seen, now)
        self._all_enabled = None
        self.version += 1

    def set_enabled(self, row: int, enabled: bool) -> None:
        """Let the scheduler use ``row`` or not (its compute service's status)."""
        self.enabled[row] = enabled
        self._all_enabled = None
        self.version += 1

    # -- bounds of count columns ------------------------------------------------------
    def _raise(self, name: str, value: int) -> None:
        if value > self._upper[name]:
            self._upper[name] = int(value)

    def all_below(self, name: str, limit: int) -> bool:
        """Tell whether every row of count column ``name`` is below ``limit``.

        PERF: O(1) while the remembered upper bound is below ``limit``; otherwise one
        max() that also tightens the bound (``python -m nubis.bench scheduler``).
        """
        if self._upper[name] < limit:
            return True
        n = self.n
        self._upper[name] = int(getattr(self, name)[:n].max()) if n else 0
        return self._upper[name] < limit

    def up_mask(self, now: float, down_time: float) -> BoolArray | None:
        """Return where hosts are enabled and reported within ``down_time`` (``None``: all).

        PERF: O(1) when nothing was reported since the last call and every heartbeat
        is recent (``python -m nubis.bench scheduler``).
        """
        n = self.n
        if now - self._oldest_seen > down_time:
            self._oldest_seen = float(self.last_seen[:n].min()) if n else math.inf
        if now - self._oldest_seen <= down_time:
            if self._all_enabled is None:
                self._all_enabled = bool(self.enabled[:n].all())
            return None if self._all_enabled else self.enabled[:n]
        up: BoolArray = (now - self.last_seen[:n]) <= down_time
        return self.enabled[:n] & up

    def set_traits(self, row: int, traits: Iterable[str]) -> None:
        """Replace the traits of ``row``."""
        self.traits.set(row, frozenset(traits))
        self.version += 1

    # -- aggregates -------------------------------------------------------------
    def _aggs_of(self, host: str) -> frozenset[str]:
        return frozenset(a.uuid for a in self.aggregates.values() if host in a.hosts)

    def set_aggregate(self, agg: Aggregate) -> None:
        """Create or replace a host aggregate; re-sign the affected rows."""
        old = self.aggregates.get(agg.uuid)
        self.aggregates[agg.uuid] = agg
        self._agg_memo.clear()
        self.aggs.forget_tables()
        touched = set(agg.hosts) | (set(old.hosts) if old else set())
        self._resign(touched)

    def delete_aggregate(self, uuid: str) -> None:
        """Remove a host aggregate."""
        old = self.aggregates.pop(uuid, None)
        self._agg_memo.clear()
        self.aggs.forget_tables()
        if old is not None:
            self._resign(set(old.hosts))

    def _resign(self, hosts: Iterable[str]) -> None:
        for host in hosts:
            row = self.row_of.get(host)
            if row is not None:
                self.aggs.set(row, self._aggs_of(host))
        self.version += 1

    def aggregates_of(self, sig: frozenset[str]) -> list[Aggregate]:
        """Return the aggregates of an aggregate signature, in uuid order."""
        # PERF: memoized per signature (``python -m nubis.bench scheduler``).
        hit = self._agg_memo.get(sig)
        if hit is None:
            hit = self._agg_memo[sig] = [self.aggregates[u] for u in sorted(sig)
                                         if u in self.aggregates]
        return hit  # type: ignore[no-any-return]

    def aggregate_keys(self) -> frozenset[str]:
        """Return every metadata key any aggregate carries (memoized)."""
        hit = self._agg_memo.get("__keys__")
        if hit is None:
            hit = self._agg_memo["__keys__"] = frozenset(
                k for a in self.aggregates.values() for k in a.metadata)
        return hit  # type: ignore[no-any-return]

    # -- instances ----------------------------------------------------------------
    def add_instance(self, row: int, instance_uuid: str, amounts: Mapping[str, int],
                     io_ops: bool = True) -> None:
        """Account one instance on ``row`` (a claim)."""
        for rc, amount in amounts.items():
            self.resource(rc).add_used(row, amount)
        if instance_uuid not in self.host_instances[row]:
            self.num_instances[row] += 1
            self.host_instances[row].add(instance_uuid)
            self._raise("num_instances", int(self.num_instances[row]))
        if io_ops:
            self.num_io_ops[row] += 1
            self._raise("num_io_ops", int(self.num_io_ops[row]))
        self.instance_row[instance_uuid] = row
        self.version += 1

    def remove_instance(self, instance_uuid: str, amounts: Mapping[str, int]) -> None:
        """Release one instance (a deleted allocation)."""
        row = self.instance_row.pop(instance_uuid, None)
        if row is None:
            return
        for rc, amount in amounts.items():
            self.resource(rc).add_used(row, -amount)
        if instance_uuid in self.host_instances[row]:
            self.host_instances[row].discard(instance_uuid)
            self.num_instances[row] -= 1
        self.version += 1

    def count_instance(self, row: int, instance_uuid: str) -> None:
        """Record that ``instance_uuid`` runs on ``row`` (start-up load, no resources)."""
        if instance_uuid not in self.host_instances[row]:
            self.host_instances[row].add(instance_uuid)
            self.num_instances[row] += 1
            self._raise("num_instances", int(self.num_instances[row]))
            self.instance_row[instance_uuid] = row
            self.version += 1

    def rows_of_instances(self, uuids: Iterable[str]) -> list[int]:
        """Return the rows hosting any of ``uuids``."""
        return sorted({self.instance_row[u] for u in uuids if u in self.instance_row})

    # -- derived numbers (Nova's HostState attributes) ------------------------------
    def free_ram_mb(self) -> IntArray:
        """Return ``total - reserved - used`` of MEMORY_MB."""
        i = self.resources["MEMORY_MB"].ints
        n = self.n
        return i["total"][:n] - i["reserved"][:n] - i["used"][:n]

    def free_disk_mb(self) -> IntArray:
        """Return ``(total - reserved - used) * 1024`` of DISK_GB."""
        i = self.resources["DISK_GB"].ints
        n = self.n
        return (i["total"][:n] - i["reserved"][:n] - i["used"][:n]) * 1024

    def numeric_attributes(self) -> dict[str, Callable[[], npt.NDArray[Any]]]:
        """Return the numeric HostState attributes filters may reference by name."""
        n = self.n
        mem = self.resources["MEMORY_MB"].ints
        disk = self.resources["DISK_GB"].ints
        cpu = self.resources["VCPU"].ints
        return {
            "free_ram_mb": self.free_ram_mb,
            "free_disk_mb": self.free_disk_mb,
            "total_usable_ram_mb": lambda: mem["total"][:n] - mem["reserved"][:n],
            "total_usable_disk_gb": lambda: disk["total"][:n] - disk["reserved"][:n],
            "vcpus_total": lambda: cpu["total"][:n],
            "vcpus_used": lambda: cpu["used"][:n],
            "num_instances": lambda: self.num_instances[:n],
            "num_io_ops": lambda: self.num_io_ops[:n],
            "failed_builds": lambda: self.failed_builds[:n],
            "hypervisor_version": lambda: self.hypervisor_version[:n],
        }

    def memory_bytes(self) -> int:
        """Return the bytes held by the numpy columns (for the benchmark)."""
        total = sum(a.nbytes for a in (self.num_instances, self.num_io_ops, self.failed_builds,
                                       self.hypervisor_version, self.enabled, self.last_seen))
        for rcol in self.resources.values():
            total += rcol.present.nbytes + rcol.ratio.nbytes + rcol.limit.nbytes
            total += rcol.free.nbytes + rcol.vfree.nbytes
            total += sum(a.nbytes for a in rcol.ints.values())
        total += sum(s.col.nbytes for s in self.sig_columns())
        return int(total)
