"""The placement model in the control-plane database (SQLAlchemy Core) and its writes.

Tables follow Placement: resource providers (with generation), inventories,
consumers (with generation), allocations, traits, placement aggregates; plus three
scheduler tables: Nova-style host aggregates (with metadata), compute-host facts
and the status operators set on compute services. Every write that changes a
provider bumps its generation with a compare-and-swap (``UPDATE ... WHERE
generation = :seen``); a lost race raises :class:`ConcurrentUpdate` and the
whole transaction rolls back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from nubis.common import db
from nubis.daemons.scheduler.claims import ClaimWriter
from nubis.daemons.scheduler.errors import (
    BadRequest,
    CapacityExceeded,
    ConcurrentUpdate,
    InventoryInUse,
    NotFound,
)
from nubis.daemons.scheduler.hoststate import Inventory
from sqlalchemy.engine import Connection, Engine

md = sa.MetaData()
resource_providers = sa.Table(
    "placement_resource_providers", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("generation", sa.Integer, nullable=False, default=0),
    sa.Column("parent_uuid", sa.String(36), nullable=True),
    sa.Column("root_uuid", sa.String(36), nullable=True),
)
inventories = sa.Table(
    "placement_inventories", md,
    sa.Column("rp_id", sa.Integer, sa.ForeignKey("placement_resource_providers.id",
                                                 ondelete="CASCADE"), primary_key=True),
    sa.Column("resource_class", sa.String(255), primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.Column("min_unit", sa.BigInteger, nullable=False),
    sa.Column("max_unit", sa.BigInteger, nullable=False),
    sa.Column("step_size", sa.BigInteger, nullable=False),
    sa.Column("allocation_ratio", sa.Float, nullable=False),
)
consumers = sa.Table(
    "placement_consumers", md,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
)
allocations = sa.Table(
    "placement_allocations", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("consumer_uuid", sa.String(36), nullable=False, index=True),
    sa.Column("rp_id", sa.Integer, sa.ForeignKey("placement_resource_providers.id"),
              nullable=False),
    sa.Column("resource_class", sa.String(255), nullable=False),
    sa.Column("used", sa.BigInteger, nullable=False),
    sa.Index("placement_alloc_rp_rc", "rp_id", "resource_class"),
)
traits = sa.Table(
    "placement_traits", md,
    sa.Column("name", sa.String(255), primary_key=True),
)
rp_traits = sa.Table(
    "placement_rp_traits", md,
    sa.Column("rp_id", sa.Integer, sa.ForeignKey("placement_resource_providers.id",
                                                 ondelete="CASCADE"), primary_key=True),
    sa.Column("trait", sa.String(255), sa.ForeignKey("placement_traits.name"),
              primary_key=True),
)
rp_aggregates = sa.Table(
    "placement_rp_aggregates", md,
    sa.Column("rp_id", sa.Integer, sa.ForeignKey("placement_resource_providers.id",
                                                 ondelete="CASCADE"), primary_key=True),
    sa.Column("aggregate_uuid", sa.String(36), primary_key=True),
)
resource_classes = sa.Table(
    "placement_resource_classes", md,
    sa.Column("name", sa.String(255), primary_key=True),
)
host_aggregates = sa.Table(
    "scheduler_host_aggregates", md,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("metadata_json", sa.Text, nullable=False),
    sa.Column("hosts_json", sa.Text, nullable=False),
)
compute_hosts = sa.Table(
    "scheduler_compute_hosts", md,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("rp_uuid", sa.String(36), nullable=False),
    sa.Column("facts_json", sa.Text, nullable=False),
)

compute_services = sa.Table(
    "scheduler_compute_services", md,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(255)),
    sa.Column("forced_down", sa.Boolean, nullable=False),
)

STANDARD_RESOURCE_CLASSES = (
    "VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE", "SRIOV_NET_VF", "NUMA_SOCKET",
    "NUMA_CORE", "NUMA_THREAD", "NUMA_MEMORY_MB", "IPV4_ADDRESS", "VGPU",
    "VGPU_DISPLAY_HEAD", "NET_BW_EGR_KILOBIT_PER_SEC", "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU", "MEM_ENCRYPTION_CONTEXT", "FPGA", "PGPU")
STANDARD_TRAIT_PREFIXES = ("COMPUTE_", "HW_", "STORAGE_", "MISC_", "OWNER_")
NAME_RE = re.compile(r"^[A-Z0-9_]{1,255}$")


def _create(conn: Connection) -> None:
    md.create_all(conn)


def _v2_services(conn: Connection) -> None:
    """Add the operators' compute-service switches (a fresh database has them)."""
    compute_services.create(conn, checkfirst=True)


