"""S3 lifecycle for the object expirer: which local records a bucket rule made due.

A bucket's rules live in its container's sysmeta
(:data:`nubis.api.shared.s3lifecycle.SYSMETA`, set by the S3 API). Each
expirer pass walks a bounded slice (``lifecycle_batch`` records) of every
device's object records from where the previous pass stopped, wrapping
around at the end, so a full walk of a device spans several passes and a pass
costs the same however large the device. For each live record it asks the
bucket's container replicas for the rules and whether the bucket has
versions (cached ``lifecycle_cache`` seconds per bucket) and yields a
:class:`Due` when a rule may act on it:

- ``current``: an object of the bucket whose ``Expiration`` time has come;
- ``version``: a version in the bucket's versions container that
  ``NoncurrentVersionExpiration`` may remove (it is old enough to have been
  noncurrent that long) or a delete marker a rule removes once it is alone;
- ``upload``: a multipart upload's marker in ``<bucket>+segments`` older than
  ``AbortIncompleteMultipartUpload`` allows.

The expirer deletes a ``current`` plain object of a never-versioned bucket
itself (at a timestamp just after the record's, so a newer write wins); the
rest need the S3 semantics of the proxy (delete markers, a version's place in
its history, a large object's segments, an upload's parts), which an
:class:`Actions` carries out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote

from nubis.api.shared.s3lifecycle import (
    DELETE_MARKER,
    SEGMENTS_SUFFIX,
    SYSMETA,
    TAGGING_META,
    UPLOAD_MARKER,
    VERSIONS_PREFIX,
    VERSIONS_SYSMETA,
    Rule,
    abort_due_at,
    decode,
    due_at,
    noncurrent_due_at,
    object_tags,
    removes_markers,
)
from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.daemons.storage.diskfile import ObjectDevice, ObjectRecord
from nubis.daemons.storage.protocol import Timestamp
from nubis.ring.ring import Ring

#: Stored size of a large object's manifest (the object's real size).
_SLO_SIZE = "x-object-sysmeta-slo-size"
#: Stored size of a version link's target (a versioned bucket's current object).
_LINK_SIZE = "x-object-sysmeta-symlink-target-bytes"
_LINK = "x-object-sysmeta-versions-symlink"
_MAX_CACHED = 10000
Kind = Literal["current", "version", "upload"]


class RingSource(Protocol):
    """What the scanner needs of its daemon: rings by kind."""

    def ring(self, kind: str) -> Ring | None:
        """Return the ring ``kind`` (None when it does not exist)."""


@dataclass(frozen=True)
class Bucket:
    """What the scanner knows of a bucket: its rules and whether it has versions."""

    rules: list[Rule]
    versioned: bool = False


@dataclass(frozen=True)
class Due:
    """A record a lifecycle rule may act on now."""

    policy: int
    record: ObjectRecord
    kind: Kind = "current"
    account: str = ""
    bucket: str = ""
    #: The S3 key (of a version: its object's; of an upload: the upload's).
    key: str = ""
    #: A version's id; an upload's id.
    ident: str = ""
    conf: Bucket | None = None
    #: When the rule made it due (epoch seconds; 0: as soon as seen).
    since: float = 0.0

    @property
    def simple(self) -> bool:
        """Tell whether deleting the record itself is the whole action."""
        return (self.kind == "current" and self.conf is not None and not self.conf.versioned
                and not self.record.meta.get("x-static-large-object")
                and _LINK not in self.record.meta)


class Actions(Protocol):
    """Carries out what needs the S3 API's semantics (the proxy's, in process)."""

    async def apply(self, due: Due, now: float) -> bool:
        """Act on ``due`` if a rule still says so at ``now``; True when settled."""


def version_id(ts: str) -> str:
    """Return the version id of a version record's timestamp (its offset dropped)."""
    ticks = Timestamp.parse(ts).ticks
    return f"{ticks // 100000:010d}.{ticks % 100000:05d}"


def created_at(rec: ObjectRecord) -> float:
    """Return when a record's data was written (epoch seconds)."""
    return Timestamp.parse(rec.data_timestamp).ticks / 100000


def size_of(rec: ObjectRecord) -> int:
    """Return the S3 size of a record (a manifest's or a link's target size)."""
    for key in (_SLO_SIZE, _LINK_SIZE):
        if rec.meta.get(key, "").isdigit():
            return int(rec.meta[key])
    return rec.size


