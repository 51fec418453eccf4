"""Generic Keystone collections: list/create/show/update/delete for each entity kind.

Domains, projects, users, groups, roles, regions, services, endpoints and
credentials all follow the same pattern (``GET|POST /v3/<things>``,
``GET|HEAD|PATCH|DELETE /v3/<things>/{id}``); an :class:`EntitySpec` names the
store calls, the renderer, the writable fields and the list filters of one kind.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import falcon
import falcon.asgi
from nubis.api.identity import schema, views
from nubis.api.identity.authn import Authenticator
from nubis.api.identity.creds import IdentityStore
from nubis.api.identity.store import Row
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import BadRequestError, PayloadTooLargeError, UnauthorizedError
from nubis.api.shared.policy import Policy
from nubis.common.jsonbody import JSONBodyError, check_document

Req = falcon.asgi.Request
Resp = falcon.asgi.Response


@dataclass
class IdentityContext:
    """Everything the identity resources share."""

    store: IdentityStore
    policy: Policy
    authn: Authenticator
    base: str
    max_body: int

    async def body(self, req: Req) -> Any:
        """Return the parsed JSON body (400 if absent/invalid, 413 if too large)."""
        if req.content_length is not None and req.content_length > self.max_body:
            raise PayloadTooLargeError("Request is too large.")
        raw = await req.stream.read(self.max_body + 1)
        if len(raw) > self.max_body:
            raise PayloadTooLargeError("Request is too large.")
        if not raw:
            raise BadRequestError("Expecting to find a JSON request body.")
        try:
            # Decode strictly ourselves: json.loads(bytes) would let invalid
            # UTF-8 through as lone surrogates ("surrogatepass").
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise BadRequestError("Malformed JSON in request body.") from None
        check_json_text(doc)
        return doc

    def enforce(self, req: Req, action: str, target: Mapping[str, Any] | None = None) -> None:
        """Apply the identity policy for ``action``."""
        self.policy.enforce(action, auth_of(req), target)

    def allowed(self, req: Req, action: str, target: Mapping[str, Any] | None = None) -> bool:
        """Return whether the caller may do ``action``."""
        return self.policy.allowed(action, auth_of(req), target)


def check_json_text(doc: Any) -> None:
    """Raise BadRequestError if ``doc`` nests too deeply or holds non-UTF-8 strings.

    A JSON escape of a lone surrogate decodes to text that neither the database
    nor the response encoder can store, so it is rejected here, once for every
    identity request body (the rules live in :mod:`nubis.common.jsonbody`), as is a
    NUL character, which PostgreSQL text cannot hold.
    """
    try:
        check_document(doc)
    except JSONBodyError as exc:
        raise BadRequestError(f"{exc}.") from None
    if _has_nul(doc):
        raise BadRequestError("Invalid input: strings cannot contain NUL characters.")


def _has_nul(doc: Any) -> bool:
    """Tell whether any string (key or value) in ``doc`` holds a NUL character.

    PostgreSQL text cannot hold one, so the same body is refused on every backend.
    """
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and "\x00" in value:
            return True
    return False


def auth_of(req: Req) -> AuthContext:
    """Return the verified caller (401 if the middleware found none)."""
    ctx: AuthContext | None = req.context.get("auth")
    if ctx is None:
        raise UnauthorizedError()
    return ctx


def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking store call in a worker thread (awaitable)."""
    return asyncio.to_thread(fn, *args, **kwargs)


#: Field kinds used by :class:`EntitySpec`: how to check a client-supplied value.
FieldKind = str  # "str" | "text" | "bool" | "list" | "id"


