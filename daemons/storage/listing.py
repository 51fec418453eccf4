"""Listings as LMDB cursor walks: prefix, delimiter, marker, end_marker, limit, reverse.

Rows of one container (or account) are keys ``scope + name`` (``scope`` is a
fixed-length id, ``name`` UTF-8), so a listing is a range scan that touches
only the rows it returns: the first page of a 10-million-row container costs
what a 10-row one does. A delimiter collapses a run of names into one
``subdir`` entry by seeking past it (``subdir`` with its last byte + 1)
instead of stepping over every name inside it.

Long names: LMDB keys hold at most 511 bytes, Swift object names 1,024. A
name of up to :data:`SHORT_MAX` bytes is its own key suffix; a longer one is
keyed ``scope + name[:SHORT_MAX] + xxh64(name)`` (:func:`row_key`) and its value
carries the rest of the name (:func:`wrap_value`). Such keys sort exactly where
their names do relative to every name with another first ``SHORT_MAX`` bytes, so
only names sharing those bytes (a "bucket", contiguous in the tree) need
reordering: :class:`NameCursor` reads a bucket whole, sorts it by full name and
steps through it, so listings stay in exact byte order.

Semantics follow Swift's container/account brokers: names compare as UTF-8
bytes; ``marker`` / ``end_marker`` are exclusive; with ``reverse`` the walk
goes downwards and ``marker`` is the upper, ``end_marker`` the lower bound;
a ``subdir`` equal to ``marker`` is not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import xxhash

#: Scope ids (container/account ids) are this long.
SCOPE_LEN = 16
#: Names up to this many bytes are stored as the key suffix itself.
SHORT_MAX = 480
#: Length of every long-name key: scope + 480 name bytes + 8 hash bytes (<= 511).
LONG_KEY_LEN = SCOPE_LEN + SHORT_MAX + 8


def row_key(scope: bytes, name: bytes) -> bytes:
    """Return the LMDB key of ``name`` in ``scope`` (hashed tail for long names)."""
    if len(name) <= SHORT_MAX:
        return scope + name
    return scope + name[:SHORT_MAX] + xxhash.xxh64_digest(name)


def wrap_value(name: bytes, value: bytes) -> bytes:
    """Return the stored value of a row: long names carry their tail in front."""
    if len(name) <= SHORT_MAX:
        return value
    tail = name[SHORT_MAX:]
    return len(tail).to_bytes(2, "big") + tail + value


def unwrap(key: bytes, raw: bytes, scope_len: int = SCOPE_LEN) -> tuple[bytes, bytes]:
    """Return ``(name, value)`` of a stored row."""
    if len(key) != scope_len + SHORT_MAX + 8:
        return key[scope_len:], raw
    n = int.from_bytes(raw[:2], "big")
    return key[scope_len:scope_len + SHORT_MAX] + raw[2:2 + n], raw[2 + n:]


def get_row(txn: Any, db: Any, scope: bytes, name: bytes) -> bytes | None:
    """Return the (unwrapped) value of ``name``'s row, or None.

    Raises:
        KeyError: a different long name has the same key (an xxh64 collision).
    """
    key = row_key(scope, name)
    raw = txn.get(key, db=db)
    if raw is None or len(name) <= SHORT_MAX:
        return raw  # type: ignore[no-any-return]
    stored, value = unwrap(key, raw, len(scope))
    if stored != name:
        raise KeyError("long object name hash collision")
    return value


class NameCursor:
    """A cursor over the rows of one scope, in exact byte order of the full names."""

    def __init__(self, cursor: Any, scope: bytes) -> None:
        self.raw = cursor
        self.scope = scope
        self.n = len(scope)
        self.long_len = self.n + SHORT_MAX + 8
        self.bucket: list[tuple[bytes, bytes]] = []
        self.idx = 0
        self.valid = False

    @property
    def name(self) -> bytes:
        """Return the full name at the cursor."""
        return self.bucket[self.idx][0]

    def value(self) -> bytes:
        """Return the row value at the cursor (the name tail removed)."""
        return self.bucket[self.idx][1]

    def _land(self, ok: bool, down: bool) -> bool:
        """Read the row (or whole bucket) under the raw cursor."""
        key = self.raw.key() if ok else b""
        if not ok or not key.startswith(self.scope):
            self.valid = False
            return False
        if len(key) != self.long_len:
            self.bucket, self.idx = [(key[self.n:], self.raw.value())], 0
        else:
            self.bucket = self._read_bucket(key[:self.n + SHORT_MAX])
            self.idx = len(self.bucket) - 1 if down else 0
        self.valid = True
        return True

    def _read_bucket(self, head: bytes) -> list[tuple[bytes, bytes]]:
        """Return every long row whose key starts with ``head``, sorted by full name."""
        out: list[tuple[bytes, bytes]] = []
        ok = self.raw.set_range(head)
        while ok:
            key = self.raw.key()
            if not key.startswith(head):
                break
            if len(key) == self.long_len:
                out.append(unwrap(key, self.raw.value(), self.n))
            ok = self.raw.next()
        out.sort()
        return out

    def _after_bucket(self) -> bytes:
        return increment(self.scope + self.name[:SHORT_MAX])

    def next(self) -> bool:
        """Step to the next name."""
        if self.idx + 1 < len(self.bucket):
            self.idx += 1
            return True
        if len(self.name) > SHORT_MAX:  # leave a bucket: seek past every key it has
            nxt = self._after_bucket()
            return self._land(bool(nxt) and self.raw.set_range(nxt), down=False)
        return self._land(self.raw.next(), down=False)

    def prev(self) -> bool:
        """Step to the previous name."""
        if self.idx > 0:
            self.idx -= 1
            return True
        if len(self.name) > SHORT_MAX:  # before a bucket only its short head may sit
            head = self.scope + self.name[:SHORT_MAX]
            self.raw.set_range(head)
            if self.raw.key() == head:
                return self._land(True, down=True)
        return self._land(self.raw.prev(), down=True)

    def seek(self, name: bytes) -> bool:
        """Position on the first name >= ``name``."""
        ok = self._land(self.raw.set_range(self.scope + name[:SHORT_MAX]), down=False)
        while ok and self.name < name:
            ok = self.next()
        return ok

    def seek_below(self, name: bytes | None) -> bool:
        """Position on the last name < ``name`` (``None``: the last name of the scope)."""
        if name is not None and self.seek(name):
            return self.prev()
        nxt = increment(self.scope)
        if nxt and self.raw.set_range(nxt):
            return self._land(self.raw.prev(), down=True)
        return self._land(self.raw.last(), down=True)


@dataclass(frozen=True, slots=True)
class ListingParams:
    """What a listing request asks for (names as UTF-8 bytes)."""

    prefix: bytes = b""
    delimiter: bytes = b""
    marker: bytes = b""
    end_marker: bytes = b""
    limit: int = 10000
    reverse: bool = False
    #: Swift's ``path`` mode: names deeper than one level below ``prefix`` are left
    #: out (not rolled up), names ending in the delimiter right there are rows.
    path: bool = False


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
        return _walk_down(NameCursor(cursor, scope), params)
    return _walk_up(NameCursor(cursor, scope), params)


def _walk_up(cur: NameCursor, p: ListingParams) -> list[Entry]:
    out: list[Entry] = []
    lo, skip_exact = p.prefix, None
    if p.marker and p.marker >= p.prefix:
        lo = skip_exact = p.marker
    ok = cur.seek(lo)
    plen = len(p.prefix)
    delim = p.delimiter
    end = p.end_marker
    while ok:
        name = cur.name
        if not name.startswith(p.prefix):
            break
        if name == skip_exact:
            ok = cur.next()
            continue
        if end and name >= end:
            break
        if p.path and name == p.prefix:
            ok = cur.next()
            continue
        if delim:
            i = name.find(delim, plen)
            if i >= 0 and not (p.path and i + len(delim) == len(name)):
                sub = name[:i + len(delim)]
                if p.path:
                    nxt = increment(sub)
                    ok = bool(nxt) and cur.seek(nxt)
                    continue
                if sub != p.marker:
                    out.append(Entry(sub, None))
                    if len(out) >= p.limit:
                        break
                nxt = increment(sub)
                ok = bool(nxt) and cur.seek(nxt)
                continue
        out.append(Entry(name, cur.value()))
        if len(out) >= p.limit:
            break
        ok = cur.next()
    return out


def _walk_down(cur: NameCursor, p: ListingParams) -> list[Entry]:
    out: list[Entry] = []
    upper: bytes | None = increment(p.prefix) or None
    if p.marker and (upper is None or p.marker < upper):
        upper = p.marker
    ok = cur.seek_below(upper)
    plen = len(p.prefix)
    delim = p.delimiter
    end = p.end_marker
    while ok:
        name = cur.name
        if not name.startswith(p.prefix):
            break
        if end and name <= end:
            break
        if p.path and name == p.prefix:
            ok = cur.prev()
            continue
        if delim:
            i = name.find(delim, plen)
            if i >= 0 and not (p.path and i + len(delim) == len(name)):
                sub = name[:i + len(delim)]
                if p.path:  # on to the directory marker ``sub`` itself, if any
                    ok = cur.seek_below(sub + b"\x00")
                    continue
                if sub != p.marker:
                    out.append(Entry(sub, None))
                    if len(out) >= p.limit:
                        break
                ok = cur.seek_below(sub)
                continue
        out.append(Entry(name, cur.value()))
        if len(out) >= p.limit:
            break
        ok = cur.prev()
    return out


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
        if p.path and name == p.prefix:
            continue
        if p.delimiter:
            i = name.find(p.delimiter, len(p.prefix))
            if p.path and i >= 0:
                if i + len(p.delimiter) != len(name):
                    continue
                i = -1
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
