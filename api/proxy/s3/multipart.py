"""Multipart uploads: Create, UploadPart(Copy), ListParts, ListMultipartUploads, Complete, Abort.

Parts are objects ``<key>/<upload id>/<part:05d>`` of the hidden container
``<bucket>+segments``; the upload itself is a marker object ``<key>/<upload id>``
(content type :data:`MARKER_TYPE`) carrying the final object's metadata.
Complete writes an SLO manifest over the parts — the bytes are never copied —
with S3's ``md5-of-md5s-N`` ETag kept as sysmeta and shown in listings.
Additional checksums (an upload's algorithm and type, each part's checksum,
the object's composite or full-object one) are :mod:`.checksums`'.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from nubis.api.proxy.base import check_access
from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import http_date
from nubis.api.proxy.largeobj import OVERRIDE_ETAG, manifest_sysmeta
from nubis.api.proxy.s3 import checksums, conditions, grants, segments, tagging, versioning
from nubis.api.proxy.s3.auth import (
    PayloadResult,
    check_content_md5,
    content_md5,
    decoded_length,
    payload_stream,
)
from nubis.api.proxy.s3.buckets import iso_listing, owner_xml, walk
from nubis.api.proxy.s3.conditions import ETAG_META
from nubis.api.proxy.s3.errors import S3Error, bad_digest, from_swift
from nubis.api.proxy.s3.objects import (
    copy_conditions,
    copy_source,
    default_checksum,
    object_ctx,
    part_number,
    require_bucket,
    swift_metadata,
)
from nubis.api.proxy.s3.request import S3Req, bytes_body, drain, header_of
from nubis.api.proxy.s3.segments import UPLOAD_META
from nubis.api.proxy.s3.xmlio import MAX_XML, doc, el, iso, key_encoder, parse, text
from nubis.api.proxy.transfer import container_of, observed, one, store
from nubis.api.shared import awssig

MARKER_TYPE = "application/x-nubis-s3-upload"
MIN_PART = 5 * 1024 * 1024
XML = {"Content-Type": "application/xml"}
#: Headers of CreateMultipartUpload the completed object keeps (as Swift's s3api).
#: Upload-marker headers holding the object's content type and (ACL mode) policy.
MARKER_CTYPE = "x-object-meta-s3-content-type"
MARKER_ACL = "x-object-meta-s3-acl"
KEPT = ("content-encoding", "content-language", "content-disposition", "expires",
        "cache-control", "x-robots-tag")


def _segments(req: S3Req) -> str:
    return segments.container(req.bucket)


def _upload_name(req: S3Req, upload_id: str) -> str:
    return f"{req.key}/{upload_id}"


async def create(req: S3Req) -> Resp:
    """Answer CreateMultipartUpload."""
    if len(req.key.encode()) > 1024:
        raise S3Error("KeyTooLongError")
    meta = swift_metadata(req.ctx.headers)
    checksum = checksums.requested(req.ctx.headers)
    bucket = await _require_bucket(req)
    # Canned ACLs: the parts' readers are the bucket's (a public multipart object
    # reads its parts anonymously). Only an owner sees the bucket's ACL.
    read = header_of(bucket, "x-container-read") or ""
    shared = {"x-container-read": segments.reader_acl(read)} \
        if req.owns_account and not req.acl_mode else None
    try:
        await req.swift("PUT", _segments(req), headers=shared)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    upload_id = secrets.token_urlsafe(24)
    body = checksum.marker_body() if checksum else b""
    marker = {MARKER_CTYPE: meta.pop("content-type"), **meta,
              "content-type": MARKER_TYPE, "content-length": str(len(body))}
    acl = await grants.new_object_headers(req)
    if acl:
        marker[MARKER_ACL] = acl[grants.OBJECT_META]
    # the object's tags (x-amz-tagging) wait in the marker's sysmeta (no user
    # metadata limits) until the completion gives them to the object
    tags = {tagging.OBJECT_META: tagging.encode(tagging.tags_from_header(
        req.ctx.headers["x-amz-tagging"]))} if "x-amz-tagging" in req.ctx.headers else None
    await req.swift("PUT", _segments(req), _upload_name(req, upload_id), marker,
                    body=bytes_body(body, req.ctx.state.conf.client_timeout), sysmeta=tags)
    return Resp(200, {**XML, **(checksum.headers() if checksum else {})},
                doc("InitiateMultipartUploadResult", [
        el("Bucket", req.bucket), el("Key", req.key), el("UploadId", upload_id)]))


async def _require_bucket(req: S3Req) -> Mapping[str, str]:
    """Return the bucket's container headers (NoSuchBucket when missing)."""
    try:
        return (await req.swift("HEAD", req.bucket)).headers
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None


