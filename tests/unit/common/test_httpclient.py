"""The pooled HTTP/1.1 client against the real server on loopback."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop
from nubis.common.httpclient import (
    ClientTimeoutError,
    ConnectError,
    ConnectionClosedError,
    HTTPClient,
    HTTPClientError,
    _send_head,
)
from nubis.common.httpserver import HTTPServer, Request, Response
from nubis.common.net import local_socket_name

from tests.ports import free_port

HOST = "127.0.0.1"


class Recorder:
    def __init__(self) -> None:
        self.peers: list[Any] = []

    async def handle(self, req: Request) -> Response:
        if req.path == "/reject":
            return Response(413, [], b"too big")
        body = await req.read()
        self.peers.append(req._conn.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        if req.path == "/slow":
            await asyncio.sleep(5)
        if req.path == "/stream":
            async def gen() -> AsyncIterator[bytes]:
                for i in range(5):
                    yield b"%d" % i * 1000
            return Response(200, [("X-Kind", "stream")], gen())
        if req.path == "/close":
            return Response(200, [], b"bye", close=True)
        if req.path == "/ranged":  # one range of a 100-byte resource, as object servers do
            return Response(206, [("Content-Range", "bytes 90-99/100"), ("Etag", "e")],
                            b"9" * 10)
        if req.path == "/odd-range":
            return Response(206, [("Content-Range", "bytes */100")], b"")
        if req.path in ("/empty-416", "/full-416"):  # a range past a 0- or 100-byte resource
            size = "0" if req.path == "/empty-416" else "100"
            return Response(416, [("Content-Range", f"bytes */{size}"), ("Etag", "e")], b"")
        if req.path == "/trailers":  # a chunked body's trailer, read after the body
            return Response(200, [(k.decode(), v.decode()) for k, v in req.trailers], body)
        if req.path == "/meta":  # odd names travel both ways (nubis.common.headnames)
            return Response(200, [(k, v) for k, v in req.headers.items()
                                  if k.startswith("x-object-meta-")], b"")
        return Response(200, [("X-Len", str(len(body))), ("X-Method", req.method),
                              ("X-Chunked", req.headers.get("transfer-encoding", ""))], body)


async def with_server(scenario: Callable[[HTTPClient, int, Recorder], Awaitable[None]]) -> None:
    rec = Recorder()
    srv = HTTPServer(rec.handle)
    port = await srv.start()
    client = HTTPClient(timeout=2, connect_timeout=2)
    try:
        await asyncio.wait_for(scenario(client, port, rec), 30)
    finally:
        await client.close()
        await srv.close()


def test_pool_reuses_connections() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        for i in range(5):
            r = await client.fetch(HOST, port, "PUT", f"/x{i}", {"X-A": "1"}, b"abc")
            assert r.status == 200 and r.body == b"abc" and r.headers["x-len"] == "3"
        assert len(set(rec.peers)) == 1
        assert client.idle_count(HOST, port) == 1
        rs = await asyncio.gather(*(client.fetch(HOST, port, "GET", "/") for _ in range(8)))
        assert all(r.status == 200 for r in rs)
        assert client.idle_count(HOST, port) == 8
        r = await client.fetch(HOST, port, "HEAD", "/")
        assert r.status == 200 and r.body == b""
        r = await client.fetch(HOST, port, "GET", "/close")
        assert r.body == b"bye"
        assert client.idle_count(HOST, port) == 7  # the closed one is not pooled
    uvloop.run(with_server(scenario))


def test_chunked_upload_and_streamed_download() -> None:
    async def body() -> AsyncIterator[bytes]:
        for part in (b"ab", b"cd", b"e"):
            yield part

    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        r = await client.request(HOST, port, "PUT", "/up", None, body())
        assert r.headers["x-chunked"] == "chunked"
        assert await r.read() == b"abcde"
        r = await client.request(HOST, port, "GET", "/stream")
        chunks = [c async for c in r.iter_body()]
        assert b"".join(chunks) == b"".join(b"%d" % i * 1000 for i in range(5))
        assert client.idle_count(HOST, port) == 1
    uvloop.run(with_server(scenario))


def test_expect_continue_exchange() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        ex = await client.open(HOST, port, "PUT", "/ok", {}, content_length=4,
                               expect_continue=True)
        assert await ex.wait_continue() == 100
        await ex.write(b"da")
        await ex.write(b"ta")
        await ex.finish()
        r = await ex.response()
        assert r.status == 200 and await r.read() == b"data"
        ex = await client.open(HOST, port, "PUT", "/reject", {}, content_length=4,
                               expect_continue=True)
        assert await ex.wait_continue() == 413
        r = await ex.response()
        assert await r.read() == b"too big"
    uvloop.run(with_server(scenario))


def test_chunked_body_with_trailers() -> None:
    """Trailer fields reach the server's request (not its headers); the connection is reused."""
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        for _ in range(2):
            ex = await client.open(HOST, port, "PUT", "/trailers", {"X-Head": "1"})
            await ex.write(b"body")
            await ex.finish({"X-Object-Sysmeta-Sum": "crc32:AAAAAA==", "X-Other": "2"})
            r = await ex.response()
            assert r.status == 200 and await r.read() == b"body"
            assert r.headers["x-object-sysmeta-sum"] == "crc32:AAAAAA=="
            assert r.headers["x-other"] == "2" and "x-head" not in r.headers
        assert len(set(rec.peers)) == 1
        ex = await client.open(HOST, port, "PUT", "/trailers", {}, content_length=4)
        await ex.write(b"body")
        with pytest.raises(HTTPClientError, match="chunked"):
            await ex.finish({"X-A": "1"})
        ex.abort()
        ex = await client.open(HOST, port, "PUT", "/trailers", {})
        with pytest.raises(HTTPClientError, match="CR or LF"):
            await ex.finish({"X-A": "1\r\nX-B: 2"})
        ex.abort()
    uvloop.run(with_server(scenario))


