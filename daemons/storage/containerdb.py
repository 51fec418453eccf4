"""Container records and object rows of one device, in LMDB.

Environment ``<device>/containers.lmdb`` with sub-databases:

* ``containers``: container id (16-byte xxh3-128 of ``/a/c``) -> record
  (timestamps, policy, object count, bytes used, metadata, account targets);
* ``objects``: ``id + object name`` -> ``[ts, size, content_type, etag]`` for
  live rows only, so listings are pure cursor walks (:mod:`listing`);
* ``deleted``: ``id + object name`` -> delete timestamp (row tombstones that
  keep an older, late PUT from resurrecting a deleted object);
* ``dirty``: container id -> revision, containers whose stats the account
  server has not acknowledged yet (the durable account-update queue);
* ``meta``: ``format`` -> the row-key layout version (:func:`migrate`).

Object names longer than an LMDB key allows are keyed by a fixed-length head
and a hash, the full name kept in the value (:func:`listing.row_key`).

Counts and bytes change in the same transaction as the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import xxhash
from nubis.daemons.storage import dbsync
from nubis.daemons.storage.dbcommon import Metadata, merge_metadata
from nubis.daemons.storage.listing import (
    SCOPE_LEN,
    SHORT_MAX,
    Entry,
    ListingParams,
    get_row,
    row_key,
    unwrap,
    walk,
    wrap_value,
)
from nubis.daemons.storage.lmdbstore import GroupCommitter
from nubis.daemons.storage.protocol import StorageError

DBS = ("containers", "objects", "deleted", "dirty", "meta")
#: Row-key layout: 2 = long names hashed (:func:`listing.row_key`).
FORMAT = b"2"


class ContainerNotFoundError(StorageError):
    """The container does not exist (or is deleted)."""


class PolicyConflictError(StorageError):
    """The container exists with another storage policy."""

    def __init__(self, policy: int) -> None:
        super().__init__(policy)
        self.policy = policy


class NotEmptyError(StorageError):
    """The container still holds objects."""


def container_id(account: str, container: str) -> bytes:
    """Return the 16-byte id keying a container's rows."""
    return bytes(xxhash.xxh3_128_digest(f"/{account}/{container}".encode()))


@dataclass(slots=True)
class ContainerInfo:
    """A container's record."""

    account: str
    container: str
    put_ts: str
    delete_ts: str = ""
    status_changed: str = ""
    created: str = ""
    policy: int = 0
    count: int = 0
    nbytes: int = 0
    meta: Metadata = field(default_factory=dict)
    accounts: list[list[Any]] = field(default_factory=list)  # [ip, port, part, device]
    rev: int = 0

    @property
    def deleted(self) -> bool:
        """Tell whether the container is deleted (Swift: delete > put and empty)."""
        return self.delete_ts > self.put_ts and self.count == 0

    def pack(self) -> bytes:
        """Encode for LMDB."""
        return _packb([self.account, self.container, self.put_ts, self.delete_ts,
                              self.status_changed, self.created, self.policy, self.count,
                              self.nbytes, self.meta, self.accounts, self.rev])

    @classmethod
    def unpack(cls, raw: bytes) -> ContainerInfo:
        """Decode a value written by :meth:`pack`."""
        return cls(*msgpack.unpackb(raw, raw=False))


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """One object-row change, as sent by an object server."""

    method: str          # "PUT" or "DELETE"
    account: str
    container: str
    obj: str
    ts: str
    size: int = 0
    content_type: str = ""
    etag: str = ""


def pack_row(ts: str, size: int, content_type: str, etag: str) -> bytes:
    """Encode an object row."""
    return _packb([ts, size, content_type, etag])


def unpack_row(raw: bytes) -> list[Any]:
    """Decode an object row: ``[ts, size, content_type, etag]``."""
    return list(msgpack.unpackb(raw, raw=False))


