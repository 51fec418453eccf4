"""Object storage on one device: data files + LMDB metadata + group commit.

Layout of a device directory ``<devices>/<device>/``:

* ``objects[-N]/<part>/<suffix>/<hash>/<timestamp>.data`` -- object bodies
  above the inline threshold (``N`` = storage policy index when not 0);
  ``<timestamp>.ts`` -- an (empty) tombstone file written on DELETE;
* ``objects.lmdb/`` -- one LMDB environment: ``meta`` maps
  ``policy byte + 16-byte hash`` to an :class:`ObjectRecord` (inline bodies
  live inside the record), ``pending`` holds container updates not yet
  acknowledged (the durable "async pending" queue for the updater),
  ``expiry`` indexes ``X-Delete-At`` (for the expirer), ``parts`` indexes
  records by partition and suffix (for the replicator, see :mod:`partindex`);
* ``tmp/`` -- uploads in progress; ``quarantined/objects[-N]/`` -- corrupt data.

The object hash is ``hash_path_hex(seed, b"/a/c/o")``: request text never
becomes a path component. Every body carries xxh3-64 checksums of each
1 MiB chunk; reads verify each chunk before it leaves the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import xxhash
from nubis.daemons.storage import partindex
from nubis.daemons.storage.lmdbstore import GroupCommitter, open_env
from nubis.daemons.storage.protocol import StorageError
from nubis.fastpath.durable import place_durably

LOG = logging.getLogger(__name__)

#: Bytes covered by one stored checksum.
CHUNK = 1 << 20
#: LMDB sub-databases of an object device.
DBS = ("meta", "pending", "expiry", "parts")


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
        self.parts_db = self.env.open_db(b"parts")
        self._index_records()
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
        parts_db = self.parts_db

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
            txn.put(partindex.index_key(policy, new.part, hash_hex),
                    partindex.index_value(new.ts, new.deleted), db=parts_db)
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

    def records(self, after: bytes, limit: int) -> list[tuple[bytes, ObjectRecord]]:
        """Return up to ``limit`` ``(key, record)`` after key ``after``, in key order."""
        out: list[tuple[bytes, ObjectRecord]] = []
        with self.env.begin(db=self.meta_db, buffers=False) as txn:
            cur = txn.cursor()
            if not (cur.set_range(after) if after else cur.first()):
                return out
            for k, v in cur:
                if k == after:
                    continue
                out.append((k, ObjectRecord.unpack(v)))
                if len(out) >= limit:
                    break
        return out

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

    async def write_tombstone(self, dest_dir: Path, ts: str) -> None:
        """Create an empty ``<ts>.ts`` in ``dest_dir`` durably (same placement as data)."""
        fd, tmp = await self.run(self.new_temp)
        await self.place(fd, tmp, dest_dir, f"{ts}.ts")

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
        await self.forget(policy, hash_hex, rec.ts)

    async def forget(self, policy: int, hash_hex: str, ts: str) -> bool:
        """Drop an object's record and index rows if it is still at ``ts``; True if dropped."""
        key = object_key(policy, hash_hex)
        meta_db, parts_db, expiry_db = self.meta_db, self.parts_db, self.expiry_db

        def drop(txn: Any) -> bool:
            raw = txn.get(key, db=meta_db)
            if raw is None:
                return False
            rec = ObjectRecord.unpack(raw)
            if rec.ts != ts:
                return False
            txn.delete(key, db=meta_db)
            txn.delete(partindex.index_key(policy, rec.part, hash_hex), db=parts_db)
            at = _delete_at(rec)
            if at is not None:
                txn.delete(expiry_key(at, key), db=expiry_db)
            return True

        return bool(await self.committer.submit(drop))

    # -- the partition index (replication) ---------------------------------------
    def _index_records(self) -> None:
        """Build the ``parts`` index of a device written before it existed."""
        with self.env.begin(write=True) as txn:
            if txn.stat(self.parts_db)["entries"] or not txn.stat(self.meta_db)["entries"]:
                return
            for key, raw in txn.cursor(db=self.meta_db):
                rec = ObjectRecord.unpack(raw)
                txn.put(partindex.index_key(key[0], rec.part, key[1:].hex()),
                        partindex.index_value(rec.ts, rec.deleted), db=self.parts_db)

    def suffix_hashes(self, policy: int, part: int) -> dict[str, str]:
        """Return ``{suffix: hash}`` of a partition (see :mod:`partindex`)."""
        with self.env.begin(buffers=False) as txn:
            return partindex.suffix_hashes(txn, self.parts_db, policy, part)

    def entries(self, policy: int, part: int,
                suffixes: set[str] | None = None) -> dict[str, tuple[str, bool]]:
        """Return ``{hash: (timestamp, deleted)}`` of a partition's objects."""
        with self.env.begin(buffers=False) as txn:
            return partindex.entries(txn, self.parts_db, policy, part, suffixes)

    def partitions(self) -> list[tuple[int, int]]:
        """Return every ``(policy, partition)`` holding objects or tombstones."""
        with self.env.begin(buffers=False) as txn:
            return partindex.partitions(txn, self.parts_db)

    def remove_files(self, policy: int, part: int, hash_hex: str, upto: str) -> None:
        """Remove an object's files named ``<= upto``, then its dirs if empty (blocking).

        A newer file (a write placed but not yet committed) is kept.
        """
        hdir = self.hash_dir(policy, part, hash_hex)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(hdir):
                if entry.name.rsplit(".", 1)[0] <= upto:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        for d in (hdir, hdir.parent, hdir.parent.parent):
            try:
                os.rmdir(d)
            except OSError:
                break