async def _marker(req: S3Req, upload_id: str) -> dict[str, str]:
    try:
        resp = await req.swift("HEAD", _segments(req), _upload_name(req, upload_id))
    except HTTPError as exc:
        if exc.status == 404:
            raise S3Error("NoSuchUpload", extra={"UploadId": upload_id}) from None
        raise from_swift(exc) from None
    if resp.headers.get("Content-Type") != MARKER_TYPE:
        raise S3Error("NoSuchUpload", extra={"UploadId": upload_id})
    return {k.lower(): v for k, v in resp.headers.items()}


async def on_upload(req: S3Req) -> Resp:
    """Dispatch a request naming ``uploadId`` (NoSuchBucket before NoSuchUpload)."""
    try:
        return await _on_upload(req, req.q["uploadId"])
    except S3Error as exc:
        if exc.code == "NoSuchUpload":
            await require_bucket(req)
        raise


async def _on_upload(req: S3Req, upload_id: str) -> Resp:
    method = req.ctx.method
    if method == "PUT":
        return await upload_part(req, upload_id)
    if method == "GET":
        return await list_parts(req, upload_id)
    if method == "POST":
        return await complete(req, upload_id)
    if method == "DELETE":
        return await abort(req, upload_id)
    raise S3Error("MethodNotAllowed")


async def upload_part(req: S3Req, upload_id: str) -> Resp:
    """Answer UploadPart and UploadPartCopy."""
    number = part_number(req)
    upload = checksums.of_marker((await _marker(req, upload_id)).get("etag", ""))
    name = f"{_upload_name(req, upload_id)}/{number:05d}"
    octx = object_ctx(req, "PUT", name)
    octx.container = _segments(req)
    info = await container_of(octx)
    check_access(octx, info.headers.get("x-container-write"))
    meta = {"content-type": checksums.PART_CTYPE}
    if "x-amz-copy-source" in req.ctx.headers:
        return await _part_copy(req, octx, info, name, meta, upload)
    awssig.check_request_checksums(req.ctx.headers)
    compute = checksums.part_compute(upload, req.ctx.headers)
    length = decoded_length(req.ctx.headers)
    # A header's checksum is stored with the part (a mismatch fails the write);
    # a trailer's or a computed one is known at the end: it goes as a footer.
    claimed = awssig.checksum_algo_of(req.ctx.headers)
    if claimed is not None:
        meta.update(checksums.part_meta(claimed))
    # A part of an upload without an algorithm that sends none gets S3's default
    # CRC64NVME, kept apart (never listed) for the object's at Complete.
    default = upload is None and compute is None and \
        default_checksum(req, req.ctx.headers, claimed) is not None
    if default:
        compute = checksums.DEFAULT.algo
    result = PayloadResult()
    source = payload_stream(req.ctx.body, req.caller, req.ctx.headers, result, compute)

    def footer() -> dict[str, str]:
        if not result.checksum:
            return {}
        if default:
            return checksums.default_part_meta(result.checksum[1])
        return checksums.part_meta(result.checksum)

    try:
        resp = await store(octx, info, octx.container, name, meta, source, length,
                           content_md5(req.ctx.headers),
                           footer=footer if claimed is None and (
                               compute or "x-amz-trailer" in req.ctx.headers) else None)
    except HTTPError as exc:
        if exc.status == 422:
            raise bad_digest(req.ctx.headers.get("content-md5", "")) from None
        raise from_swift(exc) from None
    out = {"ETag": f'"{resp.headers["Etag"]}"', "Content-Type": "text/html; charset=UTF-8"}
    if "Last-Modified" in resp.headers:
        out["Last-Modified"] = resp.headers["Last-Modified"]
    if result.checksum and not default:
        out[f"x-amz-checksum-{result.checksum[0]}"] = result.checksum[1]
    return Resp(200, out)