class ContainerDB:
    """The container store of one device."""

    def __init__(self, env: Any, committer: GroupCommitter) -> None:
        self.env = env
        self.committer = committer
        self.containers = env.open_db(b"containers")
        self.objects = env.open_db(b"objects")
        self.deleted = env.open_db(b"deleted")
        self.dirty = env.open_db(b"dirty")
        self.meta = env.open_db(b"meta")
        migrate(env, self.objects, self.deleted, self.meta)
        #: Revisions acknowledged but maybe not yet cleared on disk (lazy).
        self.acked: dict[bytes, int] = {}

    # -- reads ---------------------------------------------------------------
    def info(self, account: str, container: str) -> ContainerInfo | None:
        """Return the container's record, or None."""
        with self.env.begin(db=self.containers, buffers=False) as txn:
            raw = txn.get(container_id(account, container))
        return None if raw is None else ContainerInfo.unpack(raw)

    def listing(self, account: str, container: str, params: ListingParams) -> list[Entry]:
        """Return a listing page of the container's live rows."""
        cid = container_id(account, container)
        with self.env.begin(db=self.objects, buffers=False) as txn:
            return walk(txn.cursor(), cid, params)

    def dirty_containers(self, limit: int = 1000) -> list[tuple[bytes, int]]:
        """Return containers whose stats still need an account update."""
        out: list[tuple[bytes, int]] = []
        with self.env.begin(db=self.dirty, buffers=False) as txn:
            for k, v in txn.cursor():
                out.append((k, int(v)))
                if len(out) >= limit:
                    break
        return out

    def dirty_rev(self, cid: bytes) -> int | None:
        """Return the dirty revision of one container (None when clean)."""
        with self.env.begin(db=self.dirty, buffers=False) as txn:
            raw = txn.get(cid)
        return None if raw is None else int(raw)

    def info_by_id(self, cid: bytes) -> ContainerInfo | None:
        """Return a container's record by id."""
        with self.env.begin(db=self.containers, buffers=False) as txn:
            raw = txn.get(cid)
        return None if raw is None else ContainerInfo.unpack(raw)

    # -- writes (each runs inside the group commit) -------------------------------
    def _load(self, txn: Any, cid: bytes) -> ContainerInfo | None:
        raw = txn.get(cid, db=self.containers)
        return None if raw is None else ContainerInfo.unpack(raw)

    def _save(self, txn: Any, cid: bytes, info: ContainerInfo, dirty: bool) -> None:
        if dirty:
            info.rev += 1
            txn.put(cid, str(info.rev).encode(), db=self.dirty)
        txn.put(cid, info.pack(), db=self.containers)

    async def put_container(self, account: str, container: str, ts: str, policy: int | None,
                            meta: dict[str, str], accounts: list[list[Any]],
                            default_policy: int = 0) -> bool:
        """Create or update a container; return True when it was created.

        ``policy`` None keeps an existing container's policy (a new one gets
        ``default_policy``), as a Swift PUT without ``X-Storage-Policy`` does.

        Raises:
            PolicyConflictError: it exists (live) with a different policy.
        """
        cid = container_id(account, container)

        def write(txn: Any) -> bool:
            info = self._load(txn, cid)
            if info is None or info.deleted:
                old_meta: Metadata = {}  # a deleted container's metadata is cleared
                rev = 0 if info is None else info.rev
                new = ContainerInfo(account, container, ts, "" if info is None else
                                    info.delete_ts, ts, ts,
                                    default_policy if policy is None else policy, 0, 0,
                                    merge_metadata(old_meta, meta, ts),
                                    accounts, rev)
                self._save(txn, cid, new, dirty=True)
                return True
            if policy is not None and policy != info.policy:
                raise PolicyConflictError(info.policy)
            changed = ts > info.put_ts
            if changed:
                info.put_ts = ts
            info.meta = merge_metadata(info.meta, meta, ts)
            if accounts:
                info.accounts = accounts
            self._save(txn, cid, info, dirty=changed)
            return False

        return await self.committer.submit(write)

    async def post_container(self, account: str, container: str, ts: str,
                             meta: dict[str, str]) -> None:
        """Update container metadata.

        Raises:
            ContainerNotFoundError: no live container.
        """
        cid = container_id(account, container)

        def write(txn: Any) -> None:
            info = self._load(txn, cid)
            if info is None or info.deleted:
                raise ContainerNotFoundError(container)
            changed = ts > info.put_ts  # Swift: a POST moves the put timestamp
            if changed:
                info.put_ts = ts
            info.meta = merge_metadata(info.meta, meta, ts)
            self._save(txn, cid, info, dirty=changed)

        await self.committer.submit(write)

    async def delete_container(self, account: str, container: str, ts: str) -> None:
        """Mark an empty container deleted.

        Raises:
            ContainerNotFoundError: no live container.
            NotEmptyError: it still has objects.
        """
        cid = container_id(account, container)

        def write(txn: Any) -> None:
            info = self._load(txn, cid)
            if info is None or info.deleted:
                raise ContainerNotFoundError(container)
            if info.count > 0:
                raise NotEmptyError(container)
            if ts > info.delete_ts:
                info.delete_ts = ts
                info.status_changed = ts
            if not info.deleted:  # a newer PUT exists: deleting it is a conflict
                raise NotEmptyError(container)
            self._save(txn, cid, info, dirty=True)

        await self.committer.submit(write)

    async def put_object(self, account: str, container: str, name: str, ts: str, size: int,
                         content_type: str, etag: str) -> None:
        """Record an object row (last writer wins by timestamp).

        Raises:
            ContainerNotFoundError: no live container.
        """
        row = RowUpdate("PUT", account, container, name, ts, size, content_type, etag)
        await self.committer.submit(lambda txn: _RowTxn(self, txn).apply_one(row))

    async def delete_object(self, account: str, container: str, name: str, ts: str) -> None:
        """Remove an object row, leaving a tombstone.

        Raises:
            ContainerNotFoundError: the container does not exist.
        """
        row = RowUpdate("DELETE", account, container, name, ts)
        await self.committer.submit(lambda txn: _RowTxn(self, txn).apply_one(row))

    async def apply_rows(self, rows: list[RowUpdate]) -> list[int]:
        """Apply many row updates in one transaction; return a status per row."""
        def write(txn: Any) -> list[int]:
            rt = _RowTxn(self, txn)
            out = []
            for r in rows:
                try:
                    rt.apply(r)
                    out.append(201 if r.method == "PUT" else 204)
                except ContainerNotFoundError:
                    out.append(404)
                except KeyError:  # a long-name hash collision: the sender retries it
                    out.append(500)
            rt.finish()
            return out

        result: list[int] = await self.committer.submit(write)
        return result

    def clear_dirty(self, done: list[tuple[bytes, int]]) -> None:
        """Forget account updates that were acknowledged (if not re-dirtied)."""
        dirty_db = self.dirty
        for cid, rev in done:
            self.acked[cid] = rev
        acked = self.acked

        def write(txn: Any) -> None:
            for cid, rev in done:
                raw = txn.get(cid, db=dirty_db)
                if raw is not None and int(raw) == rev:
                    txn.delete(cid, db=dirty_db)
                if acked.get(cid) == rev:
                    del acked[cid]

        self.committer.submit_lazy(write)


    # -- replication (:mod:`nubis.daemons.storage.dbsync`) --------------------------
    def scopes(self) -> list[tuple[bytes, list[str]]]:
        """Return ``(id, [account, container])`` of every container record here."""
        with self.env.begin(db=self.containers, buffers=False) as txn:
            out = []
            for key, raw in txn.cursor():
                info = ContainerInfo.unpack(raw)
                out.append((bytes(key), [info.account, info.container]))
            return out

    def _digest(self, txn: Any, cid: bytes) -> str | None:
        info = self._load(txn, cid)
        if info is None:
            return None
        return dbsync.digest([info.put_ts, info.delete_ts, info.policy,
                              dbsync.sorted_meta(info.meta)],
                             [dbsync.scope_rows(txn, self.objects, cid),
                              dbsync.scope_rows(txn, self.deleted, cid)])

    def digest(self, cid: bytes) -> str | None:
        """Return the replication digest of a container (None when absent)."""
        with self.env.begin(buffers=False) as txn:
            return self._digest(txn, cid)

    def export(self, cid: bytes) -> list[dict[str, Any]]:
        """Return a container as ``_dbmerge`` chunks (empty when absent)."""
        with self.env.begin(buffers=False) as txn:
            info = self._load(txn, cid)
            if info is None:
                return []
            record = [info.account, info.container, info.put_ts, info.delete_ts,
                      info.status_changed, info.created, info.policy, info.meta, info.accounts]
            rows = [[name.decode(), *unpack_row(v)]
                    for name, v in dbsync.named_rows(txn, self.objects, cid)]
            deleted = [[name.decode(), v.decode()]
                       for name, v in dbsync.named_rows(txn, self.deleted, cid)]
        return list(dbsync.export_chunks(record, rows, deleted))

    async def merge(self, chunk: Any) -> None:
        """Merge one ``_dbmerge`` chunk pushed by a replicator (last writer wins).

        Raises:
            ValueError: a malformed chunk (nothing is written).
        """
        rec, rows, deleted = _parse_chunk(chunk)
        account, container = rec[0], rec[1]
        cid = container_id(account, container)

        def write(txn: Any) -> None:
            info = self._load(txn, cid)
            if info is None:
                info = ContainerInfo(account, container, rec[2], rec[3], rec[4], rec[5], rec[6],
                                     0, 0, {}, rec[8], 0)
            _merge_record(info, rec)
            rt = _RowTxn(self, txn)
            rt.infos[cid] = info
            rt.changed.add(cid)
            for name, ts, size, ctype, etag in rows:
                rt.apply(RowUpdate("PUT", account, container, name, ts, size, ctype, etag),
                         merge=True)
            for name, ts in deleted:
                rt.apply(RowUpdate("DELETE", account, container, name, ts), merge=True)
            rt.finish()

        await self.committer.submit(write)

    async def remove(self, cid: bytes, digest: str) -> bool:
        """Drop a container (handoff copy) if its digest is still ``digest``."""
        def write(txn: Any) -> bool:
            if self._digest(txn, cid) != digest:
                return False  # changed since it was pushed: the next pass pushes it
            dbsync.delete_scope(txn, self.objects, cid)
            dbsync.delete_scope(txn, self.deleted, cid)
            txn.delete(cid, db=self.containers)
            txn.delete(cid, db=self.dirty)
            return True

        result: bool = await self.committer.submit(write)
        return result

    async def reclaim(self, cid: bytes, cutoff: str) -> int:
        """Remove row tombstones older than ``cutoff`` and an old deleted record.

        Returns:
            How many tombstones (rows and the record) were removed.
        """
        with self.env.begin(buffers=False) as txn:
            info = self._load(txn, cid)
            old = [k for k, v in dbsync.scope_rows(txn, self.deleted, cid)
                   if unwrap(k, v)[1].decode() < cutoff]
        gone = info is not None and info.deleted and info.delete_ts < cutoff
        if not old and not gone:
            return 0

        def write(txn: Any) -> int:
            n = 0
            for key in old:
                raw = txn.get(key, db=self.deleted)
                if raw is not None and unwrap(key, raw)[1].decode() < cutoff:
                    n += bool(txn.delete(key, db=self.deleted))
            now = self._load(txn, cid)
            if now is not None and now.deleted and now.delete_ts < cutoff:
                dbsync.delete_scope(txn, self.deleted, cid)
                txn.delete(cid, db=self.containers)
                txn.delete(cid, db=self.dirty)
                n += 1
            return n

        result: int = await self.committer.submit(write)
        return result