class TempFile(enum.Enum):
    """Where a :class:`DiskFileWriter`'s temp file is in its life."""

    #: Nothing on disk yet (the body is still in memory, or no write job ran).
    NONE = "none"
    #: Open under ``tmp/`` and being written.
    OPEN = "open"
    #: Renamed into its hash dir and synced (its fd is closed).
    PLACED = "placed"
    #: Removed: the upload will not be stored.
    DISCARDED = "discarded"


class CorruptDataError(DiskError):
    """A chunk of a stored body failed its checksum (the object was quarantined)."""


class DiskFile:
    """One object's place on one device: ``(policy, partition, hash)``.

    Hands out a :class:`DiskFileWriter` (open -> write -> place durably -> commit
    the record) and a :class:`DiskFileReader` (open -> metadata -> ranged,
    verified reads), so the object server, the replicator, the reconstructor and
    EC fragment archives all store and read objects the same way.
    """

    def __init__(self, device: ObjectDevice, policy: int, part: int, hash_hex: str) -> None:
        self.device = device
        self.policy = policy
        self.part = part
        self.hash_hex = hash_hex

    @property
    def hash_dir(self) -> Path:
        """Return ``objects[-N]/<part>/<suffix>/<hash>``."""
        return self.device.hash_dir(self.policy, self.part, self.hash_hex)

    def record(self) -> ObjectRecord | None:
        """Return the stored record (object or tombstone), or None."""
        return self.device.get(self.policy, self.hash_hex)

    def writer(self, inline_max: int, *, hash_md5: bool = True) -> DiskFileWriter:
        """Start a new body (kept in LMDB up to ``inline_max`` bytes)."""
        return DiskFileWriter(self, inline_max, hash_md5=hash_md5)

    def reader(self, rec: ObjectRecord) -> DiskFileReader:
        """Read the body that ``rec`` (from :meth:`record`) describes."""
        return DiskFileReader(self, rec)

    async def commit(self, rec: ObjectRecord, updates: list[PendingUpdate],
                     merge: Callable[[ObjectRecord], ObjectRecord] | None = None,
                     ) -> tuple[ObjectRecord | None, list[bytes]]:
        """Store ``rec`` with its container updates; see :meth:`ObjectDevice.commit_record`."""
        return await self.device.commit_record(self.policy, self.hash_hex, rec, updates, merge)

    async def delete(self, tomb: ObjectRecord,
                     updates: list[PendingUpdate]) -> tuple[ObjectRecord | None, list[bytes]]:
        """Write the tombstone file, commit ``tomb``, drop older files.

        Raises:
            ConflictError: the stored timestamp is >= ``tomb.ts``.
        """
        await self.device.write_tombstone(self.hash_dir, tomb.ts)
        committed = await self.commit(tomb, updates)
        self.drop_older(tomb.ts)
        return committed

    def drop_older(self, ts: str) -> None:
        """Remove this object's files older than ``ts`` in the background (best effort)."""
        self.device.executor.submit(self.device.cleanup, self.hash_dir, ts)

    async def quarantine(self, rec: ObjectRecord, reason: str) -> None:
        """Move the object's files aside and drop its record (if unchanged)."""
        await self.device.quarantine(self.policy, self.hash_hex, rec, reason)


