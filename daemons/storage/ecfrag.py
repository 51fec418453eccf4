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

from nubis.common import backend as hdr
from nubis.common.httpserver import Request, Response, plain
from nubis.daemons.storage.diskfile import (
    DiskFile,
    ObjectDevice,
    ObjectRecord,
    PendingUpdate,
    object_key,
)
from nubis.daemons.storage.protocol import ProtocolError
from nubis.daemons.storage.replication import RECORD_HEADER, pack_record

#: Metadata key of a fragment archive that phase 2 has not reached yet.
NONDURABLE = "x-object-sysmeta-ec-nondurable"
#: Object-server header names that must not be stored or echoed as metadata.
INTERNAL = frozenset({NONDURABLE})


def is_durable(rec: ObjectRecord) -> bool:
    """Tell whether a record is durable (every non-EC record is)."""
    return NONDURABLE not in rec.meta


def committed(old: ObjectRecord, ts: str, sysmeta: dict[str, str],
              content_type: str | None = None) -> ObjectRecord | None:
    """Return ``old`` marked durable with ``sysmeta`` merged, or None if it is not ``ts``.

    ``content_type`` replaces the archive's (known only after its body, like the sysmeta).
    """
    if old.deleted or old.data_timestamp != ts:
        return None
    meta = {k: v for k, v in old.meta.items() if k != NONDURABLE}
    meta.update(sysmeta)
    return replace(old, meta=meta, content_type=content_type or old.content_type)


async def mark_durable(df: DiskFile, ts: str, sysmeta: dict[str, str],
                       content_type: str | None,
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
    preview = committed(current, ts, sysmeta, content_type)
    if preview is None:
        return None, [], []
    updates: list[PendingUpdate] = [] if is_durable(current) else make_updates(preview)
    pending = [(dev._pending_key(df.hash_hex), u.pack()) for u in updates]

    def write(txn: Any) -> ObjectRecord | None:
        raw = txn.get(key, db=dev.meta_db)
        if raw is None:
            return None
        new = committed(ObjectRecord.unpack(raw), ts, sysmeta, content_type)
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


#: The path segment after the device of a fragment-archive fetch (reconstructor).
FETCH_SEGMENT = "_ecfrag"


def is_fetch_path(path: str) -> bool:
    """Tell whether a request path is ``/<dev>/_ecfrag/<policy>/<part>/<hash>``."""
    parts = path.split("/", 3)
    return len(parts) > 2 and parts[2] == FETCH_SEGMENT


def parse_fetch_path(path: str) -> tuple[str, int, int, str]:
    """Split a fetch path into (device, policy, partition, hash).

    Raises:
        ProtocolError: 400 for anything else.
    """
    parts = path.split("/")
    if len(parts) != 6 or parts[2] != FETCH_SEGMENT:
        raise ProtocolError(400, "Invalid path")
    dev, policy, part, obj = parts[1], parts[3], parts[4], parts[5]
    if not (policy.isascii() and policy.isdigit() and int(policy) < 256 and part.isascii()
            and part.isdigit() and int(part) < 1 << 32 and len(obj) == 32
            and not obj.strip("0123456789abcdef")):
        raise ProtocolError(400, "Invalid policy, partition or hash")
    return dev, int(policy), int(part), obj


async def serve_archive(req: Request, device: ObjectDevice | None) -> Response:
    """Answer ``POST /<dev>/_ecfrag/<policy>/<part>/<hash>``: a stored archive by hash.

    The reply carries the record (``X-Backend-Replication-Record``, see
    :mod:`~nubis.daemons.storage.replication`) and the archive's bytes, verified
    chunk by chunk as they are read; 404 when nothing live is stored.
    """
    _, policy, part, obj = parse_fetch_path(req.path)
    if device is None:
        return plain(507, "Insufficient Storage")
    df = DiskFile(device, policy, part, obj)
    rec = df.record()
    if rec is None or rec.deleted:
        return plain(404, "Not Found", [(hdr.X_BACKEND_TIMESTAMP, rec.ts)] if rec else [])
    head = [(RECORD_HEADER, pack_record(rec))]
    if not rec.size:
        return Response(200, head, b"")
    body = await df.reader(rec).read(0, rec.size)
    if body is None:
        return plain(404, "Not Found")
    if isinstance(body, bytes):
        return Response(200, head, body)
    return Response(200, head, body, content_length=rec.size)
