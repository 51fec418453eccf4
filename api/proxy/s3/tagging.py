"""Bucket and object tagging: Get/Put/DeleteBucketTagging and ...ObjectTagging.

An object's tag set is sysmeta stored with it (``x-object-sysmeta-s3-tagging``,
JSON pairs), set by ``x-amz-tagging`` on PutObject or by PutObjectTagging (a
metadata POST carrying the object's other stored metadata unchanged). A
bucket's tag set is metadata of its entry in the bucket registry (the system
account's object naming the bucket), so Swift users of the account cannot edit it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping

from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import policy_of
from nubis.api.proxy.context import ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3.errors import S3Error, from_swift
from nubis.api.proxy.s3.request import S3Req
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
    tags = []
    for tag in tag_set.findall("Tag"):
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
    info = await container_of(octx)
    if not info.exists:
        raise S3Error("NoSuchBucket")
    await req.swift("HEAD", req.bucket, req.key)  # access check, NoSuchKey
    got = await fetch(octx, req.account, req.bucket, req.key, policy_of(info), "HEAD")
    if isinstance(got, Reply):
        raise S3Error("NoSuchKey")
    await got.release()
    stored = {k.lower(): v for k, v in got.headers.items()}
    method = req.ctx.method
    if method == "GET":
        return Resp(200, dict(XML), tagging_xml(stored.get(OBJECT_META)))
    if method == "PUT":
        tags = tags_from_xml(await req.ctx.body.read_all(64 * 1024), MAX_OBJECT_TAGS)
        value = encode(tags)
    elif method == "DELETE":
        value = ""
    else:
        raise S3Error("MethodNotAllowed")
    replies = await to_all(octx, info, "POST", {**_kept(stored), OBJECT_META: value})
    if not any(200 <= r.status < 300 for r in replies):
        raise S3Error("ServiceUnavailable")
    return Resp(204 if method == "DELETE" else 200, {})


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
    keep = {k: v for k, v in stored.items() if k.startswith("x-object-meta-")}
    if method == "PUT":
        tags = tags_from_xml(await req.ctx.body.read_all(64 * 1024), MAX_BUCKET_TAGS)
        keep[BUCKET_META] = encode(tags)
    else:
        keep.pop(BUCKET_META, None)
    await req.system("POST", req.bucket, keep)
    return Resp(204 if method == "DELETE" else 200, {})
