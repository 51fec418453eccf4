"""The volume API's smaller resources: versions, types, snapshots, quotas, zones, messages.

Volume types carry extra specs and access lists; snapshots are taken by the
volume daemon; limits and quota sets report usage as Cinder does.
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError, ConflictError, NotFoundError
from nubis.api.shared.rest import read_json
from nubis.api.volume.clients import PeerError
from nubis.api.volume.errors import InvalidStateError
from nubis.api.volume.service import (
    MAX_VERSION,
    MIN_VERSION,
    QUOTA_RESOURCES,
    VolumeService,
    auth,
    body_of,
    filter_records,
    iso,
    metadata_of,
    mv_of,
    project_of,
    text_of,
)
from nubis.api.volume.store import Record
from nubis.api.volume.volumes import fail

UPDATED = "2023-08-31T00:00:00Z"


class Versions:
    """``/volume`` (300, every version) and ``/volume/v3`` (the v3 document); public."""

    auth_required = False

    def __init__(self, svc: VolumeService, single: bool) -> None:
        self.svc = svc
        self.single = single

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return Cinder's version document(s)."""
        doc = {"id": "v3.0", "status": "CURRENT",
               "version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
               "min_version": f"{MIN_VERSION[0]}.{MIN_VERSION[1]}", "updated": UPDATED,
               "links": [{"rel": "describedby", "type": "text/html",
                          "href": "https://docs.openstack.org/"},
                         {"rel": "self", "href": f"{self.svc.base_url}/"}],
               "media-types": [{"base": "application/json",
                                "type": "application/vnd.openstack.volume+json;version=3"}]}
        resp.media = {"versions": [doc]}
        if not self.single:
            resp.status = 300


def type_view(svc: VolumeService, req: falcon.asgi.Request, rec: Record) -> dict[str, Any]:
    """Render a volume type (extra specs for admins and at 3.x for everyone)."""
    view = {"id": rec.id, "name": rec.name, "description": rec.get("description"),
            "is_public": bool(rec.get("is_public", True)),
            "os-volume-type-access:is_public": bool(rec.get("is_public", True)),
            "qos_specs_id": rec.get("qos_specs_id"),
            "extra_specs": rec.get("extra_specs") or {}}
    del svc, req
    return view


def _specs(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float, bool)) and 0 < len(k) <= 255
            for k, v in value.items()):
        raise BadRequestError("Invalid input received: extra_specs must be an object of "
                              "strings.")
    return {k: str(v) for k, v in value.items()}


