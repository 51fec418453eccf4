"""The background daemon base: passes, status files, pacing, stopping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvloop
from nubis.common.daemon import (
    Daemon,
    PassReport,
    RateLimiter,
    one_pass,
    read_reports,
    run_daemon,
    run_forever,
    status_path,
)


class Counting(Daemon):
    name = "counting"

    def __init__(self, interval: float = 0.01, fail_at: int = -1) -> None:
        super().__init__(interval)
        self.passes = 0
        self.fail_at = fail_at
        self.closed = False

    async def run_once(self) -> dict[str, int]:
        self.passes += 1
        if self.passes == self.fail_at:
            raise RuntimeError("disk on fire")
        return {"done": self.passes}

    async def close(self) -> None:
        self.closed = True


def test_rate_limiter_paces_units() -> None:
    now = [0.0]
    limiter = RateLimiter(100.0, clock=lambda: now[0])
    assert limiter.delay(100) == 0.0          # one second's burst
    assert limiter.delay(50) == 0.5           # then 50 more need half a second
    now[0] += 1.5
    assert limiter.delay(50) == 0.0
    assert RateLimiter(0).delay(10 ** 9) == 0.0  # unlimited


def test_one_pass_records_stats_and_errors(tmp_path: Path) -> None:
    status = status_path(tmp_path, "counting-0")
    daemon = Counting(fail_at=2)
    first = uvloop.run(one_pass(daemon, status))
    assert first.stats == {"done": 1} and not first.error
    assert PassReport.load(status) == first
    second = uvloop.run(one_pass(daemon, status))  # a failing pass is reported, not raised
    assert second.error == "RuntimeError: disk on fire" and second.stats == {}
    loaded = PassReport.load(status)
    assert loaded is not None and loaded.error == second.error
    assert loaded.passes == 2 and loaded.totals == {"done": 1} and loaded.label == "counting-0"
    third = uvloop.run(one_pass(Counting(), status))  # a new process carries the totals on
    assert third.passes == 3 and third.totals == {"done": 2}
    assert read_reports(tmp_path) == [third]
    (tmp_path / "bad.json").write_text("{nope")
    assert PassReport.load(tmp_path / "bad.json") is None


def test_run_forever_repeats_until_stopped() -> None:
    daemon = Counting(interval=0.01)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_forever(daemon, stop))
        while daemon.passes < 3:
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(task, 5)

    uvloop.run(go())
    assert daemon.passes >= 3


def test_run_daemon_once_exit_status(tmp_path: Path) -> None:
    ok = Counting()
    assert run_daemon(lambda: ok, once=True, status_file=tmp_path / "s.json") == 0
    assert ok.passes == 1 and ok.closed
    bad = Counting(fail_at=1)
    assert run_daemon(lambda: bad, once=True) == 1 and bad.closed
