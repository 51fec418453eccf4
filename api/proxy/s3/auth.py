"""Who sent an S3 request: SigV4 checked against the EC2 credential's secret.

The secrets come from a :class:`CredentialSource` (``[proxy] s3_credentials``,
a ``"module:function"`` hook like ``token_verifiers``; the identity service's
:func:`nubis.api.identity.ec2.proxy_lookup` reads the EC2 credentials with a
short cache, so a deleted key or a removed role stops working within seconds).
:func:`payload_stream` turns the request body into the payload the signature
promises: aws-chunked decoded and every chunk signature checked, the
``x-amz-content-sha256`` and trailing ``x-amz-checksum-*`` verified before the
last byte reaches storage (a mismatch aborts the write).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from nubis.api.proxy.auth import Identity
from nubis.api.proxy.config import TempAuthConfig
from nubis.api.proxy.context import Body, Ctx
from nubis.api.proxy.s3.errors import S3Error, bad_digest
from nubis.api.shared import awschunked, awssig
from nubis.api.shared.awssig import S3Credential, SignedRequest

#: Roles that own the project's storage account (as keystoneauth's operator_roles).
OPERATOR_ROLES = frozenset({"admin", "member"})


class CredentialSource(Protocol):
    """Where the proxy finds an access key's secret."""

    def lookup(self, access: str) -> S3Credential | None:
        """Return the credential of ``access`` (None: unknown, disabled or revoked)."""
        ...


class TempAuthKeys:
    """Swift tempauth's S3 keys: access ``account:user``, secret the user's key.

    As Swift's tempauth does under s3api (the SAIO's ``test:tester``/``testing``):
    the caller acts on ``<reseller_prefix><account>`` and owns it with ``.admin``.
    """

    def __init__(self, conf: TempAuthConfig) -> None:
        self.conf = conf

    def lookup(self, access: str) -> S3Credential | None:
        """Return the tempauth user ``access`` as a credential (None if unknown)."""
        entry = self.conf.users.get(access)
        if entry is None or ":" not in access:
            return None
        roles = {"member"} if ".admin" in entry.groups else set()
        if ".reseller_admin" in entry.groups:
            roles.add("ResellerAdmin")
        return S3Credential(access, entry.key, access, access.split(":", 1)[0],
                            frozenset(roles), owner=access)


class ChainedSource:
    """Tempauth keys (``account:user``) first, then the configured source."""

    def __init__(self, tempauth: TempAuthKeys, other: CredentialSource | None) -> None:
        self.tempauth = tempauth
        self.other = other

    def lookup(self, access: str) -> S3Credential | None:
        """Return the credential of ``access`` from whichever source knows it."""
        if ":" in access:
            return self.tempauth.lookup(access)
        return self.other.lookup(access) if self.other is not None else None


class Caller(NamedTuple):
    """An authenticated S3 caller.

    PERF: bench s3 -- a named tuple (one per signed request; see ``SignedRequest``).
    """

    cred: S3Credential
    sreq: SignedRequest
    key: bytes
    identity: Identity
    account: str
    #: ``(method, raw path, raw query)`` as signed (to show a chunk signature mismatch).
    signed: tuple[str, str, str] = ("", "", "")


def authenticate(source: CredentialSource | None, method: str, raw_path: str,
                 raw_query: str, headers: Mapping[str, str], reseller_prefix: str,
                 now: float | None = None) -> Caller:
    """Check the request's signature; return the caller.

    Raises:
        SigError | S3Error: S3's answer (AccessDenied, SignatureDoesNotMatch, ...).
    """
    pairs = awssig.query_pairs(raw_query)
    v2 = awssig.is_v2(headers, pairs)
    sreq = awssig.parse_v2(headers, pairs) if v2 else awssig.parse_request(headers, pairs)
    when = time.time() if now is None else now
    if v2:
        awssig.check_time_v2(sreq, when)
    else:
        awssig.check_time(sreq, when)
    cred = source.lookup(sreq.access) if source is not None else None
    if cred is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": sreq.access})
    if v2:
        awssig.verify_v2(sreq, cred.secret, method, raw_path, raw_query, headers)
        key = b""
    else:
        key = awssig.verify(sreq, cred.secret, method, raw_path, pairs, headers)
    return Caller(cred, sreq, key, identity_of(cred, reseller_prefix, when),
                  f"{reseller_prefix}{cred.project_id}", (method, raw_path, raw_query))


