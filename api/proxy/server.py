"""Run the proxy: ``nubis daemon proxy`` (Falcon on uvicorn, or nubis' own HTTP server).

The entry point takes the proxy's own sections (``[proxy]``, ``[tempauth]``),
the cluster-wide one and the cloud's token settings (for the Keystone verifier
hooks of ``[proxy] token_verifiers``). With ``workers > 1`` both front ends fork
that many worker processes sharing one listening socket; each builds its own
app and event loop after the fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.api.proxy.auth import TokenVerifier
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.shared.config import TokenSettings
from nubis.common.cluster import ClusterConfig
from nubis.common.headnames import PREFIX, unescape_name
from nubis.common.httpserver import KEEPALIVE_TIMEOUT
from nubis.common.metrics import Metrics, MetricsMiddleware
from nubis.common.procutil import die_with_parent


@dataclass(frozen=True)
class ProxySettings:
    """Everything a proxy worker is built from."""

    proxy: ProxyConfig
    tempauth: TempAuthConfig
    cluster: ClusterConfig
    tokens: TokenSettings | None = None

    @property
    def ring_dir(self) -> Path:
        """Return where the rings live."""
        if self.proxy.ring_dir:
            return Path(self.proxy.ring_dir)
        return Path(self.cluster.state_dir) / "rings"

    @property
    def host(self) -> str:
        """Return the address to bind."""
        return self.proxy.bind_ip or self.cluster.bind_ip

    def verifiers(self) -> list[TokenVerifier]:
        """Build the extra token verifiers named in ``[proxy] token_verifiers``.

        Each ``"module:function"`` is called with the token settings and the
        ``[tempauth]`` section.
        """
        out: list[TokenVerifier] = []
        for target in self.proxy.token_verifiers:
            if self.tokens is None:
                raise ValueError(f"token verifier {target} needs token settings")
            module, _, func = target.partition(":")
            out.append(getattr(importlib.import_module(module), func)(self.tokens,
                                                                     self.tempauth))
        return out


    def s3_source(self) -> Any:
        """Build the S3 credential source named in ``[proxy] s3_credentials`` (or None)."""
        from nubis.api.proxy.s3.router import load_source

        return load_source(self.proxy.s3_credentials, self.tokens)


def make_app(settings: ProxySettings) -> Any:
    """Build the ASGI app for one worker."""
    from nubis.api.proxy.app import build_app

    return build_app(settings.proxy, settings.tempauth, settings.ring_dir,
                     settings.cluster.hash_path_prefix, settings.cluster.hash_path_suffix,
                     settings.verifiers(), settings.s3_source(), settings.cluster.policies(),
                     local_sockets=settings.cluster.local_sockets)


def run(proxy: ProxyConfig, tempauth: TempAuthConfig, cluster: ClusterConfig,
        tokens: TokenSettings | None = None, once: bool = False) -> int:
    """Serve the Swift API until stopped, with the ``[proxy] frontend`` configured."""
    del once
    settings = ProxySettings(proxy, tempauth, cluster, tokens)
    logging.getLogger("nubis.proxy").setLevel(proxy.log_level)
    serve = _serve_uvicorn if proxy.frontend == "asgi" else _serve_native
    sock = socket.create_server((settings.host, proxy.port), backlog=2048, reuse_port=False)
    if proxy.workers <= 1:
        serve(settings, sock)
        return 0
    return _fork_workers(proxy.workers, lambda: serve(settings, sock), sock)


def _fork_workers(count: int, serve: Callable[[], None], sock: socket.socket) -> int:
    """Run ``serve`` in ``count`` forked workers sharing ``sock``; wait for them."""
    children: list[int] = []
    parent = os.getpid()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # worker: build its own app and event loop after the fork
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # A parent killed outright must not leave workers serving the port.
                die_with_parent(parent, signal.SIGTERM)
                serve()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()
    return _supervise(children)


def _serve_native(settings: ProxySettings, sock: socket.socket) -> None:
    """Serve on nubis' own HTTP server."""
    from nubis.api.proxy.app import build_proxy
    from nubis.api.proxy.native import serve
    from nubis.common.httpserver import run_uvloop

    sock.setblocking(False)

    async def main() -> None:
        proxy = build_proxy(settings.proxy, settings.tempauth, settings.ring_dir,
                            settings.cluster.hash_path_prefix,
                            settings.cluster.hash_path_suffix, settings.verifiers(),
                            settings.s3_source(), settings.cluster.policies(),
                            local_sockets=settings.cluster.local_sockets)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        task = asyncio.ensure_future(serve(proxy, "", 0, sock, Metrics("proxy")))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxy.state.backend.client.close()

    run_uvloop(main())


def _serve_uvicorn(settings: ProxySettings, sock: socket.socket) -> None:
    """Serve the ASGI app (Falcon) with uvicorn."""
    import uvicorn

    conf = settings.proxy
    app = MetricsMiddleware(make_app(settings), Metrics("proxy"))
    # PERF: no X-Forwarded-* rewriting: the proxy never reads the client address,
    # and the middleware's header scan cost ~5% of the proxy's CPU per 4 KiB PUT
    # (py-spy, python -m nubis.bench swift). It also stops local clients spoofing it.
    config = uvicorn.Config(app, loop="uvloop", http=utf8_httptools_protocol(),
                            proxy_headers=False,
                            lifespan="off", access_log=False, server_header=False,
                            log_level=conf.log_level.lower(), timeout_keep_alive=KEEPALIVE_TIMEOUT,
                            h11_max_incomplete_event_size=16384)
    uvicorn.Server(config).run(sockets=[sock])


