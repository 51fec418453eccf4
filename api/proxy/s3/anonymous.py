"""Unsigned S3 requests: reads of public buckets, AccessDenied for everything else.

S3 serves an anonymous caller GetObject / HeadObject of a publicly readable
object and ListObjects (v1, v2) / HeadBucket of a publicly listable bucket;
whatever else it asks is AccessDenied. Here the decision is Swift's own: the
bucket's owning account comes from the global registry
(:class:`~nubis.api.proxy.s3.request.Registry`, the only thing an anonymous
request reads as the proxy itself) and the operation runs with no identity,
so the container's read ACL decides (``.r:*`` reads objects, ``.rlistings``
lists; canned ``public-read`` sets both, see :mod:`~nubis.api.proxy.s3.acl`).
The ACL is checked up front with Swift's :func:`~nubis.api.proxy.auth.authorize`
too, since some lookups of a GetObject (version ids, multipart ETags) read
stored headers without an access check. No ``Referer`` is passed on, so only a
``.r:*`` entry admits anyone. Swift has no anonymous writes: every write is
AccessDenied (``public-read-write`` writers must be authenticated).

A multipart object reads whole: its parts live in ``<bucket>+segments``, which
shares the bucket's readers (without listings; :func:`~nubis.api.proxy.s3.segments.reader_acl`,
kept by CreateMultipartUpload and PutBucketAcl). A bucket whose ACL was set
through the Swift API alone does not share it: Swift then refuses the segments
(its 409 becomes AccessDenied here). Older versions (``versionId``) are the
owner's alone in Swift, so AccessDenied too.

A missing key is NoSuchKey when the caller may list the bucket (``.rlistings``)
and AccessDenied otherwise, as S3 answers callers without ``s3:ListBucket``.
A missing bucket, a private or ``authenticated-read`` one, ListBuckets and
every sub-resource (``?acl``, ``?versioning``, ``?versions``, ``?tagging``,
...) are AccessDenied.

In ACL mode (``[proxy] s3_acl``) the stored grants decide instead
(:mod:`~nubis.api.proxy.s3.grants`): the anonymous caller holds what
``AllUsers`` is granted (never ``AuthenticatedUsers`` grants), and once the
gate allowed the read the Swift operation runs with the owner's rights, as
signed requests do in that mode; only the read operations below are reachable.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from nubis.api.proxy import auth
from nubis.api.proxy.auth import Identity
from nubis.api.proxy.base import container_info
from nubis.api.proxy.context import Ctx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import buckets, grants, objects, versioning
from nubis.api.proxy.s3.errors import S3Error, from_swift
from nubis.api.proxy.s3.request import Registry, S3Req

#: Query keys of a signature: a request carrying one is not anonymous.
SIGNATURE_PARAMS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                              "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature",
                              "X-Amz-Security-Token", "AWSAccessKeyId", "Signature"})
#: GetObject's response header overrides (refused on anonymous reads, as S3 does).
RESPONSE_OVERRIDES = frozenset({
    "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding"})
#: Query keys an anonymous GetObject / HeadObject may carry (``x-id`` is botocore's
#: operation hint; the overrides are answered InvalidRequest, not AccessDenied).
OBJECT_PARAMS = frozenset({"versionId", "x-id"}) | RESPONSE_OVERRIDES
#: Query keys an anonymous ListObjects (v1, v2) may carry.
LIST_PARAMS = frozenset({"list-type", "prefix", "delimiter", "marker", "max-keys",
                         "encoding-type", "start-after", "continuation-token", "fetch-owner",
                         "x-id"})
#: Who the Swift operations of an allowed anonymous request run as in ACL mode.
_READER = ".s3_anonymous"


def is_anonymous(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """Tell whether an S3 request carries no signature at all (no Authorization either)."""
    return "authorization" not in headers and not SIGNATURE_PARAMS.intersection(query)


@dataclass
class AnonymousReq(S3Req):
    """An unsigned request, addressed to a bucket of ``owner_account``.

    ``caller`` stays None, so :attr:`user` is empty and :attr:`owns_account`
    False; :attr:`account` is the bucket's owning account (only ever the one the
    registry names for :attr:`bucket`) and :attr:`identity` is no one (canned
    ACLs: Swift's anonymous) or, in ACL mode, a reader of that one account for
    the operation the gate allowed.
    """

    owner_account: str = ""

    @property
    def account(self) -> str:
        """Return the account owning the request's bucket (the registry's answer)."""
        if not self.owner_account:
            raise S3Error("AccessDenied")
        return self.owner_account

    @functools.cached_property
    def identity(self) -> Identity | None:
        """Return who the Swift operations run as (None: anonymous, Swift's ACLs decide)."""
        if not self.acl_mode:
            return None
        return Identity(user=_READER, owned_accounts=frozenset({self.account}),
                        expires=float("inf"))


def _wanted(method: str, key: str, query: Mapping[str, str]) -> bool:
    """Tell whether an anonymous request is one of the reads S3 may allow it."""
    if method not in ("GET", "HEAD"):
        return False
    if key:
        return all(k in OBJECT_PARAMS for k in query)
    return all(k in LIST_PARAMS for k in query)


async def answer(ctx: Ctx, registry: Registry, bucket: str, key: str) -> Resp:
    """Answer an unsigned request (AccessDenied unless the bucket's ACL lets anyone read).

    Raises:
        S3Error: AccessDenied, NoSuchKey, InvalidRange, ... (the router maps it to XML).
    """
    query = dict(ctx.query)
    if not bucket or not _wanted(ctx.method, key, query):
        raise S3Error("AccessDenied")
    if any(k in RESPONSE_OVERRIDES for k in query):
        # S3 takes response-* overrides from signed requests only: on a public object
        # anyone could otherwise have it served as, say, text/html.
        raise S3Error("InvalidRequest", "Request specific response headers cannot be used "
                      "for anonymous GET requests.")
    try:
        buckets.check_bucket_name(bucket, strict=False)
    except S3Error:
        raise S3Error("AccessDenied") from None
    owner = await registry.owner(S3Req(ctx, None, bucket, ""), bucket)
    expected = ctx.headers.get("x-amz-expected-bucket-owner")
    if owner is None or (expected is not None
                         and expected.strip() != owner.partition("_")[2]):
        raise S3Error("AccessDenied")  # the owner: the project of the bucket's account
    req = AnonymousReq(ctx, None, bucket, key, query, owner_account=owner)
    try:
        if req.acl_mode:
            await _authorize_grants(req)
        else:
            await _authorize_swift(req)
        if key:
            return await objects.get_or_head(req)
        if ctx.method == "HEAD":
            return await buckets.head(req)
        return await buckets.list_objects(req)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchKey" if key else "NoSuchBucket") from None
    except S3Error as err:
        if err.status == 409:  # Swift's 409: a large object's segments the caller may not read
            raise S3Error("AccessDenied") from None
        raise


async def _authorize_swift(req: AnonymousReq) -> None:
    """Apply Swift's check of an anonymous read to the bucket's container ACL."""
    info = await container_info(req.ctx.state, req.account, req.bucket)
    if not info.exists:
        raise S3Error("AccessDenied")
    try:
        auth.authorize(None, req.ctx.method, req.account, req.bucket, req.key or None,
                       info.headers.get("x-container-read"))
    except HTTPError:
        raise S3Error("AccessDenied") from None


async def _authorize_grants(req: AnonymousReq) -> None:
    """Check the ACL-mode grants (AllUsers) for the read, as the router does for callers."""
    info = await container_info(req.ctx.state, req.account, req.bucket)
    if not info.exists:
        raise S3Error("AccessDenied")
    gate = req.gate = grants.Gate(req)
    stored: dict[str, str] | None = None
    if req.key:
        try:
            stored = await versioning.raw_version_head(req, versioning.requested(req))
        except (HTTPError, S3Error, ValueError):
            stored = {}
    await gate.authorize(stored)
