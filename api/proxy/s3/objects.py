"""Object operations: Put, Get, Head, Delete, DeleteObjects, CopyObject.

Each is a Swift operation on the bucket's container through the proxy's own
controllers (GET/HEAD/DELETE/COPY) or its storage path (PUT, so the payload
can be verified while it streams). S3 metadata maps to Swift's:
``x-amz-meta-*`` ⇄ ``x-object-meta-*``; checksums and multipart ETags are
``x-object-sysmeta-s3-*``.
"""

from __future__ import annotations

import email.utils
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from nubis.api.proxy.base import check_access
from nubis.api.proxy.constraints import delete_at_from_headers
from nubis.api.proxy.context import ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.largeobj import SLO_ETAG
from nubis.api.proxy.s3 import checksums, conditions, grants, segments, tagging, versioning
from nubis.api.proxy.s3.auth import (
    PayloadResult,
    check_content_md5,
    content_md5,
    decoded_length,
    payload_stream,
)
from nubis.api.proxy.s3.conditions import ETAG_META
from nubis.api.proxy.s3.errors import S3Error, bad_digest, from_swift
from nubis.api.proxy.s3.request import S3Req, bytes_body, drain, header_of, read_body
from nubis.api.proxy.s3.xmlio import MAX_XML, doc, el, iso, parse, text
from nubis.api.proxy.transfer import container_of
from nubis.api.shared import awssig
from nubis.fastpath import crc

#: S3's limit on the user metadata of one object (names + values).
MAX_META = 2048
CHECKSUM_META = checksums.CHECKSUM_META
_PASS = ("content-type", "cache-control", "content-disposition", "content-language",
         "expires", "x-robots-tag")
#: Request headers a GetObject passes on to Swift (ranges and conditions).
_PASSED_CONDITIONS = ("range", "if-match", "if-none-match", "if-modified-since",
                      "if-unmodified-since")
#: Swift answer headers an S3 answer keeps, by what becomes of them.
_ANSWER_HEADERS = {
    **dict.fromkeys(("content-type", "content-length", "content-range", "last-modified",
                     "accept-ranges", "cache-control", "content-disposition",
                     "content-encoding", "content-language", "expires", "x-robots-tag",
                     "x-amz-mp-parts-count"),
                    "pass"),
    "etag": "etag", "x-object-version-id": "version", "x-delete-at": "delete-at"}
_OVERRIDES = {"response-content-type": "Content-Type",
              "response-content-language": "Content-Language",
              "response-expires": "Expires", "response-cache-control": "Cache-Control",
              "response-content-disposition": "Content-Disposition",
              "response-content-encoding": "Content-Encoding"}


def swift_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """Map an S3 request's object metadata to Swift headers (MetadataTooLarge past 2 KiB)."""
    out: dict[str, str] = {}
    size = 0
    for k, v in headers.items():
        if k.startswith("x-amz-meta-"):
            name = k[len("x-amz-meta-"):]
            size += len(name) + len(v.encode("utf-8"))
            out["x-object-meta-" + name] = v
    if size > MAX_META:
        raise S3Error("MetadataTooLarge", extra={"Size": str(size),
                                                 "MaxSizeAllowed": str(MAX_META)})
    for k in _PASS:
        if k in headers:
            out[k] = headers[k]
    try:
        delete_at = delete_at_from_headers(headers)
    except HTTPError as exc:
        raise S3Error("InvalidArgument", exc.body.strip()) from None
    if delete_at is not None:
        out["x-delete-at"] = str(delete_at)
    # aws-chunked is how the body was sent, when it was (a STREAMING-* payload).
    streamed = headers.get("x-amz-content-sha256", "") in awssig.STREAMING_MODES
    enc = ",".join(e for e in headers.get("content-encoding", "").split(",")
                   if e.strip() and not (streamed and e.strip() == "aws-chunked"))
    if enc:
        out["content-encoding"] = enc
    out.setdefault("content-type", "binary/octet-stream")
    return out


def object_ctx(req: S3Req, method: str, key: str | None = None) -> ObjectCtx:
    """Return a Swift object context for the request's bucket and ``key``."""
    base = req.ctx
    assert req.caller is not None
    return ObjectCtx(state=base.state, method=method, path=base.path, query={},
                     headers={}, body=base.body, account=req.account,
                     identity=req.identity, trans_id=base.trans_id,
                     container=req.bucket, obj=key if key is not None else req.key)


