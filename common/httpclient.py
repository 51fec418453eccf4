"""An async, pooled, keep-alive HTTP/1.1 client (raw asyncio + httptools).

One :class:`HTTPClient` per process keeps idle connections per ``(host, port)``
and reuses them. Two ways to talk:

* ``resp = await client.request(host, port, "GET", "/d1/3/a/c/o", headers, body)``
  then ``await resp.read()`` (or ``async for chunk in resp.iter_body()``);
  ``await client.fetch(...)`` does both and returns the response with ``.body``.
  ``body`` may be ``bytes`` or an async iterable of ``bytes`` (sent chunked
  unless ``content_length`` is given).
* streaming uploads to several backends in parallel (what the proxy does)::

      ex = await client.open(host, port, "PUT", path, headers,
                             content_length=n, expect_continue=True)
      status = await ex.wait_continue()      # 100, or a final status (ex.response())
      await ex.write(chunk); ...; await ex.finish()
      resp = await ex.response()

A response's connection goes back to the pool once its body was read to the
end (or :meth:`ClientResponse.release` drained it); :meth:`ClientResponse.close`
drops it instead. Errors are :class:`HTTPClientError` subclasses
(:class:`ConnectError`, :class:`ClientTimeoutError`, :class:`ConnectionClosedError`).

PERF: every proxy -> storage request goes through here (``python -m nubis.bench
swift``): no per-request task, one write for head + small body, lists instead
of dicts while parsing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
import typing
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any, TypeVar

import httptools
from nubis.common.errors import NubisError
from nubis.common.headnames import escape_head, unescape_name
from nubis.common.net import local_socket_name

#: Bodies up to this size are copied behind the head and sent in one write.
_JOIN_MAX = 256 * 1024

T = TypeVar("T")
HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]] | None


class HTTPClientError(NubisError):
    """A backend request failed below HTTP (connect, timeout, closed)."""


class ConnectError(HTTPClientError):
    """The TCP connection could not be made."""


class ClientTimeoutError(HTTPClientError):
    """The peer did not answer in time."""


class ConnectionClosedError(HTTPClientError):
    """The peer closed the connection before the response was complete."""


#: Short aliases (stable API names).
ClientTimeout = ClientTimeoutError
ConnectionClosed = ConnectionClosedError


def _time_out(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class _Conn(asyncio.Protocol):
    """One pooled connection; parses one response at a time."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.reused = False
        self.idle_since = 0.0
        #: The future :meth:`wait` awaits, its deadline, and the timer checking it.
        self._watched: asyncio.Future[Any] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head_method = False
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_future: asyncio.Future[int] | None = None
        self.continue_future: asyncio.Future[int] | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self.body_waiter: asyncio.Future[None] | None = None
        self.got_headers = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.swap_parser = False
        self.any_bytes = False
        self.renamed = False

    def begin(self, head_method: bool, expect_continue: bool) -> None:
        """Prepare for the response to a request being sent now."""
        self._reset()
        self.head_method = head_method
        self.head_future = self.loop.create_future()
        if expect_continue:
            self.continue_future = self.loop.create_future()

    async def wait(self, fut: asyncio.Future[T], timeout: float | None) -> T:
        """Await ``fut``, raising :class:`TimeoutError` after ``timeout`` seconds.

        PERF: no timer made and cancelled per call (this runs for every backend
        response, ``python -m nubis.bench s3``): the connection keeps one timer,
        which on firing fails the awaited future when its deadline has passed
        and else waits for the rest of it.
        """
        if fut.done() or timeout is None:
            return await fut
        if self._watched is not None:  # another wait on this connection: its own timer
            handle = self.loop.call_later(timeout, _time_out, fut)
            try:
                return await fut
            finally:
                handle.cancel()
        now = self.loop.time()
        self._watched, self._deadline = fut, now + timeout
        if self._timer is not None and self._timer_at > self._deadline:
            self._timer.cancel()  # a shorter timeout than the one armed
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            self._timer_at = self._deadline
        try:
            return await fut
        finally:
            self._watched = None

    def _check_deadline(self) -> None:
        self._timer = None
        fut = self._watched
        if fut is None or fut.done():
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._check_deadline)
            self._timer_at = self._deadline
        else:
            fut.set_exception(TimeoutError())

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            self._fail(ConnectionClosedError(f"connection to {self.key[0]}:{self.key[1]} closed"))
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.got_headers:  # odd header names (x-object-meta-() past llhttp
            # (a final head that follows a 100 Continue in the same read is not
            # looked at: answers to PUTs carry no metadata names)
            data, renamed = escape_head(data)
            self.renamed = self.renamed or renamed
        self.any_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionClosedError(f"bad response from {self.key}: {exc}"))
            if self.transport is not None:
                self.transport.close()
            return
        if self.swap_parser:
            self.swap_parser = False
            self.parser = httptools.HttpResponseParser(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # -- httptools callbacks -------------------------------------------------
    def on_message_begin(self) -> None:
        self.raw_headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.status = -1  # an interim reply; the final one follows
            fut = self.continue_future
            if fut is not None and not fut.done():
                fut.set_result(status)
            return
        self.status = status
        self.got_headers = True
        self.keep_alive = bool(self.parser.should_keep_alive())
        fut = self.continue_future
        if fut is not None and not fut.done():
            fut.set_result(status)
        if self.head_future is not None and not self.head_future.done():
            self.head_future.set_result(status)
        if self.head_method or status in (204, 304):
            # httptools cannot skip a HEAD body: start a fresh parser instead.
            self.swap_parser = True
            self._complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == -1:
            self.status = 0
            return
        if not self.complete:
            self._complete()

    def _complete(self) -> None:
        self.complete = True
        self._wake()

    def _wake(self) -> None:
        w = self.body_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        for fut in (self.head_future, self.continue_future):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved; callers re-raise via self.error
        self._wake()

    # -- used by the exchange ----------------------------------------------------
    async def drain(self) -> None:
        while self.write_paused and not self.closed:
            self.drain_waiter = self.loop.create_future()
            await self.drain_waiter

    def send(self, data: bytes) -> bool:
        """Write ``data``; False (and the connection closed) when it is already gone.

        uvloop raises ``RuntimeError`` from ``write`` once its handle has closed,
        which can happen before ``connection_lost`` reaches this protocol (the
        peer died while the connection sat in the pool).
        """
        if self.closed or self.transport is None:
            return False
        try:
            self.transport.write(data)
        except RuntimeError:
            self.close()
            return False
        return True

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ClientResponse:
    """Status, headers and the (streamed) body of one backend response."""

    __slots__ = ("_client", "_conn", "_done", "_timeout", "body", "headers", "offset",
                 "raw_headers", "status")

    def __init__(self, client: HTTPClient, conn: _Conn, timeout: float | None) -> None:
        self._client = client
        self._conn = conn
        self._timeout = timeout
        self._done = False
        self.status = conn.status
        raw = conn.raw_headers
        if conn.renamed:
            raw = [(unescape_name(k), v) for k, v in raw]
        self.raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
        headers: dict[str, str] = {}
        for k, v in self.raw_headers:
            key = k.lower()
            old = headers.get(key)
            headers[key] = v if old is None else f"{old}, {v}"
        #: Response headers with lower-case names (repeats joined by ", ").
        self.headers = headers
        #: The whole body, set by :meth:`HTTPClient.fetch` / :meth:`read`.
        self.body = b""
        #: Where the body starts in the resource, when a caller opened a range of it
        #: and made the answer look whole (:meth:`as_whole`); else 0.
        self.offset = 0
        if conn.complete and not conn.body:
            self._finish()

    def as_whole(self) -> bool:
        """Present a ``206`` of one range as the whole resource's ``200``, opened at the range.

        ``Content-Length`` becomes the resource's size (from ``Content-Range``)
        and :attr:`offset` where the body starts. A ``416`` of an empty resource
        (``Content-Range: bytes */0``, no body) is that resource whole too: a
        symlink or a version link asked for a range past its 0 bytes. Return
        False (nothing changed) unless this is such a 206 or 416.
        """
        if self.status == 416 and self.headers.get("content-range") == "bytes */0" \
                and self.headers.get("content-length") == "0":
            self.status = 200
            del self.headers["content-range"]
            return True
        if self.status != 206:
            return False
        unit, _, spec = self.headers.get("content-range", "").partition(" ")
        span, _, total = spec.partition("/")
        first, _, _last = span.partition("-")
        if unit != "bytes" or not first.isdigit() or not total.isdigit():
            return False
        self.status = 200
        self.offset = int(first)
        self.headers["content-length"] = total
        del self.headers["content-range"]
        return True

    async def read_chunk(self) -> bytes:
        """Return the next piece of the body, ``b""`` at its end."""
        conn = self._conn
        while not conn.body:
            if conn.complete or self._done:
                self._finish()
                return b""
            if conn.error is not None:
                self._drop()
                raise conn.error
            conn.body_waiter = conn.loop.create_future()
            try:
                await conn.wait(conn.body_waiter, self._timeout)
            except TimeoutError:
                self._drop()
                raise ClientTimeoutError(f"body timeout from {conn.key}") from None
            finally:
                conn.body_waiter = None
        return conn.body.popleft()

    async def read_some(self, limit: int) -> bytes:
        """Return the next piece of the body joined with what is already buffered.

        At most about ``limit`` bytes (one piece may exceed it); ``b""`` at the
        end. PERF: a relay that forwards a body (``python -m nubis.bench image``)
        makes a few large writes instead of one per received packet.
        """
        first = await self.read_chunk()
        body = self._conn.body
        if not first or not body or len(first) >= limit:
            return first
        parts = [first]
        size = len(first)
        while body and size < limit:
            piece = body.popleft()
            parts.append(piece)
            size += len(piece)
        return b"".join(parts)

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the body in pieces; the connection is released at the end."""
        try:
            while True:
                chunk = await self.read_chunk()
                if not chunk:
                    return
                yield chunk
        finally:
            if not self._done:
                self.close()

    async def read(self) -> bytes:
        """Read and return the whole body (also kept in ``.body``)."""
        parts: list[bytes] = []
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                break
            parts.append(chunk)
        self.body = parts[0] if len(parts) == 1 else b"".join(parts)
        return self.body

    async def release(self) -> None:
        """Drain what is left of the body and return the connection to the pool."""
        if not self._done:
            try:
                while await self.read_chunk():
                    pass
            except HTTPClientError:
                pass

    def close(self) -> None:
        """Drop the connection without reading the rest of the body."""
        if not self._done:
            self._drop()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and conn.error is None:
            self._client._put_back(conn)
        else:
            conn.close()

    def _drop(self) -> None:
        self._done = True
        self._conn.close()

    async def __aenter__(self) -> ClientResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._done:
            if self._conn.complete:
                self._finish()
            else:
                self.close()


def _header_block(method: str, path: str, host: str, headers: HeaderInput,
                  framing: bytes, expect_continue: bool) -> bytes:
    parts = [f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1"),
             _field_lines(headers)]
    if expect_continue:
        parts.append(b"Expect: 100-continue\r\n")
    parts.append(framing)
    return b"".join(parts)


def _field_lines(headers: HeaderInput) -> bytes:
    """Encode header (or trailer) lines; a CR or LF in one is an error."""
    parts = []
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for name, value in items:
        line = f"{name}: {value}\r\n"
        if "\r" in line[:-2] or "\n" in line[:-2]:
            raise HTTPClientError(f"invalid header {name!r}: contains CR or LF")
        try:
            parts.append(line.encode("latin-1"))
        except UnicodeEncodeError:  # not a WSGI-style latin-1 str: send UTF-8
            parts.append(line.encode("utf-8"))
    return b"".join(parts)


class Exchange:
    """One request being sent on a connection; see the module docstring."""

    def __init__(self, client: HTTPClient, conn: _Conn, chunked: bool,
                 timeout: float | None) -> None:
        self._client = client
        self._conn = conn
        self._chunked = chunked
        self._timeout = timeout
        self._finished = False
        self._response: ClientResponse | None = None

    async def wait_continue(self, timeout: float | None = None) -> int:
        """Wait for ``100 Continue`` (return 100) or an early final status."""
        conn = self._conn
        fut = conn.continue_future
        if fut is None:
            return 100
        try:
            return await conn.wait(fut, timeout or self._timeout)
        except TimeoutError:
            conn.close()
            raise ClientTimeoutError(f"no 100-continue from {conn.key}") from None
        except HTTPClientError:
            conn.close()
            raise

    async def write(self, data: bytes) -> None:
        """Send a piece of the body."""
        conn = self._conn
        if conn.closed or conn.transport is None:
            raise conn.error or ConnectionClosedError(f"connection to {conn.key} closed")
        if not data:
            return
        if not conn.send(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data):
            raise ConnectionClosedError(f"connection to {conn.key} closed")
        if conn.write_paused:
            await conn.drain()

    async def finish(self, trailers: Mapping[str, str] | None = None) -> None:
        """Mark the end of the body (writes the last chunk when chunked).

        ``trailers`` are sent as the chunked body's trailer fields (an exchange
        opened without a content length is chunked).

        Raises:
            HTTPClientError: trailers on a body that is not chunked, or a trailer
                with CR or LF in it.
        """
        if self._finished:
            return
        if trailers and not self._chunked:
            raise HTTPClientError("trailers need a chunked body")
        last = b"0\r\n" + _field_lines(trailers) + b"\r\n" if self._chunked else b""
        self._finished = True
        if last:
            self._conn.send(last)  # when gone, response() reports the closed connection

    async def response(self) -> ClientResponse:
        """Wait for the response headers and return the response."""
        if self._response is not None:
            return self._response
        conn = self._conn
        assert conn.head_future is not None
        try:
            await conn.wait(conn.head_future, self._timeout)
        except TimeoutError:
            conn.close()
            raise ClientTimeoutError(f"no response from {conn.key}") from None
        except HTTPClientError:
            conn.close()
            raise
        if not self._finished:
            # The server answered before the body was sent: the connection's
            # framing is unknown now, so it is not reused.
            conn.keep_alive = False
        self._response = ClientResponse(self._client, conn, self._timeout)
        return self._response

    def abort(self) -> None:
        """Drop the connection (e.g. the client's upload was cut off)."""
        self._conn.close()


def _send_head(conn: _Conn, head: bytes, first: bytes, is_head: bool,
               expect_continue: bool) -> bool:
    """Write a request head (and ``first``) on ``conn``; False when it is already gone."""
    if conn.closed or conn.transport is None or conn.transport.is_closing():
        return False
    conn.begin(is_head, expect_continue)
    if len(first) <= _JOIN_MAX:
        return conn.send(head + first if first else head)
    return conn.send(head) and conn.send(first)


def _connect_local(key: tuple[str, int]) -> socket.socket | None:
    """Return a socket connected to the local Unix socket of ``key``'s server, or None.

    A Unix connect is answered at once: refused (no such server here) or
    accepted; a full backlog (``EAGAIN``) falls back to TCP as well.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(local_socket_name(*key))
    except OSError:
        sock.close()
        return None
    return sock


class HTTPClient:
    """Pooled keep-alive HTTP/1.1 client; one per process (not a global)."""

    def __init__(self, *, connect_timeout: float = 5.0, timeout: float | None = 60.0,
                 max_idle_per_host: int = 64, idle_timeout: float = 30.0,
                 local_sockets: bool = False) -> None:
        """Configure the pool.

        ``local_sockets``: reach a server of this host through its Unix socket
        (:func:`~nubis.common.net.local_socket_name`) when it has one, else over TCP.
        """
        self.connect_timeout = connect_timeout
        self.local_sockets = local_sockets
        #: Pooled connections idle longer than this are not reused (servers
        #: close idle keep-alive connections; ours after 75 s).
        self.idle_timeout = idle_timeout
        self.timeout = timeout
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._closed = False

    # -- pool --------------------------------------------------------------
    async def _connect(self, key: tuple[str, int]) -> _Conn:
        loop = asyncio.get_running_loop()
        if self.local_sockets:
            local = _connect_local(key)
            if local is not None:
                try:
                    _, conn = await loop.create_unix_connection(lambda: _Conn(key), sock=local)
                    return conn
                except OSError:
                    local.close()  # and over TCP
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(key), key[0], key[1]),
                self.connect_timeout)
        except TimeoutError:
            raise ConnectError(f"connect timeout to {key[0]}:{key[1]}") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {key[0]}:{key[1]}: {exc}") from None
        return proto

    def _take_idle(self, key: tuple[str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_ok = time.monotonic() - self.idle_timeout
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            if conn.idle_since < oldest_ok:  # the server may be closing it right now
                conn.close()
                continue
            conn.reused = True
            return conn
        return None

    def _put_back(self, conn: _Conn) -> None:
        if self._closed:
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self.max_idle_per_host:
            conn.close()
        else:
            conn.idle_since = time.monotonic()
            idle.append(conn)

    def idle_count(self, host: str, port: int) -> int:
        """Return how many idle pooled connections exist for ``host:port``."""
        return sum(1 for c in self._idle.get((host, port), []) if not c.closed)

    async def close(self) -> None:
        """Close every idle connection; later responses are not pooled."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    # -- requests ------------------------------------------------------------
    async def open(self, host: str, port: int, method: str, path: str,
                   headers: HeaderInput = None, *, content_length: int | None = None,
                   expect_continue: bool = False, timeout: float | None = -1.0,
                   fresh: bool = False, first: bytes = b"") -> Exchange:
        """Send the request head; return an :class:`Exchange` to stream the body.

        ``content_length=None`` sends the body chunked (use 0 for no body).
        ``first`` is sent in the same write as the head (the start of a
        ``Content-Length`` body; PERF: one syscall and one packet for a small
        PUT, ``python -m nubis.bench swift``).
        """
        key = (host, port)
        chunked = content_length is None
        if chunked:
            framing = b"Transfer-Encoding: chunked\r\n\r\n"
        else:
            framing = b"Content-Length: %d\r\n\r\n" % (content_length or 0)
        head = _header_block(method, path, host, headers, framing, expect_continue)
        conn = None if fresh else self._take_idle(key)
        while True:
            if conn is None:
                conn = await self._connect(key)
            if _send_head(conn, head, first, method == "HEAD", expect_continue):
                break
            if not conn.reused:
                raise ConnectError(f"connection to {host}:{port} closed before the request")
            conn = None  # a pooled connection the peer closed: once more on a new one
        return Exchange(self, conn, chunked, self.timeout if timeout == -1.0 else timeout)

    async def request(self, host: str, port: int, method: str, path: str,
                      headers: HeaderInput = None,
                      body: bytes | AsyncIterable[bytes] = b"", *,
                      content_length: int | None = None,
                      timeout: float | None = -1.0) -> ClientResponse:
        """Send a whole request and return the response (body not yet read).

        A ``bytes`` body on a reused connection that turns out to be stale is
        retried once on a new connection.
        """
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            for attempt in range(2):
                ex = await self.open(host, port, method, path, headers,
                                     content_length=len(data), timeout=timeout,
                                     fresh=attempt > 0, first=data)
                conn = ex._conn
                try:
                    ex._finished = True
                    return await ex.response()
                except ConnectionClosedError:
                    if attempt or not conn.reused or conn.any_bytes:
                        raise
            raise AssertionError("unreachable")  # pragma: no cover
        ex = await self.open(host, port, method, path, headers,
                             content_length=content_length, timeout=timeout)
        try:
            async for chunk in body:
                await ex.write(chunk)
            await ex.finish()
        except BaseException:
            ex.abort()
            raise
        return await ex.response()

    async def fetch(self, host: str, port: int, method: str, path: str,
                    headers: HeaderInput = None,
                    body: bytes | AsyncIterable[bytes] = b"", *,
                    timeout: float | None = -1.0) -> ClientResponse:
        """Send a request and read the whole response body into ``.body``."""
        resp = await self.request(host, port, method, path, headers, body, timeout=timeout)
        await resp.read()
        return resp