MIGRATIONS = [_create, _v2_services]


@dataclass(frozen=True)
class ServiceStatus:
    """What an operator set on a host's compute service (``os-services``)."""

    disabled: bool = False
    disabled_reason: str | None = None
    forced_down: bool = False

    @property
    def schedulable(self) -> bool:
        """Tell whether the scheduler may place instances there."""
        return not self.disabled and not self.forced_down


def open_engine(url: str) -> Engine:
    """Create the engine and bring the placement schema up to date."""
    engine = db.make_engine(url)
    db.migrate(engine, "placement", MIGRATIONS)
    return engine


@dataclass(frozen=True)
class Provider:
    """A resource provider row."""

    id: int
    uuid: str
    name: str
    generation: int
    parent_uuid: str | None
    root_uuid: str | None


@dataclass(frozen=True)
class ConsumerAllocations:
    """The complete allocations one consumer should have after a write."""

    uuid: str
    project_id: str
    user_id: str
    #: rp uuid -> resource class -> amount (empty: delete the consumer's allocations).
    allocations: Mapping[str, Mapping[str, int]]
    #: Expected consumer generation; ``None`` = must not exist yet; -1 = don't check.
    generation: int | None = -1


@dataclass(frozen=True)
class AllocationChange:
    """What a committed allocation write changed, to replay on the host state."""

    consumer: str
    old: dict[str, dict[str, int]] = field(default_factory=dict)
    new: dict[str, dict[str, int]] = field(default_factory=dict)


def check_resource_class(name: str) -> None:
    """Reject resource class names that are neither standard nor ``CUSTOM_*``."""
    if not NAME_RE.match(name) or (
            name not in STANDARD_RESOURCE_CLASSES and not name.startswith("CUSTOM_")):
        raise BadRequest(f"Unknown resource class in inventory: {name}")


def _provider(row: Any) -> Provider:
    return Provider(row.id, row.uuid, row.name, row.generation, row.parent_uuid,
                    row.root_uuid)


