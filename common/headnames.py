"""Carry header names llhttp refuses (``x-amz-meta-(``) through its strict parser.

Swift (eventlet) accepts any header name without ``:`` or white space and
stores ``X-Object-Meta-(`` like any other metadata; llhttp only takes RFC 9110
tokens. Before a head is parsed, each header name holding another byte is
rewritten as :data:`PREFIX` + its hex (:func:`escape_head`); after parsing,
:func:`unescape_name` gives the name back. Every nubis hop does this on the
receiving side (servers for requests, the backend client for responses), so
senders write names as they are and the application only ever sees real names.

PERF: one ``find`` and one regex search over a head that arrives whole in one
read (``python -m nubis.bench swift``); a head split over reads is parsed as
sent (its odd names still get llhttp's 400, as before).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: What an escaped name starts with (lower case: the parsers lower-case names).
PREFIX = b"x-nubis-hn-"
#: A header line whose name holds a printable ASCII byte that is not a token
#: character (``"(),/;<=>?@[\\]{}``; ``:`` ends the name, white space and other
#: bytes keep llhttp's 400: a folded line, ``name :``, ``X-Meta-\\xff``).
#: PERF: possessive (``*+``): a line is scanned once, no backtracking (3.0 -> 0.9 µs
#: a head, ``python -m nubis.bench swift``).
_ODD_NAME = re.compile(rb"\n[!#$%&'*+\-.^_`|~0-9A-Za-z]*+[\"(),/;<=>?@\[\\\]{}]")
_LINE_NAME = re.compile(rb"\n([^:\r\n \t]+):")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PRINTABLE = re.compile(rb"[\x21-\x7e]+")
#: Longest name that is escaped (its hex is twice as long).
MAX_NAME = 256


def _escaped(name: bytes) -> bytes:
    return PREFIX + name.hex().encode("ascii")


def _escape_line(match: re.Match[bytes]) -> bytes:
    name = match.group(1)
    if _TOKEN.fullmatch(name) or len(name) > MAX_NAME or not _PRINTABLE.fullmatch(name):
        return match.group(0)
    return b"\n" + _escaped(name) + b":"


def escape_head(data: bytes, start: int = 0) -> tuple[bytes, bool]:
    """Escape odd header names of the head that begins at ``start`` of ``data``.

    Only a head that ends (blank line) within ``data`` is looked at; bytes after
    it (a body) are never touched. Return the data and whether a name changed.
    """
    end = data.find(b"\r\n\r\n", start)
    if end < 0 or _ODD_NAME.search(data, start, end + 2) is None:
        return data, False
    head = _LINE_NAME.sub(_escape_line, data[start:end + 2])
    return data[:start] + head + data[end + 2:], True


def escape_response_names(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Return ASGI response headers with odd metadata names escaped.

    uvicorn refuses to send such names; the front end's view of the transport
    gives them back in the written head. Only metadata names (``...meta-...``)
    are user-chosen, so only those are looked at. PERF: a substring test per
    name (``python -m nubis.bench swift``).
    """
    if not any(b"meta-" in n and _TOKEN.fullmatch(n) is None for n, _ in headers):
        return headers
    return [(n if _TOKEN.fullmatch(n) or len(n) > MAX_NAME
             else _escaped(n), v) for n, v in headers]


def unescape_name(name: bytes) -> bytes:
    """Return the name an escaped one stands for (any other name as it is)."""
    if name[:len(PREFIX)].lower() != PREFIX:
        return name
    try:
        return bytes.fromhex(name[len(PREFIX):].decode("ascii"))
    except ValueError:
        return name


def unescape_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Return header pairs with escaped names given back (lower-cased, as parsed)."""
    return [(unescape_name(n).lower(), v) for n, v in pairs]
