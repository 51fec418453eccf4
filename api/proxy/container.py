"""The account and container controllers."""

from __future__ import annotations

import contextlib
import json
import math
import urllib.parse

from nubis.api.proxy import accountacl, auth, etag_quoter, objver, quotas, verlist, versioning
from nubis.api.proxy.auth import clean_acl
from nubis.api.proxy.backend import Reply, best_status, quorum_size
from nubis.api.proxy.base import (
    POLICY_HEADER,
    account_info,
    check_access,
    client_headers,
    container_info,
    is_owner,
    meta_headers,
    new_timestamp,
)
from nubis.api.proxy.constraints import (
    check_container_name,
    check_listing_limit,
    check_metadata,
)
from nubis.api.proxy.context import ContainerCtx, Ctx, Info, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import http_date
from nubis.common.backend import X_POLICY_DEFAULT as POLICY_DEFAULT_HEADER
from nubis.common.backend import X_POLICY_NAMES as POLICY_NAMES_HEADER

#: Account quota headers only a reseller admin may set or remove.
_QUOTA_HEADERS = ("x-account-meta-quota-bytes", "x-remove-account-meta-quota-bytes",
                  "x-account-meta-quota-count", "x-remove-account-meta-quota-count",
                  "x-account-quota-", "x-remove-account-quota-")
#: Headers only the account's owners see or set (Swift's swift_owner_headers).
_OWNER_HEADERS = ("x-container-read", "x-container-write", "x-container-sync-key",
                  "x-container-sync-to", "x-account-access-control")
_OWNER_META = ("x-container-meta-temp-url-key", "x-account-meta-temp-url-key")
_LISTING_PARAMS = ("prefix", "delimiter", "marker", "end_marker", "limit", "reverse",
                   "format", "path", "states")


def _listing_query(ctx: Ctx, maximum: int) -> dict[str, str]:
    params = {k: v for k, v in ctx.query.items() if k in _LISTING_PARAMS}
    params["limit"] = str(check_listing_limit(params.get("limit"), maximum))
    fmt = params.get("format", "").lower()
    if not fmt:
        accept = ctx.header("accept")
        if "application/json" in accept:
            fmt = "json"
        elif "xml" in accept:
            fmt = "xml"
    if fmt not in ("", "plain", "json", "xml"):
        fmt = "plain"
    params["format"] = fmt or "plain"
    return params


def _content_type(fmt: str) -> str:
    return {"json": "application/json; charset=utf-8",
            "xml": "application/xml; charset=utf-8"}.get(fmt, "text/plain; charset=utf-8")


def _show_headers(ctx: Ctx, reply: Reply) -> dict[str, str]:
    out = client_headers(reply.headers)
    idx = reply.headers.get(POLICY_HEADER) or reply.headers.get("x-storage-policy-index")
    if idx is not None and idx.isdigit():
        out["X-Storage-Policy"] = ctx.state.policy_names.get(int(idx), idx)
    out.pop("X-Storage-Policy-Index", None)
    versioning.show(reply.headers, out)
    verlist.show(reply.headers, out)
    etag_quoter.show(reply.headers, "account" if ctx.container is None else "container", out)
    if ctx.container is None:
        quotas.show_account_quotas(reply.headers, ctx.state.policy_names, out)
        domain = reply.headers.get(auth.PROJECT_DOMAIN_SYSMETA)
        if domain is not None:  # Swift keystoneauth shows it to every caller
            out[auth.PROJECT_DOMAIN_HEADER] = domain
    if ctx.container is None and is_owner(ctx):
        acl = accountacl.shown(reply.headers)
        if acl is not None:
            out["X-Account-Access-Control"] = acl
    elif not is_owner(ctx):
        for k in _OWNER_HEADERS:
            out.pop(k.title(), None)
        for k in [k for k in out if k.lower().startswith(_OWNER_META)]:
            out.pop(k)
    return out


def _check_listing_reply(reply: Reply) -> None:
    """Raise the backend's answer to a bad listing request (400/406/412), else 503."""
    if 200 <= reply.status < 300:
        return
    if reply.status in (400, 406, 412):
        raise HTTPError(reply.status, reply.body.decode("utf-8", "replace").strip())
    raise HTTPError(503)


