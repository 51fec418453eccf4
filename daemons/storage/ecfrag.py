"""Erasure-coded fragment archives on an object server: the durable marker.

A fragment archive is stored like any object body (same files, same LMDB
record, per-chunk xxh3 checksums), keyed by the object's name hash under the
EC policy's index, with its fragment index in the sysmeta
``X-Object-Sysmeta-Ec-Frag-Index`` (Swift keeps it in the file name,
``<ts>#<frag>.data``; nubis keeps one archive per device, so the record is
enough). Swift's durable marker (``#d``) is a record flag here:

* phase 1, a PUT with ``X-Backend-Obj-Multiphase-Commit: yes``, stores the
  archive with :data:`NONDURABLE` in its metadata and queues no container update;
* phase 2, a POST with ``X-Backend-Ec-Commit: <data timestamp>``, drops the flag,
  merges the object's ETag/length sysmeta (known only once the whole body was
  read) and queues the container update -- in one LMDB transaction.

GET/HEAD of a non-durable archive answer ``X-Backend-Ec-Durable: no`` and no
``X-Backend-Durable-Timestamp``, so the proxy never decodes from archives that
no commit reached.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nubis.daemons.storage.diskfile import DiskFile, ObjectRecord, PendingUpdate, object_key

#: Metadata key of a fragment archive that phase 2 has not reached yet.
NONDURABLE = "x-object-sysmeta-ec-nondurable"
#: Object-server header names that must not be stored or echoed as metadata.
INTERNAL = frozenset({NONDURABLE})


def is_durable(rec: ObjectRecord) -> bool:
    """Tell whether a record is durable (every non-EC record is)."""
    return NONDURABLE not in rec.meta


def committed(old: ObjectRecord, ts: str, sysmeta: dict[str, str]) -> ObjectRecord | None:
    """Return ``old`` marked durable with ``sysmeta`` merged, or None if it is not ``ts``."""
    if old.deleted or old.data_timestamp != ts:
        return None
    meta = {k: v for k, v in old.meta.items() if k != NONDURABLE}
    meta.update(sysmeta)
    return replace(old, meta=meta)


async def mark_durable(df: DiskFile, ts: str, sysmeta: dict[str, str],
                       make_updates: Any) -> tuple[ObjectRecord | None, list[bytes],
                                                   list[PendingUpdate]]:
    """Commit phase 2 for the archive whose data timestamp is ``ts``.

    ``make_updates(record)`` returns the container updates to queue with the
    durable record (in the same transaction).

    Returns:
        The durable record (None when no archive of ``ts`` is stored), the keys
        of the queued updates and the updates.
    """
    dev = df.device
    key = object_key(df.policy, df.hash_hex)
    current = df.record()
    if current is None:
        return None, [], []
    preview = committed(current, ts, sysmeta)
    if preview is None:
        return None, [], []
    updates: list[PendingUpdate] = [] if is_durable(current) else make_updates(preview)
    pending = [(dev._pending_key(df.hash_hex), u.pack()) for u in updates]

    def write(txn: Any) -> ObjectRecord | None:
        raw = txn.get(key, db=dev.meta_db)
        if raw is None:
            return None
        new = committed(ObjectRecord.unpack(raw), ts, sysmeta)
        if new is None:
            return None
        txn.put(key, new.pack(), db=dev.meta_db)
        for pkey, pval in pending:
            txn.put(pkey, pval, db=dev.pending_db)
        return new

    rec = await dev.committer.submit(write)
    if rec is None:
        return None, [], []
    return rec, [k for k, _ in pending], updates
