"""S3 lifecycle expiration rules as stored with a bucket, and when they expire an object.

The S3 API (``PutBucketLifecycleConfiguration``) stores a bucket's rules as
compact JSON in the container sysmeta :data:`SYSMETA`; the object expirer
reads it from the container server and deletes the objects a rule has made
due. Both sides share this module: the record, its stored form and
:func:`due_at`, the moment a rule expires an object (S3's rules: ``Days``
counts from the object's creation and rounds up to the next midnight UTC;
``Date`` is a midnight UTC after which every matching object is expired).
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

    def due_at(self, created: float) -> float:
        """Return when the rule expires an object created at ``created`` (epoch)."""
        if self.date is not None:
            return float(self.date)
        days = self.days or 0
        return math.ceil((created + days * DAY) / DAY) * DAY


def encode(rules: Sequence[Rule]) -> str:
    """Return the stored (sysmeta) form of a rule list."""
    out = []
    for r in rules:
        item: dict[str, object] = {"id": r.id, "on": r.enabled, "style": r.filter_style}
        if r.prefix:
            item["prefix"] = r.prefix
        if r.tags:
            item["tags"] = [list(t) for t in r.tags]
        for key, value in (("gt", r.size_gt), ("lt", r.size_lt), ("days", r.days),
                           ("date", r.date)):
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
                     date=i.get("date"), filter_style=str(i.get("style", "filter")))
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
    """Return the earliest moment an enabled rule expires the object (None: never)."""
    times = [r.due_at(created) for r in rules if r.enabled and r.matches(name, tags, size)]
    return min(times) if times else None
