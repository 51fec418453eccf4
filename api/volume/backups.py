"""``/v3/backups``: full and incremental backups into the object store, restore, delete.

The volume daemon does the chunking (see ``nubis.daemons.volume.backup``); this
module keeps the records, the quotas and the state machine: the volume is
``backing-up`` (or ``restoring-backup``) while the daemon works and returns to
its previous status; a failure leaves the backup ``error`` with ``fail_reason``.
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError
from nubis.api.shared.rest import read_json
from nubis.api.volume.clients import PeerError
from nubis.api.volume.errors import InvalidStateError
from nubis.api.volume.service import (
    VolumeService,
    auth,
    body_of,
    filter_records,
    iso,
    mv_of,
    project_of,
    text_of,
)
from nubis.api.volume.store import Record


def backup_view(svc: VolumeService, req: falcon.asgi.Request, rec: Record) -> dict[str, Any]:
    """Render a backup as Cinder does at the request's microversion."""
    view = {"id": rec.id, "name": rec.name, "description": rec.get("description"),
            "status": rec.status, "availability_zone": svc.cfg.availability_zone,
            "volume_id": rec.get("volume_id"), "snapshot_id": None, "size": rec.get("size"),
            "object_count": rec.get("object_count", 0), "container": rec.get("container"),
            "created_at": iso(rec.created_at), "updated_at": iso(rec.updated_at),
            "data_timestamp": iso(rec.created_at),
            "is_incremental": bool(rec.get("parent_id")),
            "has_dependent_backups": bool(_children(svc, rec)),
            "fail_reason": rec.get("fail_reason"), "links": svc.link("backups", rec.id)}
    mv = mv_of(req)
    if mv >= (3, 18):
        view["os-backup-project-attr:project_id"] = rec.project_id
    if mv >= (3, 43):
        view["metadata"] = rec.get("metadata") or {}
    if mv >= (3, 56):
        view["user_id"] = rec.get("user_id")
    if mv >= (3, 64):
        view["encryption_key_id"] = None
    return view


def _children(svc: VolumeService, rec: Record) -> list[Record]:
    return [b for b in svc.store.select("backup", rec.project_id) if b.get("parent_id") == rec.id]


