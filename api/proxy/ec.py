"""Erasure-coded objects on the proxy: encode + two-phase PUT, decode on GET.

An object of an EC policy (``k`` data + ``m`` parity) is cut into segments of
``segment_size`` bytes; each segment is encoded (ISA-L, :mod:`nubis.fastpath.ec`)
into ``k + m`` fragments of ``ceil(len / k)`` bytes, and fragment ``i`` of every
segment is appended to the *fragment archive* sent to the ring's primary ``i``
(the archive's fragment index, stored as ``X-Object-Sysmeta-Ec-Frag-Index``).

PUT, in two phases like Swift's:

1. every archive is sent (buffered when the body is small, else streamed with
   ``100-continue``; a failed primary is replaced by a handoff) with
   ``X-Backend-Obj-Multiphase-Commit: yes``; the proxy hashes each archive
   (MD5 and, for buffered ones, xxh3) and a node whose stored ETag differs
   counts as failed -- the per-fragment checksum;
2. once at least ``k + 1`` nodes hold their archive, each of them gets a POST
   with ``X-Backend-Ec-Commit: <timestamp>`` and the object's ETag and length as
   sysmeta: the archive becomes durable and its container update is queued.
   The client gets 201 only when ``k + 1`` commits succeeded; before that no GET
   decodes the object (non-durable archives are skipped).

GET opens the data-fragment holders first (primaries ``0..k-1``), then parity
holders and handoffs for the ones that failed, until ``k`` durable archives of
the newest timestamp answer; it then reads one fragment of each segment from
each of them and decodes. :class:`ECResponse` looks like a backend response
for the whole object, so ranges, conditionals, SLO/DLO, copies and HEAD reuse
the replicated code paths above :func:`fetch`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import xxhash
from nubis.api.proxy.backend import Backend, Node, Reply, RingLike, node_path
from nubis.api.proxy.context import Ctx
from nubis.api.proxy.errors import BackendUnavailableError, HTTPError
from nubis.api.proxy.putter import Footer, Source
from nubis.common import backend as hdr
from nubis.common.httpclient import ClientResponse, Exchange, HTTPClientError
from nubis.common.policies import ECPolicy
from nubis.fastpath import md5lanes

log = logging.getLogger("nubis.proxy")

#: Objects up to this size are read whole, encoded at once and each archive
#: sent in one request (no 100-continue). PERF: bench swift ec 4 KiB / 1 MiB PUT.
SMALL_OBJECT = 8 * 1024 * 1024
#: Buffered bodies larger than this are encoded and hashed in a worker thread.
HASH_IN_THREAD = 64 * 1024


# -- PUT --------------------------------------------------------------------------

@dataclass
class _Archive:
    """One fragment archive being written: its target and running digests."""

    index: int
    headers: dict[str, str]
    node: Node | None = None
    exchange: Exchange | None = None
    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    failed: bool = False
    #: The node's ``x-backend-replaced`` answer (see ``transfer.store``'s ``report``).
    replaced: str = ""


async def store(ctx: Ctx, policy: ECPolicy, ring: RingLike, names: tuple[str, str, str],
                headers: list[dict[str, str]], source: Source, length: int | None,
                client_etag: str | None, ts: str,
                footer: Footer | None = None) -> tuple[str, set[str]]:
    """Write an EC object (two-phase); return its ETag and what it replaced.

    ``footer``'s metadata (known once the body was read) goes with the commit.

    ``headers`` are the per-primary request headers (metadata, container-update
    targets); the fragment index and EC headers are added here. The set holds
    the nodes' ``x-backend-replaced`` answers (empty unless ``headers`` ask with
    ``x-backend-report-replaced``).

    Raises:
        HTTPError: 422 when the body does not match ``client_etag``.
        BackendUnavailableError: fewer than ``k + 1`` nodes stored or committed.
    """
    backend = ctx.state.backend
    part, nodes = ring.get_nodes(*names)
    n = policy.k + policy.m
    if len(nodes) < n:
        raise BackendUnavailableError(f"the {policy.name} ring has {len(nodes)} primaries")
    archives = []
    for i, h in enumerate(headers[:n]):
        h = dict(h)
        h.update({hdr.EC_FRAG_INDEX: str(i), hdr.EC_SEGMENT_SIZE: str(policy.segment_size),
                  hdr.X_EC_MULTIPHASE: "yes", "X-Timestamp": ts})
        h.pop("etag", None)
        archives.append(_Archive(i, h))
    handoffs = backend.handoffs(ring, part)
    if length is not None and length <= SMALL_OBJECT and backend.reserve_buffer(length):
        try:
            etag, size = await _put_small(backend, policy, part, nodes, handoffs, names,
                                          archives, source, client_etag)
        finally:
            backend.release_buffer(length)
    else:
        etag, size = await _put_stream(backend, policy, part, nodes, handoffs, names,
                                       archives, source, length, client_etag)
    await _commit(backend, policy, part, names, archives, ts, etag, size,
                  footer() if footer is not None else {})
    return etag, {a.replaced for a in archives if not a.failed} - {""}


async def _chunks(source: Source) -> AsyncIterator[bytes]:
    from nubis.api.proxy.putter import _chunks as chunks

    async for c in chunks(source):
        yield c


def _encode(policy: ECPolicy, data: bytes | memoryview) -> list[list[bytes]]:
    """Return each archive's fragments (one per segment) of ``data``."""
    out: list[list[bytes]] = [[] for _ in range(policy.k + policy.m)]
    view = memoryview(data)
    for start in range(0, len(data), policy.segment_size):
        frags = policy.codec.encode(view[start:start + policy.segment_size])
        for i, f in enumerate(frags):
            out[i].append(bytes(f))
    return out