async def put(req: S3Req) -> Resp:
    """Answer PutObject: verify the payload as it streams, store it."""
    if "x-amz-copy-source" in req.ctx.headers:
        return await copy_object(req)
    _check_key(req.key)
    headers = req.ctx.headers
    conditions.refuse_unsupported(headers)
    length = decoded_length(headers)
    awssig.check_request_checksums(headers)
    meta = swift_metadata(headers)
    meta.update(await grants.new_object_headers(req))
    if "x-amz-tagging" in headers:
        meta[tagging.OBJECT_META] = tagging.encode(tagging.tags_from_header(
            headers["x-amz-tagging"]))
    octx = object_ctx(req, "PUT")
    info = await container_of(octx)
    check_access(octx, info.headers.get("x-container-write"))
    if not info.exists:
        raise S3Error("NoSuchBucket")
    await conditions.check_write(req)
    # A header's checksum is stored with the object (the stream checks it before its
    # last piece: a mismatch fails the write); a trailer's is known only at the end
    # and goes as a footer, stored in the same write, as does the default one S3
    # computes for an upload that sends none.
    claimed = None if "x-amz-trailer" in headers else awssig.checksum_algo_of(headers)
    if claimed is not None:
        meta[CHECKSUM_META] = ":".join(claimed)
    default = default_checksum(req, headers, claimed)
    result = PayloadResult()
    source = payload_stream(req.ctx.body, req.caller, headers, result, default)
    report = segments.report_for(info)

    def footer() -> dict[str, str]:
        if not result.checksum:
            return {}
        added = {checksums.DEFAULT_META: "true"} if default else {}
        return {CHECKSUM_META: ":".join(result.checksum), **added}

    try:
        resp = await versioning.store_current(
            octx, info, meta, source, length, content_md5(headers), report=report,
            footer=footer if "x-amz-trailer" in headers or default else None)
    except HTTPError as exc:
        if exc.status == 422:
            raise bad_digest(headers.get("content-md5", "")) from None
        raise from_swift(exc, "NoSuchBucket") from None
    await segments.drop_replaced(req, resp)
    etag = resp.headers["Etag"].strip('"')
    out = {"ETag": f'"{etag}"', **versioning.s3_headers(resp.headers)}
    if result.checksum:  # a PutObject's checksum is always of the whole object
        out[f"x-amz-checksum-{result.checksum[0]}"] = result.checksum[1]
        out["x-amz-checksum-type"] = checksums.FULL_OBJECT
    return Resp(200, out)


def default_checksum(req: S3Req, headers: Mapping[str, str],
                      claimed: tuple[str, str] | None) -> str | None:
    """Return the algorithm of the checksum to add to an upload that sends none.

    S3 computes a CRC64NVME then (``[proxy] s3_default_checksum``); with the pure
    Python CRC twin loaded (no compiled kernels) nubis adds none: ~8 MB/s would cost
    a 1 MiB PUT ~0.1 s of the proxy's CPU (``python -m nubis.bench crc``).
    """
    algo = req.ctx.state.conf.s3_default_checksum
    if algo == "none" or claimed is not None or "x-amz-trailer" in headers \
            or crc.IMPLEMENTATION != "cython":
        return None
    return algo


def _check_key(key: str) -> None:
    if len(key.encode("utf-8")) > 1024:
        raise S3Error("KeyTooLongError")


def part_number(req: S3Req) -> int:
    """Return the request's ``partNumber`` (InvalidArgument unless 1 to 10,000)."""
    raw = req.q.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= segments.MAX_PARTS:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and "
                      "10000, inclusive", extra={"ArgumentName": "partNumber",
                                                 "ArgumentValue": raw})
    return int(raw)