async def _part_copy(req: S3Req, octx: Any, info: Any, name: str,
                     meta: dict[str, str], upload: checksums.UploadChecksum | None) -> Resp:
    src_bucket, src_key, version = copy_source(req)
    if version is not None:
        await versioning.check_version(req, src_bucket, src_key, version)
    stored: dict[str, str] = {}
    if any(f"x-amz-copy-source-{c}" in req.ctx.headers for c in ("if-match", "if-none-match")):
        stored = await versioning.raw_version_head(req, version, where=(src_bucket, src_key))
    headers = copy_conditions(req, stored)
    rng = req.header("x-amz-copy-source-range")
    span = source_range(rng) if rng else None
    if span is not None:
        headers["range"] = f"bytes={span[0]}-{span[1]}"
    try:
        got = await req.swift("GET", src_bucket, src_key, headers,
                              {"version-id": version} if version is not None else None)
    except HTTPError as exc:
        if exc.status == 416 and span is not None:
            raise _range_past_end(rng, exc.headers.get("Content-Range", "")) from None
        if exc.status == 412:
            raise S3Error("PreconditionFailed") from None
        if version is not None and exc.status in (400, 404):
            raise versioning.read_error(exc, req, version) from None
        if exc.status == 404:
            await require_bucket(req, src_bucket)
        raise from_swift(exc) from None
    if got.status == 304:  # x-amz-copy-source-if-none-match named the source
        await drain(got.body)
        raise S3Error("PreconditionFailed")
    if span is not None and not _covers(got.headers, span):
        await drain(got.body)
        raise _range_past_end(rng, got.headers.get("Content-Range", ""))
    body = got.body
    source = one(body) if isinstance(body, bytes) else body
    default = upload is None and default_checksum(req, {}, None) is not None
    digest = awssig.Checksum(upload.algo) if upload else \
        awssig.Checksum(checksums.DEFAULT.algo) if default else None
    if digest is not None:
        source = observed(source, digest.update)

    def footer() -> dict[str, str]:
        assert digest is not None
        if default:
            return checksums.default_part_meta(digest.value())
        return checksums.part_meta((digest.algo, digest.value()))

    resp = await store(octx, info, octx.container, name, meta, source, got.length, None,
                       footer=None if digest is None else footer)
    etag = resp.headers["Etag"].strip('"')
    extra = ""
    if digest is not None and not default:
        extra = checksums.part_xml((digest.algo, digest.value()))
    return Resp(200, dict(XML), doc("CopyPartResult", [
        el("LastModified", _http_to_iso(resp.headers.get("Last-Modified", ""))),
        el("ETag", f'"{etag}"') + extra]))


#: ``x-amz-copy-source-range``: one range of first and last byte, both given.
_SOURCE_RANGE = re.compile(r"bytes=(\d{1,19})-(\d{1,19})")


def source_range(value: str) -> tuple[int, int]:
    """Return the first and last byte of an ``x-amz-copy-source-range``.

    S3 takes exactly ``bytes=first-last`` (no suffix, open or multiple ranges;
    Swift would read those, or ignore a malformed one and copy the whole object).

    Raises:
        S3Error: InvalidArgument naming the header.
    """
    match = _SOURCE_RANGE.fullmatch(value.strip())
    if match is None or int(match[1]) > int(match[2]):
        raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the "
                      "form bytes=first-last where first and last are the zero-based "
                      "offsets of the first and last bytes to copy",
                      extra={"ArgumentName": "x-amz-copy-source-range",
                             "ArgumentValue": value})
    return int(match[1]), int(match[2])


