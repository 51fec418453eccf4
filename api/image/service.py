"""What every image resource shares: store, policy, object store, limits, lookups."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import falcon.asgi
from nubis.api.image.config import ImageConfig
from nubis.api.image.jsonschemas import ImageValidator
from nubis.api.image.model import Image
from nubis.api.image.policy import ImagePolicy
from nubis.api.image.store import ImageStore
from nubis.api.image.swift import SwiftClient
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.background import TaskSet
from nubis.api.shared.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from nubis.common.jsonbody import JSONBodyError, parse_json

LOG = logging.getLogger("nubis.api.image")


@dataclass
class ImageService:
    """The image API's runtime objects (one per ``nubis api`` process)."""

    config: ImageConfig
    store: ImageStore
    policy: ImagePolicy
    swift: SwiftClient
    validator: ImageValidator
    max_body_bytes: int
    #: Background work (``web-download`` imports).
    tasks: TaskSet = field(default_factory=lambda: TaskSet(LOG))

    def caller(self, req: falcon.asgi.Request) -> AuthContext:
        """Return the authenticated caller (the auth middleware set it)."""
        ctx: AuthContext = req.context.auth
        return ctx

    def membership(self, ctx: AuthContext, image: Image) -> str | None:
        """Return the caller's member status on a shared image (None if not a member)."""
        if image.visibility != "shared" or ctx.project_id is None or (
                ctx.project_id == image.owner):
            return None
        found = self.store.members(image.id, ctx.project_id)
        return found[0].status if found else None

    def find(self, ctx: AuthContext, image_id: str, *, message: str = "") -> tuple[Image,
                                                                                   str | None]:
        """Return a visible image and the caller's membership, or Glance's 404."""
        image = self.store.get(image_id)
        membership = None
        if image is not None:
            membership = self.membership(ctx, image)
            if not self.policy.visible(ctx, image, membership):
                image = None
        if image is None:
            raise NotFoundError(message or f"No image found with ID {image_id}")
        return image, membership

    def check_quotas(self, properties: dict[str, Any], tags: tuple[str, ...] | list[str]
                     ) -> None:
        """413 when an image would carry too many properties or tags."""
        limit = self.config.property_quota
        if len(properties) > limit:
            raise PayloadTooLargeError(
                "The limit has been exceeded on the number of allowed image properties. "
                f"Attempted: {len(properties)}, Maximum: {limit}")
        limit = self.config.tag_quota
        if len(set(tags)) > limit:
            raise PayloadTooLargeError(
                "The limit has been exceeded on the number of allowed image tags. "
                f"Attempted: {len(set(tags))}, Maximum: {limit}")

    async def json_body(self, req: falcon.asgi.Request) -> Any:
        """Read and parse a bounded JSON request body (Glance's 400s)."""
        length = req.content_length
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLargeError("Request is too large.")
        raw = b""
        async for chunk in req.stream:
            raw += chunk
            if len(raw) > self.max_body_bytes:
                raise PayloadTooLargeError("Request is too large.")
        if not raw.strip():
            raise BadRequestError("Body expected in request.")
        try:
            return parse_json(raw)
        except JSONBodyError as exc:
            raise BadRequestError(f"Malformed JSON in request body. {exc}") from None