class LifecycleScanner:
    """Find the records of a node's devices that bucket lifecycle rules made due."""

    def __init__(self, rings: RingSource, client: HTTPClient, batch: int, cache_ttl: float
                 ) -> None:
        self.rings = rings
        self.client = client
        self.batch = batch
        self.cache_ttl = cache_ttl
        self._cursors: dict[str, bytes] = {}
        self._buckets: dict[tuple[str, str], tuple[float, Bucket]] = {}

    async def due(self, device: ObjectDevice, now: float) -> tuple[int, list[Due]]:
        """Walk the device's next slice of records; return (records seen, those due)."""
        after = self._cursors.get(device.name, b"")
        got: list[tuple[bytes, ObjectRecord]] = await device.run(device.records, after,
                                                                 self.batch)
        self._cursors[device.name] = got[-1][0] if len(got) >= self.batch else b""
        out: list[Due] = []
        for key, rec in got:
            if rec.deleted or rec.name.count("/") < 3:
                continue
            _, account, container, obj = rec.name.split("/", 3)
            if account.startswith("."):
                continue
            found = await self._classify(key[0], rec, account, container, obj, now)
            if found is not None:
                out.append(found)
        return len(got), out

    async def _classify(self, policy: int, rec: ObjectRecord, account: str, container: str,
                        obj: str, now: float) -> Due | None:
        """Return the record's :class:`Due` when a rule may act on it now."""
        if container.startswith(VERSIONS_PREFIX):
            bucket, kind = container[len(VERSIONS_PREFIX):], "version"
            parts = obj.split("\x00")
            if len(parts) != 3 or parts[0]:
                return None
            obj = parts[1]
        elif container.endswith(SEGMENTS_SUFFIX):
            if rec.content_type != UPLOAD_MARKER:
                return None
            bucket, kind = container[:-len(SEGMENTS_SUFFIX)], "upload"
        elif "\x00" in container:
            return None
        else:
            bucket, kind = container, "current"
        conf = await self.bucket(account, bucket)
        if not conf.rules:
            return None
        rules, created = conf.rules, created_at(rec)
        if kind == "upload":
            key, _, upload = obj.rpartition("/")
            when = abort_due_at(rules, key, created)
            return Due(policy, rec, "upload", account, bucket, key, upload, conf, when) \
                if when is not None and when <= now else None
        tags, size = object_tags(rec.meta.get(TAGGING_META)), size_of(rec)
        if kind == "current":
            when = due_at(rules, obj, tags, size, created)
            return Due(policy, rec, "current", account, bucket, obj, "", conf, when) \
                if when is not None and when <= now else None
        # A version can have been noncurrent at most since it was written.
        when = noncurrent_due_at(rules, obj, tags, size, created)
        if (when is not None and when <= now) or (
                rec.content_type == DELETE_MARKER and removes_markers(rules, obj)):
            since = when if when is not None and when <= now else created
            return Due(policy, rec, "version", account, bucket, obj,
                       version_id(rec.data_timestamp), conf, since)
        return None

    async def rules(self, account: str, container: str) -> list[Rule]:
        """Return a container's lifecycle rules (cached; empty when none or unreachable)."""
        return (await self.bucket(account, container)).rules

    async def bucket(self, account: str, container: str) -> Bucket:
        """Return a bucket's rules and versioning (cached; no rules when unreachable)."""
        key = (account, container)
        hit = self._buckets.get(key)
        mono = time.monotonic()
        if hit is not None and hit[0] > mono:
            return hit[1]
        got = await self._head(account, container)
        if got is None:
            return hit[1] if hit is not None else Bucket([])
        if len(self._buckets) >= _MAX_CACHED:
            self._buckets.clear()
        self._buckets[key] = (mono + self.cache_ttl, got)
        return got

    async def _head(self, account: str, container: str) -> Bucket | None:
        """Return the container's lifecycle conf (None: no replica answered)."""
        ring = self.rings.ring("container")
        if ring is None:
            return Bucket([])
        part, nodes = ring.get_nodes(account, container)
        path = "/" + "/".join(quote(p) for p in (str(part), account, container))
        for node in nodes:
            try:
                resp = await self.client.fetch(node["ip"], int(node["port"]), "HEAD",
                                               f"/{quote(str(node['device']))}{path}", {})
            except (HTTPClientError, OSError):
                continue
            if resp.status == 404:
                return Bucket([])
            if 200 <= resp.status < 300:
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return Bucket(decode(headers.get(SYSMETA, "")),
                              bool(headers.get(VERSIONS_SYSMETA)))
        return None