def _covers(headers: Mapping[str, str], span: tuple[int, int]) -> bool:
    """Tell whether a ranged read returned exactly ``span`` (Swift clamps a long one)."""
    got = header_of(headers, "content-range") or ""
    return got.startswith(f"bytes {span[0]}-{span[1]}/")


def _range_past_end(value: str, content_range: str) -> S3Error:
    """Return S3's error for a copy range the source does not hold (InvalidArgument)."""
    size = content_range.rpartition("/")[2] or "unknown"
    return S3Error("InvalidArgument", f"Range specified is not valid for source object "
                   f"of size: {size}", extra={"ArgumentName": "x-amz-copy-source-range",
                                              "ArgumentValue": value})


def _http_to_iso(value: str) -> str:
    """Return an HTTP date (whole seconds) as an S3 XML time."""
    when = email.utils.parsedate_to_datetime(value).timestamp() if value else 0.0
    return iso(when)


def _location(req: S3Req) -> str:
    """Return the completed object's URL (as Swift's s3api: host URL and path)."""
    host = req.header("host") or "localhost"
    return f"http://{host}{req.ctx.path.split('?', 1)[0]}"


async def _parts(req: S3Req, upload_id: str, after: int = 0, limit: int = 1000
                 ) -> tuple[list[dict[str, Any]], bool]:
    prefix = _upload_name(req, upload_id) + "/"
    marker = f"{prefix}{after:05d}" if after else ""
    return await walk(req, _segments(req), prefix, "", marker, limit)


async def list_parts(req: S3Req, upload_id: str) -> Resp:
    """Answer ListParts."""
    upload = checksums.of_marker((await _marker(req, upload_id)).get("etag", ""))
    raw_after = req.q.get("part-number-marker", "0") or "0"
    raw_max = req.q.get("max-parts", "1000") or "1000"
    if not raw_after.isdigit() or not raw_max.isdigit():
        raise S3Error("InvalidArgument", "Invalid part number marker or max-parts.")
    max_parts = min(int(raw_max), 1000)
    parts, truncated = await _parts(req, upload_id, int(raw_after), max_parts)
    items = []
    for p in parts:
        number = int(p["name"].rsplit("/", 1)[1])
        items.append(f"<Part>{el('PartNumber', number)}"
                     f"{el('LastModified', iso_listing(p['last_modified']))}"
                     f"{el('ETag', chr(34) + p['hash'] + chr(34))}{el('Size', p['bytes'])}"
                     f"{checksums.part_xml(checksums.part_checksum(p))}</Part>")
    last = int(parts[-1]["name"].rsplit("/", 1)[1]) if parts else 0
    return Resp(200, dict(XML), doc("ListPartsResult", [
        el("Bucket", req.bucket), el("Key", req.key), el("UploadId", upload_id),
        owner_xml(req).replace("Owner>", "Initiator>"), owner_xml(req),
        el("StorageClass", "STANDARD"), el("PartNumberMarker", int(raw_after)),
        el("NextPartNumberMarker", last), el("MaxParts", max_parts),
        el("IsTruncated", "true" if truncated else "false"),
        upload.xml() if upload else "", *items]))


