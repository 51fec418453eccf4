"""S3 lifecycle rules as stored with a bucket, and when they act on an object.

The S3 API (``PutBucketLifecycleConfiguration``) stores a bucket's rules as
compact JSON in the container sysmeta :data:`SYSMETA`; the object expirer
reads it from the container server and carries out the actions a rule has
made due. Both sides share this module: the record, its stored form and the
moments a rule acts (S3's rules: every ``Days`` count -- ``Expiration/Days``
from creation, ``NoncurrentDays`` from when a version became noncurrent,
``DaysAfterInitiation`` from a multipart upload's start -- rounds up to the
next midnight UTC; ``Date`` is a midnight UTC after which every matching
current object is expired). It also names the storage layout the expirer
must recognise (versions containers, delete markers, upload markers), which
the proxy's modules define and a unit test keeps equal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Container sysmeta holding a bucket's lifecycle rules (JSON, see :func:`encode`).
SYSMETA = "x-container-sysmeta-s3-lifecycle"
#: Object sysmeta holding an object's S3 tag set (JSON pairs; the S3 tagging API's).
TAGGING_META = "x-object-sysmeta-s3-tagging"
DAY = 86400
#: Container sysmeta naming a bucket's versions container (set once versioning was on).
VERSIONS_SYSMETA = "x-container-sysmeta-versions-container"
#: The hidden container of a bucket's versions: this prefix and the bucket's name.
VERSIONS_PREFIX = "\x00versions\x00"
#: Content type of a delete-marker version.
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
#: The container of a bucket's multipart parts and upload markers: the bucket + this.
SEGMENTS_SUFFIX = "+segments"
#: Content type of a multipart upload's marker object ``<key>/<upload id>``.
UPLOAD_MARKER = "application/x-nubis-s3-upload"


@dataclass(frozen=True)
class Rule:
    """One expiration rule of a bucket (its filter and its action)."""

    id: str
    enabled: bool
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    #: ``ObjectSizeGreaterThan`` / ``ObjectSizeLessThan`` (None: no bound).
    size_gt: int | None = None
    size_lt: int | None = None
    #: ``Expiration/Days`` or ``Expiration/Date`` (epoch seconds, a midnight UTC).
    days: int | None = None
    date: int | None = None
    #: ``Expiration/ExpiredObjectDeleteMarker`` true: a lone delete marker is removed.
    marker: bool = False
    #: ``NoncurrentVersionExpiration/NoncurrentDays``.
    noncurrent_days: int | None = None
    #: ``AbortIncompleteMultipartUpload/DaysAfterInitiation``.
    abort_days: int | None = None
    #: Whether the filter was given as ``Filter`` (not the legacy rule ``Prefix``)
    #: and, inside it, as ``And`` (kept to answer GetBucketLifecycleConfiguration as set).
    filter_style: str = "filter"

    def matches(self, name: str, tags: Sequence[tuple[str, str]], size: int) -> bool:
        """Tell whether the rule's filter selects object ``name``."""
        if not name.startswith(self.prefix):
            return False
        if self.size_gt is not None and size <= self.size_gt:
            return False
        if self.size_lt is not None and size >= self.size_lt:
            return False
        have = set(tags)
        return all(t in have for t in self.tags)

    def due_at(self, created: float) -> float | None:
        """Return when the rule expires a current object created at ``created`` (epoch)."""
        if self.date is not None:
            return float(self.date)
        if self.days is None:
            return None
        return after_days(created, self.days)


def after_days(start: float, days: int) -> float:
    """Return the midnight UTC that ends ``days`` days after ``start`` (S3's rounding up)."""
    return math.ceil((start + days * DAY) / DAY) * DAY


def encode(rules: Sequence[Rule]) -> str:
    """Return the stored (sysmeta) form of a rule list."""
    out = []
    for r in rules:
        item: dict[str, object] = {"id": r.id, "on": r.enabled, "style": r.filter_style}
        if r.prefix:
            item["prefix"] = r.prefix
        if r.tags:
            item["tags"] = [list(t) for t in r.tags]
        if r.marker:
            item["marker"] = True
        for key, value in (("gt", r.size_gt), ("lt", r.size_lt), ("days", r.days),
                           ("date", r.date), ("noncurrent", r.noncurrent_days),
                           ("abort", r.abort_days)):
            if value is not None:
                item[key] = value
        out.append(item)
    return json.dumps(out, separators=(",", ":"), ensure_ascii=True)


def decode(stored: str | None) -> list[Rule]:
    """Return the rules of a stored value (empty when absent or unreadable)."""
    if not stored:
        return []
    try:
        items = json.loads(stored)
        return [Rule(id=str(i["id"]), enabled=bool(i["on"]), prefix=str(i.get("prefix", "")),
                     tags=tuple((str(k), str(v)) for k, v in i.get("tags", [])),
                     size_gt=i.get("gt"), size_lt=i.get("lt"), days=i.get("days"),
                     date=i.get("date"), marker=bool(i.get("marker", False)),
                     noncurrent_days=i.get("noncurrent"), abort_days=i.get("abort"),
                     filter_style=str(i.get("style", "filter")))
                for i in items]
    except (ValueError, TypeError, KeyError):
        return []


def object_tags(stored: str | None) -> list[tuple[str, str]]:
    """Return an object's tag set from its :data:`TAGGING_META` value."""
    if not stored:
        return []
    try:
        return [(str(k), str(v)) for k, v in json.loads(stored)]
    except (ValueError, TypeError):
        return []


def due_at(rules: Sequence[Rule], name: str, tags: Sequence[tuple[str, str]], size: int,
           created: float) -> float | None:
    """Return the earliest moment an enabled rule expires the current object (None: never)."""
    times = [t for r in rules if r.enabled and r.matches(name, tags, size)
             and (t := r.due_at(created)) is not None]
    return min(times) if times else None


def noncurrent_due_at(rules: Sequence[Rule], name: str, tags: Sequence[tuple[str, str]],
                      size: int, since: float) -> float | None:
    """Return when a version noncurrent since ``since`` is removed (None: never)."""
    times = [after_days(since, r.noncurrent_days) for r in rules
             if r.enabled and r.noncurrent_days is not None and r.matches(name, tags, size)]
    return min(times) if times else None


def removes_markers(rules: Sequence[Rule], name: str) -> bool:
    """Tell whether a rule removes ``name``'s delete marker once it is the only version.

    S3 does with ``ExpiredObjectDeleteMarker`` and with an ``Expiration/Days`` rule.
    """
    return any(r.enabled and (r.marker or r.days is not None) and name.startswith(r.prefix)
               and not r.tags and r.size_gt is None and r.size_lt is None for r in rules)


def abort_due_at(rules: Sequence[Rule], key: str, initiated: float) -> float | None:
    """Return when an upload of ``key`` started at ``initiated`` is aborted (None: never)."""
    times = [after_days(initiated, r.abort_days) for r in rules
             if r.enabled and r.abort_days is not None and key.startswith(r.prefix)]
    return min(times) if times else None
