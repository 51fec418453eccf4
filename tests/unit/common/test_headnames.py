"""Odd header names escaped for llhttp and uvicorn, and given back."""

from __future__ import annotations

import httptools
from nubis.common.headnames import (
    PREFIX,
    escape_head,
    escape_response_names,
    unescape_name,
    unescape_pairs,
)
from nubis.common.httpserver import joined_headers
from nubis.common.requestlines import RequestLines

ODD_HEAD = (b"PUT /b/o HTTP/1.1\r\nHost: h\r\nx-amz-meta-(: (\r\nX-Object-Meta-a@b: @\r\n"
            b"x-amz-meta-ok: fine\r\nContent-Length: 9\r\n\r\nbody: (x)")


class _Headers:
    def __init__(self) -> None:
        self.pairs: list[tuple[bytes, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name, value))


def test_escaped_head_parses_and_names_come_back() -> None:
    out, renamed = escape_head(ODD_HEAD)
    assert renamed
    assert out.endswith(b"\r\n\r\nbody: (x)")  # the body is never touched
    sink = _Headers()
    httptools.HttpRequestParser(sink).feed_data(out)
    assert [(unescape_name(n), v) for n, v in sink.pairs] == [
        (b"Host", b"h"), (b"x-amz-meta-(", b"("), (b"X-Object-Meta-a@b", b"@"),
        (b"x-amz-meta-ok", b"fine"), (b"Content-Length", b"9")]
    assert joined_headers(sink.pairs)["x-object-meta-a@b"] == "@"
    assert unescape_pairs(sink.pairs)[2] == (b"x-object-meta-a@b", b"@")


def test_plain_split_and_folded_heads_are_left_alone() -> None:
    plain = b"GET / HTTP/1.1\r\nHost: h\r\nX-Auth-Token: a(b)\r\n\r\n"
    assert escape_head(plain) == (plain, False)  # odd bytes in a value are fine
    split = ODD_HEAD[:40]
    assert escape_head(split) == (split, False)  # the head does not end in this read
    folded = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  more\r\n\r\n"
    assert escape_head(folded) == (folded, False)
    for name in (b"X-Object-Meta-\xff", b"x-(\xff", b"x-\x01(", b"x-(y z"):
        bad = b"GET / HTTP/1.1\r\nHost: h\r\n" + name + b": v\r\n\r\n"
        assert escape_head(bad)[0] == bad  # not printable ASCII: llhttp's 400 stays


def test_unescape_leaves_other_names_and_bad_hex() -> None:
    assert unescape_name(b"x-amz-meta-a") == b"x-amz-meta-a"
    assert unescape_name(PREFIX + b"zz") == PREFIX + b"zz"
    assert unescape_name(b"X-Nubis-Hn-28") == b"("  # any case: parsers may keep it


def test_request_lines_escape_the_leading_head() -> None:
    lines = RequestLines(methods=True)
    out = lines.prepare(ODD_HEAD)
    assert lines.renamed and PREFIX in out
    lines.message_begin()
    lines.head_complete()
    lines.message_complete()
    assert lines.prepare(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") == (
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert not lines.renamed


def test_response_names_escaped_only_when_odd() -> None:
    plain = [(b"content-length", b"0"), (b"x-object-meta-a", b"b")]
    assert escape_response_names(plain) is plain
    odd = escape_response_names([(b"etag", b"x"), (b"x-amz-meta-(", b"(")])
    assert odd[0] == (b"etag", b"x")
    assert unescape_name(odd[1][0]) == b"x-amz-meta-("
