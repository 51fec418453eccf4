"""Account records and container rows of one device, in LMDB.

Environment ``<device>/accounts.lmdb``:

* ``accounts``: account name (UTF-8) -> record (timestamps, metadata and the
  running container/object/byte totals);
* ``containers``: ``id + container name`` -> ``[put_ts, delete_ts, objects,
  bytes, policy]`` for live containers (``id`` = 16-byte xxh3-128 of ``/a``),
  listed by cursor walks;
* ``deleted``: ``id + container name`` -> ``[put_ts, delete_ts]`` tombstones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
import xxhash
from nubis.daemons.storage import dbsync
from nubis.daemons.storage.dbcommon import Metadata, merge_metadata
from nubis.daemons.storage.listing import Entry, ListingParams, walk
from nubis.daemons.storage.lmdbstore import GroupCommitter
from nubis.daemons.storage.protocol import StorageError

DBS = ("accounts", "containers", "deleted")


class AccountNotFoundError(StorageError):
    """The account does not exist."""


class AccountDeletedError(StorageError):
    """The account was deleted."""


def account_id(account: str) -> bytes:
    """Return the 16-byte id keying an account's container rows."""
    return bytes(xxhash.xxh3_128_digest(f"/{account}".encode()))


@dataclass(slots=True)
class AccountInfo:
    """An account's record."""

    put_ts: str
    delete_ts: str = ""
    status_changed: str = ""
    created: str = ""
    meta: Metadata = field(default_factory=dict)
    containers: int = 0
    objects: int = 0
    nbytes: int = 0

    @property
    def deleted(self) -> bool:
        """Tell whether the account is deleted."""
        return self.delete_ts > self.put_ts

    def pack(self) -> bytes:
        """Encode for LMDB."""
        return _packb([self.put_ts, self.delete_ts, self.status_changed, self.created,
                              self.meta, self.containers, self.objects, self.nbytes])

    @classmethod
    def unpack(cls, raw: bytes) -> AccountInfo:
        """Decode a value written by :meth:`pack`."""
        return cls(*msgpack.unpackb(raw, raw=False))


def unpack_row(raw: bytes) -> list[Any]:
    """Decode a container row: ``[put_ts, delete_ts, objects, bytes, policy]``."""
    return list(msgpack.unpackb(raw, raw=False))


