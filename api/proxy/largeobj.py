"""Static large objects: write, check and delete SLO (``?multipart-manifest=``) manifests.

A ``?multipart-manifest=put`` is parsed, checked against its segments (as the
caller) and stored with the sysmeta listings show; ``?multipart-manifest=delete``
removes a manifest and its segments. The stored manifest's format (:class:`Segment`,
:func:`slo_segments`, :func:`read_manifest`, :func:`slo_etag`) and the segment read
check are shared with :mod:`~nubis.api.proxy.largeread`, which answers GET/HEAD of
SLOs and DLOs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from nubis.api.proxy import auth, objver, symlink, versioning
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import (
    check_access,
    container_info,
    last_modified,
    policy_of,
    require_found,
)
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.ec import Fetched
from nubis.api.proxy.errors import REASONS, HTTPError
from nubis.api.proxy.httputil import http_date, parse_range, resolve_ranges
from nubis.api.proxy.transfer import delete_object, fetch, object_metadata, one, store

#: Largest manifest body accepted on PUT.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024

SLO_ETAG = "X-Object-Sysmeta-Slo-Etag"
SLO_SIZE = "X-Object-Sysmeta-Slo-Size"
#: Stored with the manifest; the object servers put them into the container
#: update instead of the manifest's own size and ETag (Swift's
#: ``get_container_update_override_key``).
OVERRIDE_ETAG = "X-Object-Sysmeta-Container-Update-Override-Etag"
OVERRIDE_SIZE = "X-Object-Sysmeta-Container-Update-Override-Size"


@dataclass(frozen=True)
class Segment:
    """One piece of a large object: ``container/obj`` bytes ``[first, first+length)``."""

    container: str
    obj: str
    first: int
    length: int
    etag: str | None
    #: Inline bytes of a ``{"data": <base64>}`` manifest entry (no object behind it).
    data: bytes | None = None


def _data_of(entry: dict[str, Any]) -> bytes:
    """Return the bytes of an inline-data manifest entry (400 when not base64)."""
    try:
        return base64.b64decode(str(entry["data"]), validate=True)
    except (ValueError, TypeError):
        raise HTTPError(400, "Invalid data segment: not base64") from None


# --- SLO PUT -------------------------------------------------------------------

#: The keys a path segment of a manifest may have (Swift's ``SLO_KEYS``).
_PATH_KEYS = frozenset({"path", "etag", "size_bytes", "range"})


def parse_manifest(body: bytes, max_segments: int) -> list[dict[str, Any]]:
    """Parse and check the JSON of a ``?multipart-manifest=put`` request (400 if bad)."""
    try:
        items = json.loads(body)
    except ValueError:
        raise HTTPError(400, "Manifest must be valid JSON.") from None
    if not isinstance(items, list) or not items:
        raise HTTPError(400, "Manifest must be a non-empty list of segments.")
    if len(items) > max_segments:
        raise HTTPError(400, f"Too many segments in manifest; max {max_segments}")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and "data" in item and "path" not in item:
            if set(item) != {"data"} or not _data_of(item):
                raise HTTPError(400, f"Index {i}: invalid data segment")
            out.append({"data": item["data"]})
            continue
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise HTTPError(400, f"Index {i}: segment must have a path")
        extra = sorted(k for k in item if k not in _PATH_KEYS)
        if extra:
            raise HTTPError(400, f"Index {i}: extraneous keys "
                                 + ", ".join(json.dumps(k) for k in extra))
        path = item["path"].lstrip("/")
        container, _, obj = path.partition("/")
        if not container or not obj:
            raise HTTPError(400, f"Index {i}: invalid path {item['path']!r}")
        size = item.get("size_bytes")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise HTTPError(400, f"Index {i}: invalid size_bytes")
        etag = item.get("etag")
        if etag is not None and not isinstance(etag, str):
            raise HTTPError(400, f"Index {i}: invalid etag")
        rng = item.get("range")
        if rng is not None and not isinstance(rng, str):
            raise HTTPError(400, f"Index {i}: invalid range")
        out.append({"container": container, "obj": obj, "size_bytes": size,
                    "etag": etag.strip('"').lower() if etag else None, "range": rng,
                    "path": item["path"]})
    return out


def slo_etag(manifest: list[dict[str, Any]]) -> str:
    """Return an SLO's ETag: md5 of its segment ETags (with ranges, like Swift)."""
    md5 = hashlib.md5(usedforsecurity=False)
    for seg in manifest:
        if "data" in seg:
            md5.update(hashlib.md5(_data_of(seg), usedforsecurity=False).hexdigest().encode())
        elif seg.get("range"):
            md5.update(f"{seg['hash']}:{seg['range']};".encode())
        else:
            md5.update(str(seg["hash"]).encode())
    return md5.hexdigest()


