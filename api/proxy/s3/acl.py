"""Canned ACLs: Get/PutBucketAcl, Get/PutObjectAcl, ``x-amz-acl`` on create.

A bucket's ACL is its container's Swift ACLs, as Swift's s3api keeps it
without ``s3_acl``: ``public-read`` is ``X-Container-Read: .r:*,.rlistings``,
``authenticated-read`` is ``X-Container-Read: *:*`` (any authenticated
user), ``public-read-write`` adds ``X-Container-Write: *:*`` (Swift has no
anonymous writes, so writers must be authenticated: the ACL reads back as an
AuthenticatedUsers WRITE grant), ``private`` clears both. Reading the ACL back
derives the grants from those headers, so an ACL set through the Swift API
shows up too. The bucket's parts container (``<bucket>+segments``) gets the
bucket's readers, without listings, so a multipart object is as readable as
its bucket (:func:`~nubis.api.proxy.s3.segments.reader_acl`). Objects follow their bucket
(Swift has no per-object ACLs): their ACL shows the bucket's grants and only
the owner-only canned ACLs can be put on them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import segments
from nubis.api.proxy.s3.buckets import XML, owner_xml
from nubis.api.proxy.s3.errors import S3Error, from_swift
from nubis.api.proxy.s3.request import S3Req
from nubis.api.proxy.s3.xmlio import MAX_XML, doc, el, parse, text

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
#: Canned bucket ACL -> (X-Container-Read, X-Container-Write).
BUCKET_CANNED: dict[str, tuple[str, str]] = {
    "private": ("", ""),
    "public-read": (".r:*,.rlistings", ""),
    "public-read-write": (".r:*,.rlistings", "*:*"),
    "authenticated-read": ("*:*", ""),
}
#: Canned ACLs an object may carry (it shares its bucket's grants).
OBJECT_CANNED = frozenset({"private", "bucket-owner-read", "bucket-owner-full-control"})
#: Group grants each canned bucket ACL states (besides the owner's FULL_CONTROL).
_GRANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "private": (),
    "public-read": ((ALL_USERS, "READ"),),
    "public-read-write": ((ALL_USERS, "READ"), (ALL_USERS, "WRITE")),
    "authenticated-read": ((AUTH_USERS, "READ"),),
}


def grants_of(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return the group grants a container's Swift ACL headers amount to."""
    read = {g.strip() for g in headers.get("x-container-read", "").split(",")}
    write = {g.strip() for g in headers.get("x-container-write", "").split(",")}
    out = []
    if ".r:*" in read:
        out.append((ALL_USERS, "READ"))
    elif "*:*" in read:
        out.append((AUTH_USERS, "READ"))
    if "*:*" in write:
        out.append((AUTH_USERS, "WRITE"))
    return out


def bucket_headers(canned: str) -> dict[str, str]:
    """Return the container headers of a canned bucket ACL (InvalidArgument if unknown)."""
    if canned not in BUCKET_CANNED:
        if canned in OBJECT_CANNED:
            return {"x-container-read": "", "x-container-write": ""}
        raise S3Error("InvalidArgument", extra={"ArgumentName": "x-amz-acl",
                                                "ArgumentValue": canned})
    read, write = BUCKET_CANNED[canned]
    return {"x-container-read": read, "x-container-write": write}


async def check_object_canned(req: S3Req, canned: str) -> None:
    """Refuse a canned ACL an object cannot have apart from its bucket.

    Objects share their bucket's ACL: an object may ask for the owner-only ACLs
    and for the one its bucket has (``aws s3 sync --acl public-read`` into a
    ``public-read`` bucket), nothing else.
    """
    if canned in OBJECT_CANNED:
        return
    if canned not in BUCKET_CANNED:
        raise S3Error("InvalidArgument", extra={"ArgumentName": "x-amz-acl",
                                                "ArgumentValue": canned})
    if bucket_canned(await _bucket_headers(req)) != canned:
        raise S3Error("NotImplemented", "Objects share their bucket's ACL; set "
                      f"{canned!r} on the bucket.")


def bucket_canned(headers: Mapping[str, str]) -> str | None:
    """Return the canned ACL a bucket's container headers amount to (None: none)."""
    return _canned_of_groups(set(grants_of(headers)))


