"""A small, fast asyncio HTTP/1.1 server (uvloop + httptools' request parser).

Handlers are ``async def handle(req: Request) -> Response``. Request bodies are
streamed (``await req.read()``, ``async for chunk in req.iter_body()``) with
flow control; ``Expect: 100-continue`` is answered when the handler first reads
the body, so a handler that rejects a request early never receives it.
Responses carry ``bytes`` or an async iterator of ``bytes`` (sent with
``Content-Length`` when known, else chunked). Connections are kept alive and
pipelined requests are answered in order. Malformed requests get a plain
``400 Bad Request`` and the connection is closed; handler crashes give a 500.

PERF: this module sits on every storage request; status lines are
precomputed, headers are kept as raw lists, and a response with a bytes body is
written with one ``transport.write`` (``python -m nubis.bench swift``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
from nubis.common.headnames import unescape_name
from nubis.common.requestlines import RequestLines, coding_refused, origin_form

LOG = logging.getLogger(__name__)

#: Reason phrases, precomputed status lines.
_STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 11\r\nConnection: close\r\n\r\nBad Request")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 19\r\nConnection: close\r\n\r\nService Unavailable")
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 31\r\nConnection: close\r\n\r\n"
              b"Request Header Fields Too Large")
#: Bodies smaller than this are joined with the head into one write.
_JOIN_MAX = 1 << 16
#: Body bytes buffered per request before the socket stops being read.
_BODY_HIGH_WATER = 1 << 20
#: Pipelined requests queued per connection before the socket stops being read.
_MAX_PIPELINE = 16


#: PERF: raw header name -> lower-case str, shared by all connections; bounded
#: so that odd clients cannot grow it (``python -m nubis.bench swift``).
_NAME_CACHE: dict[bytes, str] = {}
_NAME_CACHE_MAX = 512


def joined_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Return headers by lower-case name, repeated ones joined with ``", "``.

    As Swift's WSGI server: a request with ``x-amz-date`` twice sees both values.
    """
    headers: dict[str, str] = {}
    names = _NAME_CACHE
    for name, value in raw_headers:
        key = names.get(name)
        if key is None:
            key = unescape_name(name).decode("latin-1").lower()
            if len(names) < _NAME_CACHE_MAX:
                names[name] = key
        val = value.decode("latin-1")
        old = headers.get(key)
        headers[key] = val if old is None else f"{old}, {val}"
    return headers


class BodyError(Exception):
    """The request body was cut off (client disconnected or bad framing)."""


class BodyTimeoutError(BodyError):
    """No piece of the request body arrived within the body timeout."""


