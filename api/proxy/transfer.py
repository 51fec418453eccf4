"""Object bytes between the client and the storage nodes: fetch, store, shape.

The pieces every object controller shares (plain objects, large objects,
copies): :func:`fetch` opens a GET/HEAD on the first node that has the object,
:func:`store` writes a body plus metadata to a quorum of nodes,
:func:`shape_response` applies conditions and ranges to a whole-object stream,
:func:`to_all`/:func:`delete_object` send a bodiless write to every replica.
It imports no controller, so :mod:`~nubis.api.proxy.obj`,
:mod:`~nubis.api.proxy.largeobj`, :mod:`~nubis.api.proxy.largeread` and
:mod:`~nubis.api.proxy.copy` all sit above it.
"""

from __future__ import annotations

import json
import mimetypes
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

from nubis.api.proxy import ec, putter, tempurl
from nubis.api.proxy.backend import Reply, best_status, quorum_size
from nubis.api.proxy.base import (
    container_info,
    meta_headers,
    new_timestamp,
    policy_of,
    timestamp_headers,
)
from nubis.api.proxy.constraints import delete_at_from_headers
from nubis.api.proxy.context import Ctx, Info, ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import (
    ByteRange,
    check_conditions,
    is_true,
    multipart_head,
    multipart_length,
    multipart_tail,
    new_boundary,
    parse_range,
    resolve_ranges,
    slice_stream,
)
from nubis.common import backend as hdr
from nubis.common.httpclient import ClientResponse
from nubis.common.policies import ECPolicy

#: Bodies up to this size are buffered on GET instead of streamed.
SMALL_GET = 64 * 1024

#: Request headers copied onto the stored object (Swift's object server
#: ``allowed_headers`` default, with the content type).
_STORED = ("content-type", "content-disposition", "content-encoding", "x-delete-at",
           "x-object-manifest", "x-static-large-object", "cache-control", "content-language",
           "expires", "x-robots-tag")


async def container_of(ctx: ObjectCtx) -> Info:
    """Return (cached) facts about the request's container."""
    return await container_info(ctx.state, ctx.account, ctx.container)


def update_headers(ctx: Ctx, container: str, n: int) -> list[dict[str, str]]:
    """Return per-node container-update headers for ``n`` object nodes.

    Every container replica gets an update even when the object has fewer
    replicas than the container (``rep2``): like Swift, an object node may be
    asked to update several container nodes (comma-separated lists).
    """
    ring = ctx.state.backend.rings.get("container")
    cpart, cnodes = ring.get_nodes(ctx.account, container)
    hosts: list[list[str]] = [[] for _ in range(n)]
    devices: list[list[str]] = [[] for _ in range(n)]
    for i in range(max(n, len(cnodes)) if n else 0):
        cn = cnodes[i % len(cnodes)]
        hosts[i % n].append(f"{cn['ip']}:{cn['port']}")
        devices[i % n].append(str(cn["device"]))
    return [{hdr.X_CONTAINER_HOST: ",".join(h), hdr.X_CONTAINER_PARTITION: str(cpart),
             hdr.X_CONTAINER_DEVICE: ",".join(d)} for h, d in zip(hosts, devices, strict=True)]


def opens_expired(ctx: Ctx) -> bool:
    """Tell whether the request may reach objects past ``X-Delete-At`` not yet deleted.

    Swift's ``is_open_expired``: the proxy allows it (``allow_open_expired``) and
    the client says ``X-Open-Expired: true`` (a TempURL's request never does: the
    header is dropped there).
    """
    return ctx.state.conf.allow_open_expired and is_true(ctx.headers.get("x-open-expired"))


def open_expired_headers(ctx: Ctx) -> dict[str, str]:
    """Return the backend header of :func:`opens_expired` (empty when it does not)."""
    return {hdr.X_OPEN_EXPIRED: "true"} if opens_expired(ctx) else {}


