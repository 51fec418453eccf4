"""Who may see and change images: Glance's default (secure RBAC) policy as one table.

Targets are built from the image: ``owner``, ``visibility`` and the caller's
``membership`` status (None when the caller's project is not a member). An
image the caller cannot see is answered 404, never 403, so other projects'
private images do not reveal that they exist; a visible image the caller may
not change is a 403 with Glance's words.
"""

from __future__ import annotations

from typing import Any

from nubis.api.image.model import Image
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import ForbiddenError, NotFoundError
from nubis.api.shared.policy import ADMIN, ANYONE, MEMBER, READER, Rule, Target


def _owner() -> Rule:
    return Rule("project_id:%(owner)s",
                lambda c, t: c.project_id is not None and c.project_id == t.get("owner"))


def _visible() -> Rule:
    def check(c: AuthContext, t: Target) -> bool:
        return (t.get("visibility") in ("public", "community") or (
            c.project_id is not None and c.project_id == t.get("owner")) or (
            t.get("visibility") == "shared" and t.get("membership") is not None))
    return Rule("visible", check)


def _the_member() -> Rule:
    return Rule("project_id:%(member_id)s",
                lambda c, t: c.project_id is not None and c.project_id == t.get("member_id"))


def _member_or_owner() -> Rule:
    return Rule("owner or member", lambda c, t: (
        c.project_id is not None and c.project_id == t.get("owner")) or (
        t.get("membership") is not None))


OWNER = _owner()
VISIBLE = _visible()
SCOPED = Rule("project-scoped", lambda c, t: c.project_id is not None)

#: Glance's defaults (2023.1 onwards) with nubis' meaning of ``admin`` (cloud admin).
IMAGE: dict[str, Rule] = {
    "get_images": ANYONE,
    "get_image": ADMIN | (READER & VISIBLE),
    "add_image": ADMIN | (MEMBER & SCOPED),
    "publicize_image": ADMIN,
    "communitize_image": ADMIN | (MEMBER & OWNER),
    "modify_image": ADMIN | (MEMBER & OWNER),
    "delete_image": ADMIN | (MEMBER & OWNER),
    "upload_image": ADMIN | (MEMBER & OWNER),
    "download_image": ADMIN | (MEMBER & VISIBLE),
    "deactivate": ADMIN | (MEMBER & OWNER),
    "reactivate": ADMIN | (MEMBER & OWNER),
    "get_members": ADMIN | (READER & _member_or_owner()),
    "get_member": ADMIN | (READER & (_the_member() | OWNER)),
    "add_member": ADMIN | (MEMBER & OWNER),
    "delete_member": ADMIN | (MEMBER & OWNER),
    "modify_member": ADMIN | (MEMBER & _the_member()),
}


class ImagePolicy:
    """Enforce :data:`IMAGE` for one caller."""

    def __init__(self, table: dict[str, Rule] | None = None) -> None:
        self.table = dict(table or IMAGE)

    def allowed(self, action: str, ctx: AuthContext, target: Target) -> bool:
        """Return whether ``ctx`` may perform ``action`` on ``target``."""
        rule = self.table.get(action)
        return rule is not None and rule(ctx, target)

    def enforce(self, action: str, ctx: AuthContext, target: Target) -> None:
        """Raise Glance's 403 unless allowed."""
        if not self.allowed(action, ctx, target):
            raise ForbiddenError(f"You are not authorized to complete {action} action.")

    def visible(self, ctx: AuthContext, image: Image, membership: str | None) -> bool:
        """Return whether the caller may see ``image`` at all."""
        return self.allowed("get_image", ctx, target(image, membership))

    def check_image(self, action: str, ctx: AuthContext, image: Image,
                    membership: str | None) -> None:
        """404 if the caller cannot see ``image``; 403 if it may not do ``action``."""
        tgt = target(image, membership)
        if not self.allowed("get_image", ctx, tgt):
            raise NotFoundError(f"No image found with ID {image.id}")
        self.enforce(action, ctx, tgt)

    def check_visibility(self, ctx: AuthContext, visibility: str,
                         owner: str | None) -> None:
        """Only admins publish; owners (members) may make community images."""
        if visibility == "public":
            self.enforce("publicize_image", ctx, {"owner": owner})
        elif visibility == "community":
            self.enforce("communitize_image", ctx, {"owner": owner})


def target(image: Image, membership: str | None, **extra: Any) -> dict[str, Any]:
    """Return the policy target of ``image`` for a caller with ``membership``."""
    return {"owner": image.owner, "visibility": image.visibility, "membership": membership,
            **extra}
