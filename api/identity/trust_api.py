"""``/v3/OS-TRUST/trusts``: create, list, show, delete trusts and their roles."""

from __future__ import annotations

from typing import Any

import falcon
from nubis.api.identity import views
from nubis.api.identity.resources import IdentityContext, Req, Resp, auth_of, run
from nubis.api.identity.store import Row
from nubis.api.identity.trusts import trust_view
from nubis.api.shared.errors import BadRequestError, ForbiddenError, NotFoundError

TRUST_FIELDS = frozenset({"trustor_user_id", "trustee_user_id", "impersonation", "project_id",
                          "roles", "expires_at", "remaining_uses", "allow_redelegation",
                          "redelegation_count"})


def parse_trust(spec: dict[str, Any]) -> tuple[Row, list[dict[str, Any]]]:
    """Validate a trust-create body as Keystone's schema does; return values and role refs."""
    for key in ("trustor_user_id", "trustee_user_id"):
        views.text(spec, key, required=True, max_len=64)
    if not isinstance(spec.get("impersonation"), bool):
        raise BadRequestError("Invalid input for field 'impersonation': 'impersonation' is a "
                              "required property of type 'boolean'.")
    views.text(spec, "project_id", max_len=64)
    uses = spec.get("remaining_uses")
    if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
        raise BadRequestError(f"Invalid input for field 'remaining_uses': {uses!r} is less than "
                              "the minimum of 1 or not an integer.")
    count = spec.get("redelegation_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 0):
        raise BadRequestError(f"Invalid input for field 'redelegation_count': {count!r} is "
                              "not a non-negative integer.")
    if spec.get("allow_redelegation") is not None:
        views.flag(spec, "allow_redelegation")
    roles = spec.get("roles") or []
    if not isinstance(roles, list) or not all(
            isinstance(r, dict) and len(r) == 1 and set(r) <= {"id", "name"}
            and isinstance(next(iter(r.values())), str) for r in roles):
        raise BadRequestError("Invalid input for field 'roles': each role is an object with "
                              "exactly one of 'id' or 'name'.")
    values = {k: v for k, v in spec.items() if k in TRUST_FIELDS and k != "roles"}
    values["expires_at"] = views.parse_iso(spec.get("expires_at"), "expires_at")
    return values, roles


class Trusts:
    """``GET|POST /v3/OS-TRUST/trusts``."""

    def __init__(self, ctx: IdentityContext) -> None:
        self.ctx = ctx

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List trusts (all for an admin; ``?trustor_user_id``/``?trustee_user_id`` for users)."""
        trustor, trustee = req.get_param("trustor_user_id"), req.get_param("trustee_user_id")
        if trustor:
            self.ctx.enforce(req, "identity:list_trusts_for_trustor",
                             {"trust.trustor_user_id": trustor})
        elif trustee:
            self.ctx.enforce(req, "identity:list_trusts_for_trustee",
                             {"trust.trustee_user_id": trustee})
        else:
            self.ctx.enforce(req, "identity:list_trusts")
        rows = await run(self.ctx.store.list_trusts, trustor or None, trustee or None)
        items = [trust_view(r, self.ctx.base, None, views.iso) for r in rows]
        resp.media = views.collection("trusts", items, f"{self.ctx.base}/OS-TRUST/trusts")

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Create a trust; the caller must be the trustor."""
        caller = auth_of(req)
        self.ctx.enforce(req, "identity:create_trust")
        values, roles = parse_trust(views.member(await self.ctx.body(req), "trust"))
        if caller.app_cred_id is not None:
            raise ForbiddenError("You are not authorized to perform the requested action: "
                                 "Using method 'application_credential' is not allowed for "
                                 "managing trusts.")
        if values.get("project_id") and not roles:
            raise ForbiddenError("You are not authorized to perform the requested action: "
                                 "At least one role should be specified.")
        if caller.user_id != values["trustor_user_id"]:
            raise ForbiddenError("You are not authorized to perform the requested action: "
                                 "The authenticated user should match the trustor.")
        row = await run(self._create, values, roles, caller.payload.trust)
        resp.status = falcon.HTTP_201
        resp.media = {"trust": await run(self._render, row)}

    def _create(self, values: Row, roles: list[dict[str, Any]], via: Any) -> Row:
        store = self.ctx.store
        role_ids = []
        for ref in roles:
            if "id" in ref:
                role_ids.append(store.get_role(ref["id"])["id"])
            else:
                found = store.find_role(ref["name"])
                if found is None:
                    raise NotFoundError(f"Could not find role: {ref['name']}.")
                role_ids.append(found["id"])
        parent = store.get_trust(via.id) if via is not None else None
        return store.create_trust(values, list(dict.fromkeys(role_ids)), parent)

    def _render(self, row: Row) -> dict[str, Any]:
        return trust_view(row, self.ctx.base, role_docs(self.ctx, row["role_ids"]), views.iso)


def role_docs(ctx: IdentityContext, role_ids: list[str]) -> list[dict[str, Any]]:
    """Return full role documents for a trust's roles (missing roles are skipped)."""
    out = []
    for rid in role_ids:
        try:
            out.append(views.role(ctx.store.get_role(rid), ctx.base))
        except NotFoundError:
            continue
    return out


class _TrustResource:
    """Loads a live trust (404 otherwise) and applies the trustor/trustee policy."""

    def __init__(self, ctx: IdentityContext) -> None:
        self.ctx = ctx

    async def _load(self, req: Req, action: str, trust_id: str) -> Row:
        row: Row = await run(self.ctx.store.get_trust, trust_id)
        self.ctx.enforce(req, f"identity:{action}", {
            "trust.trustor_user_id": row["trustor_user_id"],
            "trust.trustee_user_id": row["trustee_user_id"]})
        return row


class TrustItem(_TrustResource):
    """``GET|HEAD|DELETE /v3/OS-TRUST/trusts/{trust_id}``."""

    async def on_get(self, req: Req, resp: Resp, trust_id: str) -> None:
        """Show a trust with its roles."""
        row = await self._load(req, "get_trust", trust_id)
        resp.media = {"trust": trust_view(row, self.ctx.base,
                                          await run(role_docs, self.ctx, row["role_ids"]),
                                          views.iso)}

    async def on_head(self, req: Req, resp: Resp, trust_id: str) -> None:
        """Check a trust."""
        await self._load(req, "get_trust", trust_id)
        resp.status = falcon.HTTP_200

    async def on_delete(self, req: Req, resp: Resp, trust_id: str) -> None:
        """Delete a trust (and its redelegations); revokes its tokens."""
        await self._load(req, "delete_trust", trust_id)
        if auth_of(req).app_cred_id is not None:
            raise ForbiddenError("You are not authorized to perform the requested action: "
                                 "Using method 'application_credential' is not allowed for "
                                 "managing trusts.")
        await run(self.ctx.store.delete_trust, trust_id)
        resp.status = falcon.HTTP_204


class TrustRoles(_TrustResource):
    """``GET|HEAD /v3/OS-TRUST/trusts/{trust_id}/roles``."""

    async def on_get(self, req: Req, resp: Resp, trust_id: str) -> None:
        """List a trust's roles."""
        row = await self._load(req, "list_roles_for_trust", trust_id)
        resp.media = views.collection(
            "roles", await run(role_docs, self.ctx, row["role_ids"]),
            f"{self.ctx.base}/OS-TRUST/trusts/{trust_id}/roles")

    async def on_head(self, req: Req, resp: Resp, trust_id: str) -> None:
        """Check the roles collection."""
        await self._load(req, "list_roles_for_trust", trust_id)
        resp.status = falcon.HTTP_200


class TrustRole(_TrustResource):
    """``GET|HEAD /v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}``."""

    async def on_get(self, req: Req, resp: Resp, trust_id: str, role_id: str) -> None:
        """Show one delegated role (404 if the trust does not delegate it)."""
        row = await self._load(req, "get_role_for_trust", trust_id)
        if role_id not in row["role_ids"]:
            raise NotFoundError(f"Could not find role: {role_id}.")
        resp.media = {"role": views.role(await run(self.ctx.store.get_role, role_id),
                                         self.ctx.base)}

    async def on_head(self, req: Req, resp: Resp, trust_id: str, role_id: str) -> None:
        """Check one delegated role."""
        await self.on_get(req, resp, trust_id, role_id)
        resp.media = None
        resp.status = falcon.HTTP_200