async def slo_put(ctx: ObjectCtx, info: Info) -> Resp:
    """Validate an SLO manifest against its segments and store it."""
    body = await ctx.body.read_all(MAX_MANIFEST_BYTES)
    items = parse_manifest(body, ctx.state.conf.max_manifest_segments)
    for i, item in enumerate(items):
        if (item.get("container"), item.get("obj")) == (ctx.container, ctx.obj):
            raise HTTPError(400, f"Index {i}: manifest must not include itself as a segment")
    if ctx.query.get("heartbeat", "").lower() in ("on", "true", "1", "yes"):
        fmt = _heartbeat_format(ctx.header("accept"))
        return Resp(202, {"Content-Type": fmt}, _heartbeat_put(ctx, info, items, fmt))
    stored, errors = await _check_segments(ctx, items)
    if errors:
        raise HTTPError(400, "Errors:\n" + "\n".join(errors))
    return await _store_manifest(ctx, info, stored)


async def _store_manifest(ctx: ObjectCtx, info: Info, stored: list[dict[str, Any]]) -> Resp:
    """Store a checked manifest (answer 201 with the SLO ETag)."""
    data = json.dumps(stored).encode()
    meta = object_metadata(ctx)
    meta["x-static-large-object"] = "True"
    extra = manifest_sysmeta(data, stored)
    client = ctx.header("etag").strip('"').lower()
    if client and client != extra[SLO_ETAG]:
        raise HTTPError(422)
    if objver.SYSMETA_ENABLED in info.headers and objver.enabled(info):
        resp = await objver.put(ctx, info, meta, one(data), len(data), None, extra)
    else:
        await versioning.before_put(ctx, info)
        resp = await store(ctx, info, ctx.container, ctx.obj, meta, one(data), len(data),
                           None, extra)
    resp.headers["Etag"] = f'"{extra[SLO_ETAG]}"'
    return resp


_BAD_REQUEST = ("Bad Request\nThe server could not comply with the request since it is "
                "either malformed or otherwise incorrect.")
_UNPROCESSABLE = "Unprocessable Entity\nUnable to process the contained instructions"


def _heartbeat_format(accept: str) -> str:
    """Return the result format of a heartbeat PUT (Swift's best Accept match)."""
    for fmt in ("application/json", "application/xml", "text/xml"):
        if fmt in accept:
            return fmt
    return "text/plain"


async def _heartbeat_put(ctx: ObjectCtx, info: Info, items: list[dict[str, Any]],
                         fmt: str) -> AsyncIterator[bytes]:
    """Stream a ``heartbeat=on`` manifest PUT: spaces, then the result as a body."""
    yield b" "
    stored, errors = await _check_segments(ctx, items)
    result: dict[str, Any] = {}
    problems = [e.rsplit(", ", 1) for e in errors]
    if problems:
        result = {"Response Status": "400 Bad Request", "Response Body": _BAD_REQUEST}
    else:
        try:
            resp = await _store_manifest(ctx, info, stored)
        except HTTPError as exc:
            body = _UNPROCESSABLE if exc.status == 422 else exc.body
            result = {"Response Status": f"{exc.status} {REASONS.get(exc.status, '')}",
                      "Response Body": body}
        else:
            result = {"Response Status": "201 Created", "Response Body": "",
                      "Etag": resp.headers["Etag"],
                      "Last Modified": resp.headers.get("Last-Modified", "")}
    yield b"\r\n\r\n" + _heartbeat_body(fmt, result, problems)