async def get_or_head(req: S3Req) -> Resp:
    """Answer GetObject / HeadObject (ranges, parts, conditions, response-* overrides)."""
    headers = req.ctx.headers
    swift_headers = {k: headers[k] for k in _PASSED_CONDITIONS if k in headers}
    method = req.ctx.method
    if "if-match" in swift_headers or "if-none-match" in swift_headers:
        conditions.drop_overridden(swift_headers)
        await _multipart_conditions(req, swift_headers)
    ranged_head = method == "HEAD" and "range" in swift_headers
    version = versioning.requested(req)
    if version is not None:
        await versioning.check_version(req, req.bucket, req.key, version)
    query = {"version-id": version} if version is not None else {}
    part = None
    if req.q and "partNumber" in req.q:
        if "range" in swift_headers:  # before the part number's own checks, as S3
            raise S3Error("InvalidRequest", "Cannot specify both Range header and "
                          "partNumber query parameter")
        part = part_number(req)
        query["part-number"] = str(part)
    try:
        resp = await req.swift("GET" if ranged_head else method, req.bucket, req.key,
                               swift_headers, query or None)
    except HTTPError as exc:
        if version is not None and exc.status in (400, 404):
            await require_bucket(req)
            raise versioning.read_error(exc, req, version) from None
        if exc.status == 404:
            await require_bucket(req)
            raise S3Error("NoSuchKey", headers=await versioning.latest_marker(req)) from None
        if exc.status == 412:
            raise S3Error("PreconditionFailed", extra={"Condition": _condition(req)}) \
                from None
        if exc.status == 416:
            raise S3Error("InvalidPartNumber" if part else "InvalidRange") from None
        raise from_swift(exc) from None
    if part is not None:
        resp = await _part_of(resp, part)
    out = _s3_headers(resp.headers)
    if ranged_head:
        size = len(resp.body) if isinstance(resp.body, bytes) else resp.length
        await drain(resp.body)
        out["Content-Length"] = str(size or 0)
        return Resp(resp.status, out, b"")
    if resp.status == 304:
        await drain(resp.body)
        return Resp(304, out)
    if ETAG_META in resp.headers or ("x-amz-checksum-mode" in headers
                                      and headers["x-amz-checksum-mode"].upper() == "ENABLED"):
        await _sysmeta_headers(req, resp.headers, out, part)
    if req.q:
        for param, name in _OVERRIDES.items():
            if param in req.q:
                out[name] = req.q[param]
    return Resp(resp.status, out, resp.body, resp.length)


async def _part_of(resp: Resp, part: int) -> Resp:
    """Shape a ``partNumber`` read: a multipart object's part, or a plain object whole.

    Swift answers an SLO's part itself (206, ``X-Parts-Count``: S3's
    ``x-amz-mp-parts-count``); an object that was not uploaded in parts has one
    part, itself, answered as a range covering it (S3 does so).
    """
    if resp.status == 416:  # past a multipart object's last part
        await drain(resp.body)
        raise S3Error("InvalidPartNumber")
    count = header_of(resp.headers, "x-parts-count")
    if count is not None:
        resp.headers["x-amz-mp-parts-count"] = count
        return resp
    if part != 1:
        await drain(resp.body)
        raise S3Error("InvalidPartNumber")
    size = int(header_of(resp.headers, "content-length") or 0)
    if resp.status == 200 and size:
        resp.status = 206
        resp.headers["Content-Range"] = f"bytes 0-{size - 1}/{size}"
    return resp


def _condition(req: S3Req) -> str:
    for name, label in (("if-match", "If-Match"), ("if-unmodified-since",
                                                   "If-Unmodified-Since")):
        if name in req.ctx.headers:
            return label
    return "If-None-Match"


def _s3_headers(swift: Mapping[str, str]) -> dict[str, str]:
    """Return the S3 answer headers of a Swift object answer (``x-amz-version-id`` too).

    PERF: bench s3 -- one dict lookup per header (this runs on every GET/HEAD).
    """
    out: dict[str, str] = {}
    for k, v in swift.items():
        low = k.lower()
        kind = _ANSWER_HEADERS.get(low)
        if kind is None:
            if low.startswith("x-object-meta-"):
                out["x-amz-meta-" + low[14:]] = v
        elif kind == "pass":
            out[k] = v
        elif kind == "etag":
            out["ETag"] = v if v.startswith('"') else f'"{v}"'
        elif kind == "version":
            if v:
                out[versioning.VERSION_HEADER] = v
        elif v.isdigit():  # x-delete-at
            when = email.utils.formatdate(int(v), usegmt=True)
            out["x-amz-expiration"] = f'expiry-date="{when}", rule-id="swift-object-expiration"'
    return out


async def _raw_head(req: S3Req) -> dict[str, str]:
    """Return the object's (or the asked version's) stored headers; empty if absent."""
    return await versioning.raw_version_head(req, versioning.requested(req))