@dataclass(frozen=True)
class EntitySpec:
    """How one entity kind maps onto the store and the wire."""

    member: str
    collection: str
    action: str
    create: Callable[[Row], Row]
    get: Callable[[str], Row]
    list: Callable[..., list[Row]]
    update: Callable[[str, Row], Row]
    delete: Callable[[str], None]
    render: Callable[[Row, str], dict[str, Any]]
    fields: Mapping[str, FieldKind]
    required: tuple[str, ...] = ("name",)
    filters: tuple[str, ...] = ("name",)
    allow_extra: bool = False
    keep_id: bool = False
    defaults: Callable[[Req, Row], Row] | None = None
    list_scope: Callable[[Req, dict[str, Any]], None] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Longest ``name`` (Keystone: 64 for projects and domains, 255 otherwise).
    name_max: int = 255
    #: Adds query-driven members to a shown entity (project hierarchy).
    decorate: Callable[[Req, Row, dict[str, Any]], None] | None = None


def check_fields(spec: EntitySpec, obj: dict[str, Any], creating: bool) -> Row:
    """Validate a create/update body against ``spec``; return the values to store."""
    obj = {spec.aliases.get(k, k): v for k, v in obj.items()}
    values: Row = {}
    for name in spec.required if creating else ():
        if obj.get(name) is None:
            raise BadRequestError(f"Invalid input for field '{name}': '{name}' is a required "
                             "property.")
    for name, value in obj.items():
        if name in ("id", "links") and not (name == "id" and spec.keep_id):
            continue
        kind = spec.fields.get(name)
        if kind is None:
            if not spec.allow_extra:
                raise BadRequestError(f"Invalid input for field '{spec.member}': Additional "
                                 f"properties are not allowed ('{name}' was unexpected)")
            values[name] = value
        elif kind == "any":  # options: an object, as Keystone's schema says
            if value is not None and not isinstance(value, dict):
                raise BadRequestError(f"Invalid input for field '{name}': {value!r} is not of "
                                      "type 'object'.")
            values[name] = value or {}
        elif kind == "bool":
            values[name] = views.flag(obj, name)
        elif kind == "list":
            if not isinstance(value, list):
                raise BadRequestError(f"Invalid input for field '{name}': must be a list.")
            if name == "tags":
                check_tags(value)
            values[name] = value
        elif value is None and kind == "text":
            values[name] = ""
        elif value is None and kind == "id":
            values[name] = None
        else:
            limit = (65535 if kind == "text" else _id_limit(name) if kind == "id"
                     else spec.name_max if name == "name" else 255)
            values[name] = views.text(obj, name, max_len=limit, allow_empty=kind == "text")
    return values


def _id_limit(name: str) -> int:
    """Return the longest value of reference field ``name`` (its column's width).

    Entity ids are at most 64 characters as in Keystone's schema (PostgreSQL
    enforces the column width SQLite ignores); region ids are free-form names.
    """
    return schema.NAME if "region" in name else schema.ID


#: Keystone's limits on project/domain tags.
MAX_TAGS = 80
MAX_TAG_LENGTH = 255


def check_tags(tags: list[Any]) -> None:
    """Raise BadRequestError unless ``tags`` is a list of Keystone-valid tag strings."""
    if len(tags) > MAX_TAGS:
        raise BadRequestError(f"Invalid input for field 'tags': at most {MAX_TAGS} tags.")
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= MAX_TAG_LENGTH or \
                "/" in tag or "," in tag:
            raise BadRequestError(f"Invalid input for field 'tags': {tag!r} is not a valid tag "
                                  f"(a string of 1 to {MAX_TAG_LENGTH} characters without "
                                  "'/' or ',').")


def list_filters(req: Req, spec: EntitySpec) -> dict[str, Any]:
    """Turn the query string into exact column filters (unknown ones are ignored)."""
    out: dict[str, Any] = {}
    for name in spec.filters:
        value = req.get_param(name)
        if value is None:
            continue
        out[name] = views.query_true(value) if spec.fields.get(name) == "bool" else value
    return out


#: Keystone's inexact filter suffixes (``name__icontains=web``); ``i`` = case-insensitive.
COMPARATORS = ("contains", "startswith", "endswith")


