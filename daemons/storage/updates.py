"""Container updates sent by the object server, with a durable pending queue.

A PUT/DELETE commits its container update into the device's LMDB ``pending``
database in the same transaction as the object's metadata, answers the
client, then sends the update in the background; the pending entry is cleared
once the container server acknowledged it. Entries that could not be sent
(container server down) stay queued and are retried by the object server's
sweep every ``sweep_interval`` seconds -- the updater daemon of the
durability issue will drain the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.daemons.storage.diskfile import ObjectDevice, PendingUpdate

LOG = logging.getLogger(__name__)


async def send_update(client: HTTPClient, update: PendingUpdate, timeout: float) -> bool:
    """Send one container update; return True when the container server took it.

    A 404 (container gone) counts as delivered: retrying cannot help.
    """
    path = f"/{update.device}/{update.partition}{update.path}"
    try:
        resp = await client.fetch(update.ip, update.port, update.method, path, update.headers,
                                  timeout=timeout)
    except (HTTPClientError, OSError) as exc:
        LOG.info("container update %s %s to %s:%d failed: %s", update.method, update.path,
                 update.ip, update.port, exc)
        return False
    if 200 <= resp.status < 300 or resp.status == 404:
        return True
    LOG.warning("container update %s %s to %s:%d: %d", update.method, update.path,
                update.ip, update.port, resp.status)
    return False


class UpdateSender:
    """Send container updates in the background and clear them when done."""

    def __init__(self, client: HTTPClient, timeout: float, sweep_interval: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout
        self.sweep_interval = sweep_interval
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._in_flight: set[bytes] = set()

    def send(self, device: ObjectDevice, items: list[tuple[bytes, PendingUpdate]]) -> None:
        """Send ``items`` (pending key, update) without waiting."""
        if not items:
            return
        task = asyncio.get_running_loop().create_task(self._send(device, items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, device: ObjectDevice, items: list[tuple[bytes, PendingUpdate]]) -> None:
        done: list[bytes] = []
        for key, _ in items:
            self._in_flight.add(key)
        try:
            results = await asyncio.gather(
                *(send_update(self.client, u, self.timeout) for _, u in items))
            done = [k for (k, _), ok in zip(items, results, strict=True) if ok]
        finally:
            for key, _ in items:
                self._in_flight.discard(key)
        if done:
            device.clear_pending(done)

    def start_sweeper(self, devices: Any) -> None:
        """Retry queued updates of every opened device periodically."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop(devices))

    async def _sweep_loop(self, devices: Any) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            for device in list(devices.open.values()):
                with contextlib.suppress(Exception):
                    await self.sweep(device)

    async def sweep(self, device: ObjectDevice, limit: int = 1000) -> int:
        """Send queued updates of ``device`` now; return how many were delivered."""
        items = [(k, u) for k, u in device.pending_updates(limit) if k not in self._in_flight]
        if not items:
            return 0
        results = await asyncio.gather(*(send_update(self.client, u, self.timeout)
                                         for _, u in items))
        done = [k for (k, _), ok in zip(items, results, strict=True) if ok]
        if done:
            device.clear_pending(done)
        return len(done)

    async def close(self) -> None:
        """Stop the sweeper and wait for in-flight sends (bounded)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout + 1)
