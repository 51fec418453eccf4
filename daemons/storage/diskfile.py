"""Object storage on one device: data files + LMDB metadata + group commit.

Layout of a device directory ``<devices>/<device>/``:

* ``objects[-N]/<part>/<suffix>/<hash>/<timestamp>.data`` -- object bodies
  above the inline threshold (``N`` = storage policy index when not 0);
  ``<timestamp>.ts`` -- an (empty) tombstone file written on DELETE;
* ``objects.lmdb/`` -- one LMDB environment: ``meta`` maps
  ``policy byte + 16-byte hash`` to an :class:`ObjectRecord` (inline bodies
  live inside the record), ``pending`` holds container updates not yet
  acknowledged (the durable "async pending" queue for the updater),
  ``expiry`` indexes ``X-Delete-At`` (for the expirer);
* ``tmp/`` -- uploads in progress; ``quarantined/objects[-N]/`` -- corrupt data.

The object hash is ``hash_path_hex(seed, b"/a/c/o")``: request text never
becomes a path component. Every body carries xxh3-64 checksums of each
1 MiB chunk; reads verify each chunk before it leaves the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import xxhash
from nubis.common.fileutil import fsync_dir
from nubis.daemons.storage.lmdbstore import GroupCommitter, open_env
from nubis.daemons.storage.protocol import StorageError
from nubis.fastpath.durable import place_durably

LOG = logging.getLogger(__name__)

#: Bytes covered by one stored checksum.
CHUNK = 1 << 20
#: LMDB sub-databases of an object device.
DBS = ("meta", "pending", "expiry")


class DiskError(StorageError):
    """Base of the object store's own errors."""


