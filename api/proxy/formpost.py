r"""FormPOST: browser form uploads into a container (Swift's ``formpost`` middleware).

A ``POST`` of ``multipart/form-data`` to ``/v1/<account>/<container>[/<prefix>]``
is a form: its fields ``redirect``, ``max_file_size``, ``max_file_count``,
``expires`` and ``signature`` (optional ``x_delete_at`` / ``x_delete_after``,
``content-type``, ``content-encoding``) come first, then the file parts. The
signature is ``HMAC(key, "<path>\n<redirect>\n<max_file_size>\n<max_file_count>\n
<expires>")`` (sha1 / sha256 / sha512, hex or ``<digest>:<base64>``) with one of
the account's or container's Temp-URL keys, as for TempURL. Each file becomes a
PUT of ``<prefix><filename>`` in that container, streamed from the form (never
buffered whole), made on the signer's behalf.

Limits, as Swift: a file larger than ``max_file_size`` fails the form (``400
FormPost: max_file_size exceeded``, that object is not stored); files past
``max_file_count`` are not read; an expired or badly signed form is ``401``. The
object name always starts with the signed path's prefix, inside the signed
container: a filename is never interpreted as a path. Unlike Swift, a file part
cut short by the end of the body (no closing boundary) is refused, not stored
truncated.

The answer is ``<status line>`` as plain text, or a ``303`` to ``redirect`` with
``status`` and ``message`` query parameters. The hook (:func:`boundary_of`)
costs one header lookup on POSTs; nothing else runs for other requests.
"""

from __future__ import annotations

import dataclasses
import email.parser
import hmac
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from nubis.api.proxy import cors, tempurl
from nubis.api.proxy.base import account_info, container_info
from nubis.api.proxy.context import Body, Ctx, ObjectCtx, Resp
from nubis.api.proxy.errors import REASONS, HTTPError, error_response

#: Swift's /info entry (every supported digest; sha1 is deprecated there too).
INFO: dict[str, Any] = {"allowed_digests": ["sha1", "sha256", "sha512"],
                        "deprecated_digests": ["sha1"]}
#: Bytes of the form read at a time (and kept of a field's value).
READ_CHUNK_SIZE = 4096
MAX_VALUE_LENGTH = 4096
#: Longest header block of one part (a larger one is not a browser's form).
MAX_PART_HEADERS = 16384

Route = Callable[[Ctx], Awaitable[Resp]]
_ATTRIBUTES = re.compile(r'(\w+)=(".*?"|[^";]+)(; ?|$)')


class FormError(HTTPError):
    """A form that cannot be processed: ``400 FormPost: <why>``."""

    def __init__(self, why: str) -> None:
        super().__init__(400, f"FormPost: {why}", {"Content-Type": "text/plain"})


def _unauthorized(why: str) -> HTTPError:
    return HTTPError(401, f"FormPost: {why.title()}")


