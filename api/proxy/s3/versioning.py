r"""S3 bucket versioning on Swift's object versioning (as Swift's s3api maps it).

``PUT ?versioning`` Enabled/Suspended is a container POST with
``X-Versions-Enabled`` true/false (the hidden ``\x00versions\x00<bucket>``
container is made the first time; a bucket never returns to unversioned);
``GET ?versioning`` reads ``X-Versions-Enabled`` back. Version ids are Swift's
version ids (timestamps); ``null`` is the plain object of a bucket never or no
longer versioning. Object reads, deletes and copy sources with ``versionId``
become ``?version-id=`` Swift requests; ListObjectVersions is the container's
``?versions`` listing. Deleting the current version makes the newest remaining
one current again (:func:`_restore`), as S3 does.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nubis.api.proxy import objver, symlink
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import policy_of
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.httputil import is_true
from nubis.api.proxy.putter import Footer, Source
from nubis.api.proxy.s3.errors import S3Error, from_swift
from nubis.api.proxy.s3.request import S3Req, drain, read_body
from nubis.api.proxy.s3.xmlio import MAX_XML, doc, el, parse, text
from nubis.api.proxy.transfer import container_of, fetch, store

XML = {"Content-Type": "application/xml"}
#: Response header of the version an answer is about.
VERSION_HEADER = "x-amz-version-id"
MARKER_HEADER = "x-amz-delete-marker"
#: Key :func:`raw_version_head` adds to the headers of a version read in the versions
#: container: that version's id.
STORED_VERSION = "X-Object-Version-Id"
#: Renders the elements after ``<Key>`` of a listed version (row, owner element).
Entry = Callable[[dict[str, Any], str], str]


# --- configuration -------------------------------------------------------------

async def get_config(req: S3Req) -> Resp:
    """Answer GetBucketVersioning (no ``Status`` while never configured)."""
    try:
        resp = await req.swift("HEAD", req.bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    value = resp.headers.get("X-Versions-Enabled")
    parts = []
    if value is not None:
        parts.append(el("Status", "Enabled" if is_true(value) else "Suspended"))
    return Resp(200, dict(XML), doc("VersioningConfiguration", parts))


async def put_config(req: S3Req) -> Resp:
    """Answer PutBucketVersioning (MalformedXML unless Status is Enabled or Suspended)."""
    root = parse(await req.ctx.body.read_all(MAX_XML))
    status = text(root, "Status") if root.tag == "VersioningConfiguration" else None
    if status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML")
    try:
        await req.swift("POST", req.bucket, headers={
            objver.CLIENT_ENABLED: "true" if status == "Enabled" else "false",
            "content-length": "0"})
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    return Resp(200, {"Content-Length": "0"})


# --- writes ------------------------------------------------------------------

async def store_current(octx: ObjectCtx, info: Info, meta: dict[str, str], source: Source,
                        length: int | None, etag: str | None,
                        extra: dict[str, str] | None = None,
                        report: str | None = None, footer: Footer | None = None) -> Resp:
    """Store the bucket's new current object: a new version while versioning is on.

    ``report`` is passed to :func:`~nubis.api.proxy.transfer.store` when no
    version is made; ``footer`` (metadata known once the body was read) always.
    """
    if objver.SYSMETA_ENABLED in info.headers and objver.enabled(info):
        return await objver.put(octx, info, meta, source, length, etag, extra, footer)
    return await store(octx, info, octx.container, octx.obj, meta, source, length, etag,
                       extra, report=report, footer=footer)


def s3_headers(swift: Mapping[str, str]) -> dict[str, str]:
    """Return ``x-amz-version-id`` of a Swift answer naming a version (else nothing)."""
    version = swift.get("X-Object-Version-Id")
    return {VERSION_HEADER: version} if version else {}


# --- version ids ---------------------------------------------------------------

def requested(req: S3Req) -> str | None:
    """Return the request's ``versionId`` (None when absent)."""
    return req.q.get("versionId")


async def check_version(req: S3Req, bucket: str, key: str, version: str) -> None:
    """Refuse a version id the bucket cannot hold (NoSuchVersion / InvalidArgument)."""
    if version == "null":
        return
    octx = ObjectCtx.of(_object_ctx(req), container=bucket, obj=key)
    info = await container_of(octx)
    if not info.exists:
        raise S3Error("NoSuchBucket")
    if not objver.vcont_of(info):  # versioning was never enabled
        raise S3Error("NoSuchVersion", extra={"Key": key, "VersionId": version})
    try:
        objver.parse_ts(version)
    except ValueError:
        raise S3Error("InvalidArgument", "Invalid version id specified",
                      extra={"ArgumentName": "versionId", "ArgumentValue": version}) \
            from None


def _object_ctx(req: S3Req) -> ObjectCtx:
    base = req.ctx  # an unsigned request's account is its bucket's owner (s3.anonymous)
    return ObjectCtx(state=base.state, method="HEAD", path=base.path, query={}, headers={},
                     body=base.body, account=req.account, identity=req.identity,
                     trans_id=base.trans_id, container=req.bucket, obj=req.key)


