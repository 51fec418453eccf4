"""The object controller: PUT, GET, HEAD, POST, DELETE, COPY."""

from __future__ import annotations

import mimetypes
import time
import urllib.parse
from collections.abc import AsyncIterator

from nubis.api.proxy import largeobj, putter
from nubis.api.proxy.backend import Reply, best_status, quorum_size
from nubis.api.proxy.base import (
    POLICY_HEADER,
    check_access,
    client_headers,
    container_info,
    last_modified,
    meta_headers,
    new_timestamp,
    policy_of,
    require_found,
    timestamp_headers,
)
from nubis.api.proxy.constraints import (
    check_account_header,
    check_container_name,
    check_content_length,
    check_metadata,
    check_object_manifest,
    check_object_name,
    check_path_header,
    delete_at_from_headers,
)
from nubis.api.proxy.context import Ctx, Info, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import (
    check_conditions,
    multipart_head,
    multipart_length,
    multipart_tail,
    new_boundary,
    parse_range,
    resolve_ranges,
    slice_stream,
)
from nubis.common.httpclient import ClientResponse

#: Bodies up to this size are buffered on GET instead of streamed.
SMALL_GET = 64 * 1024

#: Request headers copied onto the stored object.
_STORED = ("content-type", "content-disposition", "content-encoding", "x-delete-at",
           "x-object-manifest", "x-static-large-object")


async def handle(ctx: Ctx) -> Resp:
    """Dispatch an object request by method."""
    assert ctx.container is not None and ctx.obj is not None
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
    if method == "COPY":
        return await copy(ctx)
    raise HTTPError(405, headers={"Allow": "GET, HEAD, PUT, POST, DELETE, COPY"})


async def _container(ctx: Ctx, container: str | None = None) -> Info:
    assert ctx.container is not None
    info = await container_info(ctx.state, ctx.account, container or ctx.container)
    return info


# --- node lookups ------------------------------------------------------------

def _update_headers(ctx: Ctx, container: str, n: int) -> list[dict[str, str]]:
    """Return per-node container-update headers for ``n`` object nodes."""
    ring = ctx.state.backend.rings.get("container")
    cpart, cnodes = ring.get_nodes(ctx.account, container)
    out = []
    for i in range(n):
        cn = cnodes[i % len(cnodes)]
        out.append({"X-Container-Host": f"{cn['ip']}:{cn['port']}",
                    "X-Container-Partition": str(cpart),
                    "X-Container-Device": str(cn["device"])})
    return out


# --- GET / HEAD --------------------------------------------------------------

async def fetch(ctx: Ctx, account: str, container: str, obj: str, policy: int,
                method: str = "GET") -> ClientResponse | Reply:
    """Open a GET/HEAD of an object on the first node that has it."""
    ring = ctx.state.backend.rings.get("object", policy)
    part, nodes = ring.get_nodes(account, container, obj)
    headers = {POLICY_HEADER: str(policy), "X-Trans-Id": ctx.trans_id}
    return await ctx.state.backend.open_read(ring, part, nodes, method,
                                             (account, container, obj), headers)


async def get_or_head(ctx: Ctx) -> Resp:
    """Answer an object GET or HEAD (plain, SLO or DLO; ranges; conditions)."""
    assert ctx.container is not None and ctx.obj is not None
    info = await _container(ctx)
    check_access(ctx, info.headers.get("x-container-read"))
    require_found(info)
    got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), ctx.method)
    if isinstance(got, Reply):
        if got.status == 404:
            raise HTTPError(404)
        raise HTTPError(503 if got.status >= 500 else got.status)
    headers = got.headers
    if _expired(headers):
        got.close()
        raise HTTPError(404)
    manifest_get = ctx.query.get("multipart-manifest") == "get"
    if not manifest_get and headers.get("x-static-large-object", "").lower() == "true":
        return await largeobj.slo_get(ctx, got, policy_of(info))
    if not manifest_get and "x-object-manifest" in headers:
        got.close()
        return await largeobj.dlo_get(ctx, headers)
    return await respond_object(ctx, got)


def _expired(headers: dict[str, str]) -> bool:
    value = headers.get("x-delete-at")
    if not value:
        return False
    try:
        return int(float(value)) <= time.time()
    except ValueError:
        return False