def inexact_filters(req: Req, spec: EntitySpec) -> list[tuple[str, str, str, bool]]:
    """Return (attribute, comparator, value, case_sensitive) for ``attr__op=value`` params."""
    out = []
    for key, value in req.params.items():
        base, sep, op = key.partition("__")
        if not sep or base not in spec.filters or not isinstance(value, str):
            continue
        sensitive = not op.startswith("i")
        op = op if sensitive else op[1:]
        if op in COMPARATORS:
            out.append((base, op, value, sensitive))
    return out


def apply_inexact(rows: list[Row], filters: list[tuple[str, str, str, bool]]) -> list[Row]:
    """Keep the rows whose string attributes pass every inexact filter."""
    for attr, op, value, sensitive in filters:
        want = value if sensitive else value.lower()

        def keep(row: Row, attr: str = attr, op: str = op, want: str = want,
                 sensitive: bool = sensitive) -> bool:
            have = row.get(attr)
            if not isinstance(have, str):
                return False
            have = have if sensitive else have.lower()
            return bool(getattr(have, op if op != "contains" else "__contains__")(want))

        rows = [r for r in rows if keep(r)]
    return rows


def paginate(req: Req, rows: list[Row], list_limit: int,
             self_url: str) -> tuple[list[Row], bool, str | None]:
    """Apply ``marker``/``limit`` and the deployment's ``list_limit``.

    Returns the page, whether ``list_limit`` truncated it (Keystone's
    ``"truncated": true``) and the ``next`` link when the client paginates.
    """
    marker = req.get_param("marker")
    if marker is not None:
        ids = [r.get("id") for r in rows]
        if marker not in ids:
            raise BadRequestError(f"Invalid input for field 'marker': no entity {marker!r} "
                                  "in this list.")
        rows = rows[ids.index(marker) + 1:]
    raw = req.get_param("limit")
    limit: int | None = None
    if raw is not None:
        if not raw.isdigit() or int(raw) < 1:
            raise BadRequestError("Invalid input for field 'limit': must be a positive "
                                  "integer.")
        limit = int(raw)
    if limit is not None and (not list_limit or limit <= list_limit):
        page = rows[:limit]
        more = len(rows) > limit and page
        nxt = _with_query(self_url, req, marker=str(page[-1]["id"])) if more else None
        return page, False, nxt
    if list_limit and len(rows) > list_limit:
        return rows[:list_limit], True, None
    return rows, False, None


def _with_query(self_url: str, req: Req, **params: str) -> str:
    query = {k: v for k, v in req.params.items() if isinstance(v, str)}
    query.update(params)
    return f"{self_url}?{urlencode(query)}"


class Collection:
    """``GET`` (list with filters) and ``POST`` (create) on ``/v3/<things>``."""

    def __init__(self, ctx: IdentityContext, spec: EntitySpec) -> None:
        self.ctx = ctx
        self.spec = spec

    async def on_get(self, req: Req, resp: Resp) -> None:
        """List entities (exact and ``__contains``-style filters, ``marker``/``limit``)."""
        spec = self.spec
        filters = list_filters(req, spec)
        if spec.list_scope is not None:
            spec.list_scope(req, filters)
        self.ctx.enforce(req, f"identity:list_{spec.action}s", filters)
        rows = apply_inexact(await run(spec.list, **filters), inexact_filters(req, spec))
        url = f"{self.ctx.base}/{spec.collection}"
        page, truncated, nxt = paginate(req, rows, self.ctx.store.config.list_limit, url)
        resp.media = views.collection(
            spec.collection, [spec.render(r, self.ctx.base) for r in page], url,
            truncated=truncated, next_url=nxt)

    async def on_head(self, req: Req, resp: Resp) -> None:
        """List entities, headers only (Keystone answers HEAD on collections)."""
        await self.on_get(req, resp)
        resp.media = None
        resp.status = falcon.HTTP_200

    async def on_post(self, req: Req, resp: Resp) -> None:
        """Create an entity."""
        spec = self.spec
        values = check_fields(spec, views.member(await self.ctx.body(req), spec.member), True)
        if spec.defaults is not None:
            values = spec.defaults(req, values)
        self.ctx.enforce(req, f"identity:create_{spec.action}", values)
        row = await run(spec.create, values)
        resp.status = falcon.HTTP_201
        resp.media = {spec.member: spec.render(row, self.ctx.base)}


