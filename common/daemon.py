"""Background daemons: what one pass does, separate from how passes are run.

A :class:`Daemon` does one bounded pass of work in :meth:`Daemon.run_once` and
returns counters of what it did. :func:`run_forever` repeats passes every
``interval`` seconds until stopped; :func:`run_daemon` is how a daemon process
runs (one uvloop event loop, SIGTERM/SIGINT end it after the current pass or
sleep, ``once`` runs a single pass). After every pass a small JSON status file
(:class:`PassReport`, ``<state>/status/<label>.json``) is written atomically:
``nubis status`` shows when each daemon last ran, for how long, what it did and
its error, and the storage servers of its node export its running totals on
their ``/metrics`` (a daemon without a port of its own needs no HTTP server,
and a ``--once`` run counts too).

:class:`RateLimiter` is the token bucket the daemons use to bound their work
(objects or bytes per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nubis.common.fileutil import atomic_write
from nubis.common.httpserver import run_uvloop

LOG = logging.getLogger(__name__)

#: Directory of the status files, under the state directory.
STATUS_DIR = "status"


@dataclass(frozen=True)
class PassReport:
    """What a daemon's last pass did, and what all its passes did (its status file).

    ``totals`` add up every pass's counters since the status file was first
    written (a restarted daemon, or a ``--once`` run, carries them on), so the
    storage servers can export them as Prometheus counters
    (:class:`nubis.common.metrics.PassCollector`).
    """

    daemon: str
    started: float
    duration: float
    stats: dict[str, int] = field(default_factory=dict)
    error: str = ""
    #: The process label (``object-replicator-0``); the daemon name when not per node.
    label: str = ""
    #: Passes run, failed ones included.
    passes: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    def dumps(self) -> bytes:
        """Encode as JSON."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def load(cls, path: Path) -> PassReport | None:
        """Read a status file (None when missing or unreadable)."""
        try:
            doc = json.loads(path.read_bytes())
            return cls(str(doc["daemon"]), float(doc["started"]), float(doc["duration"]),
                       {str(k): int(v) for k, v in doc.get("stats", {}).items()},
                       str(doc.get("error", "")), str(doc.get("label") or path.stem),
                       int(doc.get("passes", 0)),
                       {str(k): int(v) for k, v in doc.get("totals", {}).items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def then(self, started: float, duration: float, stats: dict[str, int],
             error: str, declared: tuple[str, ...] = ()) -> PassReport:
        """Return the report after one more pass (``declared`` counters start at 0)."""
        totals = {key: 0 for key in declared} | self.totals
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
        return PassReport(self.daemon, started, duration, dict(stats), error, self.label,
                          self.passes + 1, totals)


def status_path(state_dir: str | Path, label: str) -> Path:
    """Return where the daemon process ``label`` records its passes."""
    return Path(state_dir) / STATUS_DIR / f"{label}.json"


def read_reports(state_dir: str | Path) -> list[PassReport]:
    """Return every daemon's status (by label); unreadable files are skipped."""
    found = (PassReport.load(p) for p in sorted((Path(state_dir) / STATUS_DIR).glob("*.json")))
    return [r for r in found if r is not None]


class Daemon(ABC):
    """A background daemon: one bounded pass of work at a time."""

    #: The daemon's name (``object-replicator``).
    name: str = "daemon"
    #: Counters its passes report, exported (as 0 until counted) on ``/metrics``.
    counters: tuple[str, ...] = ()

    def __init__(self, interval: float) -> None:
        self.interval = interval

    @abstractmethod
    async def run_once(self) -> dict[str, int]:
        """Do one pass of work; return counters of what was done."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the daemon holds (called once, after the last pass)."""


class RateLimiter:
    """A token bucket: :meth:`consume` waits so that at most ``rate`` units pass per second.

    ``rate <= 0`` means unlimited. Bursts up to one second's worth are allowed.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._tokens = rate
        self._last = clock()

    def delay(self, units: float) -> float:
        """Take ``units`` and return how long the caller must wait first (seconds)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= units
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def consume(self, units: float) -> None:
        """Wait until ``units`` may be used."""
        wait = self.delay(units)
        if wait > 0:
            await asyncio.sleep(wait)


async def one_pass(daemon: Daemon, status_file: Path | None = None) -> PassReport:
    """Run one pass, log and record it; a failing pass is reported, not raised."""
    started = time.time()
    t0 = time.monotonic()
    stats: dict[str, int] = {}
    error = ""
    try:
        stats = await daemon.run_once()
    except Exception as exc:  # a pass must never kill the daemon
        LOG.exception("%s pass failed", daemon.name)
        error = f"{type(exc).__name__}: {exc}"
    before = (PassReport.load(status_file) if status_file is not None else None) or \
        PassReport(daemon.name, 0.0, 0.0, label=status_file.stem if status_file else daemon.name)
    report = before.then(started, time.monotonic() - t0, stats, error, daemon.counters)
    LOG.info("%s pass done in %.3fs: %s%s", daemon.name, report.duration,
             " ".join(f"{k}={v}" for k, v in sorted(stats.items())) or "nothing",
             f" (error: {error})" if error else "")
    if status_file is not None:
        try:
            status_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(status_file, [report.dumps()])
        except OSError as exc:
            LOG.warning("cannot write %s: %s", status_file, exc)
    return report


async def run_forever(daemon: Daemon, stop: asyncio.Event,
                      status_file: Path | None = None) -> None:
    """Run passes every ``daemon.interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        t0 = time.monotonic()
        await one_pass(daemon, status_file)
        left = daemon.interval - (time.monotonic() - t0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(left, 0.0))


def run_daemon(factory: Callable[[], Daemon], *, once: bool,
               status_file: Path | None = None) -> int:
    """Run a daemon process: one pass (``once``) or passes until SIGTERM/SIGINT.

    Returns:
        0, or 1 when ``once`` and the pass failed.
    """
    result: list[Any] = [0]

    async def main() -> None:
        daemon = factory()
        try:
            if once:
                report = await one_pass(daemon, status_file)
                result[0] = 1 if report.error else 0
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            await run_forever(daemon, stop, status_file)
        finally:
            await daemon.close()

    run_uvloop(main())
    return int(result[0])
