"""``/v3/volumes``: create, list, show, update, delete (``cascade``) and metadata.

A volume is created empty, from an image, a snapshot or another volume.

Work on files happens in the volume daemon: a create answers 202 with the volume
``creating`` and a background task moves it to ``available`` (or ``error``, with a
user message saying why, listed under ``/v3/messages``).
"""

from __future__ import annotations

import uuid
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError, NotFoundError
from nubis.api.shared.rest import read_json
from nubis.api.volume.clients import PeerError
from nubis.api.volume.errors import InvalidStateError
from nubis.api.volume.service import (
    VolumeService,
    auth,
    body_of,
    filter_records,
    iso,
    metadata_of,
    mv_of,
    project_of,
    size_of,
    text_of,
)
from nubis.api.volume.store import Record

DELETABLE = ("available", "error", "error_restoring", "error_extending", "error_managing")
#: Filters ``GET /volumes`` accepts (Cinder's resource_filters for volumes).
FILTERS = ("name", "status", "metadata", "bootable", "availability_zone", "volume_type",
           "name~", "size")


def volume_view(svc: VolumeService, req: falcon.asgi.Request, rec: Record,
                detail: bool = True) -> dict[str, Any]:
    """Render a volume as Cinder does at the request's microversion."""
    if not detail:
        return {"id": rec.id, "name": rec.name, "links": svc.link("volumes", rec.id)}
    mv = mv_of(req)
    attachments = [a for a in rec.get("attachments") or []]
    view: dict[str, Any] = {
        "id": rec.id, "name": rec.name, "description": rec.get("description"),
        "status": rec.status, "size": rec.get("size"),
        "availability_zone": rec.get("availability_zone"),
        "created_at": iso(rec.created_at), "updated_at": iso(rec.updated_at),
        "volume_type": rec.get("volume_type"), "snapshot_id": rec.get("snapshot_id"),
        "source_volid": rec.get("source_volid"), "metadata": rec.get("metadata") or {},
        "bootable": "true" if rec.get("bootable") else "false", "encrypted": False,
        "multiattach": False, "attachments": attachments, "replication_status": None,
        "consistencygroup_id": None, "user_id": rec.get("user_id"),
        "os-vol-tenant-attr:tenant_id": rec.project_id,
        "os-vol-mig-status-attr:migstat": None, "os-vol-mig-status-attr:name_id": None,
        "links": svc.link("volumes", rec.id)}
    if rec.get("volume_image_metadata"):
        view["volume_image_metadata"] = rec.get("volume_image_metadata")
    if auth(req).is_admin:
        view["os-vol-host-attr:host"] = rec.get("host")
    if mv >= (3, 13):
        view["group_id"] = None
    if mv >= (3, 21):
        view["provider_id"] = None
    if mv >= (3, 48):
        view["shared_targets"] = False
        view["service_uuid"] = rec.get("service_uuid")
    if mv >= (3, 61):
        view["cluster_name"] = None
    if mv >= (3, 63):
        view["volume_type_id"] = rec.get("volume_type_id")
    if mv >= (3, 65):
        view["consumes_quota"] = True
    return view


