"""Bucket operations: list, create (global namespace), head, delete, location, listings.

A bucket is a Swift container of the caller's project account; its name is
claimed in the global registry (:class:`~nubis.api.proxy.s3.request.Registry`)
so no two projects hold the same bucket. ListObjects v1/v2 are walks over the
container server's listing (prefix/delimiter/marker/limit pass straight down).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from nubis.api.proxy import objver
from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import bucketconf, tagging, versioning
from nubis.api.proxy.s3.errors import S3Error, from_swift
from nubis.api.proxy.s3.request import Registry, S3Req, read_body
from nubis.api.proxy.s3.xmlio import doc, el, key_encoder, parse, text

_LAX = re.compile(r"^[A-Za-z0-9._-]{3,255}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: Suffix of the container holding a bucket's multipart parts (hidden from S3).
SEGMENTS = "+segments"
MAX_KEYS = 1000
XML = {"Content-Type": "application/xml"}
#: A bucket's policy in ACL mode (:mod:`~nubis.api.proxy.s3.grants`, Swift s3api's name).
ACL_META = "x-container-sysmeta-s3api-acl"


def check_bucket_name(name: str, strict: bool = True) -> None:
    """Apply S3's bucket naming rules (InvalidBucketName).

    Args:
        name: The bucket.
        strict: Creation's DNS-compliant rules; else only the characters and length
            any existing container reachable through S3 may have.
    """
    if not strict:
        if not _LAX.match(name):
            raise S3Error("InvalidBucketName", extra={"BucketName": name})
        return
    ok = bool(_NAME.match(name)) and ".." not in name and not name.startswith("xn--") \
        and not name.endswith(("-s3alias", "--ol-s3")) and ".-" not in name \
        and "-." not in name
    if ok:
        try:
            ipaddress.IPv4Address(name)
            ok = False
        except ValueError:
            pass
    if not ok:
        raise S3Error("InvalidBucketName", extra={"BucketName": name})


def owner_xml(req: S3Req) -> str:
    """Return the ``<Owner>`` element of the caller."""
    return f"<Owner>{el('ID', req.user)}{el('DisplayName', req.user)}</Owner>"


async def list_buckets(req: S3Req,
                       visible: Callable[[S3Req, str], Awaitable[bool]] | None = None) -> Resp:
    """Answer ListBuckets: the project account's containers (those ``visible`` admits).

    ``prefix``, ``bucket-region``, ``max-buckets`` and ``continuation-token`` (the
    paginated form boto3's paginator and ``aws s3 ls --bucket-name-prefix`` use)
    narrow it; a request with any of them sees each bucket's ``BucketRegion``, and a
    ``ContinuationToken`` when more buckets follow, as in S3.
    """
    q = req.q
    paged = bool(q.keys() & _PAGING)
    limit = _max_buckets(q.get("max-buckets"))
    prefix = q.get("prefix", "")
    marker = _token(q.get("continuation-token"))
    region = req.ctx.state.conf.s3_region
    found: list[dict[str, Any]] = []
    more = False
    if q.get("bucket-region", region) == region:  # every bucket lives in the one region
        found, more = await _own_buckets(req, visible, prefix, marker, limit)
    parts = [owner_xml(req), "<Buckets>",
             *(_bucket_xml(item, region if paged else None) for item in found), "</Buckets>"]
    if more:
        parts.append(el("ContinuationToken", base64.b64encode(
            found[-1]["name"].encode()).decode()))
    if "prefix" in q:
        parts.append(el("Prefix", prefix))
    return Resp(200, dict(XML), doc("ListAllMyBucketsResult", parts))


#: ListBuckets' paging parameters (any of them: answer in the paginated form).
_PAGING = frozenset(("max-buckets", "continuation-token", "prefix", "bucket-region"))
#: The most buckets one ListBuckets page holds (``max-buckets``, S3's bound).
MAX_BUCKETS = 10000


def _max_buckets(raw: str | None) -> int | None:
    """Return ``max-buckets`` (None: not asked; InvalidArgument unless 1 to 10,000)."""
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BUCKETS:
        raise S3Error("InvalidArgument", f"Argument max-buckets must be an integer "
                      f"between 1 and {MAX_BUCKETS}",
                      extra={"ArgumentName": "max-buckets", "ArgumentValue": raw})
    return int(raw)


async def _own_buckets(req: S3Req, visible: Callable[[S3Req, str], Awaitable[bool]] | None,
                       prefix: str, marker: str, limit: int | None
                       ) -> tuple[list[dict[str, Any]], bool]:
    """Walk the account's containers after ``marker``; return up to ``limit`` and more?"""
    found: list[dict[str, Any]] = []
    while True:
        query = {"format": "json", "marker": marker}
        if prefix:
            query["prefix"] = prefix
        try:
            resp = await req.swift("GET", query=query)
        except HTTPError as exc:
            if exc.status == 404:
                break
            raise from_swift(exc) from None
        items = json.loads(await read_body(resp) or b"[]") if resp.status == 200 else []
        if not items:
            break
        for item in items:
            if SEGMENTS in item["name"] or (
                    visible is not None and not await visible(req, item["name"])):
                continue
            if limit is not None and len(found) == limit:
                return found, True
            found.append(item)
        marker = items[-1]["name"]
    return found, False


def _bucket_xml(item: dict[str, Any], region: str | None = None) -> str:
    created = iso_listing(item.get("last_modified", "1970-01-01T00:00:00.000000"))
    where = el("BucketRegion", region) if region is not None else ""
    return f"<Bucket>{el('Name', item['name'])}{el('CreationDate', created)}{where}</Bucket>"


def iso_listing(value: str) -> str:
    """Turn a Swift listing time (``2024-01-02T03:04:05.123456``) into S3's.

    Whole seconds rounded up, as Swift's s3api does (agreeing with Last-Modified).
    """
    try:
        when = datetime.fromisoformat(value[:26]).replace(tzinfo=UTC)
    except ValueError:
        return value[:19] + ".000Z"
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def create(req: S3Req, registry: Registry, acl: dict[str, str] | None = None) -> Resp:
    """Answer CreateBucket (BucketAlreadyExists / BucketAlreadyOwnedByYou).

    ``acl``: the container headers of the request's ACL, set only on a bucket this
    request created (an existing bucket's ACL is left alone). In ACL mode only the
    account's owners create buckets, and the bucket's owner is its creator: another
    user of the project gets BucketAlreadyExists, as in Swift's s3api.
    """
    if req.acl_mode and not req.owns_account:
        raise S3Error("AccessDenied")
    check_bucket_name(req.bucket)
    tags = _configuration(req, await req.ctx.body.read_all(64 * 1024))
    previous = await registry.claim(req, req.bucket)
    if previous is not None and previous != req.account:
        raise S3Error("BucketAlreadyExists", extra={"BucketName": req.bucket})
    try:
        resp = await req.swift("PUT", req.bucket)
    except HTTPError as exc:
        if previous is None:
            await registry.release(req, req.bucket)
        raise from_swift(exc) from None
    if previous is not None or resp.status == 202:
        raise await _already(req)
    if acl:
        await _set_acl(req, acl)
    if tags:
        await tagging.set_bucket_tags(req, tags)
    return Resp(200, {"Location": f"/{req.bucket}", "Content-Length": "0"})


def _configuration(req: S3Req, body: bytes) -> tagging.Tags:
    """Check a CreateBucketConfiguration; return the bucket's tags in it.

    A directory bucket's ``Bucket`` / ``Location`` is NotImplemented (nubis has
    general purpose buckets only), rather than dropped.
    """
    if not body.strip():
        return []
    root = parse(body)
    region = text(root, "LocationConstraint")
    if region and region != req.ctx.state.conf.s3_region:
        raise S3Error("InvalidLocationConstraint", "The specified location-constraint "
                      "is not valid", 400, {"LocationConstraint": region})
    if root.find("Bucket") is not None or root.find("Location") is not None:
        raise S3Error("NotImplemented", "Directory buckets are not supported.", 501)
    found = root.find("Tags")
    return tagging.tags_of(found, tagging.MAX_BUCKET_TAGS) if found is not None else []


async def _already(req: S3Req) -> S3Error:
    """Return the error for creating an existing bucket of the caller's account."""
    if req.acl_mode:
        stored = await bucketconf.read(req, req.account, ACL_META)
        try:
            owner = json.loads(stored or "{}").get("Owner")
        except (ValueError, AttributeError):
            owner = None
        if owner and owner != req.user:
            return S3Error("BucketAlreadyExists", extra={"BucketName": req.bucket})
    return S3Error("BucketAlreadyOwnedByYou", extra={"BucketName": req.bucket})


async def _set_acl(req: S3Req, acl: dict[str, str]) -> None:
    """Give a new bucket its ACL (container ACLs, or the ACL-mode policy sysmeta)."""
    if ACL_META in acl:
        await bucketconf.write(req, ACL_META, acl[ACL_META])
    else:
        await req.swift("POST", req.bucket, headers=acl)


async def head(req: S3Req) -> Resp:
    """Answer HeadBucket."""
    try:
        await req.swift("HEAD", req.bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    return Resp(200, {"x-amz-bucket-region": req.ctx.state.conf.s3_region,
                      "Content-Length": "0"})


async def delete(req: S3Req, registry: Registry) -> Resp:
    """Answer DeleteBucket (BucketNotEmpty while objects or uploads remain)."""
    try:
        await req.swift("DELETE", req.bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    # absent (no uploads ever) or still holding parts of orphaned uploads
    with contextlib.suppress(HTTPError):
        await req.swift("DELETE", req.bucket + SEGMENTS)
    await registry.release(req, req.bucket)
    return Resp(204, {})


async def location(req: S3Req) -> Resp:
    """Answer GetBucketLocation (empty for us-east-1, as S3 does)."""
    await head(req)
    region = req.ctx.state.conf.s3_region
    value = "" if region == "us-east-1" else region
    return Resp(200, dict(XML), doc("LocationConstraint", [value]))


def _max_keys(req: S3Req) -> int:
    raw = req.q.get("max-keys", str(MAX_KEYS))
    try:
        n = int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", "Provided max-keys not an integer or within "
                      "integer range", extra={"ArgumentName": "max-keys",
                                              "ArgumentValue": raw}) from None
    if n < 0:
        raise S3Error("InvalidArgument", "Argument maxKeys must be an integer between 0 "
                      "and 2147483647", extra={"ArgumentName": "maxKeys",
                                               "ArgumentValue": raw})
    return min(n, MAX_KEYS)


async def walk(req: S3Req, container: str, prefix: str, delimiter: str, marker: str,
               limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Return up to ``limit`` listing entries after ``marker`` and whether more remain."""
    if limit == 0:
        return [], False
    query = {"format": "json", "limit": str(limit + 1), "prefix": prefix, "marker": marker}
    if delimiter:
        query["delimiter"] = delimiter
    try:
        resp = await req.swift("GET", container, query=query)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    items: list[dict[str, Any]] = json.loads(await read_body(resp) or b"[]") \
        if resp.status == 200 else []
    return items[:limit], len(items) > limit


async def list_objects(req: S3Req) -> Resp:
    """Answer ListObjects (v1) and ListObjectsV2."""
    q = req.q
    v2 = q.get("list-type") == "2"
    enc = key_encoder(q)
    max_keys = _max_keys(req)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    if v2:
        marker = max(q.get("start-after", ""), _token(q.get("continuation-token")))
    else:
        marker = q.get("marker", "")
    items, truncated = await walk(req, req.bucket, prefix, delimiter, marker, max_keys)
    parts = [el("Name", req.bucket), el("Prefix", enc(prefix))]
    if v2:
        if "start-after" in q:
            parts.append(el("StartAfter", enc(q["start-after"])))
        if "continuation-token" in q:
            parts.append(el("ContinuationToken", q["continuation-token"]))
    else:
        parts.append(el("Marker", enc(marker)))
    last = items[-1].get("name", items[-1].get("subdir", "")) if items else ""
    if not v2 and truncated and delimiter:
        parts.append(el("NextMarker", enc(last)))
    if v2 and truncated:
        parts.append(el("NextContinuationToken", base64.b64encode(last.encode()).decode()))
    if v2:
        parts.append(el("KeyCount", len(items)))
    parts.append(el("MaxKeys", max_keys))
    if delimiter:
        parts.append(el("Delimiter", enc(delimiter)))
    if "encoding-type" in q:  # validated by key_encoder: "url"
        parts.append(el("EncodingType", "url"))
    parts.append(el("IsTruncated", "true" if truncated else "false"))
    # no owner for an unsigned caller (``owner_xml`` names the caller)
    owner = owner_xml(req) if req.caller is not None and (
        not v2 or q.get("fetch-owner") == "true") else ""
    prefixes = []
    for item in items:
        if "subdir" in item:
            prefixes.append(f"<CommonPrefixes>{el('Prefix', enc(item['subdir']))}"
                            "</CommonPrefixes>")
            continue
        parts.append("<Contents>" + el("Key", enc(item["name"])) + _entry(item, owner)
                     + "</Contents>")
    return Resp(200, dict(XML), doc("ListBucketResult", parts + prefixes))


def _entry(item: dict[str, Any], owner: str) -> str:
    """Return the elements after ``<Key>`` of a listed object."""
    return (el("LastModified", iso_listing(item["last_modified"]))
            + el("ETag", f'"{_etag(item)}"') + el("Size", item["bytes"])
            + owner + el("StorageClass", "STANDARD"))


async def list_versions(req: S3Req) -> Resp:
    """Answer ListObjectVersions (unversioned bucket: each object is version ``null``)."""
    q = req.q
    enc = key_encoder(q)
    if "version-id-marker" in q and "key-marker" not in q:
        raise S3Error("InvalidArgument", "A version-id marker cannot be specified without "
                      "a key marker.", extra={"ArgumentName": "version-id-marker"})
    marker = q.get("version-id-marker")
    if marker and marker != "null" and not objver.valid_id(marker):
        raise S3Error("InvalidArgument", "Invalid version id specified",
                      extra={"ArgumentName": "version-id-marker", "ArgumentValue": marker})
    max_keys = _max_keys(req)
    if await versioning.versioned(req):
        return await versioning.list_versions(req, max_keys, _entry, iso_listing, owner_xml(req),
                                              enc)
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    marker = q.get("key-marker", "")
    items, truncated = await walk(req, req.bucket, prefix, delimiter, marker, max_keys)
    parts = [el("Name", req.bucket), el("Prefix", enc(prefix)), el("KeyMarker", enc(marker)),
             el("VersionIdMarker", q.get("version-id-marker", ""))]
    if truncated and items:
        last = items[-1].get("name", items[-1].get("subdir", ""))
        parts += [el("NextKeyMarker", enc(last)), el("NextVersionIdMarker", "null")]
    parts.append(el("MaxKeys", max_keys))
    if "delimiter" in q:
        parts.append(el("Delimiter", enc(delimiter)))
    if "encoding-type" in q:  # validated by key_encoder: "url"
        parts.append(el("EncodingType", "url"))
    parts.append(el("IsTruncated", "true" if truncated else "false"))
    owner, prefixes = owner_xml(req), []
    for item in items:
        if "subdir" in item:
            prefixes.append(f"<CommonPrefixes>{el('Prefix', enc(item['subdir']))}"
                            "</CommonPrefixes>")
            continue
        parts.append("<Version>" + el("Key", enc(item["name"])) + el("VersionId", "null")
                     + el("IsLatest", "true") + _entry(item, owner) + "</Version>")
    return Resp(200, dict(XML), doc("ListVersionsResult", parts + prefixes))


def _etag(item: dict[str, Any]) -> str:
    """Return an entry's S3 ETag (multipart objects carry theirs in the content type)."""
    ctype = str(item.get("content_type", ""))
    if ";s3_etag=" in ctype:
        return ctype.rsplit(";s3_etag=", 1)[1]
    return str(item.get("hash", ""))


def _token(token: str | None) -> str:
    if token is None:
        return ""
    try:
        return base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                      extra={"ArgumentName": "continuation-token"}) from None
