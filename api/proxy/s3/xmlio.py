"""Small XML helpers for S3 documents: building answers and parsing request bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from nubis.api.proxy.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: Largest XML request body accepted (DeleteObjects of 1000 keys fits).
MAX_XML = 2 * 1024 * 1024


def el(name: str, value: object) -> str:
    """Return ``<name>value</name>`` (value escaped)."""
    return f"<{name}>{escape(str(value))}</{name}>"


def doc(root: str, parts: Iterable[str]) -> bytes:
    """Return a whole S3 XML document with the S3 namespace."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">'
            + "".join(parts) + f"</{root}>").encode("utf-8")


def iso(epoch: float) -> str:
    """Return an S3 timestamp (``2006-02-03T16:45:09.000Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse(data: bytes) -> ET.Element:
    """Parse a request body as XML, namespaces dropped (MalformedXML when not XML)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise S3Error("MalformedXML")
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise S3Error("MalformedXML") from None
    for node in root.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return root


def text(node: ET.Element, name: str) -> str | None:
    """Return the text of child ``name`` (None if absent)."""
    child = node.find(name)
    if child is None:
        return None
    return child.text or ""