async def fetch(ctx: Ctx, account: str, container: str, obj: str, policy: int,
                method: str = "GET", span: tuple[int, int | None] | None = None
                ) -> ec.Fetched | Reply:
    """Open a GET/HEAD of an object on the first node that has it.

    ``span`` (first and last byte a GET will return): an erasure-coded object is
    opened at the segments holding them, a replica at those bytes (a ``Range``
    to its object server) when the first is not 0; the answer still looks like
    the whole object's, its ``offset`` says where its body starts. A span past
    the object's end opens it whole (the caller answers the 416), and so does
    an object that is not plain bytes (a manifest or a link: :func:`is_plain`).

    For a client's GET or HEAD with ``X-Open-Expired`` (:func:`opens_expired`)
    every read made for it opens expired objects too -- the object, its SLO/DLO
    segments, a symlink's target, a copy's source -- as Swift's sub-requests
    carry the header; the reads of a PUT, POST or DELETE never do.
    """
    got = await _open(ctx, account, container, obj, policy, method, span)
    if not isinstance(got, Reply) and got.offset and not is_plain(got.headers):
        got.close()  # a manifest or a link is read whole
        got = await _open(ctx, account, container, obj, policy, method, None)
    return got


def is_plain(headers: dict[str, str]) -> bool:
    """Tell whether stored headers are a plain object's (not a manifest or a link)."""
    return not ("x-static-large-object" in headers or "x-object-manifest" in headers
                or hdr.SYMLINK_TARGET in headers)


async def _open(ctx: Ctx, account: str, container: str, obj: str, policy: int,
                method: str, span: tuple[int, int | None] | None) -> ec.Fetched | Reply:
    """Open the object, at ``span`` when it is given (see :func:`fetch`)."""
    ring = ctx.state.backend.rings.get("object", policy)
    pol = ctx.state.policies.get(policy)
    extra = open_expired_headers(ctx) if ctx.method in ("GET", "HEAD") else {}
    if isinstance(pol, ECPolicy):
        segments = ec.SegmentSpan.covering(pol, *span) if span is not None else None
        return await ec.fetch(ctx, pol, ring, (account, container, obj), method, extra,
                              segments)
    part, nodes = ring.get_nodes(account, container, obj)
    headers = {hdr.X_POLICY_INDEX: str(policy), "X-Trans-Id": ctx.trans_id, **extra}
    if container[:1] == "\x00":  # the reserved namespace (object versioning)
        headers[hdr.X_ALLOW_RESERVED] = "true"
    names = (account, container, obj)
    if span is not None and span[0] > 0 and method == "GET":
        # PERF: a range deep into a large replica no longer streams what comes before
        first, last = span
        ranged = {**headers, "Range": f"bytes={first}-{'' if last is None else last}"}
        got = await ctx.state.backend.open_read(ring, part, nodes, method, names, ranged)
        if not isinstance(got, ClientResponse):
            return got
        if got.status == 200 or got.as_whole():
            return got  # (a 200: the server sent it whole; a 416 of 0 bytes: a link)
        got.close()  # past the end (416), or a 206 it cannot read: open it whole
    return await ctx.state.backend.open_read(ring, part, nodes, method, names, headers)


async def shape_response(ctx: ObjectCtx, headers: dict[str, str], body: AsyncIterator[bytes],
                         length: int, etag: str, modified: float,
                         close: object, offset: int = 0) -> Resp:
    """Apply conditions and ranges to an object's body stream.

    ``offset``: the object byte ``body`` starts at (an erasure-coded object
    opened for the request's one range); else the stream is the whole object.
    """
    closer = close if callable(close) else None
    cond = check_conditions(ctx.headers, etag, modified, ctx.method)
    if cond is not None:
        if closer is not None:
            closer()
        return _unmet(cond, headers, etag)
    if ctx.tempurl is not None:
        _tempurl_headers(ctx, headers)
    ranges = parse_range(ctx.header("range")) if ctx.method == "GET" else None
    if ctx.method == "HEAD" or ranges is None:
        return await _whole(ctx, headers, body, length, closer)
    return _ranged(headers, body, ranges, length, etag, closer, offset)


