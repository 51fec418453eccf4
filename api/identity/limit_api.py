"""``/v3/registered_limits``, ``/v3/limits`` and ``/v3/limits/model`` (unified limits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
from nubis.api.identity import views
from nubis.api.identity.limits import MODEL, limit_view, registered_limit_view
from nubis.api.identity.resources import IdentityContext, Req, Resp, auth_of, run
from nubis.api.identity.store import Row
from nubis.api.shared.errors import BadRequestError

#: Largest limit value accepted (Keystone's schema: a 32-bit signed integer, -1 = unlimited).
MAX_LIMIT = 2**31 - 1
_REG_FIELDS = ("service_id", "region_id", "resource_name", "default_limit", "description")
_LIMIT_FIELDS = ("project_id", "domain_id", "service_id", "region_id", "resource_name",
                 "resource_limit", "description")


def _number(item: dict[str, Any], key: str, required: bool) -> None:
    value = item.get(key)
    if value is None and not required:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= MAX_LIMIT:
        raise BadRequestError(f"Invalid input for field '{key}': {value!r} is not an integer "
                              f"from -1 to {MAX_LIMIT}.")


def _check(item: Any, fields: tuple[str, ...], number: str, creating: bool) -> Row:
    if not isinstance(item, dict) or (not creating and not item):
        raise BadRequestError("Invalid input: each limit must be a non-empty object.")
    unknown = sorted(set(item) - set(fields) - {"id", "links"})
    if unknown:
        raise BadRequestError(f"Invalid input for field 'limit': Additional properties are "
                              f"not allowed ('{unknown[0]}' was unexpected)")
    for key in ("service_id", "resource_name") if creating else ():
        views.text(item, key, required=True, max_len=255)
    for key in ("service_id", "region_id", "resource_name", "project_id", "domain_id"):
        views.text(item, key, max_len=255 if key != "project_id" else 64)
    if item.get("description") is not None:
        views.text(item, "description", max_len=65535, allow_empty=True)
    _number(item, number, creating)
    return {k: item[k] for k in fields if k in item}


def _items(body: Any, key: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > 1000:
        raise BadRequestError(f"Invalid input for field '{key}': must be a list of 1 to 1000 "
                              "objects.")
    return items


class _Base:
    def __init__(self, ctx: IdentityContext) -> None:
        self.ctx = ctx


class RegisteredLimits(_Base):
    """``GET|POST /v3/registered_limits``."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List registered limits (any authenticated caller, as in Keystone)."""
        self.ctx.enforce(req, "identity:list_registered_limits")
        filters = {k: req.get_param(k) for k in ("service_id", "region_id", "resource_name")}
        rows = await run(self.ctx.store.list_registered_limits, **filters)
        resp.media = views.collection("registered_limits",
                                      [registered_limit_view(r, self.ctx.base) for r in rows],
                                      f"{self.ctx.base}/registered_limits")

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Create registered limits (all or none)."""
        self.ctx.enforce(req, "identity:create_registered_limits")
        items = [_check(i, _REG_FIELDS, "default_limit", True)
                 for i in _items(await self.ctx.body(req), "registered_limits")]
        rows = await run(self.ctx.store.create_registered_limits, items)
        resp.status = falcon.HTTP_201
        resp.media = {"registered_limits": [registered_limit_view(r, self.ctx.base)
                                            for r in rows]}


class RegisteredLimit(_Base):
    """``GET|HEAD|PATCH|DELETE /v3/registered_limits/{id}``."""

    async def on_get(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Show a registered limit."""
        self.ctx.enforce(req, "identity:get_registered_limit")
        row = await run(self.ctx.store.get_registered_limit, limit_id)
        resp.media = {"registered_limit": registered_limit_view(row, self.ctx.base)}

    async def on_head(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Check a registered limit."""
        await self.on_get(req, resp, limit_id)
        resp.media = None

    async def on_patch(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Update a registered limit."""
        self.ctx.enforce(req, "identity:update_registered_limit")
        values = _check(views.member(await self.ctx.body(req), "registered_limit"),
                        _REG_FIELDS, "default_limit", False)
        row = await run(self.ctx.store.update_registered_limit, limit_id, values)
        resp.media = {"registered_limit": registered_limit_view(row, self.ctx.base)}

    async def on_delete(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Delete a registered limit."""
        self.ctx.enforce(req, "identity:delete_registered_limit")
        await run(self.ctx.store.delete_registered_limit, limit_id)
        resp.status = falcon.HTTP_204


class Limits(_Base):
    """``GET|POST /v3/limits``."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List limits: all for an admin, the caller's project (or domain) otherwise."""
        self.ctx.enforce(req, "identity:list_limits")
        filters = {k: req.get_param(k) for k in ("service_id", "region_id", "resource_name",
                                                 "project_id", "domain_id")}
        caller = auth_of(req)
        keep: Callable[[Row], bool] = lambda r: True  # noqa: E731
        if not caller.is_admin:
            if caller.project_id is not None:
                filters["project_id"] = caller.project_id
            elif caller.domain_id is not None:
                domain = caller.domain_id
                projects = {p["id"] for p in await run(self.ctx.store.list_projects,
                                                       domain_id=domain)}
                keep = lambda r: r["domain_id"] == domain or r["project_id"] in projects  # noqa: E731
            else:
                keep = lambda r: False  # noqa: E731
        rows = [r for r in await run(self.ctx.store.list_limits, **filters) if keep(r)]
        resp.media = views.collection("limits", [limit_view(r, self.ctx.base) for r in rows],
                                      f"{self.ctx.base}/limits")

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Create project or domain limits (all or none)."""
        self.ctx.enforce(req, "identity:create_limits")
        items = []
        for raw in _items(await self.ctx.body(req), "limits"):
            item = _check(raw, _LIMIT_FIELDS, "resource_limit", True)
            if bool(item.get("project_id")) == bool(item.get("domain_id")):
                raise BadRequestError("Invalid input for field 'limits': each limit names "
                                      "exactly one of project_id or domain_id.")
            items.append(item)
        rows = await run(self.ctx.store.create_limits, items)
        resp.status = falcon.HTTP_201
        resp.media = {"limits": [limit_view(r, self.ctx.base) for r in rows]}


class Limit(_Base):
    """``GET|HEAD|PATCH|DELETE /v3/limits/{id}``."""

    async def _load(self, req: Req, action: str, limit_id: str) -> Row:
        row: Row = await run(self.ctx.store.get_limit, limit_id)
        self.ctx.enforce(req, f"identity:{action}", {"project_id": row["project_id"],
                                                     "domain_id": row["domain_id"]})
        return row

    async def on_get(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Show a limit (an admin, or a member of its project)."""
        row = await self._load(req, "get_limit", limit_id)
        resp.media = {"limit": limit_view(row, self.ctx.base)}

    async def on_head(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Check a limit."""
        await self.on_get(req, resp, limit_id)
        resp.media = None

    async def on_patch(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Update a limit's ``resource_limit`` or ``description``."""
        await self._load(req, "update_limit", limit_id)
        values = _check(views.member(await self.ctx.body(req), "limit"),
                        ("resource_limit", "description"), "resource_limit", False)
        row = await run(self.ctx.store.update_limit, limit_id, values)
        resp.media = {"limit": limit_view(row, self.ctx.base)}

    async def on_delete(self, req: Req, resp: Resp, limit_id: str) -> None:
        """Delete a limit."""
        await self._load(req, "delete_limit", limit_id)
        await run(self.ctx.store.delete_limit, limit_id)
        resp.status = falcon.HTTP_204


class LimitModel(_Base):
    """``GET /v3/limits/model``: the enforcement model (always ``flat``)."""

    async def on_get(self, req: Req, resp: Resp) -> None:
        """Describe the model."""
        self.ctx.enforce(req, "identity:get_limit_model")
        resp.media = {"model": dict(MODEL)}


def add_limit_routes(app: falcon.asgi.App[Any, Any], v3: str, ctx: IdentityContext) -> None:
    """Attach the unified-limits resources under ``v3``."""
    app.add_route(f"{v3}/registered_limits", RegisteredLimits(ctx))
    app.add_route(f"{v3}/registered_limits/{{limit_id}}", RegisteredLimit(ctx))
    app.add_route(f"{v3}/limits", Limits(ctx))
    app.add_route(f"{v3}/limits/model", LimitModel(ctx))
    app.add_route(f"{v3}/limits/{{limit_id}}", Limit(ctx))