def _heartbeat_body(fmt: str, result: dict[str, Any], problems: list[list[str]]) -> bytes:
    """Render a heartbeat result like Swift's ``get_heartbeat_response_body``."""
    if fmt == "application/json":
        return json.dumps({**result, "Errors": problems}).encode("ascii")
    if fmt.endswith("/xml"):
        out = ["<upload>\n"]
        out += [f"<{k.replace(' ', '_').lower()}>{xml_escape(str(v))}"
                f"</{k.replace(' ', '_').lower()}>\n" for k, v in sorted(result.items())]
        out.append("<errors>\n")
        out += [f"<object><name>{xml_escape(n)}</name><status>{xml_escape(st)}</status>"
                "</object>\n" for n, st in problems]
        out.append("</errors>\n</upload>\n")
        return "".join(out).encode()
    lines = [f"{k}: {v}\n" for k, v in sorted(result.items())]
    lines.append("Errors:\n")
    lines += [f"{n}, {st}\n" for n, st in problems]
    return "".join(lines).encode()


async def check_copied_manifest(ctx: ObjectCtx, data: bytes) -> None:
    """Check a manifest copied as itself against its segments at the destination.

    Swift's copy turns ``?multipart-manifest=get`` into a manifest PUT there, so
    the caller must be able to read every segment in the destination account
    (400 listing each failing segment otherwise).
    """
    try:
        manifest = json.loads(data)
        items = [{"data": seg["data"]} if "data" in seg else {
            "container": seg["name"].lstrip("/").partition("/")[0],
            "obj": seg["name"].lstrip("/").partition("/")[2],
            "size_bytes": None, "etag": None, "range": None} for seg in manifest]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HTTPError(400, "Invalid SLO manifest") from None
    _stored, errors = await _check_segments(ctx, items)
    if errors:
        raise HTTPError(400, "Errors:\n" + "\n".join(errors))


def manifest_sysmeta(data: bytes, manifest: list[dict[str, Any]] | None = None
                     ) -> dict[str, str]:
    """Return the sysmeta stored with the SLO manifest ``data`` (as Swift's slo does).

    Listings then show the large object's total size as ``bytes`` and, like
    Swift, the manifest's own MD5 as ``hash`` plus ``slo_etag``.

    Raises:
        HTTPError: 400 when ``data`` is not a stored manifest.
    """
    if manifest is None:
        try:
            manifest = json.loads(data)
            assert isinstance(manifest, list)
            total = sum(_seg_size(s) for s in manifest)
        except (ValueError, AssertionError, KeyError, TypeError):
            raise HTTPError(400, "Invalid SLO manifest") from None
    else:
        total = sum(_seg_size(s) for s in manifest)
    etag = slo_etag(manifest)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return {SLO_ETAG: etag, SLO_SIZE: str(total),
            OVERRIDE_ETAG: f"{md5}; slo_etag={etag}", OVERRIDE_SIZE: str(total)}


def _seg_size(seg: dict[str, Any]) -> int:
    if "data" in seg:
        return len(_data_of(seg))
    rng = seg.get("range")
    if not rng:
        return int(seg["bytes"])
    a, b = _range_bounds(str(rng), int(seg["bytes"]))
    return b - a


def _range_bounds(rng: str, size: int) -> tuple[int, int]:
    parsed = parse_range(f"bytes={rng}")
    if parsed is None or len(parsed) != 1:
        raise HTTPError(400, f"Invalid segment range {rng!r}")
    return resolve_ranges(parsed, size)[0]


