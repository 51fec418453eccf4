"""S3 lifecycle actions the object expirer carries out with the S3 API's own code.

The expirer (:mod:`nubis.daemons.storage.lifecycle`) finds what a bucket's
rules made due on its node's devices; what needs S3's semantics is done here,
in the expirer's process, through the same controllers an S3 request reaches
(as Swift's expirer does through its internal client), acting as the bucket's
owner with a reseller-admin identity:

- ``current`` expiration is DeleteObject: in a versioning-Enabled bucket a
  delete marker becomes the current version and the object a noncurrent one;
  in a Suspended bucket the null version is removed (as DeleteObject does
  here); a completed multipart object loses its segments with its manifest.
  Nothing happens when the object was rewritten since the scan.
- a ``version`` is removed (DeleteObject with its ``versionId``, a multipart
  one with its parts) when it has been noncurrent ``NoncurrentDays`` --
  counted from its successor's creation -- or when it is a delete marker that
  is the key's only version and a rule removes expired object delete markers.
- an ``upload`` is AbortMultipartUpload (its parts, then its marker).
"""

from __future__ import annotations

import calendar
import logging
import time
from datetime import datetime
from typing import Any

from nubis.api.proxy.auth import Identity
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.base import policy_of
from nubis.api.proxy.context import Ctx, ObjectCtx, ProxyState
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import multipart, objects, segments, versioning
from nubis.api.proxy.s3.auth import Caller
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req, bytes_body
from nubis.api.proxy.transfer import container_of, fetch
from nubis.api.shared.awssig import S3Credential, SignedRequest
from nubis.api.shared.s3lifecycle import (
    DELETE_MARKER,
    TAGGING_META,
    noncurrent_due_at,
    object_tags,
    removes_markers,
)

LOG = logging.getLogger(__name__)
_IDENTITY = Identity(user=".s3-lifecycle", reseller_admin=True, expires=float("inf"))
#: Versions of one key looked at (newest first) when judging one of them.
MAX_VERSIONS = 1000


class ProxyActions:
    """The expirer's :class:`nubis.daemons.storage.lifecycle.Actions`, over a proxy state."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state

    def request(self, account: str, bucket: str, key: str) -> S3Req:
        """Return an S3 request on ``bucket``/``key`` made as the bucket's owner."""
        ctx = Ctx(state=self.state, method="DELETE", path=f"/{bucket}/{key}", query={},
                  headers={}, body=bytes_body(b"", self.state.conf.client_timeout),
                  account=account, identity=_IDENTITY)
        cred = S3Credential(".s3-lifecycle", "", _IDENTITY.user, account, frozenset())
        sreq = SignedRequest(".s3-lifecycle", "", "", "s3", "", (), "", "", False)
        return S3Req(ctx, Caller(cred, sreq, b"", _IDENTITY, account), bucket, key)

    async def apply(self, due: Any, now: float) -> bool:
        """Act on a :class:`~nubis.daemons.storage.lifecycle.Due`; True when settled."""
        req = self.request(due.account, due.bucket, due.key)
        try:
            if due.kind == "current":
                await self._current(req, due.record)
            elif due.kind == "version":
                await self._version(req, due, now)
            elif due.kind == "upload":
                await self._abort(req, due.ident)
        except (S3Error, HTTPError) as exc:
            LOG.warning("lifecycle %s of %s/%s/%s failed: %s", due.kind, due.account,
                        due.bucket, due.key, exc)
            return False
        return True

    async def _current(self, req: S3Req, record: Any) -> None:
        """Expire the current object, unless it was rewritten since the scan."""
        octx = ObjectCtx(state=req.ctx.state, method="HEAD", path=req.ctx.path, query={},
                         headers={}, body=req.ctx.body, account=req.account,
                         identity=_IDENTITY, trans_id=req.ctx.trans_id,
                         container=req.bucket, obj=req.key)
        info = await container_of(octx)
        if not info.exists:
            return
        got = await fetch(octx, req.account, req.bucket, req.key, policy_of(info), "HEAD")
        if isinstance(got, Reply):
            if got.status != 404:
                raise HTTPError(503)
            return
        await got.release()
        stored = {k.lower(): v for k, v in got.headers.items()}
        if stored.get("x-backend-data-timestamp", record.data_timestamp) != \
                record.data_timestamp:
            return  # a newer write won
        await objects.delete(req)

    async def _version(self, req: S3Req, due: Any, now: float) -> None:
        """Remove a version noncurrent long enough, or a delete marker left alone."""
        rows = [r for r in await versioning._versions(
            req, {"prefix": due.key, "limit": str(MAX_VERSIONS)}) if r.get("name") == due.key]
        index = next((i for i, r in enumerate(rows) if str(r.get("version_id")) == due.ident),
                     None)
        if index is None:
            return
        row = rows[index]
        if index == 0:
            lone_marker = (len(rows) == 1 and row.get("content_type") == DELETE_MARKER
                           and removes_markers(due.conf.rules, due.key))
            if not lone_marker:
                return
        else:
            since = _created(rows[index - 1])
            rec = due.record
            size = 0 if row.get("content_type") == DELETE_MARKER else int(row.get("bytes", 0))
            when = noncurrent_due_at(due.conf.rules, due.key,
                                     object_tags(rec.meta.get(TAGGING_META)), size, since)
            if when is None or when > now:
                return
        await segments.delete_version(req, due.ident)

    async def _abort(self, req: S3Req, upload_id: str) -> None:
        """Abort the upload (no longer there: nothing to do)."""
        try:
            await multipart.abort(req, upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise


def _created(row: dict[str, Any]) -> float:
    """Return when a listed version was made (its version id, else its listing time)."""
    vid = str(row.get("version_id", "null"))
    if vid != "null":
        return float(vid)
    stamp = str(row.get("last_modified", ""))
    try:
        return float(calendar.timegm(datetime.fromisoformat(stamp).utctimetuple()))
    except ValueError:
        return time.time()
