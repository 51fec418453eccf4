"""LMDB environments per device and the group committer that writes them.

Every write to a device's LMDB environment is a small function run inside a
write transaction by one writer thread. Writes that arrive while a commit
is in flight are folded into the next transaction, so N concurrent PUTs cost
one ``fdatasync`` (group commit). ``submit`` resolves only after the commit
is durable; ``submit_lazy`` rides along with the next commit (used for
bookkeeping that may be lost on a crash, e.g. clearing a sent update).

PERF: the group commit is what makes small PUTs cheap
(``python -m nubis.bench swift``); reads use short read transactions on the
event-loop thread because an LMDB lookup costs microseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

import lmdb

LOG = logging.getLogger(__name__)

T = TypeVar("T")
WriteFn = Callable[[Any], Any]  # called with an lmdb.Transaction (write)


def open_env(path: Path, dbs: tuple[str, ...], *, map_mib: int, sync: bool) -> lmdb.Environment:
    """Open (creating) the LMDB environment at directory ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=map_mib << 20, max_dbs=max(len(dbs), 1) + 2,
                    sync=sync, metasync=sync, readahead=False, max_readers=512,
                    subdir=True, lock=True)
    # Unsynced environments still survive a killed process (the OS has the
    # pages); only an OS crash can lose the last commits before sync().
    return env


class GroupCommitter:
    """Serialize writes to one LMDB environment and batch their commits."""

    def __init__(self, env: lmdb.Environment, executor: Executor, *, window: float = 0.0,
                 max_batch: int = 256, in_loop: bool = False) -> None:
        self.env = env
        self.executor = executor
        #: Commit on the event-loop thread (for environments opened without
        #: sync, where a commit costs microseconds and a thread hop costs more).
        self.in_loop = in_loop
        self.window = window
        self.max_batch = max_batch
        self._pending: list[tuple[WriteFn, asyncio.Future[Any] | None]] = []
        self._lazy: list[WriteFn] = []
        self._running = False
        self._lazy_timer: asyncio.TimerHandle | None = None
        self.commits = 0
        self.writes = 0
        self._synced_at = 0

    async def submit(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(txn)`` in a write transaction; return its result once durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append((fn, fut))
        if not self._running:
            self._start(loop)
        return await fut

    def submit_lazy(self, fn: WriteFn) -> None:
        """Queue ``fn(txn)`` for the next commit without waiting for it."""
        self._lazy.append(fn)
        if not self._running and self._lazy_timer is None:
            loop = asyncio.get_running_loop()
            self._lazy_timer = loop.call_later(1.0, self._lazy_flush, loop)

    def _lazy_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._lazy_timer = None
        if not self._running and (self._lazy or self._pending):
            self._start(loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._running = True
        loop.create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.in_loop:
                await asyncio.sleep(0)  # let this loop tick's other writers join the batch
            while self._pending or self._lazy:
                if self.window > 0 and len(self._pending) < self.max_batch:
                    await asyncio.sleep(self.window)
                batch = self._pending[:self.max_batch]
                del self._pending[:self.max_batch]
                lazy, self._lazy = self._lazy, []
                try:
                    if self.in_loop:
                        results = self._commit(batch, lazy)
                    else:
                        results = await loop.run_in_executor(self.executor, self._commit, batch,
                                                             lazy)
                except BaseException as exc:  # commit failed: every writer learns it
                    if isinstance(exc, (lmdb.DiskError, lmdb.MapFullError)):
                        LOG.error("LMDB commit failed: %s", exc)  # a full device: no trace
                    else:
                        LOG.exception("LMDB commit failed")
                    for _, fut in batch:
                        if fut is not None and not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), res in zip(batch, results, strict=True):
                    if fut is None or fut.done():
                        continue
                    if isinstance(res, _Failed):
                        fut.set_exception(res.exc)
                    else:
                        fut.set_result(res)
        finally:
            self._running = False

    def _commit(self, batch: list[tuple[WriteFn, Any]], lazy: list[WriteFn]) -> list[Any]:
        """Commit a batch; if LMDB fails it, retry each write in its own transaction.

        A write that makes LMDB fail (e.g. the map is full) fails alone; the
        others of its batch still commit.
        """
        try:
            return self._commit_once(batch, lazy)
        except lmdb.Error:
            if len(batch) + len(lazy) <= 1:
                raise
        results: list[Any] = []
        for fn in lazy:
            try:
                self._commit_once([], [fn])
            except lmdb.Error:
                LOG.exception("lazy LMDB write failed")
        for item in batch:
            try:
                results.extend(self._commit_once([item], []))
            except lmdb.Error as exc:
                results.append(_Failed(exc))
        return results

    def _commit_once(self, batch: list[tuple[WriteFn, Any]], lazy: list[WriteFn]) -> list[Any]:
        results: list[Any] = []
        with self.env.begin(write=True) as txn:
            for fn in lazy:
                try:
                    fn(txn)
                except lmdb.Error:
                    raise
                except Exception:
                    LOG.exception("lazy LMDB write failed")
            for fn, _ in batch:
                try:
                    results.append(fn(txn))
                except lmdb.Error:
                    raise  # the transaction is unusable now: abort it
                except Exception as exc:
                    results.append(_Failed(exc))
        self.commits += 1
        self.writes += len(batch)
        return results

    async def close(self) -> None:
        """Flush queued lazy writes."""
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
            self._lazy_timer = None
        while self._running:
            await asyncio.sleep(0.005)
        if self._lazy:
            await self.submit(lambda txn: None)

    async def sync(self) -> None:
        """Flush the environment to disk if anything was committed since the last call."""
        if self.commits != self._synced_at:
            self._synced_at = self.commits
            await asyncio.get_running_loop().run_in_executor(self.executor, self.env.sync, True)


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
