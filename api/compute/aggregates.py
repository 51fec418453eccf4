"""``/os-aggregates``: Nova host aggregates, kept here and pushed to the scheduler.

Nova shows an integer ``id`` (and the ``uuid`` from 2.41); the scheduler keys its
aggregates (what the availability-zone and aggregate filters read) by UUID only
and has no read endpoint. So the compute API keeps each aggregate's record in
``compute_aggregate`` (id, uuid, name, metadata, hosts) and, on every change,
replaces the scheduler's copy with ``PUT /v1/aggregates/{uuid}`` before it
commits its own row; a scheduler that refuses or is unreachable fails the call
with 503 and nothing changes. Admin only, as Nova's default policy.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from datetime import datetime
from typing import Any

import falcon.asgi
import sqlalchemy as sa
from nubis.api.compute import schema as s
from nubis.api.compute.clients import PeerError, call
from nubis.api.compute.servers import ServiceUnavailableError
from nubis.api.compute.service import ComputeService, mv_of
from nubis.api.shared.errors import BadRequestError, ConflictError, NotFoundError
from nubis.api.shared.rest import read_json

_ACTIONS = ("add_host", "remove_host", "set_metadata")


def _ts(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def aggregate_view(row: dict[str, Any], mv: tuple[int, int], full: bool = True
                   ) -> dict[str, Any]:
    """Return an aggregate as Nova shows it (create omits hosts and metadata)."""
    metadata = row["metadata"]
    out: dict[str, Any] = {
        "id": row["id"], "name": row["name"],
        "availability_zone": metadata.get("availability_zone"),
        "created_at": _ts(row["created_at"]), "updated_at": _ts(row["updated_at"]),
        "deleted": False, "deleted_at": None}
    if full:
        out.update({"hosts": list(row["hosts"]), "metadata": dict(metadata)})
    if mv >= (2, 41):
        out["uuid"] = row["uuid"]
    return out


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not value.strip():
        raise BadRequestError(f"Invalid input for field/attribute {field}. "
                              f"Value: {value}. must be a string of 1 to 255 characters")
    return value


def _az(value: Any) -> str | None:
    if value is None:
        return None
    az = _name(value, "availability_zone")
    if ":" in az:
        raise BadRequestError("Invalid input for field/attribute availability_zone. "
                              "Value must not contain ':'")
    return az


def _body(doc: Any, key: str) -> dict[str, Any]:
    inner = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(inner, dict):
        raise BadRequestError(f"Invalid input for field/attribute {key}. "
                              f"'{key}' is a required property")
    return inner


class AggregateRows:
    """The ``compute_aggregate`` rows (JSON metadata and host list)."""

    def __init__(self, svc: ComputeService) -> None:
        self.engine = svc.store.engine
        self.clock = svc.store.clock

    @staticmethod
    def _decode(row: Any) -> dict[str, Any]:
        out = dict(row)
        out["metadata"] = json.loads(out["metadata"] or "{}")
        out["hosts"] = json.loads(out["hosts"] or "[]")
        return out

    def list(self) -> list[dict[str, Any]]:
        """Return every aggregate by id."""
        t = s.aggregates
        with self.engine.connect() as conn:
            return [self._decode(r) for r in
                    conn.execute(sa.select(t).order_by(t.c.id)).mappings()]

    def get(self, agg_id: str) -> dict[str, Any]:
        """Return one aggregate by its integer id (400 if not an integer, else 404)."""
        try:
            key = int(agg_id)
        except ValueError:
            raise BadRequestError(f"Invalid input for field/attribute id. Value: "
                                  f"{agg_id[:64]}. '{agg_id[:64]}' is not an integer") from None
        t = s.aggregates
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == key)).mappings().first()
        if row is None:
            raise NotFoundError(f"Aggregate {agg_id} could not be found.")
        return self._decode(row)

    def name_taken(self, name: str, other_than: int | None = None) -> bool:
        """Return whether another aggregate has this name."""
        t = s.aggregates
        q = sa.select(sa.func.count()).where(t.c.name == name)
        if other_than is not None:
            q = q.where(t.c.id != other_than)
        with self.engine.connect() as conn:
            return bool(conn.execute(q).scalar_one())

    def insert(self, uuid: str, name: str, metadata: dict[str, str]) -> dict[str, Any]:
        """Insert an aggregate; 409 when the name is taken (a race lost)."""
        try:
            with self.engine.begin() as conn:
                res = conn.execute(s.aggregates.insert().values(
                    uuid=uuid, name=name, metadata=json.dumps(metadata), hosts="[]",
                    created_at=self.clock(), updated_at=None))
                key = res.inserted_primary_key
                assert key is not None
        except sa.exc.IntegrityError:
            raise ConflictError(f"Aggregate {name} already exists.") from None
        return self.get(str(key[0]))

    def update(self, agg_id: int, **values: Any) -> dict[str, Any]:
        """Replace some of an aggregate's fields; return the new record."""
        for key in ("metadata", "hosts"):
            if key in values:
                values[key] = json.dumps(values[key])
        t = s.aggregates
        try:
            with self.engine.begin() as conn:
                conn.execute(t.update().where(t.c.id == agg_id)
                             .values(**values, updated_at=self.clock()))
        except sa.exc.IntegrityError:
            raise ConflictError(f"Aggregate {values.get('name')} already exists.") from None
        return self.get(str(agg_id))

    def delete(self, agg_id: int) -> None:
        """Delete an aggregate row."""
        with self.engine.begin() as conn:
            conn.execute(s.aggregates.delete().where(s.aggregates.c.id == agg_id))