class Types:
    """``/v3/types[/{id}[/extra_specs[/{key}]|/action]]`` and ``os-volume-type-access``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    def _visible(self, req: falcon.asgi.Request) -> list[Record]:
        recs = self.svc.store.select("type")
        if auth(req).is_admin:
            flag = req.get_param("is_public")
            if flag is None or flag.lower() == "none":
                return recs if flag else [r for r in recs if r.get("is_public", True)] + [
                    r for r in recs if not r.get("is_public", True)]
            want = flag.lower() in ("true", "1", "yes")
            return [r for r in recs if bool(r.get("is_public", True)) == want]
        project = project_of(req)
        return [r for r in recs if r.get("is_public", True)
                or project in self.svc.store.type_access(r.id)]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List volume types."""
        resp.media = {"volume_types": [type_view(self.svc, req, r)
                                       for r in self._visible(req)]}

    async def on_get_default(self, req: falcon.asgi.Request,
                             resp: falcon.asgi.Response) -> None:
        """Return the default type."""
        resp.media = {"volume_type": type_view(self.svc, req,
                                               self.svc.volume_type(req, None))}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a type (admins)."""
        self.svc.require_admin(req, "volume_extension:types_manage")
        body = body_of(await read_json(req), "volume_type")
        name = text_of(body, "name")
        if not name or not name.strip():
            raise BadRequestError("Invalid input received: volume type name is required.")
        if any(t.name == name for t in self.svc.store.select("type")):
            raise ConflictError(f"Volume Type {name} already exists.")
        is_public = body.get("os-volume-type-access:is_public", body.get("is_public", True))
        if not isinstance(is_public, bool):
            raise BadRequestError("Invalid input received: is_public must be a boolean.")
        rec = self.svc.store.insert("type", str(uuid.uuid4()), "", name, "active", {
            "description": text_of(body, "description"), "is_public": is_public,
            "extra_specs": _specs(body.get("extra_specs") or {})})
        resp.media = {"volume_type": type_view(self.svc, req, rec)}

    def _one(self, req: falcon.asgi.Request, type_id: str) -> Record:
        rec = self.svc.store.get("type", type_id)
        if rec is None or rec not in self._visible(req):
            raise NotFoundError(f"Volume type {type_id} could not be found.")
        return rec

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         type_id: str) -> None:
        """Show a type (``default`` is the default type)."""
        if type_id == "default":
            await self.on_get_default(req, resp)
            return
        resp.media = {"volume_type": type_view(self.svc, req, self._one(req, type_id))}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         type_id: str) -> None:
        """Change name, description or visibility (admins)."""
        self.svc.require_admin(req, "volume_extension:types_manage")
        rec = self._one(req, type_id)
        body = body_of(await read_json(req), "volume_type")
        changes: dict[str, Any] = {}
        if "description" in body:
            changes["description"] = text_of(body, "description")
        if "is_public" in body:
            if not isinstance(body["is_public"], bool):
                raise BadRequestError("Invalid input received: is_public must be a boolean.")
            changes["is_public"] = body["is_public"]
        name: Any = text_of(body, "name") if body.get("name") else ...
        new = self.svc.store.update(rec, name=name, **changes)
        resp.media = {"volume_type": type_view(self.svc, req, new or rec)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            type_id: str) -> None:
        """Delete a type unused by any volume (admins)."""
        self.svc.require_admin(req, "volume_extension:types_manage")
        rec = self._one(req, type_id)
        if rec.name == "__DEFAULT__":
            raise BadRequestError("Invalid volume type: the default volume type cannot "
                                  "be deleted.")
        if any(v.get("volume_type_id") == rec.id for v in self.svc.store.select("volume")):
            raise BadRequestError(f"Target volume type is still in use. Volume Type "
                                  f"{rec.id} deletion is not allowed with volumes present "
                                  f"with the type.")
        self.svc.store.delete(rec.id)
        resp.status = 202

    async def on_get_specs(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                           type_id: str) -> None:
        """Return a type's extra specs."""
        resp.media = {"extra_specs": self._one(req, type_id).get("extra_specs") or {}}

    async def on_post_specs(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            type_id: str) -> None:
        """Merge extra specs (admins)."""
        self.svc.require_admin(req, "volume_extension:types_extra_specs:create")
        rec = self._one(req, type_id)
        doc = await read_json(req)
        specs = _specs(doc.get("extra_specs") if isinstance(doc, dict) else None)
        merged = {**(rec.get("extra_specs") or {}), **specs}
        self.svc.store.update(rec, extra_specs=merged)
        resp.media = {"extra_specs": specs}

    async def on_get_spec(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                          type_id: str, key: str) -> None:
        """Return one extra spec."""
        specs = self._one(req, type_id).get("extra_specs") or {}
        if key not in specs:
            raise NotFoundError(f"Volume Type {type_id} has no extra specs with key {key}.")
        resp.media = {key: specs[key]}

    async def on_delete_spec(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             type_id: str, key: str) -> None:
        """Delete one extra spec (admins)."""
        self.svc.require_admin(req, "volume_extension:types_extra_specs:delete")
        rec = self._one(req, type_id)
        specs = dict(rec.get("extra_specs") or {})
        if specs.pop(key, None) is None:
            raise NotFoundError(f"Volume Type {type_id} has no extra specs with key {key}.")
        self.svc.store.update(rec, extra_specs=specs)
        resp.status = 202

    async def on_get_access(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            type_id: str) -> None:
        """List the projects a private type is shared with (admins)."""
        self.svc.require_admin(req, "volume_extension:volume_type_access")
        rec = self._one(req, type_id)
        if rec.get("is_public", True):
            raise NotFoundError(f"Access list not available for public volume type "
                                f"{type_id}.")
        resp.media = {"volume_type_access": [
            {"volume_type_id": rec.id, "project_id": p}
            for p in self.svc.store.type_access(rec.id)]}

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             type_id: str) -> None:
        """``addProjectAccess`` / ``removeProjectAccess`` (admins)."""
        self.svc.require_admin(req, "volume_extension:volume_type_access:addProjectAccess")
        rec = self._one(req, type_id)
        doc = await read_json(req)
        if not isinstance(doc, dict) or len(doc) != 1:
            raise BadRequestError("Invalid request body.")
        action, arg = next(iter(doc.items()))
        project = arg.get("project") if isinstance(arg, dict) else None
        if action not in ("addProjectAccess", "removeProjectAccess") or not isinstance(
                project, str):
            raise BadRequestError(f"Invalid request body for {action}.")
        if rec.get("is_public", True):
            raise BadRequestError("Invalid volume type: Type access modification is not "
                                  "applicable to public volume type.")
        if not self.svc.store.set_type_access(rec.id, project, action == "addProjectAccess"):
            if action == "addProjectAccess":
                raise ConflictError(f"Volume type access for {rec.id} / {project} "
                                    f"combination already exists.")
            raise NotFoundError(f"Volume type access not found for {rec.id} / {project} "
                                f"combination.")
        resp.status = 202