async def _put_small(backend: Backend, policy: ECPolicy, part: int, nodes: list[Node],
                     handoffs: Iterator[Node], names: tuple[str, ...],
                     archives: list[_Archive], source: Source,
                     client_etag: str | None) -> tuple[str, int]:
    data = b"".join([c async for c in _chunks(source)])
    if len(data) > HASH_IN_THREAD:
        # PERF: hashing and encoding release the GIL; off the event loop (bench swift
        # --policy ec42, 1 MiB PUT).
        etag, bodies, sums = await asyncio.get_running_loop().run_in_executor(
            None, _encode_small, policy, data)
    else:
        etag, bodies, sums = _encode_small(policy, data)
    if client_etag is not None and client_etag.strip('"').lower() != etag:
        raise HTTPError(422)

    async def send(a: _Archive, node: Node, body: bytes) -> None:
        a.headers["ETag"], a.headers[hdr.X_BODY_XXH3] = sums[a.index]

        async def attempt(current: Node) -> Node | None:
            try:
                resp = await backend.client.request(
                    current["ip"], int(current["port"]), "PUT",
                    node_path(current, part, *names), a.headers, body,
                    timeout=backend.node_timeout)
                await resp.release()
            except (HTTPClientError, OSError):
                return None
            if resp.status >= 500 or resp.status == 507:
                return None
            ok = 200 <= resp.status < 300 \
                and resp.headers.get("etag", "").strip('"') == a.headers["ETag"]
            a.failed = not ok
            a.replaced = resp.headers.get(hdr.X_REPLACED, "")
            return current

        a.node = await backend.on_node_or_handoff(node, handoffs, attempt)
        a.failed = a.failed or a.node is None

    await asyncio.gather(*(send(a, nd, b) for a, nd, b in zip(archives, nodes, bodies,
                                                              strict=False)))
    return etag, len(data)


def _encode_small(policy: ECPolicy,
                  data: bytes) -> tuple[str, list[bytes], list[tuple[str, str]]]:
    """Return the object's MD5, its archives and each archive's (MD5, xxh3) in hex."""
    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    bodies = [b"".join(f) for f in _encode(policy, data)]
    # PERF: the k + m archives are as long as each other: their MD5s run side by
    # side in the lanes kernel (python -m nubis.bench md5). The object's own MD5
    # is 1 message k times longer: hashlib (a lone lane is slower).
    sums = [(md5.hex(), f"{xxhash.xxh3_64_intdigest(b):016x}")
            for md5, b in zip(md5lanes.md5_many(bodies), bodies, strict=True)]
    return etag, bodies, sums


async def _connect(backend: Backend, a: _Archive, node: Node, handoffs: Iterator[Node],
                   part: int, names: tuple[str, ...], length: int | None) -> None:
    async def attempt(current: Node) -> Exchange | None:
        ex: Exchange | None = None
        try:
            ex = await backend.client.open(
                current["ip"], int(current["port"]), "PUT", node_path(current, part, *names),
                a.headers, content_length=length, expect_continue=True,
                timeout=backend.node_timeout)
            if await ex.wait_continue(backend.node_timeout) == 100:
                a.node = current
                return ex
            resp = await ex.response()
            await resp.release()
        except (HTTPClientError, OSError):
            if ex is not None:
                ex.abort()
        return None

    a.exchange = await backend.on_node_or_handoff(node, handoffs, attempt)
    a.failed = a.exchange is None