def policy_xml(req: S3Req, group_grants: list[tuple[str, str]]) -> bytes:
    """Return the ``AccessControlPolicy`` document: the owner's and ``group_grants``."""
    owner = owner_xml(req)
    xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    grants = [f'<Grant><Grantee {xsi} xsi:type="CanonicalUser">{owner[7:-8]}</Grantee>'
              + el("Permission", "FULL_CONTROL") + "</Grant>"]
    for uri, perm in group_grants:
        grants.append(f'<Grant><Grantee {xsi} xsi:type="Group">{el("URI", uri)}</Grantee>'
                      + el("Permission", perm) + "</Grant>")
    return doc("AccessControlPolicy", [owner, "<AccessControlList>", *grants,
                                       "</AccessControlList>"])


def canned_of_policy(req: S3Req, body: bytes) -> str:
    """Return the canned ACL an ``AccessControlPolicy`` body states (else NotImplemented)."""
    root = parse(body)
    if root.tag != "AccessControlPolicy" or root.find("AccessControlList") is None:
        raise S3Error("MalformedACLError", "The XML you provided was not well-formed or "
                      "did not validate against our published schema", 400)
    stated: list[tuple[str | None, str | None, str]] = []
    for grant in root.iter("Grant"):
        grantee, perm = grant.find("Grantee"), text(grant, "Permission") or ""
        if grantee is None:
            raise S3Error("MalformedACLError", status=400)
        stated.append((text(grantee, "URI"), text(grantee, "ID"), perm))
    return canned_of_grants(req.user, stated)


def canned_of_grants(owner: str, stated: Sequence[tuple[str | None, str | None, str]]) -> str:
    """Return the canned ACL some grants amount to (else NotImplemented).

    Each grant is ``(group URI, user id, permission)``, one of the first two set;
    a user grant may only be the owner's ``FULL_CONTROL``.
    """
    groups: set[tuple[str, str]] = set()
    for uri, ident, perm in stated:
        if uri is not None:
            groups.add((uri, perm))
        elif ident != owner or perm != "FULL_CONTROL":
            raise S3Error("NotImplemented", "Only grants to the owner and the AllUsers or "
                          "AuthenticatedUsers groups are supported.")
    canned = _canned_of_groups(groups)
    if canned is None:
        raise S3Error("NotImplemented", "This combination of grants is not supported.")
    return canned


def _canned_of_groups(groups: set[tuple[str, str]]) -> str | None:
    """Return the canned ACL some group grants amount to (None: none does)."""
    if (AUTH_USERS, "WRITE") in groups:  # how public-read-write reads back
        groups = (groups - {(AUTH_USERS, "WRITE")}) | {(ALL_USERS, "WRITE")}
    for canned, wanted in _GRANTS.items():
        if groups == set(wanted):
            return canned
    return None


async def bucket_acl(req: S3Req) -> Resp:
    """Answer GetBucketAcl / PutBucketAcl."""
    if req.ctx.method == "GET":
        return Resp(200, dict(XML), policy_xml(req, grants_of(await _bucket_headers(req))))
    canned = await _requested(req)
    await _bucket_headers(req)
    wanted = bucket_headers(canned)
    await req.swift("POST", req.bucket, headers=wanted)
    await segments.share_readers(req, wanted["x-container-read"])
    return Resp(200, {})


async def object_acl(req: S3Req) -> Resp:
    """Answer GetObjectAcl / PutObjectAcl (the bucket's grants)."""
    await req.swift("HEAD", req.bucket, req.key)
    if req.ctx.method == "PUT":
        await check_object_canned(req, await _requested(req))
        return Resp(200, {})
    return Resp(200, dict(XML), policy_xml(req, grants_of(await _bucket_headers(req))))


async def _bucket_headers(req: S3Req) -> dict[str, str]:
    """Return the bucket's container headers (NoSuchBucket when missing)."""
    try:
        resp = await req.swift("HEAD", req.bucket)
    except HTTPError as exc:
        raise from_swift(exc, "NoSuchBucket") from None
    return {k.lower(): v for k, v in resp.headers.items()}


async def _requested(req: S3Req) -> str:
    """Return the canned ACL a Put*Acl asks for (header or body, not both)."""
    body = await req.ctx.body.read_all(MAX_XML)
    canned = req.header("x-amz-acl")
    if canned and body.strip():
        raise S3Error("UnexpectedContent", "This request does not support content", 400)
    if canned:
        return canned
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required "
                      "header", 400, {"MissingHeaderName": "x-amz-acl"})
    return canned_of_policy(req, body)


@dataclass(frozen=True)
class AclApi:
    """The ``?acl`` handlers of one ACL mode (canned here, per-user grants in ``grants``)."""

    bucket_acl: Callable[[S3Req], Awaitable[Resp]]
    object_acl: Callable[[S3Req], Awaitable[Resp]]


CANNED_API = AclApi(bucket_acl, object_acl)