def snapshot_view(svc: VolumeService, req: falcon.asgi.Request,
                  rec: Record) -> dict[str, Any]:
    """Render a snapshot as Cinder does at the request's microversion."""
    view = {"id": rec.id, "name": rec.name, "description": rec.get("description"),
            "status": rec.status, "size": rec.get("size"), "volume_id": rec.get("volume_id"),
            "created_at": iso(rec.created_at), "updated_at": iso(rec.updated_at),
            "metadata": rec.get("metadata") or {},
            "os-extended-snapshot-attributes:project_id": rec.project_id,
            "os-extended-snapshot-attributes:progress":
                "100%" if rec.status == "available" else "0%"}
    mv = mv_of(req)
    if mv >= (3, 14):
        view["group_snapshot_id"] = None
    if mv >= (3, 41):
        view["user_id"] = rec.get("user_id")
    if mv >= (3, 65):
        view["consumes_quota"] = True
    del svc
    return view


class Snapshots:
    """``/v3/snapshots[/detail|/{id}]``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Snapshot a volume (``force`` for an in-use one); 202."""
        body = body_of(await read_json(req), "snapshot")
        vol = self.svc.find(req, "volume", str(body.get("volume_id")), "Volume")
        force = body.get("force", False)
        if isinstance(force, str) and force.lower() in ("true", "false"):
            force = force.lower() == "true"
        if not isinstance(force, bool):
            raise BadRequestError("Invalid input received: force must be a boolean.")
        if mv_of(req) >= (3, 66):  # in-use volumes without force; force=false is refused
            if "force" in body and not force:
                raise BadRequestError("Invalid input received: force may only be true "
                                      "from volume API 3.66.")
            force = True
        allowed = ("available", "in-use") if force else ("available",)
        if vol.status not in allowed:
            raise InvalidStateError(f"Invalid volume: Volume {vol.id} status must be "
                                    f"available{' or in-use' if force else ''}, but current "
                                    f"status is: {vol.status}.")
        self.svc.check_quota(vol.project_id, snapshots=1, gigabytes=int(vol.get("size")))
        rec = self.svc.store.insert("snapshot", str(uuid.uuid4()), vol.project_id,
                                    text_of(body, "name") or text_of(body, "display_name"),
                                    "creating", {
                                        "volume_id": vol.id, "size": vol.get("size"),
                                        "description": text_of(body, "description"),
                                        "metadata": metadata_of(body.get("metadata")),
                                        "user_id": auth(req).user_id})

        async def work() -> None:
            try:
                await self.svc.daemon.action(vol.id, "snapshots", {"snapshot_id": rec.id})
            except PeerError as exc:
                await fail(self.svc, rec, "create snapshot", str(exc))
                return
            self.svc.store.update(rec, status="available", expected=("creating",))
        self.svc.spawn(work(), f"snapshot {rec.id}")
        resp.status = 202
        resp.media = {"snapshot": snapshot_view(self.svc, req, rec)}

    def _list(self, req: falcon.asgi.Request) -> list[Record]:
        all_tenants = req.get_param_as_bool("all_tenants") and auth(req).is_admin
        recs = self.svc.store.select("snapshot", None if all_tenants else project_of(req))
        return self.svc.page(req, filter_records(req, recs, ("name", "status", "volume_id",
                                                             "metadata")))

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List snapshots."""
        resp.media = {"snapshots": [snapshot_view(self.svc, req, r) for r in self._list(req)]}

    on_get_detail = on_get

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         snapshot_id: str) -> None:
        """Show a snapshot."""
        rec = self.svc.find(req, "snapshot", snapshot_id, "Snapshot")
        resp.media = {"snapshot": snapshot_view(self.svc, req, rec)}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         snapshot_id: str) -> None:
        """Change name or description."""
        rec = self.svc.find(req, "snapshot", snapshot_id, "Snapshot")
        body = body_of(await read_json(req), "snapshot")
        name: Any = text_of(body, "name") if "name" in body else ...
        changes = {"description": text_of(body, "description")} if "description" in body else {}
        new = self.svc.store.update(rec, name=name, **changes)
        resp.media = {"snapshot": snapshot_view(self.svc, req, new or rec)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            snapshot_id: str) -> None:
        """Delete a snapshot (merged back into its volume); 202."""
        rec = self.svc.find(req, "snapshot", snapshot_id, "Snapshot")
        cur = self.svc.store.update(rec, status="deleting", expected=("available", "error"))
        if cur is None:
            raise InvalidStateError(f"Invalid snapshot: Snapshot status must be available "
                                    f"or error, currently {rec.status}.")

        async def work() -> None:
            try:
                await self.svc.daemon.delete_snapshot(rec.get("volume_id"), rec.id)
            except PeerError as exc:
                await fail(self.svc, cur, "delete snapshot", str(exc), "error_deleting")
                return
            self.svc.store.delete(rec.id)
        self.svc.spawn(work(), f"delete snapshot {rec.id}")
        resp.status = 202

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             snapshot_id: str) -> None:
        """``os-reset_status`` (admins)."""
        self.svc.require_admin(req, "volume_extension:snapshot_admin_actions:reset_status")
        rec = self.svc.find(req, "snapshot", snapshot_id, "Snapshot")
        doc = await read_json(req)
        arg = doc.get("os-reset_status") if isinstance(doc, dict) else None
        status = arg.get("status") if isinstance(arg, dict) else None
        if status not in ("available", "error", "creating", "deleting", "error_deleting"):
            raise BadRequestError("Invalid input received: Must specify a valid status.")
        self.svc.store.update(rec, status=status)
        resp.status = 202


class Quotas:
    """``/v3/os-quota-sets/{project_id}[/defaults]``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    def _check(self, req: falcon.asgi.Request, project_id: str) -> None:
        if project_id != project_of(req):
            self.svc.require_admin(req, "volume_extension:quotas:show")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     project_id: str) -> None:
        """Return a project's quotas (``usage=true``: in_use/limit/reserved)."""
        self._check(req, project_id)
        limits = self.svc.limits(project_id)
        if req.get_param_as_bool("usage"):
            used = self.svc.usage(project_id)
            doc: dict[str, Any] = {r: {"limit": limits[r], "in_use": used[r], "reserved": 0,
                                       "allocated": 0} for r in QUOTA_RESOURCES}
        else:
            doc = dict(limits)
        doc.update({"id": project_id, "per_volume_gigabytes": -1, "groups": 10})
        resp.media = {"quota_set": doc}

    async def on_get_defaults(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                              project_id: str) -> None:
        """Return the defaults."""
        resp.media = {"quota_set": {"id": project_id, **self.svc.defaults(),
                                    "per_volume_gigabytes": -1, "groups": 10}}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     project_id: str) -> None:
        """Override quotas (admins)."""
        self.svc.require_admin(req, "volume_extension:quotas:update")
        body = body_of(await read_json(req), "quota_set")
        limits: dict[str, int] = {}
        for key, value in body.items():
            if key in ("id", "tenant_id"):
                continue
            if key not in QUOTA_RESOURCES:
                raise BadRequestError(f"Invalid input received: Bad key(s) in quota set: "
                                      f"{key}")
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise BadRequestError(f"Invalid input received: Quota limit {value!r} for "
                                      f"{key} must be an integer >= -1.")
            limits[key] = value
        self.svc.store.set_quotas(project_id, limits)
        resp.media = {"quota_set": self.svc.limits(project_id)}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        project_id: str) -> None:
        """Back to the defaults (admins)."""
        self.svc.require_admin(req, "volume_extension:quotas:delete")
        self.svc.store.delete_quotas(project_id)
        resp.status = 200


