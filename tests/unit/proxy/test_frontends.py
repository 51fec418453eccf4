"""The proxy core answers the same through both front-ends (native server, Falcon ASGI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import falcon.testing
import uvloop
from nubis.api.proxy.app import build_app, build_proxy
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.proxy.native import NativeFrontEnd
from nubis.api.proxy.server import SwiftCaseHead, utf8_httptools_protocol
from nubis.common.headnames import PREFIX
from nubis.common.httpclient import HTTPClient
from nubis.common.httpserver import joined_headers


def test_info_and_errors_match_across_front_ends(tmp_path: Path) -> None:
    conf, ta = ProxyConfig(), TempAuthConfig()
    asgi = falcon.testing.TestClient(build_app(conf, ta, tmp_path, "", "nubis"))
    info = asgi.simulate_get("/info")
    missing = asgi.simulate_get("/v2")  # no account: Swift's 412 "Bad URL"
    assert info.status_code == 200 and missing.status_code == 412
    lick = asgi.simulate_request("LICK", "/v1/AUTH_test/c")  # unknown to llhttp: 405
    assert (lick.status_code, lick.headers["allow"]) == (405, "GET, HEAD, PUT, POST, DELETE")

    async def native() -> tuple[int, bytes, int, bytes, str]:
        server = NativeFrontEnd(build_proxy(conf, ta, tmp_path, "", "nubis")).server(
            "127.0.0.1", 0)
        port = await server.start()
        client = HTTPClient(timeout=10)
        try:
            a = await client.fetch("127.0.0.1", port, "GET", "/info")
            b = await client.fetch("127.0.0.1", port, "GET", "/v2")
            h = await client.fetch("127.0.0.1", port, "HEAD", "/info")
            assert h.status == 200 and h.body == b""
            n = await client.fetch("127.0.0.1", port, "LICK", "/v1/AUTH_test/c")
            assert (n.status, n.headers["allow"], n.body) == (405, lick.headers["allow"],
                                                              lick.content)
            return a.status, a.body, b.status, b.body, b.headers["content-type"]
        finally:
            await client.close()
            await asyncio.wait_for(server.close(), 5)

    status, body, nstatus, nbody, ctype = uvloop.run(native())
    assert (status, json.loads(body)) == (200, info.json)
    assert (nstatus, nbody) == (412, missing.content)
    assert ctype == missing.headers["content-type"]


#: An S3 request with ``x-amz-date`` twice (Swift's suite: empty, then valid).
_TWO_DATES = [
    ("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
                      "SignedHeaders=host;x-amz-date, Signature=00"),
    ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("x-amz-date", ""),
    ("X-Amz-Date", "20260101T000000Z")]


def test_repeated_headers_are_joined_by_both_front_ends(tmp_path: Path) -> None:
    """Swift's WSGI server joins them: the S3 date above is no valid date (AccessDenied)."""
    assert joined_headers([(b"A", b"1"), (b"b", b"2"), (b"a", b"3")]) == {"a": "1, 3", "b": "2"}
    conf, ta = ProxyConfig(), TempAuthConfig()

    async def fetch(port: int) -> tuple[int, bytes]:
        client = HTTPClient(timeout=10)
        try:
            r = await client.fetch("127.0.0.1", port, "GET", "/", _TWO_DATES)
            return r.status, r.body.split(b"<RequestId>")[0]
        finally:
            await client.close()

    async def both() -> list[tuple[int, bytes]]:
        async with _uvicorn(build_app(conf, ta, tmp_path, "", "nubis")) as port:
            asgi = await fetch(port)
        server = NativeFrontEnd(build_proxy(conf, ta, tmp_path, "", "nubis")).server(
            "127.0.0.1", 0)
        try:
            return [asgi, await fetch(await server.start())]
        finally:
            await asyncio.wait_for(server.close(), 5)

    asgi, native = uvloop.run(both())
    assert asgi == native and asgi[0] == 403
    assert b"<Code>AccessDenied</Code>" in asgi[1]
    assert b"requires a valid Date or x-amz-date header" in asgi[1]


