"""Falcon resources of the image API: versions, schemas, images, actions, tags."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
from nubis.api.image import jsonschemas as js
from nubis.api.image import views
from nubis.api.image.data import delete_image_data
from nubis.api.image.filters import parse_list_query
from nubis.api.image.patch import MAX_PROPERTY_NAME, apply_patch, parse_patch
from nubis.api.image.policy import target
from nubis.api.image.service import ImageService
from nubis.api.image.swift import StoreError
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import BadRequestError, ForbiddenError, NotFoundError

LOG = logging.getLogger("nubis.api.image")

Req = falcon.asgi.Request
Resp = falcon.asgi.Response


def _json(resp: Resp, doc: Any, status: int = 200) -> None:
    resp.status = status
    resp.media = doc


class Versions:
    """``GET /image`` (300) and ``/image/versions`` (200): Glance's version list."""

    auth_required = False

    def __init__(self, v2_url: str, status: int) -> None:
        self.v2_url = v2_url
        self.status = status

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List the API versions."""
        _json(resp, views.version_list(self.v2_url), self.status)


class Schema:
    """``GET /v2/schemas/{name}``: image, images, member, members, task, tasks."""

    async def on_get(self, req: Req, resp: Resp, name: str) -> None:
        """Return one schema document."""
        build = js.SCHEMAS.get(name)
        if build is None:
            raise NotFoundError("The resource could not be found.")
        _json(resp, build())


class Images:
    """``/v2/images``: list and create."""

    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List the images the caller may see, filtered, sorted and paged."""
        ctx = self.svc.caller(req)
        params = {k: v if isinstance(v, list) else [v] for k, v in req.params.items()}
        cfg = self.svc.config
        query = parse_list_query(params, default_limit=cfg.limit_param_default,
                                 max_limit=cfg.api_limit_max)
        marker = None
        if query.marker is not None:
            marker = self.svc.store.get(query.marker)
            if marker is None or not self.svc.policy.visible(
                    ctx, marker, self.svc.membership(ctx, marker)):
                raise BadRequestError(f"Marker {query.marker} could not be found.")
        found = self.svc.store.list_images(query, ctx.project_id, ctx.is_admin, marker)
        _json(resp, views.images_page(found, params, len(found) == query.limit))

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Create a queued image record."""
        ctx = self.svc.caller(req)
        body = await self.svc.json_body(req)
        columns, properties, tags = self._parse_create(body)
        owner = columns.setdefault("owner", ctx.project_id)
        self.svc.policy.enforce("add_image", ctx, {"owner": owner})
        if owner != ctx.project_id and not ctx.is_admin:
            raise ForbiddenError(f"You are not permitted to create images owned by '{owner}'.")
        self.svc.policy.check_visibility(ctx, columns.get("visibility", "shared"), owner)
        self.svc.check_quotas(properties, tags)
        image = self.svc.store.create(columns, properties, tags)
        _json(resp, views.image_view(image), 201)
        resp.location = views.image_href(image.id)
        # Glance's announcement of interoperable import (openstacksdk reads it).
        resp.set_header("OpenStack-image-import-methods",
                       ",".join(self.svc.config.import_methods))

    def _parse_create(self, body: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """Split a create body into columns, free-form properties and tags (Glance's rules)."""
        if not isinstance(body, dict):
            raise BadRequestError("Body expected in request.")
        for key in js.DISALLOWED:
            if key in body:
                raise ForbiddenError(f"Attribute '{key}' is read-only.")
        try:
            self.svc.validator.validate(body)
        except js.SchemaError as exc:
            raise BadRequestError(str(exc)) from None
        for key in js.READ_ONLY:
            if key in body and key != "id":
                raise ForbiddenError(f"Attribute '{key}' is read-only.")
        props = dict(body)
        tags = list(dict.fromkeys(props.pop("tags", []) or []))
        columns = {key: props.pop(key) for key in js.BASE_ATTRIBUTES if key in props}
        for key in props:
            if len(key) > MAX_PROPERTY_NAME:
                raise BadRequestError("Custom property should not be greater than 255 "
                                      "characters.")
            if key in js.RESERVED or key.startswith(js.RESERVED_NAMESPACE):
                raise ForbiddenError(f"Attribute '{key}' is reserved.")
        for key in ("min_disk", "min_ram"):
            if key in columns and not 0 <= columns[key] < 2**31:
                raise BadRequestError(f"Invalid value for {key}: {columns[key]}")
        return columns, props, tags


class ImageItem:
    """``/v2/images/{image_id}``: show, update (JSON Patch), delete."""

    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    async def on_get(self, req: Req, resp: Resp, image_id: str) -> None:
        """Show one image."""
        image, _ = self.svc.find(self.svc.caller(req), image_id)
        _json(resp, views.image_view(image))

    async def on_patch(self, req: Req, resp: Resp, image_id: str) -> None:
        """Apply a JSON Patch (``application/openstack-images-v2.1-json-patch``)."""
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("modify_image", ctx, target(image, membership))
        changes = parse_patch(req.content_type, await self.svc.json_body(req),
                              self.svc.validator)
        if any(c.root == "owner" for c in changes) and not ctx.is_admin:
            raise ForbiddenError("Owner can't be updated by non admin.")
        update = apply_patch(image, changes)
        visibility = update.columns["visibility"]
        if visibility != image.visibility:
            self.svc.policy.check_visibility(ctx, visibility, image.owner)
        self.svc.check_quotas(update.properties, update.tags)
        _json(resp, views.image_view(self.svc.store.update(image, update)))

    async def on_delete(self, req: Req, resp: Resp, image_id: str) -> None:
        """Delete an image record and its stored bytes."""
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("delete_image", ctx, target(image, membership))
        if image.protected:
            raise ForbiddenError(f"Image {image.id} is protected and cannot be deleted.")
        if not self.svc.store.delete(image.id):
            raise NotFoundError(f"Failed to find image {image_id} to delete")
        try:
            await delete_image_data(self.svc.swift, image.location, image.segments)
        except StoreError as exc:  # the record is gone; the bytes are an orphan now
            LOG.warning("image %s deleted but its data could not be: %s", image.id, exc)
        resp.status = falcon.HTTP_204


class Action:
    """``POST /v2/images/{image_id}/actions/{deactivate,reactivate}``."""

    #: action -> (statuses it may start from, resulting status)
    MOVES = {"deactivate": (("active", "deactivated"), "deactivated"),
             "reactivate": (("active", "deactivated"), "active")}

    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    async def on_post(self, req: Req, resp: Resp, image_id: str, action: str) -> None:
        """Deactivate or reactivate an image."""
        if action not in self.MOVES:
            raise NotFoundError("The resource could not be found.")
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce(action, ctx, target(image, membership))
        allowed, status = self.MOVES[action]
        if not self.svc.store.transition(image.id, allowed, status):
            raise BadRequestError(f"Not allowed to {action} image in status "
                                  f"'{image.status}'")
        resp.status = falcon.HTTP_204


class Tag:
    """``PUT|DELETE /v2/images/{image_id}/tags/{tag}``."""

    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    def _image(self, req: Req, image_id: str) -> tuple[AuthContext, Any]:
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("modify_image", ctx, target(image, membership))
        return ctx, image

    async def on_put(self, req: Req, resp: Resp, image_id: str, tag: str) -> None:
        """Add a tag."""
        _ctx, image = self._image(req, image_id)
        try:
            self.svc.validator.validate({"tags": [tag]})
        except js.SchemaError as exc:
            raise BadRequestError(str(exc)) from None
        self.svc.check_quotas({}, [*image.tags, tag])
        self.svc.store.add_tag(image, tag)
        resp.status = falcon.HTTP_204

    async def on_delete(self, req: Req, resp: Resp, image_id: str, tag: str) -> None:
        """Remove a tag (404 if absent)."""
        _ctx, image = self._image(req, image_id)
        if not self.svc.store.remove_tag(image, tag):
            raise NotFoundError(f"Tag {tag} not found.")
        resp.status = falcon.HTTP_204