def _parse_chunk(chunk: Any) -> tuple[list[Any], list[list[Any]], list[list[Any]]]:
    """Validate a container ``_dbmerge`` chunk before any write."""
    try:
        rec = list(chunk["record"])
        a, c, put, dele, changed, created = (str(x) for x in rec[:6])
        meta = {str(k): [str(v[0]), str(v[1])] for k, v in dict(rec[7]).items()}
        accounts = [[str(t[0]), int(t[1]), int(t[2]), str(t[3])] for t in rec[8]]
        rows = [[str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4])]
                for r in chunk["rows"]]
        deleted = [[str(r[0]), str(r[1])] for r in chunk["deleted"]]
        out = [a, c, put, dele, changed, created, int(rec[6]), meta, accounts]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"bad merge chunk: {exc}") from None
    if not a or not c or not put:
        raise ValueError("bad merge chunk: names and put timestamp required")
    return out, rows, deleted


def _merge_record(info: ContainerInfo, rec: list[Any]) -> None:
    """Merge a pushed record's timestamps, policy and metadata into ``info``."""
    _, _, put, dele, changed, created, policy, meta, accounts = rec
    info.put_ts = max(info.put_ts, put)
    info.delete_ts = max(info.delete_ts, dele)
    info.status_changed = max(info.status_changed, changed)
    if created and (not info.created or created < info.created):
        info.created = created
        info.policy = policy  # the older container's policy wins (deterministic)
    for name, (value, ts) in meta.items():
        old = info.meta.get(name)
        if old is None or old[1] < ts:
            info.meta[name] = [value, ts]
    if not info.accounts:
        info.accounts = accounts