async def _put_stream(backend: Backend, policy: ECPolicy, part: int, nodes: list[Node],
                      handoffs: Iterator[Node], names: tuple[str, ...],
                      archives: list[_Archive], source: Source, length: int | None,
                      client_etag: str | None) -> tuple[str, int]:
    alen = policy.archive_size(length) if length is not None else None
    await asyncio.gather(*(_connect(backend, a, nd, handoffs, part, names, alen)
                           for a, nd in zip(archives, nodes, strict=False)))
    quorum = policy.quorum(len(archives))
    try:
        if sum(not a.failed for a in archives) < quorum:
            raise BackendUnavailableError("not enough storage nodes for an EC PUT")
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        buf = bytearray()
        async for chunk in _chunks(source):
            md5.update(chunk)
            size += len(chunk)
            buf += chunk
            while len(buf) >= policy.segment_size:
                await _send_segment(backend, policy, archives, bytes(buf[:policy.segment_size]))
                del buf[:policy.segment_size]
        if buf:
            await _send_segment(backend, policy, archives, bytes(buf))
        etag = md5.hexdigest()
        if client_etag is not None and client_etag.strip('"').lower() != etag:
            raise HTTPError(422)
        await asyncio.gather(*(_finish(a) for a in archives))
    except BaseException:
        for a in archives:
            if a.exchange is not None:
                a.exchange.abort()
        raise
    return etag, size


async def _send_segment(backend: Backend, policy: ECPolicy, archives: list[_Archive],
                        segment: bytes) -> None:
    frags = policy.codec.encode(segment)
    for a in archives:
        if a.failed or a.exchange is None:
            continue
        piece = bytes(frags[a.index])
        a.md5.update(piece)
        try:
            async with asyncio.timeout(backend.node_timeout):
                await a.exchange.write(piece)
        except (HTTPClientError, OSError, TimeoutError):
            a.failed = True
            a.exchange.abort()
    if sum(not a.failed for a in archives) < policy.quorum(len(archives)):
        raise BackendUnavailableError("lost quorum during an EC PUT")


async def _finish(a: _Archive) -> None:
    if a.failed or a.exchange is None:
        return
    try:
        await a.exchange.finish()
        resp = await a.exchange.response()
        await resp.release()
    except (HTTPClientError, OSError):
        a.failed = True
        return
    ok = 200 <= resp.status < 300 \
        and resp.headers.get("etag", "").strip('"') == a.md5.hexdigest()
    a.failed = not ok
    a.replaced = resp.headers.get(hdr.X_REPLACED, "")


_OVERRIDE_SIZE = "x-object-sysmeta-container-update-override-size"
_OVERRIDE_ETAG = "x-object-sysmeta-container-update-override-etag"
_OVERRIDES = (_OVERRIDE_SIZE, _OVERRIDE_ETAG)


async def _commit(backend: Backend, policy: ECPolicy, part: int, names: tuple[str, ...],
                  archives: list[_Archive], ts: str, etag: str, size: int,
                  footer: Mapping[str, str]) -> None:
    """Phase 2: mark the stored archives durable once ``k + 1`` nodes hold them."""
    quorum = policy.quorum(len(archives))
    held = [a for a in archives if not a.failed and a.node is not None]
    if len(held) < quorum:
        raise BackendUnavailableError(f"only {len(held)} fragment archives stored")

    async def one(a: _Archive) -> bool:
        assert a.node is not None
        h = {k: v for k, v in a.headers.items()
             if k.lower() in ("x-trans-id", hdr.X_POLICY_INDEX, hdr.X_CONTAINER_HOST,
                              hdr.X_CONTAINER_PARTITION, hdr.X_CONTAINER_DEVICE)}
        # A listing override the PUT already carries (a static symlink's or an SLO's
        # etag with parameters) wins over the archive's own etag and size.
        given = {k.lower(): v for k, v in a.headers.items() if k.lower() in _OVERRIDES}
        h.update(footer)
        h.update({hdr.X_EC_COMMIT: ts, hdr.EC_ETAG: etag, hdr.EC_CONTENT_LENGTH: str(size),
                  _OVERRIDE_SIZE: given.get(_OVERRIDE_SIZE, str(size)),
                  _OVERRIDE_ETAG: given.get(_OVERRIDE_ETAG, etag)})
        try:
            resp = await backend.client.request(a.node["ip"], int(a.node["port"]), "POST",
                                                 node_path(a.node, part, *names), h,
                                                 timeout=backend.node_timeout)
            await resp.release()
        except (HTTPClientError, OSError):
            return False
        return resp.status == 202

    done = await asyncio.gather(*(one(a) for a in held))
    if sum(done) < quorum:
        raise BackendUnavailableError(f"only {sum(done)} fragment archives committed")


