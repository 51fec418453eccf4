"""The network API's shared state and request helpers: stores, access, lists, bodies.

Lists follow Neutron: any attribute is a filter (repeat a key for "any of"),
``fields`` picks attributes, ``sort_key``/``sort_dir`` (repeatable) order, and
``limit``/``marker`` (``page_reverse``) page with ``<collection>_links``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import falcon.asgi
from nubis.api.network.config import NetworkApiConfig
from nubis.api.network.errors import NeutronError, bad_request, over_quota, policy_denied
from nubis.api.network.l3store import L3Store
from nubis.api.network.sgstore import SecurityGroupStore
from nubis.api.network.store import NetworkStore
from nubis.api.shared.auth import AuthContext

#: Query keys that are not attribute filters.
RESERVED = frozenset({"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse",
                      "tags", "tags-any", "not-tags", "not-tags-any"})


def auth(req: falcon.asgi.Request) -> AuthContext:
    """Return the caller (the auth middleware has verified the token)."""
    ctx: AuthContext = req.context.auth
    return ctx


def project_of(req: falcon.asgi.Request) -> str:
    """Return the caller's project (the network API needs a project-scoped token)."""
    ctx = auth(req)
    if not ctx.project_id:
        raise policy_denied("project-scoped token required")
    return ctx.project_id


def body_of(doc: Any, key: str) -> dict[str, Any]:
    """Return ``doc[key]`` of a JSON body as a dict, or Neutron's 400."""
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise NeutronError(400, "HTTPBadRequest",
                           f"Resource body required: the request body must be "
                           f'{{"{key}": {{...}}}}')
    body: dict[str, Any] = doc[key]
    return body


def only(body: Mapping[str, Any], allowed: Sequence[str], resource: str) -> None:
    """Refuse attributes a resource does not have (Neutron's 400)."""
    for key in body:
        if key not in allowed:
            raise NeutronError(400, "HTTPBadRequest",
                               f"Unrecognized attribute(s) '{key}'")


def update_body(doc: Any, key: str, updatable: Sequence[str]) -> dict[str, Any]:
    """Return an update's ``doc[key]``, refusing read-only attributes (Neutron's 400)."""
    body = body_of(doc, key)
    for name in body:
        if name not in updatable:
            raise bad_request(key, f"Cannot update read-only attribute {name}")
    return body


def text(body: Mapping[str, Any], key: str, default: str = "", limit: int = 255) -> str:
    """Return a string attribute (at most ``limit`` characters)."""
    value = body.get(key, default)
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > limit:
        raise bad_request(key, f"'{value}' is not a valid string of at most {limit} "
                          "characters")
    return value


def flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    """Return a boolean attribute (Neutron also accepts "true"/"false" strings)."""
    value = body.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_request(key, f"'{value}' cannot be converted to boolean")


def owned_where(req: falcon.asgi.Request, column: Any) -> list[Any]:
    """Return the clauses limiting a listing to the caller's rows (none for admins)."""
    return [] if auth(req).is_admin else [column == project_of(req)]


