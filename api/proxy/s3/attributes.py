"""GetObjectAttributes (``GET /<bucket>/<key>?attributes``).

``x-amz-object-attributes`` names what to return, among ``ETag`` (unquoted, as
S3 gives it; a multipart object's ``md5-of-md5s-N``), ``Checksum`` (the one
stored with the object and its type: ``FULL_OBJECT``, or a multipart upload's
``COMPOSITE``), ``ObjectParts`` (a multipart object's parts from its manifest,
with their checksums, paged by ``x-amz-max-parts`` and
``x-amz-part-number-marker``; absent for other objects), ``StorageClass``
(``STANDARD``) and ``ObjectSize``. The object (or ``versionId``) is looked up as
HeadObject does, with its errors; the answer carries ``Last-Modified`` and the
version id.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nubis.api.proxy.context import Resp
from nubis.api.proxy.s3 import checksums, objects, versioning
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req
from nubis.api.proxy.s3.xmlio import doc, el

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
#: Most parts one answer lists (S3's default and limit).
MAX_PARTS = 1000
_CONDITIONS = ("range", "if-match", "if-none-match", "if-modified-since",
               "if-unmodified-since")


def _wanted(req: S3Req) -> list[str]:
    names = [n.strip() for n in req.header("x-amz-object-attributes").split(",") if n.strip()]
    if not names or any(n not in ATTRIBUTES for n in names):
        raise S3Error("InvalidArgument", "Invalid attribute name specified.",
                      extra={"ArgumentName": "x-amz-object-attributes",
                             "ArgumentValue": req.header("x-amz-object-attributes")})
    return names


def _number(req: S3Req, header: str, default: int, top: int) -> int:
    raw = req.header(header)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > top:
        raise S3Error("InvalidArgument", f"{header} must be an integer between 0 and {top}",
                      extra={"ArgumentName": header, "ArgumentValue": raw})
    return int(raw)


async def get(req: S3Req) -> Resp:
    """Answer GetObjectAttributes."""
    wanted = _wanted(req)
    max_parts = _number(req, "x-amz-max-parts", MAX_PARTS, MAX_PARTS)
    marker = _number(req, "x-amz-part-number-marker", 0, 10000)
    headers = {k: v for k, v in req.ctx.headers.items() if k not in _CONDITIONS}
    head = dataclasses.replace(req, ctx=dataclasses.replace(req.ctx, method="HEAD",
                                                            headers=headers))
    found = await objects.get_or_head(head)  # HeadObject's lookup and errors
    version = versioning.requested(req)
    stored = await versioning.raw_version_head(req, version)
    parts: list[str] = []
    for name in ATTRIBUTES:
        if name not in wanted:
            continue
        if name == "ETag":
            parts.append(el("ETag", found.headers.get("ETag", "").strip('"')))
        elif name == "Checksum" and checksums.result_xml(stored):
            parts.append(f"<Checksum>{checksums.result_xml(stored)}</Checksum>")
        elif name == "ObjectParts" and stored.get("x-static-large-object", "").lower() \
                == "true":
            parts.append(_parts_xml(await objects.manifest(req, version), marker, max_parts))
        elif name == "StorageClass":
            parts.append(el("StorageClass", "STANDARD"))
        elif name == "ObjectSize":
            parts.append(el("ObjectSize", found.headers.get("Content-Length", "0")))
    out = {k: v for k, v in found.headers.items()
           if k.lower() in ("last-modified", versioning.VERSION_HEADER)}
    out["Content-Type"] = "application/xml"
    return Resp(200, out, doc("GetObjectAttributesResponse", parts))


def _parts_xml(segments: list[dict[str, Any]], marker: int, max_parts: int) -> str:
    """Return ``<ObjectParts>``: the parts after ``marker``, at most ``max_parts``."""
    numbered = []
    for index, seg in enumerate(segments, 1):
        tail = str(seg.get("name", "")).rsplit("/", 1)[-1]
        numbered.append((int(tail) if tail.isdigit() else index, int(seg.get("bytes", 0)),
                         checksums.part_xml(checksums.part_checksum(seg))))
    after = [p for p in numbered if p[0] > marker]
    page = after[:max_parts]
    out = [el("IsTruncated", "true" if len(after) > len(page) else "false"),
           el("MaxParts", max_parts), el("PartNumberMarker", marker)]
    if page:
        out.append(el("NextPartNumberMarker", page[-1][0]))
    out += [f"<Part>{el('PartNumber', n)}{el('Size', size)}{checksum}</Part>"
            for n, size, checksum in page]
    out.append(el("PartsCount", len(numbered)))
    return "<ObjectParts>" + "".join(out) + "</ObjectParts>"
