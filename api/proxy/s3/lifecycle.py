"""Bucket lifecycle expiration: Put/Get/DeleteBucketLifecycleConfiguration.

The rules (``Expiration`` with ``Days``, ``Date`` or ``ExpiredObjectDeleteMarker``,
``NoncurrentVersionExpiration``, ``AbortIncompleteMultipartUpload``; filtered
by prefix, tags and size; ``Status`` Enabled or Disabled) are parsed and
checked here with S3's errors, then stored as container sysmeta in the form
of :mod:`nubis.api.shared.s3lifecycle`; the object expirer applies them (see
:mod:`nubis.daemons.storage.lifecycle` and :mod:`nubis.api.proxy.s3.lifecycle_apply`).
Storage-class transitions (nubis has one class) are refused with S3's
``NotImplemented`` rather than stored and ignored.
"""

from __future__ import annotations

import calendar
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime

from nubis.api.proxy.context import Resp
from nubis.api.proxy.s3 import bucketconf
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req
from nubis.api.proxy.s3.xmlio import doc, el, iso, parse, text
from nubis.api.shared.s3lifecycle import DAY, SYSMETA, Rule, decode, encode

MAX_RULES = 1000
MAX_ID = 255
#: Storage-class transitions: nubis has one storage class, so they are refused (501).
_UNSUPPORTED = ("Transition", "NoncurrentVersionTransition")
_FILTER_KEYS = ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan")