def _unmet(cond: int, headers: dict[str, str], etag: str) -> Resp:
    """Answer a failed condition: 304 with the object's headers, or raise the 412."""
    if cond == 304:  # Swift keeps the object's headers on a 304, without a body
        keep = {k: v for k, v in headers.items() if k != "Content-Length"}
        keep["Accept-Ranges"] = "bytes"
        return Resp(304, keep)
    raise HTTPError(412, headers={"Etag": etag} if etag else None)


def _tempurl_headers(ctx: ObjectCtx, headers: dict[str, str]) -> None:
    """Shape a temp URL's answer: its disposition, no private user metadata."""
    assert ctx.tempurl is not None
    disp = tempurl.disposition(ctx.tempurl, ctx.obj)
    if disp and ctx.method == "GET":
        headers["Content-Disposition"] = disp
    for k in [k for k in headers if k.lower().startswith("x-object-meta-")
              and not k.lower().startswith("x-object-meta-public-")]:
        del headers[k]


async def _whole(ctx: ObjectCtx, headers: dict[str, str], body: AsyncIterator[bytes],
                 length: int, closer: Callable[[], object] | None) -> Resp:
    """Answer a HEAD or an unranged GET with the whole object."""
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


def _ranged(headers: dict[str, str], body: AsyncIterator[bytes],
            ranges: list[ByteRange], length: int, etag: str,
            closer: Callable[[], object] | None, offset: int) -> Resp:
    """Answer a ranged GET: one range as such, several as multipart/byteranges."""
    try:
        spans = resolve_ranges(ranges, length)
    except HTTPError as exc:
        if closer is not None:
            closer()
        if etag:  # Swift's 416 still names the object (ETag) and its range support
            exc.headers.setdefault("Etag", etag)
        exc.headers["Accept-Ranges"] = "bytes"
        raise
    if len(spans) == 1 and spans[0][0] >= offset:
        a, b = spans[0]
        headers["Content-Range"] = f"bytes {a}-{b - 1}/{length}"
        headers["Content-Length"] = str(b - a)
        return Resp(206, headers, slice_stream(body, a - offset, b - offset), b - a)
    if any(a < offset for a, _ in spans):  # cannot happen: the body covers every range
        if closer is not None:
            closer()
        raise HTTPError(503)
    ctype = headers.get("Content-Type", "application/octet-stream")
    boundary = new_boundary()
    total = multipart_length(boundary, ctype, spans, length)
    headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
    headers["Content-Length"] = str(total)
    return Resp(206, headers, _multipart(body, spans, boundary, ctype, length, offset), total)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


async def _multipart(body: AsyncIterator[bytes], spans: list[tuple[int, int]],
                     boundary: str, ctype: str, length: int,
                     offset: int = 0) -> AsyncIterator[bytes]:
    """Yield a multipart/byteranges body; ranges out of order are buffered.

    ``body`` starts at object byte ``offset`` (no span starts before it).
    """
    ordered = sorted(set(spans))
    wanted: dict[tuple[int, int], bytes] = {}
    if ordered == spans and all(ordered[i][1] <= ordered[i + 1][0]
                                for i in range(len(ordered) - 1)):
        pos = offset
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
        wanted[(a, b)] = data[a - offset:b - offset]
        yield multipart_head(boundary, ctype, a, b, length, i == 0)
        yield wanted[(a, b)]
    yield multipart_tail(boundary)


def object_metadata(ctx: ObjectCtx, src: dict[str, str] | None = None) -> dict[str, str]:
    """Build the stored metadata of a new object from the request (and a copy source)."""
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