def test_errors_and_timeouts() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        with pytest.raises(ClientTimeoutError):
            await client.fetch(HOST, port, "GET", "/slow", timeout=0.2)
        free = free_port()
        with pytest.raises(ConnectError):
            await client.fetch(HOST, free, "GET", "/")
    uvloop.run(with_server(scenario))


def test_timeouts_on_a_reused_connection() -> None:
    """Each wait has its own deadline, shorter or longer than the last one on that connection."""
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        patient = HTTPClient(timeout=30, connect_timeout=2)
        try:
            for _ in range(3):  # the pooled connection's timer is armed for 30 s
                assert (await patient.fetch(HOST, port, "GET", "/")).status == 200
            with pytest.raises(ClientTimeoutError):  # /slow answers after 5 s
                await patient.fetch(HOST, port, "GET", "/slow", timeout=0.2)
        finally:
            await patient.close()
        fresh = HTTPClient(timeout=0.3, connect_timeout=2)
        try:
            for _ in range(5):  # waits spanning several lapsed deadlines of 0.3 s
                await asyncio.sleep(0.1)
                assert (await fresh.fetch(HOST, port, "GET", "/")).status == 200
            with pytest.raises(ClientTimeoutError):
                await fresh.fetch(HOST, port, "GET", "/slow")
        finally:
            await fresh.close()
        # Two waits at once on one connection: each keeps its own deadline.
        assert (await client.fetch(HOST, port, "GET", "/")).status == 200
        conn = client._idle[(HOST, port)][-1]
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        other: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        first = asyncio.ensure_future(conn.wait(never, 0.2))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await conn.wait(other, 0.1)
        with pytest.raises(TimeoutError):
            await first
    uvloop.run(with_server(scenario))


def test_stale_pooled_connection_is_retried() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        assert (await client.fetch(HOST, port, "GET", "/")).status == 200
        conn = client._idle[(HOST, port)][0]
        # the server side of the pooled connection goes away
        for server_conn in list(srv_conns(rec)):
            server_conn.transport.close()
        await asyncio.sleep(0.05)
        conn.closed = False  # pretend we did not notice yet
        r = await client.fetch(HOST, port, "GET", "/again")
        assert r.status == 200
    uvloop.run(with_server(scenario))


