"""The proxy on nubis' own HTTP/1.1 server (``[proxy] frontend = "native"``).

:class:`NativeFrontEnd` adapts :class:`~nubis.common.httpserver.Request` /
``Response`` to the framework-free core of :class:`~nubis.api.proxy.app.ProxyApp`
(``make_context`` -> ``respond`` -> ``final_headers``). It is the default front
end; the other is the ASGI app of :func:`~nubis.api.proxy.app.build_app` (Falcon on
uvicorn, ``[proxy] frontend = "asgi"``); both give clients the same answers.

PERF: uvicorn + Falcon cost the proxy about a third of its CPU per small
request and wrote every response with two ``send`` calls; the native server
writes head and a small body with one (``python -m nubis.bench swift``, 4 KiB
GET/PUT).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

from nubis.api.proxy.app import ProxyApp, _guard, head_problem
from nubis.api.proxy.context import Body, Ctx, Resp
from nubis.api.proxy.errors import ClientDisconnectError, HTTPError, error_response
from nubis.common.httpserver import (
    KEEPALIVE_TIMEOUT,
    BodyError,
    BodyTimeoutError,
    HTTPServer,
    Request,
    Response,
)
from nubis.common.metrics import Metrics, instrument

#: Whole request head accepted (every line is also limited to MAX_HEADER_SIZE).
MAX_HEAD_BYTES = 128 * 1024
#: Header lines accepted per request.
MAX_HEADER_COUNT = 256


class NativeBody(Body):
    """The client's request body read from a native :class:`Request`."""

    def __init__(self, req: Request, length: int | None, timeout: float) -> None:
        super().__init__(None, None, length, timeout)
        self.done = False
        self._req = req

    async def read_chunk(self) -> bytes:
        """Return the next piece of the body, ``b""`` at its end."""
        if self.done:
            return b""
        try:
            # The server's body timeout is the client timeout (see NativeFrontEnd.server).
            data = await self._req.read_chunk()
        except BodyTimeoutError:
            raise HTTPError(408, "Request Timeout: the client did not send "
                                 "its body in time.") from None
        except BodyError:
            raise ClientDisconnectError("client disconnected") from None
        if not data:
            self.done = True
            if self.length is not None and self.received < self.length:
                raise ClientDisconnectError("body shorter than Content-Length")
            return b""
        self.received += len(data)
        if self.length is not None and self.received > self.length:
            raise HTTPError(400, "Request body longer than Content-Length")
        if self.limit is not None and self.received > self.limit:
            raise HTTPError(413, "Your request is too large.")
        return data


class _DateCache:
    """The ``Date`` header value, formatted at most once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def now(self) -> str:
        sec = int(time.time())
        if sec != self.second:
            self.second = sec
            self.value = formatdate(sec, usegmt=True)
        return self.value


class NativeFrontEnd:
    """Serve a :class:`ProxyApp` with :class:`~nubis.common.httpserver.HTTPServer`."""

    def __init__(self, proxy: ProxyApp) -> None:
        self.proxy = proxy
        self.max_file_size = proxy.state.limits.max_file_size
        self.timeout = proxy.state.conf.client_timeout
        self._date = _DateCache()

    def server(self, host: str, port: int) -> HTTPServer:
        """Return an (unstarted) HTTP server for this front-end."""
        return HTTPServer(self.handle, host, port, max_header_size=MAX_HEAD_BYTES,
                          max_header_count=MAX_HEADER_COUNT,
                          keepalive_timeout=KEEPALIVE_TIMEOUT, body_timeout=self.timeout,
                          pass_refused_codings=True, pass_unknown_methods=True)

    async def handle(self, req: Request) -> Response:
        """Answer one client request."""
        problem = head_problem(req.raw_headers, self.max_file_size)
        if problem is not None:
            status, headers, body = error_response(problem)
            pairs = [*headers.items(), ("Date", self._date.now())]
            return Response(status, pairs, body, close=True)
        proxy = self.proxy

        def make_ctx() -> Ctx:
            def body(length: int | None) -> Body:
                return NativeBody(req, length, self.timeout)

            return proxy.make_context(req.method, req.path, req.query.encode("latin-1"),
                                      req.headers, body)

        result, ctx = await proxy.respond(make_ctx)
        return self._response(req, result, ctx)

    def _response(self, req: Request, result: Resp, ctx: Ctx | None) -> Response:
        headers = self.proxy.final_headers(result, ctx)
        declared = headers.pop("Content-Length", None)
        pairs = list(headers.items())
        pairs.append(("Date", self._date.now()))
        body = result.body
        status = result.status
        if isinstance(body, bytes):
            if status in (204, 304):  # keeps the length it declares (Swift's 204: 0)
                size = int(declared) if declared and declared.isdigit() else None
                return Response(status, pairs, b"", content_length=size)
            if req.method == "HEAD":
                size = int(declared) if declared and declared.isdigit() else 0
                return Response(status, pairs, b"", content_length=size)
            return Response(status, pairs, body)
        length: int | None = result.length
        if length is None and declared is not None and declared.isdigit():
            length = int(declared)
        stream: AsyncIterator[bytes] = _guard(body)
        if req.method == "HEAD":
            return Response(status, pairs, stream, content_length=length or 0)
        return Response(status, pairs, stream, content_length=length)


async def serve(proxy: ProxyApp, host: str, port: int, sock: Any = None,
                metrics: Metrics | None = None) -> None:
    """Serve ``proxy`` until cancelled (on ``sock`` when given, e.g. for workers).

    With ``metrics``, requests are counted and ``GET /metrics`` answers loopback peers.
    """
    server = NativeFrontEnd(proxy).server(host, port)
    if metrics is not None:
        server.handler = instrument(server.handler, metrics, loopback_only=True)
    await server.serve_forever(sock)
