"""HTTP helpers: byte ranges, conditional requests, dates, multipart bodies."""

from __future__ import annotations

import email.utils
import functools
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from nubis.api.proxy.errors import HTTPError

#: Swift refuses more ranges than this in one request.
MAX_RANGES = 50


def is_true(value: str | None) -> bool:
    """Return Swift's ``config_true_value`` of a header or query value."""
    return (value or "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


@dataclass(frozen=True)
class ByteRange:
    """One requested byte range, as written by the client (``end`` inclusive)."""

    start: int | None
    end: int | None


def parse_range(value: str | None) -> list[ByteRange] | None:
    """Parse a ``Range`` header; ``None`` when absent or syntactically invalid.

    Like Swift, an invalid header is ignored (the whole object is returned).
    """
    if not value:
        return None
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        try:
            start = int(first) if first else None
            end = int(last) if last else None
        except ValueError:
            return None
        if start is None and end is None:
            return None
        if (start is not None and start < 0) or (end is not None and end < 0):
            return None
        if start is not None and end is not None and end < start:
            return None
        ranges.append(ByteRange(start, end))
    if not ranges or len(ranges) > MAX_RANGES:
        return None
    return ranges


def resolve_ranges(ranges: list[ByteRange], length: int) -> list[tuple[int, int]]:
    """Clamp ranges to an object of ``length`` bytes: ``[(start, stop_excl)]``.

    Raises:
        HTTPError: 416 when no range is satisfiable.
    """
    out: list[tuple[int, int]] = []
    for r in ranges:
        if r.start is None:
            assert r.end is not None
            if r.end == 0 or length == 0:
                continue
            out.append((max(0, length - r.end), length))
        else:
            if r.start >= length:
                continue
            stop = length if r.end is None else min(r.end + 1, length)
            out.append((r.start, stop))
    if not out:
        raise HTTPError(416, headers={"Content-Range": f"bytes */{length}"})
    return out


def http_date(ts: float) -> str:
    """Format an epoch time as an RFC 7231 date."""
    return _http_date_seconds(int(ts))


@functools.lru_cache(maxsize=4096)
def _http_date_seconds(sec: int) -> str:
    """Return an HTTP date; PERF: cached, every object GET/HEAD formats one (bench s3)."""
    return email.utils.formatdate(sec, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """Parse an HTTP date; ``None`` when absent or unparseable."""
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt.timestamp()


def _etag_list(value: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in value.split(",") if t.strip()]


def check_conditions(headers: Mapping[str, str], etag: str, last_modified: float,
                     method: str) -> int | None:
    """Evaluate If-Match / If-None-Match / If-(Un)Modified-Since on an object.

    Returns:
        ``None`` to proceed, or 304 / 412 to answer instead.
    """
    etag = etag.strip('"')
    im = headers.get("if-match")
    if im is not None:
        tags = _etag_list(im)
        if "*" not in tags and etag not in tags:
            return 412
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = _etag_list(inm)
        if "*" in tags or etag in tags:
            return 304 if method in ("GET", "HEAD") else 412
    modified = int(last_modified)
    ius = parse_http_date(headers.get("if-unmodified-since"))
    if ius is not None and modified > ius:
        return 412
    ims = parse_http_date(headers.get("if-modified-since"))
    if inm is None and ims is not None and modified <= ims and method in ("GET", "HEAD"):
        return 304
    return None


def new_boundary() -> str:
    """Return a random multipart boundary."""
    return os.urandom(16).hex()


def multipart_head(boundary: str, content_type: str, start: int, stop: int,
                   length: int, first: bool) -> bytes:
    """Return the part header preceding one range of a multipart/byteranges body."""
    lead = b"" if first else b"\r\n"
    return lead + (f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                   f"Content-Range: bytes {start}-{stop - 1}/{length}\r\n\r\n").encode()


def multipart_tail(boundary: str) -> bytes:
    """Return the closing delimiter of a multipart/byteranges body."""
    return f"\r\n--{boundary}--".encode()


def multipart_length(boundary: str, content_type: str, spans: list[tuple[int, int]],
                     length: int) -> int:
    """Return the exact size of a multipart/byteranges body."""
    total = len(multipart_tail(boundary))
    for i, (a, b) in enumerate(spans):
        total += len(multipart_head(boundary, content_type, a, b, length, i == 0)) + (b - a)
    return total


async def slice_stream(chunks: AsyncIterator[bytes], start: int,
                       stop: int) -> AsyncIterator[bytes]:
    """Yield bytes ``[start, stop)`` of a stream that begins at offset 0."""
    pos = 0
    async for chunk in chunks:
        end = pos + len(chunk)
        if end > start and pos < stop:
            yield chunk[max(0, start - pos): min(len(chunk), stop - pos)]
        pos = end
        if pos >= stop:
            break
