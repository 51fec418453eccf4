"""The object controller: PUT, GET, HEAD, POST, DELETE (COPY is :mod:`copy`'s)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from nubis.api.proxy import largeobj, largeread, objver, quotas, symlink, versioning
from nubis.api.proxy.backend import Reply, best_status, quorum_size
from nubis.api.proxy.base import (
    check_access,
    client_headers,
    last_modified,
    meta_headers,
    policy_of,
    require_found,
    show_sysmeta,
    timestamp_headers,
)
from nubis.api.proxy.constraints import (
    check_content_length,
    check_metadata,
    check_object_manifest,
    check_object_name,
    delete_at_from_headers,
)
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.ec import ECResponse, Fetched
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import parse_range
from nubis.api.proxy.transfer import (
    container_of,
    delete_object,
    fetch,
    is_plain,
    object_metadata,
    open_expired_headers,
    opens_expired,
    shape_response,
    store,
    to_all,
)

#: The ``Allow`` header of a 405 on an object.
OBJECT_ALLOW = "GET, HEAD, PUT, POST, DELETE, COPY"


#: Bytes before a replica's suffix range (``bytes=-N``) worth one more open to skip.
SUFFIX_REOPEN = 1 << 20


async def handle(ctx: ObjectCtx) -> Resp:
    """Dispatch an object request by method."""
    check_object_name(ctx.obj, ctx.state.limits)
    method = ctx.method
    if method == "PUT":
        return await put(ctx)
    if method in ("GET", "HEAD"):
        return await get_or_head(ctx)
    if method == "POST":
        return await post(ctx)
    if method == "DELETE":
        return await delete(ctx)
    raise HTTPError(405, headers={"Allow": OBJECT_ALLOW})


async def get_or_head(ctx: ObjectCtx) -> Resp:
    """Answer an object GET or HEAD (plain, SLO or DLO; ranges; conditions)."""
    info = await container_of(ctx)
    check_access(ctx, info.headers.get("x-container-read"))
    require_found(info)
    if ctx.query.get("version-id") and ctx.tempurl is None:  # a TempURL reads the latest
        return await objver.read_version(ctx, info, ctx.query["version-id"], read_object)
    return await read_object(ctx, info)


async def read_object(ctx: ObjectCtx, info: Info) -> Resp:
    """Answer a GET or HEAD of an object of a container the caller may read."""
    span = _covering_range(ctx)
    got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), ctx.method,
                      span)
    if not isinstance(got, Reply) and span is None and got.status == 200 \
            and is_plain(got.headers):
        later = _suffix_start(ctx, got)
        if later is not None:  # ``bytes=-N`` far into the object: skip what comes before
            got.close()
            got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info),
                              ctx.method, (later, None))
    if isinstance(got, Reply):
        if got.status == 404:
            raise HTTPError(404)
        raise HTTPError(503 if got.status >= 500 else got.status)
    headers = got.headers
    if _expired(headers) and not opens_expired(ctx):
        got.close()
        raise HTTPError(404)
    location = ""
    link: dict[str, str] | None = None
    cinfo, actx = info, ctx
    if symlink.TARGET in headers:
        link = headers
        if ctx.query.get("symlink") != "get":
            try:
                got, info, location = await symlink.follow(ctx, got, span=span)
            except HTTPError as exc:
                if "Content-Location" in exc.headers:
                    exc.headers["Content-Location"] = objver.content_location(
                        cinfo, ctx, exc.headers["Content-Location"])
                raise
            if "x-static-large-object" in got.headers:  # its manifest is re-read there
                acct, cont, name = symlink.split_location(location)
                actx = ObjectCtx.of(ctx, account=acct, container=cont, obj=name)
            location = objver.content_location(cinfo, ctx, location)
    try:
        resp = await _answer(actx, got, info)
    except HTTPError as exc:
        if location:
            exc.headers["Content-Location"] = location
        raise
    if location:
        resp.headers["Content-Location"] = location
    objver.annotate(cinfo, link, resp.headers, ctx.container, ctx.obj)
    return resp


async def _answer(ctx: ObjectCtx, got: Fetched, info: Info) -> Resp:
    """Answer with a fetched object: an SLO, a DLO, a manifest or plain bytes."""
    headers = got.headers
    manifest_get = ctx.query.get("multipart-manifest") == "get"
    if not manifest_get and headers.get("x-static-large-object", "").lower() == "true":
        return await largeread.slo_get(ctx, got, policy_of(info))
    copying = "x-copy-from" in ctx.headers or "destination" in ctx.headers
    if manifest_get and headers.get("x-static-large-object", "").lower() == "true" \
            and not copying:  # a copy keeps the stored form
        return await largeread.slo_manifest_get(ctx, got)
    if not manifest_get and "x-object-manifest" in headers:
        got.close()
        return await largeread.dlo_get(ctx, headers)
    return await respond_object(ctx, got)


def _covering_range(ctx: ObjectCtx) -> tuple[int, int | None] | None:
    """Return the bytes a GET's ranges cover, ``(first, last or None)``, if all name a first.

    An erasure-coded object then opens its archives at those bytes' segments
    (several ranges: from the lowest first byte to the highest last one).
    """
    if ctx.method != "GET" or "range" not in ctx.headers or "multipart-manifest" in ctx.query:
        return None
    ranges = parse_range(ctx.headers["range"])
    if not ranges or any(r.start is None for r in ranges):
        return None
    first = min(r.start for r in ranges if r.start is not None)
    last = None if any(r.end is None for r in ranges) else max(
        r.end for r in ranges if r.end is not None)
    return first, last


def _suffix_start(ctx: ObjectCtx, got: Fetched) -> int | None:
    """Return where a GET's one suffix range (``bytes=-N``) starts, if far enough in.

    Only the object's size (from the object opened whole) tells where the last
    ``N`` bytes start; when that is past an erasure-coded object's first
    segment, or :data:`SUFFIX_REOPEN` into a replica, reopening the object
    there costs less than decoding or streaming everything before them.
    """
    if ctx.method != "GET" or "range" not in ctx.headers or "multipart-manifest" in ctx.query:
        return None
    ranges = parse_range(ctx.headers["range"])
    if ranges is None or len(ranges) != 1 or ranges[0].start is not None:
        return None
    suffix = ranges[0].end
    if isinstance(got, ECResponse):
        length, far = got.length, got.policy.segment_size
    else:
        size = got.headers.get("content-length", "")
        if not size.isdigit():
            return None
        length, far = int(size), SUFFIX_REOPEN
    start = length - (suffix or 0)
    return start if suffix and start >= far else None


def _expired(headers: dict[str, str]) -> bool:
    value = headers.get("x-delete-at")
    if not value:
        return False
    try:
        return int(float(value)) <= time.time()
    except ValueError:
        return False


async def respond_object(ctx: ObjectCtx, got: Fetched) -> Resp:
    """Turn a plain object's backend response into the client response."""
    headers = got.headers
    length = int(headers.get("content-length", "0"))
    etag = headers.get("etag", "").strip('"')
    out = client_headers(headers)
    show_sysmeta(ctx, headers, out)
    out.update(timestamp_headers(headers))
    out["Etag"] = etag
    out["Accept-Ranges"] = "bytes"
    if symlink.TARGET in headers:
        symlink.show(headers, out)
    body: AsyncIterator[bytes] = got.iter_body()
    return await shape_response(ctx, out, body, length, etag, last_modified(headers),
                                got.close, got.offset)