async def store(ctx: Ctx, info: Info, container: str, obj: str, meta: dict[str, str],
                source: putter.Source, length: int | None, client_etag: str | None,
                extra: dict[str, str] | None = None, ts: str | None = None,
                report: str | None = None, footer: putter.Footer | None = None) -> Resp:
    """Write an object body plus metadata to a quorum of nodes; answer 201.

    ``ts`` is the object's timestamp (default: now). ``footer`` is called once
    the body was read; its metadata is stored with the object in the same write
    (see :func:`nubis.api.proxy.putter.upload`). ``report`` names a metadata
    item (lower case): the answer's internal ``x-backend-replaced`` header then
    lists (comma-separated) its values in the live objects this write replaced
    on the replicas (or fragment archives); the caller removes it before
    answering.
    """
    policy = policy_of(info)
    ring = ctx.state.backend.rings.get("object", policy)
    part, nodes = ring.get_nodes(ctx.account, container, obj)
    ts = ts or new_timestamp()
    updates = update_headers(ctx, container, len(nodes))
    per_node = []
    for upd in updates:
        h = {"X-Timestamp": ts, hdr.X_POLICY_INDEX: str(policy), "X-Trans-Id": ctx.trans_id}
        h.update(meta)
        h.update(extra or {})
        h.update(upd)
        if report:
            h[hdr.X_REPORT_REPLACED] = report
        per_node.append(h)
    pol = ctx.state.policies.get(policy)
    if isinstance(pol, ECPolicy):
        etag, replaced = await ec.store(ctx, pol, ring, (ctx.account, container, obj),
                                        per_node, source, length, client_etag, ts, footer)
    else:
        result = await putter.upload(ctx.state.backend, ring, part, nodes,
                                     (ctx.account, container, obj), per_node, source, length,
                                     client_etag, footer)
        etag = result.etag
        replaced = {r.headers.get(hdr.X_REPLACED, "") for r in result.replies
                    if 200 <= r.status < 300} - {""}
    out = {"Etag": etag, **timestamp_headers({"x-timestamp": ts}),
           "Content-Type": "text/html; charset=UTF-8"}
    if report and replaced:
        out[hdr.X_REPLACED] = ",".join(sorted(replaced))
    return Resp(201, out)


async def to_all(ctx: ObjectCtx, info: Info, method: str, extra: dict[str, str]) -> list[Reply]:
    """Send a bodiless ``method`` for the object to every replica (handoffs for failures)."""
    policy = policy_of(info)
    ring = ctx.state.backend.rings.get("object", policy)
    part, nodes = ring.get_nodes(ctx.account, ctx.container, ctx.obj)
    ts = new_timestamp()
    headers = []
    for upd in update_headers(ctx, ctx.container, len(nodes)):
        h = {"X-Timestamp": ts, hdr.X_POLICY_INDEX: str(policy), "X-Trans-Id": ctx.trans_id}
        h.update(extra)
        h.update(upd)
        headers.append(h)
    return await ctx.state.backend.write_all(ring, part, nodes, method,
                                             (ctx.account, ctx.container, ctx.obj), headers)


async def delete_object(ctx: ObjectCtx, info: Info,
                        extra: dict[str, str] | None = None) -> Resp:
    """Delete one object on a quorum of nodes."""
    replies = await to_all(ctx, info, "DELETE", extra or {})
    status = best_status(replies, quorum_size(len(replies)))
    if status == 404:
        raise HTTPError(404)
    if status >= 300:
        raise HTTPError(503 if status >= 500 else status)
    return Resp(204, {"Content-Type": "text/html; charset=UTF-8"})


async def backend_listing(ctx: Ctx, container: str, params: dict[str, str]
                          ) -> list[dict[str, Any]]:
    """Return one JSON listing page of a container (empty when missing)."""
    ring = ctx.state.backend.rings.get("container")
    part, nodes = ring.get_nodes(ctx.account, container)
    headers = {hdr.X_ALLOW_RESERVED: "true"} if container[:1] == "\x00" else {}
    reply = await ctx.state.backend.read(ring, part, nodes, "GET", (ctx.account, container),
                                         headers, urllib.parse.urlencode(params))
    if reply.status == 404:
        return []
    if not 200 <= reply.status < 300:
        raise HTTPError(503)
    if not reply.body:
        return []
    try:
        data = json.loads(reply.body)
    except ValueError:
        raise HTTPError(503) from None
    return list(data)


async def one(data: bytes) -> AsyncIterator[bytes]:
    """Yield ``data`` as a one-piece body."""
    yield data


async def observed(source: AsyncIterator[bytes], see: Callable[[bytes], object]
                   ) -> AsyncIterator[bytes]:
    """Yield ``source``'s pieces, each passed to ``see`` first (a digest's ``update``)."""
    async for piece in source:
        see(piece)
        yield piece


