"""One S3 request and the Swift operations it is made of.

:class:`S3Req` holds the addressing (bucket, key), the caller and the query;
:meth:`S3Req.swift` runs one Swift operation through the proxy's own
controllers as the caller (so Swift's ACLs, quotas and large objects apply),
and :meth:`S3Req.system` runs one as the proxy itself (the global bucket
registry). Controllers raise :class:`HTTPError`; callers translate it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nubis.api.proxy import container, copy
from nubis.api.proxy.auth import Identity
from nubis.api.proxy.context import Body, ContainerCtx, CopyDigest, Ctx, ObjectCtx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3.auth import Caller
from nubis.api.proxy.s3.errors import S3Error

#: The storage account holding the global bucket namespace (one object per bucket).
REGISTRY_ACCOUNT = ".s3_registry"
REGISTRY_CONTAINER = "buckets"
_SYSTEM = Identity(user=".s3", reseller_admin=True, expires=float("inf"))
#: Seconds a worker trusts its cached bucket -> owner answer.
REGISTRY_TTL = 5.0
#: The sysmeta an S3 object read sees in its Swift answer (checksums, multipart ETag,
#: tags: every ``x-object-sysmeta-s3-*`` item).
S3_SYSMETA = "x-object-sysmeta-s3-"


def bytes_body(data: bytes, timeout: float) -> Body:
    """Return a request body reader over ``data``."""
    if not data:
        return Body(None, None, 0, timeout)
    return Body({"type": "http.request", "body": data, "more_body": False}, None,
                len(data), timeout)


@dataclass
class S3Req:
    """An authenticated S3 request, addressed."""

    ctx: Ctx
    caller: Caller | None
    bucket: str
    key: str
    #: Decoded query, all values of each key (last one wins in ``q``).
    q: dict[str, str] = field(default_factory=dict)
    #: ACL mode: the request's :class:`~nubis.api.proxy.s3.grants.Gate` (policy cache).
    gate: Any = None
    _acl_identity: Identity | None = field(default=None, repr=False, compare=False)

    @property
    def account(self) -> str:
        """Return the caller's storage account."""
        if self.caller is None:
            raise S3Error("AccessDenied")
        return self.caller.account

    @property
    def acl_mode(self) -> bool:
        """Tell whether S3 ACLs are enforced per user (``[proxy] s3_acl``)."""
        return bool(self.ctx.state.conf.s3_acl)

    @property
    def owns_account(self) -> bool:
        """Tell whether the caller owns its storage account (may create buckets)."""
        if self.caller is None:
            return False
        ident = self.caller.identity
        return ident.reseller_admin or self.caller.account in ident.owned_accounts

    @property
    def user(self) -> str:
        """Return the caller's S3 user id (``<Owner><ID>``; grants name it in ACL mode).

        A tempauth key's own name; else the project id, or ``project:user`` in
        ACL mode (grants are per user there).
        """
        if self.caller is None:
            return ""
        cred = self.caller.cred
        if cred.owner:
            return cred.owner
        return f"{cred.project_id}:{cred.user_id}" if self.acl_mode else cred.project_id

    @property
    def identity(self) -> Identity | None:
        """Return who the request's Swift operations run as.

        In ACL mode the S3 layer authorizes each request itself
        (:mod:`~nubis.api.proxy.s3.grants`), so its Swift operations run with the
        rights of the account's owner, as Swift's s3api's do in that mode.
        PERF: bench s3 -- a plain property (``functools.cached_property`` takes
        a lock on every read in Python 3.11); only ACL mode builds a new identity.
        """
        if self.caller is None:
            return None
        ident = self.caller.identity
        if self.acl_mode and not self.owns_account:
            if self._acl_identity is None:
                self._acl_identity = dataclasses.replace(
                    ident, owned_accounts=ident.owned_accounts | {self.caller.account})
            return self._acl_identity
        return ident

    @property
    def resource(self) -> str:
        """Return the request's resource path (for error documents)."""
        if not self.bucket:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"

    def header(self, name: str, default: str = "") -> str:
        """Return a request header."""
        return self.ctx.headers.get(name, default)

    async def swift(self, method: str, container_name: str | None = None,
                    obj: str | None = None, headers: dict[str, str] | None = None,
                    query: dict[str, str] | None = None, body: Body | None = None,
                    account: str | None = None, identity: Identity | None = None,
                    report: str | None = None, sysmeta: dict[str, str] | None = None,
                    digest: CopyDigest | None = None) -> Resp:
        """Run one Swift operation as the caller; return its response.

        ``report``, ``sysmeta`` and ``digest`` (object writes of copies): see
        ``ObjectCtx.report_replaced``, ``ObjectCtx.copy_sysmeta`` and
        ``ObjectCtx.copy_digest``. An object
        read's answer also carries the object's S3 sysmeta (:data:`S3_SYSMETA`,
        lower-case names; ``ObjectCtx.show_sysmeta``), which no S3 answer passes on.
        """
        base = self.ctx
        # PERF: bench s3 -- the contexts are built directly (no kwargs dict).
        state = base.state
        if body is None:
            body = bytes_body(b"", state.conf.client_timeout)
        acct = account or self.account
        ident = identity or self.identity
        q = dict(query) if query else {}
        h = dict(headers) if headers else {}
        if container_name is None:
            return await container.handle_account(Ctx(
                state, method, base.path, q, h, body, account=acct, identity=ident,
                trans_id=base.trans_id))
        if obj is None:
            return await container.handle_container(ContainerCtx(
                state, method, base.path, q, h, body, account=acct, identity=ident,
                trans_id=base.trans_id, container=container_name))
        return await copy.handle(ObjectCtx(
            state, method, base.path, q, h, body, account=acct, identity=ident,
            trans_id=base.trans_id, container=container_name, obj=obj,
            report_replaced=report, copy_sysmeta=sysmeta, show_sysmeta=S3_SYSMETA,
            copy_digest=digest))

    async def system(self, method: str, obj: str | None, headers: dict[str, str] | None = None,
                     body: bytes = b"", query: dict[str, str] | None = None) -> Resp:
        """Run one Swift operation on the bucket registry as the proxy itself."""
        headers = {**(headers or {}), "content-length": str(len(body))}
        return await self.swift(method, REGISTRY_CONTAINER, obj, headers, query,
                                bytes_body(body, self.ctx.state.conf.client_timeout),
                                REGISTRY_ACCOUNT, _SYSTEM)


