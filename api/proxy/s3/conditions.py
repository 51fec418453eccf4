"""Conditional writes and deletes: ``If-None-Match: *`` and ``If-Match`` on PUT and DELETE.

S3 evaluates them against the key's current object, with the ETag S3 clients
know (a multipart object's ``md5-of-md5s-N``, kept in sysmeta, not the Swift
manifest's):

- PutObject / CopyObject / CompleteMultipartUpload ``If-None-Match: *``:
  PreconditionFailed when the key exists.
- PutObject / CopyObject ``If-Match: <etag>``: NoSuchKey when the key does not
  exist, PreconditionFailed when its ETag differs. ``If-Match: *``, a
  CompleteMultipartUpload's ``If-Match`` and every other write condition
  answer NotImplemented, as Swift's s3api (its functional suite checks those
  501s).
- DeleteObject ``If-Match: <etag>|*`` and DeleteObjects' ``<ETag>`` per key
  (S3's conditional deletes): NoSuchKey when there is no such object (a delete
  marker is none), PreconditionFailed when the ETag differs. With a
  ``versionId`` the condition is that version's. The size and time conditions
  of S3's directory buckets are NotImplemented (``unconfigured``, DeleteObjects).

The check reads the object, then the write or delete goes ahead: as with
Swift's ``If-None-Match: *``, a concurrent writer between the two is not
detected (S3 would answer 409 ConditionalRequestConflict).
"""

from __future__ import annotations

from collections.abc import Mapping

from nubis.api.proxy import objver
from nubis.api.proxy.s3 import versioning
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req

#: The S3 ETag of a multipart object (its Swift ETag is the manifest's).
ETAG_META = "x-object-sysmeta-s3-etag"
#: Write conditions Swift's s3api refuses (NotImplemented) and S3 does not take on a PUT.
_REFUSED = ("if-modified-since", "if-unmodified-since")


def refuse_unsupported(headers: Mapping[str, str], if_match: bool = True) -> None:
    """Answer NotImplemented to the write conditions nubis does not evaluate.

    Taken: ``If-None-Match: *`` and, when ``if_match``, ``If-Match: <etag>``
    (see :func:`check_write`).
    """
    inm = headers.get("if-none-match", "").strip()
    im = headers.get("if-match", "").strip()
    if (inm and inm != "*") or not headers.keys().isdisjoint(_REFUSED) or (
            "if-match" in headers and (not if_match or not im or im == "*")):
        raise S3Error("NotImplemented")


def drop_overridden(conditions: dict[str, str]) -> dict[str, str]:
    """Drop the date conditions a read ignores beside an ETag condition; return ``conditions``.

    S3 (and RFC 9110, 13.2.2) ignores ``If-Unmodified-Since`` when ``If-Match`` is
    given and ``If-Modified-Since`` when ``If-None-Match`` is: an ``If-Match`` that
    holds reads the object even if it changed since the date (Swift answers 412).
    Applies to GetObject/HeadObject and to a copy's ``x-amz-copy-source-if-*``.
    """
    if "if-match" in conditions:
        conditions.pop("if-unmodified-since", None)
    if "if-none-match" in conditions:
        conditions.pop("if-modified-since", None)
    return conditions


def s3_etag(stored: Mapping[str, str]) -> str:
    """Return the ETag S3 clients know of stored object headers (unquoted)."""
    return (stored.get(ETAG_META) or stored.get("etag", "")).strip('"')


def etag_matches(condition: str, etag: str) -> bool:
    """Tell whether an ``If-Match``/``If-None-Match`` value (``*``, ETags) names ``etag``."""
    wanted = [c.strip() for c in condition.split(",")]
    return "*" in wanted or any(w.removeprefix("W/").strip('"') == etag for w in wanted)


def _exists(stored: Mapping[str, str]) -> bool:
    return bool(stored) and stored.get("content-type") != objver.DELETE_MARKER


async def check_write(req: S3Req) -> None:
    """Evaluate a write's ``If-None-Match: *`` / ``If-Match`` on the key's current object.

    Raises:
        S3Error: PreconditionFailed, or NoSuchKey (``If-Match`` and no object).
    """
    headers = req.ctx.headers
    none = headers.get("if-none-match", "").strip() == "*"
    match = headers.get("if-match", "").strip()
    if not none and not match:
        return
    stored = await versioning.raw_version_head(req, None)
    if none and _exists(stored):
        raise S3Error("PreconditionFailed", extra={"Condition": "If-None-Match"})
    if match:
        _evaluate(match, stored)


async def check_delete(req: S3Req, key: str, version: str | None, condition: str) -> None:
    """Evaluate a delete's ``If-Match`` on ``key`` (at ``version`` when given).

    Raises:
        S3Error: PreconditionFailed, or NoSuchKey when there is no such object.
    """
    stored = await versioning.raw_version_head(req, version, where=(req.bucket, key))
    _evaluate(condition, stored)


def _evaluate(condition: str, stored: Mapping[str, str]) -> None:
    if not _exists(stored):
        raise S3Error("NoSuchKey")
    if not etag_matches(condition, s3_etag(stored)):
        raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