class Backups:
    """``/v3/backups[/detail|/{id}[/restore]]``."""

    def __init__(self, svc: VolumeService, storage_url: str) -> None:
        self.svc = svc
        #: ``http://proxy/v1`` (the project's account is appended).
        self.storage_url = storage_url.rstrip("/")

    def _target(self, req: falcon.asgi.Request, project: str, container: str) -> dict[str, str]:
        return {"storage_url": f"{self.storage_url}/AUTH_{project}",
                "token": req.get_header("X-Auth-Token") or "", "container": container}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Back up a volume (``incremental`` from its newest backup, ``force`` if in use)."""
        body = body_of(await read_json(req), "backup")
        vol = self.svc.find(req, "volume", str(body.get("volume_id")), "Volume")
        force = bool(body.get("force", False))
        incremental = bool(body.get("incremental", False))
        container = text_of(body, "container") or self.svc.cfg.backup_container
        if vol.status not in (("available", "in-use") if force else ("available",)):
            raise InvalidStateError(f"Invalid volume: Volume to be backed up must be "
                                    f"available or in-use, but the current status is "
                                    f"\"{vol.status}\".")
        parent = None
        if incremental:
            done = [b for b in self.svc.store.select("backup", vol.project_id)
                    if b.get("volume_id") == vol.id and b.status == "available"]
            if not done:
                raise InvalidStateError("Invalid backup: No backups available to do an "
                                        "incremental backup.")
            parent = max(done, key=lambda b: (b.created_at, b.id))
        size = int(vol.get("size"))
        self.svc.check_quota(vol.project_id, backups=1, backup_gigabytes=size)
        previous = vol.status
        cur_vol = self.svc.store.update(vol, status="backing-up", expected=(previous,))
        if cur_vol is None:
            raise InvalidStateError("Invalid volume: the volume changed state.")
        rec = self.svc.store.insert("backup", str(uuid.uuid4()), vol.project_id,
                                    text_of(body, "name"), "creating", {
                                        "volume_id": vol.id, "size": size,
                                        "description": text_of(body, "description"),
                                        "container": container,
                                        "parent_id": parent.id if parent else None,
                                        "user_id": auth(req).user_id, "metadata": {}})
        call = {"backup_id": rec.id, "force": force,
                "parent_metadata": parent.get("metadata_object") if parent else "",
                **self._target(req, vol.project_id, container)}
        self.svc.spawn(self._backup(rec, cur_vol, previous, call), f"backup {rec.id}")
        resp.status = 202
        resp.media = {"backup": {"id": rec.id, "name": rec.name,
                                 "links": self.svc.link("backups", rec.id)}}

    async def _backup(self, rec: Record, vol: Record, previous: str,
                      call: dict[str, Any]) -> None:
        try:
            done = await self.svc.daemon.action(vol.id, "backup", call)
        except PeerError as exc:
            self.svc.store.update(rec, status="error", fail_reason=str(exc))
        else:
            self.svc.store.update(rec, status="available", object_count=done["object_count"],
                                  metadata_object=done["metadata"])
        self.svc.store.update(vol, status=previous, expected=("backing-up",))

    def _list(self, req: falcon.asgi.Request) -> list[Record]:
        all_tenants = req.get_param_as_bool("all_tenants") and auth(req).is_admin
        recs = self.svc.store.select("backup", None if all_tenants else project_of(req))
        return self.svc.page(req, filter_records(req, recs, ("name", "status", "volume_id")))

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List backups (id, name, links)."""
        resp.media = {"backups": [{"id": r.id, "name": r.name,
                                   "links": self.svc.link("backups", r.id)}
                                  for r in self._list(req)]}

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List backups in full."""
        resp.media = {"backups": [backup_view(self.svc, req, r) for r in self._list(req)]}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         backup_id: str) -> None:
        """Show one backup."""
        rec = self.svc.find(req, "backup", backup_id, "Backup")
        resp.media = {"backup": backup_view(self.svc, req, rec)}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         backup_id: str) -> None:
        """Change name or description (3.9)."""
        rec = self.svc.find(req, "backup", backup_id, "Backup")
        body = body_of(await read_json(req), "backup")
        name: Any = text_of(body, "name") if "name" in body else ...
        changes = {"description": text_of(body, "description")} if "description" in body else {}
        new = self.svc.store.update(rec, name=name, **changes)
        resp.media = {"backup": backup_view(self.svc, req, new or rec)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            backup_id: str) -> None:
        """Delete a backup without dependent incrementals; 202."""
        rec = self.svc.find(req, "backup", backup_id, "Backup")
        if _children(self.svc, rec):
            raise InvalidStateError("Invalid backup: Incremental backups exist for this "
                                    "backup.")
        cur = self.svc.store.update(rec, status="deleting", expected=("available", "error"))
        if cur is None:
            raise InvalidStateError(f"Invalid backup: Backup status must be available or "
                                    f"error, currently {rec.status}.")
        call = {"metadata": rec.get("metadata_object") or "", "volume_id": rec.get("volume_id"),
                "backup_id": rec.id,
                **self._target(req, rec.project_id, rec.get("container"))}

        async def work() -> None:
            try:
                if call["metadata"]:
                    await self.svc.daemon.delete_backup(call)
            except PeerError as exc:
                self.svc.store.update(cur, status="error_deleting", fail_reason=str(exc))
                return
            self.svc.store.delete(rec.id)
        self.svc.spawn(work(), f"delete backup {rec.id}")
        resp.status = 202

    async def on_post_restore(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                              backup_id: str) -> None:
        """Restore into a given available volume, or a new one; 202."""
        rec = self.svc.find(req, "backup", backup_id, "Backup")
        doc = await read_json(req)
        body = doc.get("restore") if isinstance(doc, dict) else None
        if not isinstance(body, dict):
            raise BadRequestError("Missing required element 'restore' in request body.")
        if rec.status != "available":
            raise InvalidStateError(f"Invalid backup: Backup status must be available, "
                                    f"currently {rec.status}.")
        size = int(rec.get("size"))
        if body.get("volume_id"):
            vol = self.svc.find(req, "volume", str(body["volume_id"]), "Volume")
            if int(vol.get("size")) < size:
                raise BadRequestError(f"Invalid volume: volume size {vol.get('size')}GB is "
                                      f"smaller than the backup's {size}GB.")
            cur = self.svc.store.update(vol, status="restoring-backup", expected=("available",))
            if cur is None:
                raise InvalidStateError(f"Invalid volume: Volume to be restored to must be "
                                        f"available, currently {vol.status}.")
            self.svc.spawn(self._restore(req, rec, cur), f"restore {rec.id}")
        else:
            cur = await self._new_volume(req, rec, text_of(body, "name"))
        self.svc.store.update(rec, status="restoring")
        resp.status = 202
        resp.media = {"restore": {"backup_id": rec.id, "volume_id": cur.id,
                                  "volume_name": cur.name}}

    async def _new_volume(self, req: falcon.asgi.Request, rec: Record,
                          name: str | None) -> Record:
        size = int(rec.get("size"))
        project = project_of(req)
        self.svc.check_quota(project, volumes=1, gigabytes=size)
        vtype = self.svc.volume_type(req, None)
        vol = self.svc.store.insert("volume", str(uuid.uuid4()), project,
                                    name or f"restore_backup_{rec.id}", "creating", {
                                        "size": size, "description": None, "metadata": {},
                                        "availability_zone": self.svc.cfg.availability_zone,
                                        "volume_type": vtype.name, "volume_type_id": vtype.id,
                                        "user_id": auth(req).user_id, "bootable": False,
                                        "attachments": []})

        async def work() -> None:
            try:
                await self.svc.daemon.create({"id": vol.id, "size": size})
            except PeerError as exc:
                self.svc.store.update(vol, status="error", error_message=str(exc))
                self.svc.store.update(rec, status="available")
                return
            cur = self.svc.store.update(vol, status="restoring-backup")
            await self._restore(req, rec, cur or vol)
        self.svc.spawn(work(), f"restore {rec.id}")
        return vol

    async def _restore(self, req: falcon.asgi.Request, rec: Record, vol: Record) -> None:
        call = {"metadata": rec.get("metadata_object"), "size": int(vol.get("size")),
                **self._target(req, rec.project_id, rec.get("container"))}
        try:
            await self.svc.daemon.action(vol.id, "restore", call)
        except PeerError as exc:
            self.svc.store.update(vol, status="error_restoring", error_message=str(exc))
        else:
            self.svc.store.update(vol, status="available")
        self.svc.store.update(rec, status="available")