class ConflictError(DiskError):
    """The stored object has a timestamp >= the request's."""

    def __init__(self, existing_ts: str) -> None:
        super().__init__(existing_ts)
        self.existing_ts = existing_ts


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Return the per-chunk checksum (xxh3-64)."""
    return int(xxhash.xxh3_64_intdigest(data))


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """What LMDB holds about one object (or its tombstone)."""

    ts: str                       # internal timestamp (sortable string)
    size: int = 0
    etag: str = ""
    content_type: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    part: int = 0
    name: str = ""                # "/a/c/o", for the auditor/updater
    sums: tuple[int, ...] = ()    # xxh3-64 of each CHUNK
    inline: bytes | None = None   # the body when stored inline
    data_ts: str = ""             # timestamp of the body (POST moves ``ts`` only)

    @property
    def data_timestamp(self) -> str:
        """Return the timestamp naming the body (``<data_ts>.data``)."""
        return self.data_ts or self.ts

    def pack(self) -> bytes:
        """Encode for LMDB."""
        return _packb([1, self.ts, self.size, self.etag, self.content_type, self.meta,
                              self.deleted, self.part, self.name, list(self.sums),
                              self.inline, self.data_ts])

    @classmethod
    def unpack(cls, raw: bytes) -> ObjectRecord:
        """Decode a value written by :meth:`pack`."""
        v = msgpack.unpackb(raw, raw=False, use_list=True)
        return cls(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], tuple(v[9]), v[10], v[11])


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """A container update to send (kept in ``pending`` until acknowledged)."""

    method: str
    ip: str
    port: int
    device: str
    partition: str
    path: str                     # quoted "/a/c/o"
    headers: dict[str, str]

    def pack(self) -> bytes:
        """Encode for LMDB."""
        return _packb([self.method, self.ip, self.port, self.device, self.partition,
                              self.path, self.headers])

    @classmethod
    def unpack(cls, raw: bytes) -> PendingUpdate:
        """Decode a value written by :meth:`pack`."""
        v = msgpack.unpackb(raw, raw=False)
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], v[6])


def expiry_key(delete_at: int, key: bytes) -> bytes:
    """Return the ``expiry`` index key of an object key."""
    return delete_at.to_bytes(8, "big") + key


def _delete_at(rec: ObjectRecord) -> int | None:
    raw = rec.meta.get("x-delete-at")
    if rec.deleted or raw is None or not raw.isdigit():
        return None
    return int(raw)


def object_key(policy: int, hash_hex: str) -> bytes:
    """Return the LMDB key of an object."""
    return bytes((policy,)) + bytes.fromhex(hash_hex)


def _objects_dir(policy: int) -> str:
    return "objects" if policy == 0 else f"objects-{policy}"


class ObjectDevice:
    """One device: its LMDB environment, group committer and data files."""

    def __init__(self, root: Path, executor: Executor, *, fsync: bool, map_mib: int,
                 window: float, max_batch: int) -> None:
        self.root = root
        self.name = root.name
        self.executor = executor
        self.fsync = fsync
        self.env = open_env(root / "objects.lmdb", DBS, map_mib=map_mib, sync=fsync)
        self.meta_db = self.env.open_db(b"meta")
        self.pending_db = self.env.open_db(b"pending")
        self.expiry_db = self.env.open_db(b"expiry")
        self.committer = GroupCommitter(self.env, executor, window=window, max_batch=max_batch,
                                        in_loop=not fsync)
        (root / "tmp").mkdir(exist_ok=True)
        self._seq = 0

    # -- paths ---------------------------------------------------------------
    def hash_dir(self, policy: int, part: int, hash_hex: str) -> Path:
        """Return ``objects[-N]/<part>/<suffix>/<hash>``."""
        return self.root / _objects_dir(policy) / str(part) / hash_hex[-3:] / hash_hex

    def data_path(self, policy: int, rec: ObjectRecord, hash_hex: str) -> Path:
        """Return the ``.data`` file of a non-inline record."""
        return self.hash_dir(policy, rec.part, hash_hex) / f"{rec.data_timestamp}.data"

    # -- reads ---------------------------------------------------------------
    def get(self, policy: int, hash_hex: str) -> ObjectRecord | None:
        """Return the stored record (object or tombstone), or None."""
        with self.env.begin(db=self.meta_db, buffers=False) as txn:
            raw = txn.get(object_key(policy, hash_hex))
        return None if raw is None else ObjectRecord.unpack(raw)

    # -- writes --------------------------------------------------------------
    async def commit_record(self, policy: int, hash_hex: str, rec: ObjectRecord,
                            updates: list[PendingUpdate],
                            merge: Callable[[ObjectRecord], ObjectRecord] | None = None,
                            ) -> tuple[ObjectRecord | None, list[bytes]]:
        """Store ``rec`` if newer than what is stored; return (old record, pending keys).

        ``merge`` (used by POST) builds the new record from the stored one; it
        fails with 404-meaning :class:`KeyError` when nothing live is stored.

        Raises:
            ConflictError: the stored timestamp is >= ``rec.ts``.
            KeyError: ``merge`` given and no live object stored.
        """
        key = object_key(policy, hash_hex)
        pending = [(self._pending_key(hash_hex), u.pack()) for u in updates]
        meta_db, pending_db, expiry_db = self.meta_db, self.pending_db, self.expiry_db

        def write(txn: Any) -> ObjectRecord | None:
            raw = txn.get(key, db=meta_db)
            old = None if raw is None else ObjectRecord.unpack(raw)
            if old is not None and old.ts >= rec.ts:
                raise ConflictError(old.ts)
            new = rec
            if merge is not None:
                if old is None or old.deleted:
                    raise KeyError(hash_hex)
                new = merge(old)
            txn.put(key, new.pack(), db=meta_db)
            for pkey, pval in pending:
                txn.put(pkey, pval, db=pending_db)
            old_at = None if old is None else _delete_at(old)
            new_at = _delete_at(new)
            if old_at != new_at:
                if old_at is not None:
                    txn.delete(expiry_key(old_at, key), db=expiry_db)
                if new_at is not None:
                    txn.put(expiry_key(new_at, key), b"", db=expiry_db)
            return old

        old = await self.committer.submit(write)
        return old, [k for k, _ in pending]

    def expiring(self, now: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Return ``(delete_at, object key)`` of objects due at ``now``, oldest first.

        The ``expiry`` index (``delete_at`` big-endian + object key) is kept in
        the same transaction as the records; the expirer walks it.
        """
        out: list[tuple[int, bytes]] = []
        with self.env.begin(db=self.expiry_db, buffers=False) as txn:
            for k, _ in txn.cursor():
                at = int.from_bytes(k[:8], "big")
                if at > now or len(out) >= limit:
                    break
                out.append((at, k[8:]))
        return out

    def _pending_key(self, hash_hex: str) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFF
        return time.time_ns().to_bytes(8, "big") + self._seq.to_bytes(2, "big") \
            + bytes.fromhex(hash_hex)

    def clear_pending(self, keys: list[bytes]) -> None:
        """Forget acknowledged updates (lazily, with the next commit)."""
        pending_db = self.pending_db

        def write(txn: Any) -> None:
            for k in keys:
                txn.delete(k, db=pending_db)

        self.committer.submit_lazy(write)

    def pending_updates(self, limit: int = 1000) -> list[tuple[bytes, PendingUpdate]]:
        """Return up to ``limit`` queued container updates, oldest first."""
        out = []
        with self.env.begin(db=self.pending_db, buffers=False) as txn:
            for k, v in txn.cursor():
                out.append((k, PendingUpdate.unpack(v)))
                if len(out) >= limit:
                    break
        return out

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking ``fn(*args)`` in the I/O thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- data files (blocking; called through run()) -----------------------------
    def new_temp(self) -> tuple[int, str]:
        """Create a temp file for an upload; return ``(fd, path)``."""
        path = str(self.root / "tmp" / f"{os.getpid()}.{time.time_ns()}.{id(self)}.tmp")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return fd, path

    def write_all(self, fd: int, data: bytes | memoryview) -> None:
        """Write ``data`` fully to ``fd``."""
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    async def place(self, fd: int, tmp_path: str, dest_dir: Path, filename: str) -> None:
        """Rename a written temp file into its hash dir, then make it durable.

        One I/O job does it all: create the hash dir (and parents), rename,
        ``fdatasync`` the file, ``fsync`` the hash dir and the parent of every
        directory created. Until the LMDB record commits, the file is
        unreferenced garbage, so a crash in between loses nothing acknowledged.

        PERF: the compiled kernel runs the whole sequence without the GIL:
        separate jobs per sync made the I/O threads and the event loop trade
        the GIL (futex storms) on every 1 MiB PUT (``python -m nubis.bench swift``).
        """
        try:
            await self.run(place_durably, os.fsencode(tmp_path), os.fsencode(dest_dir),
                           os.fsencode(dest_dir / filename), fd, self.fsync)
        finally:
            os.close(fd)

    def write_tombstone(self, dest_dir: Path, ts: str) -> None:
        """Create ``<ts>.ts`` durably."""
        created = _makedirs(dest_dir)
        fd = os.open(dest_dir / f"{ts}.ts", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.fsync:
            fsync_dir(dest_dir)
            for d in created:
                fsync_dir(d.parent)

    def cleanup(self, dest_dir: Path, keep: str) -> None:
        """Remove files of ``dest_dir`` older than timestamp ``keep`` (best effort)."""
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(dest_dir):
                stem = entry.name.rsplit(".", 1)[0]
                if stem < keep:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)

    def read_range(self, path: Path, start: int, length: int) -> bytes:
        """Read ``length`` bytes at ``start`` of ``path`` (short read = corrupt)."""
        with open(path, "rb", buffering=0) as fh:
            fh.seek(start)
            data = fh.read(length)
        return data

    def file_size(self, path: Path) -> int:
        """Return the size of ``path`` (-1 when missing)."""
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return -1

    # -- quarantine --------------------------------------------------------------
    async def quarantine(self, policy: int, hash_hex: str, rec: ObjectRecord,
                         reason: str) -> None:
        """Move the object's files aside and drop its record (if unchanged)."""
        LOG.error("quarantining %s %s (%s) on %s", rec.name, rec.ts, reason, self.name)
        src = self.hash_dir(policy, rec.part, hash_hex)
        qdir = self.root / "quarantined" / _objects_dir(policy)

        def move() -> None:
            qdir.mkdir(parents=True, exist_ok=True)
            if rec.inline is not None:
                (qdir / f"{hash_hex}-{rec.ts}.record").write_bytes(rec.pack())
            if src.exists():
                dest = qdir / hash_hex
                if dest.exists():
                    dest = qdir / f"{hash_hex}-{time.time_ns()}"
                with contextlib.suppress(OSError):
                    os.rename(src, dest)

        await self.run(move)
        key = object_key(policy, hash_hex)
        meta_db = self.meta_db

        def drop(txn: Any) -> None:
            raw = txn.get(key, db=meta_db)
            if raw is not None and ObjectRecord.unpack(raw).ts == rec.ts:
                txn.delete(key, db=meta_db)

        await self.committer.submit(drop)

    def close(self) -> None:
        """Close the LMDB environment."""
        self.env.close()


def _makedirs(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; return the directories created."""
    created: list[Path] = []
    p = path
    while not p.exists():
        created.append(p)
        p = p.parent
    for d in reversed(created):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)
    return created


__all__ = ["CHUNK", "ConflictError", "ObjectDevice", "ObjectRecord",
           "PendingUpdate", "checksum", "object_key"]


def _packb(value: Any) -> bytes:
    """Encode with msgpack (binary-safe)."""
    return bytes(msgpack.packb(value, use_bin_type=True))
