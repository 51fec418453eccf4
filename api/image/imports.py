"""Glance's interoperable image import: ``glance-direct`` and ``web-download``.

``glance-direct``: ``PUT /v2/images/{id}/stage`` takes the bytes of a queued
image (it becomes ``uploading``), ``POST /v2/images/{id}/import`` with
``{"method": {"name": "glance-direct"}}`` then finishes it (``importing``,
then ``active``; 202). The staged bytes go straight to their final place in
the object store, hashed on the way as an upload's are, so the import has
nothing left to copy: it only moves the status.

``web-download``: ``{"method": {"name": "web-download", "uri": ...}}`` on a
queued image; the URI must pass the import filters
(:mod:`nubis.api.image.webdownload`, Glance's 400 otherwise). The image is
``importing`` while this process downloads it in the background, streaming it
into the object store as an upload; then ``active``, or back to ``queued`` if
anything failed. Each import is an ``api_image_import`` task
(:mod:`nubis.api.image.tasks`) that ends ``success`` or ``failure`` with the
reason; while a download runs, its process renews the task's lease, so an
import whose process stopped is recovered (:mod:`nubis.api.image.recovery`).
``copy-image`` (several stores) is not offered. ``/v2/info/import`` lists
``[image] import_methods``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import falcon
import falcon.asgi
from nubis.api.image.data import HASH_ALGO, delete_image_data
from nubis.api.image.model import Image
from nubis.api.image.policy import target
from nubis.api.image.recovery import ImportLease, import_object_name
from nubis.api.image.service import ImageService
from nubis.api.image.swift import StoreError
from nubis.api.image.tasks import TaskStore
from nubis.api.image.transfer import ImageFile
from nubis.api.image.webdownload import UriFilter, UriRefused, WebDownloadError, open_download
from nubis.api.shared.errors import ApiError, BadRequestError, ConflictError

Req = falcon.asgi.Request
Resp = falcon.asgi.Response

LOG = logging.getLogger("nubis.api.image")


class ImportInfo:
    """``GET /v2/info/import``: the import methods offered."""

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.methods = methods

    async def on_get(self, req: Req, resp: Resp) -> None:
        """Describe the import methods."""
        resp.media = {"import-methods": {"description": "Import methods available.",
                                         "type": "array", "value": list(self.methods)}}


class ImageStage:
    """``PUT /v2/images/{image_id}/stage``: a queued image's bytes, kept ``uploading``."""

    def __init__(self, svc: ImageService) -> None:
        self.files = ImageFile(svc)

    async def on_put(self, req: Req, resp: Resp, image_id: str) -> None:
        """Stage the image data (204)."""
        await self.files.receive(req, image_id, "uploading", "uploading")
        resp.status = falcon.HTTP_204