class DiskFileWriter:
    """A body being stored: in memory while small, then in a temp file.

    :meth:`write` each received piece, :meth:`close` at the end of the body,
    then :meth:`commit` the record (which places the file durably first) or
    :meth:`discard` it. MD5 (unless the sender vouches for it, see
    ``X-Backend-Body-Xxh3``), the per-chunk checksums and the writes of a
    spilled body run in an I/O thread.

    PERF: past the inline threshold, MD5, the chunk checksums and the write
    run in an I/O thread (hashlib releases the GIL), one batch at a time and in
    order, so a 1 MiB PUT costs the event loop almost nothing
    (``python -m nubis.bench swift``).
    """

    def __init__(self, df: DiskFile, inline_max: int, *, hash_md5: bool = True) -> None:
        self.df = df
        self.inline_max = inline_max
        #: None when the sender vouches for the MD5.
        self.md5 = hashlib.md5(usedforsecurity=False) if hash_md5 else None
        #: xxh3-64 of the whole body (kept when the MD5 is not computed here).
        self.whole = None if hash_md5 else xxhash.xxh3_64()
        self.sums: list[int] = []
        self.size = 0
        #: The whole body, when it stays inline (after :meth:`close`).
        self.body = b""
        self.temp = TempFile.NONE
        self._fd = -1
        self._tmp_path = ""
        self._parts: list[bytes] = []
        self._pending = 0
        #: Past the inline threshold: the body goes to a temp file.
        self._spilling = False
        self._job: asyncio.Future[None] | None = None
        self._chunk_hash = xxhash.xxh3_64()
        self._chunk_fill = 0

    @property
    def inline(self) -> bool:
        """Tell whether the body is kept in memory (stored in LMDB)."""
        return not self._spilling

    async def write(self, piece: bytes) -> None:
        """Add one received piece of the body."""
        self.size += len(piece)
        self._parts.append(piece)
        self._pending += len(piece)
        if not self._spilling:
            if self.size <= self.inline_max:
                return
            self._spilling = True  # the first write job creates the temp file
        if self._pending >= CHUNK:
            await self._spill()

    async def close(self) -> None:
        """End the body: wait for the last write and seal the last chunk."""
        if self._spilling:
            await self._spill()
            if self._job is not None:
                await self._job
                self._job = None
            if self._chunk_fill:
                self._close_chunk()
            return
        body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = []
        if self.md5 is not None:
            self.md5.update(body)
        if body:
            self.sums.append(checksum(body))
        self.body = body

    def body_xxh3(self) -> int:
        """Return the xxh3-64 of the whole body (only when the MD5 is not computed)."""
        if not self._spilling:
            return self.sums[0] if self.sums else checksum(b"")
        assert self.whole is not None
        return int(self.whole.intdigest())

    async def commit(self, rec: ObjectRecord,
                     updates: list[PendingUpdate]) -> tuple[ObjectRecord | None, list[bytes]]:
        """Place a spilled body durably, then commit ``rec`` (named ``<ts>.data``).

        Older files of the object are removed afterwards; when a newer write
        won meanwhile, the file just placed is removed instead.

        Raises:
            ConflictError: the stored timestamp is >= ``rec.ts``.
        """
        df = self.df
        filename = f"{rec.data_timestamp}.data"
        if not self.inline:
            await self._place(df.hash_dir, filename)
        try:
            old, keys = await df.commit(rec, updates)
        except ConflictError as exc:
            if not self.inline and exc.existing_ts != rec.ts:
                # a newer write won meanwhile: our file is garbage
                df.device.executor.submit(_unlink_quietly, df.hash_dir / filename)
            raise
        if old is not None and (old.inline is None or not self.inline):
            # PERF: only touch the filesystem when a file may exist
            df.drop_older(rec.data_timestamp)
        return old, keys

    async def discard(self) -> None:
        """Remove the temp file of a body that will not be stored (no-op otherwise)."""
        if self._job is not None:
            with contextlib.suppress(Exception):
                await self._job
            self._job = None
        if self.temp is TempFile.OPEN:
            self.temp = TempFile.DISCARDED
            await self.df.device.run(_remove_temp, self._fd, self._tmp_path)

    async def _spill(self) -> None:
        parts, self._parts, self._pending = self._parts, [], 0
        if self._job is not None:
            await self._job  # keeps order and bounds memory to ~2 batches
            self._job = None
        if parts:
            self._job = asyncio.get_running_loop().run_in_executor(
                self.df.device.executor, self._write, parts)

    def _write(self, parts: list[bytes]) -> None:
        """Hash and write one batch of received pieces (runs in an I/O thread).

        PERF: the pieces are joined first (one memcpy), so MD5, xxh3 and the
        write each release and retake the GIL once per batch instead of once
        per received piece: per-piece hashing made the I/O threads and the
        event loop trade the GIL (futex storms, ~4 ms of system time per
        1 MiB replica write, ``python -m nubis.bench swift`` 1 MiB PUT).
        """
        if self.temp is TempFile.NONE:
            self._fd, self._tmp_path = self.df.device.new_temp()
            self.temp = TempFile.OPEN
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if self.md5 is not None:
            self.md5.update(data)
        else:
            assert self.whole is not None
            self.whole.update(data)
        view = memoryview(data)
        while view:
            room = CHUNK - self._chunk_fill
            piece, view = view[:room], view[room:]
            self._chunk_hash.update(piece)
            self._chunk_fill += len(piece)
            if self._chunk_fill == CHUNK:
                self._close_chunk()
        _write_all(self._fd, data)

    def _close_chunk(self) -> None:
        self.sums.append(int(self._chunk_hash.intdigest()))
        self._chunk_hash.reset()
        self._chunk_fill = 0

    async def _place(self, dest_dir: Path, filename: str) -> None:
        """Move the finished temp file into place, durably."""
        assert self.temp is TempFile.OPEN
        self.temp = TempFile.PLACED
        await self.df.device.place(self._fd, self._tmp_path, dest_dir, filename)