async def put(ctx: ObjectCtx) -> Resp:
    """Answer an object PUT (also copies, SLO manifests)."""
    limits = ctx.state.limits
    check_metadata(ctx.headers, "object", limits)
    if "x-object-manifest" in ctx.headers:
        check_object_manifest(ctx.headers["x-object-manifest"])
    info = await container_of(ctx)
    check_access(ctx, info.headers.get("x-container-write"))
    require_found(info)
    if ctx.query.get("version-id"):
        return await objver.put_version(ctx, info, ctx.query["version-id"])
    inm = ctx.header("if-none-match").strip()
    if inm and inm != "*":
        raise HTTPError(400, "If-None-Match only supports *")
    if inm == "*":
        got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), "HEAD")
        if not isinstance(got, Reply):
            await got.release()
            raise HTTPError(412)
    if ctx.query.get("multipart-manifest") == "put":
        return await largeobj.slo_put(ctx, info)
    length = check_content_length(ctx.headers, limits)
    await quotas.check_put(ctx, info, length)
    link = None
    if "x-symlink-target" in ctx.headers:
        link = await symlink.prepare_put(ctx, length)
    headers = object_metadata(ctx)
    if ctx.copy_sysmeta:  # an S3 sub-request's own write (a multipart upload's marker)
        headers.update(ctx.copy_sysmeta)
    if objver.SYSMETA_ENABLED in info.headers and objver.enabled(info):
        return await objver.put(ctx, info, headers, ctx.body, length,
                                ctx.header("etag") or None, link)
    await versioning.before_put(ctx, info)
    return await store(ctx, info, ctx.container, ctx.obj, headers, ctx.body, length,
                       ctx.header("etag") or None, link)