class Aggregates:
    """``/os-aggregates``, ``/os-aggregates/{id}`` and ``/os-aggregates/{id}/action``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc
        self.rows = AggregateRows(svc)

    def _admin(self, req: falcon.asgi.Request, what: str) -> None:
        self.svc.require_admin(req, f"os_compute_api:os-aggregates:{what}")

    async def _push(self, uuid: str, name: str, metadata: dict[str, str],
                    hosts: list[str]) -> None:
        """Replace the scheduler's copy of an aggregate (503 when it refuses)."""
        sched = self.svc.scheduler
        try:
            status, raw = await call(sched.http, sched.url, "PUT", f"/v1/aggregates/{uuid}",
                                     sched.headers, {"name": name, "metadata": metadata,
                                                     "hosts": hosts})
        except PeerError as exc:
            raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None
        if status != 200:
            raise ServiceUnavailableError(
                f"The scheduler refused the aggregate: {status} {raw[:200]!r}")

    async def _unpush(self, uuid: str) -> None:
        sched = self.svc.scheduler
        try:
            status, raw = await call(sched.http, sched.url, "DELETE", f"/v1/aggregates/{uuid}",
                                     sched.headers)
        except PeerError as exc:
            raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None
        if status not in (204, 404):
            raise ServiceUnavailableError(
                f"The scheduler refused the delete: {status} {raw[:200]!r}")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List aggregates."""
        self._admin(req, "index")
        mv = mv_of(req)
        resp.media = {"aggregates": [aggregate_view(r, mv) for r in self.rows.list()]}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create an aggregate (name, optional availability zone)."""
        self._admin(req, "create")
        body = _body(await read_json(req), "aggregate")
        if set(body) - {"name", "availability_zone"}:
            raise BadRequestError("Invalid input for field/attribute aggregate. "
                                  "Additional properties are not allowed")
        name = _name(body.get("name"), "name")
        az = _az(body.get("availability_zone"))
        if self.rows.name_taken(name):
            raise ConflictError(f"Aggregate {name} already exists.")
        metadata = {"availability_zone": az} if az else {}
        uuid = str(uuidlib.uuid4())
        await self._push(uuid, name, metadata, [])
        try:
            row = self.rows.insert(uuid, name, metadata)
        except ConflictError:
            await self._unpush(uuid)
            raise
        resp.media = {"aggregate": aggregate_view(row, mv_of(req), full=False)}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         agg_id: str) -> None:
        """Show an aggregate."""
        self._admin(req, "show")
        resp.media = {"aggregate": aggregate_view(self.rows.get(agg_id), mv_of(req))}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         agg_id: str) -> None:
        """Rename an aggregate or change its availability zone."""
        self._admin(req, "update")
        body = _body(await read_json(req), "aggregate")
        if not body or set(body) - {"name", "availability_zone"}:
            raise BadRequestError("Invalid input for field/attribute aggregate. "
                                  "Expected 'name' and/or 'availability_zone'")
        row = self.rows.get(agg_id)
        name = _name(body["name"], "name") if "name" in body else row["name"]
        metadata = dict(row["metadata"])
        if "availability_zone" in body:
            az = _az(body["availability_zone"])
            self._check_az(row, az, "update")
            metadata.pop("availability_zone", None)
            if az:
                metadata["availability_zone"] = az
        if self.rows.name_taken(name, other_than=row["id"]):
            raise ConflictError(f"Aggregate {name} already exists.")
        await self._push(row["uuid"], name, metadata, row["hosts"])
        row = self.rows.update(row["id"], name=name, metadata=metadata)
        resp.media = {"aggregate": aggregate_view(row, mv_of(req))}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            agg_id: str) -> None:
        """Delete an empty aggregate (400 while it still has hosts, as Nova)."""
        self._admin(req, "delete")
        row = self.rows.get(agg_id)
        if row["hosts"]:
            raise BadRequestError(f"Cannot perform action 'delete' on aggregate {agg_id}. "
                                  "Reason: Host aggregate is not empty.")
        await self._unpush(row["uuid"])
        self.rows.delete(row["id"])
        resp.status = 200

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             agg_id: str) -> None:
        """Run ``add_host``, ``remove_host`` or ``set_metadata``."""
        doc = await read_json(req)
        if not isinstance(doc, dict) or len(doc) != 1 or next(iter(doc)) not in _ACTIONS:
            raise BadRequestError("Invalid input for field/attribute action. Expected one "
                                  "of add_host, remove_host, set_metadata")
        action = next(iter(doc))
        self._admin(req, action)
        body = _body(doc, action)
        row = self.rows.get(agg_id)
        if action == "set_metadata":
            hosts, metadata = row["hosts"], self._new_metadata(row, body)
        else:
            host = body.get("host")
            if set(body) != {"host"} or not isinstance(host, str) or not host:
                raise BadRequestError(f"Invalid input for field/attribute {action}. "
                                      "'host' is a required property")
            hosts, metadata = await self._new_hosts(row, action, host), row["metadata"]
        await self._push(row["uuid"], row["name"], metadata, hosts)
        row = self.rows.update(row["id"], hosts=hosts, metadata=metadata)
        resp.media = {"aggregate": aggregate_view(row, mv_of(req))}

    def _new_metadata(self, row: dict[str, Any], body: dict[str, Any]) -> dict[str, str]:
        changes = body.get("metadata")
        if set(body) != {"metadata"} or not isinstance(changes, dict) or not all(
                isinstance(k, str) and 1 <= len(k) <= 255 and (
                    v is None or (isinstance(v, str) and len(v) <= 255))
                for k, v in changes.items()):
            raise BadRequestError("Invalid input for field/attribute metadata. Keys must be "
                                  "strings of 1-255 characters, values strings or null")
        if "availability_zone" in changes:
            self._check_az(row, _az(changes["availability_zone"]), "update_meta")
        metadata = dict(row["metadata"])
        for key, value in changes.items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value
        return metadata

    async def _new_hosts(self, row: dict[str, Any], action: str, host: str) -> list[str]:
        try:
            known = await self.svc.scheduler.hosts(max_age=0.0)
        except PeerError as exc:
            raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None
        if host not in known:
            raise NotFoundError(f"Compute host {host} could not be found.")
        hosts = list(row["hosts"])
        if action == "remove_host":
            if host not in hosts:
                raise NotFoundError(f"Cannot remove host {host} in aggregate {row['id']}")
            return [h for h in hosts if h != host]
        if host in hosts:
            raise ConflictError(f"Aggregate {row['id']} already has host {host}.")
        az = row["metadata"].get("availability_zone")
        if az:
            for other in self.rows.list():
                other_az = other["metadata"].get("availability_zone")
                if host in other["hosts"] and other_az and other_az != az:
                    raise ConflictError(
                        f"Cannot add host to aggregate {row['id']}. Reason: One or more "
                        f"hosts already in availability zone(s) ['{other_az}'].")
        return [*hosts, host]

    def _check_az(self, row: dict[str, Any], az: str | None, action: str) -> None:
        """Refuse an AZ that would put a member host in two zones (Nova's 400)."""
        if not az:
            return
        for other in self.rows.list():
            other_az = other["metadata"].get("availability_zone")
            if other["id"] != row["id"] and other_az and other_az != az and (
                    set(other["hosts"]) & set(row["hosts"])):
                raise BadRequestError(
                    f"Cannot perform action '{action}' on aggregate {row['id']}. Reason: "
                    f"One or more hosts already in availability zone(s) ['{other_az}'].")
