"""Read large objects: GET/HEAD of SLOs and DLOs, streamed from their segments.

An SLO GET expands nested manifests into leaf segments, answers ``?part-number``
and ``?multipart-manifest=get``; a DLO GET lists the segments under its prefix.
Both open the first segment before answering (a missing or changed one is a 409)
and open each segment a range touches only at the bytes it needs. The manifest
format and the segment read check come from :mod:`~nubis.api.proxy.largeobj`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from nubis.api.proxy import objver, symlink
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import (
    check_access_to,
    client_headers,
    container_info,
    last_modified,
    policy_of,
    show_sysmeta,
    timestamp_headers,
)
from nubis.api.proxy.constraints import header_path
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.ec import Fetched
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import check_conditions, parse_range, resolve_ranges, slice_stream
from nubis.api.proxy.largeobj import (
    Segment,
    check_segment_read,
    read_manifest,
    slo_etag,
    slo_segments,
)
from nubis.api.proxy.transfer import backend_listing, fetch, shape_response

# --- SLO GET -------------------------------------------------------------------

#: Swift's generic 409 body (its answer when a GET nests SLOs too deep).
_CONFLICT = ("<html><h1>Conflict</h1><p>There was a conflict when trying to complete "
             "your request.</p></html>")
#: How deep SLOs may nest (Swift's ``max_slo_recursion_depth``).
MAX_SLO_DEPTH = 10


async def _expand(ctx: ObjectCtx, manifest: list[dict[str, Any]], depth: int = 1
                  ) -> list[Segment]:
    """Return the leaf segments of a manifest, nested SLOs replaced by their segments."""
    out: list[Segment] = []
    for seg, entry in zip(slo_segments(manifest), manifest, strict=True):
        if not entry.get("sub_slo"):
            out.append(seg)
            continue
        if depth >= MAX_SLO_DEPTH:
            raise HTTPError(409, _CONFLICT, {"Content-Type": "text/html; charset=UTF-8"})
        cinfo = await container_info(ctx.state, ctx.account, seg.container)
        check_segment_read(ctx, cinfo, seg.container, seg.obj)
        # Swift's sub-manifest GET carries the token only: never X-Open-Expired
        # (the leaf segments' GETs do).
        sub = ObjectCtx.of(ctx)
        sub.headers = {k: v for k, v in ctx.headers.items() if k != "x-open-expired"}
        got = await symlink.resolve(sub, await fetch(
            sub, ctx.account, seg.container, seg.obj, policy_of(cinfo), "GET"), "GET")
        if isinstance(got, Reply):
            raise HTTPError(409, f"Segment {seg.container}/{seg.obj} unavailable")
        try:
            sub = json.loads(await got.read())
            assert isinstance(sub, list)
        except (ValueError, AssertionError):
            raise HTTPError(409, f"Segment {seg.container}/{seg.obj} is not a manifest") from None
        out.extend(_slice(await _expand(ctx, sub, depth + 1), seg.first, seg.length))
    return out


def _slice(segments: list[Segment], first: int, length: int) -> list[Segment]:
    """Return the segments covering bytes ``[first, first+length)`` of their concatenation."""
    out, pos, stop = [], 0, first + length
    for s in segments:
        lo, hi = max(first, pos), min(stop, pos + s.length)
        if lo < hi:
            out.append(Segment(s.container, s.obj, s.first + lo - pos, hi - lo, s.etag,
                               s.data))
        pos += s.length
    return out


async def slo_get(ctx: ObjectCtx, got: Fetched, policy: int) -> Resp:
    """Answer GET/HEAD of an SLO by streaming its segments."""
    headers = dict(got.headers)
    part = _part_number(ctx)
    manifest = await read_manifest(ctx, got, policy)
    segments = await _expand(ctx, manifest)
    etag = slo_etag(manifest)
    out = client_headers(headers)
    show_sysmeta(ctx, headers, out)
    out.update(timestamp_headers(headers))
    out["Etag"] = f'"{etag}"'
    out["X-Static-Large-Object"] = "True"
    out["X-Manifest-Etag"] = headers.get("etag", "").strip('"')
    if part is not None:
        answer = _part_answer(ctx, out, slo_segments(manifest), part)
        if answer is not None:
            return answer
    return await _respond_segments(ctx, out, segments, etag, last_modified(headers),
                                   slo=True)


def _part_number(ctx: ObjectCtx) -> int | None:
    """Return a valid ``?part-number`` (Swift's ``get_valid_part_num``), or None.

    Raises:
        HTTPError: 400 when it is not a positive integer or comes with a Range.
    """
    value = ctx.query.get("part-number")
    if not value:
        return None
    try:
        part = int(value)
    except ValueError:
        part = 0
    if part <= 0:
        raise HTTPError(400, "Part number must be an integer greater than 0")
    if ctx.header("range"):
        raise HTTPError(400, "Range requests are not supported with part number queries")
    return part


def _part_answer(ctx: ObjectCtx, out: dict[str, str], top: list[Segment], part: int
                 ) -> Resp | None:
    """Answer a HEAD or unsatisfiable ``?part-number``; set a GET's Range, return None."""
    total = sum(s.length for s in top)
    out["X-Parts-Count"] = str(len(top))
    if part > len(top):
        out["Content-Range"] = f"bytes */{total}"
        body = b"" if ctx.method == "HEAD" else b"The requested part number is not satisfiable"
        out["Content-Length"] = str(len(body))
        return Resp(416, out, body)
    start = sum(s.length for s in top[:part - 1])
    stop = start + top[part - 1].length
    if ctx.method == "HEAD":
        out["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
        out["Content-Length"] = str(stop - start)
        out["Accept-Ranges"] = "bytes"
        return Resp(206, out, b"", stop - start)
    ctx.headers["range"] = f"bytes={start}-{stop - 1}"
    return None


async def slo_manifest_get(ctx: ObjectCtx, got: Fetched) -> Resp:
    """Answer ``GET ?multipart-manifest=get`` of an SLO: its manifest as JSON.

    With ``format=raw`` the manifest comes in the form a ``multipart-manifest=put``
    takes (``path``/``etag``/``size_bytes``/``range``), as in Swift.
    """
    headers = dict(got.headers)
    raw_format = ctx.query.get("format") == "raw"
    if ctx.method == "HEAD":
        out = client_headers(headers)
        out.update(timestamp_headers(headers))
        out["Etag"] = headers.get("etag", "").strip('"')
        if not raw_format:
            out["Content-Type"] = "application/json; charset=utf-8"
        out["Content-Length"] = headers.get("content-length", "0")
        return Resp(200, out, b"", int(out["Content-Length"]))
    body = await got.read()
    if raw_format:
        try:
            manifest = json.loads(body)
        except ValueError:
            raise HTTPError(503, "Service Unavailable: unreadable SLO manifest") from None
        raw = [seg if "data" in seg else
               {"path": seg["name"], "etag": seg["hash"], "size_bytes": seg["bytes"],
                **({"range": seg["range"]} if seg.get("range") else {})}
               for seg in manifest]
        body = json.dumps(raw).encode()
    out = client_headers(headers)
    out.update(timestamp_headers(headers))
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    if raw_format:  # the stored Content-Type, Swift's unquoted ETag of the body sent
        out["Etag"] = md5
    else:
        out["Content-Type"] = "application/json; charset=utf-8"
        out["Etag"] = f'"{md5}"'
    out["X-Static-Large-Object"] = "True"
    out["Content-Length"] = str(len(body))
    return Resp(200, out, body, len(body))


# --- DLO -------------------------------------------------------------------------

async def dlo_get(ctx: ObjectCtx, headers: dict[str, str]) -> Resp:
    """Answer GET/HEAD of a DLO: the listed segments under its prefix, in order."""
    value = header_path(headers["x-object-manifest"])
    container, _, prefix = value.lstrip("/").partition("/")
    if not container:
        raise HTTPError(400, "X-Object-Manifest must be <container>/<prefix>")
    cinfo = await container_info(ctx.state, ctx.account, container)
    check_access_to(ctx, cinfo.headers.get("x-container-read"), "GET", container, None)
    listing = await _list_prefix(ctx, cinfo, container, prefix) if cinfo.exists else []
    segments = [Segment(container, str(o["name"]), 0, int(o["bytes"]), None)
                for o in listing]
    md5 = hashlib.md5(usedforsecurity=False)
    for o in listing:
        md5.update(str(o["hash"]).strip('"').encode())
    etag = md5.hexdigest()
    out = client_headers(headers)
    out.update(timestamp_headers(headers))
    out["Etag"] = f'"{etag}"'
    return await _respond_segments(ctx, out, segments, etag, last_modified(headers),
                                   multi_range=False)


async def _list_prefix(ctx: ObjectCtx, info: Info, container: str, prefix: str
                       ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    marker = ""
    while True:
        page = await backend_listing(ctx, container, {"prefix": prefix, "marker": marker,
                                                     "format": "json", "limit": "10000"})
        if not page:
            return out
        if objver.SYSMETA_CONT in info.headers:  # segments that are version links
            objver.show_targets(page)
        out.extend(page)
        marker = str(page[-1]["name"])
        if len(page) < 10000:
            return out


# --- streaming segments --------------------------------------------------------

async def _respond_segments(ctx: ObjectCtx, headers: dict[str, str], segments: list[Segment],
                            etag: str, modified: float, *, multi_range: bool = True,
                            slo: bool = False) -> Resp:
    """Answer with the concatenated segments (conditions, ranges).

    A DLO ignores multi-range requests and answers them whole, as Swift's dlo does.
    An SLO whose segments the caller may not read is a 409 (Swift's segment error).
    """
    length = sum(s.length for s in segments)
    # Authorise every segment container before any byte is sent.
    for container in sorted({s.container for s in segments if s.data is None}):
        cinfo = await container_info(ctx.state, ctx.account, container)
        first = next(s for s in segments if s.container == container)
        try:
            check_segment_read(ctx, cinfo, container, first.obj)
        except HTTPError as exc:
            if not slo or exc.status not in (401, 403):
                raise
            raise HTTPError(409, _CONFLICT, {"Content-Type": "text/html; charset=UTF-8"}
                            ) from None
    cond = check_conditions(ctx.headers, etag, modified, ctx.method)
    if cond == 304:
        return Resp(304, {**{k: v for k, v in headers.items() if k != "Content-Length"},
                          "Accept-Ranges": "bytes"})
    if cond is not None:
        raise HTTPError(cond)
    headers["Accept-Ranges"] = "bytes"
    ranges = parse_range(ctx.header("range")) if ctx.method == "GET" else None
    if ranges is not None and not multi_range and len(ranges) > 1:
        ranges = None
    if ranges is not None:
        spans = resolve_ranges(ranges, length)
        if len(spans) == 1:
            a, b = spans[0]
            headers["Content-Range"] = f"bytes {a}-{b - 1}/{length}"
            headers["Content-Length"] = str(b - a)
            return Resp(206, headers, await _open_segments(ctx, segments, a, b), b - a)
        return await shape_response(ctx, headers, await _open_segments(ctx, segments, 0, length),
                                    length, etag, modified, None)
    headers["Content-Length"] = str(length)
    if ctx.method == "HEAD":
        return Resp(200, headers, b"", length)
    return Resp(200, headers, await _open_segments(ctx, segments, 0, length), length)


async def _open_segments(ctx: ObjectCtx, segments: list[Segment], start: int,
                        stop: int) -> AsyncIterator[bytes]:
    """Open the first segment of bytes ``[start, stop)``; return the stream of them all.

    As Swift's ``validate_first_segment``: a first segment that is missing or
    changed is the client's 409 before any header is sent, not a cut body. The
    account is fixed now: a copy reads its source under another account and
    restores ``ctx`` before the body is streamed.

    Raises:
        HTTPError: 409 (Swift's body) when the first stored segment cannot be read.
    """
    first: tuple[int, Fetched] | None = None
    pos = 0
    for index, seg in enumerate(segments):
        pos += seg.length
        if pos <= start or seg.length == 0:
            continue
        if seg.data is None:
            try:
                first = (index, await _open_segment(
                    ctx, ctx.account, seg, _segment_span(seg, pos - seg.length, start, stop)))
            except HTTPError:
                raise HTTPError(409, _CONFLICT,
                                {"Content-Type": "text/html; charset=UTF-8"}) from None
        break
    return _stream_segments(ctx, ctx.account, segments, start, stop, first)


def _segment_span(seg: Segment, seg_start: int, start: int, stop: int) -> tuple[int, int]:
    """Return the bytes ``[lo, hi)`` of the stored segment that object bytes ``[start, stop)`` need.

    ``seg_start``: where the segment starts in the large object.
    """
    return (seg.first + max(0, start - seg_start),
            seg.first + min(seg.length, stop - seg_start))


async def _open_segment(ctx: ObjectCtx, account: str, seg: Segment,
                        span: tuple[int, int] | None = None) -> Fetched:
    """GET one stored segment as the caller (409 when missing or changed).

    ``span`` (its bytes ``[lo, hi)`` to be read): the segment is opened there
    when its store can (a range of a large object reads only what it returns);
    the answer's ``offset`` says where its body starts.
    """
    cinfo = await container_info(ctx.state, account, seg.container)
    check_segment_read(ctx, cinfo, seg.container, seg.obj, account)
    got = await symlink.resolve(ctx, await fetch(
        ctx, account, seg.container, seg.obj, policy_of(cinfo), "GET",
        (span[0], span[1] - 1) if span is not None and span[1] > span[0] else None), "GET")
    if isinstance(got, Reply):
        raise HTTPError(409, f"Segment {seg.container}/{seg.obj} unavailable")
    if seg.etag and got.headers.get("etag", "").strip('"') != seg.etag:
        got.close()
        raise HTTPError(409, f"Segment {seg.container}/{seg.obj} changed")
    return got


async def _stream_segments(ctx: ObjectCtx, account: str, segments: list[Segment], start: int,
                           stop: int, first: tuple[int, Fetched] | None = None
                           ) -> AsyncIterator[bytes]:
    pos = 0
    deadline = time.monotonic() + 24 * 3600
    try:
        for index, seg in enumerate(segments):
            seg_start, seg_stop = pos, pos + seg.length
            pos = seg_stop
            if seg_stop <= start or seg.length == 0:
                continue
            if seg_start >= stop or time.monotonic() > deadline:
                return
            lo, hi = _segment_span(seg, seg_start, start, stop)
            if seg.data is not None:
                yield seg.data[lo:hi]
                continue
            if first is not None and first[0] == index:
                got, first = first[1], None
            else:
                got = await _open_segment(ctx, account, seg, (lo, hi))
            async for chunk in slice_stream(got.iter_body(), lo - got.offset, hi - got.offset):
                yield chunk
            got.close()
    finally:
        if first is not None:  # opened ahead but never streamed
            first[1].close()