def migrate(env: Any, objects: Any, deleted: Any, meta: Any) -> int:
    """Rewrite rows keyed by the old layout (full names of 481-495 bytes); return how many.

    Layout 1 keyed every row by the full name, so names longer than
    :data:`SHORT_MAX` (that LMDB accepted) must move to their hashed keys before
    a listing may read them. Runs once per environment; later opens only read
    the ``format`` marker.
    """
    with env.begin(db=meta) as txn:
        if txn.get(b"format") == FORMAT:
            return 0
    moved = 0
    with env.begin(write=True) as txn:
        for db in (objects, deleted):
            old = [(k, v) for k, v in txn.cursor(db=db) if len(k) > SCOPE_LEN + SHORT_MAX]
            for key, value in old:
                scope, name = key[:SCOPE_LEN], key[SCOPE_LEN:]
                txn.delete(key, db=db)
                txn.put(row_key(scope, name), wrap_value(name, value), db=db)
            moved += len(old)
        txn.put(b"format", FORMAT, db=meta)
    return moved


def _packb(value: Any) -> bytes:
    """Encode with msgpack (binary-safe)."""
    return bytes(msgpack.packb(value, use_bin_type=True))


class _RowTxn:
    """Object-row changes inside one write transaction.

    PERF: a container's record is loaded once and saved once per
    transaction however many of its rows a batch touches
    (``python -m nubis.bench swift``).
    """

    def __init__(self, db: ContainerDB, txn: Any) -> None:
        self.db = db
        self.txn = txn
        self.infos: dict[bytes, ContainerInfo | None] = {}
        self.changed: set[bytes] = set()

    def _info(self, cid: bytes) -> ContainerInfo | None:
        if cid not in self.infos:
            self.infos[cid] = self.db._load(self.txn, cid)
        return self.infos[cid]

    def apply_one(self, row: RowUpdate) -> None:
        """Apply one row and save its container."""
        self.apply(row)
        self.finish()

    def apply(self, row: RowUpdate, merge: bool = False) -> None:
        """Apply one row (last writer wins by timestamp).

        ``merge`` (replication) applies a PUT row to a deleted container too,
        as Swift's ``merge_items`` does.

        Raises:
            ContainerNotFoundError: no such container (or deleted, for a PUT).
        """
        cid = container_id(row.account, row.container)
        info = self._info(cid)
        if info is None or (row.method == "PUT" and info.deleted and not merge):
            raise ContainerNotFoundError(row.container)
        txn, db = self.txn, self.db
        name = row.obj.encode()
        key = row_key(cid, name)
        tomb = get_row(txn, db.deleted, cid, name)
        if tomb is not None and tomb.decode() >= row.ts:
            return
        raw = get_row(txn, db.objects, cid, name)
        if raw is not None:
            old = unpack_row(raw)
            if old[0] >= row.ts:
                return
            info.count -= 1
            info.nbytes -= old[1]
            self.changed.add(cid)
        if row.method == "PUT":
            if tomb is not None:
                txn.delete(key, db=db.deleted)
            txn.put(key, wrap_value(name, pack_row(row.ts, row.size, row.content_type,
                                                   row.etag)), db=db.objects)
            info.count += 1
            info.nbytes += row.size
            self.changed.add(cid)
        else:
            if raw is not None:
                txn.delete(key, db=db.objects)
            txn.put(key, wrap_value(name, row.ts.encode()), db=db.deleted)

    def finish(self) -> None:
        """Save every container whose stats changed (and mark it for the account)."""
        for cid in self.changed:
            info = self.infos[cid]
            assert info is not None
            self.db._save(self.txn, cid, info, dirty=True)
        self.changed.clear()
