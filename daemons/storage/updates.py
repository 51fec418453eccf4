"""Container updates sent by the object server, with a durable pending queue.

A PUT/DELETE commits its container update into the device's LMDB ``pending``
database in the same transaction as the object's metadata, answers the
client, then sends the update in the background; the pending entry is cleared
once the container server acknowledged it. Entries that could not be sent
(container server down) stay queued and are retried by the object server's
sweep every ``update_sweep_interval`` seconds -- the updater daemon of the
durability issue will drain the same queue.

PERF: updates bound for the same container server and device within a few
milliseconds travel as one ``POST /<device>/_rows`` batch (a nubis extension
of the backend protocol) that the container server applies in one LMDB
transaction; a server that does not know the batch call gets single Swift-style
requests (``python -m nubis.bench swift``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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


async def send_update(client: HTTPClient, update: PendingUpdate, timeout: float) -> bool:
    """Send one container update as a Swift-style request; True when settled."""
    path = f"/{update.device}/{update.partition}{update.path}"
    try:
        resp = await client.fetch(update.ip, update.port, update.method, path, update.headers,
                                  timeout=timeout)
    except (HTTPClientError, OSError) as exc:
        LOG.info("container update %s %s to %s:%d failed: %s", update.method, update.path,
                 update.ip, update.port, exc)
        return False
    if delivered(resp.status):
        return True
    LOG.warning("container update %s %s to %s:%d: %d", update.method, update.path,
                update.ip, update.port, resp.status)
    return False


class UpdateSender:
    """Send container updates in the background (batched) and clear them when done."""

    def __init__(self, client: HTTPClient, timeout: float, sweep_interval: float = 30.0,
                 batch_delay: float = 0.002, batch_max: int = 512) -> None:
        self.client = client
        self.timeout = timeout
        self.sweep_interval = sweep_interval
        self.batch_delay = batch_delay
        self.batch_max = batch_max
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._in_flight: set[bytes] = set()
        self._queue: dict[Target, list[Item]] = defaultdict(list)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._no_batch: set[tuple[str, int]] = set()

    # -- sending ------------------------------------------------------------------
    def send(self, device: ObjectDevice, items: list[tuple[bytes, PendingUpdate]]) -> None:
        """Queue ``items`` (pending key, update) for sending soon; do not wait."""
        if not items:
            return
        for key, update in items:
            self._in_flight.add(key)
            self._queue[(update.ip, update.port, update.device)].append((device, key, update))
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self.batch_delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        queue, self._queue = self._queue, defaultdict(list)
        loop = asyncio.get_running_loop()
        for target, items in queue.items():
            for start in range(0, len(items), self.batch_max):
                task = loop.create_task(self._deliver(target, items[start:start + self.batch_max]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, target: Target, items: list[Item]) -> int:
        """Send ``items`` to one container server device; clear the settled ones."""
        try:
            oks = await self._send_batch(target, [u for _, _, u in items])
        finally:
            for _, key, _ in items:
                self._in_flight.discard(key)
        done: dict[int, tuple[ObjectDevice, list[bytes]]] = {}
        for (device, key, _), ok in zip(items, oks, strict=True):
            if ok:
                done.setdefault(id(device), (device, []))[1].append(key)
        for device, keys in done.values():
            device.clear_pending(keys)
        return sum(oks)

    async def _send_batch(self, target: Target, updates: list[PendingUpdate]) -> list[bool]:
        ip, port, device = target
        if len(updates) == 1 or (ip, port) in self._no_batch:
            return list(await asyncio.gather(
                *(send_update(self.client, u, self.timeout) for u in updates)))
        body = msgpack.packb([[u.method, u.path, u.headers] for u in updates])
        try:
            resp = await self.client.fetch(
                ip, port, "POST", f"/{device}{ROWS_BATCH_SUFFIX}",
                {"Content-Type": "application/x-msgpack"}, body, timeout=self.timeout)
        except (HTTPClientError, OSError) as exc:
            LOG.info("container update batch to %s:%d failed: %s", ip, port, exc)
            return [False] * len(updates)
        if resp.status in (404, 405, 501):
            self._no_batch.add((ip, port))  # not a nubis container server
            return await self._send_batch(target, updates)
        if resp.status == 400:  # something in the batch is malformed: go one by one
            return list(await asyncio.gather(
                *(send_update(self.client, u, self.timeout) for u in updates)))
        if resp.status != 200:
            return [False] * len(updates)
        try:
            statuses = msgpack.unpackb(resp.body)
        except (ValueError, msgpack.UnpackException):
            return [False] * len(updates)
        if not isinstance(statuses, list) or len(statuses) != len(updates):
            return [False] * len(updates)
        return [isinstance(s, int) and delivered(s) for s in statuses]

    # -- retrying what is queued on disk -----------------------------------------
    def start_sweeper(self, devices: Any) -> None:
        """Retry queued updates of every device periodically."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(devices))

    async def _sweep_loop(self, devices: Any) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            for device in devices.all():
                with contextlib.suppress(Exception):
                    await self.sweep(device)

    async def sweep(self, device: ObjectDevice, limit: int = 1000) -> int:
        """Send queued updates of ``device`` now; return how many were delivered."""
        items = [(k, u) for k, u in device.pending_updates(limit) if k not in self._in_flight]
        if not items:
            return 0
        groups: dict[Target, list[Item]] = defaultdict(list)
        for key, update in items:
            self._in_flight.add(key)
            groups[(update.ip, update.port, update.device)].append((device, key, update))
        counts = await asyncio.gather(*(self._deliver(t, group) for t, group in groups.items()))
        return sum(counts)

    async def close(self) -> None:
        """Stop the sweeper, send what is queued and wait for in-flight sends (bounded)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout + 1)