class NetworkService:
    """Everything the handlers share (one per ``nubis api`` process)."""

    def __init__(self, cfg: NetworkApiConfig, store: NetworkStore, base_url: str) -> None:
        self.cfg = cfg
        self.store = store
        self.groups = SecurityGroupStore(store)
        self.l3 = L3Store(store)
        #: ``http://host:port/network`` (links are under ``/v2.0``).
        self.root_url = base_url
        self.base_url = f"{base_url}/v2.0"

    def require_admin(self, req: falcon.asgi.Request, action: str) -> None:
        """Raise Neutron's policy 403 unless the caller is an admin."""
        if not auth(req).is_admin:
            raise policy_denied(f"rule:{action}")

    def owner_for_create(self, req: falcon.asgi.Request, body: Mapping[str, Any],
                         action: str) -> str:
        """Return the project a new resource belongs to (admins may name another)."""
        own = project_of(req)
        wanted = body.get("project_id", body.get("tenant_id", own))
        if not isinstance(wanted, str) or not wanted:
            raise bad_request("project_id", f"'{wanted}' is not a valid project id")
        if wanted != own and not auth(req).is_admin:
            raise policy_denied(f"rule:{action}:project_id")
        return wanted

    def check_quota(self, project_id: str, resource: str, table: Any, adding: int = 1) -> None:
        """Raise OverQuota when ``adding`` more would exceed the project's limit."""
        limit = self.quota_limits(project_id)[resource]
        if limit >= 0 and self.store.count(table, project_id) + adding > limit:
            raise over_quota(resource)

    def quota_limits(self, project_id: str) -> dict[str, int]:
        """Return the effective quotas of a project."""
        c = self.cfg
        out = {"network": c.network, "subnet": c.subnet, "port": c.port,
               "security_group": c.security_group,
               "security_group_rule": c.security_group_rule,
               "router": 10, "floatingip": 50, "rbac_policy": 10, "subnetpool": -1}
        out.update(self.store.quotas(project_id))
        return out

    # --- lists -------------------------------------------------------------------------

    def listing(self, req: falcon.asgi.Request, collection: str,
                items: list[dict[str, Any]]) -> dict[str, Any]:
        """Filter, sort, page and trim ``items`` as Neutron's list calls do."""
        params = _params(req)
        items = [i for i in items if matches(i, params)]
        items = sort_items(items, params.get("sort_key", []), params.get("sort_dir", []))
        doc: dict[str, Any] = {}
        limit = _limit(params.get("limit"), self.cfg.max_limit)
        marker = params["marker"][0] if params.get("marker") else None
        if marker is not None:
            ids = [i["id"] for i in items]
            if marker not in ids:
                raise NeutronError(404, "HTTPNotFound", f"Marker {marker} could not be found.")
            items = items[ids.index(marker) + 1:]
        if limit is not None and len(items) > limit:
            items = items[:limit]
            query = [(k, v) for k, vs in params.items() if k != "marker" for v in vs]
            query.append(("marker", items[-1]["id"]))
            doc[f"{collection}_links"] = [{
                "rel": "next",
                "href": f"{self.base_url}/{collection}?{urllib.parse.urlencode(query)}"}]
        fields = params.get("fields")
        if fields:
            items = [{k: v for k, v in i.items() if k in fields} for i in items]
        doc[collection] = items
        return doc

    def one(self, req: falcon.asgi.Request, key: str, item: dict[str, Any]) -> dict[str, Any]:
        """Render one item, trimmed to ``fields`` when asked."""
        fields = _params(req).get("fields")
        if fields:
            item = {k: v for k, v in item.items() if k in fields}
        return {key: item}


def _params(req: falcon.asgi.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in req.params.items():
        values = value if isinstance(value, list) else [value]
        out.setdefault("project_id" if key == "tenant_id" else key, []).extend(values)
    return out


def _limit(raw: list[str] | None, max_limit: int) -> int | None:
    if not raw:
        return None
    try:
        value = int(raw[0])
    except ValueError:
        raise bad_request("limit", f"'{raw[0]}' is not an integer") from None
    if value < 0:
        raise bad_request("limit", f"'{raw[0]}' should be non-negative")
    return min(value, max_limit) if value else None


def matches(item: Mapping[str, Any], params: Mapping[str, list[str]]) -> bool:
    """Return whether an item passes every attribute filter of the query."""
    for key, wanted in params.items():
        if key in RESERVED or key not in item:
            continue
        value = item[key]
        if key == "fixed_ips":
            if not all(_fixed_ip_match(value, w) for w in wanted):
                return False
            continue
        if isinstance(value, list):
            if not any(str(v) in wanted for v in value):
                return False
            continue
        if not any(_same(value, w) for w in wanted):
            return False
    return True


def _same(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return wanted.lower() in (("true", "1") if value else ("false", "0"))
    if value is None:
        return wanted in ("", "None", "null")
    return str(value) == wanted


def _fixed_ip_match(fixed: list[dict[str, str]], wanted: str) -> bool:
    key, _, val = wanted.partition("=")
    return any(ip.get(key) == val for ip in fixed)


def sort_items(items: list[dict[str, Any]], keys: Sequence[str],
               dirs: Sequence[str]) -> list[dict[str, Any]]:
    """Sort by ``keys`` (stable, the last key first), ``id`` breaking ties."""
    if len(dirs) not in (0, len(keys)):
        raise bad_request("sort_dir", "The number of sort_keys and sort_dirs must be same")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise bad_request("sort_dir", f"'{d}' is not a valid sort direction")
    order: list[tuple[str, bool]] = [(k, (dirs[i] if dirs else "asc") == "desc")
                                     for i, k in enumerate(keys)]
    out = sorted(items, key=lambda i: str(i.get("id")))
    for key, desc in reversed(order):
        if items and key not in items[0]:
            raise bad_request("sort_key", f"'{key}' is an invalid attribute for sort_keys")
        out.sort(key=_sort_value(key), reverse=desc)
    return out


def _sort_value(key: str) -> Callable[[dict[str, Any]], tuple[int, str]]:
    def value(item: dict[str, Any]) -> tuple[int, str]:
        v = item.get(key)
        return (0, "") if v is None else (1, str(v))
    return value


class Handler:
    """A Falcon resource of the network API, holding the shared service."""

    def __init__(self, svc: NetworkService) -> None:
        self.svc = svc