async def respond_object(ctx: Ctx, got: ClientResponse) -> Resp:
    """Turn a plain object's backend response into the client response."""
    headers = got.headers
    length = int(headers.get("content-length", "0"))
    etag = headers.get("etag", "").strip('"')
    out = client_headers(headers)
    out.update(timestamp_headers(headers))
    out["Etag"] = etag
    out["Accept-Ranges"] = "bytes"
    body: AsyncIterator[bytes] = got.iter_body()
    return await shape_response(ctx, out, body, length, etag, last_modified(headers),
                                got.close)


async def shape_response(ctx: Ctx, headers: dict[str, str], body: AsyncIterator[bytes],
                         length: int, etag: str, modified: float,
                         close: object) -> Resp:
    """Apply conditions and ranges to a whole-object body stream."""
    cond = check_conditions(ctx.headers, etag, modified, ctx.method)
    closer = close if callable(close) else None
    if cond is not None:
        if closer is not None:
            closer()
        if cond == 304:
            keep = {k: v for k, v in headers.items()
                    if k in ("Etag", "Last-Modified", "X-Timestamp")}
            return Resp(304, keep)
        raise HTTPError(412, headers={"Etag": etag} if etag else None)
    if ctx.tempurl is not None:
        from nubis.api.proxy import tempurl

        assert ctx.obj is not None
        disp = tempurl.disposition(ctx.tempurl, ctx.obj)
        if disp and ctx.method == "GET":
            headers["Content-Disposition"] = disp
        for k in [k for k in headers if k.lower().startswith("x-object-meta-")
                  and not k.lower().startswith("x-object-meta-public-")]:
            del headers[k]
    ranges = parse_range(ctx.header("range")) if ctx.method == "GET" else None
    if ctx.method == "HEAD" or ranges is None:
        if ctx.method == "HEAD" and closer is not None:
            closer()
            body = _empty()
        headers["Content-Length"] = str(length)
        if length <= SMALL_GET and ctx.method == "GET":
            # PERF: small bodies are sent in one piece, not streamed (bench swift 4 KiB GET).
            data = b"".join([c async for c in body])
            if len(data) != length:
                raise HTTPError(503)
            return Resp(200, headers, data, length)
        return Resp(200, headers, body, length)
    try:
        spans = resolve_ranges(ranges, length)
    except HTTPError:
        if closer is not None:
            closer()
        raise
    if len(spans) == 1:
        a, b = spans[0]
        headers["Content-Range"] = f"bytes {a}-{b - 1}/{length}"
        headers["Content-Length"] = str(b - a)
        return Resp(206, headers, slice_stream(body, a, b), b - a)
    ctype = headers.get("Content-Type", "application/octet-stream")
    boundary = new_boundary()
    total = multipart_length(boundary, ctype, spans, length)
    headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
    headers["Content-Length"] = str(total)
    return Resp(206, headers, _multipart(body, spans, boundary, ctype, length), total)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


async def _multipart(body: AsyncIterator[bytes], spans: list[tuple[int, int]],
                     boundary: str, ctype: str, length: int) -> AsyncIterator[bytes]:
    """Yield a multipart/byteranges body; ranges out of order are buffered."""
    ordered = sorted(set(spans))
    wanted: dict[tuple[int, int], bytes] = {}
    if ordered == spans and all(ordered[i][1] <= ordered[i + 1][0]
                                for i in range(len(ordered) - 1)):
        pos = 0
        buf = b""
        it = body.__aiter__()
        for i, (a, b) in enumerate(spans):
            yield multipart_head(boundary, ctype, a, b, length, i == 0)
            while pos + len(buf) < b:
                try:
                    chunk = await it.__anext__()
                except StopAsyncIteration:
                    break
                buf += chunk
            yield buf[a - pos: b - pos]
            buf = buf[b - pos:]
            pos = b
        yield multipart_tail(boundary)
        return
    data = b"".join([c async for c in body])
    for i, (a, b) in enumerate(spans):
        wanted[(a, b)] = data[a:b]
        yield multipart_head(boundary, ctype, a, b, length, i == 0)
        yield wanted[(a, b)]
    yield multipart_tail(boundary)


# --- PUT ---------------------------------------------------------------------

