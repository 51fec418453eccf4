"""The copy middleware: ``COPY`` and ``PUT`` with ``X-Copy-From``, as in Swift.

A copy becomes a PUT of the destination whose body is a GET of the source made
as the caller, so both paths' permissions (owner, reseller admin, operator
roles, container ACLs) apply; ``Destination-Account`` / ``X-Copy-From-Account``
copy across accounts. Every other object request passes to
:func:`nubis.api.proxy.obj.handle`.
"""

from __future__ import annotations

import urllib.parse

from nubis.api.proxy import largeobj, obj, objver, quotas, symlink, versioning
from nubis.api.proxy.base import check_access, load_account_level, require_found
from nubis.api.proxy.constraints import (
    check_account_header,
    check_container_name,
    check_metadata,
    check_object_manifest,
    check_object_name,
    check_path_header,
    delete_at_from_headers,
)
from nubis.api.proxy.context import ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.transfer import container_of, object_metadata, observed, one, store


async def handle(ctx: ObjectCtx) -> Resp:
    """Answer a copy, or pass the request on to the object controller."""
    if ctx.method == "COPY":
        check_object_name(ctx.obj, ctx.state.limits)
        return await copy(ctx)
    if ctx.method == "PUT" and ctx.header("x-copy-from"):
        limits = ctx.state.limits
        check_object_name(ctx.obj, limits)
        check_metadata(ctx.headers, "object", limits)
        if "x-object-manifest" in ctx.headers:
            check_object_manifest(ctx.headers["x-object-manifest"])
        src_account = ctx.account
        if ctx.header("x-copy-from-account"):
            src_account = check_account_header(ctx.headers["x-copy-from-account"], limits)
        src_c, src_o = check_path_header(ctx.headers["x-copy-from"], "X-Copy-From")
        return await _copy_into(ctx, (src_account, src_c, src_o))
    return await obj.handle(ctx)


#: An object's place: (account, container, object).
Loc = tuple[str, str, str]


async def copy(ctx: ObjectCtx) -> Resp:
    """Answer COPY: a PUT of ``Destination`` (in ``Destination-Account``) from this object.

    Like Swift's copy middleware the request becomes a PUT on the destination
    path, so the caller needs write access there and read access here.
    """
    limits = ctx.state.limits
    dest = ctx.header("destination")
    if not dest:
        raise HTTPError(412, "Destination header required")
    dst_account = ctx.account
    if "destination-account" in ctx.headers:
        dst_account = check_account_header(ctx.headers["destination-account"], limits)
    dst_c, dst_o = check_path_header(dest, "Destination")
    check_container_name(dst_c, limits)
    check_object_name(dst_o, limits)
    check_metadata(ctx.headers, "object", limits)
    if "x-object-manifest" in ctx.headers:
        check_object_manifest(ctx.headers["x-object-manifest"])
    src = (ctx.account, ctx.container, ctx.obj)
    ctx.method, ctx.account, ctx.container, ctx.obj = "PUT", dst_account, dst_c, dst_o
    return await _copy_into(ctx, src)


async def _copy_into(ctx: ObjectCtx, src: Loc) -> Resp:
    """Copy ``src`` onto the request's own object (a PUT with ``X-Copy-From``)."""
    if ctx.header("content-length").strip("0 "):
        raise HTTPError(400, "Copy requests require a zero byte body")
    check_container_name(src[1], ctx.state.limits)
    check_object_name(src[2], ctx.state.limits)
    if ctx.tempurl is not None and src[0] != ctx.account:
        raise HTTPError(401)  # a TempURL signs one path: never another account's
    for account in {ctx.account, src[0]}:  # either may be another account (its ACL counts)
        await load_account_level(ctx, account)
    # Swift's order: the source GET first (its 403/404 wins), then the destination PUT.
    got = await _read_source(ctx, src)
    try:
        dinfo = await container_of(ctx)
        check_access(ctx, dinfo.headers.get("x-container-write"))
        require_found(dinfo)
    except BaseException:
        await _close(got.body)
        raise
    src_meta = {k.lower(): v for k, v in got.headers.items()}
    raw_manifest = ctx.query.get("multipart-manifest") == "get"
    keep_slo = raw_manifest and "x-static-large-object" in src_meta
    src_meta.pop("x-static-large-object", None)
    if not raw_manifest:
        src_meta.pop("x-object-manifest", None)
    meta = object_metadata(ctx, src_meta)
    if ctx.copy_sysmeta:
        meta.update(ctx.copy_sysmeta)
    if "x-delete-at" in meta:  # a source read with X-Open-Expired carries a past one
        try:
            delete_at_from_headers({"x-delete-at": meta["x-delete-at"]})  # Swift's 400
        except HTTPError:
            await _close(got.body)
            raise
    extra: dict[str, str] = {}
    body = got.body
    length = got.length
    assert length is not None
    if keep_slo:
        data = body if isinstance(body, bytes) else b"".join([c async for c in body])
        meta["x-static-large-object"] = "True"
        extra = largeobj.manifest_sysmeta(data)
        await largeobj.check_copied_manifest(ctx, data)
        body = data
    if "x-symlink-target" in src_meta:  # a link copied as itself (?symlink=get)
        for name in ("x-symlink-target", "x-symlink-target-account", "x-symlink-target-etag"):
            if name in src_meta and name not in ctx.headers:
                ctx.headers[name] = src_meta[name]
        extra = {**extra, **await symlink.prepare_put(ctx, 0)}
    source = body if not isinstance(body, bytes) else one(body)
    digest = ctx.copy_digest
    if digest is not None:
        source = observed(source, digest.update)
    footer = digest.footer if digest is not None else None
    await quotas.check_put(ctx, dinfo, length)
    if objver.SYSMETA_ENABLED in dinfo.headers and objver.enabled(dinfo):
        resp = await objver.put(ctx, dinfo, meta, source, length, None, extra, footer=footer)
    else:
        await versioning.before_put(ctx, dinfo)
        resp = await store(ctx, dinfo, ctx.container, ctx.obj, meta, source, length, None,
                           extra, report=ctx.report_replaced, footer=footer)
    resp.headers["X-Copied-From-Account"] = urllib.parse.quote(src[0])
    resp.headers["X-Copied-From"] = urllib.parse.quote(f"{src[1]}/{src[2]}")
    if "Last-Modified" in got.headers:
        resp.headers["X-Copied-From-Last-Modified"] = got.headers["Last-Modified"]
    return resp


async def _read_source(ctx: ObjectCtx, src: Loc) -> Resp:
    """GET the copy source as the caller (Swift re-authorises on the source's path)."""
    saved = (ctx.method, ctx.account, ctx.container, ctx.obj)
    ctx.method, (ctx.account, ctx.container, ctx.obj) = "GET", src
    try:
        got = await obj.get_or_head(ctx)
    finally:
        ctx.method, ctx.account, ctx.container, ctx.obj = saved
    # A part or a Range of the source copies as an object of its own (Swift).
    whole = 206 if "part-number" in ctx.query or ctx.header("range") else 200
    if got.status != whole or got.length is None:
        raise HTTPError(got.status if got.status >= 400 else 412)
    return got




async def _close(body: object) -> None:
    """Close a source body that will not be read (a refused destination)."""
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()