async def _check_segments(ctx: ObjectCtx, items: list[dict[str, Any]]
                          ) -> tuple[list[dict[str, Any]], list[str]]:
    stored: list[dict[str, Any]] = []
    errors: list[str] = []
    for i, item in enumerate(items):
        if "data" in item:
            stored.append(item)
            continue
        name = f"/{item['container']}/{item['obj']}"
        path = item.get("path") or name  # errors name the segment as the client did
        cinfo = await container_info(ctx.state, ctx.account, item["container"])
        try:
            check_segment_read(ctx, cinfo, item["container"], item["obj"])
        except HTTPError as exc:
            errors.append(f"{urllib.parse.quote(path)}, {exc.status} Forbidden")
            continue
        if not cinfo.exists:
            errors.append(f"{urllib.parse.quote(path)}, 404 Not Found")
            continue
        got = await symlink.resolve(ctx, await fetch(
            ctx, ctx.account, item["container"], item["obj"], policy_of(cinfo), "HEAD"), "HEAD")
        if isinstance(got, Reply):
            errors.append(f"{urllib.parse.quote(path)}, {got.status} "
                          f"{'Not Found' if got.status == 404 else 'Error'}")
            continue
        await got.release()
        h = got.headers
        size = int(h.get("content-length", "0"))
        etag = h.get("etag", "").strip('"').lower()
        sub_slo = h.get("x-static-large-object", "").lower() == "true"
        if sub_slo:  # a nested SLO counts with its total size and SLO ETag
            size = int(h.get(SLO_SIZE.lower(), "0") or 0)
            etag = h.get(SLO_ETAG.lower(), "").strip('"').lower()
        if item["size_bytes"] is not None and item["size_bytes"] != size:
            errors.append(f"{urllib.parse.quote(path)}, Size Mismatch")
        if item["etag"] is not None and item["etag"] != etag:
            errors.append(f"{urllib.parse.quote(path)}, Etag Mismatch")
        if size < 1 and i < len(items) - 1:
            errors.append(f"{urllib.parse.quote(path)}, Too small; each segment must be "
                          f"at least 1 byte.")
        seg = {"name": name, "hash": etag, "bytes": size,
               "content_type": h.get("content-type", "application/octet-stream"),
               "last_modified": http_date(last_modified(h))}
        if sub_slo:
            seg["sub_slo"] = True
        if item["range"]:
            try:
                a, b = _range_bounds(item["range"], size)
            except HTTPError:
                errors.append(f"{urllib.parse.quote(path)}, Unsatisfiable Range")
            else:  # stored resolved, and dropped when it is the whole segment (Swift)
                if (a, b) != (0, size):
                    seg["range"] = f"{a}-{b - 1}"
        stored.append(seg)
    return stored, errors


def check_segment_read(ctx: ObjectCtx, cinfo: Info, container: str, obj: str,
                       account: str | None = None) -> None:
    """Refuse segments the caller may not read themselves (like Swift's sub-requests)."""
    if ctx.tempurl is not None:
        if ctx.tempurl_container is not None and (
                container != ctx.tempurl_container or (account or ctx.account) != ctx.account):
            raise HTTPError(401, "Unauthorized: the temp URL's container key does not "
                                 "reach this segment")
        return
    acct = account or ctx.account
    auth.authorize(ctx.identity, "GET", acct, container, obj,
                   cinfo.headers.get("x-container-read"), ctx.header("referer") or None,
                   ctx.account_levels.get(acct), acct in ctx.acl_names)


# --- SLO DELETE ----------------------------------------------------------------

async def read_manifest(ctx: ObjectCtx, got: Fetched, policy: int) -> list[dict[str, Any]]:
    """Return the JSON manifest of a fetched SLO, read again with a GET if need be."""
    if ctx.method == "HEAD" or not got.headers.get("content-length"):
        await got.release()
        again = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy, "GET")
        if isinstance(again, Reply):
            raise HTTPError(503 if again.status >= 500 else again.status)
        got = again
    body = await got.read()
    try:
        manifest = json.loads(body)
        assert isinstance(manifest, list)
    except (ValueError, AssertionError):
        raise HTTPError(503, "Service Unavailable: unreadable SLO manifest") from None
    return manifest


def slo_segments(manifest: list[dict[str, Any]]) -> list[Segment]:
    """Return the segments a stored manifest names, nested SLOs not expanded."""
    out = []
    for seg in manifest:
        if "data" in seg:
            data = _data_of(seg)
            out.append(Segment("", "", 0, len(data), None, data))
            continue
        name = str(seg["name"]).lstrip("/")
        container, _, obj = name.partition("/")
        size = int(seg["bytes"])
        first, stop = (0, size) if not seg.get("range") else _range_bounds(seg["range"], size)
        out.append(Segment(container, obj, first, stop - first, str(seg.get("hash") or "")))
    return out


