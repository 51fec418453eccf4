"""Bulk operations (Swift's bulk middleware): ``?extract-archive`` and ``?bulk-delete``.

``PUT /v1/a[/c[/prefix]]?extract-archive=tar|tar.gz|tar.bz2`` stores every file
of a tar archive as an object (``<container>/<object>`` below the URL's path),
creating missing containers. ``POST|DELETE /v1/a?bulk-delete`` deletes the
newline-separated, URL-quoted ``container/object`` (and then ``container``) names
of its body. Both answer ``200`` at once and stream: whitespace while working,
then Swift's summary in text, JSON or XML (by ``Accept``).

Every object and container is written or deleted with an ordinary sub-request
as the caller, so names, ACLs, quotas and sizes are checked like any PUT/DELETE.
Limits are Swift's defaults: 10,000 containers per archive, 1,000 failed files,
10,000 deletes per request, 1,000 failed deletes; an archive is spooled to a
temporary file no larger than the object size limit. Member names with ``.`` or
``..`` path segments are refused (they would read as path tricks).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import tarfile
import tempfile
import time
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any
from xml.sax.saxutils import escape

from nubis.api.proxy.context import Body, Ctx, Resp
from nubis.api.proxy.errors import REASONS, HTTPError, error_response

Route = Callable[[Ctx], Awaitable[Resp]]

MAX_CONTAINERS_PER_EXTRACTION = 10000
MAX_FAILED_EXTRACTIONS = 1000
MAX_DELETES_PER_REQUEST = 10000
MAX_FAILED_DELETES = 1000
#: Seconds between heartbeat whitespace while working (Swift's yield_frequency).
YIELD_FREQUENCY = 10.0
#: Deletes run at once (Swift's delete_concurrency).
DELETE_CONCURRENCY = 2
#: Longest ``container/object`` line (Swift: object + container name limits + 2).
MAX_PATH_LENGTH = 1024 + 256 + 2
_CHUNK = 65536
_SPOOL_IN_MEMORY = 4 * 1024 * 1024

INFO: dict[str, dict[str, Any]] = {
    "bulk_upload": {"max_containers_per_extraction": MAX_CONTAINERS_PER_EXTRACTION,
                    "max_failed_extractions": MAX_FAILED_EXTRACTIONS},
    "bulk_delete": {"max_deletes_per_request": MAX_DELETES_PER_REQUEST,
                    "max_failed_deletes": MAX_FAILED_DELETES},
}
_MORE_REASONS = {406: "Not Acceptable", 502: "Bad Gateway"}
_ARCHIVES = {"tar": "", "tar.gz": "gz", "tar.bz2": "bz2"}
_FORMATS = ("text/plain", "application/json", "application/xml", "text/xml")


def wanted(ctx: Ctx) -> bool:
    """Return whether this is a bulk request (PERF: an empty-dict test on plain requests)."""
    q = ctx.query
    if not q:
        return False
    return ("extract-archive" in q and ctx.method == "PUT") or (
        "bulk-delete" in q and ctx.method in ("POST", "DELETE"))


def status_line(status: int) -> str:
    """Return ``"201 Created"`` for 201 (the form Swift's summaries use)."""
    return f"{status} {REASONS.get(status) or _MORE_REASONS.get(status, 'Unknown')}"


def out_format(accept: str) -> str | None:
    """Pick the summary format from ``Accept`` like swob's best_match (None: 406)."""
    if not accept:
        return "text/plain"
    best: tuple[float, int, str] | None = None
    for item in accept.split(","):
        kind, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                with contextlib.suppress(ValueError):
                    q = float(p[2:])
        for i, fmt in enumerate(_FORMATS):
            if q > 0 and (kind in (fmt, "*/*") or kind == fmt.split("/")[0] + "/*"):
                rank = (q, -i if kind != fmt else 10 - i, fmt)
                if best is None or rank[:2] > best[:2]:
                    best = rank
    return best[2] if best else None


def summary(fmt: str, result: dict[str, Any], errors: list[list[str]], root: str) -> bytes:
    """Return Swift's bulk summary body (``get_heartbeat_response_body``)."""
    if fmt == "application/json":
        return json.dumps({**result, "Errors": errors}).encode("ascii")
    if fmt.endswith("/xml"):
        out = [f"<{root}>\n"]
        for key in sorted(result):
            tag = key.replace(" ", "_").lower()
            out.append(f"<{tag}>{escape(str(result[key]))}</{tag}>\n")
        out.append("<errors>\n")
        out.extend(f"<object><name>{escape(n)}</name><status>{escape(s)}</status></object>\n"
                   for n, s in errors)
        out.append(f"</errors>\n</{root}>\n")
        return "".join(out).encode()
    lines = [f"{key}: {result[key]}\n" for key in sorted(result)]
    lines.append("Errors:\n")
    lines.extend(f"{n}, {s}\n" for n, s in errors)
    return "".join(lines).encode()


class _Job:
    """Shared plumbing of one bulk request: sub-requests, heartbeats, the summary."""

    def __init__(self, ctx: Ctx, route: Route, fmt: str | None) -> None:
        self.ctx = ctx
        self.route = route
        #: None: no acceptable format was asked for (the summary says 406, in text).
        self.acceptable = fmt is not None
        self.fmt = fmt or "text/plain"
        self.errors: list[list[str]] = []
        self.last_yield = time.monotonic()
        self.beat = (b'<?xml version="1.0" encoding="UTF-8"?>\n' if self.fmt.endswith("/xml")
                     else b" ")
        self.separator = b""
        #: A refusal found while reading the request body (reported in the summary).
        self.early: HTTPError | None = None

    def heartbeat(self) -> bytes:
        """Return whitespace to send when the last one is old enough, else ``b""``."""
        if time.monotonic() - self.last_yield < YIELD_FREQUENCY:
            return b""
        self.last_yield = time.monotonic()
        beat, self.beat, self.separator = self.beat, b" ", b"\r\n\r\n"
        return beat

    async def prepare(self) -> None:
        """Read the request body before the answer starts (front ends need it read first)."""
        raise NotImplementedError

    def run(self) -> AsyncIterator[bytes]:
        """Stream the answer: heartbeats, then the summary."""
        raise NotImplementedError

    def check_request(self) -> None:
        """Raise 406/411 like Swift for an unusable Accept or a body of unknown size."""
        if not self.acceptable:
            raise HTTPError(406)
        if self.ctx.body.length is None and "transfer-encoding" not in self.ctx.headers:
            raise HTTPError(411)

    async def sub(self, method: str, container: str, obj: str | None,
                  headers: dict[str, str] | None = None, body: Body | None = None) -> int:
        """Run one sub-request as the caller; return its status."""
        ctx = self.ctx
        hdrs = {k: v for k, v in ctx.headers.items() if k in ("x-auth-token", "host")}
        hdrs.update(headers or {})
        path = "/".join(["", "v1", ctx.account, container] + ([obj] if obj is not None else []))
        # No TempURL reach: a signature covers one object, never what an archive names.
        sub = dataclasses.replace(
            ctx, method=method, path=urllib.parse.quote(path), query={}, headers=hdrs,
            container=container, obj=obj, tempurl=None, tempurl_container=None,
            body=body or Body(None, None, 0, ctx.state.conf.client_timeout))
        try:
            resp = await self.route(sub)
        except HTTPError as exc:
            return exc.status
        except Exception as exc:  # one failed file, not a failed request
            return error_response(exc)[0]
        close = getattr(resp.body, "aclose", None)
        if close is not None:
            await close()
        return resp.status

    def finish(self, result: dict[str, Any], root: str) -> bytes:
        """Return the last piece of the streamed answer."""
        return self.separator + summary(self.fmt, result, self.errors, root)


def _quote(name: str) -> str:
    return urllib.parse.quote(name[:MAX_PATH_LENGTH])


# --- extract-archive ---------------------------------------------------------

def _member_path(name: str, base: str) -> str | None:
    """Return ``container/object`` for a tar member, None for base-level files."""
    if name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/")
    if base:
        name = base + "/" + name
    return name if "/" in name else None


def _bad_segments(path: str) -> bool:
    return any(seg in (".", "..") for seg in path.split("/"))


def _pax_headers(info: tarfile.TarInfo) -> dict[str, str]:
    """Return the object headers a member's pax xattrs carry (Swift's mapping)."""
    out: dict[str, str] = {}
    for key, value in info.pax_headers.items():
        for prefix in ("SCHILY.xattr.user.", "LIBARCHIVE.xattr.user."):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            if rest == "mime_type":
                out["content-type"] = value
            elif rest.startswith("meta."):
                out["x-object-meta-" + rest[5:].lower()] = value
    return out


def _member_body(fileobj: IO[bytes], size: int, timeout: float) -> Body:
    """Return a request body that reads one archive member (off the event loop)."""
    remaining = [size]

    async def receive() -> dict[str, Any]:
        want = min(_CHUNK, remaining[0])
        data = await asyncio.to_thread(fileobj.read, want) if want else b""
        if want and not data:
            raise HTTPError(400, "Invalid Tar File: truncated member")
        remaining[0] -= len(data)
        return {"type": "http.request", "body": data, "more_body": remaining[0] > 0}

    return Body(None, receive, size, timeout)


def _open_tar(spool: IO[bytes], compression: str) -> tarfile.TarFile:
    """Open a spooled archive for streaming reads (closed with the spool)."""
    if compression == "gz":
        return tarfile.open(mode="r|gz", fileobj=spool)
    if compression == "bz2":
        return tarfile.open(mode="r|bz2", fileobj=spool)
    return tarfile.open(mode="r|", fileobj=spool)


async def _spool(body: Body, limit: int) -> IO[bytes]:
    """Copy the request body to a temporary file (at most ``limit`` bytes)."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    size = 0
    try:
        while True:
            chunk = await body.read_chunk()
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, "Your request is too large.")
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


class _Extract(_Job):
    """One ``?extract-archive`` request."""

    def __init__(self, ctx: Ctx, route: Route, fmt: str | None, compression: str) -> None:
        super().__init__(ctx, route, fmt)
        self.compression = compression
        self.spool: IO[bytes] | None = None
        self.created = 0
        self.containers_created = 0
        self.containers: set[str] = set()
        self.failed_status = 400
        self.copied = {k: v for k, v in ctx.headers.items()
                       if k in ("x-delete-at", "x-delete-after") or k.startswith("x-object-meta-")}

    async def run(self) -> AsyncIterator[bytes]:
        """Stream the answer: heartbeats, then the summary."""
        result: dict[str, Any] = {"Response Status": status_line(201), "Response Body": "",
                                  "Number Files Created": 0}
        spool = self.spool
        try:
            if self.early is not None or spool is None:
                raise self.early or HTTPError(400)
            tar = await asyncio.to_thread(_open_tar, spool, self.compression)
            async for beat in self._members(tar):
                yield beat
            result["Number Files Created"] = self.created
            if self.errors:
                result["Response Status"] = status_line(self.failed_status)
            elif not self.created:
                result["Response Status"] = status_line(400)
                result["Response Body"] = "Invalid Tar File: No Valid Files"
        except HTTPError as exc:
            result["Number Files Created"] = self.created
            result["Response Status"] = status_line(exc.status)
            result["Response Body"] = exc.body
        except (tarfile.TarError, zlib.error, EOFError, OSError, ValueError) as exc:
            result["Response Status"] = status_line(400)
            result["Response Body"] = f"Invalid Tar File: {exc}"
        finally:
            if spool is not None:
                spool.close()
        yield self.finish(result, "extract")

    async def prepare(self) -> None:
        """Spool the archive (bounded by the object size limit)."""
        try:
            self.check_request()
            self.spool = await _spool(self.ctx.body, self.ctx.state.limits.max_file_size)
        except HTTPError as exc:
            self.early = exc

    async def _members(self, tar: tarfile.TarFile) -> AsyncIterator[bytes]:
        base = (self.ctx.container or "") + ("/" + self.ctx.obj if self.ctx.obj else "")
        base = base.rstrip("/")
        while len(self.errors) < MAX_FAILED_EXTRACTIONS:
            beat = self.heartbeat()
            if beat:
                yield beat
            info = await asyncio.to_thread(tar.next)
            if info is None:
                return
            if not info.isfile():
                continue
            path = _member_path(info.name, base)
            if path is None:
                continue
            await self._one(tar, info, path)

    async def _one(self, tar: tarfile.TarFile, info: tarfile.TarInfo, path: str) -> None:
        """Store one member as ``path``; record a failure instead of raising."""
        limits = self.ctx.state.limits
        if _bad_segments(path) or "\x00" in path:
            self.errors.append([_quote(path), status_line(400)])
            return
        if info.size > limits.max_file_size:
            self.errors.append([_quote(path), status_line(413)])
            return
        container, obj = path.split("/", 1)
        if container not in self.containers:
            failure = await self._ensure_container(container)
            if failure is not None:
                self.errors.append(failure)
                return
        fileobj = await asyncio.to_thread(tar.extractfile, info)
        assert fileobj is not None  # a regular file always has data
        headers = {**self.copied, "content-length": str(info.size), **_pax_headers(info)}
        status = await self.sub("PUT", container, obj, headers,
                                _member_body(fileobj, info.size,
                                             self.ctx.state.conf.client_timeout))
        self.containers.add(container)
        if 200 <= status < 300:
            self.created += 1
            return
        if status == 401:
            self.errors.append([_quote(path), status_line(401)])
            raise HTTPError(401)
        if status >= 500:
            self.failed_status = 502
        self.errors.append([_quote(path), status_line(status)])

    async def _ensure_container(self, container: str) -> list[str] | None:
        """HEAD, then PUT a missing container; return the failure to record, if any."""
        status = await self.sub("HEAD", container, None)
        if 200 <= status < 300:
            return None
        if status == 404:
            status = await self.sub("PUT", container, None)
            if 200 <= status < 300:
                self.containers_created += 1
                if self.containers_created > MAX_CONTAINERS_PER_EXTRACTION:
                    raise HTTPError(400, f"More than {MAX_CONTAINERS_PER_EXTRACTION} "
                                         "containers to create from tar.")
                return None
        if status == 401:
            raise HTTPError(401)
        return [_quote(f"/v1/{self.ctx.account}/{container}"), status_line(status)]


# --- bulk-delete -------------------------------------------------------------

async def _names(body: Body) -> list[str]:
    """Read the newline-separated, URL-quoted names of a bulk-delete body (bounded)."""
    names: list[str] = []
    pending = b""
    while True:
        chunk = await body.read_chunk()
        pending += chunk
        if chunk:
            *lines, pending = pending.split(b"\n")
        else:
            lines, pending = [pending], b""
        for line in lines:
            name = urllib.parse.unquote_to_bytes(line.strip()).decode("utf-8", "surrogateescape")
            if name:
                names.append(name)
        if len(names) > MAX_DELETES_PER_REQUEST:
            raise HTTPError(413, f"Maximum Bulk Deletes: {MAX_DELETES_PER_REQUEST} per request")
        if len(pending) > MAX_PATH_LENGTH * 2:
            raise HTTPError(400, "Invalid File Name")
        if not chunk:
            return names


class _Delete(_Job):
    """One ``?bulk-delete`` request."""

    names: list[str] = []

    async def prepare(self) -> None:
        """Read the names to delete (bounded in count and line length)."""
        try:
            ctype = self.ctx.header("content-type")
            if ctype and not ctype.startswith("text/plain") and self.acceptable:
                raise HTTPError(406)
            self.check_request()
            self.names = await _names(self.ctx.body)
        except HTTPError as exc:
            self.early = exc

    async def run(self) -> AsyncIterator[bytes]:
        """Stream the answer: heartbeats, then the summary."""
        result: dict[str, Any] = {"Response Status": status_line(200), "Response Body": "",
                                  "Number Deleted": 0, "Number Not Found": 0}
        self.failed_status = 400
        try:
            if self.early is not None:
                raise self.early
            names = self.names
            objects = [n for n in names if "/" in n.strip("/")]
            containers = [n for n in names if "/" not in n.strip("/")]
            for group in (objects, containers):
                async for beat in self._delete_all(group, result):
                    yield beat
            if self.errors:
                result["Response Status"] = status_line(self.failed_status)
            elif not (result["Number Deleted"] or result["Number Not Found"]):
                result["Response Status"] = status_line(400)
                result["Response Body"] = "Invalid bulk delete."
        except HTTPError as exc:
            result["Response Status"] = status_line(exc.status)
            result["Response Body"] = exc.body
        yield self.finish(result, "delete")

    async def _delete_all(self, names: list[str], result: dict[str, Any]) -> AsyncIterator[bytes]:
        sem = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def one(name: str) -> tuple[str, int]:
            async with sem:
                return name, await self._delete(name)

        tasks = [asyncio.ensure_future(one(n)) for n in names]
        try:
            for fut in asyncio.as_completed(tasks):
                name, status = await fut
                beat = self.heartbeat()
                if beat:
                    yield beat
                if 200 <= status < 300:
                    result["Number Deleted"] += 1
                elif status == 404:
                    result["Number Not Found"] += 1
                else:
                    if status >= 500:
                        self.failed_status = 502
                    self.errors.append([urllib.parse.quote(name), status_line(status)])
                    if len(self.errors) >= MAX_FAILED_DELETES:
                        raise HTTPError(400, "Max delete failures exceeded")
        finally:
            for t in tasks:
                t.cancel()

    async def _delete(self, name: str) -> int:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return 412
        container, _, obj = name.lstrip("/").partition("/")
        return await self.sub("DELETE", container, obj or None)


async def handle(ctx: Ctx, route: Route) -> Resp:
    """Answer a bulk request (only called when :func:`wanted` said yes)."""
    fmt = out_format(ctx.header("accept"))
    if ctx.method == "PUT":
        kind = ctx.query["extract-archive"].lower().strip(".")
        if kind not in _ARCHIVES:
            raise HTTPError(400, "Unsupported archive format")
        job: _Job = _Extract(ctx, route, fmt, _ARCHIVES[kind])
    else:
        job = _Delete(ctx, route, fmt)
    await job.prepare()
    return Resp(200, {"Content-Type": fmt or "text/plain; charset=UTF-8"}, job.run())