async def _raw_path_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer 411 to a PUT without Content-Length, else 200 with the raw path."""
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    names = {k for k, _ in scope["headers"]}
    status = 411 if scope["method"] == "PUT" and b"content-length" not in names else 200
    if b"transfer-encoding" in names:  # a refused coding: the body is empty
        status = 501 if body == b"" else 500
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(scope["raw_path"])).encode()),
                            (b"x-method", scope["method"].encode())]})
    await send({"type": "http.response.body", "body": scope["raw_path"]})


@contextlib.asynccontextmanager
async def _uvicorn(app: Any) -> AsyncIterator[int]:
    """Serve ``app`` with the ASGI front end's uvicorn protocol; yield its port."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=utf8_httptools_protocol(), lifespan="off",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(200):  # bounded wait for startup
            if server.started:
                break
            await asyncio.sleep(0.05)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def test_uvicorn_front_end_takes_raw_utf8_request_lines() -> None:
    """uvicorn's protocol of the ASGI front end escapes raw UTF-8 like the native server.

    It also hands a request with a refused transfer coding to the app with an
    empty body and closes the connection after the answer.
    """
    async def main() -> None:
        async with _uvicorn(_raw_path_app) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write("GET /v1/a/\u00e9\u2603 HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert b"\r\nContent-Length: " in head  # Swift's case, not uvicorn's
            assert await reader.readexactly(len(b"/v1/a/%C3%A9%E2%98%83")) \
                == b"/v1/a/%C3%A9%E2%98%83"
            for method in (b"LICK", b"GETorHEAD_base", b"GET"):  # llhttp knows only GET
                writer.write(method + b" /v1/a HTTP/1.1\r\nHost: h\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and b"\r\nX-Method: " + method in head
                assert await reader.readexactly(5) == b"/v1/a"
            writer.write(b"PUT /v1/a/c/o HTTP/1.1\r\nHost: h\r\n\r\ntesting")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 411")
            writer.close()
            for coding, rest in ((b"gzip,chunked", bytes(range(256))), (b"gzip", b"abc"),
                                 (b"gzip, chunked", b"3\r\nabc\r\n0\r\n\r\n"
                                                    b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"PUT /v1/a/c/o HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                             + coding + b"\r\n\r\n" + rest)
                answer = await reader.read()  # closed after the one answer
                assert answer.startswith(b"HTTP/1.1 501"), (coding, answer)
                assert answer.count(b"HTTP/1.1") == 1, (coding, answer)
                writer.close()

    uvloop.run(main())


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


def test_swift_case_head_title_cases_only_the_response_head() -> None:
    """The head's names are title-cased; 100 Continue, values and bodies are not touched."""
    transport = _Transport()
    view = SwiftCaseHead(transport)
    view.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    view.write(b"HTTP/1.1 200 OK\r\nx-object-meta-color: blUe\r\n"
               b"etag: \"a:b\"\r\nx-amz-meta-color: red\r\ncontent-length: 9\r\n\r\n")
    view.write(b"HTTP/1.1 x")
    assert transport.written == [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Object-Meta-Color: blUe\r\n"
        b"Etag: \"a:b\"\r\nx-amz-meta-color: red\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 x"]
    assert view.is_closing() is False


def test_swift_case_head_gives_odd_names_back() -> None:
    """Names escaped for uvicorn are written as they were (title-cased but ``x-amz-*``)."""
    transport = _Transport()
    view = SwiftCaseHead(transport)
    view.write(b"HTTP/1.1 200 OK\r\n" + PREFIX + b"x-object-meta-(".hex().encode()
               + b": (\r\n" + PREFIX + b"x-amz-meta-@".hex().encode() + b": @\r\n\r\n")
    assert transport.written == [
        b"HTTP/1.1 200 OK\r\nX-Object-Meta-(: (\r\nx-amz-meta-@: @\r\n\r\n"]