def parse_disposition(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="x"; filename="y"`` into ``("form-data", {...})``."""
    attrs: dict[str, str] = {}
    rest = ""
    if ";" in value:
        value, rest = (x.strip() for x in value.split(";", 1))
    while True:
        m = _ATTRIBUTES.match(rest)
        if not m:
            break
        rest = rest[len(m.group(0)):]
        attrs[m.group(1)] = m.group(2).strip('"')
    return value, attrs


def boundary_of(ctx: Ctx) -> str | None:
    """Return the form boundary of a FormPOST request, else None (cheap; no I/O)."""
    if ctx.method != "POST":
        return None
    ctype = ctx.headers.get("content-type")
    if not ctype or not ctype.startswith("multipart/form-data"):
        return None
    kind, attrs = parse_disposition(ctype)
    return attrs.get("boundary") if kind == "multipart/form-data" else None


class MimeReader:
    """A streaming reader of a ``multipart/form-data`` body, one part at a time."""

    def __init__(self, body: Body, boundary: bytes) -> None:
        self.body = body
        self.start = b"--" + boundary
        self.delim = b"\r\n--" + boundary
        self.buf = b""
        self.eof = False
        #: The current part ended (its delimiter was read).
        self.part_done = False
        #: The closing delimiter was read: no part follows.
        self.last = False

    async def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = await self.body.read_chunk()
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    async def begin(self) -> None:
        """Read up to the first boundary (blank lines before it are skipped).

        Raises:
            FormError: the body does not start with the boundary.
        """
        limit = len(self.start) + 2
        while True:
            while b"\n" not in self.buf[:limit] and len(self.buf) < limit:
                if not await self._fill():
                    break
            nl = self.buf.find(b"\n", 0, limit)
            line = self.buf[:nl + 1] if nl >= 0 else self.buf[:limit]
            self.buf = self.buf[len(line):]
            if line != b"\r\n":
                break
        if line.strip() != self.start:
            raise FormError("invalid starting boundary")

    def next_part(self) -> bool:
        """Move to the next part; return False after the closing boundary."""
        if self.last or (self.eof and not self.buf):
            return False
        self.part_done = False
        return True

    async def read(self, size: int = READ_CHUNK_SIZE) -> bytes:
        """Return up to ``size`` bytes of the current part, ``b""`` at its end.

        Raises:
            FormError: the body ended inside the part.
        """
        if self.part_done:
            return b""
        want = size + len(self.delim) + 2
        while len(self.buf) < want and await self._fill():
            pass
        pos = self.buf.find(self.delim)
        if pos == -1 or pos > size:
            if pos == -1 and self.eof and len(self.buf) <= size:
                raise FormError("invalid ending boundary")
            out, self.buf = self.buf[:size], self.buf[size:]
            return out
        out, rest = self.buf[:pos], self.buf[pos + len(self.delim):]
        while len(rest) < 2 and await self._fill():  # the 2 bytes after the delimiter
            rest = self.buf[pos + len(self.delim):]
        self.part_done = True
        self.last = rest.startswith(b"--")
        self.buf = rest[2:]
        return out

    async def headers(self) -> dict[str, str]:
        """Read the current part's header block; return it with lower-case names."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if self.buf.startswith(b"\r\n"):
                end = -2
            bound = self.buf.find(self.delim)
            if end != -1 or bound != -1 or self.eof:
                break
            if len(self.buf) > MAX_PART_HEADERS:
                raise FormError("part headers too long")
            await self._fill()
        if end == -1 or (bound != -1 and bound < end):  # no header block: all body
            return {}
        block, self.buf = self.buf[:end + 2], self.buf[end + 4:]
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            text = block.decode("latin-1")
        parsed = email.parser.HeaderParser().parsestr(text)
        return {k.lower(): v for k, v in parsed.items()}

    async def value(self) -> str:
        """Return a field's value (its first ``MAX_VALUE_LENGTH`` bytes; the rest is skipped)."""
        data = b""
        while len(data) < MAX_VALUE_LENGTH:
            chunk = await self.read(MAX_VALUE_LENGTH - len(data))
            if not chunk:
                break
            data += chunk
        while await self.read():
            pass
        return data.decode("utf-8", "replace").rstrip("\r\n-")


@dataclasses.dataclass
class _Outcome:
    """Where the form got to: the status of the last upload and why it stopped."""

    status: int = 0
    message: str = ""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""


async def handle(ctx: Ctx, boundary: str, route: Route) -> Resp:
    """Answer a FormPOST: store its files, then answer or redirect as Swift does."""
    keys = await _keys(ctx)
    reader = MimeReader(ctx.body, boundary.encode("utf-8"))
    await reader.begin()
    attributes: dict[str, str] = {}
    outcome = _Outcome()
    files = 0
    while reader.next_part():
        hdrs = await reader.headers()
        disp, attrs = parse_disposition(hdrs.get("content-disposition", ""))
        if disp == "form-data" and attrs.get("filename"):
            files += 1
            if files > _int(attributes, "max_file_count", "max_file_count not an integer"):
                outcome = _Outcome(400, "max file count exceeded")
                break
            file_attrs = dict(attributes, filename=attrs["filename"])
            if "content-type" not in attributes and "content-type" in hdrs:
                file_attrs["content-type"] = hdrs["content-type"] or "application/octet-stream"
            if "content-encoding" not in attributes and "content-encoding" in hdrs:
                file_attrs["content-encoding"] = hdrs["content-encoding"]
            outcome = await _upload(ctx, file_attrs, reader, keys, route)
            if not 200 <= outcome.status < 300:
                break
        else:
            value = await reader.value()
            if "name" in attrs:
                attributes[attrs["name"].lower()] = value
    if not outcome.status:
        outcome = _Outcome(400, "no files to process")
    return _answer(outcome, attributes.get("redirect"))


def _answer(outcome: _Outcome, redirect: str | None) -> Resp:
    status_line = f"{outcome.status} {REASONS.get(outcome.status, '')}".rstrip()
    headers = {k: v for k, v in outcome.headers.items()
               if k.lower().startswith("access-control")}
    if not redirect:
        body = status_line
        if outcome.message:
            body += "\r\nFormPost: " + outcome.message.title()
        data = body.encode("utf-8")
        if not 200 <= outcome.status < 300 and outcome.body:
            data = outcome.body
        return Resp(outcome.status, {**headers, "Content-Type": "text/plain"}, data)
    location = (redirect + ("&" if "?" in redirect else "?")
                + f"status={urllib.parse.quote(str(outcome.status))}"
                + f"&message={urllib.parse.quote(outcome.message)}")
    page = (f'<html><body><p><a href="{location}">Click to continue...</a></p>'
            "</body></html>")
    return Resp(303, {**headers, "Location": location}, page.encode("utf-8"))


def _int(attributes: Mapping[str, str], name: str, why: str) -> int:
    try:
        return int(attributes.get(name) or 0)
    except ValueError:
        raise FormError(why) from None


async def _keys(ctx: Ctx) -> tuple[list[str], list[str]]:
    """Return the account's and the container's Temp-URL keys (none without a container)."""
    if ctx.container is None or not ctx.container:
        return [], []
    ainfo = await account_info(ctx.state, ctx.account)
    cinfo = await container_info(ctx.state, ctx.account, ctx.container)
    return (list(ainfo.meta("x-account-meta-temp-url-key").values()),
            list(cinfo.meta("x-container-meta-temp-url-key").values()))


def signed_by(attributes: Mapping[str, str], path: str, keys: list[str]) -> bool:
    """Return whether the form's ``signature`` is valid for ``path`` under one of ``keys``."""
    split = tempurl.split_signature(attributes.get("signature", ""))
    if split is None:
        return False
    digest, raw = split
    msg = "\n".join((path, attributes.get("redirect") or "",
                     attributes.get("max_file_size") or "0",
                     attributes.get("max_file_count") or "0",
                     attributes.get("expires") or "0")).encode("utf-8")
    ok = False
    for key in keys:
        good = hmac.new(tempurl.header_bytes(key), msg, tempurl.DIGESTS[digest]).digest()
        ok = hmac.compare_digest(good, raw) or ok
    return ok


def _sub_headers(ctx: Ctx, attributes: Mapping[str, str]) -> dict[str, str]:
    """Return the headers of one file's PUT (checked as Swift checks them)."""
    headers = {"transfer-encoding": "chunked", "host": ctx.header("host")}
    if "x_delete_at" in attributes:
        headers["x-delete-at"] = str(_int(attributes, "x_delete_at",
                                          "x_delete_at not an integer: Unix timestamp "
                                          "required."))
    if "x_delete_after" in attributes:
        headers["x-delete-after"] = str(_int(attributes, "x_delete_after",
                                             "x_delete_after not an integer: Number of "
                                             "seconds required."))
    if "content-type" in attributes:
        headers["content-type"] = attributes["content-type"] or "application/octet-stream"
    if "content-encoding" in attributes:
        headers["content-encoding"] = attributes["content-encoding"]
    return headers


async def _upload(ctx: Ctx, attributes: dict[str, str], reader: MimeReader,
                  keys: tuple[list[str], list[str]], route: Route) -> _Outcome:
    """Check the form's limits and signature, then PUT one file; return its outcome."""
    akeys, ckeys = keys
    if not akeys and not ckeys:
        raise _unauthorized("invalid signature")
    max_size = _int(attributes, "max_file_size", "max_file_size not an integer")
    headers = _sub_headers(ctx, attributes)
    if _int(attributes, "expires", "expired not an integer") < time.time():
        raise _unauthorized("form expired")
    path = urllib.parse.unquote(ctx.path.split("?", 1)[0])
    by_account = signed_by(attributes, path, akeys)
    if not by_account and not signed_by(attributes, path, ckeys):
        raise _unauthorized("invalid signature")
    assert ctx.container is not None
    name = (ctx.obj or "") + attributes["filename"]
    capped = _CappedPart(reader, max_size)
    sub = dataclasses.replace(
        ObjectCtx.of(ctx, container=ctx.container, obj=name,
                     path=f"/v1/{_q(ctx.account)}/{_q(ctx.container)}/{_q(name)}"),
        method="PUT", query={}, raw_query=b"", headers=headers,
        body=Body(None, capped.receive, None, ctx.state.conf.client_timeout,
                  ctx.state.limits.max_file_size),
        identity=None, tempurl=_signed(attributes),
        tempurl_container=None if by_account else ctx.container)
    try:
        resp = await route(sub)
    except FormError:
        raise
    except HTTPError as exc:
        status, hdrs, body = error_response(exc)
        resp = Resp(status, hdrs, body)
    if capped.exceeded:
        raise FormError("max_file_size exceeded")
    body = resp.body if isinstance(resp.body, bytes) else b"".join(
        [c async for c in resp.body])
    origin = ctx.headers.get("origin")
    if origin:
        await cors.decorate(sub, origin, resp.headers)
    return _Outcome(resp.status, "", resp.headers, body)


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="/")


def _signed(attributes: Mapping[str, str]) -> tempurl.TempUrlRequest:
    """Return the marker of a signed (pre-authorised) request, as a TempURL's."""
    return tempurl.TempUrlRequest(sig=attributes.get("signature", ""),
                                  expires=int(attributes.get("expires") or 0),
                                  prefix=None, filename=None, inline=False)


class _CappedPart:
    """The current file part as ASGI ``receive`` events, at most ``limit`` bytes."""

    def __init__(self, reader: MimeReader, limit: int) -> None:
        self.reader = reader
        self.limit = limit
        self.sent = 0
        self.exceeded = False

    async def receive(self) -> dict[str, Any]:
        """Return the next piece of the file (``more_body`` False at its end)."""
        chunk = await self.reader.read()
        self.sent += len(chunk)
        if self.sent > self.limit:
            self.exceeded = True
            raise FormError("max_file_size exceeded")
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}