class Volumes:
    """``/v3/volumes[/detail|/{id}]``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    # --- create ---------------------------------------------------------------------------

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a volume (202, ``creating``)."""
        body = body_of(await read_json(req), "volume")
        project = project_of(req)
        name = text_of(body, "name") or text_of(body, "display_name")
        description = text_of(body, "description") or text_of(body, "display_description")
        metadata = metadata_of(body.get("metadata"))
        vtype = self.svc.volume_type(req, body.get("volume_type"))
        zone = body.get("availability_zone") or self.svc.cfg.availability_zone
        if zone != self.svc.cfg.availability_zone:
            raise BadRequestError(f"Invalid input received: Availability zone '{zone}' "
                                  f"is invalid.")
        source, size, extra = await self._source(req, body)
        self.svc.check_quota(project, volumes=1, gigabytes=size)
        vid = str(uuid.uuid4())
        doc = {"size": size, "description": description, "metadata": metadata,
               "availability_zone": zone, "volume_type": vtype.name,
               "volume_type_id": vtype.id, "user_id": auth(req).user_id, "bootable": False,
               "attachments": [], **extra}
        rec = self.svc.store.insert("volume", vid, project, name, "creating", doc)
        self.svc.spawn(self._create(rec, source), f"create volume {vid}")
        resp.status = 202
        resp.media = {"volume": volume_view(self.svc, req, rec)}

    async def _source(self, req: falcon.asgi.Request,
                      body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, Any]]:
        """Return the daemon's ``source``, the size, and fields the volume inherits."""
        snap_id, src_id = body.get("snapshot_id"), body.get("source_volid")
        image_id = body.get("imageRef") or body.get("image_id")
        if sum(x is not None for x in (snap_id, src_id, image_id)) > 1:
            raise BadRequestError("Invalid input received: only one of snapshot_id, "
                                  "source_volid and imageRef may be given.")
        if snap_id is not None:
            snap = self.svc.find(req, "snapshot", str(snap_id), "Snapshot")
            if snap.status != "available":
                raise InvalidStateError("Invalid snapshot: Originating snapshot status "
                                        "must be one of 'available' values")
            size = self._size(body, int(snap.get("size")))
            return ({"volume": snap.get("volume_id"), "snapshot": snap.id}, size,
                    {"snapshot_id": snap.id, **self._inherit(snap.get("volume_id"))})
        if src_id is not None:
            src = self.svc.find(req, "volume", str(src_id), "Volume")
            if src.status not in ("available", "in-use"):
                raise InvalidStateError(f"Invalid volume: Source volume status must be "
                                        f"available or in-use, got {src.status}.")
            size = self._size(body, int(src.get("size")))
            return {"volume": src.id}, size, {"source_volid": src.id,
                                              **self._inherit(src.id)}
        if image_id is not None:
            return await self._image_source(req, body, str(image_id))
        if "size" not in body:
            raise BadRequestError("Invalid input received: size is required for an "
                                  "empty volume.")
        return {}, size_of(body["size"]), {}

    def _inherit(self, volume_id: str | None) -> dict[str, Any]:
        src = None if volume_id is None else self.svc.store.get("volume", volume_id)
        if src is None:
            return {}
        return {"bootable": bool(src.get("bootable")),
                "volume_image_metadata": src.get("volume_image_metadata")}

    @staticmethod
    def _size(body: dict[str, Any], minimum: int) -> int:
        if body.get("size") is None:
            return minimum
        size = size_of(body["size"])
        if size < minimum:
            raise BadRequestError(f"Invalid input received: Volume size '{size}'GB cannot "
                                  f"be smaller than the source size {minimum}GB.")
        return size

    async def _image_source(self, req: falcon.asgi.Request, body: dict[str, Any],
                            image_id: str) -> tuple[dict[str, Any], int, dict[str, Any]]:
        token = req.get_header("X-Auth-Token") or ""
        try:
            image = await self.svc.images.get(image_id, token)
        except PeerError as exc:
            raise BadRequestError(f"Invalid image: the image service failed: {exc}") from None
        if image is None:
            raise NotFoundError(f"Image {image_id} could not be found.")
        if image.get("status") != "active":
            raise BadRequestError(f"Invalid image identifier or unable to access requested "
                                  f"image. Image {image_id} is not active.")
        image_gb = -(-int(image.get("size") or 0) // 1024 ** 3)
        min_gb = max(int(image.get("min_disk") or 0), image_gb, 1)
        if "size" not in body:
            raise BadRequestError("Invalid input received: size is required.")
        size = size_of(body["size"])
        if size < min_gb:
            raise BadRequestError(f"Invalid input received: Image minDisk size {min_gb} "
                                  f"is larger than the volume size {size}.")
        meta = {k: str(v) for k, v in image.items()
                if k in ("container_format", "disk_format", "min_disk", "min_ram", "size",
                         "checksum", "kernel_id", "ramdisk_id", "os_command_line")
                and v is not None}
        meta.update({"image_id": image_id, "image_name": str(image.get("name") or "")})
        meta.update({k: str(v) for k, v in image.items() if k.startswith("hw_")})
        source = {"image": {"url": f"{self.svc.images.url}/v2/images/{image_id}/file",
                            "token": token, "disk_format": image.get("disk_format") or "raw",
                            "sha512": str(image.get("os_hash_value") or "")}}
        return source, size, {"image_id": image_id, "bootable": True,
                              "volume_image_metadata": meta}

    async def _create(self, rec: Record, source: dict[str, Any]) -> None:
        body: dict[str, Any] = {"id": rec.id, "size": rec.get("size")}
        if source:
            body["source"] = source
        try:
            done = await self.svc.daemon.create(body)
        except PeerError as exc:
            await fail(self.svc, rec, "create volume", str(exc))
            return
        self.svc.store.update(rec, status="available", expected=("creating",),
                              host=done.get("host"))

    # --- read -----------------------------------------------------------------------------

    def _visible(self, req: falcon.asgi.Request) -> list[Record]:
        ctx = auth(req)
        all_tenants = req.get_param_as_bool("all_tenants") and ctx.is_admin
        project = req.get_param("project_id") if all_tenants else None
        recs = self.svc.store.select("volume", None if all_tenants else project_of(req))
        if project:
            recs = [r for r in recs if r.project_id == project]
        return recs

    def _listing(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                 detail: bool) -> None:
        recs = filter_records(req, self._visible(req), FILTERS)
        page = self.svc.page(req, recs)
        views = [volume_view(self.svc, req, r, detail) for r in page]
        doc: dict[str, Any] = {"volumes": views}
        links = self.svc.links(req, "volumes/detail" if detail else "volumes", views)
        if links:
            doc["volumes_links"] = links
        if mv_of(req) >= (3, 45) and req.get_param_as_bool("with_count"):
            doc["count"] = len(recs)
        resp.media = doc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List volumes (id, name, links)."""
        self._listing(req, resp, detail=False)

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List volumes in full."""
        self._listing(req, resp, detail=True)

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         volume_id: str) -> None:
        """Show one volume."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        resp.media = {"volume": volume_view(self.svc, req, rec)}

    async def on_get_summary(self, req: falcon.asgi.Request,
                             resp: falcon.asgi.Response) -> None:
        """Return the count and total size of the caller's volumes (3.12)."""
        recs = self._visible(req)
        resp.media = {"volume-summary": {"total_count": len(recs), "total_size": sum(
            int(r.get("size") or 0) for r in recs), "metadata": {}}}

    # --- update and delete ------------------------------------------------------------------

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         volume_id: str) -> None:
        """Change name, description or metadata."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        body = body_of(await read_json(req), "volume")
        changes: dict[str, Any] = {}
        name: Any = ...
        if "name" in body or "display_name" in body:
            name = text_of(body, "name") if "name" in body else text_of(body, "display_name")
        if "description" in body or "display_description" in body:
            changes["description"] = text_of(body, "description") or text_of(
                body, "display_description")
        if "metadata" in body:
            changes["metadata"] = metadata_of(body["metadata"])
        if name is ... and not changes:
            raise BadRequestError("Invalid input received: nothing to update.")
        new = self.svc.store.update(rec, name=name, **changes)
        resp.media = {"volume": volume_view(self.svc, req, new or rec)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            volume_id: str) -> None:
        """Delete a volume (``cascade`` deletes its snapshots too); 202."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        cascade = req.get_param_as_bool("cascade") or False
        await delete_volume(self.svc, rec, cascade, force=False)
        resp.status = 202


