"""Talking to the storage nodes: ring lookups, failover reads, quorum writes.

Every backend request goes through the pooled keep-alive
:class:`~nubis.common.httpclient.HTTPClient`. Reads try the primaries (in a
shuffled order) and then, if a primary failed, handoff nodes. Writes go to
every primary in parallel; a primary that cannot be reached is replaced by the
next handoff from ``get_more_nodes``; success needs a quorum
(``replicas // 2 + 1``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from nubis.api.proxy.digests import BodyDigests
from nubis.api.proxy.errors import BackendUnavailableError
from nubis.common.httpclient import ClientResponse, HTTPClient, HTTPClientError

Node = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger("nubis.proxy.backend")


class RingLike(Protocol):
    """What the proxy needs from :class:`nubis.ring.Ring`."""

    def get_nodes(self, account: str, container: str | None = None,
                  obj: str | None = None) -> tuple[int, list[Node]]:
        """Return the partition and primary nodes of a path."""
        ...

    def get_more_nodes(self, part: int) -> Iterator[Node]:
        """Yield handoff nodes of a partition."""
        ...


def quorum_size(n: int) -> int:
    """Return how many of ``n`` replicas must agree (Swift's replication quorum)."""
    return n // 2 + 1


def normalize_timestamp(ts: float | None = None) -> str:
    """Return Swift's fixed-width timestamp text for ``ts`` (default: now)."""
    return f"{time.time() if ts is None else ts:016.5f}"


#: Characters ``urllib.parse.quote(p, safe="/")`` leaves as they are.
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~/-]*")


def quote_path(*parts: str) -> str:
    """Percent-encode ``/a/c/o`` path pieces the way Swift does.

    PERF: pieces that need no escaping (almost all) skip ``urllib.parse.quote``,
    which was ~4% of the proxy's CPU per 4 KiB PUT (py-spy,
    ``python -m nubis.bench swift``).
    """
    return "/" + "/".join(p if _UNQUOTED.fullmatch(p) else urllib.parse.quote(p, safe="/")
                          for p in parts)


def node_path(node: Node, part: int, *names: str) -> str:
    """Return the storage-node path ``/<device>/<part>/<a>/<c>/<o>``."""
    return quote_path(str(node["device"]), str(part), *names)