async def _multipart_conditions(req: S3Req, swift_headers: dict[str, str]) -> None:
    """Evaluate If-Match / If-None-Match of a multipart object against its S3 ETag.

    Such an object's Swift ETag (the SLO's, md5 of the part ETags) is not the one
    S3 clients know (``md5-of-md5s-N``): an ``If-Match`` naming the Swift one fails,
    as in S3 and Swift's s3api. PERF: one more HEAD, for conditional requests only
    (``python -m nubis.bench s3`` sends none).
    """
    stored = await _raw_head(req)
    s3_etag = stored.get(ETAG_META)
    if s3_etag is None:
        return
    match = swift_headers.pop("if-match", None)
    if match is not None and not conditions.etag_matches(match, s3_etag):
        raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    none = swift_headers.pop("if-none-match", None)
    if none is not None and conditions.etag_matches(none, s3_etag):
        kept = {"ETag": f'"{s3_etag}"'}
        if "last-modified" in stored:
            kept["Last-Modified"] = stored["last-modified"]
        raise S3Error("NotModified", "Not Modified", 304, headers=kept)


async def _sysmeta_headers(req: S3Req, headers: Mapping[str, str], out: dict[str, str],
                           part: int | None) -> None:
    """Add the S3 ETag (multipart) and checksum (when asked) of the object read.

    ``headers`` is the Swift answer, with the read object's S3 sysmeta (see
    ``S3Req.swift``): they belong to the very version served, and need no HEAD
    (PERF: boto3 asks for checksums on every GetObject). A ranged read gets no
    checksum; a ``partNumber`` read gets its part's.
    """
    if ETAG_META in headers:
        out["ETag"] = f'"{headers[ETAG_META]}"'
    if req.header("x-amz-checksum-mode").upper() != "ENABLED":
        return
    if part is not None:
        out.update(await _part_checksum(req, headers, part))
    elif "Content-Range" not in out:
        out.update(checksums.stored_headers(headers))


async def _part_checksum(req: S3Req, stored: Mapping[str, str], part: int) -> dict[str, str]:
    """Return the checksum headers of part ``part`` (a plain object is its only part)."""
    if stored.get("X-Static-Large-Object", "").lower() != "true":
        return checksums.stored_headers(stored) if part == 1 else {}
    entries = await manifest(req, versioning.requested(req))
    found = checksums.part_checksum(entries[part - 1]) if part <= len(entries) else None
    if found is None:
        return {}
    return {f"x-amz-checksum-{found[0]}": found[1],
            "x-amz-checksum-type": stored.get(checksums.TYPE_META) or checksums.COMPOSITE}


async def manifest(req: S3Req, version: str | None) -> list[dict[str, Any]]:
    """Return the multipart object's SLO manifest (its segments, in order)."""
    query = {"multipart-manifest": "get"}
    if version is not None:
        query["version-id"] = version
    try:
        resp = await req.swift("GET", req.bucket, req.key, query=query)
    except HTTPError as exc:
        raise from_swift(exc) from None
    segments = json.loads(await read_body(resp))
    return segments if isinstance(segments, list) else []


async def delete(req: S3Req) -> Resp:
    """Answer DeleteObject (204 whether or not the key existed, as S3 does).

    With ``If-Match`` (S3's conditional delete) the object must exist and match.
    """
    version = versioning.requested(req)
    if "if-match" in req.ctx.headers:
        await conditions.check_delete(req, req.key, version, req.ctx.headers["if-match"])
    if version is not None or await versioning.versioned(req):
        return await segments.delete_version(req, version)
    stored = await _raw_head(req)
    query = {"multipart-manifest": "delete"} \
        if stored.get("x-static-large-object", "").lower() == "true" else {}
    try:
        await req.swift("DELETE", req.bucket, req.key, query=query)
    except HTTPError as exc:
        if exc.status != 404:
            raise from_swift(exc) from None
        await require_bucket(req)
    return Resp(204, {})


async def require_bucket(req: S3Req, bucket: str | None = None) -> None:
    """Raise NoSuchBucket unless the request's bucket (or ``bucket``, a copy's source) exists."""
    try:
        await req.swift("HEAD", req.bucket if bucket is None else bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None


def check_body_digests(headers: Mapping[str, str], data: bytes) -> None:
    """Check a DeleteObjects body: S3 requires ``Content-MD5`` or a checksum, and checks it."""
    awssig.check_request_checksums(headers)
    claimed = awssig.checksum_algo_of(headers)
    if "content-md5" not in headers and claimed is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: "
                      "Content-MD5 OR x-amz-checksum-*", resource=False)
    check_content_md5(headers, data)
    if claimed is not None:
        checksum = awssig.Checksum(claimed[0])
        checksum.update(data)
        checksum.check(claimed[1])