class Item:
    """``GET|HEAD|PATCH|DELETE`` on ``/v3/<things>/{id}``."""

    def __init__(self, ctx: IdentityContext, spec: EntitySpec) -> None:
        self.ctx = ctx
        self.spec = spec

    async def _load(self, req: Req, action: str, ident: str) -> Row:
        row: Row = await run(self.spec.get, ident)
        self.ctx.enforce(req, f"identity:{action}_{self.spec.action}", row)
        return row

    async def on_get(self, req: Req, resp: Resp, **params: str) -> None:
        """Show an entity."""
        row = await self._load(req, "get", _ident(params))
        out = self.spec.render(row, self.ctx.base)
        if self.spec.decorate is not None:
            await run(self.spec.decorate, req, row, out)
        resp.media = {self.spec.member: out}

    async def on_head(self, req: Req, resp: Resp, **params: str) -> None:
        """Check an entity exists."""
        await self._load(req, "get", _ident(params))
        resp.status = falcon.HTTP_200

    async def on_patch(self, req: Req, resp: Resp, **params: str) -> None:
        """Update an entity."""
        spec, ident = self.spec, _ident(params)
        values = check_fields(spec, views.member(await self.ctx.body(req), spec.member), False)
        await self._load(req, "update", ident)
        row = await run(spec.update, ident, values)
        resp.media = {spec.member: spec.render(row, self.ctx.base)}

    async def on_delete(self, req: Req, resp: Resp, **params: str) -> None:
        """Delete an entity."""
        ident = _ident(params)
        await self._load(req, "delete", ident)
        await run(self.spec.delete, ident)
        resp.status = falcon.HTTP_204


def _ident(params: dict[str, str]) -> str:
    """Return the single URI field (named ``<kind>_id`` by the route)."""
    return next(iter(params.values()))


def _credential_owner(req: Req, values: Row) -> Row:
    values.setdefault("user_id", auth_of(req).user_id)
    return values


def _own_credentials(req: Req, filters: dict[str, Any]) -> None:
    ctx = auth_of(req)
    if not ctx.is_admin:
        filters.setdefault("user_id", ctx.user_id)


def _list_projects(store: IdentityStore) -> Callable[..., list[Row]]:
    def list_projects(**filters: Any) -> list[Row]:
        parent = filters.get("parent_id")
        if filters.pop("is_domain", False):
            return []
        if parent is not None and store._find(schema.domains, id=parent) is not None:
            filters["parent_id"] = None
            filters["domain_id"] = parent
            rows = store.list_projects(**filters)
            return [r for r in rows if r["parent_id"] is None]
        return store.list_projects(**filters)
    return list_projects


def _hierarchy(store: IdentityStore) -> Callable[[Req, Row, dict[str, Any]], None]:
    """Answer ``GET /v3/projects/{id}?subtree_as_list&parents_as_list`` (and ``_as_ids``)."""
    def decorate(req: Req, row: Row, out: dict[str, Any]) -> None:
        base = out["links"]["self"].rsplit("/projects/", 1)[0]
        if _flag(req, "parents_as_list") or _flag(req, "parents_as_ids"):
            parents = store.project_parents(row["id"])
            if _flag(req, "parents_as_list"):
                out["parents"] = [{"project": views.project(p, base)} for p in parents]
            else:
                ids: dict[str, Any] | None = None
                for p in reversed(parents):
                    ids = {p["id"]: ids}
                out["parents"] = ids
        if _flag(req, "subtree_as_list") or _flag(req, "subtree_as_ids"):
            subtree = store.project_subtree(row["id"])
            if _flag(req, "subtree_as_list"):
                out["subtree"] = [{"project": views.project(p, base)} for p in subtree]
            else:
                out["subtree"] = _nest(row["id"], subtree)
    return decorate


