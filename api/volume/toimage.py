"""Cinder's ``os-volume_upload_image``: a new image made of a volume's bytes.

The action creates a queued image in the image service with the caller's token
(``disk_format`` raw or qcow2, ``container_format`` bare, ``min_disk`` the
volume's size, the volume's image metadata such as ``hw_*`` and kernel ids
carried over, and from 3.1 ``visibility``/``protected``), answers 202 with the
image's id while the volume is ``uploading``, and has the volume daemon convert
and upload the bytes (:mod:`nubis.daemons.volume.toimage`). The volume is then
``available`` again; when the upload fails the image is deleted and the volume
records a user message saying why. Only a detached volume is uploaded (Cinder's
``enable_force_upload`` is off by default, so ``force`` changes nothing).
"""

from __future__ import annotations

import contextlib
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError
from nubis.api.volume.clients import PeerError
from nubis.api.volume.errors import InvalidStateError
from nubis.api.volume.service import VolumeService, iso, mv_of
from nubis.api.volume.store import Record
from nubis.api.volume.volumes import fail

DISK_FORMATS = ("raw", "qcow2")
CONTAINER_FORMATS = ("bare",)
VISIBILITIES = ("public", "private", "shared", "community")
#: Image metadata of the volume that describes its source image, not the new one.
_NOT_CARRIED = frozenset({"image_id", "image_name", "checksum", "size", "disk_format",
                          "container_format", "min_disk", "min_ram", "os_hash_algo",
                          "os_hash_value", "status", "owner", "visibility", "protected"})


def image_record(req: falcon.asgi.Request, rec: Record,
                 arg: dict[str, Any]) -> dict[str, Any]:
    """Check the action's arguments; return the image record to create."""
    name = arg.get("image_name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequestError("Invalid input received: image_name is required.")
    disk = arg.get("disk_format", "raw")
    if disk not in DISK_FORMATS:
        raise BadRequestError(f"Invalid disk-format '{disk}' is specified. Allowed disk-"
                              f"formats are {', '.join(DISK_FORMATS)}.")
    container = arg.get("container_format", "bare")
    if container not in CONTAINER_FORMATS:
        raise BadRequestError(f"Invalid container-format '{container}' is specified. "
                              "Allowed container-formats are bare.")
    record: dict[str, Any] = {
        "name": name, "disk_format": disk, "container_format": container,
        "min_disk": int(rec.get("size"))}
    for key, value in (rec.get("volume_image_metadata") or {}).items():
        if key not in _NOT_CARRIED:
            record[key] = value
    if mv_of(req) >= (3, 1):
        visibility = arg.get("visibility", "private")
        if visibility not in VISIBILITIES:
            raise BadRequestError(f"Invalid input received: visibility '{visibility}' "
                                  "is not valid.")
        protected = arg.get("protected", False)
        if not isinstance(protected, bool):
            raise BadRequestError("Invalid input received: protected must be a boolean.")
        record.update(visibility=visibility, protected=protected)
    return record


async def upload(svc: VolumeService, req: falcon.asgi.Request, rec: Record,
                 arg: dict[str, Any]) -> dict[str, Any]:
    """Start the upload; return the action's answer (the volume is ``uploading``)."""
    record = image_record(req, rec, arg)
    if rec.status != "available":
        raise InvalidStateError(f"Invalid volume: Volume {rec.id} status must be available "
                                f"to upload to an image, currently {rec.status}.")
    token = req.get_header("X-Auth-Token") or ""
    try:
        image = await svc.images.create(record, token)
    except PeerError as exc:
        if 400 <= exc.status < 500:
            raise BadRequestError(f"Invalid image: the image service refused it: "
                                  f"{exc}") from None
        raise BadRequestError(f"Invalid image: the image service failed: {exc}") from None
    cur = svc.store.update(rec, status="uploading", expected=("available",))
    if cur is None:
        await svc.images.delete(str(image["id"]), token)
        raise InvalidStateError(f"Invalid volume: Volume {rec.id} status must be available "
                                "to upload to an image.")
    url = f"{svc.images.url}/v2/images/{image['id']}/file"

    async def work() -> None:
        try:
            await svc.daemon.action(rec.id, "upload", {
                "url": url, "token": token, "disk_format": record["disk_format"]})
        except PeerError as exc:
            await fail(svc, cur, "upload volume to image", str(exc), "available")
            with contextlib.suppress(PeerError):  # else it stays queued; its owner may delete it
                await svc.images.delete(str(image["id"]), token)
            return
        svc.store.update(cur, status="available", expected=("uploading",))
    svc.spawn(work(), f"upload volume {rec.id} to image {image['id']}")
    return {"os-volume_upload_image": {
        "id": rec.id, "updated_at": iso(cur.updated_at), "status": "uploading",
        "display_description": rec.get("description"), "size": rec.get("size"),
        "volume_type": {"id": rec.get("volume_type_id"), "name": rec.get("volume_type")},
        "image_id": image["id"], "image_name": record["name"],
        "container_format": record["container_format"],
        "disk_format": record["disk_format"],
        "visibility": record.get("visibility", "private"),
        "protected": record.get("protected", False)}}