#: Seconds of one identity-cache period; a mapped identity stays valid 300 s past it.
IDENTITY_PERIOD = 60


def identity_of(cred: S3Credential, reseller_prefix: str, now: float | None = None
                ) -> Identity:
    """Map a credential to the proxy's identity (as a Keystone token would map).

    PERF: bench s3 -- the mapping is cached per credential and minute (a changed
    secret or role set is a different credential, so the credential source's
    own TTL still bounds revocation).
    """
    when = time.time() if now is None else now
    return _identity(cred, reseller_prefix, int(when // IDENTITY_PERIOD))


@functools.lru_cache(maxsize=1024)
def _identity(cred: S3Credential, reseller_prefix: str, period: int) -> Identity:
    pid, uid = cred.project_id, cred.user_id
    groups = frozenset({uid, f"*:{uid}", "*:*", f"{pid}:{uid}", f"{pid}:*"})
    owned = frozenset({f"{reseller_prefix}{pid}"}) if cred.role_names & OPERATOR_ROLES \
        else frozenset()
    return Identity(user=uid, groups=groups, owned_accounts=owned,
                    reseller_admin="ResellerAdmin" in cred.role_names,
                    expires=(period + 1) * IDENTITY_PERIOD + 300.0)


def decoded_length(headers: Mapping[str, str]) -> int | None:
    """Return the payload length (``x-amz-decoded-content-length`` for aws-chunked)."""
    if headers.get("x-amz-content-sha256", "") in awssig.STREAMING_MODES or (
            "aws-chunked" in headers.get("content-encoding", "")
            and "x-amz-decoded-content-length" in headers):
        return stream_length(headers)
    if "content-length" in headers:
        return _int(headers["content-length"])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return None
    raise S3Error("MissingContentLength")


def stream_length(headers: Mapping[str, str]) -> int:
    """Return ``x-amz-decoded-content-length`` (MissingContentLength unless a number)."""
    value = headers.get("x-amz-decoded-content-length")
    try:
        n = int(value or "")
    except ValueError:
        raise S3Error("MissingContentLength") from None
    if n < 0:
        raise S3Error("InvalidArgument", extra={
            "ArgumentName": "x-amz-decoded-content-length", "ArgumentValue": str(value)})
    return n


def _int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise S3Error("InvalidArgument", "Invalid content length.") from None
    if n < 0:
        raise S3Error("InvalidArgument", "Invalid content length.")
    return n


def content_md5(headers: Mapping[str, str]) -> str | None:
    """Return the hex MD5 a ``Content-MD5`` header promises (InvalidDigest if bad)."""
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest") from None
    if len(raw) != 16:
        raise S3Error("InvalidDigest")
    return raw.hex()


def check_content_md5(headers: Mapping[str, str], data: bytes) -> bool:
    """Check a read body against its ``Content-MD5``; return whether one was sent.

    The ``BadDigest`` answer shows the digest as sent (base64), as S3 does for
    the bodies it reads whole (DeleteObjects, CompleteMultipartUpload).
    """
    md5 = content_md5(headers)
    if md5 is None:
        return False
    if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
        raise bad_digest(headers["content-md5"], hex_digest=False)
    return True


@dataclass
class PayloadResult:
    """What was learned while streaming a payload (filled when it ends)."""

    checksum: tuple[str, str] | None = None


async def payload_stream(body: Body, caller: Caller | None, headers: Mapping[str, str],
                         result: PayloadResult, compute: str | None = None
                         ) -> AsyncIterator[bytes]:
    """Yield the request's payload, verifying what its signature promises.

    The check of the last piece happens before it is yielded, so a bad body
    never completes a write. ``compute`` names a checksum algorithm to compute
    (into ``result``) when the request carries no checksum.
    """
    mode = headers.get("x-amz-content-sha256", awssig.UNSIGNED)
    claimed = awssig.checksum_algo_of(headers)
    checksum = awssig.Checksum(claimed[0]) if claimed else \
        awssig.Checksum(compute) if compute else None
    if mode in awssig.STREAMING_MODES and caller is not None and is_chunk_signed(caller):
        async for piece in _chunked(body, caller, headers, mode, result, compute):
            yield piece
        return
    # A payload hash is checked by the request's body (:class:`HashedBody`).
    held = b""
    while True:
        chunk = await body.read_chunk()
        if not chunk:
            break
        if checksum is not None:
            checksum.update(chunk)
        if held:
            yield held
        held = chunk
    if checksum is not None:
        if claimed is not None:
            checksum.check(claimed[1])
        result.checksum = (checksum.algo, checksum.value())
    if held:
        yield held


async def _chunked(body: Body, caller: Caller, headers: Mapping[str, str], mode: str,
                   result: PayloadResult, compute: str | None) -> AsyncIterator[bytes]:
    def canonical() -> str:
        method, raw_path, raw_query = caller.signed
        return awssig.canonical_request(method, raw_path, awssig.query_pairs(raw_query),
                                        headers, caller.sreq.signed_headers,
                                        caller.sreq.payload)

    decoder = awschunked.ChunkDecoder(mode, caller.sreq, caller.key,
                                      headers.get("x-amz-trailer"), decoded_length(headers),
                                      canonical)
    claimed = awssig.checksum_algo_of(headers)
    # A trailer's checksum is the decoder's; else the header's, or the one to compute.
    algo = None if decoder.checksum is not None else claimed[0] if claimed else compute
    own = awssig.Checksum(algo) if algo else None
    held = b""
    while True:
        chunk = await body.read_chunk()
        if not chunk:
            break
        out = decoder.feed(chunk)
        if out:
            if own is not None:
                own.update(out)
            if held:
                yield held
            held = out
    decoder.finish()
    if decoder.checksum is not None:
        result.checksum = (decoder.checksum.algo, decoder.checksum.value())
    elif own is not None:
        if claimed is not None:
            own.check(claimed[1])
        result.checksum = (own.algo, own.value())
    if held:
        yield held


class HashedBody(Body):
    """A request body that must hash to the ``x-amz-content-sha256`` it was sent with.

    The check runs when the body's end is read, so a consumer that holds back
    its last piece until then (:func:`payload_stream`) never completes a write
    of a body that does not match; a body nobody reads (a GET's) is not checked.
    """

    def __init__(self, inner: Body, expected: str) -> None:
        super().__init__(None, None, inner.length, inner.timeout, inner.limit)
        self.inner = inner
        self.expected = expected
        self.sha = hashlib.sha256()

    async def read_chunk(self) -> bytes:
        """Return the next piece of the body; at its end, check the hash."""
        chunk = await self.inner.read_chunk()
        self.received = self.inner.received
        if chunk:
            self.sha.update(chunk)
            return chunk
        self.done = True
        if not hmac.compare_digest(self.sha.hexdigest(), self.expected.lower()):
            raise S3Error("XAmzContentSHA256Mismatch",
                          extra={"ClientComputedContentSHA256": self.expected,
                                 "S3ComputedContentSHA256": self.sha.hexdigest()})
        return b""


def is_chunk_signed(caller: Caller) -> bool:
    """Tell whether the caller signed with a SigV4 header (so aws-chunked is decoded)."""
    return not caller.sreq.presigned and bool(caller.sreq.date)


async def check_payload_hash(ctx: Ctx, caller: Caller) -> None:
    """Hold the request body to its ``x-amz-content-sha256`` (as S3 does for every form).

    A hash (or any other value) makes the body a :class:`HashedBody`. A
    ``STREAMING-*`` value is decoded as aws-chunked only under a SigV4 header;
    with a presigned URL or SigV2 the body is taken as it is, which cannot hash
    to that value: ``IncompleteBody`` when it is longer than the decoded length
    it names, else ``XAmzContentSHA256Mismatch`` once it has been read.
    """
    mode = ctx.headers.get("x-amz-content-sha256")
    if mode is None or mode == awssig.UNSIGNED:
        return
    if mode not in awssig.STREAMING_MODES:
        ctx.body = HashedBody(ctx.body, mode)
        return
    if is_chunk_signed(caller):
        return
    declared = stream_length(ctx.headers)
    if ctx.body.length is not None and declared < ctx.body.length:
        raise S3Error("IncompleteBody", extra={"NumberBytesExpected": str(declared),
                                               "NumberBytesProvided": str(ctx.body.length)})
    sha = hashlib.sha256()
    while chunk := await ctx.body.read_chunk():
        sha.update(chunk)
    raise S3Error("XAmzContentSHA256Mismatch", extra={
        "ClientComputedContentSHA256": mode, "S3ComputedContentSHA256": sha.hexdigest()})