def _flag(req: Req, name: str) -> bool:
    return name in req.params and views.query_true(req.get_param(name) or "true")


def _nest(root: str, subtree: list[Row]) -> dict[str, Any] | None:
    children: dict[str, list[str]] = {}
    for p in subtree:
        children.setdefault(p["parent_id"], []).append(p["id"])

    def build(pid: str) -> dict[str, Any] | None:
        kids = children.get(pid)
        return {k: build(k) for k in kids} if kids else None
    return build(root)


def entity_specs(store: IdentityStore) -> list[EntitySpec]:
    """Return the spec of every generic collection."""
    txt = "text"
    return [
        EntitySpec("domain", "domains", "domain", store.create_domain, store.get_domain,
                   store.list_domains, store.update_domain, store.delete_domain, views.domain,
                   {"name": "str", "description": txt, "enabled": "bool", "tags": "list",
                    "options": "any"}, filters=("name", "enabled"), allow_extra=True,
                   name_max=64),
        EntitySpec("project", "projects", "project", store.create_project, store.get_project,
                   _list_projects(store), store.update_project, store.delete_project,
                   views.project,
                   {"name": "str", "description": txt, "enabled": "bool", "domain_id": "id",
                    "parent_id": "id", "tags": "list", "is_domain": "bool", "options": "any"},
                   filters=("name", "domain_id", "parent_id", "enabled", "is_domain"),
                   allow_extra=True, name_max=64, decorate=_hierarchy(store)),
        EntitySpec("user", "users", "user", store.create_user, store.get_user,
                   store.list_users, store.update_user, store.delete_user, views.user,
                   {"name": "str", "domain_id": "id", "password": "str", "enabled": "bool",
                    "default_project_id": "id", "description": txt, "email": txt,
                    "options": "any"},
                   filters=("name", "domain_id", "enabled"), allow_extra=True),
        EntitySpec("group", "groups", "group", store.create_group, store.get_group,
                   store.list_groups, store.update_group, store.delete_group, views.group,
                   {"name": "str", "domain_id": "id", "description": txt},
                   filters=("name", "domain_id"), allow_extra=True),
        EntitySpec("role", "roles", "role", store.create_role, store.get_role,
                   store.list_roles, store.update_role, store.delete_role, views.role,
                   {"name": "str", "domain_id": "id", "description": txt, "options": "any"},
                   filters=("name", "domain_id")),
        EntitySpec("region", "regions", "region", store.create_region, store.get_region,
                   store.list_regions, store.update_region, store.delete_region, views.region,
                   {"id": "str", "description": txt, "parent_region_id": "id"},
                   required=(), filters=("parent_region_id",), keep_id=True),
        EntitySpec("service", "services", "service", store.create_service, store.get_service,
                   store.list_services, store.update_service, store.delete_service,
                   views.service,
                   {"type": "str", "name": "str", "description": txt, "enabled": "bool"},
                   required=("type",), filters=("type", "name"), allow_extra=True),
        EntitySpec("endpoint", "endpoints", "endpoint", store.create_endpoint,
                   store.get_endpoint, store.list_endpoints, store.update_endpoint,
                   store.delete_endpoint, views.endpoint,
                   {"service_id": "id", "interface": "str", "url": "str", "region_id": "id",
                    "enabled": "bool"},
                   required=("service_id", "interface", "url"),
                   filters=("interface", "service_id", "region_id"),
                   aliases={"region": "region_id"}),
        EntitySpec("credential", "credentials", "credential", store.create_credential,
                   store.get_credential, store.list_credentials, store.update_credential,
                   store.delete_credential, views.credential,
                   {"user_id": "id", "project_id": "id", "type": "str", "blob": "text"},
                   required=("type", "blob"), filters=("user_id", "type"),
                   defaults=_credential_owner, list_scope=_own_credentials),
    ]
