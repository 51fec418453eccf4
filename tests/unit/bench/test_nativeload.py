"""The compiled load generator against a real HTTP/1.1 server on loopback."""

from __future__ import annotations

import shutil
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from nubis.bench import nativeload
from nubis.bench.loadgen import Request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        del args

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/len/"):
            self._answer(200, b"x" * int(path[5:]))
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/close":
            self._answer(200, b"bye", close=True)
        else:
            self._answer(404, b"no such thing")

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(201 if body == b"payload" else 400, b"")

    def _answer(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def client() -> Iterator[nativeload.Client]:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    built = nativeload.Client.build()
    assert built is not None, "bench/loadgen.c does not compile"
    yield built
    built.close()


def test_bodies_checked_byte_for_byte_in_every_framing(client: nativeload.Client,
                                                       server: int) -> None:
    reqs = [Request("GET", "/len/5"), Request("GET", "/len/200000"), Request("GET", "/chunked"),
            Request("GET", "/close"), Request("GET", "/len/3")] * 4
    bodies = [b"x" * 5, b"x" * 200000, b"hello chunked world", b"bye", b"xxx"] * 4
    res = client.run("127.0.0.1", server, reqs, 3, bodies)
    assert (res.ok, res.failed, res.bad_body) == (20, 0, 0)
    assert res.statuses == {200: 20}
    assert res.bytes == sum(len(b) for b in bodies)
    assert len(res.latencies) == 20 and all(x > 0 for x in res.latencies)


def test_wrong_body_and_status_are_failures(client: nativeload.Client, server: int) -> None:
    reqs = [Request("GET", "/len/4"), Request("GET", "/nothing"), Request("GET", "/len/4")]
    res = client.run("127.0.0.1", server, reqs, 2, [b"yyyy", b"", b"xxxx"])
    assert (res.ok, res.failed, res.bad_body) == (1, 2, 1)
    assert res.statuses == {200: 2, 404: 1}


def test_puts_and_heads(client: nativeload.Client, server: int) -> None:
    reqs = [Request("PUT", "/o", (("X-Test", "1"),), b"payload")] * 5 + [Request("HEAD", "/h")]
    res = client.run("127.0.0.1", server, reqs, 2, expect=(200, 201))
    assert (res.ok, res.failed) == (6, 0)
    assert res.statuses == {201: 5, 200: 1}
    assert res.bytes == 5 * len(b"payload")


def test_unreachable_port_fails_every_request(client: nativeload.Client) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = client.run("127.0.0.1", port, [Request("GET", "/")] * 3, 2, time_limit=30)
    assert res.ok == 0 and res.failed == 3


def test_requests_file_layout() -> None:
    raw = nativeload.encode("127.0.0.1", 8080, [Request("PUT", "/a", (("K", "v"),), b"body"),
                                                Request("GET", "/a")], [b"", b"body"])
    assert raw[:8] == b"NLG1" + struct.pack("<I", 2)
    first = b"PUT /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nK: v\r\nContent-Length: 4\r\n\r\nbody"
    assert raw[8:12] == struct.pack("<I", len(first)) and raw[12:12 + len(first)] == first
    rest = raw[12 + len(first):]
    assert rest[:8] == struct.pack("<II", 4, 0) and rest[8:9] == b"\x00"


def test_output_parsed() -> None:
    res = nativeload.parse_output("ok 3\nfailed 1\nbad_body 1\nseconds 0.5\nbytes 12\n"
                                  "status 200 3\nstatus 500 1\n")
    assert (res.ok, res.failed, res.bad_body, res.bytes) == (3, 1, 1, 12)
    assert res.seconds == 0.5 and res.statuses == {200: 3, 500: 1} and res.ops == 6.0
