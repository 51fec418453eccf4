"""Bucket and object tagging: Get/Put/DeleteBucketTagging and ...ObjectTagging.

An object's tag set is sysmeta stored with it (``x-object-sysmeta-s3-tagging``,
JSON pairs), set by ``x-amz-tagging`` on PutObject or by PutObjectTagging (a
metadata POST carrying the object's other stored metadata unchanged). A
bucket's tag set is metadata of its entry in the bucket registry (the system
account's object naming the bucket), so Swift users of the account cannot edit it.
With ``versionId`` the tags are those of that version (its data object in the
bucket's versions container; the current version's link carries a copy, which
the expirer's lifecycle filters read); a delete marker has none (405).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from nubis.api.proxy import objver, symlink
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import policy_of
from nubis.api.proxy.context import Info, ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import versioning
from nubis.api.proxy.s3.errors import S3Error, from_swift
from nubis.api.proxy.s3.request import S3Req, drain
from nubis.api.proxy.s3.xmlio import doc, el, parse, text
from nubis.api.proxy.transfer import container_of, fetch, to_all

OBJECT_META = "x-object-sysmeta-s3-tagging"
BUCKET_META = "x-object-meta-s3-tagging"
#: S3's limits: tags per object / bucket, key and value lengths.
MAX_OBJECT_TAGS, MAX_BUCKET_TAGS, MAX_KEY, MAX_VALUE = 10, 50, 128, 256
XML = {"Content-Type": "application/xml"}
#: Object headers the storage nodes keep besides metadata (a POST must resend them).
_STORED = frozenset({"content-type", "content-disposition", "content-encoding",
                     "content-language", "cache-control", "expires", "x-delete-at",
                     "x-object-manifest", "x-static-large-object", "x-robots-tag"})
Tags = list[tuple[str, str]]


def check_tags(tags: Tags, limit: int) -> Tags:
    """Apply S3's tag rules (InvalidTag); return ``tags``."""
    if len(tags) > limit:
        raise S3Error("BadRequest" if limit == MAX_OBJECT_TAGS else "InvalidTag",
                      "Object tags cannot be greater than 10" if limit == MAX_OBJECT_TAGS
                      else "Bucket tag count cannot be greater than 50", 400)
    if len({k for k, _ in tags}) != len(tags):
        raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key", 400)
    for k, v in tags:
        if not k or len(k) > MAX_KEY or len(v) > MAX_VALUE or k.startswith("aws:"):
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid" if
                          not k or len(k) > MAX_KEY or k.startswith("aws:") else
                          "The TagValue you have provided is invalid", 400)
    return tags


