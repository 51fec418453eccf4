"""Glance's interoperable image import, ``glance-direct`` method.

``PUT /v2/images/{id}/stage`` takes the bytes of a queued image (it becomes
``uploading``), ``POST /v2/images/{id}/import`` with ``{"method": {"name":
"glance-direct"}}`` then finishes it (``importing``, then ``active``; 202).
The staged bytes go straight to their final place in the object store, hashed
on the way as an upload's are, so the import has nothing left to copy: it only
moves the status. ``web-download`` (the API fetching a URL) and ``copy-image``
(several stores) are not offered, and ``/v2/info/import`` says so.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
from nubis.api.image.policy import target
from nubis.api.image.service import ImageService
from nubis.api.image.transfer import ImageFile
from nubis.api.shared.errors import BadRequestError, ConflictError

Req = falcon.asgi.Request
Resp = falcon.asgi.Response

#: The import methods this image service offers (Glance's ``enabled_import_methods``).
METHODS = ("glance-direct",)


class ImportInfo:
    """``GET /v2/info/import``: the import methods offered."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """Describe the import methods."""
        resp.media = {"import-methods": {"description": "Import methods available.",
                                         "type": "array", "value": list(METHODS)}}


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

    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    async def on_post(self, req: Req, resp: Resp, image_id: str) -> None:
        """Import a staged image (202; it is ``active`` once the answer is sent)."""
        body = await self.svc.json_body(req)
        method = check_body(body)
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("modify_image", ctx, target(image, membership))
        if image.status == "active":
            raise ConflictError("Image with status active cannot be target for import")
        if image.status != "uploading":
            raise ConflictError(f"Image needs to be staged before '{method}' method can be "
                                "used")
        if not image.container_format:
            raise ConflictError("'container_format' needs to be set before import")
        if not image.disk_format:
            raise ConflictError("'disk_format' needs to be set before import")
        if not self.svc.store.transition(image.id, ["uploading"], "importing"):
            raise ConflictError(f"New operation on image '{image.id}' is not permitted as "
                                "prior operation is still in progress")
        self.svc.store.transition(image.id, ["importing"], "active")
        resp.status = falcon.HTTP_202


def check_body(body: Any) -> str:
    """Return the import method a request body names (Glance's 400s otherwise)."""
    if not isinstance(body, dict) or "method" not in body:
        raise BadRequestError("Import request requires a 'method' field.")
    method = body["method"]
    if not isinstance(method, dict) or "name" not in method:
        raise BadRequestError("Import request requires a 'name' field.")
    name = method["name"]
    if name not in METHODS:
        raise BadRequestError(f"Unknown import method name '{name}'.")
    for key, default in (("all_stores_must_succeed", True), ("all_stores", False)):
        if not isinstance(body.get(key, default), bool):
            raise BadRequestError(f"'{key}' must be boolean value only")
    if body.get("all_stores_must_succeed", True) is False:
        raise BadRequestError("All_stores_must_succeed can only be set with "
                              "enabled_backends None")
    return str(name)
