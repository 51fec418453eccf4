"""Container updates sent by the object server, with a durable pending queue.

A PUT/DELETE commits its container update into the device's LMDB ``pending``
database in the same transaction as the object's metadata, then sends it and
waits for the container server (at most ``update_timeout`` seconds) before
answering, like Swift -- so a listing right after a PUT shows the object and
a container DELETE right after deleting its objects succeeds. The pending
entry is cleared once the container server acknowledged it. Entries that
could not be sent (container server down or slow) stay queued and are retried
by the object updater daemon (:mod:`nubis.daemons.storage.updater`), never
by the object server itself.

PERF: while one request to a container server device is in flight, further
updates for it queue up and then travel together as one
``POST /<device>/_rows`` batch (a nubis extension of the backend protocol)
that the container server applies in one LMDB transaction: adaptive batching
with no added delay. A server that does not know the batch call gets single
Swift-style requests (``python -m nubis.bench swift``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

import msgpack
from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.daemons.storage.diskfile import ObjectDevice, PendingUpdate
from nubis.daemons.storage.protocol import ROWS_BATCH_SUFFIX

LOG = logging.getLogger(__name__)

Target = tuple[str, int, str]  # container server ip, port, device
Item = tuple[ObjectDevice, bytes, PendingUpdate]


def delivered(status: int) -> bool:
    """Tell whether a container server's answer settles an update.

    A 404 (container gone) counts as delivered: retrying cannot help.
    """
    return 200 <= status < 300 or status == 404


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class UnreachableError(HTTPClientError):
    """The container server could not be reached (connect error, timeout)."""


async def send_update(client: HTTPClient, update: PendingUpdate, timeout: float) -> bool:
    """Send one container update as a Swift-style request; True when settled.

    Raises:
        UnreachableError: the server did not answer.
    """
    path = f"/{update.device}/{update.partition}{update.path}"
    try:
        resp = await client.fetch(update.ip, update.port, update.method, path, update.headers,
                                  timeout=timeout)
    except (HTTPClientError, OSError) as exc:
        raise UnreachableError(f"{update.ip}:{update.port}: {exc}") from exc
    if delivered(resp.status):
        return True
    LOG.warning("container update %s %s to %s:%d: %d", update.method, update.path,
                update.ip, update.port, resp.status)
    return False


class UpdateSender:
    """Send container updates (batched per target) and clear them when done."""

    def __init__(self, client: HTTPClient, timeout: float, batch_max: int = 512,
                 down_interval: float = 10.0) -> None:
        self.client = client
        #: After a failed connection, skip a container server for this long
        #: (its updates wait in the durable queue for the updater).
        self.down_interval = down_interval
        self._down: dict[tuple[str, int], float] = {}
        self.timeout = timeout
        self.batch_max = batch_max
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight: set[bytes] = set()
        self._queues: dict[Target, list[tuple[Item, asyncio.Future[bool]]]] = {}
        self._no_batch: set[tuple[str, int]] = set()

    # -- sending ------------------------------------------------------------------
    def send(self, device: ObjectDevice, items: list[tuple[bytes, PendingUpdate]],
             ) -> list[asyncio.Future[bool]]:
        """Queue ``items`` (pending key, update); return futures of their delivery."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bool]] = []
        for key, update in items:
            self._in_flight.add(key)
            fut: asyncio.Future[bool] = loop.create_future()
            futures.append(fut)
            target = (update.ip, update.port, update.device)
            queue = self._queues.get(target)
            if queue is None:
                self._queues[target] = [((device, key, update), fut)]
                task = loop.create_task(self._pump(target))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                queue.append(((device, key, update), fut))
        return futures

    async def wait(self, futures: list[asyncio.Future[bool]]) -> bool:
        """Wait (bounded by the timeout) for deliveries; True when all settled."""
        if not futures:
            return True
        # PERF: one waiter future and one timer, no wait_for/shield/gather
        # tasks (python -m nubis.bench swift, 4 KiB PUT). The delivery futures
        # are never cancelled: on timeout the updates stay queued durably and
        # the object updater retries them.
        pending = [f for f in futures if not f.done()]
        if pending:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            left = [len(pending)]

            def one_done(_: asyncio.Future[bool]) -> None:
                left[0] -= 1
                if left[0] == 0 and not waiter.done():
                    waiter.set_result(None)

            for f in pending:
                f.add_done_callback(one_done)
            timer = loop.call_later(self.timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                for f in pending:
                    f.remove_done_callback(one_done)
        return all(f.done() and f.result() for f in futures)

    async def _pump(self, target: Target) -> None:
        """Send everything queued for ``target``, one batch at a time."""
        try:
            while True:
                queue = self._queues.get(target)
                if not queue:
                    return
                batch = queue[:self.batch_max]
                del queue[:self.batch_max]
                try:
                    oks = await self._deliver(target, [item for item, _ in batch])
                except Exception:  # never leave a waiter hanging
                    LOG.exception("container update batch failed")
                    oks = [False] * len(batch)
                for (_, fut), ok in zip(batch, oks, strict=True):
                    if not fut.done():
                        fut.set_result(ok)
        finally:
            queue = self._queues.pop(target, None)
            for _, fut in queue or ():
                if not fut.done():
                    fut.set_result(False)

    async def _deliver(self, target: Target, items: list[Item],
                       forced: bool = False) -> list[bool]:
        """Send ``items`` to one container server device; clear the settled ones."""
        try:
            oks = await self._send_batch(target, [u for _, _, u in items], forced)
        finally:
            for _, key, _ in items:
                self._in_flight.discard(key)
        done: dict[int, tuple[ObjectDevice, list[bytes]]] = {}
        for (device, key, _), ok in zip(items, oks, strict=True):
            if ok:
                done.setdefault(id(device), (device, []))[1].append(key)
        for device, keys in done.values():
            device.clear_pending(keys)
        return oks

    async def _send_batch(self, target: Target, updates: list[PendingUpdate],
                          forced: bool = False) -> list[bool]:
        """Send updates to one target; all False while it is marked unreachable."""
        ip, port, _ = target
        if not forced and self._down.get((ip, port), 0.0) > time.monotonic():
            return [False] * len(updates)  # PERF: do not make every PUT wait for it
        try:
            oks = await self._send_batch_now(target, updates)
        except UnreachableError as exc:
            LOG.info("container server %s:%d unreachable, updates stay queued: %s",
                     ip, port, exc)
            self._down[(ip, port)] = time.monotonic() + self.down_interval
            return [False] * len(updates)
        self._down.pop((ip, port), None)
        return oks

    async def _singles(self, updates: list[PendingUpdate]) -> list[bool]:
        return list(await asyncio.gather(
            *(send_update(self.client, u, self.timeout) for u in updates)))

    async def _send_batch_now(self, target: Target, updates: list[PendingUpdate]) -> list[bool]:
        ip, port, device = target
        if len(updates) == 1 or (ip, port) in self._no_batch:
            return await self._singles(updates)
        body = msgpack.packb([[u.method, u.path, u.headers] for u in updates])
        try:
            resp = await self.client.fetch(
                ip, port, "POST", f"/{device}{ROWS_BATCH_SUFFIX}",
                {"Content-Type": "application/x-msgpack"}, body, timeout=self.timeout)
        except (HTTPClientError, OSError) as exc:
            raise UnreachableError(f"{ip}:{port}: {exc}") from exc
        if resp.status in (404, 405, 501):
            self._no_batch.add((ip, port))  # not a nubis container server
            return await self._singles(updates)
        if resp.status == 400:  # something in the batch is malformed: go one by one
            return await self._singles(updates)
        if resp.status != 200:
            return [False] * len(updates)
        try:
            statuses = msgpack.unpackb(resp.body)
        except (ValueError, msgpack.UnpackException):
            return [False] * len(updates)
        if not isinstance(statuses, list) or len(statuses) != len(updates):
            return [False] * len(updates)
        return [isinstance(s, int) and delivered(s) for s in statuses]

    # -- retrying what is queued on disk (the object updater) ----------------------
    async def sweep(self, device: ObjectDevice, limit: int = 1000,
                    items: list[tuple[bytes, PendingUpdate]] | None = None) -> int:
        """Send queued updates of ``device`` (or just ``items``); return how many settled."""
        if items is None:
            items = device.pending_updates(limit)
        items = [(k, u) for k, u in items if k not in self._in_flight]
        if not items:
            return 0
        groups: dict[Target, list[Item]] = defaultdict(list)
        for key, update in items:
            self._in_flight.add(key)
            groups[(update.ip, update.port, update.device)].append((device, key, update))
        results = await asyncio.gather(*(self._deliver(t, group, forced=True)
                                         for t, group in groups.items()))
        return sum(sum(oks) for oks in results)

    async def close(self) -> None:
        """Wait for in-flight sends (bounded)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout + 1)
