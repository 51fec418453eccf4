"""Helpers shared by the controllers: info lookups, auth checks, header filters."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from nubis.api.proxy import accountacl, auth
from nubis.api.proxy.backend import Reply, normalize_timestamp
from nubis.api.proxy.context import Ctx, Info, ObjectCtx, ProxyState
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import http_date
from nubis.common import backend as hdr

POLICY_HEADER = hdr.X_POLICY_INDEX
_BACKEND_TIMESTAMP = hdr.X_BACKEND_TIMESTAMP.lower()

#: Backend headers never shown to clients.
_HIDDEN_PREFIXES = ("x-backend-", "x-object-sysmeta-", "x-container-sysmeta-",
                    "x-account-sysmeta-")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date",
               "server"}


async def account_info(state: ProxyState, account: str) -> Info:
    """Return (cached) HEAD facts about an account."""
    key = (account,)
    info = state.cached_info(key)
    if info is not None:
        return info

    async def head() -> Reply:
        ring = state.backend.rings.get("account")
        part, nodes = ring.get_nodes(account)
        names = ",".join(f"{i}:{n}" for i, n in state.policy_names.items())
        return await state.backend.read(ring, part, nodes, "HEAD", (account,),
                                        {hdr.X_POLICY_NAMES: names})  # per-policy usage

    return await state.info(key, head)


async def container_info(state: ProxyState, account: str, container: str) -> Info:
    """Return (cached) HEAD facts about a container (status 404 when missing)."""
    key = (account, container)
    info = state.cached_info(key)
    if info is not None:
        return info

    async def head() -> Reply:
        ring = state.backend.rings.get("container")
        part, nodes = ring.get_nodes(account, container)
        headers = {hdr.X_ALLOW_RESERVED: "true"} if container[:1] == "\x00" else {}
        reply = await state.backend.read(ring, part, nodes, "HEAD", (account, container),
                                         headers)
        return Reply(200, reply.headers) if reply.status == 204 else reply

    return await state.info(key, head)


def policy_of(info: Info) -> int:
    """Return a container's storage policy index."""
    try:
        return int(info.headers.get(POLICY_HEADER, info.headers.get(
            "x-storage-policy-index", "0")))
    except ValueError:
        return 0


def check_access(ctx: Ctx, acl: str | None) -> None:
    """Apply tempauth's rules for this request (401/403 on denial)."""
    check_access_to(ctx, acl, ctx.method, ctx.container, ctx.obj)


def check_access_to(ctx: Ctx, acl: str | None, method: str, container: str | None,
                    obj: str | None) -> None:
    """Apply tempauth's rules to another access by the same caller (a DLO's listing)."""
    if ctx.tempurl is not None:
        return
    auth.authorize(ctx.identity, method, ctx.account, container, obj, acl,
                   ctx.header("referer") or None, ctx.account_levels.get(ctx.account),
                   ctx.account in ctx.acl_names)


async def load_account_level(ctx: Ctx, account: str) -> None:
    """Note the caller's account-ACL level on ``account`` (for the checks above).

    Only an authenticated caller who does not own the account costs a
    (cached) account lookup. PERF: owners skip it (bench swift 4 KiB).
    """
    ident = ctx.identity
    if (ident is None or ident.reseller_admin or account in ident.owned_accounts
            or account in ctx.account_levels):
        return
    info = await account_info(ctx.state, account)
    acl = accountacl.from_headers(info.headers)
    ctx.account_levels[account] = acl.level_of(ident) if acl is not None else None
    if ident.name_groups and auth.names_allowed(
            ident, account, info.exists, info.headers.get(auth.PROJECT_DOMAIN_SYSMETA)):
        ctx.acl_names.add(account)


def is_owner(ctx: Ctx) -> bool:
    """Return whether the caller controls the whole account (Swift's swift_owner)."""
    ident = ctx.identity
    return ident is not None and (ident.reseller_admin or ctx.account in ident.owned_accounts
                                  or ctx.account_levels.get(ctx.account) == auth.ADMIN)


def client_headers(backend: Mapping[str, str]) -> dict[str, str]:
    """Return backend headers safe and useful to show a client."""
    out: dict[str, str] = {}
    for k, v in backend.items():
        if k in _HOP_BY_HOP or k.startswith(_HIDDEN_PREFIXES):
            continue
        out[_title(k)] = v
    return out


def show_sysmeta(ctx: ObjectCtx, backend: Mapping[str, str], out: dict[str, str]) -> None:
    """Add to ``out`` the stored sysmeta an internal read asked to see (lower-case names).

    See ``ObjectCtx.show_sysmeta``; a client's own request never sets it.
    """
    prefix = ctx.show_sysmeta
    if prefix:
        for k, v in backend.items():
            if k.startswith(prefix):
                out[k] = v


@functools.lru_cache(maxsize=4096)
def _title(name: str) -> str:
    # PERF: cached; called for every backend header of every response (bench swift GET).
    return "-".join(p.capitalize() for p in name.split("-")) if name != "etag" else "Etag"


def timestamp_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return Last-Modified derived from X-Timestamp, when present."""
    lm = last_modified(headers)
    return {"Last-Modified": http_date(lm)} if lm else {}


def last_modified(headers: Mapping[str, str]) -> float:
    """Return an object's modification time (epoch seconds, rounded up like Swift)."""
    ts = headers.get("x-timestamp") or headers.get(_BACKEND_TIMESTAMP) or "0"
    try:
        value = float(ts.split("_", 1)[0])
    except ValueError:
        return 0.0
    return float(int(value) + (1 if value % 1 else 0))


def new_timestamp() -> str:
    """Return a fresh X-Timestamp."""
    return normalize_timestamp()


def meta_headers(headers: Mapping[str, str], target: str) -> dict[str, str]:
    """Return the ``X-<target>-Meta-*`` (and removal) headers of a request."""
    prefix = f"x-{target}-meta-"
    rprefix = f"x-remove-{target}-meta-"
    out: dict[str, str] = {}
    for k, v in headers.items():
        if k.startswith(prefix):
            out[k] = v
        elif k.startswith(rprefix):
            out[prefix + k[len(rprefix):]] = ""
    return out


def require_found(info: Info, what: str = "") -> None:
    """Raise 404 (or 503) when an account/container lookup failed."""
    if info.status == 404:
        raise HTTPError(404, what or None)
    if not info.exists:
        raise HTTPError(503)