async def delete_many(req: S3Req) -> Resp:
    """Answer DeleteObjects (``POST ?delete``, quiet mode)."""
    try:
        data = await req.ctx.body.read_all(MAX_XML)
    except HTTPError as exc:
        if exc.status != 413:
            raise
        raise S3Error("MalformedXML") from None
    check_body_digests(req.ctx.headers, data)
    root = parse(data)
    if root.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = (text(root, "Quiet") or "").strip().lower() == "true"
    objs = [(text(o, "Key"), text(o, "VersionId"), text(o, "ETag"),
             o.find("Size") is not None or o.find("LastModifiedTime") is not None)
            for o in root.findall("Object")]
    keys = [k for k, _, _, _ in objs]
    if not keys or len(keys) > 1000:
        raise S3Error("MalformedXML")
    if any(not k for k in keys):
        raise S3Error("UserKeyMustBeSpecified")
    await require_bucket(req)
    parts: list[str] = []
    versioned = await versioning.versioned(req)
    for key, version, condition, unoffered in objs:
        assert key is not None
        if unoffered:  # directory buckets' conditions: never dropped silently
            parts.append(versioning.error_entry(key, version, S3Error("NotImplemented")))
            continue
        if condition is not None:  # S3's conditional delete of this key
            try:
                await conditions.check_delete(req, key, version, condition)
            except S3Error as err:
                parts.append(versioning.error_entry(key, version, err))
                continue
        if version is not None or versioned:
            parts += await versioning.delete_entry(req, key, version, quiet,
                                                   segments.delete_version)
            continue
        try:
            await req.swift("DELETE", req.bucket, key, query=await _parts_too(req, key))
        except HTTPError as exc:
            if exc.status != 404:
                parts.append(versioning.error_entry(key, None, from_swift(exc)))
                continue
        if not quiet:
            parts.append(f"<Deleted>{el('Key', key)}</Deleted>")
    return Resp(200, {"Content-Type": "application/xml"}, doc("DeleteResult", parts))


async def _parts_too(req: S3Req, key: str) -> dict[str, str]:
    """Return the DELETE query that also removes a multipart object's parts.

    As Swift's s3api: a HEAD tells whether ``key`` is a completed multipart
    upload (an SLO manifest); then ``multipart-manifest=delete`` drops its parts.
    """
    try:
        head = await req.swift("HEAD", req.bucket, key)
    except HTTPError:
        return {}
    await drain(head.body)
    slo = header_of(head.headers, "x-static-large-object") or ""
    return {"multipart-manifest": "delete"} if slo.lower() == "true" else {}


def copy_source(req: S3Req) -> tuple[str, str, str | None]:
    """Return ``(bucket, key, version id or None)`` of ``x-amz-copy-source``."""
    raw, _, query = req.header("x-amz-copy-source").partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    if set(params) - {"versionId"}:
        raise S3Error("InvalidArgument", "Unsupported copy source parameter.",
                      extra={"ArgumentName": "x-amz-copy-source"})
    version = params["versionId"][-1] if "versionId" in params else None
    bucket, _, key = urllib.parse.unquote(raw).lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and "
                      "key: sourcebucket/sourcekey",
                      extra={"ArgumentName": "x-amz-copy-source"})
    return bucket, key, version


