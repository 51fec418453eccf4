"""Per-request state and the proxy's shared per-worker state.

:class:`Ctx` is what every controller receives: the decoded path, query,
lower-case headers, the body reader, the caller's identity and the worker's
:class:`ProxyState` (backend access, caches, config). Container and object
handlers get :class:`ContainerCtx` / :class:`ObjectCtx`, whose names are
never ``None``. :class:`Resp` is what a
controller returns; the Falcon adapter in :mod:`nubis.api.proxy.app` sends it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from nubis.api.proxy.auth import AuthChain, Identity, TempAuth
from nubis.api.proxy.backend import Backend, Reply
from nubis.api.proxy.config import ProxyConfig
from nubis.api.proxy.constraints import Limits
from nubis.api.proxy.errors import ClientDisconnectError, HTTPError
from nubis.common.policies import PolicySet

Receive = Callable[[], Awaitable[Mapping[str, Any]]]

#: PERF: transaction ids are a random per-process prefix plus a counter, not
#: a fresh uuid4 (one ``getrandom`` syscall) per request (bench swift GET).
_TX_PREFIX = [""]
_TX_COUNTER = itertools.count()


def new_trans_id() -> str:
    """Return a unique transaction id in Swift's format: ``tx`` + 21 hex + ``-`` + time.

    The last part is the request's start time in seconds, as 10 hex digits.
    """
    if not _TX_PREFIX[0]:
        _TX_PREFIX[0] = uuid.uuid4().hex[:9]
    return (f"tx{_TX_PREFIX[0]}{next(_TX_COUNTER) & 0xFFFFFFFFFFFF:012x}"
            f"-{int(time.time()) & 0xFFFFFFFFFF:010x}")


class Body:
    """The client's request body, read from ASGI events with a timeout.

    Unlike a plain stream, a client that disconnects or sends fewer bytes than
    its Content-Length raises :class:`ClientDisconnectError` instead of looking like
    a short but complete body.
    """

    def __init__(self, first: Mapping[str, Any] | None, receive: Receive | None,
                 length: int | None, timeout: float, limit: int | None = None) -> None:
        self._pending = first
        self._receive = receive
        self.length = length
        self.timeout = timeout
        #: Largest body accepted (chunked bodies are counted as they arrive).
        self.limit = limit
        self.received = 0
        self.done = receive is None and first is None

    async def read_chunk(self) -> bytes:
        """Return the next piece of the body, ``b""`` at its end."""
        while not self.done:
            event = self._pending
            self._pending = None
            if event is None:
                assert self._receive is not None
                try:
                    event = await asyncio.wait_for(self._receive(), self.timeout)
                except TimeoutError:
                    raise HTTPError(408, "Request Timeout: the client did not send "
                                         "its body in time.") from None
            if event.get("type") == "http.disconnect":
                raise ClientDisconnectError("client disconnected")
            data: bytes = event.get("body", b"")
            if not event.get("more_body", False):
                self.done = True
            self.received += len(data)
            if self.length is not None and self.received > self.length:
                raise HTTPError(400, "Request body longer than Content-Length")
            if self.limit is not None and self.received > self.limit:
                raise HTTPError(413, "Your request is too large.")
            if self.done and self.length is not None and self.received < self.length:
                raise ClientDisconnectError("body shorter than Content-Length")
            if data:
                return data
        return b""

    async def read_all(self, limit: int) -> bytes:
        """Read the whole body (413 past ``limit`` bytes)."""
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise HTTPError(413, "Your request is too large.")
            parts.append(chunk)


@dataclass
class Resp:
    """A controller's answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterator[bytes] = b""
    #: Length of a streamed body (``None``: unknown, sent chunked).
    length: int | None = None


@dataclass
class Info:
    """Cached facts about an account or a container."""

    status: int
    headers: dict[str, str]
    fetched: float

    @property
    def exists(self) -> bool:
        """Return whether the account/container exists."""
        return 200 <= self.status < 300

    def meta(self, prefix: str) -> dict[str, str]:
        """Return headers starting with ``prefix`` (lower-case), prefix removed."""
        return {k[len(prefix):]: v for k, v in self.headers.items() if k.startswith(prefix)}