class SwiftCaseHead:
    """Write a response head's header names in Swift's case, the rest unchanged.

    Swift (swob's ``HeaderKeyDict``) title-cases every response header name
    (``X-Object-Meta-Color``); uvicorn lowercases them. This view of the
    connection's transport rewrites the first write that is not
    ``100 Continue``, which is uvicorn's whole response head, and passes every
    later write (the body) through untouched.
    """

    __slots__ = ("_head_sent", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head_sent = False

    def write(self, data: bytes) -> None:
        """Write ``data``, title-casing header names if it is the response head."""
        if not self._head_sent and not data.startswith(CONTINUE_LINE):
            self._head_sent = True
            data = title_case_head(data)
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


CONTINUE_LINE = b"HTTP/1.1 100 "
#: S3 names stay lowercase, as AWS and Swift's s3api send them (clients such as
#: botocore keep the case of ``x-amz-meta-*`` keys).
AMZ_PREFIX = b"x-amz-"


def title_case_head(head: bytes) -> bytes:
    """Return an HTTP response head with each header name title-cased (but ``x-amz-*``)."""
    lines = head.split(b"\r\n")
    for i in range(1, len(lines)):
        name, sep, value = lines[i].partition(b":")
        if not sep:
            continue
        if name.startswith(PREFIX):  # an odd name, escaped for uvicorn (headnames)
            name = unescape_name(name)
        elif name.startswith(AMZ_PREFIX):
            continue
        lines[i] = (name if name.startswith(AMZ_PREFIX) else name.title()) + sep + value
    return b"\r\n".join(lines)


def utf8_httptools_protocol() -> type[Any]:
    """Return uvicorn's httptools protocol that accepts raw UTF-8 in request lines.

    Swift's clients may send unescaped UTF-8 paths (its suite's ``no_path_quote``);
    :class:`~nubis.common.requestlines.RequestLines` percent-encodes them before
    llhttp, which refuses them, parses the line. Bytes sent after a complete
    request that do not parse as one (the body of a ``PUT`` without
    ``Content-Length``) close the connection after that request's answer (411)
    instead of replacing it with a 400, as in nubis' own server. A request whose
    ``Transfer-Encoding`` is not plain ``chunked`` reaches the app with an empty
    body (Swift answers 501 or 400) and the connection closes after its answer
    (:func:`~nubis.common.requestlines.coding_refused`). A method llhttp does not
    know (``LICK``) reaches the app as sent, for its 405; so do header names
    llhttp refuses (``x-amz-meta-(``, :mod:`nubis.common.headnames`).
    """
    from nubis.common.headnames import unescape_pairs
    from nubis.common.requestlines import RequestLines, coding_refused
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Utf8HttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.request_lines = RequestLines(methods=True)
            self.codings: list[bytes] = []
            self.unframed: Any = None  # the cycle of a refused transfer coding

        def data_received(self, data: bytes) -> None:
            super().data_received(self.request_lines.prepare(data))

        def on_message_begin(self) -> None:
            self.request_lines.message_begin()
            self.codings = []
            super().on_message_begin()

        def on_header(self, name: bytes, value: bytes) -> None:
            if len(name) == 17 and name.lower() == b"transfer-encoding":
                self.codings.append(value.strip())
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            swapped = self.request_lines.head_complete()
            super().on_headers_complete()
            if swapped is not None:
                self.scope["method"] = swapped  # parsed as the placeholder
            if self.request_lines.renamed:  # odd names were escaped for llhttp
                self.request_lines.renamed = False
                self.scope["headers"] = unescape_pairs(self.scope["headers"])
            view: Any = SwiftCaseHead(self.transport)  # the cycle's writes go through it
            self.cycle.transport = view
            if self.codings and coding_refused(b", ".join(self.codings)):
                cycle = self.unframed = self.cycle
                cycle.keep_alive = False
                cycle.more_body = False
                cycle.message_event.set()
                self.flow.pause_reading()

        def on_body(self, body: bytes) -> None:
            if self.cycle is not self.unframed:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self.request_lines.message_complete()
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            cycle = self.cycle
            if self.unframed is not None:
                self.flow.pause_reading()  # what follows a refused coding: answer, close
                return
            if (cycle is not None and not cycle.response_complete
                    and self.request_lines.garbage_after()):
                cycle.keep_alive = False  # answer the request read so far, then close
                self.flow.pause_reading()
                return
            super().send_400_response(msg)

    return Utf8HttpToolsProtocol


def _supervise(children: list[int]) -> int:
    """Wait for the workers; SIGTERM/SIGINT are passed on to them."""
    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for pid in children:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
        if os.waitstatus_to_exitcode(code) not in (0, -signal.SIGTERM, -signal.SIGINT):
            status = 1
    return status