def read_error(exc: HTTPError, req: S3Req, version: str) -> S3Error:
    """Translate a failed read of version ``version``."""
    if exc.status == 404 and exc.headers.get("Content-Type") == objver.DELETE_MARKER:
        return S3Error("MethodNotAllowed", extra={"Method": req.ctx.method,
                                                  "ResourceType": "DeleteMarker"},
                       headers={MARKER_HEADER: "true", VERSION_HEADER: version})
    if exc.status == 404:
        return S3Error("NoSuchVersion", extra={"Key": req.key, "VersionId": version})
    if exc.status == 400:
        return S3Error("InvalidArgument", "Invalid version id specified",
                       extra={"ArgumentName": "versionId", "ArgumentValue": version})
    return from_swift(exc)


async def latest_marker(req: S3Req) -> dict[str, str]:
    """Return the delete-marker headers when ``req.key``'s latest version is a marker."""
    info = await container_of(_object_ctx(req))
    if not objver.vcont_of(info):
        return {}
    items = await _versions(req, {"prefix": req.key, "limit": "2"})
    for item in items:
        if item.get("name") == req.key and item.get("is_latest"):
            if item.get("content_type") == objver.DELETE_MARKER:
                return {MARKER_HEADER: "true", VERSION_HEADER: str(item["version_id"])}
            return {}
    return {}


async def raw_version_head(req: S3Req, version: str | None, follow: bool = True,
                           where: tuple[str, str] | None = None) -> dict[str, str]:
    """Return the stored headers (sysmeta included) of a version or of the current object.

    The object is the request's, or ``where`` (bucket, key) in the same account.
    A current object that is a version link is read at its version (``follow``;
    else the link's own headers). Empty if absent. No access check: callers
    only use what the caller may read anyway.
    """
    bucket, key = where or (req.bucket, req.key)
    octx = ObjectCtx.of(_object_ctx(req), container=bucket, obj=key)
    info = await container_of(octx)
    container, name = bucket, key
    vcont = objver.vcont_of(info)
    if version not in (None, "null") and vcont:
        assert version is not None
        container, name = vcont, objver.version_object(key, version)
    for _ in range(2):
        cinfo = info if container == bucket else await container_of(
            ObjectCtx.of(octx, container=container))
        got = await fetch(octx, req.account, container, name, policy_of(cinfo), "HEAD")
        if isinstance(got, Reply):
            return {}
        await got.release()
        if got.headers.get(objver.SYSMETA_SYMLINK) != "true" or not vcont or not follow:
            out = dict(got.headers)
            if container == vcont:  # the version a current object links to
                out[STORED_VERSION] = objver.parse_version_object(name)[1] or ""
            return out
        target = urllib.parse.unquote(got.headers.get(symlink.TARGET, ""))
        container, _, name = target.partition("/")
        if container != vcont:
            return dict(got.headers)
    return {}


# --- deletes -------------------------------------------------------------------

async def delete(req: S3Req, version: str | None) -> Resp:
    """Answer DeleteObject of a bucket that has versions, or any with ``versionId``."""
    out: dict[str, str] = {}
    query: dict[str, str] = {}
    if version is not None:
        try:
            await check_version(req, req.bucket, req.key, version)
        except S3Error as err:
            if err.code != "NoSuchVersion":
                raise
            return Resp(204, {VERSION_HEADER: version})  # never versioned: nothing to do
        out = await _version_kind(req, version)
        query["version-id"] = version
    try:
        resp = await req.swift("DELETE", req.bucket, req.key, query=query)
        await drain(resp.body)
    except HTTPError as exc:
        if exc.status != 404:
            raise from_swift(exc) from None
        await _require_bucket(req)
        if version is not None:
            out[VERSION_HEADER] = version
        return Resp(204, out)
    if version is None:
        if "X-Object-Version-Id" in resp.headers:  # versioning on: a delete marker
            out = {MARKER_HEADER: "true", **s3_headers(resp.headers)}
        return Resp(204, out)
    out[VERSION_HEADER] = version
    if resp.headers.get("X-Object-Current-Version-Id") == "null" or version == "null":
        await _restore(req)
    return Resp(204, out)


def error_entry(key: str, version: str | None, err: S3Error) -> str:
    """Return the DeleteObjects ``<Error>`` element of one key."""
    vid = el("VersionId", version) if version is not None else ""
    return f"<Error>{el('Key', key)}{vid}{el('Code', err.code)}{el('Message', err.message)}</Error>"


async def delete_entry(req: S3Req, key: str, version: str | None, quiet: bool,
                       deleter: Callable[[S3Req, str | None], Awaitable[Resp]] | None = None
                       ) -> list[str]:
    """Delete one object of DeleteObjects; return its ``<Deleted>``/``<Error>`` element.

    ``deleter`` (default :func:`delete`) deletes it.
    """
    try:
        done = await (deleter or delete)(dataclasses.replace(req, key=key), version)
    except S3Error as err:
        return [error_entry(key, version, err)]
    if quiet:
        return []
    parts = [el("Key", key)]
    if version is not None:
        parts.append(el("VersionId", version))
    if done.headers.get(MARKER_HEADER) == "true":
        parts += [el("DeleteMarker", "true"),
                  el("DeleteMarkerVersionId", done.headers.get(VERSION_HEADER, "null"))]
    return ["<Deleted>" + "".join(parts) + "</Deleted>"]


