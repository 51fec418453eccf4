"""Container and account database replication: digests, exports and the wire format.

A container (or account) is replicated as one unit, like one of Swift's
database files: its record plus every row of its scope (live rows and row
tombstones). Each side computes a **digest** -- xxh3-64 over the record's
replicated fields and the raw LMDB keys and values of the scope's rows, in key
order (msgpack encodes equal rows as equal bytes) -- and a replicator sends
``(names, digest)`` pairs to the other primaries; those that differ get the
whole scope pushed in chunks (:func:`export_chunks`), and the receiver merges
it by timestamp (last writer wins per row, per metadata key, per record
timestamp), so pushes in both directions converge on equal digests.

Wire format (a nubis extension on the container and account servers, like
the object servers' ``_replicate``; bodies are msgpack):

* ``POST /<dev>/_dbsync``: ``[[names..., digest], ...]`` (names are
  ``[account, container]`` or ``[account]``) -> ``[in_sync: bool, ...]``;
* ``POST /<dev>/_dbmerge``: one chunk ``{"record": [...], "rows": [...],
  "deleted": [...]}`` (the layout is the database module's) -> 204.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import xxhash
from nubis.daemons.storage.listing import unwrap

SYNC_SUFFIX = "/_dbsync"
MERGE_SUFFIX = "/_dbmerge"
#: Largest body of either request.
MAX_BODY = 16 << 20
#: Scopes per ``_dbsync`` request.
SYNC_BATCH = 256
#: Rows (live + deleted) per ``_dbmerge`` chunk.
ROWS_PER_CHUNK = 2000


def packb(value: Any) -> bytes:
    """Encode with msgpack (binary-safe)."""
    return bytes(msgpack.packb(value, use_bin_type=True))


def scope_rows(txn: Any, db: Any, scope: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield the raw ``(key, value)`` pairs of one scope's rows in key order."""
    cur = txn.cursor(db=db)
    ok = cur.set_range(scope)
    while ok:
        key = bytes(cur.key())
        if not key.startswith(scope):
            return
        yield key, bytes(cur.value())
        ok = cur.next()


def named_rows(txn: Any, db: Any, scope: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(full name, value)`` of one scope's rows (long names unwrapped)."""
    for key, raw in scope_rows(txn, db, scope):
        yield unwrap(key, raw, len(scope))


def digest(record_fields: list[Any], streams: list[Iterator[tuple[bytes, bytes]]]) -> str:
    """Return the hex digest of a record's replicated fields and its row streams."""
    h = xxhash.xxh3_64(packb(record_fields))
    for n, stream in enumerate(streams):
        h.update(b"\xff%d" % n)
        for key, value in stream:
            h.update(len(key).to_bytes(2, "big"))
            h.update(key)
            h.update(len(value).to_bytes(4, "big"))
            h.update(value)
    return h.hexdigest()


def delete_scope(txn: Any, db: Any, scope: bytes) -> int:
    """Delete every row of a scope; return how many."""
    keys = [k for k, _ in scope_rows(txn, db, scope)]
    for key in keys:
        txn.delete(key, db=db)
    return len(keys)


def sorted_meta(meta: dict[str, list[str]]) -> list[list[Any]]:
    """Return metadata in a stable order (for digests)."""
    return [[k, *meta[k]] for k in sorted(meta)]


def export_chunks(record: list[Any], rows: list[list[Any]],
                  deleted: list[list[Any]]) -> Iterator[dict[str, Any]]:
    """Split one scope's export into ``_dbmerge`` chunks (the record in each)."""
    total = len(rows) + len(deleted)
    if total == 0:
        yield {"record": record, "rows": [], "deleted": []}
        return
    for start in range(0, total, ROWS_PER_CHUNK):
        end = start + ROWS_PER_CHUNK
        yield {"record": record, "rows": rows[start:end],
               "deleted": deleted[max(start - len(rows), 0):max(end - len(rows), 0)]}


def parse_sync_items(raw: Any, names: int) -> list[tuple[list[str], str]] | None:
    """Validate a ``_dbsync`` body: ``names`` strings then a digest per item."""
    if not isinstance(raw, list):
        return None
    out = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == names + 1
                and all(isinstance(x, str) for x in item)):
            return None
        out.append((item[:names], item[names]))
    return out