async def copy_object(req: S3Req) -> Resp:
    """Answer CopyObject (metadata directive COPY/REPLACE, copy conditionals).

    ``x-amz-copy-source-if-*`` are the source's conditions; ``If-None-Match: *``
    and ``If-Match`` the destination's (:mod:`conditions`).
    """
    _check_key(req.key)
    conditions.refuse_unsupported(req.ctx.headers)
    src_bucket, src_key, version = copy_source(req)
    if version is not None:
        await versioning.check_version(req, src_bucket, src_key, version)
    directive = req.header("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.",
                      extra={"ArgumentName": "x-amz-metadata-directive"})
    if (src_bucket, src_key) == (req.bucket, req.key) and directive == "COPY" \
            and version is None:
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying "
                      "to copy an object to itself without changing the object's metadata, "
                      "storage class, website redirect location or encryption attributes.")
    stored = await versioning.raw_version_head(req, version, where=(src_bucket, src_key))
    await conditions.check_write(req)
    # X-Copy-From is percent-decoded by the copy layer, as in Swift: the key goes
    # quoted (a key with "%" or non-ASCII characters names itself, not another object).
    headers = {"x-copy-from": urllib.parse.quote(f"/{src_bucket}/{src_key}"),
               "content-length": "0", **copy_conditions(req, stored)}
    if directive == "REPLACE":
        headers.update(swift_metadata(req.ctx.headers))
        headers["x-fresh-metadata"] = "true"
    tags = _copy_tagging(req)
    acl = await grants.new_object_headers(req)
    report = segments.report_for(await container_of(object_ctx(req, "PUT")))
    # In ACL mode a copy is its copier's: the policy goes in the copy's own write.
    sysmeta = {**_carried_sysmeta(stored, tags), **acl}
    checksum = _carried_checksum(req, stored)
    compute = _copy_compute(req)
    try:
        resp, checksum = await _copy_write(req, headers, version, report, sysmeta, checksum,
                                           stored, compute)
    except HTTPError as exc:
        if exc.status == 412:
            raise S3Error("PreconditionFailed") from None
        if version is not None and exc.status in (400, 404):
            await require_bucket(req)
            raise versioning.read_error(exc, req, version) from None
        if exc.status == 404:
            await require_bucket(req)
            await require_bucket(req, src_bucket)
        raise from_swift(exc) from None
    await segments.drop_replaced(req, resp)
    etag = resp.headers.get("Etag", "").strip('"')
    modified = resp.headers.get("Last-Modified", "")
    when = email.utils.parsedate_to_datetime(modified).timestamp() if modified else 0.0
    out = {"Content-Type": "application/xml", **versioning.s3_headers(resp.headers)}
    source_version = version or stored.get(versioning.STORED_VERSION)
    if source_version:
        out["x-amz-copy-source-version-id"] = source_version
    return Resp(200, out,
                doc("CopyObjectResult", [el("LastModified", iso(when)),
                                         el("ETag", f'"{etag}"')
                                         + checksums.answer_xml(checksum)]))


def _copy_tagging(req: S3Req) -> str | None:
    """Return the copy's stored tag set by ``x-amz-tagging-directive`` (None: the source's)."""
    directive = req.header("x-amz-tagging-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown tagging directive.",
                      extra={"ArgumentName": "x-amz-tagging-directive"})
    if directive == "COPY":
        return None
    value = req.header("x-amz-tagging")
    return tagging.encode(tagging.tags_from_header(value)) if value else ""


def _carried_sysmeta(stored: Mapping[str, str], tags: str | None) -> dict[str, str]:
    """Return the S3 system metadata a copy keeps: its tags (the source's or new ones)."""
    value = stored.get(tagging.OBJECT_META, "") if tags is None else tags
    return {tagging.OBJECT_META: value} if value else {}


#: The conditions of a copy's source (``x-amz-copy-source-<name>``).
COPY_CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def copy_conditions(req: S3Req, stored: Mapping[str, str]) -> dict[str, str]:
    """Return the Swift conditions of a copy's ``x-amz-copy-source-if-*`` headers.

    ``stored``: the source's stored headers. A multipart source's ETag conditions
    name the ETag S3 clients know (``md5-of-md5s-N``; ``aws s3 cp`` between
    buckets copies such an object's parts with ``x-amz-copy-source-if-match``
    naming it), so they are restated with the manifest's Swift ETag, which the
    Swift read of the source compares (after its access check); naming the Swift
    ETag itself matches nothing, as in S3.
    """
    headers = {}
    for name in COPY_CONDITIONS:
        value = req.header(f"x-amz-copy-source-{name}")
        if value:
            headers[name] = value
    conditions.drop_overridden(headers)
    s3_etag = stored.get(ETAG_META)
    swift_etag = stored.get(SLO_ETAG.lower(), stored.get("etag", "")).strip('"')
    if s3_etag is None or not swift_etag:
        return headers
    for name in ("if-match", "if-none-match"):
        if name in headers:
            headers[name] = _restated(headers[name], s3_etag.strip('"'), swift_etag)
    return headers