async def list_uploads(req: S3Req) -> Resp:
    """Answer ListMultipartUploads (prefix, delimiter, key/upload-id markers)."""
    await _require_bucket(req)
    enc = key_encoder(req.q)
    prefix, delimiter = req.q.get("prefix", ""), req.q.get("delimiter", "")
    key_marker = req.q.get("key-marker", "")
    id_marker = req.q.get("upload-id-marker", "")
    raw_max = req.q.get("max-uploads", "1000")
    if not raw_max.isdigit():
        raise S3Error("InvalidArgument", "max-uploads must be an integer.")
    max_uploads = min(int(raw_max), 1000)
    marker = f"{key_marker}/{id_marker}" if id_marker else (key_marker + "/\uffff"
                                                            if key_marker else "")
    uploads: list[tuple[str, str, str, str]] = []
    prefixes: set[str] = set()
    truncated = False
    try:
        entries, more = await walk(req, _segments(req), prefix, "", marker, 9999)
    except S3Error:
        entries, more = [], False
    for e in entries:
        if e.get("content_type") != MARKER_TYPE:
            continue
        key, _, uid = e["name"].rpartition("/")
        if delimiter and delimiter in key[len(prefix):]:
            cut = key.index(delimiter, len(prefix)) + len(delimiter)
            prefixes.add(key[:cut])
            continue
        if len(uploads) >= max_uploads:
            truncated = True
            break
        chosen = checksums.of_marker(e.get("hash", ""))
        uploads.append((key, uid, e["last_modified"], chosen.xml() if chosen else ""))
    truncated = truncated or more
    parts = [el("Bucket", req.bucket), el("KeyMarker", enc(key_marker)),
             el("UploadIdMarker", id_marker)]
    # Swift's s3api names the last upload whenever more than one is listed.
    last = uploads[-1] if (truncated and uploads) or len(uploads) > 1 else ("", "", "", "")
    parts += [el("NextKeyMarker", enc(last[0])), el("NextUploadIdMarker", last[1])]
    if delimiter:
        parts.append(el("Delimiter", enc(delimiter)))
    parts += [el("Prefix", enc(prefix)), el("MaxUploads", max_uploads)]
    if "encoding-type" in req.q:  # validated by key_encoder: "url"
        parts.append(el("EncodingType", "url"))
    parts.append(el("IsTruncated", "true" if truncated else "false"))
    for key, uid, when, algo_xml in uploads:
        parts.append(f"<Upload>{algo_xml}{el('Key', enc(key))}{el('UploadId', uid)}"
                     + owner_xml(req).replace("Owner>", "Initiator>") + owner_xml(req)
                     + f"{el('StorageClass', 'STANDARD')}{el('Initiated', iso_listing(when))}"
                     "</Upload>")
    parts += [f"<CommonPrefixes>{el('Prefix', enc(p))}</CommonPrefixes>"
              for p in sorted(prefixes)]
    return Resp(200, dict(XML), doc("ListMultipartUploadsResult", parts))


#: One ``<Part>`` of a Complete: number, ETag and ``<ChecksumXXX>`` values by algorithm.
Wanted = tuple[int, str, dict[str, str]]