def _listing_response(ctx: Ctx, reply: Reply, fmt: str) -> Resp:
    headers = _show_headers(ctx, reply)
    headers["Content-Type"] = _content_type(fmt)
    put_ts = reply.headers.get("x-put-timestamp")
    if ctx.container is not None and put_ts:  # Swift: the container's PUT time, ceiled
        with contextlib.suppress(ValueError):
            headers["Last-Modified"] = http_date(math.ceil(float(put_ts)))
    if ctx.method == "HEAD":
        return Resp(204, headers)
    body = reply.body
    if fmt == "plain" and not body:
        return Resp(204, headers)
    return Resp(200, headers, body)


# --- container ---------------------------------------------------------------

#: The ``Allow`` header of a 405 on an account / a container.
ACCOUNT_ALLOW = "GET, HEAD, POST"
CONTAINER_ALLOW = "GET, HEAD, PUT, POST, DELETE"


async def handle_container(ctx: ContainerCtx) -> Resp:
    """Dispatch a container request."""
    check_container_name(ctx.container, ctx.state.limits)
    if ctx.method in ("GET", "HEAD"):
        return await container_get(ctx)
    if ctx.method == "PUT":
        return await container_put(ctx)
    if ctx.method == "POST":
        return await container_post(ctx)
    if ctx.method == "DELETE":
        return await container_delete(ctx)
    raise HTTPError(405, headers={"Allow": CONTAINER_ALLOW})


async def container_get(ctx: ContainerCtx) -> Resp:
    """List a container (GET) or show its metadata (HEAD)."""
    info = await container_info(ctx.state, ctx.account, ctx.container)
    check_access(ctx, info.headers.get("x-container-read"))
    if objver.SYSMETA_CONT in info.headers or "versions" in ctx.query:
        return await _versioned_get(ctx)
    params = _listing_query(ctx, ctx.state.limits.container_listing_limit)
    ring = ctx.state.backend.rings.get("container")
    part, nodes = ring.get_nodes(ctx.account, ctx.container)
    if ctx.method == "HEAD":
        reply = await ctx.state.backend.read(ring, part, nodes, "HEAD",
                                             (ctx.account, ctx.container), {})
    else:
        reply = await ctx.state.backend.read(ring, part, nodes, "GET",
                                             (ctx.account, ctx.container), {},
                                             urllib.parse.urlencode(params))
    if reply.status == 404:
        raise HTTPError(404)
    _check_listing_reply(reply)
    return _listing_response(ctx, reply, params["format"])


async def _versioned_get(ctx: ContainerCtx) -> Resp:
    """List a container that has (or may have) versions; HEAD it with their bytes."""
    params = _listing_query(ctx, ctx.state.limits.container_listing_limit)
    fmt = params["format"]
    versions = "versions" in ctx.query
    if versions and ctx.method == "GET":
        verlist.check_versions_format(ctx)
        fmt = "json"
    params["format"] = "json"
    ring = ctx.state.backend.rings.get("container")
    part, nodes = ring.get_nodes(ctx.account, ctx.container)
    query = urllib.parse.urlencode(params) if ctx.method == "GET" else ""
    reply = await ctx.state.backend.read(ring, part, nodes, ctx.method,
                                         (ctx.account, ctx.container), {}, query)
    if reply.status == 404:
        raise HTTPError(404)
    _check_listing_reply(reply)
    resp = _listing_response(ctx, reply, fmt)
    await verlist.add_bytes(ctx, reply.headers, resp.headers)
    if ctx.method == "HEAD":
        return resp
    items = json.loads(reply.body) if reply.body else []
    vcont = objver.vcont_of(Info(200, reply.headers, 0.0)) or \
        objver.versions_container(ctx.container)
    verlist.rewrite(items, ctx.account, ctx.container, vcont, versions)
    if versions:
        items = await verlist.list_versions(ctx, items, vcont, int(params["limit"]))
    body = verlist.render(items, fmt, ctx.container)
    if fmt == "plain" and not items:
        return Resp(204, resp.headers)
    return Resp(200, resp.headers, body)


def _container_meta(ctx: ContainerCtx) -> dict[str, str]:
    check_metadata(ctx.headers, "container", ctx.state.limits)
    meta = meta_headers(ctx.headers, "container")
    if not is_owner(ctx):  # an account-ACL grantee: Swift drops the owner-only headers
        meta = {k: v for k, v in meta.items() if not k.startswith(_OWNER_META)}
        _drop_owner_headers(ctx)
    for name in ("x-container-read", "x-container-write"):
        if name in ctx.headers:
            meta[name] = clean_acl(ctx.headers[name], name)
        if f"x-remove-{name[2:]}" in ctx.headers:
            meta[name] = ""
    if "x-container-sync-key" in ctx.headers:  # kept and shown to owners (no sync daemon)
        meta["x-container-sync-key"] = ctx.headers["x-container-sync-key"]
    if "x-remove-container-sync-key" in ctx.headers:
        meta["x-container-sync-key"] = ""
    quotas.check_headers(ctx.headers, "container")
    meta.update(versioning.container_headers(ctx.headers))
    meta.update(etag_quoter.sysmeta_headers(ctx.headers, "container"))
    return meta