def _int(node: ET.Element, name: str) -> int | None:
    value = text(node, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise S3Error("MalformedXML") from None


def _tag(node: ET.Element) -> tuple[str, str]:
    key, value = text(node, "Key"), text(node, "Value")
    if key is None or value is None:
        raise S3Error("MalformedXML")
    return key, value


def _filter(rule: ET.Element) -> dict[str, object]:
    """Return the filter fields of a rule (``Filter`` or the legacy ``Prefix``)."""
    filt, legacy = rule.find("Filter"), text(rule, "Prefix")
    if (filt is None) == (legacy is None):
        raise S3Error("MalformedXML")
    if filt is None:
        return {"prefix": legacy or "", "filter_style": "legacy"}
    given = [c.tag for c in filt if c.tag in _FILTER_KEYS]
    if len(given) > 1 or len(given) != len(list(filt)):
        raise S3Error("MalformedXML")
    if not given:
        return {"filter_style": "empty"}
    node = filt.find("And") if given[0] == "And" else filt
    assert node is not None
    tags = tuple(_tag(t) for t in node.findall("Tag"))
    if len({k for k, _ in tags}) != len(tags):
        raise S3Error("InvalidRequest", "Duplicate Tag Keys are not allowed.")
    out: dict[str, object] = {
        "prefix": text(node, "Prefix") or "", "tags": tags,
        "size_gt": _int(node, "ObjectSizeGreaterThan"),
        "size_lt": _int(node, "ObjectSizeLessThan"),
        "filter_style": {"And": "and", "Prefix": "prefix", "Tag": "tag",
                         "ObjectSizeGreaterThan": "gt",
                         "ObjectSizeLessThan": "lt"}[given[0]]}
    gt, lt = out["size_gt"], out["size_lt"]
    if isinstance(gt, int) and isinstance(lt, int) and gt >= lt:
        raise S3Error("InvalidArgument", "ObjectSizeGreaterThan must be less than "
                      "ObjectSizeLessThan")
    return out


def _date(value: str) -> int:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise S3Error("MalformedXML") from None
    epoch = calendar.timegm(when.utctimetuple())
    if when.tzinfo is None or epoch % DAY or when.microsecond:
        raise S3Error("InvalidArgument", "'Date' must be at midnight GMT")
    return epoch


def _days(node: ET.Element, name: str, what: str) -> int:
    value = _int(node, name)
    if value is None:
        raise S3Error("MalformedXML")
    if value <= 0:
        raise S3Error("InvalidArgument", f"'{name}' for {what} action must be a positive "
                      "integer")
    return value


def _expiration(exp: ET.Element) -> dict[str, object]:
    """Return the fields of an ``Expiration`` (Days, Date or ExpiredObjectDeleteMarker)."""
    days, date = _int(exp, "Days"), text(exp, "Date")
    marker = text(exp, "ExpiredObjectDeleteMarker")
    given = sum(x is not None for x in (days, date, marker))
    if given != 1:
        raise S3Error("MalformedXML")
    if marker is not None:
        if marker.strip().lower() not in ("true", "false"):
            raise S3Error("MalformedXML")
        return {"marker": marker.strip().lower() == "true"}
    if days is not None and days <= 0:
        raise S3Error("InvalidArgument", "'Days' for Expiration action must be a positive "
                      "integer")
    return {"days": days, "date": _date(date) if date is not None else None}


def _actions(rule: ET.Element, tagged: bool) -> dict[str, object]:
    """Return a rule's action fields (InvalidRequest: none; NotImplemented: transitions)."""
    for name in _UNSUPPORTED:
        if rule.find(name) is not None:
            raise S3Error("NotImplemented", f"Lifecycle action {name} is not implemented "
                          "(nubis has one storage class)", 501)
    out: dict[str, object] = {}
    exp = rule.find("Expiration")
    if exp is not None:
        out.update(_expiration(exp))
    nve = rule.find("NoncurrentVersionExpiration")
    if nve is not None:
        if nve.find("NewerNoncurrentVersions") is not None:
            raise S3Error("NotImplemented", "NewerNoncurrentVersions is not implemented", 501)
        out["noncurrent_days"] = _days(nve, "NoncurrentDays", "NoncurrentVersionExpiration")
    abort = rule.find("AbortIncompleteMultipartUpload")
    if abort is not None:
        if tagged:
            raise S3Error("InvalidRequest", "Tag-based filter cannot be used with "
                          "AbortIncompleteMultipartUpload action")
        out["abort_days"] = _days(abort, "DaysAfterInitiation",
                                  "AbortIncompleteMultipartUpload")
    if not out:
        raise S3Error("InvalidRequest", "At least one action needs to be specified in a rule")
    return out


def parse_rules(body: bytes) -> list[Rule]:
    """Parse a ``LifecycleConfiguration`` document with S3's checks."""
    root = parse(body)
    if root.tag != "LifecycleConfiguration":
        raise S3Error("MalformedXML")
    nodes = root.findall("Rule")
    if not nodes or len(nodes) > MAX_RULES or len(nodes) != len(list(root)):
        raise S3Error("MalformedXML")
    rules: list[Rule] = []
    for node in nodes:
        rid = text(node, "ID") or secrets.token_urlsafe(24)
        if len(rid) > MAX_ID:
            raise S3Error("InvalidArgument", "ID length should not exceed allowed limit of 255")
        status = text(node, "Status")
        if status not in ("Enabled", "Disabled"):
            raise S3Error("MalformedXML")
        filt = _filter(node)
        fields = {**filt, **_actions(node, bool(filt.get("tags")))}
        rules.append(Rule(id=rid, enabled=status == "Enabled", **fields))  # type: ignore[arg-type]
    if len({r.id for r in rules}) != len(rules):
        raise S3Error("InvalidArgument", "Rule ID must be unique. Found same ID for more "
                      "than one rule")
    return rules


def _filter_xml(r: Rule) -> str:
    tags = "".join(f"<Tag>{el('Key', k)}{el('Value', v)}</Tag>" for k, v in r.tags)
    sizes = (el("ObjectSizeGreaterThan", r.size_gt) if r.size_gt is not None else "") + \
        (el("ObjectSizeLessThan", r.size_lt) if r.size_lt is not None else "")
    style = r.filter_style
    if style == "legacy":
        return el("Prefix", r.prefix)
    if style == "empty":
        return "<Filter></Filter>"
    if style == "and":
        prefix = el("Prefix", r.prefix) if r.prefix else ""
        return f"<Filter><And>{prefix}{tags}{sizes}</And></Filter>"
    inner = el("Prefix", r.prefix) if style == "prefix" else (tags if style == "tag"
                                                               else sizes)
    return f"<Filter>{inner}</Filter>"


def _actions_xml(r: Rule) -> str:
    out = ""
    if r.days is not None:
        out += f"<Expiration>{el('Days', r.days)}</Expiration>"
    elif r.date is not None:
        out += f"<Expiration>{el('Date', iso(r.date))}</Expiration>"
    elif r.marker:
        out += f"<Expiration>{el('ExpiredObjectDeleteMarker', 'true')}</Expiration>"
    if r.noncurrent_days is not None:
        out += ("<NoncurrentVersionExpiration>"
                f"{el('NoncurrentDays', r.noncurrent_days)}</NoncurrentVersionExpiration>")
    if r.abort_days is not None:
        out += ("<AbortIncompleteMultipartUpload>"
                f"{el('DaysAfterInitiation', r.abort_days)}</AbortIncompleteMultipartUpload>")
    return out


def rules_xml(rules: list[Rule]) -> bytes:
    """Return the ``LifecycleConfiguration`` document of stored rules."""
    parts = []
    for r in rules:
        parts.append(f"<Rule>{_actions_xml(r)}{el('ID', r.id)}"
                     f"{_filter_xml(r)}{el('Status', 'Enabled' if r.enabled else 'Disabled')}"
                     "</Rule>")
    return doc("LifecycleConfiguration", parts)


async def handle(req: S3Req) -> Resp:
    """Answer Get/Put/DeleteBucketLifecycleConfiguration."""
    return await bucketconf.handle(req, SYSMETA, parse_rules, encode, decode, rules_xml,
                                   ("NoSuchLifecycleConfiguration",
                                    "The lifecycle configuration does not exist"))
