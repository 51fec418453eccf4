"""Buffered upload bodies hashed side by side across concurrent uploads."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest
import xxhash
from nubis.api.proxy import digests
from nubis.api.proxy.digests import BodyDigests, Digest, digest_of, digests_of


def _expected(body: bytes) -> Digest:
    return (hashlib.md5(body, usedforsecurity=False).hexdigest(),
            f"{xxhash.xxh3_64_intdigest(body):016x}")


def test_digest_of_one_and_many_agree() -> None:
    bodies = [b"", b"x" * 70_000, bytes(range(256)) * 300]
    assert digests_of(bodies) == [_expected(b) for b in bodies]
    assert [digest_of(b) for b in bodies] == [_expected(b) for b in bodies]


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every batch hashed (the real hashing still runs)."""
    seen: list[int] = []
    real = digests.digests_of

    def recording(bodies: Sequence[bytes]) -> list[Digest]:
        seen.append(len(bodies))
        return real(bodies)

    monkeypatch.setattr(digests, "digests_of", recording)
    return seen


def test_concurrent_bodies_share_batches(batches: list[int]) -> None:
    """The first body is hashed at once; those arriving meanwhile go together."""
    bodies = [bytes([i]) * (100_000 + i) for i in range(20)]

    async def main() -> list[Digest]:
        hasher = BodyDigests(max_batch=8, side_by_side=True)
        return await asyncio.gather(*(hasher.of(b) for b in bodies))

    assert asyncio.run(main()) == [_expected(b) for b in bodies]
    assert batches[0] == 1
    assert sum(batches) == 20 and max(batches) == 8 and len(batches) < 20


def test_without_side_by_side_each_body_alone(batches: list[int]) -> None:
    bodies = [bytes([i]) * 100_000 for i in range(5)]

    async def main() -> list[Digest]:
        hasher = BodyDigests(side_by_side=False)
        return await asyncio.gather(*(hasher.of(b) for b in bodies))

    assert asyncio.run(main()) == [_expected(b) for b in bodies]
    assert batches == []  # digest_of per body, no batch


def test_cancelled_waiter_leaves_the_others_served(batches: list[int]) -> None:
    """A client that went away while waiting: its body is skipped, nobody hangs."""
    async def main() -> tuple[list[Digest], bool]:
        hasher = BodyDigests(side_by_side=True)
        first = asyncio.ensure_future(hasher.of(b"a" * 100_000))
        await asyncio.sleep(0)  # the first batch is under way
        gone = asyncio.ensure_future(hasher.of(b"b" * 100_000))
        rest = [asyncio.ensure_future(hasher.of(bytes([i]) * 100_000)) for i in range(3)]
        await asyncio.sleep(0)
        gone.cancel()
        done = await asyncio.gather(first, *rest)
        return done, gone.cancelled()

    done, cancelled = asyncio.run(main())
    assert cancelled
    assert done == [_expected(b"a" * 100_000)] + [_expected(bytes([i]) * 100_000)
                                                 for i in range(3)]
    assert batches == [1, 3]


def test_a_failed_batch_fails_its_waiters_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def flaky(bodies: Sequence[bytes]) -> list[Digest]:
        calls.append(len(bodies))
        if len(calls) == 1:
            raise MemoryError("no room")
        return [_expected(b) for b in bodies]

    monkeypatch.setattr(digests, "digests_of", flaky)

    async def main() -> tuple[BaseException | Digest, ...]:
        hasher = BodyDigests(side_by_side=True)
        first = asyncio.ensure_future(hasher.of(b"1"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(hasher.of(b"2"))
        return tuple(await asyncio.gather(first, second, return_exceptions=True))

    first, second = asyncio.run(main())
    assert isinstance(first, MemoryError)
    assert second == _expected(b"2")


def test_shut_down_executor_fails_the_waiters() -> None:
    """A loop whose executor is gone (shutting down): every waiter hears of it."""
    async def main() -> BaseException | Digest:
        loop = asyncio.get_running_loop()
        await loop.shutdown_default_executor()
        hasher = BodyDigests(side_by_side=True)
        try:
            return await asyncio.wait_for(hasher.of(b"x" * 100_000), 5)
        except RuntimeError as exc:
            return exc

    assert isinstance(asyncio.run(main()), RuntimeError)


@pytest.mark.parametrize("batch", [1, 7, 1 << 20])
def test_stream_digest_hashes_every_piece_in_order(batch: int) -> None:
    """A streamed body's MD5 and xxh3 equal those of the joined pieces, whatever the batch."""
    pieces = [bytes([i % 251]) * (i * 37 % 5000) for i in range(200)] + [b"end"]
    body = b"".join(pieces)

    async def go() -> Digest:
        sums = digests.StreamDigest(batch=batch)
        for piece in pieces:
            await sums.update(piece)
        return await sums.result()

    assert asyncio.run(go()) == digest_of(body)
    assert asyncio.run(_empty()) == digest_of(b"")


async def _empty() -> Digest:
    return await digests.StreamDigest().result()