class AccountDB:
    """The account store of one device."""

    def __init__(self, env: Any, committer: GroupCommitter) -> None:
        self.env = env
        self.committer = committer
        self.accounts = env.open_db(b"accounts")
        self.containers = env.open_db(b"containers")
        self.deleted = env.open_db(b"deleted")

    def info(self, account: str) -> AccountInfo | None:
        """Return the account record, or None."""
        with self.env.begin(db=self.accounts, buffers=False) as txn:
            raw = txn.get(account.encode())
        return None if raw is None else AccountInfo.unpack(raw)

    def listing(self, account: str, params: ListingParams) -> list[Entry]:
        """Return a listing page of the account's live containers."""
        with self.env.begin(db=self.containers, buffers=False) as txn:
            return walk(txn.cursor(), account_id(account), params)

    def policy_stats(self, account: str, limit: int = 10_000) -> dict[int, list[int]] | None:
        """Return ``{policy: [containers, objects, bytes]}`` summed over the container rows.

        One cursor walk; None when the account has more than ``limit`` containers
        (the per-policy headers are then left out rather than paid for).
        """
        prefix = account_id(account)
        out: dict[int, list[int]] = {}
        with self.env.begin(db=self.containers, buffers=False) as txn:
            cur = txn.cursor()
            if not cur.set_range(prefix):
                return out
            for n, (key, raw) in enumerate(cur):
                if not key.startswith(prefix):
                    break
                if n >= limit:
                    return None
                _, _, objects, nbytes, policy = unpack_row(raw)
                stat = out.setdefault(int(policy), [0, 0, 0])
                stat[0] += 1
                stat[1] += int(objects)
                stat[2] += int(nbytes)
        return out

    def _load(self, txn: Any, account: str) -> AccountInfo | None:
        raw = txn.get(account.encode(), db=self.accounts)
        return None if raw is None else AccountInfo.unpack(raw)

    def _save(self, txn: Any, account: str, info: AccountInfo) -> None:
        txn.put(account.encode(), info.pack(), db=self.accounts)

    async def put_account(self, account: str, ts: str, meta: dict[str, str]) -> bool:
        """Create or update an account; return True when created.

        Raises:
            AccountDeletedError: the account was deleted (Swift: 403).
        """
        def write(txn: Any) -> bool:
            info = self._load(txn, account)
            if info is None:
                self._save(txn, account, AccountInfo(ts, "", ts, ts,
                                                     merge_metadata({}, meta, ts)))
                return True
            if info.deleted:
                raise AccountDeletedError(account)
            if ts > info.put_ts:
                info.put_ts = ts
            info.meta = merge_metadata(info.meta, meta, ts)
            self._save(txn, account, info)
            return False

        return await self.committer.submit(write)

    async def post_account(self, account: str, ts: str, meta: dict[str, str]) -> None:
        """Update account metadata.

        Raises:
            AccountNotFoundError: missing or deleted.
        """
        def write(txn: Any) -> None:
            info = self._load(txn, account)
            if info is None or info.deleted:
                raise AccountNotFoundError(account)
            info.meta = merge_metadata(info.meta, meta, ts)
            self._save(txn, account, info)

        await self.committer.submit(write)

    async def delete_account(self, account: str, ts: str) -> None:
        """Mark an account deleted (its containers are reaped later).

        Raises:
            AccountNotFoundError: missing or already deleted.
        """
        def write(txn: Any) -> None:
            info = self._load(txn, account)
            if info is None or info.deleted:
                raise AccountNotFoundError(account)
            if ts > info.delete_ts:
                info.delete_ts = ts
                info.status_changed = ts
                info.meta = {k: ["", ts] for k in info.meta}
            self._save(txn, account, info)

        await self.committer.submit(write)

    async def put_container(self, account: str, container: str, put_ts: str, delete_ts: str,
                            objects: int, nbytes: int, policy: int) -> bool:
        """Merge a container's stats report; return True if it is live afterwards.

        The account is created on first report (containers are created
        through the proxy, which authorized the account).

        Raises:
            AccountDeletedError: the account was deleted.
        """
        key = account_id(account) + container.encode()

        def write(txn: Any) -> bool:
            info = self._load(txn, account)
            if info is None:
                info = AccountInfo(put_ts, "", put_ts, put_ts)
            elif info.deleted:
                raise AccountDeletedError(account)
            live = self._merge_row(txn, info, key, [put_ts, delete_ts, objects, nbytes, policy],
                                   newer_stats_only=False)
            self._save(txn, account, info)
            return live

        return await self.committer.submit(write)

    def _merge_row(self, txn: Any, info: AccountInfo, key: bytes, row: list[Any], *,
                   newer_stats_only: bool) -> bool:
        """Merge one container row ``[put, delete, objects, bytes, policy]``; True if live.

        Timestamps merge to the newest of each; the stats are the incoming ones
        (a container server's report), or with ``newer_stats_only``
        (replication) only when the incoming timestamps are newer.
        """
        put_ts, delete_ts, objects, nbytes, policy = row
        live_raw = txn.get(key, db=self.containers)
        tomb_raw = txn.get(key, db=self.deleted)
        old: list[Any] | None = None
        if live_raw is not None:
            old = unpack_row(live_raw)
        elif tomb_raw is not None:
            old = [*unpack_row(tomb_raw), 0, 0, 0]
        new_put, new_del = put_ts, delete_ts
        if old is not None:
            if newer_stats_only and live_raw is not None and (old[0], old[1]) >= (put_ts,
                                                                                 delete_ts):
                objects, nbytes, policy = old[2], old[3], old[4]
            new_put = max(new_put, old[0])
            new_del = max(new_del, old[1])
        if live_raw is not None:
            info.containers -= 1
            info.objects -= old[2]  # type: ignore[index]
            info.nbytes -= old[3]  # type: ignore[index]
        live = not new_del > new_put
        if live:
            txn.put(key, msgpack.packb([new_put, new_del, objects, nbytes, policy]),
                    db=self.containers)
            if tomb_raw is not None:
                txn.delete(key, db=self.deleted)
            info.containers += 1
            info.objects += objects
            info.nbytes += nbytes
        else:
            if live_raw is not None:
                txn.delete(key, db=self.containers)
            txn.put(key, msgpack.packb([new_put, new_del]), db=self.deleted)
        return live

    # -- replication (:mod:`nubis.daemons.storage.dbsync`) --------------------------
    def scopes(self) -> list[tuple[bytes, list[str]]]:
        """Return ``(key, [account])`` of every account record here."""
        with self.env.begin(db=self.accounts, buffers=False) as txn:
            return [(bytes(k), [bytes(k).decode()]) for k, _ in txn.cursor()]

    def _digest(self, txn: Any, key: bytes) -> str | None:
        raw = txn.get(key, db=self.accounts)
        if raw is None:
            return None
        info = AccountInfo.unpack(raw)
        aid = account_id(key.decode())
        # Live rows without their stats: those follow the container servers'
        # reports, so replicas may differ in them without being out of sync.
        live = ((k, dbsync.packb([r[0], r[1], r[4]])) for k, v in
                dbsync.scope_rows(txn, self.containers, aid) for r in (unpack_row(v),))
        return dbsync.digest([info.put_ts, info.delete_ts, dbsync.sorted_meta(info.meta)],
                             [live, dbsync.scope_rows(txn, self.deleted, aid)])

    def digest(self, key: bytes) -> str | None:
        """Return the replication digest of an account (None when absent)."""
        with self.env.begin(buffers=False) as txn:
            return self._digest(txn, key)

    def export(self, key: bytes) -> list[dict[str, Any]]:
        """Return an account as ``_dbmerge`` chunks (empty when absent)."""
        account = key.decode()
        aid = account_id(account)
        with self.env.begin(buffers=False) as txn:
            raw = txn.get(key, db=self.accounts)
            if raw is None:
                return []
            info = AccountInfo.unpack(raw)
            record = [account, info.put_ts, info.delete_ts, info.status_changed, info.created,
                      info.meta]
            rows = [[k[len(aid):].decode(), *unpack_row(v)]
                    for k, v in dbsync.scope_rows(txn, self.containers, aid)]
            deleted = [[k[len(aid):].decode(), *unpack_row(v)]
                       for k, v in dbsync.scope_rows(txn, self.deleted, aid)]
        return list(dbsync.export_chunks(record, rows, deleted))

    async def merge(self, chunk: Any) -> None:
        """Merge one ``_dbmerge`` chunk pushed by a replicator.

        Raises:
            ValueError: a malformed chunk (nothing is written).
        """
        rec, rows = _parse_chunk(chunk)
        account = rec[0]
        aid = account_id(account)

        def write(txn: Any) -> None:
            info = self._load(txn, account)
            if info is None:
                info = AccountInfo(rec[1], rec[2], rec[3], rec[4])
            _merge_record(info, rec)
            for row in rows:
                self._merge_row(txn, info, aid + row[0].encode(), row[1:],
                                newer_stats_only=True)
            self._save(txn, account, info)

        await self.committer.submit(write)

    async def remove(self, key: bytes, digest: str) -> bool:
        """Drop an account (handoff copy) if its digest is still ``digest``."""
        aid = account_id(key.decode())

        def write(txn: Any) -> bool:
            if self._digest(txn, key) != digest:
                return False
            dbsync.delete_scope(txn, self.containers, aid)
            dbsync.delete_scope(txn, self.deleted, aid)
            txn.delete(key, db=self.accounts)
            return True

        result: bool = await self.committer.submit(write)
        return result

    async def reclaim(self, key: bytes, cutoff: str) -> int:
        """Remove container tombstones deleted before ``cutoff`` (and an empty deleted account).

        Returns:
            How many tombstones were removed.
        """
        aid = account_id(key.decode())
        with self.env.begin(buffers=False) as txn:
            old = [k for k, v in dbsync.scope_rows(txn, self.deleted, aid)
                   if unpack_row(v)[1] < cutoff]
            info = self._load(txn, key.decode())
        gone = info is not None and info.deleted and info.delete_ts < cutoff \
            and info.containers == 0
        if not old and not gone:
            return 0

        def write(txn: Any) -> int:
            n = 0
            for k in old:
                raw = txn.get(k, db=self.deleted)
                if raw is not None and unpack_row(raw)[1] < cutoff:
                    n += bool(txn.delete(k, db=self.deleted))
            now = self._load(txn, key.decode())
            if now is not None and now.deleted and now.delete_ts < cutoff \
                    and now.containers == 0:
                dbsync.delete_scope(txn, self.deleted, aid)
                txn.delete(key, db=self.accounts)
                n += 1
            return n

        result: int = await self.committer.submit(write)
        return result


