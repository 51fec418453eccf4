"""Listings as LMDB cursor walks: prefix, delimiter, marker, end_marker, limit, reverse.

Rows of one container (or account) are keys ``scope + name`` (``scope`` is a
fixed-length id, ``name`` UTF-8), so a listing is a range scan that touches
only the rows it returns: the first page of a 10-million-row container costs
what a 10-row one does. A delimiter collapses a run of names into one
``subdir`` entry by seeking past it (``subdir`` with its last byte + 1)
instead of stepping over every name inside it.

Semantics follow Swift's container/account brokers: names compare as UTF-8
bytes; ``marker`` / ``end_marker`` are exclusive; with ``reverse`` the walk
goes downwards and ``marker`` is the upper, ``end_marker`` the lower bound;
a ``subdir`` equal to ``marker`` is not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ListingParams:
    """What a listing request asks for (names as UTF-8 bytes)."""

    prefix: bytes = b""
    delimiter: bytes = b""
    marker: bytes = b""
    end_marker: bytes = b""
    limit: int = 10000
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """One listing entry: a row (``value`` set) or a ``subdir`` (``value`` None)."""

    name: bytes
    value: bytes | None


def increment(key: bytes) -> bytes:
    """Return the smallest key greater than every key starting with ``key``.

    Returns ``b""`` when no such key exists (``key`` is all 0xff or empty).
    """
    stripped = key.rstrip(b"\xff")
    if not stripped:
        return b""
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def walk(cursor: Any, scope: bytes, params: ListingParams) -> list[Entry]:
    """Return up to ``params.limit`` entries of ``scope`` (an lmdb cursor walk)."""
    if params.limit <= 0:
        return []
    if params.reverse:
        return _walk_down(cursor, scope, params)
    return _walk_up(cursor, scope, params)


def _walk_up(cursor: Any, scope: bytes, p: ListingParams) -> list[Entry]:
    out: list[Entry] = []
    n = len(scope)
    lo = scope + p.prefix
    skip_exact = b""
    if p.marker and p.marker >= p.prefix:
        lo = scope + p.marker
        skip_exact = lo
    if not cursor.set_range(lo):
        return out
    full_prefix = scope + p.prefix
    plen = len(p.prefix)
    delim = p.delimiter
    end = p.end_marker
    while True:
        key = cursor.key()
        if not key.startswith(full_prefix):
            break
        if key == skip_exact:
            if not cursor.next():
                break
            continue
        name = key[n:]
        if end and name >= end:
            break
        if delim:
            i = name.find(delim, plen)
            if i >= 0:
                sub = name[:i + len(delim)]
                if sub != p.marker:
                    out.append(Entry(sub, None))
                    if len(out) >= p.limit:
                        break
                nxt = increment(scope + sub)
                if not nxt or not cursor.set_range(nxt):
                    break
                continue
        out.append(Entry(name, cursor.value()))
        if len(out) >= p.limit or not cursor.next():
            break
    return out


def _walk_down(cursor: Any, scope: bytes, p: ListingParams) -> list[Entry]:
    out: list[Entry] = []
    n = len(scope)
    full_prefix = scope + p.prefix
    upper = increment(full_prefix)
    if p.marker and (scope + p.marker) < (upper or b"\xff" * (n + 1)):
        upper = scope + p.marker
    if not _seek_below(cursor, upper):
        return out
    plen = len(p.prefix)
    delim = p.delimiter
    end = p.end_marker
    while True:
        key = cursor.key()
        if not key.startswith(full_prefix):
            break
        name = key[n:]
        if end and name <= end:
            break
        if delim:
            i = name.find(delim, plen)
            if i >= 0:
                sub = name[:i + len(delim)]
                if sub != p.marker:
                    out.append(Entry(sub, None))
                    if len(out) >= p.limit:
                        break
                if not _seek_below(cursor, scope + sub):
                    break
                continue
        out.append(Entry(name, cursor.value()))
        if len(out) >= p.limit or not cursor.prev():
            break
    return out


def _seek_below(cursor: Any, key: bytes) -> bool:
    """Position ``cursor`` on the last key < ``key`` (``b""`` = after everything)."""
    if not key:
        return bool(cursor.last())
    if cursor.set_range(key):
        return bool(cursor.prev())
    return bool(cursor.last())


def reference(names: list[bytes], p: ListingParams) -> list[tuple[bytes, bool]]:
    """Brute-force listing over sorted ``names`` (for tests): ``(name, is_subdir)``."""
    out: list[tuple[bytes, bool]] = []
    seen: set[bytes] = set()
    ordered = sorted(set(names), reverse=p.reverse)
    for name in ordered:
        if not name.startswith(p.prefix):
            continue
        if p.reverse:
            if p.marker and name >= p.marker:
                continue
            if p.end_marker and name <= p.end_marker:
                continue
        else:
            if p.marker and name <= p.marker:
                continue
            if p.end_marker and name >= p.end_marker:
                continue
        if p.delimiter:
            i = name.find(p.delimiter, len(p.prefix))
            if i >= 0:
                sub = name[:i + len(p.delimiter)]
                if sub in seen or sub == p.marker:
                    continue
                seen.add(sub)
                out.append((sub, True))
                if len(out) >= p.limit:
                    break
                continue
        out.append((name, False))
        if len(out) >= p.limit:
            break
    return out