class ProxyState:
    """Everything one proxy worker shares between requests."""

    def __init__(self, conf: ProxyConfig, limits: Limits, backend: Backend,
                 auth: AuthChain, tempauth: TempAuth | None, policies: PolicySet) -> None:
        self.conf = conf
        self.limits = limits
        self.backend = backend
        self.auth = auth
        self.tempauth = tempauth
        self.policies = policies
        self.policy_names = policies.names()
        self._info: dict[tuple[str, ...], Info] = {}
        self._fetching: dict[tuple[str, ...], asyncio.Future[Info]] = {}

    async def info(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[Reply]]) -> Info:
        """Return the cached info of ``key``, else what ``fetch()`` (a HEAD) says.

        Concurrent misses of one key share one fetch: when a popular
        container's record expires, its requests wait for one HEAD instead of
        each sending their own (the refetch stampede). PERF: ``python -m
        nubis.bench swift`` (every request of a round misses together).
        """
        info = self.cached_info(key)
        if info is not None:
            return info
        running = self._fetching.get(key)
        if running is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this request was cancelled, not the shared fetch
            return await self.info(key, fetch)  # its fetcher went away: fetch anew
        done: asyncio.Future[Info] = asyncio.get_running_loop().create_future()
        self._fetching[key] = done
        try:
            info = self.store_info(key, await fetch())
        except asyncio.CancelledError:
            done.cancel()
            raise
        except Exception as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._fetching[key]
        done.set_result(info)
        return info

    def cached_info(self, key: tuple[str, ...]) -> Info | None:
        """Return a fresh cached info record, if any.

        A "not found" is never served from the cache: another worker may have
        created the account or container since (this worker's record cannot
        be told), and a client that creates a bucket and then writes to it over
        another connection must find it. Concurrent lookups still share one HEAD.
        """
        info = self._info.get(key)
        if info is None or info.status == 404 \
                or time.monotonic() - info.fetched > self.conf.recheck_info:
            return None
        return info

    def store_info(self, key: tuple[str, ...], reply: Reply) -> Info:
        """Cache what a HEAD of an account/container said (successes and 404s)."""
        info = Info(reply.status, reply.headers, time.monotonic())
        if reply.status < 500:
            if len(self._info) > 10000:
                self._info.clear()
            self._info[key] = info
        return info

    def forget_info(self, account: str, container: str | None = None) -> None:
        """Drop cached info after this worker changed the account/container."""
        self._info.pop((account,) if container is None else (account, container), None)


@dataclass
class Ctx:
    """One request as the controllers see it."""

    state: ProxyState
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Body
    version: str = "v1"
    account: str = ""
    container: str | None = None
    obj: str | None = None
    identity: Identity | None = None
    #: Set when a TempURL signature authorised the request.
    tempurl: Any = None
    #: Set when a container's Temp-URL key signed the request: its reach ends there.
    tempurl_container: str | None = None
    #: The query string as sent (S3 signatures are computed over it).
    raw_query: bytes = b""
    #: The caller's ``X-Account-Access-Control`` level per account looked at
    #: (shared by the sub-request contexts :meth:`of` makes).
    account_levels: dict[str, str | None] = field(default_factory=dict)
    #: Accounts where ACL entries naming the caller by name count (Keystone's rules:
    #: :func:`nubis.api.proxy.auth.names_allowed`); shared like ``account_levels``.
    acl_names: set[str] = field(default_factory=set)
    trans_id: str = field(default_factory=lambda: new_trans_id())

    def header(self, name: str, default: str = "") -> str:
        """Return a request header (case-insensitive)."""
        return self.headers.get(name.lower(), default)

    @classmethod
    def of(cls, base: Ctx, **names: str) -> Self:
        """Return a copy of ``base`` (same body, identity, transaction id) with ``names``."""
        return cls(**{**vars(base), **names})


@dataclass
class ContainerCtx(Ctx):
    """A request for a container (or below it)."""

    container: str = ""


class CopyDigest(Protocol):
    """Metadata computed over the bytes a server-side copy writes."""

    def update(self, data: bytes) -> None:
        """Add copied bytes."""
        ...

    def footer(self) -> dict[str, str]:
        """Return the metadata to store with the copy (called once all bytes passed)."""
        ...


@dataclass
class ObjectCtx(ContainerCtx):
    """A request for an object."""

    obj: str = ""
    #: Set only by the S3 layer on its own sub-requests, never from a client: the
    #: metadata item a copy's write asks about (``transfer.store(report=...)``).
    report_replaced: str | None = None
    #: Set only by the S3 layer on its copies and writes, never from a client: system
    #: metadata the new object gets (tags and checksum S3 carries over or replaces;
    #: the tags a multipart upload's marker keeps for the completed object).
    copy_sysmeta: dict[str, str] | None = None
    #: Set only by the S3 layer on its own reads, never from a client: the answer also
    #: carries the read object's system metadata whose names start with this (so the
    #: S3 layer learns a checksum or multipart ETag of the very version it serves).
    show_sysmeta: str = ""
    #: Set only by the S3 layer on its copies, never from a client: sees the copied
    #: bytes as they pass and gives the metadata they yield (a checksum S3 computes
    #: for the copy), stored in the copy's own write as a footer.
    copy_digest: CopyDigest | None = None