# -- GET / HEAD -------------------------------------------------------------------

class _Fragment:
    """An open GET of one fragment archive, read fragment by fragment."""

    def __init__(self, resp: ClientResponse, index: int) -> None:
        self.resp = resp
        self.index = index
        self.buf = bytearray()

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.resp.read_chunk()
            if not chunk:
                raise BackendUnavailableError("a fragment archive ended early")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class ECResponse:
    """The decoded object, shaped like a backend :class:`ClientResponse`."""

    def __init__(self, policy: ECPolicy, frags: list[_Fragment], head_only: bool,
                 segments: SegmentSpan | None = None, spare: Spare | None = None) -> None:
        self.policy = policy
        self.frags = frags
        #: Opens another archive of the object at a byte offset (see :meth:`_read_segment`).
        self.spare = spare
        #: Fragment indexes whose archive failed mid-stream.
        self.bad: set[int] = set()
        first = frags[0].resp.headers
        self.length = int(first.get(hdr.EC_CONTENT_LENGTH, "0"))
        self.status = 200
        self.headers = {k: v for k, v in first.items()
                        if not k.startswith("x-object-sysmeta-ec-") and k != "content-range"}
        self.headers["content-length"] = str(self.length)
        self.headers["etag"] = first.get(hdr.EC_ETAG, "")
        self.body = b""
        #: The segments the archives were opened at (None: all of them).
        self.segments = segments
        #: Object offset of the first byte :meth:`iter_body` yields.
        self.offset = segments.first * policy.segment_size if segments else 0
        if head_only:
            self.close()

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the object (or its opened segments) segment by segment, decoded."""
        try:
            codec = self.policy.codec
            lengths = self.policy.segments(self.length)
            first = 0
            if self.segments is not None:
                first = self.segments.first
                lengths = lengths[first:self.segments.last + 1]
            full = self.policy.fragment_size(self.policy.segment_size)
            for i, seg_len in enumerate(lengths):
                frags = await self._read_segment(self.policy.fragment_size(seg_len),
                                                 (first + i) * full)
                # PERF: ISA-L decode of a 1 MiB segment is ~0.1 ms; done inline.
                yield bytes(codec.decode(frags, seg_len))
            for f in self.frags:
                await f.resp.release()
        finally:
            self.close()

    async def _read_segment(self, size: int, at: int) -> dict[int, bytes]:
        """Read one segment's fragments (``size`` bytes at archive offset ``at``).

        An archive that fails mid-stream (its server cut the connection, say on a
        corrupt chunk) is replaced by another archive of the object opened at
        ``at`` (a parity one, or one on a handoff), as Swift's proxy does.
        """
        got = await asyncio.gather(*(f.read_exact(size) for f in self.frags),
                                   return_exceptions=True)
        pieces: dict[int, bytes] = {}
        for f, piece in zip(list(self.frags), got, strict=True):
            if isinstance(piece, bytes):
                pieces[f.index] = piece
                continue
            if not isinstance(piece, HTTPClientError | OSError | BackendUnavailableError):
                raise piece
            log.warning("EC archive %d failed mid-stream: %s", f.index, piece)
            f.resp.close()
            self.frags.remove(f)
            self.bad.add(f.index)
        while len(pieces) < self.policy.k:
            new = None if self.spare is None else await self.spare(
                frozenset(pieces) | self.bad, at)
            if new is None:
                raise BackendUnavailableError("no fragment archive left to read from")
            try:
                pieces[new.index] = await new.read_exact(size)
            except (HTTPClientError, OSError, BackendUnavailableError):
                new.resp.close()
                self.bad.add(new.index)
                continue
            self.frags.append(new)
        return pieces

    async def read(self) -> bytes:
        """Return the whole object."""
        self.body = b"".join([c async for c in self.iter_body()])
        return self.body

    async def release(self) -> None:
        """Drop the fragment connections (the rest of the body is not needed)."""
        self.close()

    def close(self) -> None:
        """Drop every fragment connection."""
        for f in self.frags:
            f.resp.close()


#: Opens one more archive (its fragment index not in the set) at an archive offset.
Spare: TypeAlias = Callable[[frozenset[int], int], Awaitable["_Fragment | None"]]


@dataclass(frozen=True)
class SegmentSpan:
    """Segments ``first..last`` of an object (``last`` may lie past its end)."""

    first: int
    last: int

    @classmethod
    def covering(cls, policy: ECPolicy, start: int, end: int | None) -> SegmentSpan:
        """Return the segments holding object bytes ``start..end`` (inclusive; open end)."""
        last = (1 << 62) if end is None else end // policy.segment_size
        return cls(start // policy.segment_size, last)

    def archive_range(self, policy: ECPolicy) -> str:
        """Return the ``Range`` of these segments' fragments in every archive.

        All segments but an object's last are ``segment_size`` long, so their
        fragments have one size and sit at fixed offsets; the last fragment of an
        archive can only be shorter, which the object server's range clamps.
        """
        size = policy.fragment_size(policy.segment_size)
        return f"bytes={self.first * size}-{(self.last + 1) * size - 1}"


async def fetch(ctx: Ctx, policy: ECPolicy, ring: RingLike, names: tuple[str, str, str],
                method: str, extra: dict[str, str] | None = None,
                segments: SegmentSpan | None = None) -> ECResponse | Reply:
    """Open ``k`` durable fragment archives of the newest version of an object.

    ``extra``: more headers for the object servers (``X-Backend-Open-Expired``).
    ``segments`` (a GET): open the archives at these segments only (a range read
    of a large object decodes what it returns, not what comes before); an
    object too short for them is opened whole.
    """
    if segments is not None and segments.first > 0 and method == "GET":
        got = await _open(ctx, policy, ring, names, method, extra, segments)
        if not (isinstance(got, Reply) and got.status == 416):
            return got
    return await _open(ctx, policy, ring, names, method, extra, None)


async def _open(ctx: Ctx, policy: ECPolicy, ring: RingLike, names: tuple[str, str, str],
                method: str, extra: dict[str, str] | None,
                segments: SegmentSpan | None) -> ECResponse | Reply:
    """Open ``k`` durable archives of the newest version (see :func:`fetch`)."""
    return await _ArchiveOpener(ctx, policy, ring, names, method, extra, segments).open()


class _ArchiveOpener:
    """Open the fragment archives of one object GET/HEAD, in waves, newest first."""

    def __init__(self, ctx: Ctx, policy: ECPolicy, ring: RingLike,
                 names: tuple[str, str, str], method: str, extra: dict[str, str] | None,
                 segments: SegmentSpan | None) -> None:
        self.backend = ctx.state.backend
        self.policy = policy
        self.ring = ring
        self.names = names
        self.method = method
        self.segments = segments
        self.part, self.nodes = ring.get_nodes(*names)
        #: The headers of every archive GET but the range (a spare sets its own).
        self.base = {hdr.X_POLICY_INDEX: str(policy.index), "X-Trans-Id": ctx.trans_id,
                     **(extra or {})}
        self.headers = dict(self.base)
        if segments is not None:
            self.headers["Range"] = segments.archive_range(policy)
        #: Archives needed: any durable archive has the metadata a HEAD answers with.
        self.k = 1 if method == "HEAD" else policy.k
        self.candidates = iter([*self.nodes, *self.backend.handoffs(ring, self.part)])
        #: Open archives by data timestamp.
        self.good: dict[str, list[_Fragment]] = {}
        self.durable: set[str] = set()
        self.seen: set[tuple[str, int]] = set()
        self.tombstone = ""
        self.failures: list[Reply] = []
        self.errored = False

    async def open(self) -> ECResponse | Reply:
        """Open archives until ``k`` durable ones of one version answer; shape the answer."""
        await self._open_waves()
        ts = self._ready()
        if ts is None or (self.tombstone and self.tombstone > ts):
            self._close_all()
            return self._failure()
        chosen = self._choose(ts)
        return ECResponse(self.policy, chosen, self.method == "HEAD", self.segments,
                          lambda exclude, at: self._spare(ts, exclude, at))

    async def _open_waves(self) -> None:
        """Ask ``k`` nodes at once, then as many more as archives are still missing."""
        wave = [n for _, n in zip(range(self.k), self.candidates, strict=False)]
        while wave:
            await asyncio.gather(*(self._open_one(n) for n in wave))
            if self._ready() is not None:
                return
            have = max((len(v) for v in self.good.values()), default=0)
            wave = [n for _, n in zip(range(max(1, self.k - have)), self.candidates,
                                      strict=False)]

    async def _open_one(self, node: Node) -> None:
        """Open one node's archive; file it under its timestamp or note why not."""
        try:
            resp = await self.backend.client.request(
                node["ip"], int(node["port"]), self.method,
                node_path(node, self.part, *self.names), self.headers,
                timeout=self.backend.node_timeout)
        except (HTTPClientError, OSError) as exc:
            log.warning("EC GET %s:%s failed: %s", node["ip"], node["port"], exc)
            self.errored = True
            return
        h = resp.headers
        if resp.status not in (200, 206) or hdr.EC_FRAG_INDEX not in h:
            await resp.release()
            if resp.status >= 500:
                self.errored = True
            elif resp.status == 404:
                self.tombstone = max(self.tombstone, h.get("x-backend-timestamp", ""))
            self.failures.append(Reply(resp.status, h, b"", node))
            return
        ts = h.get("x-backend-data-timestamp", "")
        index = int(h[hdr.EC_FRAG_INDEX])
        if (ts, index) in self.seen:  # the same archive twice (a handoff copy)
            resp.close()
            return
        self.seen.add((ts, index))
        if _durable(h):
            self.durable.add(ts)
        self.good.setdefault(ts, []).append(_Fragment(resp, index))

    def _ready(self) -> str | None:
        """Return the newest timestamp with ``k`` archives, one of them durable."""
        for ts in sorted(self.good, reverse=True):
            if ts in self.durable and len(self.good[ts]) >= self.k:
                return ts
        return None

    def _failure(self) -> Reply:
        """Return what no decodable version means: 416, 404 or 503."""
        if not self.good and any(f.status == 416 for f in self.failures):
            return Reply(416)  # the range lies past the archives: open them whole
        if self.tombstone or (not self.errored and self.failures):
            return Reply(404, {"x-backend-timestamp": self.tombstone}
                         if self.tombstone else {})
        return Reply(503)

    def _choose(self, ts: str) -> list[_Fragment]:
        """Keep ``k`` archives of ``ts`` (durable ones first: they carry the metadata)."""
        chosen = sorted(self.good[ts],
                        key=lambda f: (not _durable(f.resp.headers), f.index))[:self.k]
        for other_ts, frags in self.good.items():
            for f in frags:
                if other_ts != ts or f not in chosen:
                    f.resp.close()
        return chosen

    def _close_all(self) -> None:
        for frags in self.good.values():
            for f in frags:
                f.resp.close()

    async def _spare(self, ts: str, exclude: frozenset[int], at: int) -> _Fragment | None:
        """Open an archive of version ``ts`` whose index is not in ``exclude`` at ``at``."""
        others = [n for i, n in enumerate(self.nodes) if i not in exclude]
        for node in [*others, *self.backend.handoffs(self.ring, self.part)]:
            try:
                resp = await self.backend.client.request(
                    node["ip"], int(node["port"]), "GET",
                    node_path(node, self.part, *self.names),
                    {**self.base, "Range": f"bytes={at}-"},
                    timeout=self.backend.node_timeout)
            except (HTTPClientError, OSError):
                continue
            h = resp.headers
            if resp.status == 206 and h.get("x-backend-data-timestamp") == ts \
                    and h.get(hdr.EC_FRAG_INDEX, "").isdigit() \
                    and int(h[hdr.EC_FRAG_INDEX]) not in exclude:
                return _Fragment(resp, int(h[hdr.EC_FRAG_INDEX]))
            resp.close()
        return None


#: What :func:`nubis.api.proxy.transfer.fetch` opens: a replica or a decoded EC object.
Fetched: TypeAlias = ClientResponse | ECResponse


def _durable(h: dict[str, str]) -> bool:
    return h.get(hdr.X_EC_DURABLE.lower()) != "no" and hdr.EC_ETAG in h