class _DeadHandle:
    """A uvloop transport whose handle closed before the pool noticed: write raises."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    def close(self) -> None:
        self.real.close()


def test_pooled_connection_whose_handle_closed_is_replaced() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        assert (await client.fetch(HOST, port, "PUT", "/", body=b"one")).status == 200
        conn = client._idle[(HOST, port)][0]
        conn.transport = _DeadHandle(conn.transport)  # type: ignore[assignment]
        r = await client.fetch(HOST, port, "PUT", "/again", body=b"two")
        assert r.status == 200 and r.body == b"two"
        assert conn.closed and len(set(rec.peers)) == 2
        other = client._idle[(HOST, port)][0]
        other.transport = _DeadHandle(other.transport)  # type: ignore[assignment]
        assert not _send_head(other, b"GET / HTTP/1.1\r\n\r\n", b"", False, False)
        assert other.closed
    uvloop.run(with_server(scenario))


def srv_conns(rec: Recorder) -> list[Any]:
    import gc

    from nubis.common import httpserver
    return [o for o in gc.get_objects() if isinstance(o, httpserver._Connection) and not o.closed]


def test_server_closing_mid_body_raises() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    async def go() -> None:
        server = await asyncio.start_server(handle, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        client = HTTPClient(timeout=2)
        r = await client.request(HOST, port, "GET", "/")
        with pytest.raises(ConnectionClosedError):
            await r.read()
        assert client.idle_count(HOST, port) == 0
        server.close()
        await client.close()
    uvloop.run(go())


def test_long_idle_connections_are_not_reused() -> None:
    async def go() -> None:
        rec = Recorder()
        srv = HTTPServer(rec.handle)
        port = await srv.start()
        client = HTTPClient(idle_timeout=0.0)
        try:
            for _ in range(3):
                assert (await client.fetch(HOST, port, "GET", "/")).status == 200
                await asyncio.sleep(0.01)
            assert len(set(rec.peers)) == 3
        finally:
            await client.close()
            await srv.close()
    uvloop.run(go())


def test_header_injection_is_refused() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        from nubis.common.httpclient import HTTPClientError
        with pytest.raises(HTTPClientError):
            await client.fetch(HOST, port, "GET", "/", {"X-Meta": "a\r\nX-Evil: 1"})
        r = await client.fetch(HOST, port, "GET", "/", {"X-Meta": "caf\u00e9 \u2603"})
        assert r.status == 200
    uvloop.run(with_server(scenario))


def test_odd_header_names_cross_server_and_client() -> None:
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        sent = {"X-Object-Meta-(": "open", "X-Object-Meta-a@b": "at", "X-Object-Meta-ok": "1"}
        for method in ("GET", "HEAD"):
            r = await client.fetch(HOST, port, method, "/meta", sent)
            assert r.status == 200
            assert {k: v for k, v in r.headers.items() if k.startswith("x-object-meta-")} == {
                "x-object-meta-(": "open", "x-object-meta-a@b": "at", "x-object-meta-ok": "1"}
    uvloop.run(with_server(scenario))


def test_a_ranged_answer_presented_whole() -> None:
    """``as_whole``: a 206 of one range reads as the resource's 200, opened at ``offset``."""
    async def scenario(client: HTTPClient, port: int, rec: Recorder) -> None:
        r = await client.request(HOST, port, "GET", "/ranged")
        assert r.as_whole()
        assert (r.status, r.offset, r.headers["content-length"]) == (200, 90, "100")
        assert "content-range" not in r.headers and r.headers["etag"] == "e"
        assert await r.read() == b"9" * 10
        for path in ("/odd-range", "/", "/full-416"):  # not a 206 of one range, nor empty
            r = await client.request(HOST, port, "GET", path)
            status = r.status
            assert not r.as_whole() and (r.status, r.offset) == (status, 0)
            await r.read()
        r = await client.request(HOST, port, "GET", "/empty-416")  # a link's 0 bytes
        assert r.as_whole()
        assert (r.status, r.offset, r.headers["content-length"]) == (200, 0, "0")
        assert "content-range" not in r.headers and await r.read() == b""
    uvloop.run(with_server(scenario))


def _socket_family(req: Request) -> int:
    transport = req._conn.transport
    assert transport is not None
    return int(transport.get_extra_info("socket").family)


def test_local_sockets_reach_a_server_of_this_host() -> None:
    """A client with ``local_sockets`` uses the server's Unix socket.

    Other clients, and servers without a Unix socket, use TCP.
    """
    async def main() -> None:
        families: list[int] = []

        async def handle(req: Request) -> Response:
            families.append(_socket_family(req))
            return Response(200, [("X-Path", req.path)], await req.read())

        with_local, tcp_only = HTTPServer(handle), HTTPServer(handle)
        port = await with_local.start()
        await with_local.start_local(local_socket_name(HOST, port))
        plain_port = await tcp_only.start()
        local = HTTPClient(timeout=2, connect_timeout=2, local_sockets=True)
        tcp = HTTPClient(timeout=2, connect_timeout=2)
        try:
            for client in (local, tcp):
                r = await client.fetch(HOST, port, "PUT", "/a/b", {"X-A": "1"}, b"abc" * 1000)
                assert (r.status, r.body, r.headers["x-path"]) == (200, b"abc" * 1000, "/a/b")
            r = await local.fetch(HOST, plain_port, "GET", "/c")  # no Unix socket: TCP
            assert r.status == 200
            r = await local.fetch(HOST, port, "GET", "/d")  # the pooled Unix connection
            assert r.status == 200 and local.idle_count(HOST, port) == 1
            assert families == [socket.AF_UNIX, socket.AF_INET, socket.AF_INET, socket.AF_UNIX]
        finally:
            await local.close()
            await tcp.close()
            await with_local.close()
            await tcp_only.close()
    uvloop.run(main())


def test_a_taken_local_socket_name_stops_the_server_and_close_frees_it() -> None:
    """As with a TCP port: a second server cannot take the name; closing releases it."""
    async def main() -> None:
        async def handle(req: Request) -> Response:
            return Response(204)

        first, second = HTTPServer(handle), HTTPServer(handle)
        port = await first.start()
        name = local_socket_name(HOST, port)
        await first.start_local(name)
        await second.start()
        with pytest.raises(OSError) as err:
            await second.start_local(name)
        assert err.value.errno == errno.EADDRINUSE
        client = HTTPClient(timeout=2, connect_timeout=2, local_sockets=True)
        try:
            assert (await client.fetch(HOST, port, "GET", "/")).status == 204
            await first.close()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.bind(name)  # free again
            await client.close()
            client = HTTPClient(timeout=2, connect_timeout=2, local_sockets=True)
            with pytest.raises(ConnectError):  # neither the Unix socket nor the TCP port
                await client.fetch(HOST, port, "GET", "/")
        finally:
            await client.close()
            await second.close()
    uvloop.run(main())