def _parse_chunk(chunk: Any) -> tuple[list[Any], list[list[Any]]]:
    """Validate an account ``_dbmerge`` chunk; rows come out as container rows."""
    try:
        rec = list(chunk["record"])
        head = [str(x) for x in rec[:5]]
        meta = {str(k): [str(v[0]), str(v[1])] for k, v in dict(rec[5]).items()}
        rows = [[str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])]
                for r in chunk["rows"]]
        rows += [[str(r[0]), str(r[1]), str(r[2]), 0, 0, 0] for r in chunk["deleted"]]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"bad merge chunk: {exc}") from None
    if not head[0] or not head[1]:
        raise ValueError("bad merge chunk: account and put timestamp required")
    return [*head, meta], rows


def _merge_record(info: AccountInfo, rec: list[Any]) -> None:
    """Merge a pushed account record's timestamps and metadata into ``info``."""
    _, put, dele, changed, created, meta = rec
    info.put_ts = max(info.put_ts, put)
    info.delete_ts = max(info.delete_ts, dele)
    info.status_changed = max(info.status_changed, changed)
    if created and (not info.created or created < info.created):
        info.created = created
    for name, (value, ts) in meta.items():
        old = info.meta.get(name)
        if old is None or old[1] < ts:
            info.meta[name] = [value, ts]


def _packb(value: Any) -> bytes:
    """Encode with msgpack (binary-safe)."""
    return bytes(msgpack.packb(value, use_bin_type=True))
