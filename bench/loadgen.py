"""A cheap raw-asyncio HTTP/1.1 load generator (keep-alive, fixed concurrency).

Used by ``python -m nubis.bench swift`` against nubis and the reference Swift
alike, so the client's own CPU cost is identical for both. Each of ``c``
workers owns one keep-alive connection and pulls the next request from a
shared counter; responses are parsed with httptools. Every run is bounded in
count and in time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httptools

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One request: method, path (already quoted), headers, body."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass
class Result:
    """What a run measured."""

    ok: int = 0
    failed: int = 0
    bad_body: int = 0
    seconds: float = 0.0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        """Return the ``p``-th latency percentile in milliseconds."""
        if not self.latencies:
            return 0.0
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1000

    @property
    def ops(self) -> float:
        """Return successful operations per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def mbps(self) -> float:
        """Return payload megabytes (1e6) per second."""
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0


def wire(req: Request, host: str) -> bytes:
    """Return ``req`` as HTTP/1.1 bytes for ``host`` (``name:port``), body included."""
    lines = [f"{req.method} {req.path} HTTP/1.1\r\nHost: {host}\r\n"]
    lines.extend(f"{k}: {v}\r\n" for k, v in req.headers)
    lines.append(f"Content-Length: {len(req.body)}\r\n\r\n")
    return "".join(lines).encode("latin-1") + req.body


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.done: asyncio.Future[None] | None = None
        self.status = 0
        self.head = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done is not None and not self.done.done():
                self.done.set_exception(ConnectionError(str(exc)))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.head and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def send(self, req: Request, host: str) -> tuple[int, bytes]:
        assert self.transport is not None
        self.body = []
        self.head = req.method == "HEAD"
        if self.head:
            self.parser = httptools.HttpResponseParser(self)
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(wire(req, host))
        await self.done
        return self.status, b"".join(self.body)


async def run(host: str, port: int, requests: Sequence[Request], concurrency: int,
              verify: Callable[[int, bytes], bool] | None = None,
              expect: tuple[int, ...] = (200, 201, 202, 204),
              time_limit: float = 600.0) -> Result:
    """Send ``requests`` over ``concurrency`` keep-alive connections.

    ``verify(index, body)`` checks each successful response body.
    """
    loop = asyncio.get_running_loop()
    result = Result()
    next_index = 0
    deadline = time.monotonic() + time_limit
    hostport = f"{host}:{port}"

    async def worker() -> None:
        nonlocal next_index
        conn: _Conn | None = None
        while next_index < len(requests) and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            req = requests[i]
            if conn is None or conn.closed:
                _, conn = await loop.create_connection(_Conn, host, port)
            t0 = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(conn.send(req, hostport), 60)
            except (ConnectionError, TimeoutError, OSError):
                result.failed += 1
                if conn.transport is not None:
                    conn.transport.close()
                conn = None
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status not in expect:
                result.failed += 1
                continue
            if verify is not None and not verify(i, body):
                result.bad_body += 1
                result.failed += 1
                continue
            result.ok += 1
            result.bytes += len(body) if req.method == "GET" else len(req.body)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop (falls back to asyncio's default loop).

    PERF: the client shares the 2-core box with the servers under test; uvloop
    roughly halves its CPU per request, for nubis and Swift alike
    (``python -m nubis.bench swift``).
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main)
    return uvloop.run(main)


def bytes_verifier(expected: Sequence[bytes]) -> Callable[[int, bytes], bool]:
    """Return a verifier comparing each body byte for byte with ``expected[i]``.

    PERF: stricter than an MD5 check and ~20x cheaper: hashing every 1 MiB
    GET body cost the client ~2 ms of a 2-core box's CPU per request, which
    throttled whichever system was being measured (``python -m nubis.bench swift``).
    """
    def check(i: int, body: bytes) -> bool:
        return body == expected[i]
    return check


def md5_verifier(expected: Sequence[str]) -> Callable[[int, bytes], bool]:
    """Return a verifier comparing each body's MD5 with ``expected[i]``."""
    def check(i: int, body: bytes) -> bool:
        return hashlib.md5(body, usedforsecurity=False).hexdigest() == expected[i]
    return check
