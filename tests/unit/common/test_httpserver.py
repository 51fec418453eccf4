"""The asyncio HTTP/1.1 server, driven over raw loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvloop
from nubis.common.httpserver import (
    BodyError,
    BodyTimeoutError,
    HTTPServer,
    Request,
    Response,
)
from nubis.common.requestlines import (
    LLHTTP_METHODS,
    PLACEHOLDER_METHOD,
    RequestLines,
    escape_non_ascii,
    origin_form,
)

Handler = Callable[[Request], Awaitable[Response]]


async def echo(req: Request) -> Response:
    body = await req.read()
    headers = [("X-Method", req.method), ("X-Path", req.path), ("X-Query", req.query),
               ("X-Len", str(len(body)))]
    return Response(200, headers, body)


async def serve(handler: Handler, scenario: Callable[[int], Awaitable[Any]], **kw: Any) -> Any:
    srv = HTTPServer(handler, **kw)
    port = await srv.start()
    try:
        return await asyncio.wait_for(scenario(port), 20)
    finally:
        await srv.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return status, headers, body


def test_keepalive_pipelining_and_chunked_body() -> None:
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
                     b"PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
                     b"POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi")
        s1, h1, b1 = await read_response(reader)
        s2, h2, b2 = await read_response(reader)
        s3, h3, b3 = await read_response(reader)
        assert (s1, h1["x-path"], h1["x-query"], b1) == (200, "/a", "x=1", b"")
        assert (s2, h2["x-method"], b2) == (200, "PUT", b"abcdefg")
        assert (s3, h3["x-method"], b3) == (200, "POST", b"hi")
        writer.close()
    uvloop.run(serve(echo, scenario))


def test_malformed_requests_get_400_and_close() -> None:
    async def scenario(port: int) -> None:
        for bad in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(bad)
            status, _, body = await read_response(reader)
            assert status == 400 and body == b"Bad Request"
            assert await reader.read() == b""  # closed
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 431
        writer.close()
    uvloop.run(serve(echo, scenario, max_header_size=8192))


def test_expect_continue_only_when_body_is_read() -> None:
    async def handler(req: Request) -> Response:
        if req.path == "/reject":
            return Response(409, [], b"no")
        return Response(201, [], await req.read())

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"abc")
        status, _, body = await read_response(reader)
        assert (status, body) == (201, b"abc")
        writer.write(b"PUT /reject HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body) == (409, b"no") and headers["connection"] == "close"
        writer.close()
    uvloop.run(serve(handler, scenario))


def test_streamed_responses_and_head() -> None:
    async def gen() -> AsyncIterator[bytes]:
        for part in (b"one", b"", b"two"):
            yield part

    async def handler(req: Request) -> Response:
        if req.path == "/sized":
            return Response(200, [], gen(), content_length=6)
        if req.path == "/crash":
            raise RuntimeError("boom")
        return Response(200, [], gen())

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert headers["transfer-encoding"] == "chunked" and body == b"onetwo"
        writer.write(b"GET /sized HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert headers["content-length"] == "6" and body == b"onetwo"
        writer.write(b"HEAD /sized HTTP/1.1\r\nHost: h\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: 6" in head
        writer.write(b"GET /crash HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, body = await read_response(reader)
        assert status == 500 and b"Traceback" not in body
        writer.close()
    uvloop.run(serve(handler, scenario))


def test_large_body_flow_control() -> None:
    seen: list[int] = []

    async def handler(req: Request) -> Response:
        total = 0
        async for chunk in req.iter_body():
            total += len(chunk)
            await asyncio.sleep(0)
        seen.append(total)
        return Response(200, [], b"ok")

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        size = 8 << 20
        writer.write(b"PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        status, _, body = await read_response(reader)
        assert (status, body, seen) == (200, b"ok", [size])
        writer.close()
    uvloop.run(serve(handler, scenario))


def test_client_disconnect_mid_body_is_seen_by_handler() -> None:
    errors: list[str] = []
    done = asyncio.Event()

    async def handler(req: Request) -> Response:
        try:
            await req.read()
        except Exception as exc:
            errors.append(type(exc).__name__)
            done.set()
            raise
        return Response(200, [], b"")

    async def scenario(port: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await asyncio.wait_for(done.wait(), 5)
        assert errors == ["BodyError"]
    uvloop.run(serve(handler, scenario))


def test_connection_limit_and_stalled_heads() -> None:
    async def scenario(port: int) -> None:
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await read_response(r1))[0] == 200
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        status, _, body = await read_response(r2)
        assert (status, body) == (503, b"Service Unavailable")
        w2.close()
        # a request head that never completes is dropped by the idle timeout
        w1.write(b"GET /stall HTTP/1.1\r\nHost: ")
        assert await asyncio.wait_for(r1.read(), 5) == b""
        w1.close()
    uvloop.run(serve(echo, scenario, max_connections=1, keepalive_timeout=0.2))


def test_idle_timeout_counts_from_the_last_answer() -> None:
    """A connection in use past the idle timeout stays open; idle, it is closed."""
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 2.5:  # 2.5 idle timeouts of requests 0.1 s apart
            writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then idle: closed
        writer.close()
    uvloop.run(serve(echo, scenario, keepalive_timeout=1.0))


def test_stalled_body_times_out() -> None:
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # dropped, no reply
        writer.close()
    uvloop.run(serve(echo, scenario, body_timeout=0.2))


def test_response_header_values_cannot_split_the_response() -> None:
    async def handler(req: Request) -> Response:
        return Response(200, [("X-Echo", "a\r\nX-Evil: 1"), ("X-Snow", "\u2603")], b"ok")

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 200 and body == b"ok" and "x-evil" not in headers
        writer.close()
    uvloop.run(serve(handler, scenario))


def test_bad_body_framing_after_the_head() -> None:
    """Bad framing in the same read as the head: 400; later: the handler answers, then close."""
    seen: list[str] = []

    async def handler(req: Request) -> Response:
        seen.append(req.path)
        try:
            body = await req.read()
        except BodyError:
            return Response(499, [], b"cut")
        return Response(200, [], body)

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nxyz")
        status, headers, body = await read_response(reader)
        assert (status, body, headers["connection"]) == (400, b"Bad Request", "close")
        assert await reader.read() == b""
        writer.close()
        assert seen == []  # the handler never ran
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /late HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n")
        await asyncio.sleep(0.2)  # the handler is reading the body now
        writer.write(b"zz-not-a-chunk-size\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body, headers["connection"]) == (499, b"cut", "close")
        assert await reader.read() == b""
        writer.close()
        assert seen == ["/late"]
    uvloop.run(serve(handler, scenario))


def test_body_timeout_is_told_apart_from_a_disconnect() -> None:
    async def handler(req: Request) -> Response:
        try:
            await req.read()
        except BodyTimeoutError:
            return Response(408, [], b"slow", close=True)
        return Response(200, [], b"ok")

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        status, _, body = await read_response(reader)
        assert (status, body) == (408, b"slow")
        writer.close()
    uvloop.run(serve(handler, scenario, body_timeout=0.2))


def test_escape_non_ascii_keeps_ascii_and_encodes_the_rest() -> None:
    assert escape_non_ascii(b"/v1/a/c/\xc3\xa9?x=\xff%20") == b"/v1/a/c/%C3%A9?x=%FF%20"
    assert escape_non_ascii(b"") == b""


def test_raw_utf8_request_lines_are_percent_encoded() -> None:
    """Swift's clients may send unescaped UTF-8 (or any byte >= 0x80) in the path."""
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write("GET /v1/a/c/\u00e9\u2603?q=\u00e9 HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        status, headers, _ = await read_response(reader)
        assert (status, headers["x-path"], headers["x-query"]) == (
            200, "/v1/a/c/%C3%A9%E2%98%83", "q=%C3%A9")
        # A line split over two reads, then a binary body that is left untouched.
        body = bytes(range(256))
        writer.write(b"PUT /v1/\xe2")
        await writer.drain()
        await asyncio.sleep(0)
        writer.write(b"\x98\x83 HTTP/1.1\r\nHost: h\r\nContent-Length: 256\r\n\r\n" + body)
        status, headers, echoed = await read_response(reader)
        assert (status, headers["x-path"], echoed) == (200, "/v1/%E2%98%83", body)
        # Invalid UTF-8 is escaped too: the application decides (Swift: 412).
        writer.write(b"GET /v1/\xa9\xc3 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert (status, headers["x-path"]) == (200, "/v1/%A9%C3")
        writer.close()
    uvloop.run(serve(echo, scenario))


def test_bytes_after_a_bodyless_put_do_not_replace_its_answer() -> None:
    """A PUT without Content-Length has no body: its handler answers, then the line closes."""
    async def length_required(req: Request) -> Response:
        await req.read()
        return Response(411 if "content-length" not in req.headers else 200, [], b"")

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /v1/a/c/o HTTP/1.1\r\nHost: h\r\n\r\ntesting")
        status, _, _ = await read_response(reader)
        assert status == 411
        assert await reader.read() == b""  # closed after the answer
        writer.close()
    uvloop.run(serve(length_required, scenario))


def test_refused_codings_reach_the_handler_with_no_body_then_close() -> None:
    """With ``pass_refused_codings``, Swift's way: no body framed, answer, close."""
    seen: list[tuple[str, str, bytes]] = []

    async def handler(req: Request) -> Response:
        body = await req.read()
        seen.append((req.path, req.headers["transfer-encoding"], body))
        return Response(501, [], b"unsupported")

    async def scenario(port: int) -> None:
        for coding in (b"gzip,chunked", b"gzip"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # Chunk-like bytes, then a request that must never run.
            writer.write(b"PUT /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + coding
                         + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n"
                         b"Host: h\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert (status, body, headers["connection"]) == (501, b"unsupported", "close")
            assert await reader.read() == b""
            writer.close()
        # Bytes that are no chunks at all do not replace the handler's answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT /raw HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n"
                     b"\r\n" + bytes(range(256)))
        status, _, body = await read_response(reader)
        assert (status, body) == (501, b"unsupported")
        assert await reader.read() == b""
        writer.close()
    uvloop.run(serve(handler, scenario, pass_refused_codings=True))
    assert seen == [("/te", "gzip,chunked", b""), ("/te", "gzip", b""),
                    ("/raw", "gzip, chunked", b"")]


def test_llhttp_parses_the_methods_that_are_not_swapped() -> None:
    """Every method left as sent is one llhttp knows; ``LICK`` is not."""
    import httptools

    class Sink:
        def on_headers_complete(self) -> None:
            pass

    for method in (*LLHTTP_METHODS, PLACEHOLDER_METHOD):
        httptools.HttpRequestParser(Sink()).feed_data(method + b" / HTTP/1.1\r\n\r\n")
    with contextlib.suppress(httptools.HttpParserError):
        httptools.HttpRequestParser(Sink()).feed_data(b"LICK / HTTP/1.1\r\n\r\n")
        raise AssertionError("llhttp learnt LICK: the swap test needs another method")


def test_request_lines_swap_unknown_methods_only_when_asked() -> None:
    lines = RequestLines(methods=True)
    assert lines.prepare(b"LICK /v1/a HTTP/1.1\r\n\r\n") == (
        PLACEHOLDER_METHOD + b" /v1/a HTTP/1.1\r\n\r\n")
    lines.message_begin()
    assert lines.head_complete() == "LICK"
    lines.message_complete()
    for line in (b"GET / HTTP/1.1\r\n", b"PROPFIND / HTTP/1.1\r\n",
                 b"L{CK / HTTP/1.1\r\n", b" / HTTP/1.1\r\n", b"X" * 65 + b" / HTTP/1.1\r\n"):
        assert lines.prepare(line) == line  # known, not a token, empty, too long
        lines.message_begin()
        assert lines.head_complete() is None
        lines.message_complete()
    # A line split over reads: only the read that starts it is looked at.
    assert lines.prepare(b"GETorHEAD_base /v1/") == PLACEHOLDER_METHOD + b" /v1/"
    lines.message_begin()
    assert lines.prepare(b"LICK HTTP/1.1\r\n\r\n") == b"LICK HTTP/1.1\r\n\r\n"
    assert lines.head_complete() == "GETorHEAD_base"
    plain = RequestLines()
    assert plain.prepare(b"LICK / HTTP/1.1\r\n\r\n") == b"LICK / HTTP/1.1\r\n\r\n"
    assert plain.head_complete() is None


def test_unknown_methods_reach_the_handler_when_passed() -> None:
    """With ``pass_unknown_methods`` the handler sees ``LICK``; otherwise llhttp's 400."""
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for method in ("LICK", "_delete_segments_bucket", "GET", "MKCALENDAR", "GETPUT"):
            writer.write(f"{method} /v1/a?x=1 HTTP/1.1\r\nHost: h\r\n"
                         "Content-Length: 3\r\n\r\nabc".encode())
            status, headers, body = await read_response(reader)
            assert (status, headers["x-method"], headers["x-path"], body) == (
                200, method, "/v1/a", b"abc")
        writer.close()

    async def refused(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"LICK / HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 400
        writer.close()
    uvloop.run(serve(echo, scenario, pass_unknown_methods=True))
    uvloop.run(serve(echo, refused))


def test_origin_form_drops_scheme_and_authority() -> None:
    assert origin_form(b"http://h:8080/b/o?X-Amz-Date=1") == b"/b/o?X-Amz-Date=1"
    assert origin_form(b"https://h/") == b"/"
    assert origin_form(b"http://h?x=1") == b"http://h?x=1"  # no path: left as sent
    assert origin_form(b"/http://h/o") == b"/http://h/o"
    assert origin_form(b"*") == b"*"


def test_absolute_form_request_lines_reach_the_handler_as_paths() -> None:
    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"PUT http://127.0.0.1:%d/b/o?x=1 HTTP/1.1\r\nHost: h\r\n"
                     b"Content-Length: 2\r\n\r\nhi" % port)
        status, headers, body = await read_response(reader)
        assert (status, headers["x-path"], headers["x-query"], body) == (200, "/b/o", "x=1",
                                                                         b"hi")
        writer.close()
    uvloop.run(serve(echo, scenario))


def test_204_and_304_carry_content_length_only_when_given() -> None:
    async def handler(req: Request) -> Response:
        length = 0 if req.path == "/given" else None
        return Response(int(req.query), [], b"", content_length=length)

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for status in (204, 304):
            for path, expected in (("/given", "0"), ("/not", None)):
                writer.write(b"GET %s?%d HTTP/1.1\r\nHost: h\r\n\r\n"
                             % (path.encode(), status))
                got, headers, body = await read_response(reader)
                assert (got, headers.get("content-length"), body) == (status, expected, b"")
        writer.close()
    uvloop.run(serve(handler, scenario))


def test_an_early_answer_lets_the_client_send_its_whole_body() -> None:
    """A body left unread is drained after a closing answer, not reset mid-send."""
    async def handler(req: Request) -> Response:
        await req.read_chunk()  # like a multi-delete refusing a too-large document
        return Response(400, [], b"no", close=req.path == "/close")

    async def scenario(port: int) -> None:
        size, block = 16 << 20, b"x" * 65536
        for path in (b"/keep", b"/close"):  # over max_discard; answered with close
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
                         % (path, size))
            for _ in range(size // len(block)):
                writer.write(block)
                await writer.drain()  # ConnectionResetError if the server closed early
            status, headers, body = await read_response(reader)
            assert (status, headers["connection"], body) == (400, "close", b"no")
            assert await reader.read() == b""
            writer.close()
    uvloop.run(serve(handler, scenario, max_discard=1024))
