"""Request rate limits per account and container (Swift's ``ratelimit`` middleware).

Configured in ``[proxy.ratelimit]`` (all off by default, as Swift's sample):

- ``account_ratelimit``: container PUTs and DELETEs per second, per account;
- ``container_ratelimits``: object PUT/POST/DELETE/COPY per second in a
  container, by its object count (``{"100" = 10.0, "1000" = 5.0}``: from 100
  objects on 10/s, falling linearly to 5/s at 1,000 and staying there);
- ``container_listing_ratelimits``: container GETs per second, likewise;
- ``account_whitelist`` (never limited) and ``account_blacklist`` (every
  request answered ``497 Blacklisted`` after a second's pause).

A request over its rate waits until its turn; when that wait would exceed
``max_sleep_time_seconds`` it is answered ``498 Rate Limited`` ("Slow down").
The running schedule of each key lives where every proxy worker sees it, as
Swift keeps it in memcache: a small LMDB environment (no fsync; losing it on a
crash only forgets the schedule) under the proxy's state directory.

Nothing here runs unless some limit is configured (:attr:`RateLimiter.active`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
from nubis.api.proxy.base import container_info
from nubis.api.proxy.config import RateLimitConfig
from nubis.api.proxy.context import Ctx
from nubis.api.proxy.errors import HTTPError

log = logging.getLogger("nubis.proxy")

_WRITES = ("PUT", "DELETE", "POST", "COPY")
#: Expired schedules are swept after this many updates (bounds the key count).
_SWEEP_EVERY = 1024


@dataclass(frozen=True)
class Line:
    """One piece of a rate curve: from ``size`` objects, ``rate`` plus ``slope`` per object."""

    size: int
    rate: float
    slope: float

    def at(self, count: int) -> float:
        """Return the rate for ``count`` objects."""
        return self.rate + (count - self.size) * self.slope


def curve(points: dict[str, float]) -> list[Line]:
    """Return Swift's piecewise-linear rate curve through ``size -> rate`` points."""
    pts = sorted((int(k), float(v)) for k, v in points.items())
    out = []
    for i, (size, rate) in enumerate(pts):
        slope = 0.0
        if i + 1 < len(pts):
            nsize, nrate = pts[i + 1]
            slope = (nrate - rate) / (nsize - size)
        out.append(Line(size, rate, slope))
    return out


def max_rate(lines: list[Line], count: int) -> float | None:
    """Return the allowed requests/s for a container of ``count`` objects (None: unlimited)."""
    if not count:
        return None
    last = None
    for line in lines:
        if count < line.size:
            break
        last = line
    return None if last is None else last.at(count)


def info(conf: RateLimitConfig) -> dict[str, Any]:
    """Return Swift's ``/info`` entry (limits only; the lists stay private)."""
    def pairs(points: dict[str, float]) -> list[list[float]]:
        return [[int(k), float(v)] for k, v in sorted(points.items(), key=lambda p: int(p[0]))]

    return {"account_ratelimit": conf.account_ratelimit,
            "max_sleep_time_seconds": conf.max_sleep_time_seconds,
            "container_ratelimits": pairs(conf.container_ratelimits),
            "container_listing_ratelimits": pairs(conf.container_listing_ratelimits)}


class MaxSleepError(Exception):
    """The wait for a slot would exceed ``max_sleep_time_seconds``."""


