"""Resolve records left in a transitional state when ``nubis api`` stopped mid-operation.

The background task that would have moved a volume out of ``creating``,
``deleting``, ``extending``, ``backing-up`` or ``restoring-backup`` died with
the process. On the first request after a start, :func:`reconcile` asks the
volume daemon which volume files exist (and their sizes) and settles each
record from what is on disk: a created file makes the volume ``available``, a
missing one ``error`` (with a user message); a delete whose file is gone is
finished; an extend takes the size on disk; an interrupted backup is ``error``
and its volume returns to ``available``; an interrupted restore is
``error_restoring``. Snapshots and backups in ``creating``/``deleting`` are
settled the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon.asgi
from nubis.api.volume.clients import PeerError
from nubis.api.volume.service import VolumeService
from nubis.api.volume.store import Record
from nubis.api.volume.volumes import fail

LOG = logging.getLogger("nubis.api.volume")
STUCK = ("creating", "deleting", "extending", "backing-up", "restoring-backup")


async def _volume(svc: VolumeService, rec: Record, on_disk: dict[str, Any]) -> None:
    disk = on_disk.get(rec.id)
    if rec.status == "creating":
        if disk is None:
            await fail(svc, rec, "create volume", "interrupted by a restart of the API")
        else:
            svc.store.update(rec, status="available", expected=("creating",))
    elif rec.status == "deleting":
        if disk is None:
            svc.store.delete(rec.id)
        else:
            svc.store.update(rec, status="error_deleting", expected=("deleting",))
    elif rec.status == "extending":
        size = int(disk["size"]) if disk else rec.get("size")
        svc.store.update(rec, status="available" if disk else "error_extending",
                         expected=("extending",), size=size)
    elif rec.status == "backing-up":
        svc.store.update(rec, status="in-use" if rec.get("attachments") else "available",
                         expected=("backing-up",))
    elif rec.status == "restoring-backup":
        svc.store.update(rec, status="error_restoring", expected=("restoring-backup",),
                         error_message="restore interrupted by a restart of the API")


async def reconcile(svc: VolumeService) -> int:
    """Settle every record stuck in a transitional state; return how many."""
    on_disk = await svc.daemon.volumes()
    settled = 0
    for rec in svc.store.select("volume"):
        if rec.status in STUCK:
            await _volume(svc, rec, on_disk)
            settled += 1
    for snap in svc.store.select("snapshot"):
        if snap.status in ("creating", "deleting"):
            disk = on_disk.get(str(snap.get("volume_id"))) or {}
            taken = snap.id in (disk.get("snapshots") or [])
            if snap.status == "deleting" and not taken:
                svc.store.delete(snap.id)
            else:
                svc.store.update(snap, status="available" if taken else "error")
            settled += 1
    for backup in svc.store.select("backup"):
        if backup.status in ("creating", "restoring", "deleting"):
            done = backup.status == "restoring" or backup.get("metadata_object")
            svc.store.update(backup, status="available" if done else "error",
                             fail_reason=None if done else "interrupted by a restart")
            settled += 1
    return settled


class Reconciler:
    """Run :func:`reconcile` once, with the first request (the daemon may start later)."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc
        self.done = False

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Reconcile before the first request is served (retried until the daemon answers)."""
        if self.done:
            return
        try:
            settled = await reconcile(self.svc)
        except PeerError as exc:
            LOG.warning("volume reconcile postponed: %s", exc)
            return
        self.done = True
        if settled:
            LOG.warning("settled %d volume records left mid-operation", settled)
