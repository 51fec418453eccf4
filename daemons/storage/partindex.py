"""The per-partition index of an object device, and the suffix hashes built from it.

Every object record committed on a device also writes one row of the
``parts`` LMDB sub-database, in the same transaction:

    key   = policy (1 byte) + partition (4 bytes, big-endian)
            + suffix (3 ASCII hex digits) + object hash (16 bytes)
    value = the record's timestamp (ASCII) + ``b"t"`` for a tombstone

so the index is always exactly as current as the records (there is nothing
to invalidate, unlike Swift's ``hashes.pkl``). A partition's rows are one
contiguous key range, sorted by suffix then hash: the replicator's suffix
hashes (:func:`suffix_hashes`) and entry lists (:func:`entries`) are cursor
walks over that range. Two devices holding the same objects at the same
timestamps have equal suffix hashes.

PERF: hashing a partition is one LMDB range walk of ~40-byte rows with one
xxh3 update per row; no record is unpacked (``python -m nubis.bench
replication``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import xxhash

#: Length of the ``policy + partition`` key prefix.
PREFIX_LEN = 5
#: A tombstone row's value ends with this byte.
TOMBSTONE = b"t"


def part_prefix(policy: int, part: int) -> bytes:
    """Return the key prefix of a partition's rows."""
    return bytes((policy,)) + part.to_bytes(4, "big")


def index_key(policy: int, part: int, hash_hex: str) -> bytes:
    """Return the ``parts`` key of one object."""
    return part_prefix(policy, part) + hash_hex[-3:].encode("ascii") + bytes.fromhex(hash_hex)


def index_value(ts: str, deleted: bool) -> bytes:
    """Return the ``parts`` value of a record."""
    return ts.encode("ascii") + (TOMBSTONE if deleted else b"")


def split_value(value: bytes) -> tuple[str, bool]:
    """Return ``(timestamp, deleted)`` of a ``parts`` value."""
    if value.endswith(TOMBSTONE):
        return value[:-1].decode("ascii"), True
    return value.decode("ascii"), False


def _walk(txn: Any, db: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    cur = txn.cursor(db=db)
    if not cur.set_range(prefix):
        return
    for key, value in cur:
        if not key.startswith(prefix):
            return
        yield key, value


def suffix_hashes(txn: Any, db: Any, policy: int, part: int) -> dict[str, str]:
    """Return ``{suffix: hex xxh3-64}`` over every row of a partition."""
    out: dict[str, str] = {}
    current = b""
    h = xxhash.xxh3_64()
    for key, value in _walk(txn, db, part_prefix(policy, part)):
        suffix = key[PREFIX_LEN:PREFIX_LEN + 3]
        if suffix != current:
            if current:
                out[current.decode("ascii")] = h.hexdigest()
            current = suffix
            h.reset()
        h.update(key[PREFIX_LEN + 3:])
        h.update(value)
        h.update(b"\n")
    if current:
        out[current.decode("ascii")] = h.hexdigest()
    return out


def entries(txn: Any, db: Any, policy: int, part: int,
            suffixes: set[str] | None = None) -> dict[str, tuple[str, bool]]:
    """Return ``{object hash: (timestamp, deleted)}`` of a partition (some suffixes)."""
    out: dict[str, tuple[str, bool]] = {}
    prefix = part_prefix(policy, part)
    walks = [prefix] if suffixes is None else [prefix + s.encode("ascii")
                                               for s in sorted(suffixes)]
    for start in walks:
        for key, value in _walk(txn, db, start):
            out[key[PREFIX_LEN + 3:].hex()] = split_value(value)
    return out


def partitions(txn: Any, db: Any) -> list[tuple[int, int]]:
    """Return every ``(policy, partition)`` that has rows, in key order."""
    out: list[tuple[int, int]] = []
    cur = txn.cursor(db=db)
    if not cur.first():
        return out
    while True:
        key = cur.key()
        policy, part = key[0], int.from_bytes(key[1:PREFIX_LEN], "big")
        out.append((policy, part))
        nxt = part_prefix(policy, part + 1) if part < 0xFFFFFFFF else bytes((policy + 1,))
        if policy == 0xFF and part == 0xFFFFFFFF:
            break
        if not cur.set_range(nxt):
            break
    return out


__all__ = ["entries", "index_key", "index_value", "part_prefix", "partitions",
           "split_value", "suffix_hashes"]