def tags_from_header(value: str) -> Tags:
    """Parse ``x-amz-tagging`` (``k1=v1&k2=v2``, URL-encoded)."""
    try:
        pairs = urllib.parse.parse_qsl(value, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise S3Error("InvalidArgument", "The header 'x-amz-tagging' shall be encoded as "
                      "UTF-8 then URLEncoded URL query parameters without tag name "
                      "duplicates.") from None
    return check_tags(pairs, MAX_OBJECT_TAGS)


def tags_from_xml(body: bytes, limit: int) -> Tags:
    """Parse a ``Tagging`` document (MalformedXML when it is not one)."""
    root = parse(body)
    tag_set = root.find("TagSet")
    if root.tag != "Tagging" or tag_set is None:
        raise S3Error("MalformedXML")
    return tags_of(tag_set, limit)


def tags_of(parent: Element, limit: int) -> Tags:
    """Return the ``<Tag><Key/><Value/></Tag>`` children of ``parent``, checked."""
    tags = []
    for tag in parent.findall("Tag"):
        k, v = text(tag, "Key"), text(tag, "Value")
        if k is None or v is None:
            raise S3Error("MalformedXML")
        tags.append((k, v))
    return check_tags(tags, limit)


def encode(tags: Tags) -> str:
    """Return the stored form of a tag set."""
    return json.dumps(tags, separators=(",", ":"))


def tagging_xml(stored: str | None) -> bytes:
    """Return the ``Tagging`` document of a stored tag set."""
    tags: Tags = [tuple(t) for t in json.loads(stored)] if stored else []  # type: ignore[misc]
    return doc("Tagging", ["<TagSet>", *(f"<Tag>{el('Key', k)}{el('Value', v)}</Tag>"
                                         for k, v in tags), "</TagSet>"])


async def object_tagging(req: S3Req, octx: ObjectCtx) -> Resp:
    """Answer Get/Put/DeleteObjectTagging (``octx``: the object's Swift context)."""
    method = req.ctx.method
    if method not in ("GET", "PUT", "DELETE"):
        raise S3Error("MethodNotAllowed")
    target = await _target(req, octx)
    out = {versioning.VERSION_HEADER: target.version} if target.version else {}
    if method == "GET":
        return Resp(200, {**XML, **out}, tagging_xml(target.stored.get(OBJECT_META)))
    await _write(req, target, {OBJECT_META: await _new_value(req)})
    return Resp(204 if method == "DELETE" else 200, out)


async def update_object_sysmeta(req: S3Req, updates: dict[str, str]) -> None:
    """Set ``updates`` on the object (or its ``versionId``), other stored metadata kept."""
    base = req.ctx
    octx = ObjectCtx(state=base.state, method="POST", path=base.path, query={}, headers={},
                     body=base.body, account=req.account, identity=req.identity,
                     trans_id=base.trans_id, container=req.bucket, obj=req.key)
    await _write(req, await _target(req, octx), updates)


@dataclass(frozen=True)
class _Target:
    """The stored object a metadata update reads and rewrites."""

    octx: ObjectCtx  # the key's context (its bucket's info: ``info``)
    info: Info
    stored: dict[str, str]
    version: str | None = None  # a version id other than ``null``
    vctx: ObjectCtx | None = None  # that version's data object and its container
    vinfo: Info | None = None


async def _target(req: S3Req, octx: ObjectCtx) -> _Target:
    """Find the object or version a tagging/ACL request names (NoSuchKey/NoSuchVersion)."""
    info = await container_of(octx)
    if not info.exists:
        raise S3Error("NoSuchBucket")
    version = versioning.requested(req)
    if version is None or version == "null":
        await req.swift("HEAD", req.bucket, req.key)  # access check, NoSuchKey
        got = await fetch(octx, req.account, req.bucket, req.key, policy_of(info), "HEAD")
        if isinstance(got, Reply):
            raise S3Error("NoSuchKey")
        await got.release()
        return _Target(octx, info, {k.lower(): v for k, v in got.headers.items()})
    await versioning.check_version(req, req.bucket, req.key, version)
    try:  # access check; NoSuchVersion, or 405 for a delete marker
        await drain((await req.swift("HEAD", req.bucket, req.key,
                                     query={"version-id": version})).body)
    except HTTPError as exc:
        raise versioning.read_error(exc, req, version) from None
    vcont = objver.vcont_of(info)
    vctx = ObjectCtx.of(octx, container=vcont, obj=objver.version_object(req.key, version))
    vinfo = await container_of(vctx)
    got = await fetch(vctx, req.account, vcont, vctx.obj, policy_of(vinfo), "HEAD")
    if isinstance(got, Reply):
        raise S3Error("NoSuchVersion", extra={"Key": req.key, "VersionId": version})
    await got.release()
    return _Target(octx, info, {k.lower(): v for k, v in got.headers.items()}, version,
                   vctx, vinfo)


async def _new_value(req: S3Req) -> str:
    """Return the stored tag set a Put/DeleteObjectTagging asks for."""
    if req.ctx.method == "PUT":
        return encode(tags_from_xml(await req.ctx.body.read_all(64 * 1024), MAX_OBJECT_TAGS))
    return ""


async def _write(req: S3Req, target: _Target, updates: dict[str, str]) -> None:
    """Rewrite the target's metadata with ``updates`` (a version's link gets a copy)."""
    if target.vctx is None or target.vinfo is None:
        replies = await to_all(target.octx, target.info, "POST",
                               {**_kept(target.stored), **updates})
        if not any(200 <= r.status < 300 for r in replies):
            raise S3Error("ServiceUnavailable")
        return
    vctx, octx, info = target.vctx, target.octx, target.info
    replies = await to_all(vctx, target.vinfo, "POST", {**_kept(target.stored), **updates,
                                                        **objver.ALLOW})
    if not any(200 <= r.status < 300 for r in replies):
        raise S3Error("ServiceUnavailable")
    link = await fetch(octx, req.account, req.bucket, req.key, policy_of(info), "HEAD")
    if not isinstance(link, Reply):
        await link.release()
        lhead = {k.lower(): v for k, v in link.headers.items()}
        target_path = urllib.parse.unquote(lhead.get(symlink.TARGET, ""))
        if lhead.get(objver.SYSMETA_SYMLINK) == "true" \
                and target_path == f"{vctx.container}/{vctx.obj}":
            await to_all(octx, info, "POST", {**_kept(lhead), **updates})


def _kept(stored: Mapping[str, str]) -> dict[str, str]:
    """Return the stored metadata a metadata POST must carry to keep it."""
    return {k: v for k, v in stored.items()
            if k.startswith(("x-object-meta-", "x-object-sysmeta-")) or k in _STORED}


async def bucket_tagging(req: S3Req) -> Resp:
    """Answer Get/Put/DeleteBucketTagging (the tags live in the bucket registry)."""
    try:
        await req.swift("HEAD", req.bucket)
        entry = await req.system("HEAD", req.bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    stored = {k.lower(): v for k, v in entry.headers.items()}
    method = req.ctx.method
    if method == "GET":
        if not stored.get(BUCKET_META):
            raise S3Error("NoSuchTagSet", "The TagSet does not exist", 404,
                          {"BucketName": req.bucket})
        return Resp(200, dict(XML), tagging_xml(stored[BUCKET_META]))
    tags = tags_from_xml(await req.ctx.body.read_all(64 * 1024), MAX_BUCKET_TAGS) \
        if method == "PUT" else None
    await _store_bucket_tags(req, stored, tags)
    return Resp(204 if method == "DELETE" else 200, {})


async def set_bucket_tags(req: S3Req, tags: Tags) -> None:
    """Give the request's bucket ``tags`` (CreateBucket's ``Tags``)."""
    entry = await req.system("HEAD", req.bucket)
    await _store_bucket_tags(req, {k.lower(): v for k, v in entry.headers.items()}, tags)


async def _store_bucket_tags(req: S3Req, stored: Mapping[str, str], tags: Tags | None
                             ) -> None:
    """Rewrite the bucket's registry entry with ``tags`` (None: without any)."""
    keep = {k: v for k, v in stored.items() if k.startswith("x-object-meta-")}
    if tags is None:
        keep.pop(BUCKET_META, None)
    else:
        keep[BUCKET_META] = encode(tags)
    await req.system("POST", req.bucket, keep)
