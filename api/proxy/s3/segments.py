"""Multipart parts in ``<bucket>+segments``, and removing an upload's parts.

Parts are objects ``<key>/<upload id>/<part:05d>`` of the hidden container
``<bucket>+segments``; a completed upload is an SLO manifest over them whose
sysmeta :data:`UPLOAD_META` names the upload. S3 frees an object's parts when the
object is overwritten, and so does nubis: the PUT asks the object servers which
upload the object it replaced came from (:func:`report_for`, answered in
``x-backend-replaced``) and :func:`drop_replaced` removes that upload's parts
afterwards. (Swift's s3api leaves them behind.) With versioning Enabled the
replaced object lives on as a version and keeps its parts; deleting a version
for good frees them (:func:`delete_version`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

from nubis.api.proxy import objver, versioning
from nubis.api.proxy.context import Info, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import versioning as s3versioning
from nubis.api.proxy.s3.buckets import SEGMENTS, walk
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req
from nubis.common import backend as hdr

#: Sysmeta of a completed object: the upload it was completed from.
UPLOAD_META = "x-object-sysmeta-s3-upload-id"
#: An upload's parts are listed and deleted this many at a time.
PAGE = 1000
#: Most parts an upload can have (S3's limit).
MAX_PARTS = 10000
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def container(bucket: str) -> str:
    """Return the hidden container holding ``bucket``'s parts and upload markers."""
    return bucket + SEGMENTS


def reader_acl(bucket_read: str) -> str:
    """Return the parts container's read ACL for a bucket's ``X-Container-Read``.

    A multipart object's reader must read its parts too (Swift checks each
    segment of a large object against the reader's rights), so the parts
    container grants the bucket's readers read access -- without listings
    (``.rlistings``): a public bucket's uploads in progress stay unlisted.
    """
    entries = (e.strip() for e in bucket_read.split(","))
    return ",".join(e for e in entries if e and e != ".rlistings")


async def share_readers(req: S3Req, bucket_read: str) -> None:
    """Give the bucket's parts container (if any) the bucket's readers (canned ACLs)."""
    with contextlib.suppress(HTTPError):  # no parts container yet: made with the ACL
        await req.swift("POST", container(req.bucket),
                        headers={"x-container-read": reader_acl(bucket_read)})


def report_for(info: Info) -> str | None:
    """Return the metadata a PUT into this bucket asks about (None: keep old parts).

    With versioning Enabled (or Swift's legacy versioning) the replaced object
    lives on as a version and keeps its parts. In a Suspended bucket the PUT
    replaces the null version for good, or a link to a version, which carries
    no upload id (the version keeps its parts).
    """
    if objver.enabled(info) or versioning.SYSMETA_LOCATION in info.headers:
        return None
    return UPLOAD_META


async def removed_upload(req: S3Req, version: str | None) -> str | None:
    """Return the upload of the multipart object a versioned DeleteObject removes for good.

    A delete naming a version removes that version (``null`` is the bucket's
    own object); one without a version removes the null version of a Suspended
    bucket but only hides the object behind a delete marker in an Enabled one.
    A link to a version carries no upload id: its version stays.
    """
    follow = version not in (None, "null")
    if version is None and await s3versioning.enabled(req):
        return None
    if follow and not objver.valid_id(str(version)):
        return None  # the delete itself refuses it
    return (await s3versioning.raw_version_head(req, version, follow)).get(UPLOAD_META)


async def delete_version(req: S3Req, version: str | None) -> Resp:
    """Answer a versioned DeleteObject, then free the parts of what it removed for good."""
    upload = await removed_upload(req, version)
    resp = await s3versioning.delete(req, version)
    if upload is not None:
        await _free(req, upload)
    return resp


async def delete_parts(req: S3Req, names: Iterable[str], strict: bool) -> None:
    """Delete parts (objects of the bucket's segments container) by name.

    A 404 is fine; other failures raise only when ``strict`` (Abort), else the
    part stays behind (the write that orphaned it already succeeded and must not
    fail).
    """
    where = container(req.bucket)
    for name in names:
        try:
            await req.swift("DELETE", where, name)
        except HTTPError as exc:
            if strict and exc.status != 404:
                raise


async def drop_parts(req: S3Req, key: str, upload_id: str, strict: bool) -> None:
    """Delete every part of one upload of ``key`` (``strict``: see :func:`delete_parts`)."""
    where = container(req.bucket)
    prefix, marker = f"{key}/{upload_id}/", ""
    for _ in range(MAX_PARTS // PAGE + 1):
        parts, more = await walk(req, where, prefix, "", marker, PAGE)
        await delete_parts(req, [part["name"] for part in parts], strict)
        if not parts or not more:
            return
        marker = parts[-1]["name"]


async def drop_replaced(req: S3Req, stored: Resp, keep: str | None = None) -> None:
    """Remove the parts of the completed uploads a write of ``req.key`` replaced.

    ``stored`` is the write's answer; its internal ``x-backend-replaced`` header
    is taken out here. ``keep`` is an upload never to touch (the one a Complete
    just made current).
    """
    value = stored.headers.pop(hdr.X_REPLACED, "")
    for upload_id in value.split(","):
        if upload_id != keep:
            await _free(req, upload_id)


async def _free(req: S3Req, upload_id: str) -> None:
    """Delete the parts of a completed upload of ``req.key``, failing quietly.

    The write or delete that orphaned them succeeded already and must not fail.
    """
    if _UPLOAD_ID.fullmatch(upload_id):
        # e.g. the segments container is gone: nothing is left to free
        with contextlib.suppress(HTTPError, S3Error):
            await drop_parts(req, req.key, upload_id, strict=False)
