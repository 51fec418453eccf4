"""Background work of an API process: tasks kept referenced, failures logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any


class TaskSet:
    """The background tasks an API service started (a build, a download, ...)."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` in the background (kept referenced; failures logged)."""
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.log.error("%s failed", what, exc_info=t.exception())
        task.add_done_callback(done)

    async def drain(self, timeout: float) -> None:
        """Wait for background work (tests and shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
