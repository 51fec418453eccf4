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
from nubis.api.proxy.context import Body
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.shared import awssig
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
                  f"{reseller_prefix}{cred.project_id}")


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
        value = headers.get("x-amz-decoded-content-length")
        if value is None:
            raise S3Error("MissingContentLength")
        return _int(value)
    if "content-length" in headers:
        return _int(headers["content-length"])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return None
    raise S3Error("MissingContentLength")


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
    if mode in awssig.STREAMING_MODES and caller is not None:
        async for piece in _chunked(body, caller, headers, mode, result, compute):
            yield piece
        return
    sha = hashlib.sha256() if mode not in (awssig.UNSIGNED,) and caller is not None \
        and not caller.sreq.presigned else None
    held = b""
    while True:
        chunk = await body.read_chunk()
        if not chunk:
            break
        if sha is not None:
            sha.update(chunk)
        if checksum is not None:
            checksum.update(chunk)
        if held:
            yield held
        held = chunk
    if sha is not None and not hmac.compare_digest(sha.hexdigest(), mode.lower()):
        raise S3Error("XAmzContentSHA256Mismatch",
                      extra={"ClientComputedContentSHA256": mode,
                             "S3ComputedContentSHA256": sha.hexdigest()})
    if checksum is not None:
        if claimed is not None:
            checksum.check(claimed[1])
        result.checksum = (checksum.algo, checksum.value())
    if held:
        yield held


async def _chunked(body: Body, caller: Caller, headers: Mapping[str, str], mode: str,
                   result: PayloadResult, compute: str | None) -> AsyncIterator[bytes]:
    decoder = awssig.ChunkDecoder(mode, caller.sreq, caller.key,
                                  headers.get("x-amz-trailer"), decoded_length(headers))
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