async def delete_volume(svc: VolumeService, rec: Record, cascade: bool, force: bool) -> None:
    """Check a delete is allowed, mark the volume ``deleting`` and remove it in the background."""
    snaps = [s for s in svc.store.select("snapshot", rec.project_id)
             if s.get("volume_id") == rec.id]
    if rec.get("attachments") and not force:
        raise InvalidStateError("Invalid volume: Volume status must be available or error "
                                "or error_restoring or error_extending or error_managing and "
                                "must not be migrating, attached, belong to a group, have "
                                "snapshots, awaiting a transfer, or be disassociated from "
                                "snapshots after volume transfer.")
    if snaps and not cascade:
        raise InvalidStateError(f"Invalid volume: Volume {rec.id} still has "
                                f"{len(snaps)} dependent snapshots.")
    if cascade and any(s.status not in ("available", "error") for s in snaps):
        raise InvalidStateError("Invalid volume: Snapshot of the volume is not in a "
                                "deletable state.")
    expected = None if force else DELETABLE
    new = svc.store.update(rec, status="deleting", expected=expected)
    if new is None:
        raise InvalidStateError(f"Invalid volume: Volume status must be available or error "
                                f"or error_restoring or error_extending or error_managing "
                                f"and must not be migrating, attached, belong to a group, "
                                f"have snapshots or be disassociated from snapshots after "
                                f"volume transfer. (status: {rec.status})")
    for snap in snaps:
        svc.store.update(snap, status="deleting")

    async def work() -> None:
        try:
            await svc.daemon.delete(rec.id)
        except PeerError as exc:
            await fail(svc, new, "delete volume", str(exc), status="error_deleting")
            return
        for snap in snaps:
            svc.store.delete(snap.id)
        svc.store.delete(rec.id)
    svc.spawn(work(), f"delete volume {rec.id}")