async def _version_kind(req: S3Req, version: str) -> dict[str, str]:
    """Return ``x-amz-delete-marker`` when version ``version`` is a delete marker."""
    if version == "null":
        return {}
    try:
        resp = await req.swift("HEAD", req.bucket, req.key, query={"version-id": version})
        await drain(resp.body)
    except HTTPError as exc:
        if exc.headers.get("Content-Type") == objver.DELETE_MARKER:
            return {MARKER_HEADER: "true"}
    return {}


async def _require_bucket(req: S3Req) -> None:
    try:
        await req.swift("HEAD", req.bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None


async def _restore(req: S3Req) -> None:
    """Make the newest remaining version current (none when it is a delete marker)."""
    try:
        current = await req.swift("HEAD", req.bucket, req.key)
        await drain(current.body)
        return  # something is current already
    except HTTPError as exc:
        if exc.status != 404:
            return
    items = await _versions(req, {"prefix": req.key, "limit": "100"})
    for item in items:
        if item.get("name") != req.key:
            continue
        if item.get("content_type") == objver.DELETE_MARKER:
            return
        try:
            await req.swift("PUT", req.bucket, req.key,
                            {"content-length": "0"},
                            query={"version-id": str(item["version_id"])})
        except HTTPError as exc:
            if exc.status in (404, 412):
                continue
            raise from_swift(exc) from None
        return


# --- listing -------------------------------------------------------------------

async def _versions(req: S3Req, params: dict[str, str]) -> list[dict[str, Any]]:
    """Return the bucket's ``?versions`` listing rows."""
    query = {"versions": "", "format": "json", **params}
    try:
        resp = await req.swift("GET", req.bucket, query=query)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    if resp.status != 200:
        await drain(resp.body)
        return []
    rows: list[dict[str, Any]] = json.loads(await read_body(resp) or b"[]")
    return rows


async def versioned(req: S3Req) -> bool:
    """Tell whether the request's bucket has ever had versioning enabled."""
    info = await container_of(_object_ctx(req))
    return bool(objver.vcont_of(info))


async def enabled(req: S3Req) -> bool:
    """Tell whether the request's bucket has versioning Enabled (not Suspended)."""
    return objver.enabled(await container_of(_object_ctx(req)))


async def list_versions(req: S3Req, max_keys: int, entry: Entry, when: Callable[[str], str],
                        owner: str, enc: Callable[[str], str]) -> Resp:
    """Answer ListObjectVersions of a bucket that has (had) versioning.

    Args:
        req: The request (validated by the caller).
        max_keys: The page size.
        entry: Returns the elements after ``<Key>`` of a listed row.
        when: Turns a listing time into S3's.
        owner: The ``<Owner>`` element.
        enc: Writes a key or prefix (``xmlio.key_encoder``).
    """
    q = req.q
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    params = {"limit": str(max_keys + 1), "prefix": prefix}
    if delimiter:
        params["delimiter"] = delimiter
    if q.get("key-marker"):
        params["marker"] = q["key-marker"]
        if q.get("version-id-marker"):
            params["version_marker"] = q["version-id-marker"]
    rows = await _versions(req, params) if max_keys else []
    truncated = len(rows) > max_keys
    rows = rows[:max_keys]
    parts = [el("Name", req.bucket), el("Prefix", enc(prefix)),
             el("KeyMarker", enc(q.get("key-marker", ""))),
             el("VersionIdMarker", q.get("version-id-marker", ""))]
    if truncated and rows:
        last = rows[-1]
        parts.append(el("NextKeyMarker", enc(str(last.get("name", last.get("subdir", ""))))))
        if "name" in last:
            parts.append(el("NextVersionIdMarker", str(last.get("version_id", "null"))))
    parts.append(el("MaxKeys", max_keys))
    if "delimiter" in q:
        parts.append(el("Delimiter", enc(delimiter)))
    if "encoding-type" in q:  # validated by the caller: "url"
        parts.append(el("EncodingType", "url"))
    parts.append(el("IsTruncated", "true" if truncated else "false"))
    prefixes = []
    for row in rows:
        if "subdir" in row:
            prefixes.append(f"<CommonPrefixes>{el('Prefix', enc(str(row['subdir'])))}"
                            "</CommonPrefixes>")
            continue
        head = (el("Key", enc(str(row["name"]))) + el("VersionId", row["version_id"])
                + el("IsLatest", "true" if row.get("is_latest") else "false"))
        if row.get("content_type") == objver.DELETE_MARKER:
            parts.append(f"<DeleteMarker>{head}"
                         f"{el('LastModified', when(str(row['last_modified'])))}"
                         f"{owner}</DeleteMarker>")
        else:
            parts.append(f"<Version>{head}{entry(row, owner)}</Version>")
    return Resp(200, dict(XML), doc("ListVersionsResult", parts + prefixes))
