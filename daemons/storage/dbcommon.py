"""Shared by the container and account servers: metadata, listing requests, formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape, quoteattr

from nubis.common.httpserver import Request, Response
from nubis.daemons.storage.listing import Entry, ListingParams
from nubis.daemons.storage.protocol import (
    ProtocolError,
    Timestamp,
    allows_reserved,
    title_header,
)

#: Metadata as stored: lower-case header name -> [value, internal timestamp].
Metadata = dict[str, list[str]]

JSON = "application/json; charset=utf-8"
XML = "application/xml; charset=utf-8"
PLAIN = "text/plain; charset=utf-8"
_ACCEPTABLE = {"application/json": JSON, "application/xml": XML, "text/xml": XML,
               "text/plain": PLAIN}


#: Swift's limits on a database's user metadata as a whole (after a merge).
MAX_META_COUNT = 90
MAX_META_OVERALL_SIZE = 4096
_USER_META = ("x-account-meta-", "x-container-meta-")


def merge_metadata(stored: Metadata, incoming: dict[str, str], ts: str) -> Metadata:
    """Return ``stored`` updated with ``incoming`` values newer than theirs.

    Raises:
        ProtocolError: 400 when the merged user metadata exceeds Swift's count or
            overall size (each request may be within limits, the sum not).
    """
    out = dict(stored)
    for name, value in incoming.items():
        old = out.get(name)
        if old is None or old[1] < ts:
            out[name] = [value, ts]
    if incoming:
        check_metadata_totals(out)
    return out


def check_metadata_totals(meta: Metadata) -> None:
    """Refuse user metadata over Swift's totals (like ``DatabaseBroker.validate_metadata``)."""
    count = size = 0
    for key, (value, _ts) in meta.items():
        if value and key.startswith(_USER_META):
            count += 1
            size += len(key) - len(_USER_META[0 if key[2] == "a" else 1]) + len(value)
    if count > MAX_META_COUNT:
        raise ProtocolError(400, f"Too many metadata items; max {MAX_META_COUNT}")
    if size > MAX_META_OVERALL_SIZE:
        raise ProtocolError(400, f"Total metadata too large; max {MAX_META_OVERALL_SIZE}")


def metadata_headers(meta: Metadata) -> list[tuple[str, str]]:
    """Return response headers for stored metadata (empty values were deletions)."""
    return [(title_header(k), v[0]) for k, v in meta.items() if v[0] != ""]


def timestamp_or(raw: str | None, default: Timestamp) -> Timestamp:
    """Parse a timestamp header or return ``default`` (400 on garbage)."""
    if raw is None or raw == "":
        return default
    try:
        return Timestamp.parse(raw)
    except ValueError:
        raise ProtocolError(400, f"Invalid timestamp {raw!r}") from None


@dataclass(frozen=True, slots=True)
class ListingRequest:
    """A parsed listing request: cursor-walk parameters and the output format."""

    params: ListingParams
    content_type: str


#: Sorts after every reserved name (UTF-8 never holds 0xff) and before every other one.
_PAST_RESERVED = b"\x00\xff"


def parse_listing(req: Request, max_limit: int) -> ListingRequest:
    """Read ``prefix/delimiter/marker/end_marker/limit/reverse/format`` (Swift rules).

    Raises:
        ProtocolError: 412 for bad values, 406 for an unsupported format.
    """
    query: dict[str, str] = {}
    for name, value in parse_qsl(req.query, keep_blank_values=True, encoding="latin-1"):
        try:  # Swift's get_param: 400 for a value that is not UTF-8 (NUL is allowed)
            query[name] = value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(400, f'"{name}" parameter not valid UTF-8') from None
    limit = max_limit
    if query.get("limit", "").isdigit():  # Swift ignores other values
        limit = int(query["limit"])
        if limit > max_limit:
            raise ProtocolError(412, f"Maximum limit is {max_limit}")
    delimiter = query.get("delimiter", "")
    reverse = query.get("reverse", "").lower() in ("1", "true", "yes", "on", "t", "y")
    prefix = query.get("prefix", "")
    path = query.get("path")
    if path is not None:  # Swift's ``path``: the objects right below one "directory"
        prefix, delimiter = (path.rstrip("/") + "/" if path else ""), "/"
    marker, end_marker = query.get("marker", "").encode(), query.get("end_marker", "").encode()
    if not allows_reserved(req.headers):  # reserved names (NUL first) sort first: skip them
        if reverse:
            end_marker = max(end_marker, _PAST_RESERVED)
        else:
            marker = max(marker, _PAST_RESERVED)
    params = ListingParams(prefix.encode(), delimiter.encode(), marker, end_marker, limit,
                           reverse, path is not None)
    return ListingRequest(params, _content_type(query.get("format"), req.headers.get("accept")))


def _content_type(fmt: str | None, accept: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt == "json":
            return JSON
        if fmt == "xml":
            return XML
        if fmt == "plain":
            return PLAIN
    if not accept:
        return PLAIN
    best, best_q = "", -1.0
    for item in accept.split(","):
        mtype, _, params = item.strip().partition(";")
        mtype = mtype.strip().lower()
        q = 1.0
        for prm in params.split(";"):
            k, _, v = prm.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        cands = ["text/plain"] if mtype in ("*/*", "text/*") else \
            ["application/json"] if mtype == "application/*" else [mtype]
        for cand in cands:
            if cand in _ACCEPTABLE and q > best_q and q > 0:
                best, best_q = cand, q
    if not best:
        raise ProtocolError(406, "Not Acceptable")
    return _ACCEPTABLE[best]


def render_listing(entries: list[Entry], content_type: str, headers: list[tuple[str, str]],
                   root_tag: str, root_name: str, item_tag: str,
                   row: Callable[[str, bytes], dict[str, Any]]) -> Response:
    """Render entries as JSON, XML or plain text; 204 for an empty plain listing.

    ``row(name, value)`` returns the JSON object of one row (its keys are also
    the XML child elements, in order).
    """
    hdrs = [*headers, ("Content-Type", content_type)]
    if content_type == JSON:
        items = [{"subdir": e.name.decode()} if e.value is None else
                 row(e.name.decode(), e.value) for e in entries]
        return Response(200, hdrs, json.dumps(items).encode())
    if content_type == XML:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n',
                 f"<{root_tag} name={quoteattr(root_name)}>"]
        for e in entries:
            name = e.name.decode()
            if e.value is None:
                parts.append(f"<subdir name={quoteattr(name)}><name>{escape(name)}</name>"
                             "</subdir>")
                continue
            fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in row(name, e.value).items())
            parts.append(f"<{item_tag}>{fields}</{item_tag}>")
        parts.append(f"</{root_tag}>")
        return Response(200, hdrs, "".join(parts).encode())
    if not entries:
        return Response(204, hdrs, b"")
    return Response(200, hdrs, b"".join(e.name + b"\n" for e in entries))