def _object_headers(ctx: Ctx, src: dict[str, str] | None = None) -> dict[str, str]:
    """Build the stored metadata of a new object from the request (and a copy source)."""
    assert ctx.obj is not None
    out: dict[str, str] = {}
    fresh = ctx.header("x-fresh-metadata").lower() in ("true", "1", "yes")
    if src is not None and not fresh:
        for k, v in src.items():
            if k.startswith("x-object-meta-") or k in _STORED:
                out[k] = v
    for k in _STORED:
        if k in ctx.headers and k not in ("x-static-large-object",):
            out[k] = ctx.headers[k]
    out.update({k: v for k, v in meta_headers(ctx.headers, "object").items() if v})
    for k, v in meta_headers(ctx.headers, "object").items():
        if not v:
            out.pop(k, None)
    detect = ctx.header("x-detect-content-type").lower() in ("true", "1", "yes")
    if detect or not out.get("content-type"):
        guess = mimetypes.guess_type(ctx.obj)[0]
        out["content-type"] = guess or "application/octet-stream"
    delete_at = delete_at_from_headers(ctx.headers)
    if delete_at is not None:
        out["x-delete-at"] = str(delete_at)
    out.pop("x-delete-after", None)
    return out


async def put(ctx: Ctx) -> Resp:
    """Answer an object PUT (also copies, SLO manifests)."""
    assert ctx.container is not None and ctx.obj is not None
    limits = ctx.state.limits
    check_metadata(ctx.headers, "object", limits)
    if "x-object-manifest" in ctx.headers:
        check_object_manifest(ctx.headers["x-object-manifest"])
    if ctx.header("x-copy-from"):
        src_account = ctx.account
        if ctx.header("x-copy-from-account"):
            src_account = check_account_header(ctx.headers["x-copy-from-account"], limits)
        src_c, src_o = check_path_header(ctx.headers["x-copy-from"], "X-Copy-From")
        return await _copy_into(ctx, (src_account, src_c, src_o))
    info = await _container(ctx)
    check_access(ctx, info.headers.get("x-container-write"))
    require_found(info)
    if ctx.query.get("multipart-manifest") == "put":
        return await largeobj.slo_put(ctx, info)
    length = check_content_length(ctx.headers, limits)
    if ctx.header("if-none-match").strip() == "*":
        got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info), "HEAD")
        if not isinstance(got, Reply):
            await got.release()
            raise HTTPError(412)
    headers = _object_headers(ctx)
    return await store(ctx, info, ctx.container, ctx.obj, headers, ctx.body, length,
                       ctx.header("etag") or None)


async def store(ctx: Ctx, info: Info, container: str, obj: str, meta: dict[str, str],
                source: putter.Source, length: int | None, client_etag: str | None,
                extra: dict[str, str] | None = None) -> Resp:
    """Write an object body plus metadata to a quorum of nodes; answer 201."""
    policy = policy_of(info)
    ring = ctx.state.backend.rings.get("object", policy)
    part, nodes = ring.get_nodes(ctx.account, container, obj)
    ts = new_timestamp()
    updates = _update_headers(ctx, container, len(nodes))
    per_node = []
    for upd in updates:
        h = {"X-Timestamp": ts, POLICY_HEADER: str(policy), "X-Trans-Id": ctx.trans_id}
        h.update(meta)
        h.update(extra or {})
        h.update(upd)
        per_node.append(h)
    result = await putter.upload(ctx.state.backend, ring, part, nodes,
                                 (ctx.account, container, obj), per_node, source, length,
                                 client_etag)
    lm = timestamp_headers({"x-timestamp": ts})
    return Resp(201, {"Etag": result.etag, **lm, "Content-Type": "text/html; charset=UTF-8"})


# --- POST / DELETE -----------------------------------------------------------

async def post(ctx: Ctx) -> Resp:
    """Replace an object's user metadata (Swift's fast-POST)."""
    assert ctx.container is not None and ctx.obj is not None
    check_metadata(ctx.headers, "object", ctx.state.limits)
    if "x-object-manifest" in ctx.headers:
        check_object_manifest(ctx.headers["x-object-manifest"])
    info = await _container(ctx)
    check_access(ctx, info.headers.get("x-container-write"))
    require_found(info)
    delete_at = delete_at_from_headers(ctx.headers)
    meta = {k: v for k, v in meta_headers(ctx.headers, "object").items() if v}
    for k in ("content-type", "content-disposition", "content-encoding", "x-object-manifest"):
        if k in ctx.headers:
            meta[k] = ctx.headers[k]
    if delete_at is not None:
        meta["x-delete-at"] = str(delete_at)
    replies = await _to_all(ctx, info, "POST", meta)
    status = best_status(replies, quorum_size(len(replies)))
    if status == 404:
        raise HTTPError(404)
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(202, {"Content-Type": "text/html; charset=UTF-8"},
                b"<html><h1>Accepted</h1><p>The request is accepted for processing.</p>"
                b"</html>")


