"""Cinder's volume transfers: hand an available volume to another project.

``POST /v3/os-volume-transfer`` (``/v3/volume-transfers`` from microversion 3.55)
offers a volume: it becomes ``awaiting-transfer`` and the answer carries a
one-time ``auth_key`` (only its salted SHA-1 is stored, as Cinder does). Any
project's user who knows the transfer's id and key may ``accept`` it: the volume
and its snapshots then belong to that project (quota checked first) and the
volume is ``available`` again. Deleting a transfer gives the volume back.
The bytes never move: a volume's file is named by its id, not its project.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

import falcon
import falcon.asgi
from nubis.api.shared.errors import BadRequestError, NotFoundError
from nubis.api.shared.rest import read_json
from nubis.api.volume.errors import InvalidStateError
from nubis.api.volume.service import (
    VolumeService,
    auth,
    body_of,
    iso,
    mv_of,
    project_of,
    text_of,
)
from nubis.api.volume.store import Record

Req = falcon.asgi.Request
Resp = falcon.asgi.Response

#: Characters of a transfer's auth key (Cinder's default ``volume_transfer_key_length``).
KEY_LENGTH = 16


def _hash(salt: str, key: str) -> str:
    """Return the stored form of an auth key (Cinder: SHA-1 of salt + key)."""
    return hashlib.sha1((salt + key).encode(), usedforsecurity=False).hexdigest()


def transfer_view(svc: VolumeService, req: Req, rec: Record, detail: bool = True,
                  collection: str = "os-volume-transfer") -> dict[str, Any]:
    """Render a transfer as Cinder does (never its key: that is shown once, on create)."""
    view: dict[str, Any] = {"id": rec.id, "name": rec.name, "volume_id": rec.get("volume_id"),
                            "links": svc.link(collection, rec.id)}
    if detail:
        view["created_at"] = iso(rec.created_at)
    if mv_of(req) >= (3, 55):
        view["no_snapshots"] = bool(rec.get("no_snapshots"))
    if mv_of(req) >= (3, 57):
        view.update(source_project_id=rec.project_id, destination_project_id=None,
                    accepted=False)
    return view


class Transfers:
    """``/v3/os-volume-transfer[/detail|/{id}|/{id}/accept]`` (and ``/volume-transfers``)."""

    def __init__(self, svc: VolumeService, collection: str) -> None:
        self.svc = svc
        self.collection = collection

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Offer a volume (202, with the one-time ``auth_key``)."""
        body = body_of(await read_json(req), "transfer")
        if "volume_id" not in body:
            raise BadRequestError("Incorrect request body format: transfer needs a "
                                  "'volume_id'.")
        vol = self.svc.find(req, "volume", str(body["volume_id"]), "Volume")
        no_snapshots = body.get("no_snapshots", False) if mv_of(req) >= (3, 55) else False
        if not isinstance(no_snapshots, bool):
            raise BadRequestError("Invalid input received: no_snapshots must be a boolean.")
        snaps = self._snapshots(vol)
        if not no_snapshots and any(sn.status != "available" for sn in snaps):
            raise InvalidStateError("Invalid snapshot: snapshot status must be available.")
        key = secrets.token_urlsafe(KEY_LENGTH)[:KEY_LENGTH]
        salt = secrets.token_hex(8)
        if self.svc.store.update(vol, status="awaiting-transfer",
                                 expected=("available",)) is None:
            raise InvalidStateError(f"Invalid volume: status must be available, but current "
                                    f"status is: {vol.status}.")
        rec = self.svc.store.insert("transfer", str(uuid.uuid4()), vol.project_id,
                                    text_of(body, "name"), "offered", {
                                        "volume_id": vol.id, "salt": salt,
                                        "crypt_hash": _hash(salt, key),
                                        "no_snapshots": no_snapshots})
        view = transfer_view(self.svc, req, rec, collection=self.collection)
        resp.status = 202
        resp.media = {"transfer": {**view, "auth_key": key}}

    def _snapshots(self, vol: Record) -> list[Record]:
        return [sn for sn in self.svc.store.select("snapshot", vol.project_id)
                if sn.get("volume_id") == vol.id]

    def _listing(self, req: Req, detail: bool) -> dict[str, Any]:
        """The caller's project's transfers (every project's for an admin's ``all_tenants``)."""
        every = req.get_param_as_bool("all_tenants") and auth(req).is_admin
        recs = self.svc.store.select("transfer", None if every else project_of(req))
        return {"transfers": [transfer_view(self.svc, req, r, detail=detail,
                                            collection=self.collection) for r in recs]}

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List transfers."""
        resp.media = self._listing(req, detail=False)

    async def on_get_detail(self, req: Req, resp: Resp) -> None:
        """List transfers with their creation time."""
        resp.media = self._listing(req, detail=True)

    async def on_get_one(self, req: Req, resp: Resp, transfer_id: str) -> None:
        """Show a transfer of the caller's project."""
        rec = self.svc.find(req, "transfer", transfer_id, "Transfer")
        resp.media = {"transfer": transfer_view(self.svc, req, rec,
                                                collection=self.collection)}

    async def on_delete_one(self, req: Req, resp: Resp, transfer_id: str) -> None:
        """Withdraw a transfer: the volume is ``available`` to its owner again (202)."""
        rec = self.svc.find(req, "transfer", transfer_id, "Transfer")
        self.svc.store.delete(rec.id)
        vol = self.svc.store.get("volume", str(rec.get("volume_id")))
        if vol is not None:
            self.svc.store.update(vol, status="available", expected=("awaiting-transfer",))
        resp.status = 202

    async def on_post_accept(self, req: Req, resp: Resp, transfer_id: str) -> None:
        """Take the volume with the transfer's key (any project may; 202)."""
        body = body_of(await read_json(req), "accept")
        key = body.get("auth_key")
        if not isinstance(key, str) or not key:
            raise BadRequestError("Incorrect request body format: accept needs an "
                                  "'auth_key'.")
        rec = self.svc.store.get("transfer", transfer_id)
        if rec is None:
            raise NotFoundError(f"Transfer {transfer_id} could not be found.")
        if not hmac.compare_digest(_hash(str(rec.get("salt")), key),
                                   str(rec.get("crypt_hash"))):
            raise BadRequestError(f"Invalid auth key: Attempt to transfer {transfer_id} "
                                  "with invalid auth key.")
        vol = self.svc.store.get("volume", str(rec.get("volume_id")))
        if vol is None or vol.status != "awaiting-transfer":
            raise InvalidStateError("Invalid volume: status must be awaiting-transfer.")
        snaps = [] if rec.get("no_snapshots") else self._snapshots(vol)
        project = project_of(req)
        self.svc.check_quota(project, volumes=1, snapshots=len(snaps),
                             gigabytes=int(vol.get("size")) + sum(
                                 int(sn.get("size")) for sn in snaps))
        if not self.svc.store.hand_over(rec, vol, snaps, project, auth(req).user_id):
            raise InvalidStateError("Invalid volume: the transfer was accepted or "
                                    "withdrawn meanwhile.")
        resp.status = 202
        resp.media = {"transfer": {"id": rec.id, "name": rec.name, "volume_id": vol.id,
                                   "links": self.svc.link(self.collection, rec.id)}}