async def slo_delete(ctx: ObjectCtx, info: Info) -> Resp:
    """Delete an SLO manifest and all its segments; report like Swift's bulk delete."""
    got = await fetch(ctx, ctx.account, ctx.container, ctx.obj, policy_of(info))
    if isinstance(got, Reply):
        raise HTTPError(404 if got.status == 404 else 503)
    if got.headers.get("x-static-large-object", "").lower() != "true":
        await got.release()
        raise HTTPError(400, "Not an SLO manifest")
    manifest = await read_manifest(ctx, got, policy_of(info))
    return await _delete_manifest_and_segments(ctx, manifest, lambda: delete_object(ctx, info))


async def slo_delete_version(ctx: ObjectCtx, info: Info, version_id: str) -> Resp:
    """Answer DELETE ``?version-id&multipart-manifest=delete``: a version with its segments.

    A version that is not an SLO manifest is deleted as the plain ``?version-id``
    DELETE does (Swift's SLO middleware passes it on).
    """
    vcont = objver.check_version_request(ctx, info, version_id)
    vinfo = await container_info(ctx.state, ctx.account, vcont)
    vname = objver.version_object(ctx.obj, version_id)
    got = (await fetch(ctx, ctx.account, vcont, vname, policy_of(vinfo))
           if vinfo.exists else None)
    if got is None or isinstance(got, Reply):
        return await objver.delete_version(ctx, info, version_id)
    if got.headers.get("x-static-large-object", "").lower() != "true":
        await got.release()
        return await objver.delete_version(ctx, info, version_id)
    manifest = await read_manifest(ObjectCtx.of(ctx, container=vcont, obj=vname), got,
                                   policy_of(vinfo))
    return await _delete_manifest_and_segments(ctx, manifest,
                                               lambda: objver.delete_version(ctx, info, version_id))


async def _delete_manifest_and_segments(ctx: ObjectCtx, manifest: list[dict[str, Any]],
                                        delete_manifest: Callable[[], Awaitable[Any]]) -> Resp:
    """Delete the segments, then the manifest itself; report like Swift's bulk delete."""
    deleted, missing, errors = await _delete_segments(ctx, manifest)
    try:
        await delete_manifest()
        deleted += 1
    except HTTPError as exc:
        if exc.status != 404:
            raise
        missing += 1
    return _bulk_result(ctx, deleted, missing, errors)


async def _delete_segments(ctx: ObjectCtx, manifest: list[dict[str, Any]]
                           ) -> tuple[int, int, list[list[str]]]:
    """Delete an SLO's segments as the caller; return (deleted, not found, errors)."""
    deleted, missing, errors = 0, 0, []
    saved = (ctx.container, ctx.obj)
    for seg in slo_segments(manifest):
        if seg.data is not None:
            continue
        ctx.container, ctx.obj = seg.container, seg.obj
        try:
            sinfo = await container_info(ctx.state, ctx.account, seg.container)
            check_access(ctx, sinfo.headers.get("x-container-write"))
            require_found(sinfo)
            await delete_object(ctx, sinfo)
            deleted += 1
        except HTTPError as exc:
            if exc.status == 404:
                missing += 1
            else:
                errors.append([f"/{seg.container}/{seg.obj}", f"{exc.status}"])
    ctx.container, ctx.obj = saved
    return deleted, missing, errors


def _bulk_result(ctx: ObjectCtx, deleted: int, missing: int, errors: list[list[str]]) -> Resp:
    status = "400 Bad Request" if errors else "200 OK"
    if "json" in ctx.header("accept"):
        body = json.dumps({"Number Deleted": deleted, "Number Not Found": missing,
                           "Response Body": "", "Response Status": status,
                           "Errors": errors}).encode()
        return Resp(200, {"Content-Type": "application/json; charset=utf-8"}, body)
    text = (f"Number Deleted: {deleted}\nNumber Not Found: {missing}\nResponse Body: \n"
            f"Response Status: {status}\nErrors: \n"
            + "".join(f"{p}, {s}\n" for p, s in errors))
    return Resp(200, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())
