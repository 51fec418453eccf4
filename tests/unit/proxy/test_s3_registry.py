"""The S3 bucket registry's per-worker cache: one registry HEAD per expiry, shared."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3.request import REGISTRY_TTL, Registry


class FakeReq:
    """Stands in for :class:`S3Req`: answers the registry HEAD, counting calls."""

    def __init__(self, owner: str | None, fail: int = 0) -> None:
        self.owner = owner
        self.fail = fail
        self.calls = 0

    async def system(self, method: str, obj: str | None, *_: Any) -> Resp:
        assert method == "HEAD"
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.fail:
            self.fail -= 1
            raise HTTPError(503)
        if self.owner is None:
            raise HTTPError(404)
        return Resp(200, {"X-Object-Meta-Owner": self.owner})


def test_concurrent_misses_share_one_head() -> None:
    async def go() -> tuple[list[str | None], int]:
        reg, req = Registry(), FakeReq("AUTH_a")
        got = await asyncio.gather(*(reg.owner(cast(Any, req), "b") for _ in range(16)))
        again = await reg.owner(cast(Any, req), "b")
        return [*got, again], req.calls

    answers, calls = asyncio.run(go())
    assert answers == ["AUTH_a"] * 17 and calls == 1


def test_expiry_and_missing_bucket() -> None:
    clock = [100.0]

    async def go() -> list[object]:
        reg, req = Registry(lambda: clock[0]), FakeReq(None)
        out: list[object] = [await reg.owner(cast(Any, req), "b")]
        req.owner = "AUTH_b"
        out.append(await reg.owner(cast(Any, req), "b"))  # a miss is asked again
        req.owner = "AUTH_c"
        out.append(await reg.owner(cast(Any, req), "b"))  # a found owner is cached
        clock[0] += REGISTRY_TTL + 1
        out.append(await reg.owner(cast(Any, req), "b"))
        out.append(req.calls)
        return out

    assert asyncio.run(go()) == [None, "AUTH_b", "AUTH_b", "AUTH_c", 3]


def test_a_failed_head_fails_its_caller_and_waiters_retry() -> None:
    async def go() -> tuple[list[object], int]:
        reg, req = Registry(), FakeReq("AUTH_a", fail=1)
        got = await asyncio.gather(*(reg.owner(cast(Any, req), "b") for _ in range(4)),
                                   return_exceptions=True)
        return list(got), req.calls

    got, calls = asyncio.run(go())
    assert [type(g) for g in got].count(HTTPError) == 1
    assert got.count("AUTH_a") == 3 and calls == 2