def _drop_owner_headers(ctx: Ctx) -> None:
    """Forget the owner-only headers a non-owner sent (Swift ignores them too)."""
    for name in _OWNER_HEADERS:
        ctx.headers.pop(name, None)
        ctx.headers.pop(f"x-remove-{name[2:]}", None)


async def _ensure_account(ctx: Ctx) -> None:
    info = await account_info(ctx.state, ctx.account)
    if info.exists:
        return
    if info.status != 404 or not ctx.state.conf.account_autocreate:
        raise HTTPError(404 if info.status == 404 else 503)
    ring = ctx.state.backend.rings.get("account")
    part, nodes = ring.get_nodes(ctx.account)
    ts = new_timestamp()
    extra: dict[str, str] = {}
    domain = auth.domain_to_record(ctx.identity, ctx.account, False, None)
    if domain is not None:
        extra[auth.PROJECT_DOMAIN_SYSMETA] = domain
    replies = await ctx.state.backend.write_all(
        ring, part, nodes, "PUT", (ctx.account,),
        [{"X-Timestamp": ts, "X-Trans-Id": ctx.trans_id, **extra} for _ in nodes])
    if best_status(replies, quorum_size(len(nodes))) >= 300:
        raise HTTPError(503)
    ctx.state.forget_info(ctx.account)


def _policy_header(ctx: ContainerCtx) -> dict[str, str]:
    """Return the backend policy header of a container PUT.

    No ``X-Storage-Policy``: the default for a new container, an existing one
    keeps its policy (Swift's ``X-Backend-Storage-Policy-Default``).
    """
    if not ctx.header("x-storage-policy"):
        return {POLICY_DEFAULT_HEADER: str(ctx.state.policies.default.index)}
    return {POLICY_HEADER: str(_policy_index(ctx))}


def _policy_index(ctx: ContainerCtx) -> int:
    name = ctx.header("x-storage-policy")
    policy = ctx.state.policies.by_name(name)
    if policy is None:
        raise HTTPError(400, f"Invalid X-Storage-Policy {name!r}")
    if policy.is_deprecated:
        raise HTTPError(400, f"Storage Policy {policy.name!r} is deprecated")
    return policy.index


async def _container_write(ctx: ContainerCtx, method: str, extra: dict[str, str]) -> int:
    crings = ctx.state.backend.rings
    ring = crings.get("container")
    part, nodes = ring.get_nodes(ctx.account, ctx.container)
    apart, anodes = crings.get("account").get_nodes(ctx.account)
    ts = new_timestamp()
    headers = []
    for i in range(len(nodes)):
        an = anodes[i % len(anodes)]
        h = {"X-Timestamp": ts, "X-Trans-Id": ctx.trans_id,
             "X-Account-Host": f"{an['ip']}:{an['port']}",
             "X-Account-Partition": str(apart), "X-Account-Device": str(an["device"])}
        h.update(extra)
        headers.append(h)
    replies = await ctx.state.backend.write_all(ring, part, nodes, method,
                                                (ctx.account, ctx.container), headers)
    ctx.state.forget_info(ctx.account, ctx.container)
    ctx.state.forget_info(ctx.account)
    return best_status(replies, quorum_size(len(nodes)))


#: Write container metadata/sysmeta to every replica (the S3 API's bucket configurations).
write_container = _container_write


async def container_put(ctx: ContainerCtx) -> Resp:
    """Create a container (or update its metadata: 202)."""
    check_access(ctx, None)
    meta = _container_meta(ctx)
    policy = _policy_header(ctx)
    await _ensure_account(ctx)
    if objver.CLIENT_ENABLED in ctx.headers:
        meta.update(await verlist.enable(ctx, _container_write))
    status = await _container_write(ctx, "PUT", {**meta, **policy})
    if status == 409:
        raise HTTPError(409, "Conflict: the container exists with another storage policy.")
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(status if status in (201, 202) else 201,
                {"Content-Type": "text/html; charset=UTF-8"})