def _requested_parts(data: bytes) -> list[Wanted]:
    root = parse(data)
    if root.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    out: list[Wanted] = []
    for p in root.findall("Part"):
        number, etag = text(p, "PartNumber"), text(p, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise S3Error("MalformedXML")
        given = {algo: value.strip() for algo, name in checksums.NAMES.items()
                 if (value := text(p, "Checksum" + name)) is not None}
        out.append((int(number), etag.strip().strip('"').lower(), given))
    if not out:
        raise S3Error("MalformedXML")
    return out


async def _stored_parts(req: S3Req, upload_id: str) -> dict[int, dict[str, Any]]:
    """Return every stored part of the upload by number (listing entries)."""
    have: dict[int, dict[str, Any]] = {}
    more, after = True, 0
    while more:
        stored, more = await _parts(req, upload_id, after)
        have.update((int(p["name"].rsplit("/", 1)[1]), p) for p in stored)
        after = max(have) if have else 0
        more = more and bool(stored)
    return have


def _manifest(req: S3Req, upload_id: str, wanted: list[Wanted],
              have: dict[int, dict[str, Any]], upload: checksums.UploadChecksum | None
              ) -> tuple[list[dict[str, Any]], list[tuple[str, int]], list[tuple[str, int]]]:
    """Check the listed parts; return the SLO manifest and the parts' (checksum, size).

    The third list holds the parts' default CRC64NVMEs (an upload without an
    algorithm), only when every part has one.
    """
    manifest: list[dict[str, Any]] = []
    sums: list[tuple[str, int]] = []
    defaults: list[tuple[str, int]] = []
    for i, (number, etag, given) in enumerate(wanted):
        part = have.get(number)
        bad = S3Error("InvalidPart", extra={"UploadId": upload_id, "PartNumber": str(number),
                                            "ETag": etag})
        if part is None or part["hash"] != etag:
            raise bad
        if part["bytes"] < MIN_PART and i < len(wanted) - 1:
            raise S3Error("EntityTooSmall", extra={"ProposedSize": str(part["bytes"]),
                                                   "MinSizeAllowed": str(MIN_PART),
                                                   "PartNumber": str(number)})
        stored = checksums.part_checksum(part)
        checksums.check_listed(upload, number, given, stored, bad)
        if stored is not None:
            sums.append((stored[1], part["bytes"]))
        if (default := checksums.default_part_crc(part)) is not None:
            defaults.append((default, part["bytes"]))
        manifest.append({"name": f"/{_segments(req)}/{part['name']}", "hash": etag,
                         "bytes": part["bytes"], "content_type": part["content_type"],
                         "last_modified": http_date(0)})
    return manifest, sums, defaults if len(defaults) == len(wanted) else []


def _check_object_size(headers: Mapping[str, str], size: int) -> None:
    """Check a completion's ``x-amz-mp-object-size`` (the size the client expects)."""
    claimed = headers.get("x-amz-mp-object-size")
    if claimed is None:
        return
    if not claimed.strip().isdigit():
        raise S3Error("InvalidArgument", "x-amz-mp-object-size must be a non-negative "
                      "integer", extra={"ArgumentName": "x-amz-mp-object-size",
                                        "ArgumentValue": claimed})
    if int(claimed) != size:
        raise S3Error("InvalidRequest", f"The provided 'x-amz-mp-object-size' header value "
                      f"{claimed.strip()} does not match what was computed: {size}")


async def complete(req: S3Req, upload_id: str) -> Resp:
    """Answer CompleteMultipartUpload: check parts, write the manifest (no byte copy)."""
    conditions.refuse_unsupported(req.ctx.headers, if_match=False)
    try:
        marker = await _marker(req, upload_id)
    except S3Error as exc:
        if exc.code != "NoSuchUpload":
            raise
        return await _completed_again(req, upload_id, exc)
    upload = checksums.of_marker(marker.get("etag", ""))
    data = await req.ctx.body.read_all(MAX_XML)
    check_content_md5(req.ctx.headers, data)
    wanted = _requested_parts(data)
    _check_order(wanted, upload_id)
    checksums.check_complete_headers(upload, req.ctx.headers)
    have = await _stored_parts(req, upload_id)
    manifest, sums, defaults = _manifest(req, upload_id, wanted, have, upload)
    _check_object_size(req.ctx.headers, sum(int(entry["bytes"]) for entry in manifest))
    s3_etag = _s3_etag(wanted)
    meta = {k: v for k, v in marker.items() if (k.startswith("x-object-meta-") or k in KEPT)
            and k not in (MARKER_CTYPE, MARKER_ACL)}
    meta["content-type"] = marker.get(MARKER_CTYPE, "binary/octet-stream")
    meta["x-static-large-object"] = "True"
    data = json.dumps(manifest).encode()
    extra = manifest_sysmeta(data, manifest)
    extra[OVERRIDE_ETAG] = s3_etag
    extra[ETAG_META] = s3_etag
    extra[UPLOAD_META] = upload_id
    if upload is not None:
        value = checksums.final(upload, sums)
        checksums.verify_complete(upload, req.ctx.headers, value)
        extra[checksums.CHECKSUM_META] = f"{upload.algo}:{value}"
        extra[checksums.TYPE_META] = upload.type
    elif defaults:  # S3's default: the whole object's CRC64NVME, from the parts'
        value = checksums.final(checksums.DEFAULT, defaults)
        extra[checksums.CHECKSUM_META] = f"{checksums.DEFAULT.algo}:{value}"
        extra[checksums.TYPE_META] = checksums.DEFAULT.type
        extra[checksums.DEFAULT_META] = "true"
    if MARKER_ACL in marker:
        extra[grants.OBJECT_META] = marker[MARKER_ACL]
    if tagging.OBJECT_META in marker:
        extra[tagging.OBJECT_META] = marker[tagging.OBJECT_META]
    octx = object_ctx(req, "PUT")
    info = await container_of(octx)
    check_access(octx, info.headers.get("x-container-write"))
    await conditions.check_write(req)
    resp = await versioning.store_current(octx, info, meta, one(data), len(data), None, extra,
                                          report=segments.report_for(info))
    await req.swift("DELETE", _segments(req), _upload_name(req, upload_id))
    used = {number for number, _, _ in wanted}
    # Parts the list left out go, as in S3 (Swift's s3api keeps them); the object
    # is complete already, so a part that fails to go stays rather than failing it.
    await segments.delete_parts(req, [p["name"] for n, p in have.items() if n not in used],
                                strict=False)
    await segments.drop_replaced(req, resp, keep=upload_id)
    return _complete_result(req, s3_etag, versioning.s3_headers(resp.headers),
                            checksums.answer_xml(extra))


def _check_order(wanted: list[Wanted], upload_id: str) -> None:
    """Refuse part numbers that are not strictly ascending (``InvalidPartOrder``)."""
    numbers = [n for n, _, _ in wanted]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise S3Error("InvalidPartOrder", extra={"UploadId": upload_id})


def _s3_etag(wanted: list[Wanted]) -> str:
    """Return S3's multipart ETag (``md5-of-md5s-N``) of the listed parts."""
    md5s = hashlib.md5(usedforsecurity=False)
    for _, etag, _ in wanted:
        try:
            md5s.update(bytes.fromhex(etag))
        except ValueError:
            raise S3Error("InvalidPart", extra={"ETag": etag}) from None
    return f"{md5s.hexdigest()}-{len(wanted)}"


def _complete_result(req: S3Req, s3_etag: str, headers: dict[str, str],
                     checksum: str = "") -> Resp:
    return Resp(200, {**XML, **headers}, doc("CompleteMultipartUploadResult", [
        el("Location", _location(req)), el("Bucket", req.bucket),
        el("Key", req.key), el("ETag", f'"{s3_etag}"'), checksum]))


async def _completed_again(req: S3Req, upload_id: str, missing: S3Error) -> Resp:
    """Answer a Complete whose upload is gone: the same answer if it made the current object.

    A client that lost the first answer retries; the object completed from this
    upload with these parts (same ``md5-of-md5s-N``) answers 200 again, anything
    else is ``NoSuchUpload`` (Swift's s3api does the same).
    """
    headers = {k.lower(): v for k, v in
               (await versioning.raw_version_head(req, None)).items()}
    if headers.get(UPLOAD_META) != upload_id:
        raise missing
    wanted = _requested_parts(await req.ctx.body.read_all(MAX_XML))
    _check_order(wanted, upload_id)
    s3_etag = _s3_etag(wanted)
    if headers.get(ETAG_META) != s3_etag:
        raise missing
    return _complete_result(req, s3_etag, {}, checksums.answer_xml(headers))


async def abort(req: S3Req, upload_id: str) -> Resp:
    """Answer AbortMultipartUpload: the marker and every part are removed."""
    await _marker(req, upload_id)
    await segments.drop_parts(req, req.key, upload_id, strict=True)
    await req.swift("DELETE", _segments(req), _upload_name(req, upload_id))
    return Resp(204, {"Content-Type": "text/html; charset=UTF-8", "Content-Length": "0"})