class Limits:
    """``/v3/limits``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return the caller's absolute limits and usage."""
        project = project_of(req)
        lim, used = self.svc.limits(project), self.svc.usage(project)
        resp.media = {"limits": {"rate": [], "absolute": {
            "maxTotalVolumes": lim["volumes"], "maxTotalSnapshots": lim["snapshots"],
            "maxTotalVolumeGigabytes": lim["gigabytes"], "maxTotalBackups": lim["backups"],
            "maxTotalBackupGigabytes": lim["backup_gigabytes"],
            "totalVolumesUsed": used["volumes"], "totalGigabytesUsed": used["gigabytes"],
            "totalSnapshotsUsed": used["snapshots"], "totalBackupsUsed": used["backups"],
            "totalBackupGigabytesUsed": used["backup_gigabytes"]}}}


class Zones:
    """``/v3/os-availability-zone``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return the one zone and whether its volume daemon answers."""
        try:
            await self.svc.daemon.capacity()
            up = True
        except PeerError:
            up = False
        resp.media = {"availabilityZoneInfo": [{
            "zoneName": self.svc.cfg.availability_zone, "zoneState": {"available": up}}]}


class Services:
    """``/v3/os-services`` (admins): the volume daemon and the backup service."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the services with their state."""
        self.svc.require_admin(req, "volume_extension:services:index")
        try:
            cap = await self.svc.daemon.capacity()
            host, state = str(cap.get("host")), "up"
        except PeerError:
            host, state = "unknown", "down"
        zone = self.svc.cfg.availability_zone
        resp.media = {"services": [
            {"binary": binary, "host": f"{host}@file" if binary == "cinder-volume" else host,
             "zone": zone, "status": "enabled", "state": state, "updated_at": None,
             "disabled_reason": None}
            for binary in ("cinder-volume", "cinder-backup", "cinder-scheduler")]}


class Messages:
    """``/v3/messages[/{id}]`` (3.3): why a volume went to ``error``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    @staticmethod
    def _view(rec: Record) -> dict[str, Any]:
        return {"id": rec.id, "created_at": iso(rec.created_at), "expires_at": None,
                "guaranteed_until": None, **{k: rec.get(k) for k in (
                    "event_id", "message_level", "resource_type", "resource_uuid",
                    "user_message", "request_id")}}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's messages."""
        recs = filter_records(req, self.svc.store.select("message", project_of(req)),
                              ("resource_uuid", "resource_type", "event_id"))
        resp.media = {"messages": [self._view(r) for r in recs]}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         message_id: str) -> None:
        """Show one message."""
        resp.media = {"message": self._view(self.svc.find(req, "message", message_id,
                                                          "Message"))}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            message_id: str) -> None:
        """Delete one message."""
        self.svc.store.delete(self.svc.find(req, "message", message_id, "Message").id)
        resp.status = 204