async def post(ctx: ObjectCtx) -> Resp:
    """Replace an object's user metadata (Swift's fast-POST)."""
    check_metadata(ctx.headers, "object", ctx.state.limits)
    if "x-object-manifest" in ctx.headers:
        check_object_manifest(ctx.headers["x-object-manifest"])
    if "x-symlink-target" in ctx.headers:
        raise HTTPError(400, "A PUT request is required to set a symlink target")
    info = await container_of(ctx)
    check_access(ctx, info.headers.get("x-container-write"))
    require_found(info)
    if ctx.query.get("version-id"):
        objver.check_version_request(ctx, info, ctx.query["version-id"])
    delete_at = delete_at_from_headers(ctx.headers)
    meta = {k: v for k, v in meta_headers(ctx.headers, "object").items() if v}
    for k in ("content-type", "content-disposition", "content-encoding", "x-object-manifest"):
        if k in ctx.headers:
            meta[k] = ctx.headers[k]
    if delete_at is not None:
        meta["x-delete-at"] = str(delete_at)
    # With X-Open-Expired an expired object takes the POST (a new X-Delete-At keeps it).
    replies = await to_all(ctx, info, "POST", {**meta, **open_expired_headers(ctx)})
    status = best_status(replies, quorum_size(len(replies)))
    if status == 404:
        raise HTTPError(404)
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    redirect = symlink.post_redirect(ctx, replies)
    if redirect is not None and not (objver.SYSMETA_CONT in info.headers
                                     and await objver.post(ctx, info, replies, meta)):
        raise redirect
    return Resp(202, {"Content-Type": "text/html; charset=UTF-8"},
                b"<html><h1>Accepted</h1><p>The request is accepted for processing.</p>"
                b"</html>")


async def delete(ctx: ObjectCtx) -> Resp:
    """Delete an object (or an SLO with its segments)."""
    extra: dict[str, str] = {}
    if "x-if-delete-at" in ctx.headers:
        value = ctx.headers["x-if-delete-at"].strip()
        if not value.isdigit():
            raise HTTPError(400, "Bad X-If-Delete-At header value")
        extra["X-If-Delete-At"] = value
    info = await container_of(ctx)
    check_access(ctx, info.headers.get("x-container-write"))
    require_found(info)
    vid = ctx.query.get("version-id")
    if vid and vid != "null":
        if ctx.query.get("multipart-manifest") == "delete":
            return await largeobj.slo_delete_version(ctx, info, vid)
        return await objver.delete_version(ctx, info, vid)
    if vid:  # the null version: the object itself, no delete marker
        objver.check_version_request(ctx, info, vid)
        versioned = await versioning.delete(ctx, info)
        return versioned if versioned is not None else await delete_object(ctx, info, extra)
    if ctx.query.get("multipart-manifest") == "delete":
        return await largeobj.slo_delete(ctx, info)
    if objver.SYSMETA_ENABLED in info.headers and objver.enabled(info):
        return await objver.delete(ctx, info)
    versioned = await versioning.delete(ctx, info)
    return versioned if versioned is not None else await delete_object(ctx, info, extra)


