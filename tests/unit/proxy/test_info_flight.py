"""Account/container info misses: concurrent ones share one HEAD."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.context import Info, ProxyState


def _state() -> ProxyState:
    policies = SimpleNamespace(names=dict)
    return ProxyState(cast(Any, SimpleNamespace(recheck_info=60.0)), cast(Any, None),
                      cast(Any, None), cast(Any, None), None, cast(Any, policies))


class Head:
    """A HEAD that takes a while, counting calls; fails ``fail`` times first."""

    def __init__(self, fail: int = 0) -> None:
        self.calls = 0
        self.fail = fail

    async def __call__(self) -> Reply:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("backend down")
        return Reply(200, {"x-container-object-count": "3"})


def test_concurrent_misses_share_one_head() -> None:
    async def go() -> tuple[list[Info], int]:
        state, head = _state(), Head()
        got = await asyncio.gather(*(state.info(("a", "c"), head) for _ in range(16)))
        again = await state.info(("a", "c"), head)
        return [*got, again], head.calls

    infos, calls = asyncio.run(go())
    assert calls == 1
    assert {id(i) for i in infos} == {id(infos[0])}
    assert infos[0].headers["x-container-object-count"] == "3"


def test_a_failed_head_fails_its_waiters_and_the_next_miss_retries() -> None:
    async def go() -> tuple[list[object], int]:
        state, head = _state(), Head(fail=1)
        got = await asyncio.gather(*(state.info(("a",), head) for _ in range(4)),
                                   return_exceptions=True)
        ok = await state.info(("a",), head)
        return [*got, ok], head.calls

    results, calls = asyncio.run(go())
    assert all(isinstance(r, ConnectionError) for r in results[:4])
    assert isinstance(results[4], Info) and calls == 2


def test_waiters_fetch_anew_when_the_fetching_request_is_cancelled() -> None:
    async def go() -> tuple[Info, int]:
        state, head = _state(), Head()
        first = asyncio.create_task(state.info(("a", "c"), head))
        await asyncio.sleep(0)  # the first one is fetching now
        waiter = asyncio.create_task(state.info(("a", "c"), head))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await waiter, head.calls

    info, calls = asyncio.run(go())
    assert info.status == 200 and calls == 2


def test_a_cached_not_found_is_asked_again() -> None:
    """Another worker may have created it since: a 404 is not served from the cache."""
    async def go() -> tuple[list[int], int]:
        state, calls, answers = _state(), 0, [Reply(404), Reply(204)]

        async def head() -> Reply:
            nonlocal calls
            calls += 1
            return answers[min(calls, 2) - 1]

        statuses = [(await state.info(("a", "c"), head)).status for _ in range(3)]
        return statuses, calls

    statuses, calls = asyncio.run(go())
    assert statuses == [404, 204, 204] and calls == 2  # the found one is cached