async def fail(svc: VolumeService, rec: Record, action: str, reason: str,
               status: str = "error") -> None:
    """Put a resource into an error state and record Cinder's user message saying why."""
    svc.store.update(rec, status=status, error_message=reason)
    svc.store.insert("message", str(uuid.uuid4()), rec.project_id, None, "ERROR", {
        "event_id": "VOLUME_VOLUME_001_003", "message_level": "ERROR",
        "resource_type": rec.kind.upper(), "resource_uuid": rec.id,
        "user_message": f"{action}: {reason}", "request_id": None})


class VolumeMetadata:
    """``/v3/volumes/{id}/metadata[/{key}]``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     volume_id: str) -> None:
        """Return all metadata."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        resp.media = {"metadata": rec.get("metadata") or {}}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      volume_id: str) -> None:
        """Merge metadata."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        meta = metadata_of(body_of_meta(await read_json(req)))
        merged = metadata_of({**(rec.get("metadata") or {}), **meta})
        self.svc.store.update(rec, metadata=merged)
        resp.media = {"metadata": merged}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     volume_id: str) -> None:
        """Replace metadata."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        meta = metadata_of(body_of_meta(await read_json(req)))
        self.svc.store.update(rec, metadata=meta)
        resp.media = {"metadata": meta}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         volume_id: str, key: str) -> None:
        """Return one item."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        meta = rec.get("metadata") or {}
        if key not in meta:
            raise NotFoundError(f"Volume {volume_id} has no metadata with key {key}.")
        resp.media = {"meta": {key: meta[key]}}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         volume_id: str, key: str) -> None:
        """Set one item."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        doc = await read_json(req)
        item = metadata_of(doc.get("meta") if isinstance(doc, dict) else None)
        if list(item) != [key]:
            raise BadRequestError("Request body and URI mismatch")
        merged = metadata_of({**(rec.get("metadata") or {}), **item})
        self.svc.store.update(rec, metadata=merged)
        resp.media = {"meta": item}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            volume_id: str, key: str) -> None:
        """Delete one item."""
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        meta = dict(rec.get("metadata") or {})
        if meta.pop(key, None) is None:
            raise NotFoundError(f"Volume {volume_id} has no metadata with key {key}.")
        self.svc.store.update(rec, metadata=meta)


def body_of_meta(doc: Any) -> Any:
    """Return the ``metadata`` object of a body (400 without it)."""
    if not isinstance(doc, dict) or "metadata" not in doc:
        raise BadRequestError("Malformed request body: 'metadata' is required.")
    return doc["metadata"]