@dataclass
class Reply:
    """A buffered backend reply (status, lower-case headers, body)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    node: Node | None = None


def is_success(status: int) -> bool:
    """Return whether an HTTP status is 2xx."""
    return 200 <= status < 300


def best_status(replies: list[Reply], quorum: int) -> int:
    """Pick the answer a quorum agrees on, like Swift's ``best_response``.

    Replies are grouped into classes (2xx, 3xx, 4xx, 5xx/unreachable); the first
    class (successes first) with ``quorum`` members gives its most common status.
    """
    for lo in (200, 300, 400, 500):
        group = [r.status for r in replies if lo <= r.status < lo + 100]
        if len(group) >= quorum:
            return max(set(group), key=group.count)
    return 503


class Rings:
    """The account, container and object rings, reloaded when their files change."""

    def __init__(self, ring_dir: Path, hash_prefix: str = "", hash_suffix: str = "nubis") -> None:
        self.ring_dir = ring_dir
        self.hash_prefix = hash_prefix.encode()
        self.hash_suffix = hash_suffix.encode()
        self._rings: dict[str, tuple[float, RingLike]] = {}
        self._checked: dict[str, float] = {}

    def get(self, kind: str, policy: int = 0) -> RingLike:
        """Return the ring for ``account``, ``container`` or ``object`` (+ policy)."""
        name = kind if kind != "object" or policy == 0 else f"object-{policy}"
        now = time.monotonic()
        cached = self._rings.get(name)
        if cached is not None and now - self._checked.get(name, 0.0) < 15.0:
            return cached[1]
        path = self.ring_dir / f"{name}.ring"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            if cached is not None:
                return cached[1]
            raise BackendUnavailableError(f"no {name} ring at {path}") from None
        self._checked[name] = now
        if cached is not None and cached[0] == mtime:
            return cached[1]
        from nubis.ring import Ring

        ring: RingLike = Ring(path, self.hash_prefix, self.hash_suffix)
        self._rings[name] = (mtime, ring)
        return ring


class Backend:
    """Per-worker access to the storage nodes."""

    def __init__(self, client: HTTPClient, rings: Rings, *, node_timeout: float,
                 max_handoffs: int, buffer_budget: int = 64 << 20) -> None:
        self.client = client
        self.rings = rings
        self.node_timeout = node_timeout
        self.max_handoffs = max_handoffs
        #: Bytes of upload bodies this worker may hold in memory at once;
        #: past it, uploads stream instead of being buffered.
        self.buffer_budget = buffer_budget
        self.buffered = 0
        #: Hashes the buffered bodies, side by side across concurrent uploads.
        self.digests = BodyDigests()

    def reserve_buffer(self, size: int) -> bool:
        """Account ``size`` bytes of a buffered upload; False when over the budget."""
        if self.buffered + size > self.buffer_budget:
            return False
        self.buffered += size
        return True

    def release_buffer(self, size: int) -> None:
        """Give back what :meth:`reserve_buffer` took."""
        self.buffered -= size

    def handoffs(self, ring: RingLike, part: int) -> Iterator[Node]:
        """Yield at most ``max_handoffs`` handoff nodes."""
        for i, node in enumerate(ring.get_more_nodes(part)):
            if i >= self.max_handoffs:
                return
            yield node

    # -- reads ---------------------------------------------------------------
    async def open_read(self, ring: RingLike, part: int, nodes: list[Node], method: str,
                        names: tuple[str, ...], headers: Mapping[str, str],
                        query: str = "") -> ClientResponse | Reply:
        """Return the first good response (2xx/304/412/416) from primaries, then handoffs.

        The body of a returned :class:`ClientResponse` is still unread. When no
        node answers well, a buffered :class:`Reply` carries the best failure
        (404 when every reachable node says so, else 503).
        """
        order = list(nodes)
        random.shuffle(order)
        failures: list[Reply] = []
        errored = False
        for phase in ("primaries", "handoffs"):
            if phase == "handoffs":
                if not errored:
                    break
                order = list(self.handoffs(ring, part))
            for node in order:
                path = node_path(node, part, *names) + (f"?{query}" if query else "")
                try:
                    resp = await self.client.request(node["ip"], int(node["port"]), method,
                                                     path, headers, timeout=self.node_timeout)
                except (HTTPClientError, OSError) as exc:
                    log.warning("%s %s:%s%s failed: %s", method, node["ip"], node["port"],
                                path, exc)
                    errored = True
                    continue
                if is_success(resp.status) or resp.status in (304, 412, 416):
                    return resp
                body = await _safe_read(resp)
                if resp.status >= 500:
                    log.warning("%s %s:%s%s answered %d", method, node["ip"], node["port"],
                                path, resp.status)
                    errored = True
                    continue
                failures.append(Reply(resp.status, resp.headers, body, node))
        if failures and not errored:
            return failures[0]
        if any(f.status == 404 for f in failures):
            return next(f for f in failures if f.status == 404)
        return failures[0] if failures else Reply(503)

    async def read(self, ring: RingLike, part: int, nodes: list[Node], method: str,
                   names: tuple[str, ...], headers: Mapping[str, str],
                   query: str = "") -> Reply:
        """Like :meth:`open_read` but with the body buffered."""
        got = await self.open_read(ring, part, nodes, method, names, headers, query)
        if isinstance(got, Reply):
            return got
        body = await _safe_read(got)
        return Reply(got.status, got.headers, body)

    # -- writes (no request body, or a small buffered one) -----------------
    async def write_all(self, ring: RingLike, part: int, nodes: list[Node], method: str,
                        names: tuple[str, ...], headers: list[dict[str, str]],
                        body: bytes = b"") -> list[Reply]:
        """Send one buffered request to every primary (handoffs replace failures)."""
        handoffs = self.handoffs(ring, part)
        tasks = [self._write_one(node, handoffs, part, method, names, hdrs, body)
                 for node, hdrs in zip(nodes, headers, strict=True)]
        return list(await asyncio.gather(*tasks))

    async def _write_one(self, node: Node, handoffs: Iterator[Node], part: int, method: str,
                         names: tuple[str, ...], headers: dict[str, str],
                         body: bytes) -> Reply:
        async def attempt(current: Node) -> Reply | None:
            try:
                resp = await self.client.request(
                    current["ip"], int(current["port"]), method,
                    node_path(current, part, *names), headers, body,
                    timeout=self.node_timeout)
                data = await _safe_read(resp)
            except (HTTPClientError, OSError) as exc:
                log.warning("%s %s:%s failed: %s", method, current["ip"], current["port"], exc)
                return None
            if resp.status >= 500:
                log.warning("%s %s:%s answered %d", method, current["ip"], current["port"],
                            resp.status)
                return None
            return Reply(resp.status, resp.headers, data, current)

        got = await self.on_node_or_handoff(node, handoffs, attempt)
        return Reply(503) if got is None else got

    @staticmethod
    async def on_node_or_handoff(node: Node, handoffs: Iterator[Node],
                                 attempt: Callable[[Node], Awaitable[T | None]]) -> T | None:
        """Run ``attempt`` on a primary, then on the next handoffs until one succeeds.

        ``attempt(node)`` returns ``None`` when that node failed (unreachable,
        timed out, 5xx); every write -- buffered requests and streamed PUTs --
        replaces a failed primary this way. ``None`` when the handoffs ran out.
        """
        current: Node | None = node
        while current is not None:
            got = await attempt(current)
            if got is not None:
                return got
            current = next(handoffs, None)
        return None


async def _safe_read(resp: ClientResponse) -> bytes:
    try:
        return await resp.read()
    except (HTTPClientError, OSError):
        return b""
