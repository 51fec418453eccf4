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
            live_raw = txn.get(key, db=self.containers)
            tomb_raw = txn.get(key, db=self.deleted)
            old: list[Any] | None = None
            if live_raw is not None:
                old = unpack_row(live_raw)
            elif tomb_raw is not None:
                old = [*unpack_row(tomb_raw), 0, 0, 0]
            new_put, new_del = put_ts, delete_ts
            if old is not None:
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
            self._save(txn, account, info)
            return live

        return await self.committer.submit(write)


def _packb(value: Any) -> bytes:
    """Encode with msgpack (binary-safe)."""
    return bytes(msgpack.packb(value, use_bin_type=True))
