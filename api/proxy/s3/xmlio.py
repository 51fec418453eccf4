"""Small XML helpers for S3 documents: building answers and parsing request bodies."""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from nubis.api.proxy.s3.errors import XML_ENTITIES, S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: Largest XML request body accepted (DeleteObjects of 1000 keys fits).
MAX_XML = 2 * 1024 * 1024


def el(name: str, value: object) -> str:
    """Return ``<name>value</name>`` (value escaped, carriage returns as ``&#13;``)."""
    return f"<{name}>{escape(str(value), XML_ENTITIES)}</{name}>"


def key_encoder(query: Mapping[str, str]) -> Callable[[str], str]:
    """Return how a listing writes keys and prefixes (``encoding-type=url``: quoted).

    Raises:
        S3Error: InvalidArgument for an encoding-type other than ``url``.
    """
    encode = query.get("encoding-type")
    if encode is None:
        return _as_is
    if encode != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request",
                      extra={"ArgumentName": "encoding-type", "ArgumentValue": encode})
    return _url_quoted


def _as_is(value: str) -> str:
    return value


def _url_quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="/")


def doc(root: str, parts: Iterable[str]) -> bytes:
    """Return a whole S3 XML document with the S3 namespace."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">'
            + "".join(parts) + f"</{root}>").encode("utf-8")


def iso(epoch: float) -> str:
    """Return an S3 timestamp (``2006-02-03T16:45:09.000Z``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


#: A document type declaration with its internal subset (dropped by :func:`parse_untrusted`).
_DOCTYPE = re.compile(rb"<!DOCTYPE\s[^\[>]*(?:\[.*?\]\s*)?>", re.S)
#: A reference to an entity other than XML's five and character references.
_ENTITY_REF = re.compile(rb"&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)[^;\s<&]*;")


def parse(data: bytes, code: str = "MalformedXML") -> ET.Element:
    """Parse a request body as XML, namespaces dropped (``code`` when not XML or a DTD)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise S3Error(code)
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise S3Error(code) from None
    for node in root.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return root


def parse_untrusted(data: bytes, code: str = "MalformedXML") -> ET.Element:
    """Parse XML that may carry a DOCTYPE: drop it and every entity reference unexpanded.

    What Swift's s3api's lxml parser (``resolve_entities=False``) reads from such
    a document, without ever loading a file or expanding an entity.
    """
    cleaned = _ENTITY_REF.sub(b"", _DOCTYPE.sub(b"", data, count=1))
    return parse(cleaned, code)


def text(node: ET.Element, name: str) -> str | None:
    """Return the text of child ``name`` (None if absent)."""
    child = node.find(name)
    if child is None:
        return None
    return child.text or ""
