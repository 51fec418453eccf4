"""The scheduler service: host state + placement store + atomic claims.

One object owns the host-state matrix and the database. Every write goes through
it under one lock: the database transaction commits first (compare-and-swap on
provider generations), then the matrix is updated in place from the change.
``select_destinations`` plans against the matrix, claims all instances in one
transaction, and on a generation conflict re-reads the providers involved and
plans again (bounded retries).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from nubis.daemons.scheduler.claims import ClaimItem
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.engine import Engine as PassEngine
from nubis.daemons.scheduler.engine import Plan, undo
from nubis.daemons.scheduler.errors import (
    BadRequest,
    ConcurrentUpdate,
    Conflict,
    NotFound,
    NoValidHost,
)
from nubis.daemons.scheduler.hoststate import Aggregate, HostFacts, HostState, Inventory
from nubis.daemons.scheduler.request import RequestSpec
from nubis.daemons.scheduler.store import (
    AllocationChange,
    ConsumerAllocations,
    PlacementStore,
    Provider,
    ServiceStatus,
)
from sqlalchemy.engine import Connection, Engine

LOG = logging.getLogger(__name__)
T = TypeVar("T")
_NS = uuidlib.UUID("6f1c7d52-3c1e-4b0a-9f59-2a1f4e0c9b11")

#: Keys a compute daemon's host report may carry.
REPORT_KEYS = frozenset({
    "inventories", "traits", "uuid", "cpu_info", "enabled", "failed_builds",
    "hypervisor_hostname", "hypervisor_type", "hypervisor_version", "num_io_ops",
    "stats", "supported_instances",
})


@dataclass
class Metrics:
    """Counters exported on ``/metrics``."""

    requests: int = 0
    placed: int = 0
    no_valid_host: int = 0
    conflicts: int = 0
    reports: int = 0
    seconds: list[float] = field(default_factory=list)


#: Batches one caller serves for others after its own request is done.
_MAX_COMBINED_BATCHES = 8


class _Job:
    """One queued ``select_destinations`` call."""

    def __init__(self, spec: RequestSpec) -> None:
        self.spec = spec
        self.done = threading.Event()
        self.result: list[dict[str, Any]] | None = None
        self.error: BaseException | None = None
        self.attempts = 0
        self.finished = False
        #: Set when the caller must take over as the combiner.
        self.promoted = False

    def finish(self, result: list[dict[str, Any]] | None = None,
               error: BaseException | None = None) -> None:
        """Deliver the outcome and wake the caller."""
        self.result, self.error, self.finished = result, error, True
        self.done.set()


def host_uuid(name: str) -> str:
    """Return the stable provider uuid of compute host ``name``."""
    return str(uuidlib.uuid5(_NS, name))


def aggregate_uuid(value: str) -> str:
    """Return an aggregate id in canonical form; BadRequest unless it is a UUID (as Nova)."""
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise BadRequest(f"Invalid aggregate id: {value[:64]!r} is not a UUID") from None


def parse_inventory(rc: str, data: Any) -> Inventory:
    """Validate one Placement inventory record."""
    if not isinstance(data, dict):
        raise BadRequest(f"inventory of {rc} must be an object")
    allowed = {"total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise BadRequest(f"Additional properties are not allowed ('{extra[0]}' was unexpected)")

    def integer(key: str, default: int | None, minimum: int) -> int:
        value = data.get(key, default)
        if value is None:
            raise BadRequest(f"'{key}' is a required property of {rc}")
        if not isinstance(value, int) or isinstance(value, bool) or not (
                minimum <= value <= 2147483647):
            raise BadRequest(f"{rc}.{key}: must be an integer >= {minimum}")
        return value
    total = integer("total", None, 1)
    reserved = integer("reserved", 0, 0)
    inv = Inventory(total=total, reserved=reserved, min_unit=integer("min_unit", 1, 1),
                    max_unit=integer("max_unit", total, 1),
                    step_size=integer("step_size", 1, 1),
                    allocation_ratio=_ratio(data.get("allocation_ratio", 1.0), rc))
    if inv.reserved > inv.total:
        raise BadRequest(f"Unable to update inventory for resource provider: {rc} "
                         "reserved exceeds total")
    if inv.min_unit > inv.effective_max_unit:
        raise BadRequest(f"{rc}: min_unit must not exceed max_unit")
    return inv


def _ratio(value: Any, rc: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 < value <= 3.4e38):
        raise BadRequest(f"{rc}.allocation_ratio: must be a number > 0")
    return float(value)


def parse_facts(data: Mapping[str, Any]) -> HostFacts:
    """Validate the non-inventory part of a compute report."""
    supported = data.get("supported_instances", [])
    if not isinstance(supported, list) or not all(
            isinstance(t, list | tuple) and len(t) == 3 for t in supported):
        raise BadRequest("supported_instances: must be a list of [arch, hv_type, vm_mode]")
    cpu_info = data.get("cpu_info", {})
    stats = data.get("stats", {})
    if not isinstance(cpu_info, dict) or not isinstance(stats, dict):
        raise BadRequest("cpu_info and stats must be objects")

    def integer(key: str) -> int:
        v = data.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BadRequest(f"{key}: must be a non-negative integer")
        return v
    return HostFacts(
        hypervisor_type=str(data.get("hypervisor_type", "QEMU")),
        hypervisor_version=integer("hypervisor_version"),
        hypervisor_hostname=str(data.get("hypervisor_hostname", "")),
        cpu_info=cpu_info, stats=stats,
        supported_instances=tuple((str(a), str(b), str(c)) for a, b, c in supported),
        enabled=bool(data.get("enabled", True)),
        num_io_ops=integer("num_io_ops"), failed_builds=integer("failed_builds"))


def parse_service_status(data: Mapping[str, Any]) -> ServiceStatus:
    """Parse ``{"disabled", "disabled_reason", "forced_down"}`` (400 if malformed)."""
    unknown = sorted(set(data) - {"disabled", "disabled_reason", "forced_down"})
    if unknown:
        raise BadRequest(f"unknown key in service status: {unknown[0]!r}")
    disabled, down = data.get("disabled", False), data.get("forced_down", False)
    reason = data.get("disabled_reason")
    if not isinstance(disabled, bool) or not isinstance(down, bool):
        raise BadRequest("disabled and forced_down must be booleans")
    if reason is not None and (not isinstance(reason, str) or not 1 <= len(reason) <= 255):
        raise BadRequest("disabled_reason must be a string of 1-255 characters")
    return ServiceStatus(disabled, reason if disabled else None, down)


def _status_view(status: ServiceStatus) -> dict[str, Any]:
    return {"disabled": status.disabled, "disabled_reason": status.disabled_reason,
            "forced_down": status.forced_down}


class SchedulerService:
    """Owns the matrix and the placement database; all writes go through here."""

    def __init__(self, config: SchedulerConfig, engine: Engine,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.db = engine
        self.store = PlacementStore(engine)
        self.passes = PassEngine(config)  # raises ConfigError for unknown filters
        self.state = HostState()
        self.clock = clock
        self.lock = threading.RLock()
        self.commit_lock = threading.Lock()
        #: Used only under ``commit_lock``.
        self.claims = self.store.claim_writer()
        #: Requests waiting for the combiner (see :meth:`select_destinations`).
        self._queue: deque[_Job] = deque()
        self._queue_lock = threading.Lock()
        self._combining = False
        self._uuid_of_id: dict[int, str] = {}
        self.metrics = Metrics()
        self.rng = random.Random()
        #: Generation and database id of every provider (root or not) as last seen.
        self.generations: dict[str, int] = {}
        self.rp_ids: dict[str, int] = {}
        #: What operators set on each host's compute service (``os-services``).
        self.services: dict[str, ServiceStatus] = {}
        self.load()

    # -- loading -------------------------------------------------------------------------
    def load(self) -> None:
        """Build the matrix from the database (once, at start-up)."""
        with self.lock, self.db.connect() as conn:
            self.services = self.store.service_statuses(conn)
            facts = self.store.compute_hosts(conn)
            invs, usage, traits = self.store.bulk_provider_data(conn)
            st = self.state
            now = self.clock()
            for prov in self.store.list_providers(conn):
                self.generations[prov.uuid] = prov.generation
                self.rp_ids[prov.uuid] = prov.id
                if prov.parent_uuid is not None:
                    continue
                row = st.add_host(prov.name, prov.uuid)
                st.set_inventories(row, invs.get(prov.id, {}))
                st.set_usage(row, usage.get(prov.id, {}))
                st.set_traits(row, traits.get(prov.id, ()))
                if prov.uuid in facts:
                    self._set_facts(row, parse_facts(facts[prov.uuid]), now)
            for uuid, name, metadata, hosts in self.store.host_aggregates(conn):
                self.state.set_aggregate(Aggregate(uuid, name, metadata, frozenset(hosts)))
            self._load_instances(conn)

    def _load_row(self, conn: Connection, prov: Provider,
                  facts: Mapping[str, Any] | None) -> int:
        st = self.state
        row = st.add_host(prov.name, prov.uuid)
        st.set_inventories(row, self.store.get_inventories(conn, prov.id))
        st.set_usage(row, self.store.usages(conn, [prov.id]).get(prov.id, {}))
        st.set_traits(row, self.store.provider_traits(conn, prov.id))
        if facts is not None:
            self._set_facts(row, parse_facts(facts), self.clock())
        return row

    def _load_instances(self, conn: Connection) -> None:
        from nubis.daemons.scheduler.store import allocations, resource_providers
        q = (sa.select(allocations.c.consumer_uuid, resource_providers.c.uuid)
             .join(resource_providers, resource_providers.c.id == allocations.c.rp_id)
             .distinct())
        st = self.state
        for consumer, rp_uuid in conn.execute(q):
            row = st.row_of_uuid.get(rp_uuid)
            if row is not None:
                st.count_instance(row, consumer)

    def resync(self, rp_uuids: Iterable[str]) -> None:
        """Re-read some providers from the database (after a lost race)."""
        with self.lock, self.db.connect() as conn:
            facts = self.store.compute_hosts(conn)
            for uuid in rp_uuids:
                try:
                    prov = self.store.get_provider(conn, uuid)
                except Exception:  # deleted meanwhile: leave the row, it has no inventory
                    continue
                self.generations[uuid] = prov.generation
                self.rp_ids[uuid] = prov.id
                if prov.parent_uuid is None:
                    row = self._load_row(conn, prov, None)
                    if uuid in facts and not self.state.host_facts[row].supported_instances:
                        self._set_facts(row, parse_facts(facts[uuid]), self.clock())

    def mutate(self, fn: Callable[[Connection], T], touched: Iterable[str] = ()) -> T:
        """Run a placement write, then re-read the providers it touched into the matrix."""
        with self.lock:
            result = self.write(fn)
            self.resync(touched)
            return result

    def provider_deleted(self, uuid: str) -> None:
        """Retire the matrix row of a deleted provider."""
        with self.lock:
            self.generations.pop(uuid, None)
            row = self.state.row_of_uuid.get(uuid)
            if row is not None:
                self.state.retire(row)

    def provider_renamed(self, uuid: str, name: str) -> None:
        """Follow a provider rename in the matrix."""
        with self.lock:
            row = self.state.row_of_uuid.get(uuid)
            if row is not None and self.state.names[row] != name:
                self.state.rename(row, name)

    # -- transactions --------------------------------------------------------------------------
    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction; lost SQLite write races become ConcurrentUpdate."""
        try:
            with self.db.begin() as conn:
                return fn(conn)
        except sa.exc.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise ConcurrentUpdate("database busy; retry") from None
            raise

    def apply_changes(self, changes: list[AllocationChange], gens: Mapping[str, int]) -> None:
        """Replay committed allocation changes on the matrix."""
        st = self.state
        self.generations.update(gens)
        for ch in changes:
            for rp_uuid, res in ch.old.items():
                row = st.row_of_uuid.get(rp_uuid)
                if row is not None:
                    for rc, amount in res.items():
                        st.resource(rc).add_used(row, -amount)
            st.remove_instance(ch.consumer, {})
            for rp_uuid, res in ch.new.items():
                row = st.row_of_uuid.get(rp_uuid)
                if row is not None:
                    st.add_instance(row, ch.consumer, res, io_ops=False)

    # -- scheduling ----------------------------------------------------------------------------
    def select_destinations(self, spec: RequestSpec) -> list[dict[str, Any]]:
        """Place every instance of ``spec`` and claim it atomically; return selections.

        PERF: requests are combined (``python -m nubis.bench scheduler``): the caller
        queues its request; whichever caller finds no combiner running becomes it and
        serves the whole queue in batches — every request planned in order on the
        matrix, then all claims of the batch committed in one transaction, each one
        still compare-and-swapped (and rolled back alone, to a savepoint, on a lost
        race, then retried). One thread does the work while the others sleep, so
        there is no lock or GIL hand-off per request and one commit per batch.
        """
        started = time.perf_counter()
        self.metrics.requests += 1
        job = _Job(spec)
        try:
            with self._queue_lock:
                self._queue.append(job)
                lead = not self._combining
                self._combining = True
            if lead:
                self._combine(job)
            while not job.done.wait(60.0):
                pass
            if job.promoted:
                self._combine(job)
            if job.error is not None:
                raise job.error
            assert job.result is not None
            return job.result
        except NoValidHost:
            self.metrics.no_valid_host += 1
            raise
        finally:
            self.metrics.seconds.append(time.perf_counter() - started)
            if len(self.metrics.seconds) > 2000:
                del self.metrics.seconds[:-1000]

    def _combine(self, own: _Job) -> None:
        """Serve queued requests until the queue is empty or ``own`` is done a while."""
        batches = 0
        while True:
            with self._queue_lock:
                if not self._queue:
                    self._combining = False
                    return
                if own.finished and batches >= _MAX_COMBINED_BATCHES:
                    nxt = self._queue[0]  # hand the combiner role to a waiting caller
                    nxt.promoted = True
                    nxt.done.set()
                    return
                batch = list(self._queue)
                self._queue.clear()
            own.promoted = False
            batches += 1
            try:
                self._serve(batch)
            except Exception as exc:  # e.g. the database is down: fail this batch only
                LOG.exception("scheduling a batch failed")
                for job in batch:
                    if not job.finished:
                        job.finish(error=exc)
            except BaseException:  # never strand a waiting caller
                with self._queue_lock:
                    if self._queue:
                        self._queue[0].promoted = True
                        self._queue[0].done.set()
                    else:
                        self._combining = False
                raise

    def _serve(self, batch: list[_Job]) -> None:
        """Plan every request of ``batch`` in order, claim them in one transaction."""
        with self.lock:
            now = self.clock()
            planned: list[tuple[_Job, Plan, list[ClaimItem], dict[int, int]]] = []
            for job in batch:
                try:
                    plan = self.passes.plan(self.state, job.spec, now, self.rng)
                except Exception as exc:  # NoValidHost, mostly
                    job.finish(error=exc)
                    continue
                items, expected = self._claim_args(job.spec, plan)
                planned.append((job, plan, items, expected))
            if not planned:
                return
            try:
                with self.commit_lock:
                    outcomes = self.claims.claim_many([(i, e) for _, _, i, e in planned])
            except BaseException:
                for _, plan, _, _ in reversed(planned):
                    undo(self.state, plan)
                raise
            for (job, plan, _, _), out in zip(planned, outcomes, strict=True):
                if isinstance(out, Exception):
                    self._lost_race(job, plan, out)
                    continue
                self._settle(out)
                self.metrics.placed += len(plan.placements)
                job.finish(result=self._selections(plan))

    def _lost_race(self, job: _Job, plan: Plan, exc: Exception) -> None:
        """Give back a plan whose claim failed; queue the request again or give up."""
        LOG.info("claim lost a race, retrying: %s", exc)
        self.metrics.conflicts += 1
        rows = {p.row for p in plan.placements}
        undo(self.state, plan)
        self.resync(self.state.uuids[r] for r in rows)
        job.attempts += 1
        if job.attempts >= self.config.claim_retries:
            job.finish(error=Conflict(f"could not claim resources after "
                                      f"{self.config.claim_retries} attempts; hosts are "
                                      "changing too fast"))
            return
        with self._queue_lock:
            self._queue.append(job)

    def _claim_args(self, spec: RequestSpec, plan: Plan) -> tuple[
            list[tuple[str, str, str, int, Mapping[str, int]]], dict[int, int]]:
        """Return the claim rows and expected generations; advance generations optimistically."""
        st = self.state
        items = []
        expected: dict[int, int] = {}
        for p in plan.placements:
            uuid = st.uuids[p.row]
            rp_id = self.rp_ids[uuid]
            items.append((p.instance_uuid, spec.project_id, spec.user_id, rp_id, p.resources))
            if rp_id not in expected:
                expected[rp_id] = self.generations.get(uuid, 0)
                self.generations[uuid] = expected[rp_id] + 1
        return items, expected

    def _settle(self, gens: Mapping[int, int]) -> None:
        """Record committed generations (never moving one backwards)."""
        with self.lock:
            for rp_id, gen in gens.items():
                uuid = self._uuid_of_id.get(rp_id)
                if uuid is None:
                    self._uuid_of_id = {v: k for k, v in self.rp_ids.items()}
                    uuid = self._uuid_of_id.get(rp_id)
                if uuid is not None and self.generations.get(uuid, -1) < gen:
                    self.generations[uuid] = gen

    def _selections(self, plan: Plan) -> list[dict[str, Any]]:
        st = self.state

        def host(row: int) -> dict[str, Any]:
            return {"host": st.names[row], "nodename": st.host_facts[row].hypervisor_hostname
                    or st.names[row], "compute_node_uuid": st.uuids[row]}
        return [{"instance_uuid": p.instance_uuid, **host(p.row),
                 "allocation_request": {"allocations": {
                     st.uuids[p.row]: {"resources": dict(p.resources)}}},
                 "alternates": [host(r) for r in p.alternates]}
                for p in plan.placements]

    def release(self, consumer: str) -> bool:
        """Delete a consumer's allocations (instance deleted); return whether it had any."""
        with self.lock:
            def tx(conn: Connection) -> tuple[list[AllocationChange], dict[str, int]]:
                return self.store.replace_allocations(
                    conn, [ConsumerAllocations(consumer, "", "", {})])
            changes, gens = self.write(tx)
            self.apply_changes(changes, gens)
            return bool(changes[0].old)

    # -- compute reports and aggregates ------------------------------------------------------------
    def report_host(self, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Upsert a compute host's provider, inventories, traits and facts."""
        if not name or len(name) > 200:
            raise BadRequest("host name must be 1-200 characters")
        unknown = sorted(set(data) - REPORT_KEYS)
        if unknown:
            raise BadRequest(f"unknown key in compute report: {unknown[0]!r}")
        raw_invs = data.get("inventories", {})
        if not isinstance(raw_invs, dict):
            raise BadRequest("inventories: must be an object")
        invs = {rc: parse_inventory(rc, v) for rc, v in raw_invs.items()}
        traits = data.get("traits", [])
        if not isinstance(traits, list) or not all(isinstance(t, str) for t in traits):
            raise BadRequest("traits: must be a list of strings")
        facts = parse_facts(data)
        rp_uuid = str(data.get("uuid") or host_uuid(name))
        with self.lock:
            def tx(conn: Connection) -> Provider:
                try:
                    prov = self.store.get_provider(conn, rp_uuid)
                except Exception:
                    prov = self.store.create_provider(conn, rp_uuid, name)
                if self.store.get_inventories(conn, prov.id) != invs:
                    self.store.set_inventories(conn, prov, invs)
                    prov = self.store.get_provider(conn, rp_uuid)
                if sorted(set(traits)) != self.store.provider_traits(conn, prov.id):
                    self.store.ensure_traits(conn, traits)
                    self.store.set_provider_traits(conn, prov, traits)
                    prov = self.store.get_provider(conn, rp_uuid)
                self.store.save_compute_host(conn, name, rp_uuid, data)
                return prov
            prov = self.write(tx)
            self.generations[rp_uuid] = prov.generation
            self.rp_ids[rp_uuid] = prov.id
            st = self.state
            row = st.add_host(prov.name, prov.uuid)
            st.set_inventories(row, invs)
            st.set_traits(row, traits)
            self._set_facts(row, facts, self.clock())
            self.metrics.reports += 1
            return {"uuid": rp_uuid, "generation": prov.generation}

    def _set_facts(self, row: int, facts: HostFacts, now: float) -> None:
        """Store a host's reported facts; it is schedulable if its service allows."""
        st = self.state
        st.set_facts(row, facts, now)
        status = self.services.get(st.names[row], ServiceStatus())
        st.set_enabled(row, facts.enabled and status.schedulable)

    def set_service(self, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Set what an operator decided on a host's compute service (Nova's os-services).

        A disabled or forced-down service takes its host out of scheduling, as
        Nova's ComputeFilter does. Unknown hosts are a 404.
        """
        status = parse_service_status(data)
        with self.lock:
            row = self.state.row_of.get(name)
            if row is None or self.state.retired[row]:
                raise NotFound(f"no compute host {name!r}")
            self.write(lambda conn: self.store.save_service_status(conn, name, status))
            self.services[name] = status
            self.state.set_enabled(row, self.state.host_facts[row].enabled
                                   and status.schedulable)
        return {"host": name, **_status_view(status)}

    def delete_host(self, name: str) -> None:
        """Forget a compute host (Nova's compute service delete).

        Its provider (refused while allocations hold it: 409), reported facts and
        service status go; a daemon that reports again comes back as a new host.
        """
        with self.lock:
            row = self.state.row_of.get(name)
            if row is None or self.state.retired[row]:
                raise NotFound(f"no compute host {name!r}")
            uuid = self.state.uuids[row]

            def tx(conn: Connection) -> None:
                self.store.delete_provider(conn, uuid)
                self.store.forget_compute_host(conn, name)
            self.write(tx)
            self.services.pop(name, None)
            self.generations.pop(uuid, None)
            self.rp_ids.pop(uuid, None)
            self.state.retire(row)

    def set_aggregate(self, uuid: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a Nova host aggregate (name, hosts, metadata)."""
        uuid = aggregate_uuid(uuid)
        metadata = data.get("metadata", {})
        hosts = data.get("hosts", [])
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise BadRequest("metadata: must map strings to strings")
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise BadRequest("hosts: must be a list of host names")
        name = str(data.get("name") or uuid)
        with self.lock:
            self.write(lambda conn: self.store.save_host_aggregate(conn, uuid, name,
                                                                   metadata, hosts))
            self.state.set_aggregate(Aggregate(uuid, name, dict(metadata), frozenset(hosts)))
        return {"uuid": uuid, "name": name, "metadata": metadata, "hosts": sorted(set(hosts))}

    def delete_aggregate(self, uuid: str) -> None:
        """Delete a Nova host aggregate."""
        uuid = aggregate_uuid(uuid)
        with self.lock:
            self.write(lambda conn: self.store.delete_host_aggregate(conn, uuid))
            self.state.delete_aggregate(uuid)

    def host_summary(self) -> list[dict[str, Any]]:
        """Return every host with its free resources (for operators and tests)."""
        st = self.state
        out = []
        for row in range(st.n):
            if st.retired[row]:
                continue
            res = {}
            for rc, cols in st.resources.items():
                if cols.present[row]:
                    res[rc] = {"capacity": int(cols.ints["capacity"][row]),
                               "used": int(cols.ints["used"][row])}
            status = self.services.get(st.names[row], ServiceStatus())
            out.append({"host": st.names[row], "uuid": st.uuids[row], "resources": res,
                        "num_instances": int(st.num_instances[row]),
                        **_status_view(status),
                        "enabled": st.host_facts[row].enabled and not status.disabled,
                        "stats": dict(st.host_facts[row].stats)})
        return out