class ImageImport:
    """``POST /v2/images/{image_id}/import``: finish a staged image."""

    def __init__(self, svc: ImageService, records: TaskStore) -> None:
        self.svc = svc
        self.files = ImageFile(svc)
        self.uri_filter = UriFilter.of(svc.config)
        self.records = records

    async def on_post(self, req: Req, resp: Resp, image_id: str) -> None:
        """Import an image (202): a staged one at once, a ``web-download`` in the background."""
        body = await self.svc.json_body(req)
        method = check_body(body, self.svc.config.import_methods)
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("modify_image", ctx, target(image, membership))
        before = "queued" if method == "web-download" else "uploading"
        if image.status == "active":
            raise ConflictError("Image with status active cannot be target for import")
        if image.status != before and method == "web-download":
            raise ConflictError(f"Image needs to be in 'queued' state to use '{method}' method")
        if image.status != before:
            raise ConflictError(f"Image needs to be staged before '{method}' method can be "
                                "used")
        if not image.container_format:
            raise ConflictError("'container_format' needs to be set before import")
        if not image.disk_format:
            raise ConflictError("'disk_format' needs to be set before import")
        uri = self._checked_uri(body) if method == "web-download" else None
        request_id = req.get_header("X-OpenStack-Request-ID") or f"req-{uuid.uuid4()}"
        task_id = self.records.begin(ctx, image.id, before, request_id[:255], body["method"])
        if task_id is None:
            raise ConflictError(f"New operation on image '{image.id}' is not permitted as "
                                "prior operation is still in progress")
        if uri is None:
            if not self.records.succeed(task_id, image.id):
                self.records.fail(task_id, image.id, _gone(image.id))
        else:
            self.svc.tasks.spawn(self._web_download(image, uri, task_id),
                                 f"web-download of image {image.id}")
        resp.status = falcon.HTTP_202

    def _checked_uri(self, body: dict[str, Any]) -> str:
        """Return the ``web-download`` URI if it passes the filters (Glance's 400 if not)."""
        uri = body["method"].get("uri")
        if not isinstance(uri, str):
            raise BadRequestError(f"URI for web-download does not pass filtering: {uri}")
        try:
            self.uri_filter.check(uri)
        except UriRefused:
            raise BadRequestError(f"URI for web-download does not pass filtering: "
                                  f"{uri}") from None
        return uri

    async def _web_download(self, image: Image, uri: str, task_id: str) -> None:
        """Download ``uri`` into the importing image while holding the import's lease.

        The image ends ``active``, else back in ``queued``; the import task
        records the outcome (the failure's reason). If another process took
        the import over (this one's lease lapsed), this one only deletes what
        it stored.
        """
        lease = ImportLease(self.records, task_id, self.svc.config.import_lease_interval)
        try:
            async with lease:
                await self._fetch(image, uri, task_id)
        except asyncio.CancelledError:
            if not lease.lost:  # the process is stopping
                self.records.fail(task_id, image.id,
                                  f"web-download of {uri} was interrupted: the api process "
                                  "stopped")
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()

    async def _fetch(self, image: Image, uri: str, task_id: str) -> None:
        """Stream ``uri`` into the object store and end the import task."""
        cfg = self.svc.config
        try:
            download = await open_download(uri, self.uri_filter, cfg.import_timeout)
            if download.length is not None and download.length > cfg.size_cap:
                download.close()
                raise WebDownloadError(f"{download.length} bytes is over the size cap")
            stored = await self.files.store(image, download.chunks(), download.length,
                                            name=import_object_name(image.id, task_id))
        except (WebDownloadError, ApiError) as exc:
            LOG.warning("web-download of image %s from %s failed: %s", image.id, uri, exc)
            self.records.fail(task_id, image.id, f"web-download of {uri} failed: {exc}")
            return
        except Exception:
            self.records.fail(task_id, image.id, "web-download failed: internal error")
            raise
        if not self.records.succeed(
                task_id, image.id, size=stored.size, checksum=stored.checksum,
                os_hash_algo=HASH_ALGO, os_hash_value=stored.os_hash_value,
                virtual_size=stored.virtual_size, location=stored.location,
                segments=stored.segments):
            # deleted meanwhile, or taken over by another process: the bytes are no one's
            try:
                await delete_image_data(self.svc.swift, stored.location, stored.segments)
            except StoreError as exc:
                LOG.warning("could not delete the bytes of image %s: %s", image.id, exc)
            self.records.fail(task_id, image.id, f"web-download of {uri} failed: "
                                                 f"{_gone(image.id)}")


def _gone(image_id: str) -> str:
    return (f"Image {image_id} could not be found after upload. The image may have been "
            "deleted during the upload, cleaning up the chunks uploaded.")


def check_body(body: Any, methods: tuple[str, ...]) -> str:
    """Return the import method a request body names (Glance's 400s otherwise)."""
    if not isinstance(body, dict) or "method" not in body:
        raise BadRequestError("Import request requires a 'method' field.")
    method = body["method"]
    if not isinstance(method, dict) or "name" not in method:
        raise BadRequestError("Import request requires a 'name' field.")
    name = method["name"]
    if name not in methods:
        raise BadRequestError(f"Unknown import method name '{name}'.")
    for key, default in (("all_stores_must_succeed", True), ("all_stores", False)):
        if not isinstance(body.get(key, default), bool):
            raise BadRequestError(f"'{key}' must be boolean value only")
    # ``all_stores_must_succeed: false`` is accepted: with one store it changes
    # nothing. (Glance without ``enabled_backends`` answers 400, which the
    # ``openstack image import`` default sends and then ignores: the import never
    # starts and the command says nothing.)
    return str(name)