class PlacementStore:
    """Reads and compare-and-swap writes of the placement tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- providers ---------------------------------------------------------------------
    def get_provider(self, conn: Connection, uuid: str) -> Provider:
        """Return the provider ``uuid`` or raise NotFound."""
        row = conn.execute(sa.select(resource_providers)
                           .where(resource_providers.c.uuid == uuid)).first()
        if row is None:
            raise NotFound(f"No resource provider with uuid {uuid} found")
        return _provider(row)

    def list_providers(self, conn: Connection) -> list[Provider]:
        """Return every provider, in id order."""
        rows = conn.execute(sa.select(resource_providers).order_by(resource_providers.c.id))
        return [_provider(r) for r in rows]

    def create_provider(self, conn: Connection, uuid: str, name: str,
                        parent_uuid: str | None = None) -> Provider:
        """Insert a provider; 409 if the name or uuid is taken."""
        clash = conn.execute(sa.select(resource_providers.c.uuid).where(
            (resource_providers.c.uuid == uuid) | (resource_providers.c.name == name))).first()
        if clash is not None:
            raise ConcurrentUpdate(f"Conflicting resource provider name: {name} already exists."
                                   if clash.uuid != uuid else
                                   f"Conflicting resource provider uuid: {uuid} already exists.")
        root = uuid
        if parent_uuid:
            parent = self.get_provider(conn, parent_uuid)
            root = parent.root_uuid or parent.uuid
        try:
            conn.execute(resource_providers.insert().values(
                uuid=uuid, name=name, generation=0, parent_uuid=parent_uuid, root_uuid=root))
        except sa.exc.IntegrityError:  # a concurrent create won (PostgreSQL waits, then this)
            raise ConcurrentUpdate(f"Conflicting resource provider: name {name} or uuid "
                                   f"{uuid} already exists.") from None
        return self.get_provider(conn, uuid)

    def update_provider(self, conn: Connection, uuid: str, name: str) -> Provider:
        """Rename a provider (and bump its generation)."""
        prov = self.get_provider(conn, uuid)
        if name != prov.name:
            taken = conn.execute(sa.select(resource_providers.c.id)
                                 .where(resource_providers.c.name == name)).first()
            if taken is not None:
                raise ConcurrentUpdate(f"Conflicting resource provider name: {name}")
        conn.execute(resource_providers.update().where(resource_providers.c.id == prov.id)
                     .values(name=name))
        self.bump(conn, prov.id, prov.generation)
        return self.get_provider(conn, uuid)

    def delete_provider(self, conn: Connection, uuid: str) -> Provider:
        """Delete a provider without allocations or children."""
        prov = self.get_provider(conn, uuid)
        used = conn.execute(sa.select(allocations.c.id)
                            .where(allocations.c.rp_id == prov.id).limit(1)).first()
        if used is not None:
            raise InventoryInUse(f"Unable to delete resource provider {uuid}: "
                                 "Resource provider has allocations.")
        child = conn.execute(sa.select(resource_providers.c.id)
                             .where(resource_providers.c.parent_uuid == uuid).limit(1)).first()
        if child is not None:
            raise ConcurrentUpdate(f"Unable to delete parent resource provider {uuid}: "
                                   "It has child resource providers.")
        for table in (inventories, rp_traits, rp_aggregates):
            conn.execute(table.delete().where(table.c.rp_id == prov.id))
        conn.execute(resource_providers.delete().where(resource_providers.c.id == prov.id))
        return prov

    def bump(self, conn: Connection, rp_id: int, seen: int) -> int:
        """Compare-and-swap the generation of ``rp_id``; return the new one."""
        res = conn.execute(resource_providers.update()
                           .where((resource_providers.c.id == rp_id)
                                  & (resource_providers.c.generation == seen))
                           .values(generation=seen + 1))
        if res.rowcount != 1:
            raise ConcurrentUpdate("resource provider generation conflict")
        return seen + 1

    def check_generation(self, prov: Provider, expected: Any) -> None:
        """Raise ConcurrentUpdate unless ``expected`` is the provider's generation."""
        if not isinstance(expected, int) or isinstance(expected, bool):
            raise BadRequest("'resource_provider_generation' is a required integer")
        if expected != prov.generation:
            raise ConcurrentUpdate(
                "resource provider generation conflict: "
                f"{prov.uuid} is at generation {prov.generation}, not {expected}")

    # -- inventories -----------------------------------------------------------------------
    def get_inventories(self, conn: Connection, rp_id: int) -> dict[str, Inventory]:
        """Return the inventories of a provider by resource class."""
        rows = conn.execute(sa.select(inventories).where(inventories.c.rp_id == rp_id))
        return {r.resource_class: Inventory(r.total, r.reserved, r.min_unit, r.max_unit,
                                            r.step_size, r.allocation_ratio) for r in rows}

    def set_inventories(self, conn: Connection, prov: Provider,
                        invs: Mapping[str, Inventory]) -> int:
        """Replace a provider's inventories (CAS on its generation); return the new one."""
        for rc in invs:
            check_resource_class(rc)
            if rc.startswith("CUSTOM_") and not self.resource_class_exists(conn, rc):
                raise BadRequest(f"Unknown resource class in inventory: {rc}")
        usage = self.usages(conn, [prov.id]).get(prov.id, {})
        dropped = [rc for rc in usage if rc not in invs and usage[rc] > 0]
        if dropped:
            raise InventoryInUse(f"Inventory for '{dropped[0]}' on resource provider "
                                 f"'{prov.uuid}' in use.")
        conn.execute(inventories.delete().where(inventories.c.rp_id == prov.id))
        if invs:
            conn.execute(inventories.insert(), [
                {"rp_id": prov.id, "resource_class": rc, "total": inv.total,
                 "reserved": inv.reserved, "min_unit": inv.min_unit,
                 "max_unit": inv.effective_max_unit, "step_size": inv.step_size,
                 "allocation_ratio": inv.allocation_ratio} for rc, inv in invs.items()])
        return self.bump(conn, prov.id, prov.generation)

    def bulk_provider_data(self, conn: Connection) -> tuple[
            dict[int, dict[str, Inventory]], dict[int, dict[str, int]], dict[int, list[str]]]:
        """Return every provider's inventories, usage and traits (start-up load)."""
        invs: dict[int, dict[str, Inventory]] = {}
        for r in conn.execute(sa.select(inventories)):
            invs.setdefault(r.rp_id, {})[r.resource_class] = Inventory(
                r.total, r.reserved, r.min_unit, r.max_unit, r.step_size, r.allocation_ratio)
        usage: dict[int, dict[str, int]] = {}
        q = (sa.select(allocations.c.rp_id, allocations.c.resource_class,
                       sa.func.sum(allocations.c.used))
             .group_by(allocations.c.rp_id, allocations.c.resource_class))
        for rp_id, rc, used in conn.execute(q):
            usage.setdefault(rp_id, {})[rc] = int(used)
        tr: dict[int, list[str]] = {}
        for rp_id, name in conn.execute(sa.select(rp_traits.c.rp_id, rp_traits.c.trait)):
            tr.setdefault(rp_id, []).append(name)
        return invs, usage, tr

    def usages(self, conn: Connection, rp_ids: Iterable[int],
               exclude_consumers: Iterable[str] = ()) -> dict[int, dict[str, int]]:
        """Return summed allocations per provider and resource class."""
        q = (sa.select(allocations.c.rp_id, allocations.c.resource_class,
                       sa.func.sum(allocations.c.used))
             .where(allocations.c.rp_id.in_(list(rp_ids)))
             .group_by(allocations.c.rp_id, allocations.c.resource_class))
        excl = list(exclude_consumers)
        if excl:
            q = q.where(allocations.c.consumer_uuid.not_in(excl))
        out: dict[int, dict[str, int]] = {}
        for rp_id, rc, used in conn.execute(q):
            out.setdefault(rp_id, {})[rc] = int(used)
        return out

    # -- resource classes and traits ---------------------------------------------------------
    def resource_class_exists(self, conn: Connection, name: str) -> bool:
        """Tell whether ``name`` is standard or a created custom class."""
        if name in STANDARD_RESOURCE_CLASSES:
            return True
        return conn.execute(sa.select(resource_classes.c.name)
                            .where(resource_classes.c.name == name)).first() is not None

    def ensure_resource_class(self, conn: Connection, name: str) -> bool:
        """Create custom class ``name`` if missing; return True if created."""
        if self.resource_class_exists(conn, name):
            return False
        if not name.startswith("CUSTOM_") or not NAME_RE.match(name):
            raise BadRequest(f"Invalid resource class name {name!r}: must be CUSTOM_[A-Z0-9_]+")
        conn.execute(resource_classes.insert().values(name=name))
        return True

    def list_resource_classes(self, conn: Connection) -> list[str]:
        """Return standard and custom resource class names."""
        custom = [r.name for r in conn.execute(sa.select(resource_classes)
                                               .order_by(resource_classes.c.name))]
        return list(STANDARD_RESOURCE_CLASSES) + custom

    def ensure_traits(self, conn: Connection, names: Iterable[str],
                      allow_standard: bool = True) -> bool:
        """Create missing traits; return True if any was created."""
        created = False
        existing = {r.name for r in conn.execute(sa.select(traits))}
        for name in names:
            if name in existing:
                continue
            if not NAME_RE.match(name) or not (name.startswith("CUSTOM_") or (
                    allow_standard and name.startswith(STANDARD_TRAIT_PREFIXES))):
                raise BadRequest(f"Invalid trait name {name!r}")
            conn.execute(traits.insert().values(name=name))
            existing.add(name)
            created = True
        return created

    def list_traits(self, conn: Connection) -> list[str]:
        """Return every known trait name, sorted."""
        return [r.name for r in conn.execute(sa.select(traits).order_by(traits.c.name))]

    def provider_traits(self, conn: Connection, rp_id: int) -> list[str]:
        """Return the traits of a provider, sorted."""
        rows = conn.execute(sa.select(rp_traits.c.trait).where(rp_traits.c.rp_id == rp_id)
                            .order_by(rp_traits.c.trait))
        return [r.trait for r in rows]

    def set_provider_traits(self, conn: Connection, prov: Provider,
                            names: Iterable[str]) -> int:
        """Replace a provider's traits (which must exist); return the new generation."""
        wanted = sorted(set(names))
        known = {r.name for r in conn.execute(sa.select(traits)
                                              .where(traits.c.name.in_(wanted)))}
        missing = [t for t in wanted if t not in known]
        if missing:
            raise BadRequest(f"No such trait(s): {', '.join(missing)}")
        conn.execute(rp_traits.delete().where(rp_traits.c.rp_id == prov.id))
        if wanted:
            conn.execute(rp_traits.insert(), [{"rp_id": prov.id, "trait": t} for t in wanted])
        return self.bump(conn, prov.id, prov.generation)

    # -- placement aggregates ---------------------------------------------------------------
    def provider_aggregates(self, conn: Connection, rp_id: int) -> list[str]:
        """Return the aggregate uuids of a provider, sorted."""
        rows = conn.execute(sa.select(rp_aggregates.c.aggregate_uuid)
                            .where(rp_aggregates.c.rp_id == rp_id)
                            .order_by(rp_aggregates.c.aggregate_uuid))
        return [r.aggregate_uuid for r in rows]

    def set_provider_aggregates(self, conn: Connection, prov: Provider,
                                uuids: Iterable[str]) -> int:
        """Replace a provider's aggregates; return the new generation."""
        conn.execute(rp_aggregates.delete().where(rp_aggregates.c.rp_id == prov.id))
        wanted = sorted(set(uuids))
        if wanted:
            conn.execute(rp_aggregates.insert(),
                         [{"rp_id": prov.id, "aggregate_uuid": u} for u in wanted])
        return self.bump(conn, prov.id, prov.generation)

    # -- allocations ---------------------------------------------------------------------------
    def consumer_allocations(self, conn: Connection,
                             uuids: Iterable[str]) -> dict[str, dict[str, dict[str, int]]]:
        """Return consumer -> rp uuid -> rc -> amount."""
        q = (sa.select(allocations.c.consumer_uuid, resource_providers.c.uuid,
                       allocations.c.resource_class, allocations.c.used)
             .join(resource_providers, resource_providers.c.id == allocations.c.rp_id)
             .where(allocations.c.consumer_uuid.in_(list(uuids))))
        out: dict[str, dict[str, dict[str, int]]] = {}
        for consumer, rp_uuid, rc, used in conn.execute(q):
            out.setdefault(consumer, {}).setdefault(rp_uuid, {})[rc] = int(used)
        return out

    def get_consumer(self, conn: Connection, uuid: str) -> Any:
        """Return the consumer row or None."""
        return conn.execute(sa.select(consumers).where(consumers.c.uuid == uuid)).first()

    def replace_allocations(self, conn: Connection, items: list[ConsumerAllocations],
                            expected: Mapping[str, int] | None = None,
                            ) -> tuple[list[AllocationChange], dict[str, int]]:
        """Set the complete allocations of several consumers, all or nothing.

        Checks consumer generations, inventory presence, ``min_unit``/``max_unit``/
        ``step_size`` and capacity (with the other consumers' usage), then bumps every
        touched provider's generation with a compare-and-swap. ``expected`` maps
        provider uuids to the generations the caller's view was built on.
        Returns the changes and the new generations by provider uuid.
        """
        names = [c.uuid for c in items]
        if len(set(names)) != len(names):
            raise BadRequest("duplicate consumer in allocation request")
        old = self.consumer_allocations(conn, names)
        rp_uuids = {u for c in items for u in c.allocations} | {
            u for per in old.values() for u in per}
        provs = self._providers_by_uuid(conn, rp_uuids)
        if expected:
            for uuid, gen in expected.items():
                if uuid in provs and provs[uuid].generation != gen:
                    raise ConcurrentUpdate(f"resource provider {uuid} changed (generation "
                                           f"{provs[uuid].generation}, expected {gen})")
        for item in items:
            self._check_consumer(conn, item)
        self._check_capacity(conn, items, provs, names)
        self._write(conn, items)
        # Bump in id order: concurrent writers then lock provider rows in one order
        # (PostgreSQL would otherwise be free to deadlock them).
        gens = {u: self.bump(conn, p.id, p.generation)
                for u, p in sorted(provs.items(), key=lambda kv: kv[1].id)}
        changes = [AllocationChange(c.uuid, old.get(c.uuid, {}),
                                    {u: dict(r) for u, r in c.allocations.items()})
                   for c in items]
        return changes, gens

    def claim_writer(self) -> ClaimWriter:
        """Return a claim writer on its own database connection."""
        return ClaimWriter(self.engine)

    def _providers_by_uuid(self, conn: Connection, uuids: set[str]) -> dict[str, Provider]:
        rows = conn.execute(sa.select(resource_providers)
                            .where(resource_providers.c.uuid.in_(sorted(uuids))))
        provs = {r.uuid: _provider(r) for r in rows}
        missing = sorted(uuids - set(provs))
        if missing:
            raise BadRequest(f"Allocation for resource provider '{missing[0]}' "
                             "that does not exist.")
        return provs

    def _check_consumer(self, conn: Connection, item: ConsumerAllocations) -> None:
        if item.generation == -1:
            return
        row = self.get_consumer(conn, item.uuid)
        if item.generation is None and row is not None:
            raise ConcurrentUpdate(f"consumer generation conflict - expected null but got "
                                   f"{row.generation}")
        if item.generation is not None and (row is None or row.generation != item.generation):
            got = None if row is None else row.generation
            raise ConcurrentUpdate(f"consumer generation conflict - expected "
                                   f"{item.generation} but got {got}")

    def _check_capacity(self, conn: Connection, items: list[ConsumerAllocations],
                        provs: Mapping[str, Provider], names: list[str]) -> None:
        wanted: dict[tuple[str, str], int] = {}
        invs_of: dict[int, dict[str, Inventory]] = {}
        for item in items:
            for rp_uuid, res in item.allocations.items():
                for rc, amount in res.items():
                    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
                        raise BadRequest(f"Allocation of {rc} on {rp_uuid}: amount must be "
                                         "a positive integer")
                    key = (rp_uuid, rc)
                    wanted[key] = wanted.get(key, 0) + amount
                    rp_id = provs[rp_uuid].id
                    if rp_id not in invs_of:
                        invs_of[rp_id] = self.get_inventories(conn, rp_id)
                    inv = invs_of[rp_id].get(rc)
                    if inv is None:
                        raise BadRequest(f"Inventory for '{rc}' on resource provider "
                                         f"'{rp_uuid}' invalid.")
                    if (amount < inv.min_unit or amount > inv.effective_max_unit
                            or amount % max(inv.step_size, 1)):
                        raise BadRequest(
                            f"Unable to allocate inventory for consumer {item.uuid}: "
                            f"{rc} amount {amount} violates min_unit, max_unit, or "
                            f"step_size of resource provider {rp_uuid}")
        others = self.usages(conn, [p.id for p in provs.values()], exclude_consumers=names)
        for (rp_uuid, rc), amount in wanted.items():
            prov = provs[rp_uuid]
            inv = invs_of[prov.id][rc]
            used = others.get(prov.id, {}).get(rc, 0)
            if used + amount > inv.capacity:
                raise CapacityExceeded(
                    f"Unable to allocate inventory: Unable to create allocation for '{rc}' "
                    f"on resource provider '{rp_uuid}'. The requested amount would exceed "
                    "the capacity.")

    def _write(self, conn: Connection, items: list[ConsumerAllocations]) -> None:
        names = [c.uuid for c in items]
        conn.execute(allocations.delete().where(allocations.c.consumer_uuid.in_(names)))
        rows: list[dict[str, Any]] = []
        rp_ids = {r.uuid: r.id for r in conn.execute(
            sa.select(resource_providers.c.uuid, resource_providers.c.id).where(
                resource_providers.c.uuid.in_({u for c in items for u in c.allocations})))}
        for item in items:
            for rp_uuid, res in item.allocations.items():
                rows.extend({"consumer_uuid": item.uuid, "rp_id": rp_ids[rp_uuid],
                             "resource_class": rc, "used": amount}
                            for rc, amount in res.items())
            self._save_consumer(conn, item)
        if rows:
            conn.execute(allocations.insert(), rows)

    def _save_consumer(self, conn: Connection, item: ConsumerAllocations) -> None:
        row = self.get_consumer(conn, item.uuid)
        if not item.allocations:
            conn.execute(consumers.delete().where(consumers.c.uuid == item.uuid))
        elif row is None:
            conn.execute(consumers.insert().values(uuid=item.uuid, project_id=item.project_id,
                                                   user_id=item.user_id, generation=1))
        else:
            conn.execute(consumers.update().where(consumers.c.uuid == item.uuid).values(
                project_id=item.project_id or row.project_id,
                user_id=item.user_id or row.user_id, generation=row.generation + 1))

    def provider_allocations(self, conn: Connection,
                             rp_id: int) -> dict[str, dict[str, int]]:
        """Return consumer -> rc -> amount on one provider."""
        out: dict[str, dict[str, int]] = {}
        rows = conn.execute(sa.select(allocations).where(allocations.c.rp_id == rp_id))
        for r in rows:
            out.setdefault(r.consumer_uuid, {})[r.resource_class] = int(r.used)
        return out

    def project_usages(self, conn: Connection, project_id: str,
                       user_id: str | None = None) -> dict[str, int]:
        """Return summed allocations of a project (optionally one user)."""
        q = (sa.select(allocations.c.resource_class, sa.func.sum(allocations.c.used))
             .join(consumers, consumers.c.uuid == allocations.c.consumer_uuid)
             .where(consumers.c.project_id == project_id)
             .group_by(allocations.c.resource_class))
        if user_id:
            q = q.where(consumers.c.user_id == user_id)
        return {rc: int(n) for rc, n in conn.execute(q)}

    # -- scheduler tables ------------------------------------------------------------------------
    def save_host_aggregate(self, conn: Connection, uuid: str, name: str,
                            metadata: Mapping[str, str], hosts: Iterable[str]) -> None:
        """Create or replace a Nova-style host aggregate."""
        conn.execute(host_aggregates.delete().where(host_aggregates.c.uuid == uuid))
        conn.execute(host_aggregates.insert().values(
            uuid=uuid, name=name, metadata_json=json.dumps(dict(metadata)),
            hosts_json=json.dumps(sorted(set(hosts)))))

    def delete_host_aggregate(self, conn: Connection, uuid: str) -> None:
        """Delete a Nova-style host aggregate (NotFound if missing)."""
        res = conn.execute(host_aggregates.delete().where(host_aggregates.c.uuid == uuid))
        if res.rowcount == 0:
            raise NotFound(f"Aggregate {uuid} could not be found.")

    def host_aggregates(self, conn: Connection) -> list[tuple[str, str, dict[str, str],
                                                              list[str]]]:
        """Return every host aggregate as (uuid, name, metadata, hosts)."""
        return [(r.uuid, r.name, json.loads(r.metadata_json), json.loads(r.hosts_json))
                for r in conn.execute(sa.select(host_aggregates))]

    def save_compute_host(self, conn: Connection, name: str, rp_uuid: str,
                          facts: Mapping[str, Any]) -> None:
        """Store the latest facts a compute daemon reported."""
        conn.execute(compute_hosts.delete().where(compute_hosts.c.name == name))
        conn.execute(compute_hosts.insert().values(name=name, rp_uuid=rp_uuid,
                                                   facts_json=json.dumps(dict(facts))))

    def service_statuses(self, conn: Connection) -> dict[str, ServiceStatus]:
        """Return host name -> the status an operator set on its compute service."""
        return {r.name: ServiceStatus(bool(r.disabled), r.disabled_reason, bool(r.forced_down))
                for r in conn.execute(sa.select(compute_services))}

    def save_service_status(self, conn: Connection, name: str, status: ServiceStatus) -> None:
        """Store the status an operator set on a host's compute service."""
        conn.execute(compute_services.delete().where(compute_services.c.name == name))
        conn.execute(compute_services.insert().values(
            name=name, disabled=status.disabled, disabled_reason=status.disabled_reason,
            forced_down=status.forced_down))

    def forget_compute_host(self, conn: Connection, name: str) -> None:
        """Delete a host's reported facts and its service status."""
        conn.execute(compute_hosts.delete().where(compute_hosts.c.name == name))
        conn.execute(compute_services.delete().where(compute_services.c.name == name))

    def compute_hosts(self, conn: Connection) -> dict[str, dict[str, Any]]:
        """Return rp uuid -> last reported facts."""
        return {r.rp_uuid: json.loads(r.facts_json)
                for r in conn.execute(sa.select(compute_hosts))}