def _restated(condition: str, s3_etag: str, swift_etag: str) -> str:
    """Restate an If-(None-)Match naming a multipart object's S3 ETag with its Swift one."""
    out = []
    for item in condition.split(","):
        item = item.strip()
        bare = item.removeprefix("W/").strip('"')
        if item == "*":
            out.append(item)
        elif bare == s3_etag:
            out.append(f'"{swift_etag}"')
        elif bare != swift_etag:
            out.append(item)
    return ", ".join(out) or '"-"'  # '"-"': an ETag no object has


def _carried_checksum(req: S3Req, stored: Mapping[str, str]) -> dict[str, str]:
    """Return the source's checksum metadata when the copy keeps it (else nothing).

    S3 copies the source's checksum unless ``x-amz-checksum-algorithm`` asks for
    another algorithm (then computed during the copy, see :func:`_copy_compute`).
    A multipart source's (its parts') checksum is not the copy's either.
    """
    value = stored.get(CHECKSUM_META)
    if not value or "x-static-large-object" in stored or "etag" not in stored:
        return {}
    wanted = req.header("x-amz-checksum-algorithm").lower()
    if wanted and wanted != value.partition(":")[0]:
        return {}
    match = req.header("x-amz-copy-source-if-match").strip()
    if match and match.strip('"') != stored["etag"].strip('"'):
        return {}
    added = {checksums.DEFAULT_META: "true"} if checksums.DEFAULT_META in stored else {}
    return {CHECKSUM_META: value, checksums.TYPE_META: checksums.FULL_OBJECT, **added}


class CopyChecksum:
    """The checksum a copy gets when it cannot carry its source's: computed as bytes pass.

    Given to the copy's write as its ``ObjectCtx.copy_digest``; the result is
    stored with the copy in the same write (a footer).
    """

    def __init__(self, algo: str, default: bool) -> None:
        self.checksum = awssig.Checksum(algo)
        self.default = default

    def update(self, data: bytes) -> None:
        """Add copied bytes."""
        self.checksum.update(data)

    def footer(self) -> dict[str, str]:
        """Return the checksum metadata of the copied bytes."""
        out = {CHECKSUM_META: f"{self.checksum.algo}:{self.checksum.value()}",
               checksums.TYPE_META: checksums.FULL_OBJECT}
        if self.default:
            out[checksums.DEFAULT_META] = "true"
        return out


def _copy_compute(req: S3Req) -> tuple[str, bool] | None:
    """Return the algorithm a copy computes when it carries no checksum, and if by default.

    ``x-amz-checksum-algorithm`` (an unknown one is S3's ``InvalidRequest`` before
    anything is copied), else S3's default CRC64NVME when uploads get it
    (:func:`default_checksum`).
    """
    wanted = req.header("x-amz-checksum-algorithm").strip().lower()
    if wanted:
        awssig.Checksum(wanted)  # InvalidRequest for an unknown one
        return wanted, False
    algo = default_checksum(req, {}, None)
    return (algo, True) if algo is not None else None


async def _copy_write(req: S3Req, headers: dict[str, str], version: str | None,
                      report: str | None, sysmeta: dict[str, str], checksum: dict[str, str],
                      stored: Mapping[str, str], compute: tuple[str, bool] | None
                      ) -> tuple[Resp, dict[str, str]]:
    """Run the Swift copy; return its answer and the checksum metadata the copy got.

    A carried checksum is valid only for the bytes it was computed over, so that
    copy reads the source on condition that its ETag is still the one stored with
    the checksum; when the source changed meanwhile (412) it runs again without.
    A copy without one computes ``compute``'s checksum over the bytes it writes.
    """
    query = {"version-id": version} if version is not None else None
    timeout = req.ctx.state.conf.client_timeout
    if checksum:
        guarded = {"if-match": f'"{stored["etag"].strip(chr(34))}"', **headers}
        try:
            resp = await req.swift("PUT", req.bucket, req.key, guarded, query,
                                   bytes_body(b"", timeout), report=report,
                                   sysmeta={**sysmeta, **checksum})
            return resp, checksum
        except HTTPError as exc:
            if exc.status != 412 or "if-match" in headers:
                raise
    digest = CopyChecksum(*compute) if compute is not None else None
    resp = await req.swift("PUT", req.bucket, req.key, headers, query,
                           bytes_body(b"", timeout), report=report, sysmeta=sysmeta or None,
                           digest=digest)
    return resp, digest.footer() if digest is not None else {}