async def container_post(ctx: ContainerCtx) -> Resp:
    """Update a container's metadata and ACLs."""
    check_access(ctx, None)
    meta = _container_meta(ctx)
    if objver.CLIENT_ENABLED in ctx.headers:
        meta.update(await verlist.enable(ctx, _container_write))
    status = await _container_write(ctx, "POST", meta)
    if status == 404:
        raise HTTPError(404)
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(204, {"Content-Type": "text/html; charset=UTF-8"})


async def container_delete(ctx: ContainerCtx) -> Resp:
    """Delete an empty container."""
    check_access(ctx, None)
    await verlist.before_delete(ctx, _container_write)
    status = await _container_write(ctx, "DELETE", {})
    if status == 409:
        raise HTTPError(409, "Conflict: there was a conflict when trying to complete "
                             "your request (the container is not empty).")
    if status == 404:
        raise HTTPError(404)
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(204, {"Content-Type": "text/html; charset=UTF-8"})


# --- account -----------------------------------------------------------------

async def handle_account(ctx: Ctx) -> Resp:
    """Dispatch an account request."""
    if ctx.method in ("GET", "HEAD"):
        return await account_get(ctx)
    if ctx.method == "POST":
        return await account_post(ctx)
    raise HTTPError(405, headers={"Allow": ACCOUNT_ALLOW})


async def account_get(ctx: Ctx) -> Resp:
    """List an account's containers (GET) or show its totals (HEAD)."""
    check_access(ctx, None)
    params = _listing_query(ctx, ctx.state.limits.account_listing_limit)
    ring = ctx.state.backend.rings.get("account")
    part, nodes = ring.get_nodes(ctx.account)
    names = ",".join(f"{i}:{n}" for i, n in ctx.state.policy_names.items())
    if ctx.method == "HEAD":
        reply = await ctx.state.backend.read(ring, part, nodes, "HEAD", (ctx.account,),
                                             {POLICY_NAMES_HEADER: names})
    else:
        reply = await ctx.state.backend.read(ring, part, nodes, "GET", (ctx.account,),
                                             {POLICY_NAMES_HEADER: names},
                                             urllib.parse.urlencode(params))
    if reply.status == 404 and ctx.state.conf.account_autocreate:
        empty = {"json": b"[]", "xml": b'<?xml version="1.0" encoding="UTF-8"?>\n'
                 b'<account name="' + ctx.account.encode() + b'"></account>'}
        reply = Reply(200, {"x-account-container-count": "0",
                            "x-account-object-count": "0", "x-account-bytes-used": "0"},
                      empty.get(params["format"], b""))
    elif reply.status == 404:
        raise HTTPError(404)
    _check_listing_reply(reply)
    return _listing_response(ctx, reply, params["format"])


async def account_post(ctx: Ctx) -> Resp:
    """Update an account's metadata (including Temp-URL keys and its ACL)."""
    acl = ctx.headers.get(accountacl.HEADER)
    stored_acl = accountacl.clean(acl) if acl is not None else None  # 400 before 403
    check_access(ctx, None)
    if (ctx.identity is None or not ctx.identity.reseller_admin) and any(
            name.startswith(_QUOTA_HEADERS) for name in ctx.headers):
        raise HTTPError(403)  # account quotas are the reseller's (Swift's account_quotas)
    check_metadata(ctx.headers, "account", ctx.state.limits)
    quotas.check_headers(ctx.headers, "account")
    meta = meta_headers(ctx.headers, "account")
    meta.update(quotas.account_quota_headers(ctx))
    meta.update(etag_quoter.sysmeta_headers(ctx.headers, "account"))
    if stored_acl is not None and is_owner(ctx):
        meta[accountacl.SYSMETA] = stored_acl
    info = await account_info(ctx.state, ctx.account)
    domain = auth.domain_to_record(ctx.identity, ctx.account, info.exists,
                                   info.headers.get(auth.PROJECT_DOMAIN_SYSMETA))
    if domain is not None and info.exists:
        meta[auth.PROJECT_DOMAIN_SYSMETA] = domain
    await _ensure_account(ctx)
    ring = ctx.state.backend.rings.get("account")
    part, nodes = ring.get_nodes(ctx.account)
    ts = new_timestamp()
    replies = await ctx.state.backend.write_all(
        ring, part, nodes, "POST", (ctx.account,),
        [{"X-Timestamp": ts, "X-Trans-Id": ctx.trans_id, **meta} for _ in nodes])
    ctx.state.forget_info(ctx.account)
    status = best_status(replies, quorum_size(len(nodes)))
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(204, {"Content-Type": "text/html; charset=UTF-8"})