def header_of(headers: Mapping[str, str], name: str) -> str | None:
    """Return a header of a Swift answer whatever its case (``name`` lower-case; None: absent)."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


async def read_body(resp: Resp) -> bytes:
    """Return a Swift response's whole body."""
    body = resp.body
    if isinstance(body, bytes):
        return body
    return b"".join([c async for c in body])


async def drain(body: bytes | AsyncIterator[bytes]) -> None:
    """Consume and drop a streamed body."""
    if not isinstance(body, bytes):
        async for _ in body:
            pass


class Registry:
    """The global bucket namespace: bucket name -> owning account (cached per worker)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._loading: dict[str, asyncio.Future[None]] = {}

    async def owner(self, req: S3Req, bucket: str) -> str | None:
        """Return the account owning ``bucket`` (None: no such bucket).

        PERF: bench s3 -- when the cached answer expires, the requests arriving
        meanwhile wait for the one registry HEAD in flight (not one HEAD each).
        "No such bucket" is not answered from the cache (another worker may
        have just created it), only shared with the requests waiting for it.
        """
        hit = self._cache.get(bucket)
        if hit is not None and hit[1] is not None and hit[0] > self.clock():
            return hit[1]
        while (pending := self._loading.get(bucket)) is not None:
            await asyncio.wait([pending])  # another request is asking: share its answer
            hit = self._cache.get(bucket)
            if hit is not None and hit[0] > self.clock():
                return hit[1]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[bucket] = done
        try:
            return await self._load(req, bucket)
        finally:
            done.set_result(None)
            if self._loading.get(bucket) is done:
                del self._loading[bucket]

    async def _load(self, req: S3Req, bucket: str) -> str | None:
        try:
            resp = await req.system("HEAD", bucket)
            owner: str | None = resp.headers.get("X-Object-Meta-Owner")
        except HTTPError as exc:
            if exc.status != 404:
                raise
            owner = None
        self.remember(bucket, owner)
        return owner

    def remember(self, bucket: str, owner: str | None) -> None:
        """Cache an answer (after this worker changed the registry)."""
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[bucket] = (self.clock() + REGISTRY_TTL, owner)

    async def claim(self, req: S3Req, bucket: str) -> str | None:
        """Register ``bucket`` for the caller; return the previous owner if taken."""
        try:
            await req.system("PUT", bucket, {"x-object-meta-owner": req.account,
                                             "if-none-match": "*",
                                             "content-type": "text/plain"})
        except HTTPError as exc:
            if exc.status == 404:
                await req.system("PUT", None)
                return await self.claim(req, bucket)
            if exc.status != 412:
                raise
            self._cache.pop(bucket, None)
            return await self.owner(req, bucket) or req.account
        self.remember(bucket, req.account)
        return None

    async def release(self, req: S3Req, bucket: str) -> None:
        """Remove ``bucket`` from the namespace."""
        try:
            await req.system("DELETE", bucket)
        except HTTPError as exc:
            if exc.status != 404:
                raise
        self.remember(bucket, None)
