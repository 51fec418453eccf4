"""Compute data access (SQLAlchemy Core): flavors, keypairs, instances, quotas.

Instance state changes that race (a stop and a delete, two reboots) are
compare-and-swap updates on ``task_state`` (Nova's ``expected_task_state``), so
exactly one caller wins and the other gets a 409.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from nubis.api.compute import schema as s
from nubis.api.compute.model import Flavor, Instance, Keypair
from nubis.api.shared.errors import ConflictError
from nubis.common.db import migrate
from sqlalchemy.engine import Connection, Engine

Clock = Callable[[], datetime]
_UNSET = object()


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (how the tables store it)."""
    return datetime.now(UTC).replace(tzinfo=None)


class ComputeStore:
    """Rows of the compute API on the shared control-plane engine."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def migrate(self) -> None:
        """Create or upgrade the compute tables."""
        migrate(self.engine, "compute", s.MIGRATIONS)

    # --- flavors -----------------------------------------------------------------------

    def _specs(self, conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {i: {} for i in ids}
        if ids:
            t = s.flavor_extra_specs
            for row in conn.execute(sa.select(t).where(t.c.flavor_id.in_(list(ids)))):
                out[row.flavor_id][row.key] = row.value
        return out

    def create_flavor(self, values: Mapping[str, Any]) -> Flavor:
        """Insert a flavor; 409 if its id or name is taken."""
        try:
            with self.engine.begin() as conn:
                conn.execute(s.flavors.insert().values(**values, created_at=self.clock()))
        except sa.exc.IntegrityError:
            raise ConflictError(f"Flavor with name {values['name']} or id "
                                f"{values['flavorid']} already exists.") from None
        flavor = self.get_flavor(str(values["flavorid"]))
        assert flavor is not None
        return flavor

    def get_flavor(self, flavorid: str) -> Flavor | None:
        """Return the flavor with this (API) id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.flavors).where(s.flavors.c.flavorid == flavorid)
                               ).mappings().first()
            if row is None:
                return None
            return Flavor.from_row(row, self._specs(conn, [row["id"]])[row["id"]])

    def list_flavors(self, is_public: bool | None, project_id: str | None,
                     min_ram: int = 0, min_disk: int = 0, sort_key: str = "flavorid",
                     sort_dir: str = "asc") -> list[Flavor]:
        """Return flavors: public ones and (with ``project_id``) those it may use."""
        f, a = s.flavors, s.flavor_access
        q = sa.select(f).where(f.c.memory_mb >= min_ram, f.c.root_gb >= min_disk)
        if is_public is not None:
            visible = f.c.is_public == is_public
            if is_public and project_id is not None:
                visible = sa.or_(visible, f.c.id.in_(
                    sa.select(a.c.flavor_id).where(a.c.project_id == project_id)))
            q = q.where(visible)
        col = f.c[sort_key]
        q = q.order_by(col.desc() if sort_dir == "desc" else col.asc(), f.c.id.asc())
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
            specs = self._specs(conn, [r["id"] for r in rows])
        return [Flavor.from_row(r, specs[r["id"]]) for r in rows]

    def delete_flavor(self, flavor: Flavor) -> None:
        """Delete a flavor with its extra specs and access list."""
        with self.engine.begin() as conn:
            conn.execute(s.flavor_extra_specs.delete().where(
                s.flavor_extra_specs.c.flavor_id == flavor.id))
            conn.execute(s.flavor_access.delete().where(s.flavor_access.c.flavor_id == flavor.id))
            conn.execute(s.flavors.delete().where(s.flavors.c.id == flavor.id))

    def set_description(self, flavor: Flavor, description: str | None) -> None:
        """Change a flavor's description."""
        with self.engine.begin() as conn:
            conn.execute(s.flavors.update().where(s.flavors.c.id == flavor.id)
                         .values(description=description))

    def set_extra_specs(self, flavor: Flavor, specs: Mapping[str, str]) -> None:
        """Create or replace extra specs of a flavor."""
        t = s.flavor_extra_specs
        with self.engine.begin() as conn:
            for key, value in specs.items():
                conn.execute(t.delete().where(t.c.flavor_id == flavor.id, t.c.key == key))
                conn.execute(t.insert().values(flavor_id=flavor.id, key=key, value=value))

    def delete_extra_spec(self, flavor: Flavor, key: str) -> bool:
        """Delete one extra spec; return whether it existed."""
        t = s.flavor_extra_specs
        with self.engine.begin() as conn:
            return bool(conn.execute(t.delete().where(t.c.flavor_id == flavor.id,
                                                      t.c.key == key)).rowcount)

    def flavor_access(self, flavor: Flavor) -> list[str]:
        """Return the projects a private flavor is shared with."""
        t = s.flavor_access
        with self.engine.connect() as conn:
            return sorted(r.project_id for r in conn.execute(
                sa.select(t.c.project_id).where(t.c.flavor_id == flavor.id)))

    def set_flavor_access(self, flavor: Flavor, project_id: str, allow: bool) -> bool:
        """Add or remove a project's access; return whether anything changed."""
        t = s.flavor_access
        with self.engine.begin() as conn:
            if not allow:
                return bool(conn.execute(t.delete().where(
                    t.c.flavor_id == flavor.id, t.c.project_id == project_id)).rowcount)
            try:
                with conn.begin_nested():
                    conn.execute(t.insert().values(flavor_id=flavor.id, project_id=project_id))
            except sa.exc.IntegrityError:
                return False
            return True

    # --- keypairs ----------------------------------------------------------------------

    def create_keypair(self, user_id: str, name: str, public_key: str, fingerprint: str,
                       kind: str) -> Keypair:
        """Insert a keypair; 409 if the user has one of that name."""
        try:
            with self.engine.begin() as conn:
                conn.execute(s.keypairs.insert().values(
                    user_id=user_id, name=name, public_key=public_key,
                    fingerprint=fingerprint, type=kind, created_at=self.clock()))
        except sa.exc.IntegrityError:
            raise ConflictError(f"Key pair '{name}' already exists.") from None
        kp = self.get_keypair(user_id, name)
        assert kp is not None
        return kp

    def get_keypair(self, user_id: str, name: str) -> Keypair | None:
        """Return a user's keypair by name."""
        t = s.keypairs
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.user_id == user_id, t.c.name == name)
                               ).mappings().first()
        return Keypair(**row) if row else None

    def list_keypairs(self, user_id: str) -> list[Keypair]:
        """Return a user's keypairs by name."""
        t = s.keypairs
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.user_id == user_id)
                                .order_by(t.c.name)).mappings().all()
        return [Keypair(**r) for r in rows]

    def delete_keypair(self, user_id: str, name: str) -> bool:
        """Delete a keypair; return whether it existed."""
        t = s.keypairs
        with self.engine.begin() as conn:
            return bool(conn.execute(t.delete().where(t.c.user_id == user_id,
                                                      t.c.name == name)).rowcount)

    # --- instances ---------------------------------------------------------------------

    def create_instances(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert new instances (one transaction)."""
        now = self.clock()
        with self.engine.begin() as conn:
            for row in rows:
                conn.execute(s.instances.insert().values(
                    **_encode(row), created_at=now, updated_at=now, deleted=0))

    def get_instance(self, uuid: str, include_deleted: bool = False) -> Instance | None:
        """Return an instance (not deleted unless asked), or None."""
        t = s.instances
        q = sa.select(t).where(t.c.uuid == uuid)
        if not include_deleted:
            q = q.where(t.c.deleted == 0)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return Instance.from_row(row) if row else None

    def list_instances(self, project_id: str | None, *, deleted: bool = False,
                       where: Sequence[Any] = (), sort_key: str = "created_at",
                       sort_dir: str = "desc") -> list[Instance]:
        """Return instances of one project (every project with None), newest first."""
        t = s.instances
        q = sa.select(t).where(t.c.deleted == (1 if deleted else 0), *where)
        if project_id is not None:
            q = q.where(t.c.project_id == project_id)
        col = t.c[sort_key]
        order = col.desc() if sort_dir == "desc" else col.asc()
        q = q.order_by(order, t.c.uuid.desc() if sort_dir == "desc" else t.c.uuid.asc())
        with self.engine.connect() as conn:
            return [Instance.from_row(r) for r in conn.execute(q).mappings()]

    def update_instance(self, uuid: str, expected_task_state: Any = _UNSET,
                        expected_vm_states: Sequence[str] | None = None,
                        **values: Any) -> Instance | None:
        """Update a live instance; None if it is gone or its state was not as expected."""
        t = s.instances
        q = t.update().where(t.c.uuid == uuid, t.c.deleted == 0)
        if expected_task_state is not _UNSET:
            q = q.where(t.c.task_state.is_(None) if expected_task_state is None
                        else t.c.task_state == expected_task_state)
        if expected_vm_states is not None:
            q = q.where(t.c.vm_state.in_(list(expected_vm_states)))
        with self.engine.begin() as conn:
            if not conn.execute(q.values(**_encode(values), updated_at=self.clock())).rowcount:
                return None
        return self.get_instance(uuid)

    def mark_deleted(self, uuid: str) -> None:
        """Soft-delete an instance (Nova's ``deleted`` vm_state)."""
        t = s.instances
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.uuid == uuid).values(
                deleted=1, vm_state="deleted", task_state=None, power_state=0,
                terminated_at=now, updated_at=now))

    def usage(self, project_id: str) -> dict[str, int]:
        """Return a project's instances, cores and RAM in use (Nova counts live rows)."""
        t = s.instances
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.vcpus), 0),
                sa.func.coalesce(sa.func.sum(t.c.memory_mb), 0)).where(
                    t.c.project_id == project_id, t.c.deleted == 0)).first()
        assert row is not None
        return {"instances": int(row[0]), "cores": int(row[1]), "ram": int(row[2])}

    def host_zones(self) -> dict[str, str]:
        """Return the availability zone of every host an aggregate gives one.

        Hosts in no zoned aggregate are in the default zone. A host is in at most
        one zone (the aggregates API refuses a second), so the first one found wins.
        """
        t = s.aggregates
        zones: dict[str, str] = {}
        with self.engine.connect() as conn:
            for meta, hosts in conn.execute(sa.select(t.c.metadata, t.c.hosts)
                                            .order_by(t.c.id)):
                zone = json.loads(meta or "{}").get("availability_zone")
                if zone:
                    for host in json.loads(hosts or "[]"):
                        zones.setdefault(host, zone)
        return zones

    def count_keypairs(self, user_id: str) -> int:
        """Return how many keypairs a user has."""
        t = s.keypairs
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(
                t.c.user_id == user_id)).scalar_one())

    # --- instance actions ----------------------------------------------------------------

    def start_action(self, uuid: str, action: str, request_id: str, project_id: str,
                     user_id: str) -> int:
        """Record the start of a user action on an instance; return its id."""
        now = self.clock()
        with self.engine.begin() as conn:
            res = conn.execute(s.actions.insert().values(
                instance_uuid=uuid, request_id=request_id, action=action,
                project_id=project_id, user_id=user_id, start_time=now, updated_at=now))
            key = res.inserted_primary_key
            assert key is not None
            return int(key[0])

    def add_event(self, action_id: int, event: str, start: datetime, finish: datetime,
                  result: str, details: str | None = None) -> None:
        """Record one finished event of an action (and the action's message on error)."""
        t, e = s.actions, s.action_events
        with self.engine.begin() as conn:
            seq = conn.execute(sa.select(sa.func.count()).where(
                e.c.action_id == action_id)).scalar_one()
            conn.execute(e.insert().values(action_id=action_id, seq=int(seq), event=event,
                                           start_time=start, finish_time=finish,
                                           result=result, details=details))
            values: dict[str, Any] = {"updated_at": finish}
            if result == "Error":
                values["message"] = "Error"
            conn.execute(t.update().where(t.c.id == action_id).values(**values))

    def list_actions(self, uuid: str) -> list[dict[str, Any]]:
        """Return an instance's actions, newest first."""
        t = s.actions
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                sa.select(t).where(t.c.instance_uuid == uuid)
                .order_by(t.c.start_time.desc(), t.c.id.desc())).mappings()]

    def get_action(self, uuid: str, request_id: str) -> dict[str, Any] | None:
        """Return one action with its events."""
        t, e = s.actions, s.action_events
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(
                t.c.instance_uuid == uuid, t.c.request_id == request_id)).mappings().first()
            if row is None:
                return None
            events = [dict(r) for r in conn.execute(
                sa.select(e).where(e.c.action_id == row["id"]).order_by(e.c.seq)).mappings()]
        return {**dict(row), "events": events}

    # --- server groups -------------------------------------------------------------------

    def create_group(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a server group; return it."""
        row = {**values, "rules": json.dumps(values.get("rules") or {}),
               "created_at": self.clock()}
        with self.engine.begin() as conn:
            conn.execute(s.server_groups.insert().values(**row))
        group = self.get_group(str(values["uuid"]))
        assert group is not None
        return group

    def get_group(self, uuid: str) -> dict[str, Any] | None:
        """Return a server group with its members (live instances), or None."""
        g, m, i = s.server_groups, s.server_group_members, s.instances
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(g).where(g.c.uuid == uuid)).mappings().first()
            if row is None:
                return None
            members = conn.execute(
                sa.select(m.c.instance_uuid, i.c.host)
                .join(i, i.c.uuid == m.c.instance_uuid)
                .where(m.c.group_uuid == uuid, i.c.deleted == 0)).all()
        return {**dict(row), "rules": json.loads(row["rules"] or "{}"),
                "members": [r[0] for r in members],
                "hosts": sorted({r[1] for r in members if r[1]})}

    def list_groups(self, project_id: str | None) -> list[dict[str, Any]]:
        """Return the server groups of a project (every project with None)."""
        g = s.server_groups
        q = sa.select(g.c.uuid).order_by(g.c.created_at, g.c.uuid)
        if project_id is not None:
            q = q.where(g.c.project_id == project_id)
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(q)]
        return [grp for grp in (self.get_group(u) for u in ids) if grp is not None]

    def delete_group(self, uuid: str) -> bool:
        """Delete a server group; return whether it existed."""
        with self.engine.begin() as conn:
            conn.execute(s.server_group_members.delete().where(
                s.server_group_members.c.group_uuid == uuid))
            return bool(conn.execute(s.server_groups.delete().where(
                s.server_groups.c.uuid == uuid)).rowcount)

    def add_members(self, group_uuid: str, instance_uuids: Iterable[str]) -> None:
        """Add instances to a server group."""
        with self.engine.begin() as conn:
            for uuid in instance_uuids:
                conn.execute(s.server_group_members.insert().values(
                    group_uuid=group_uuid, instance_uuid=uuid))

    def count_groups(self, project_id: str) -> int:
        """Return how many server groups a project has."""
        g = s.server_groups
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(
                g.c.project_id == project_id)).scalar_one())

    # --- quotas ------------------------------------------------------------------------

    def quotas(self, project_id: str) -> dict[str, int]:
        """Return a project's quota overrides."""
        t = s.quotas
        with self.engine.connect() as conn:
            return {r.resource: r.hard_limit for r in conn.execute(
                sa.select(t).where(t.c.project_id == project_id))}

    def set_quotas(self, project_id: str, limits: Mapping[str, int]) -> None:
        """Create or replace quota overrides of a project."""
        t = s.quotas
        with self.engine.begin() as conn:
            for resource, limit in limits.items():
                conn.execute(t.delete().where(t.c.project_id == project_id,
                                              t.c.resource == resource))
                conn.execute(t.insert().values(project_id=project_id, resource=resource,
                                               hard_limit=limit))

    def delete_quotas(self, project_id: str) -> None:
        """Revert a project to the default quotas."""
        with self.engine.begin() as conn:
            conn.execute(s.quotas.delete().where(s.quotas.c.project_id == project_id))


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    """Serialize the JSON columns of an instance row."""
    out = dict(values)
    for key in ("flavor", "metadata", "fault"):
        if key in out and out[key] is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key])
    if "tags" in out and not isinstance(out["tags"], str):
        out["tags"] = json.dumps(list(out["tags"]))
    return out
