"""Object uploads to storage nodes: buffered for small bodies, streamed for big ones.

Small bodies (known length up to :data:`SMALL_BODY`) are read whole, hashed
once here (the MD5 is the ETag; an xxh3-64 of the body travels with it so each
object server checks what it received without computing the MD5 again), then
sent to every primary in one request each. Bigger and chunked bodies are
streamed: connections to all primaries are opened with ``Expect:
100-continue`` (a node that fails is replaced by a handoff), each client chunk
is written to every live node, and the upload succeeds when a quorum of nodes
stored it and agree on its MD5 (computed by the object servers, as in Swift).
If the client goes away mid-body every backend connection is dropped before
its body is complete, so the storage nodes discard the partial object: nothing
becomes visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from nubis.api.proxy.backend import (
    Backend,
    Node,
    Reply,
    RingLike,
    best_status,
    node_path,
    quorum_size,
)
from nubis.api.proxy.context import Body
from nubis.api.proxy.digests import StreamDigest, digest_of
from nubis.api.proxy.errors import BackendUnavailableError, HTTPError
from nubis.common import backend as hdr
from nubis.common.httpclient import Exchange, HTTPClientError

#: Bodies up to this size are buffered and sent in one request per node.
#: PERF: saves the 100-continue round trip, and the proxy hashes the MD5 once
#: instead of every object server (bench swift 4 KiB and 1 MiB PUT).
SMALL_BODY = 2 * 1024 * 1024
#: Buffered bodies larger than this are hashed in a worker thread, not on the
#: event loop, side by side with other uploads' (:mod:`nubis.api.proxy.digests`).
HASH_IN_THREAD = 64 * 1024

Source: TypeAlias = Body | AsyncIterator[bytes]
#: Called once the whole body was read: metadata to store with the object that only
#: the body tells (``x-object-sysmeta-*``, ``content-type``), e.g. a checksum.
Footer: TypeAlias = Callable[[], Mapping[str, str]]


@dataclass
class UploadResult:
    """What the nodes said about one upload."""

    status: int
    etag: str
    replies: list[Reply]


async def _chunks(source: Source) -> AsyncIterator[bytes]:
    if isinstance(source, Body):
        while True:
            chunk = await source.read_chunk()
            if not chunk:
                return
            yield chunk
    else:
        async for chunk in source:
            yield chunk


async def upload(backend: Backend, ring: RingLike, part: int, nodes: list[Node],
                 names: tuple[str, ...], headers: list[dict[str, str]], source: Source,
                 length: int | None, client_etag: str | None,
                 footer: Footer | None = None) -> UploadResult:
    """Store one object body on a quorum of nodes.

    ``footer`` adds metadata the body tells: headers of a buffered body, else the
    trailer of a chunked one (``X-Backend-Obj-Metadata-Footer``), so it is stored
    with the object in one write.

    Raises:
        HTTPError: 422 when the body does not match ``client_etag``; 503 without quorum.
        ClientDisconnectError: the client went away (nothing was committed).
    """
    quorum = quorum_size(len(nodes))
    if length is not None and length <= SMALL_BODY and backend.reserve_buffer(length):
        try:
            return await _upload_small(backend, ring, part, nodes, names, headers, source,
                                       client_etag, quorum, footer)
        finally:
            backend.release_buffer(length)
    # PERF: with more than one replica the body's MD5 is computed here, once,
    # and vouched for in the trailer with an xxh3 the object servers check,
    # instead of every object server hashing its replica (bench s3 --multipart-mib).
    vouch = len(nodes) > 1
    if footer is not None or vouch:
        for h in headers:  # chunked, for the trailer; the length is still checked
            if footer is not None:
                h[hdr.X_METADATA_FOOTER] = "yes"
            if vouch:
                h[hdr.X_SUMS_IN_FOOTER] = "yes"
            if length is not None:
                h[hdr.X_OBJ_CONTENT_LENGTH] = str(length)
        length = None
    return await _upload_stream(backend, ring, part, nodes, names, headers, source,
                                length, client_etag, quorum, footer, vouch)


async def _upload_small(backend: Backend, ring: RingLike, part: int, nodes: list[Node],
                        names: tuple[str, ...], headers: list[dict[str, str]],
                        source: Source, client_etag: str | None, quorum: int,
                        footer: Footer | None) -> UploadResult:
    parts = [c async for c in _chunks(source)]
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if footer is not None:
        extra = footer()
        for h in headers:
            h.update(extra)
    if len(data) > HASH_IN_THREAD:
        etag, body_sum = await backend.digests.of(data)
    else:
        etag, body_sum = digest_of(data)
    if client_etag is not None and client_etag.strip('"').lower() != etag:
        raise HTTPError(422)
    for h in headers:
        h["ETag"] = etag
        h[hdr.X_BODY_XXH3] = body_sum  # the object server checks it, keeps our MD5
    replies = await backend.write_all(ring, part, nodes, "PUT", names, headers, data)
    return UploadResult(_final_status(replies, quorum), etag, replies)


def _final_status(replies: list[Reply], quorum: int) -> int:
    status = best_status(replies, quorum)
    if status == 422:
        raise HTTPError(422)
    if status == 409:
        # An equal-or-newer timestamp already exists: Swift answers 202.
        return 202
    if status >= 500:
        raise BackendUnavailableError("no quorum for object PUT")
    return status


class _Target:
    """One node taking part in a streamed upload."""

    def __init__(self, node: Node, exchange: Exchange) -> None:
        self.node = node
        self.exchange = exchange
        self.failed = False


async def _connect(backend: Backend, node: Node, handoffs: Iterator[Node], part: int,
                   names: tuple[str, ...], headers: dict[str, str],
                   length: int | None) -> _Target | Reply:
    """Open a 100-continue PUT on ``node`` or, when it fails, the next handoff."""
    async def attempt(current: Node) -> _Target | Reply | None:
        ex: Exchange | None = None
        try:
            ex = await backend.client.open(
                current["ip"], int(current["port"]), "PUT", node_path(current, part, *names),
                headers, content_length=length, expect_continue=True,
                timeout=backend.node_timeout)
            status = await ex.wait_continue(backend.node_timeout)
            if status == 100:
                return _Target(current, ex)
            resp = await ex.response()
            await resp.release()
            if status < 500:
                return Reply(status, resp.headers, b"", current)
        except (HTTPClientError, OSError):
            if ex is not None:
                ex.abort()
        return None

    got: _Target | Reply | None = await backend.on_node_or_handoff(node, handoffs, attempt)
    return Reply(503) if got is None else got


async def _upload_stream(backend: Backend, ring: RingLike, part: int, nodes: list[Node],
                         names: tuple[str, ...], headers: list[dict[str, str]],
                         source: Source, length: int | None, client_etag: str | None,
                         quorum: int, footer: Footer | None, vouch: bool) -> UploadResult:
    handoffs = backend.handoffs(ring, part)
    if client_etag is not None:
        for h in headers:
            h["ETag"] = client_etag.strip('"').lower()
    got = await asyncio.gather(*(_connect(backend, n, handoffs, part, names, h, length)
                                 for n, h in zip(nodes, headers, strict=True)))
    targets = [g for g in got if isinstance(g, _Target)]
    early = [g for g in got if isinstance(g, Reply)]
    if len(targets) < quorum:
        _abort(targets)
        status = best_status(early, quorum)
        if status < 500:
            return UploadResult(_final_status(early, quorum), "", early)
        raise BackendUnavailableError("not enough storage nodes for object PUT")
    # Without ``vouch`` (one replica) the body is not hashed here, as in Swift's
    # proxy: the object server computes the MD5 itself (and answers 422 when a
    # client ETag, passed on above, does not match). Either way the upload
    # needs a quorum of nodes agreeing on one ETag. With ``vouch`` the hashing
    # runs in a worker thread (StreamDigest): on the proxy's event loop it was
    # a quarter of its CPU per 1 MiB PUT (python -m nubis.bench swift).
    sums = StreamDigest() if vouch else None
    try:
        async for chunk in _chunks(source):
            if sums is not None:
                await sums.update(chunk)
            await _send(backend, targets, chunk, quorum)
        trailers = dict(footer()) if footer is not None else {}
        if sums is not None:
            etag, body_sum = await sums.result()
            if client_etag is not None and client_etag.strip('"').lower() != etag:
                raise HTTPError(422)  # the nodes are dropped below: nothing is stored
            trailers["ETag"] = etag
            trailers[hdr.X_BODY_XXH3] = body_sum
        replies = await _finish(backend, targets, trailers or None)
    except BaseException:
        _abort(targets)
        raise
    etag = _agreed_etag(replies)
    return UploadResult(_final_status(replies + early, quorum), etag, replies)


def _agreed_etag(replies: list[Reply]) -> str:
    """Return the ETag most successful nodes report; dissenting nodes count as failed.

    The object servers hash what they received; two different hashes of one
    upload mean a corrupted copy, which must not count toward the quorum.
    """
    etags = [r.headers.get("etag", "").strip('"').lower() for r in replies]
    ok = [e for r, e in zip(replies, etags, strict=True) if 200 <= r.status < 300]
    if not ok:
        return ""
    etag: str = max(set(ok), key=ok.count)
    for i, (r, e) in enumerate(zip(replies, etags, strict=True)):
        if 200 <= r.status < 300 and e != etag:
            replies[i] = Reply(503)
    return etag


async def _send(backend: Backend, targets: list[_Target], chunk: bytes, quorum: int) -> None:
    for t in targets:
        if t.failed:
            continue
        try:
            # PERF: asyncio.timeout, not wait_for: no task per chunk per node
            # (bench swift 1 MiB PUT).
            async with asyncio.timeout(backend.node_timeout):
                await t.exchange.write(chunk)
        except (HTTPClientError, OSError, TimeoutError):
            t.failed = True
            t.exchange.abort()
    if sum(1 for t in targets if not t.failed) < quorum:
        raise BackendUnavailableError("lost quorum during object PUT")


async def _finish(backend: Backend, targets: list[_Target],
                  trailers: Mapping[str, str] | None) -> list[Reply]:
    async def one(t: _Target) -> Reply:
        if t.failed:
            return Reply(503)
        try:
            await t.exchange.finish(trailers)
            resp = await t.exchange.response()
            await resp.release()
        except (HTTPClientError, OSError):
            return Reply(503)
        if 200 <= resp.status < 300 and not resp.headers.get("etag"):
            return Reply(503)  # a node that cannot say what it stored
        return Reply(resp.status, resp.headers, b"", t.node)

    return list(await asyncio.gather(*(one(t) for t in targets)))


def _abort(targets: list[_Target]) -> None:
    for t in targets:
        t.exchange.abort()