def _expire_waiter(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def status_line(status: int) -> bytes:
    """Return the HTTP/1.1 status line for ``status`` (with CRLF)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} Unknown\r\n".encode()
    return line


class Request:
    """One parsed request: method, raw path and query, headers, a body stream."""

    __slots__ = ("_body_buf", "_body_done", "_body_error", "_body_size", "_conn",
                 "_continue_sent", "_waiter", "expect_continue", "headers", "keep_alive",
                 "method", "path", "query", "raw_headers", "trailers")

    def __init__(self, conn: _Connection, method: str, url: bytes,
                 raw_headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self._conn = conn
        self.method = method
        if url[:1] != b"/":
            url = origin_form(url)
        path, _, query = url.partition(b"?")
        #: Raw (still percent-encoded) path, decoded as latin-1.
        self.path = path.decode("latin-1")
        #: Raw query string (no leading ``?``).
        self.query = query.decode("latin-1")
        self.raw_headers = raw_headers
        #: Headers with lower-case names; repeated headers are joined with ", ".
        self.headers = headers = joined_headers(raw_headers)
        #: Trailer fields of a chunked body (complete once the body is read).
        self.trailers: list[tuple[bytes, bytes]] = []
        self.keep_alive = keep_alive
        self.expect_continue = headers.get("expect", "").lower() == "100-continue"
        self._continue_sent = False
        self._body_buf: collections.deque[bytes] = collections.deque()
        self._body_size = 0
        self._body_done = False
        self._body_error = False
        self._waiter: asyncio.Future[bool] | None = None

    @property
    def peer_host(self) -> str | None:
        """Return the client's IP address (None when unknown)."""
        transport = self._conn.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if peer else None

    # -- feeding (called by the connection) --------------------------------
    def _feed(self, data: bytes) -> None:
        self._body_buf.append(data)
        self._body_size += len(data)
        self._wake()

    def _feed_eof(self) -> None:
        self._body_done = True
        self._wake()

    def _abort(self) -> None:
        if not self._body_done:
            self._body_error = True
            self._body_done = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(True)

    # -- reading (called by the handler) ------------------------------------
    @property
    def body_complete(self) -> bool:
        """Tell whether the whole body has arrived (no more chunks will come)."""
        return self._body_done and not self._body_buf

    async def read_chunk(self) -> bytes:
        """Return the next piece of the body, ``b""`` at its end.

        Raises:
            BodyError: the client went away before sending the whole body.
        """
        if self.expect_continue and not self._continue_sent:
            self._continue_sent = True
            self._conn.send_continue()
        while not self._body_buf:
            if self._body_done:
                if self._body_error:
                    raise BodyError("request body cut off")
                return b""
            # PERF: a timer on the waiter, not wait_for (no wrapper future and
            # callback chain per received piece; python -m nubis.bench swift 1 MiB PUT).
            waiter = self._waiter = self._conn.loop.create_future()
            timer = self._conn.loop.call_later(self._conn.server.body_timeout,
                                               _expire_waiter, waiter)
            try:
                if not await waiter:
                    raise BodyTimeoutError("request body timed out")
            finally:
                timer.cancel()
                self._waiter = None
        data = self._body_buf.popleft()
        self._body_size -= len(data)
        if self._body_size < _BODY_HIGH_WATER:
            self._conn.resume_body()
        return data

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the body in pieces as they arrive."""
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                return
            yield chunk

    async def read(self, limit: int = -1) -> bytes:
        """Return the whole body (raise BodyError if longer than ``limit`` >= 0)."""
        parts: list[bytes] = []
        total = 0
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                break
            total += len(chunk)
            if 0 <= limit < total:
                raise BodyError("request body too large")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass(slots=True)
class Response:
    """A response: status, header pairs and a bytes or streamed body.

    ``content_length`` is required for a streamed body sent without chunking
    and for HEAD replies (where the body is never sent); for bytes bodies it is
    computed, except for 204 and 304 replies, which carry ``Content-Length``
    only when it is given. ``on_sent`` runs after the last byte was handed to the socket.
    """

    status: int = 200
    headers: list[tuple[str, str]] | None = None
    body: bytes | AsyncIterator[bytes] = b""
    content_length: int | None = None
    close: bool = False
    on_sent: Callable[[], None] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def _encode_headers(headers: Iterable[tuple[str, str]] | None) -> list[bytes]:
    """Encode header lines; CR/LF in values are blanked (no response splitting)."""
    out: list[bytes] = []
    if headers:
        for name, value in headers:
            line = f"{name}: {value}\r\n"
            if "\r" in value or "\n" in value:
                line = f"{name}: {value.replace(chr(13), ' ').replace(chr(10), ' ')}\r\n"
            try:
                out.append(line.encode("latin-1"))
            except UnicodeEncodeError:  # not a WSGI-style latin-1 str: send UTF-8
                out.append(line.encode("utf-8"))
    return out


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs the handler, writes replies."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.lines = RequestLines(server.pass_unknown_methods)
        self.url = b""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.current: Request | None = None
        self.pending: collections.deque[Request] = collections.deque()
        self.runner: asyncio.Task[None] | None = None
        self.closed = False
        self.reading_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.idle_handle: asyncio.TimerHandle | None = None
        #: When the connection last became idle or got part of a request head.
        self.idle_since = 0.0
        self._last: Request | None = None
        self.too_large = False
        #: The parser failed: answer the current request, then close.
        self.broken = False
        #: The request whose handler is running.
        self.serving: Request | None = None
        #: A request with a refused transfer coding (see :func:`coding_refused`).
        self.unframed: Request | None = None

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.server.connections) >= self.server.max_connections:
            self.transport.write(_BUSY)
            self.transport.close()
            self.closed = True
            return
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if self.current is not None:
            self.current._abort()
        for req in self.pending:
            req._abort()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(self.lines.prepare(data))
            if self.current is None and not self.closed:
                self._arm_idle()  # partial request head: bounded by the idle timeout
        except httptools.HttpParserUpgrade:
            self._fail(_BAD_REQUEST)
        except (httptools.HttpParserError, _HeaderTooLargeError):
            self._fail(_TOO_LARGE if self.too_large else _BAD_REQUEST)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    # -- httptools callbacks -------------------------------------------------
    def on_message_begin(self) -> None:
        self.lines.message_begin()
        self.url = b""
        self.raw_headers = []
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.server.max_header_size:
            self.too_large = True
            raise _HeaderTooLargeError

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if (self.header_bytes > self.server.max_header_size
                or len(self.raw_headers) >= self.server.max_header_count):
            self.too_large = True
            raise _HeaderTooLargeError
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        swapped = self.lines.head_complete()
        parser = self.parser
        method = swapped or parser.get_method().decode("ascii")
        req = Request(self, method, self.url, self.raw_headers, parser.should_keep_alive())
        # Fields parsed from here on are a chunked body's trailer: the request's own.
        self.raw_headers = req.trailers
        if self.server.pass_refused_codings and coding_refused(
                req.headers.get("transfer-encoding")):
            self._unframe(req)
        if self.current is None and self.runner is None:
            self.current = req
            self.runner = self.loop.create_task(self._run(req))
        else:
            self.pending.append(req)
            if len(self.pending) >= _MAX_PIPELINE:
                self._pause_reading()
        self._last = req

    def _unframe(self, req: Request) -> None:
        """Give ``req`` an empty body; close after its answer, parse nothing after it."""
        req.keep_alive = False
        req._feed_eof()
        self.unframed = req
        self._pause_reading()

    def on_body(self, body: bytes) -> None:
        req = self._last
        assert req is not None
        if req is self.unframed:
            return
        req._feed(body)
        if req._body_size >= _BODY_HIGH_WATER:
            self._pause_reading()

    def on_message_complete(self) -> None:
        self.lines.message_complete()
        if self._last is not None:
            self._last._feed_eof()

    # -- flow control ----------------------------------------------------------
    def _pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_body(self) -> None:
        """Resume reading the socket once the handler consumed buffered body."""
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()

    def send_continue(self) -> None:
        """Write ``100 Continue`` (the handler started reading the body)."""
        if self.transport is not None and not self.closed:
            self.transport.write(_CONTINUE)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        while self.write_paused and not self.closed:
            self.drain_waiter = self.loop.create_future()
            await self.drain_waiter

    def _fail(self, payload: bytes) -> None:
        if self.unframed is not None and not self.closed:
            self._pause_reading()  # what follows a refused coding: answer, then close
            return
        if self.current is not None and self.lines.garbage_after() and not self.closed:
            self.broken = True  # answer the requests read so far, then close
            self._pause_reading()
            return
        if self.current is not None and self.serving is not self.current \
                and self.runner is not None:
            # Its handler has not started yet (the error came in the same read
            # as the head): answer 400 instead of running it.
            self.runner.cancel()
            self.runner = None
            self.current = None
        if self.current is not None and self.transport is not None and not self.closed:
            # Bad framing after a request head: its handler may still answer
            # (e.g. 400 for an unknown Transfer-Encoding); its body is cut off
            # and the connection closes after that response.
            self.broken = True
            self._pause_reading()
            self.current._abort()
            for req in self.pending:
                req._abort()
            return
        if self.transport is not None and not self.closed:
            self.transport.write(payload)
            self.transport.close()
        self.closed = True

    def _arm_idle(self) -> None:
        """Start (again) the idle timeout: the connection waits for a request (head).

        PERF: the timer is not cancelled and re-made per request (~1-2 us each,
        on every request of every server: ``python -m nubis.bench s3``); one
        pending timer per connection checks, when it fires, whether the
        connection has been idle long enough, and else waits for the rest.
        """
        timeout = self.server.keepalive_timeout
        if timeout > 0 and not self.closed:
            self.idle_since = self.loop.time()
            if self.idle_handle is None:
                self.idle_handle = self.loop.call_later(timeout, self._idle_check)

    def _idle_check(self) -> None:
        self.idle_handle = None
        if self.current is not None or self.transport is None or self.closed:
            return  # serving: the timeout starts again when the connection is idle
        left = self.idle_since + self.server.keepalive_timeout - self.loop.time()
        if left > 0:
            self.idle_handle = self.loop.call_later(left, self._idle_check)
        else:
            self.transport.close()

    # -- request runner ----------------------------------------------------------
    async def _run(self, req: Request) -> None:
        try:
            while True:
                keep = await self._serve_one(req)
                if not keep or self.closed:
                    if self.transport is not None:
                        self.transport.close()
                    return
                if not self.pending:
                    self.current = None
                    self._arm_idle()
                    return
                req = self.pending.popleft()
                self.current = req
                self.resume_body()
        finally:
            self.runner = None
            if self.closed:
                self.current = None

    async def _serve_one(self, req: Request) -> bool:
        self.serving = req
        try:
            resp = await self.server.handler(req)
        except BodyError:
            return False
        except Exception:
            LOG.exception("handler failed: %s %s", req.method, req.path)
            resp = Response(500, [("Content-Type", "text/plain")], b"Internal Server Error",
                            close=True)
        if self.closed:
            return False
        keep = req.keep_alive and not resp.close and not self.broken
        if keep and not req.body_complete:
            keep = await self._discard_body(req)
        if self.closed:  # the client went away meanwhile
            return False
        try:
            await self._write_response(req, resp, keep)
        except (BodyError, ConnectionError):
            return False
        except Exception:
            if self.transport is None or self.transport.is_closing():
                return False  # uvloop's RuntimeError for a peer gone mid-answer
            LOG.exception("response body failed: %s %s", req.method, req.path)
            return False
        if resp.on_sent is not None:
            resp.on_sent()
        if not keep:
            await self._linger(req)
        return keep

    async def _linger(self, req: Request) -> None:
        """Read and drop what the client still sends of a body before closing.

        Closing a socket with unread bytes makes the kernel reset the
        connection, and a client still sending its body (a 100 MB multi-delete
        answered after its first 2 MiB) then gets ``ECONNRESET`` instead of
        the answer. As eventlet and uvicorn do, the rest of the body is read
        (up to ``max_linger`` bytes, each piece within the body timeout) after
        the answer, whose end is marked with a half-close.
        """
        if (req.body_complete or self.closed or self.transport is None
                or (req.expect_continue and not req._continue_sent)):
            return  # nothing more to come (or never invited)
        with contextlib.suppress(OSError, RuntimeError):
            if self.transport.can_write_eof():
                self.transport.write_eof()
        budget = self.server.max_linger
        try:
            while budget > 0 and not self.closed:
                chunk = await req.read_chunk()
                if not chunk:
                    return
                budget -= len(chunk)
        except BodyError:
            return

    async def _discard_body(self, req: Request) -> bool:
        """Drop an unread request body so the connection can be reused."""
        if req.expect_continue and not req._continue_sent:
            return False  # never invited the body: close instead of reading it
        budget = self.server.max_discard
        try:
            while budget > 0:
                chunk = await req.read_chunk()
                if not chunk:
                    return True
                budget -= len(chunk)
        except BodyError:
            return False
        return False

    async def _write_response(self, req: Request, resp: Response, keep: bool) -> None:
        transport = self.transport
        assert transport is not None
        body = resp.body
        no_body = req.method == "HEAD" or resp.status in (204, 304) or resp.status < 200
        parts = [status_line(resp.status)]
        parts.extend(_encode_headers(resp.headers))
        if not keep:
            parts.append(b"Connection: close\r\n")
        if isinstance(body, bytes):
            length = resp.content_length if resp.content_length is not None else len(body)
            if (resp.status != 204 and resp.status != 304) or resp.content_length is not None:
                # A 204/304 announces a length only when the handler gives one
                # (Swift's 204s carry ``Content-Length: 0``).
                parts.append(b"Content-Length: %d\r\n\r\n" % length)
            else:
                parts.append(b"\r\n")
            if no_body or not body:
                transport.write(b"".join(parts))
            elif len(body) < _JOIN_MAX:
                parts.append(body)
                transport.write(b"".join(parts))
            else:  # PERF: no copy of a large body (python -m nubis.bench swift)
                transport.writelines((b"".join(parts), body))
            if self.write_paused:
                await self.drain()
            return
        chunked = resp.content_length is None
        if chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n\r\n")
        else:
            parts.append(b"Content-Length: %d\r\n\r\n" % resp.content_length)  # type: ignore[str-format]
        transport.write(b"".join(parts))
        if no_body:
            await _aclose(body)
            return
        await self._stream_body(transport, body, chunked)

    async def _stream_body(self, transport: asyncio.Transport, body: AsyncIterator[bytes],
                           chunked: bool) -> None:
        try:
            async for chunk in body:
                if self.closed:
                    raise ConnectionError("client went away")
                if not chunk:
                    continue
                if chunked:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    transport.write(chunk)
                if self.write_paused:
                    await self.drain()
            if chunked:
                transport.write(b"0\r\n\r\n")
        except Exception:
            # A failing body must not look complete: drop the connection.
            transport.abort()
            self.closed = True
            raise
        finally:
            await _aclose(body)


async def _aclose(body: Any) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()


class _HeaderTooLargeError(Exception):
    pass


#: Seconds an idle keep-alive connection stays open. uvicorn's default (5 s) equals the
#: status-poll interval of ``openstack ... --wait``, so a poll raced the server's close
#: and got "connection reset by peer"; every server of nubis uses this instead.
KEEPALIVE_TIMEOUT = 75


class HTTPServer:
    """Serve ``handler`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, *,
                 max_header_size: int = 16384, max_header_count: int = 128,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT, max_discard: int = 1 << 20,
                 max_linger: int = 1 << 30,
                 body_timeout: float = 60.0, max_connections: int = 4096,
                 backlog: int = 1024, pass_refused_codings: bool = False,
                 pass_unknown_methods: bool = False) -> None:
        """Configure the server.

        ``pass_refused_codings``: see :func:`coding_refused`; ``pass_unknown_methods``:
        requests with methods llhttp does not know reach the handler (see
        :class:`RequestLines`) instead of getting a 400.
        """
        self.handler = handler
        self.host = host
        self.port = port
        self.max_header_size = max_header_size
        self.max_header_count = max_header_count
        self.keepalive_timeout = keepalive_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.max_discard = max_discard
        #: Body bytes read and dropped after a closing answer (see ``_linger``).
        self.max_linger = max_linger
        self.backlog = backlog
        self.pass_refused_codings = pass_refused_codings
        self.pass_unknown_methods = pass_unknown_methods
        self.connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._local: list[asyncio.AbstractServer] = []

    async def start(self, sock: socket.socket | None = None) -> int:
        """Start listening (on ``sock`` when given, e.g. shared by workers); return the port."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: _Connection(self), sock=sock,
                                                    backlog=self.backlog)
        else:
            self._server = await loop.create_server(
                lambda: _Connection(self), self.host, self.port,
                reuse_address=True, backlog=self.backlog)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    async def start_local(self, name: str) -> None:
        """Listen on the Unix socket ``name`` too (see :func:`~nubis.common.net.local_socket_name`).

        Raises:
            OSError: ``name`` is taken (``EADDRINUSE``).
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            sock.listen(self.backlog)
            sock.setblocking(False)
            server = await asyncio.get_running_loop().create_unix_server(
                lambda: _Connection(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._local.append(server)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        listeners = ([self._server] if self._server is not None else []) + self._local
        for listener in listeners:
            listener.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        for listener in listeners:
            await listener.wait_closed()
        self._server = None
        self._local = []

    async def serve_forever(self, sock: socket.socket | None = None) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._server is None:
            await self.start(sock)
        assert self._server is not None
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()


def plain(status: int, text: str = "", headers: list[tuple[str, str]] | None = None) -> Response:
    """Return a ``text/plain`` response (body defaults to the reason phrase)."""
    if not text and status >= 300:
        try:
            text = HTTPStatus(status).phrase
        except ValueError:
            text = ""
    hdrs = [("Content-Type", "text/plain; charset=utf-8")]
    if headers:
        hdrs.extend(headers)
    return Response(status, hdrs, text.encode())


def run_uvloop(main: Awaitable[Any]) -> Any:
    """Run ``main`` on a uvloop event loop (falls back to asyncio's loop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]
