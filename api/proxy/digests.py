"""Digests of buffered upload bodies, hashed side by side across concurrent uploads.

A buffered upload needs its body's MD5 (the ETag) and xxh3-64 (the transfer
check the object servers verify). One MD5 is a single dependency chain, about
1.4 ms of CPU per MiB here, and it is most of what a 1 MiB PUT costs the
proxy. The compiled kernel :mod:`nubis.fastpath.md5lanes` hashes up to eight
bodies side by side for about the cost of one, so bodies that arrive while a
batch is being hashed wait for it to finish and then go together, like a group
commit: under load the batches fill up by themselves, and a lone upload is
hashed at once, as before.

A streamed upload (too big to buffer) is hashed as it passes with
:class:`StreamDigest`, in a worker thread, once; the object servers then only
check the xxh3 instead of each computing the MD5 of its replica.

PERF: ``python -m nubis.bench s3`` / ``swift`` 1 MiB PUT (proxy CPU per
request), ``python -m nubis.bench md5`` (the kernel against hashlib),
``python -m nubis.bench s3 --multipart-mib N`` (streamed bodies).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import xxhash
from nubis.fastpath import md5lanes

#: The ETag (hex MD5) and the transfer checksum (hex xxh3-64) of one body.
Digest = tuple[str, str]


def digest_of(body: bytes) -> Digest:
    """Return the MD5 and xxh3-64 of one body, in hex (hashlib: small bodies, on the loop)."""
    return (hashlib.md5(body, usedforsecurity=False).hexdigest(),
            f"{xxhash.xxh3_64_intdigest(body):016x}")


def digests_of(bodies: Sequence[bytes]) -> list[Digest]:
    """Return the MD5 and xxh3-64 of each body, in hex, in order."""
    md5s = md5lanes.md5_many(bodies)
    return [(m.hex(), f"{xxhash.xxh3_64_intdigest(b):016x}")
            for m, b in zip(md5s, bodies, strict=True)]


class BodyDigests:
    """Hash buffered upload bodies in a worker thread, many at a time.

    One batch is hashed at a time per event loop; bodies arriving meanwhile
    make up the next one (at most ``max_batch`` bodies). Without side-by-side
    hashing (no compiled kernel, or no AVX2) batching would only add waiting,
    so each body is hashed on its own.
    """

    def __init__(self, max_batch: int = 4 * md5lanes.LANES,
                 side_by_side: bool = md5lanes.SIDE_BY_SIDE) -> None:
        self.max_batch = max_batch
        self.side_by_side = side_by_side
        self._waiting: list[tuple[bytes, asyncio.Future[Digest]]] = []
        self._busy = False

    async def of(self, body: bytes) -> Digest:
        """Return the MD5 and xxh3-64 of ``body`` (hex), hashed off the event loop."""
        loop = asyncio.get_running_loop()
        if not self.side_by_side:
            return await loop.run_in_executor(None, digest_of, body)
        waiter: asyncio.Future[Digest] = loop.create_future()
        self._waiting.append((body, waiter))
        if not self._busy:
            self._start(loop)
        return await waiter

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hash the waiting bodies (up to ``max_batch``) in the executor."""
        waiting = [w for w in self._waiting if not w[1].cancelled()]
        batch, self._waiting = waiting[:self.max_batch], waiting[self.max_batch:]
        if not batch:
            return
        try:
            job = loop.run_in_executor(None, digests_of, [body for body, _ in batch])
        except RuntimeError as exc:  # the executor is shut down: the loop is closing
            for _, waiter in batch + self._waiting:
                if not waiter.done():
                    waiter.set_exception(exc)
            self._waiting = []
            return
        self._busy = True
        job.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(self, loop: asyncio.AbstractEventLoop,
                batch: list[tuple[bytes, asyncio.Future[Digest]]],
                done: asyncio.Future[list[Digest]]) -> None:
        """Hand each waiter its digest (or the batch's failure); start the next batch."""
        self._busy = False
        if done.cancelled():
            for _, waiter in batch:
                waiter.cancel()
        elif (exc := done.exception()) is not None:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
        else:
            for (_, waiter), digest in zip(batch, done.result(), strict=True):
                if not waiter.done():
                    waiter.set_result(digest)
        if self._waiting:
            self._start(loop)


class StreamDigest:
    """Hash a streamed body (MD5 and xxh3-64) in a worker thread as it passes.

    Pieces are collected and handed to the default executor about every
    ``batch`` bytes, one job at a time and in order, so the event loop only
    queues them and an upload holds at most ~3 batches for hashing (the one
    filling, the one hashed and its joined copy): 768 KiB with the default.
    """

    def __init__(self, batch: int = 256 << 10) -> None:
        self.batch = batch
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._xxh3 = xxhash.xxh3_64()
        self._parts: list[bytes] = []
        self._pending = 0
        self._job: asyncio.Future[None] | None = None

    async def update(self, piece: bytes) -> None:
        """Add the next piece of the body."""
        self._parts.append(piece)
        self._pending += len(piece)
        if self._pending >= self.batch:
            await self._flush()

    async def result(self) -> Digest:
        """Return the MD5 and xxh3-64 (hex) of everything added."""
        await self._flush()
        if self._job is not None:
            await self._job
            self._job = None
        return self._md5.hexdigest(), f"{self._xxh3.intdigest():016x}"

    async def _flush(self) -> None:
        parts, self._parts, self._pending = self._parts, [], 0
        if self._job is not None:
            await self._job  # keeps the order; bounds memory to ~2 batches
            self._job = None
        if parts:
            self._job = asyncio.get_running_loop().run_in_executor(None, self._hash, parts)

    def _hash(self, parts: list[bytes]) -> None:
        # PERF: one join, then one GIL release per hash per batch (not per piece).
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._md5.update(data)
        self._xxh3.update(data)