async def _to_all(ctx: Ctx, info: Info, method: str, extra: dict[str, str]) -> list[Reply]:
    assert ctx.container is not None and ctx.obj is not None
    policy = policy_of(info)
    ring = ctx.state.backend.rings.get("object", policy)
    part, nodes = ring.get_nodes(ctx.account, ctx.container, ctx.obj)
    ts = new_timestamp()
    headers = []
    for upd in _update_headers(ctx, ctx.container, len(nodes)):
        h = {"X-Timestamp": ts, POLICY_HEADER: str(policy), "X-Trans-Id": ctx.trans_id}
        h.update(extra)
        h.update(upd)
        headers.append(h)
    return await ctx.state.backend.write_all(ring, part, nodes, method,
                                             (ctx.account, ctx.container, ctx.obj), headers)


async def delete(ctx: Ctx) -> Resp:
    """Delete an object (or an SLO with its segments)."""
    assert ctx.container is not None and ctx.obj is not None
    info = await _container(ctx)
    check_access(ctx, info.headers.get("x-container-write"))
    require_found(info)
    if ctx.query.get("multipart-manifest") == "delete":
        return await largeobj.slo_delete(ctx, info)
    return await delete_plain(ctx, info)


async def delete_plain(ctx: Ctx, info: Info) -> Resp:
    """Delete one object on a quorum of nodes."""
    replies = await _to_all(ctx, info, "DELETE", {})
    status = best_status(replies, quorum_size(len(replies)))
    if status == 404:
        raise HTTPError(404)
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(204, {"Content-Type": "text/html; charset=UTF-8"})


# --- COPY ----------------------------------------------------------------------

#: An object's place: (account, container, object).
Loc = tuple[str, str, str]


async def copy(ctx: Ctx) -> Resp:
    """Answer COPY: a PUT of ``Destination`` (in ``Destination-Account``) from this object.

    Like Swift's copy middleware the request becomes a PUT on the destination
    path, so the caller needs write access there and read access here.
    """
    assert ctx.container is not None and ctx.obj is not None
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


async def _copy_into(ctx: Ctx, src: Loc) -> Resp:
    """Copy ``src`` onto the request's own object (a PUT with ``X-Copy-From``)."""
    assert ctx.container is not None and ctx.obj is not None
    if ctx.header("content-length").strip("0 "):
        raise HTTPError(400, "Copy requests require a zero byte body")
    check_container_name(src[1], ctx.state.limits)
    check_object_name(src[2], ctx.state.limits)
    if ctx.tempurl is not None and src[0] != ctx.account:
        raise HTTPError(401)  # a TempURL signs one path: never another account's
    dinfo = await _container(ctx)
    check_access(ctx, dinfo.headers.get("x-container-write"))
    require_found(dinfo)
    got = await _read_source(ctx, src)
    src_meta = {k.lower(): v for k, v in got.headers.items()}
    raw_manifest = ctx.query.get("multipart-manifest") == "get"
    keep_slo = raw_manifest and "x-static-large-object" in src_meta
    src_meta.pop("x-static-large-object", None)
    if not raw_manifest:
        src_meta.pop("x-object-manifest", None)
    meta = _object_headers(ctx, src_meta)
    extra: dict[str, str] = {}
    body = got.body
    length = got.length
    assert length is not None
    if keep_slo:
        data = body if isinstance(body, bytes) else b"".join([c async for c in body])
        meta["x-static-large-object"] = "True"
        extra = largeobj.manifest_sysmeta(data)
        body = data
    source = body if not isinstance(body, bytes) else _one(body)
    resp = await store(ctx, dinfo, ctx.container, ctx.obj, meta, source, length, None, extra)
    resp.headers["X-Copied-From-Account"] = urllib.parse.quote(src[0])
    resp.headers["X-Copied-From"] = urllib.parse.quote(f"{src[1]}/{src[2]}")
    if "Last-Modified" in got.headers:
        resp.headers["X-Copied-From-Last-Modified"] = got.headers["Last-Modified"]
    return resp


async def _read_source(ctx: Ctx, src: Loc) -> Resp:
    """GET the copy source as the caller (Swift re-authorises on the source's path)."""
    saved = (ctx.method, ctx.account, ctx.container, ctx.obj)
    ctx.method, (ctx.account, ctx.container, ctx.obj) = "GET", src
    try:
        got = await get_or_head(ctx)
    finally:
        ctx.method, ctx.account, ctx.container, ctx.obj = saved
    if got.status != 200 or got.length is None:
        raise HTTPError(got.status if got.status >= 400 else 412)
    return got


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def stored_size(headers: dict[str, str]) -> int:
    """Return the Content-Length a backend reported."""
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0