class DiskFileReader:
    """A stored object's body: metadata, then ranged reads verified chunk by chunk.

    A corrupt or missing chunk quarantines the object: a read that has not
    started answers ``None`` (the caller says 404 so the proxy tries another
    replica); a stream already under way raises :class:`CorruptDataError`, so
    the connection is dropped and no corrupt byte is ever sent.
    """

    def __init__(self, df: DiskFile, rec: ObjectRecord) -> None:
        self.df = df
        #: The object's metadata.
        self.metadata = rec

    async def read(self, start: int, length: int) -> bytes | AsyncIterator[bytes] | None:
        """Return bytes ``[start, start + length)``: whole or as a verified stream.

        ``None`` means the object was corrupt (and is now quarantined).
        """
        rec = self.metadata
        if rec.inline is not None:
            if rec.size and (len(rec.inline) != rec.size or checksum(rec.inline) != rec.sums[0]):
                await self.df.quarantine(rec, "inline checksum mismatch")
                return None
            if start == 0 and length == rec.size:
                return rec.inline
            return rec.inline[start:start + length]
        first = start // CHUNK
        last = (start + length - 1) // CHUNK if length else first
        # Verify the first chunk before committing to an answer.
        head = await self._chunk(first)
        if head is None:
            await self.df.quarantine(rec, "data checksum mismatch or missing")
            return None
        if last == first:
            off = start - first * CHUNK
            return head if (off == 0 and length == len(head)) else head[off:off + length]
        return self._stream(head, start, length)

    async def _chunk(self, index: int) -> bytes | None:
        """Read and verify chunk ``index``; None when corrupt or missing."""
        rec, dev = self.metadata, self.df.device
        want = min(CHUNK, rec.size - index * CHUNK)
        path = dev.data_path(self.df.policy, rec, self.df.hash_hex)
        try:
            data: bytes = await dev.run(dev.read_range, path, index * CHUNK, want)
        except OSError:
            return None
        if len(data) != want or index >= len(rec.sums) or checksum(data) != rec.sums[index]:
            return None
        return data

    async def _stream(self, head: bytes, start: int, length: int) -> AsyncIterator[bytes]:
        index = start // CHUNK
        data: bytes | None = head
        sent = 0
        off = start - index * CHUNK
        while sent < length:
            assert data is not None
            nxt = None
            if sent + len(data) - off < length:
                # PERF: read ahead the next chunk while this one is sent.
                nxt = asyncio.ensure_future(self._chunk(index + 1))
            piece = data[off:off + (length - sent)] if off or len(data) - off > length - sent \
                else data
            yield piece
            sent += len(piece)
            off = 0
            index += 1
            if nxt is None:
                break
            data = await nxt
            if data is None:
                await self.df.quarantine(self.metadata, f"chunk {index} checksum mismatch")
                raise CorruptDataError("corrupt object data")


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write ``data`` fully to ``fd``."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _remove_temp(fd: int, path: str) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(path)


__all__ = ["CHUNK", "ConflictError", "CorruptDataError", "DiskFile", "DiskFileReader",
           "DiskFileWriter", "ObjectDevice", "ObjectRecord", "PendingUpdate", "TempFile",
           "checksum", "object_key"]


def _packb(value: Any) -> bytes:
    """Encode with msgpack (binary-safe)."""
    return bytes(msgpack.packb(value, use_bin_type=True))
