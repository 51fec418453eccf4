"""Falcon resources of image members: share an image with projects, accept it.

Only ``shared`` images have members. The owner adds and removes members; each
member project accepts or rejects for itself; a member sees only its own
membership. Membership of an image the caller cannot see is a 404.
"""

from __future__ import annotations

import falcon
import falcon.asgi
from nubis.api.image import views
from nubis.api.image.jsonschemas import MEMBER_STATUSES
from nubis.api.image.model import Image, Member
from nubis.api.image.policy import target
from nubis.api.image.service import ImageService
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
)

Req = falcon.asgi.Request
Resp = falcon.asgi.Response
MAX_MEMBER_ID = 255


class _MemberBase:
    def __init__(self, svc: ImageService) -> None:
        self.svc = svc

    def _image(self, req: Req, image_id: str) -> tuple[AuthContext, Image, str | None]:
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id, message=f"Image {image_id} not found.")
        if image.visibility != "shared":
            raise ForbiddenError(f"Error fetching members of image {image.id}: Only shared "
                                 "images have members.")
        return ctx, image, membership

    def _member(self, image: Image, member_id: str) -> Member:
        found = self.svc.store.members(image.id, member_id)
        if not found:
            raise NotFoundError(f"{member_id} not found in the member list of the image "
                                f"{image.id}.")
        return found[0]


class Members(_MemberBase):
    """``/v2/images/{image_id}/members``: list and add."""

    async def on_get(self, req: Req, resp: Resp, image_id: str) -> None:
        """List members (a member project sees only itself)."""
        ctx, image, membership = self._image(req, image_id)
        if not self.svc.policy.allowed("get_members", ctx, target(image, membership)):
            raise ForbiddenError(f"Not allowed to list members for image {image.id}.")
        members = self.svc.store.members(image.id)
        if not ctx.is_admin and ctx.project_id != image.owner:
            members = [m for m in members if m.member_id == ctx.project_id]
        resp.media = {"members": [views.member_view(m) for m in members],
                      "schema": "/v2/schemas/members"}

    async def on_post(self, req: Req, resp: Resp, image_id: str) -> None:
        """Share the image with a project (status ``pending``)."""
        ctx, image, membership = self._image(req, image_id)
        if not self.svc.policy.allowed("add_member", ctx, target(image, membership)):
            raise ForbiddenError(f"Not allowed to create members for image {image.id}.")
        body = await self.svc.json_body(req)
        if not isinstance(body, dict) or "member" not in body:
            raise BadRequestError("Member to be added not specified")
        member_id = body["member"]
        if not member_id:
            raise BadRequestError("Member can't be empty")
        if not isinstance(member_id, str) or len(member_id) > MAX_MEMBER_ID:
            raise BadRequestError(f"Member {member_id!r} is not a valid project id")
        try:
            member = self.svc.store.add_member(image.id, member_id, self.svc.config.member_quota)
        except ValueError as exc:
            raise PayloadTooLargeError(
                f"Image member limit exceeded for image {image.id}: The limit has been "
                "exceeded on the number of allowed image members for this image. "
                f"Attempted: {exc.args[0]}, Maximum: {self.svc.config.member_quota}:") from None
        if member is None:
            raise ConflictError(f"Member {member_id} is duplicated for image {image.id}")
        resp.media = views.member_view(member)


class MemberItem(_MemberBase):
    """``/v2/images/{image_id}/members/{member_id}``: show, accept/reject, remove."""

    async def on_get(self, req: Req, resp: Resp, image_id: str, member_id: str) -> None:
        """Show one membership (404 rather than 403, to leak nothing)."""
        try:
            ctx, image, membership = self._image(req, image_id)
        except ForbiddenError as exc:
            raise NotFoundError(exc.message) from None
        member = self._member(image, member_id)
        if not self.svc.policy.allowed("get_member", ctx,
                                       target(image, membership, member_id=member_id)):
            raise NotFoundError(f"{member_id} not found in the member list of the image "
                                f"{image.id}.")
        resp.media = views.member_view(member)

    async def on_put(self, req: Req, resp: Resp, image_id: str, member_id: str) -> None:
        """Accept, reject or re-pend the image (only the member project itself)."""
        ctx, image, membership = self._image(req, image_id)
        member = self._member(image, member_id)
        if not self.svc.policy.allowed("modify_member", ctx,
                                       target(image, membership, member_id=member_id)):
            raise ForbiddenError(f"Not allowed to update members for image {image.id}.")
        body = await self.svc.json_body(req)
        if not isinstance(body, dict) or "status" not in body:
            raise BadRequestError("Status not specified")
        if body["status"] not in MEMBER_STATUSES:
            raise BadRequestError('Incorrect request: Status must be "pending", "accepted" '
                                  'or "rejected".')
        resp.media = views.member_view(self.svc.store.set_member_status(member,
                                                                        body["status"]))

    async def on_delete(self, req: Req, resp: Resp, image_id: str, member_id: str) -> None:
        """Stop sharing the image with a project."""
        ctx, image, membership = self._image(req, image_id)
        member = self._member(image, member_id)
        if not self.svc.policy.allowed("delete_member", ctx, target(image, membership)):
            raise ForbiddenError(f"Not allowed to delete members for image {image.id}.")
        self.svc.store.remove_member(member)
        resp.status = falcon.HTTP_204