class Schedule:
    """The next free slot per key, in clock ticks, shared by the proxy's workers (LMDB)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._env: Any = None
        self._pid = 0
        self._updates = 0

    def _open(self) -> Any:
        if self._env is None or self._pid != os.getpid():  # never share a handle over fork
            self.path.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(str(self.path), map_size=64 * 1024 * 1024, sync=False,
                                  metasync=False, max_dbs=0, subdir=True)
            self._pid = os.getpid()
        return self._env

    def take(self, key: str, per_request: int, now: int, buffer: int, max_sleep: float,
             accuracy: int) -> int:
        """Book the next slot of ``key``; return the ticks to wait for it.

        As Swift's memcache schedule: each request pushes the key's time by
        ``per_request``; a key idle for over ``buffer`` ticks starts afresh.

        Raises:
            MaxSleepError: the wait would reach ``max_sleep`` ticks (nothing is booked).
        """
        env = self._open()
        bkey = key.encode("utf-8")
        with env.begin(write=True) as txn:
            stored = txn.get(bkey)
            running = (int(stored) if stored else 0) + per_request
            need = 0
            if now - running > buffer:
                running = now + per_request
            else:
                need = max(running - now - per_request, 0)
            if max_sleep - need <= accuracy * 0.01:
                raise MaxSleepError(f"Max Sleep Time Exceeded: {need / accuracy:.2f}")
            txn.put(bkey, str(running).encode())
        self._updates += 1
        if self._updates % _SWEEP_EVERY == 0:
            self.sweep(now - buffer)
        return need

    def sweep(self, before: int) -> int:
        """Drop keys whose slot is older than ``before`` (they would start afresh)."""
        env = self._open()
        dropped = 0
        with env.begin(write=True) as txn:
            cur = txn.cursor()
            stale = [k for k, v in cur if int(v) < before]
            for k in stale:
                txn.delete(k)
                dropped += 1
        return dropped


class RateLimiter:
    """The rate limits of one proxy worker (the schedule is shared)."""

    BLACKLIST_SLEEP = 1.0

    def __init__(self, conf: RateLimitConfig, state_dir: Path) -> None:
        self.conf = conf
        self.container_lines = curve(conf.container_ratelimits)
        self.listing_lines = curve(conf.container_listing_ratelimits)
        self.whitelist = {a.strip() for a in conf.account_whitelist if a.strip()}
        self.blacklist = {a.strip() for a in conf.account_blacklist if a.strip()}
        #: Whether anything is configured (else :meth:`check` is never called).
        self.active = bool(conf.account_ratelimit or self.container_lines
                           or self.listing_lines or self.blacklist)
        self.schedule = Schedule(Path(conf.state_dir) if conf.state_dir else state_dir)

    async def keys(self, ctx: Ctx) -> list[tuple[str, float]]:
        """Return the ``(schedule key, requests/s)`` pairs that limit this request."""
        out: list[tuple[str, float]] = []
        acct, cont, obj, method = ctx.account, ctx.container, ctx.obj, ctx.method
        if self.conf.account_ratelimit and cont and not obj and method in ("PUT", "DELETE"):
            out.append((f"ratelimit/{acct}", self.conf.account_ratelimit))
        if cont and obj and method in _WRITES and self.container_lines:
            rate = max_rate(self.container_lines, await self._count(ctx, cont))
            if rate:
                out.append((f"ratelimit/{acct}/{cont}", rate))
        if cont and not obj and method == "GET" and self.listing_lines:
            rate = max_rate(self.listing_lines, await self._count(ctx, cont))
            if rate:
                out.append((f"ratelimit_listing/{acct}/{cont}", rate))
        return out

    @staticmethod
    async def _count(ctx: Ctx, container: str) -> int:
        cinfo = await container_info(ctx.state, ctx.account, container)
        try:
            return int(cinfo.headers.get("x-container-object-count", "0"))
        except ValueError:
            return 0

    async def check(self, ctx: Ctx) -> None:
        """Wait for this request's slots.

        Raises:
            HTTPError: 497 for a blacklisted account, 498 when the wait is too long.
        """
        if ctx.account in self.whitelist:
            return
        if ctx.account in self.blacklist:
            log.error("Returning 497 because of blacklisting: %s", ctx.account)
            await asyncio.sleep(self.BLACKLIST_SLEEP)
            raise HTTPError(497, "Your account has been blacklisted")
        conf = self.conf
        acc = conf.clock_accuracy
        for key, rate in await self.keys(ctx):
            now = round(time.time() * acc)
            try:
                need = self.schedule.take(key, round(acc / rate), now,
                                          conf.rate_buffer_seconds * acc,
                                          conf.max_sleep_time_seconds * acc, acc)
            except MaxSleepError as exc:
                log.error("Returning 498 for %s to %s. Ratelimit (Max Sleep) %s",
                          ctx.method, key, exc)
                raise HTTPError(498, "Slow down") from None
            except lmdb.Error as exc:  # like Swift without memcache: do not limit
                log.warning("ratelimit schedule unavailable: %s", exc)
                return
            if conf.log_sleep_time_seconds and need / acc > conf.log_sleep_time_seconds:
                log.warning("Ratelimit sleep log: %s for %s", need / acc, key)
            if need > 0:
                await asyncio.sleep(need / acc)
