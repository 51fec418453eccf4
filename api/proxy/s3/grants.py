"""S3 ACLs in ``s3_acl`` mode: per-user grants on buckets and objects, enforced here.

With ``[proxy] s3_acl = true`` (Swift's s3api ``s3_acl``), every bucket and
object carries an ``AccessControlPolicy``: an owner (the S3 user who created
it, ``account:user`` for tempauth keys, ``project:user`` for EC2 credentials)
and grants to users or to the AllUsers / AuthenticatedUsers / LogDelivery
groups. It is stored as sysmeta in Swift's own format
(``x-container-sysmeta-s3api-acl``, ``x-object-sysmeta-s3api-acl``, JSON
``{"Owner": id, "Grant": [{"Permission": p, "Grantee": id or group}]}``), so
ACLs written by Swift's s3api read back unchanged.

The S3 layer then authorizes each request itself (:func:`required` names the
permission, :class:`Gate` checks it) and runs its Swift operations with the
rights of the account's owner, as Swift's s3api does in this mode. Grants
apply within the bucket's project: a bucket of another project stays
AccessDenied whatever its grants say (tenant isolation). A resource without a
stored policy (written through the Swift API, or before the mode was on) is
fully controlled by the account's owners and no one else. An unsigned request
(:mod:`~nubis.api.proxy.s3.anonymous`, user ``""``) holds only what ``AllUsers``
is granted, and only reads are ever asked for it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from nubis.api.proxy.context import Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import acl, bucketconf, buckets, tagging, unconfigured, versioning
from nubis.api.proxy.s3.acl import AclApi
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req, header_of
from nubis.api.proxy.s3.xmlio import doc, el, parse_untrusted, text

PERMISSIONS = ("FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP")
BUCKET_META = buckets.ACL_META
OBJECT_META = "x-object-sysmeta-s3api-acl"
#: Group URI -> the name Swift's s3api stores for it.
GROUPS = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers",
    "http://acs.amazonaws.com/groups/s3/LogDelivery": "LogDelivery",
}
_URIS = {name: uri for uri, name in GROUPS.items()}
#: The user id of log delivery (LogDelivery's member, as in Swift).
LOG_DELIVERY_USER = ".log_delivery"
#: Largest AccessControlPolicy body (Swift's ``ACL.max_xml_length``).
MAX_ACL_XML = 200 * 1024
#: Most grants one policy may hold (S3 allows 100).
MAX_GRANTS = 100
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class Grant:
    """One grant: a user id or a group name (``AllUsers``...), and a permission."""

    grantee: str
    permission: str
    group: bool = False

    def covers(self, user: str) -> bool:
        """Tell whether ``user`` is (in) this grantee (``""``: an unsigned request)."""
        if not self.group:
            return bool(user) and self.grantee == user
        if self.grantee == "LogDelivery":
            return user.rpartition(":")[2] == LOG_DELIVERY_USER
        if self.grantee == "AuthenticatedUsers":
            return bool(user)
        return True  # AllUsers

    def xml(self) -> str:
        """Return the ``<Grant>`` element."""
        if self.group:
            who = (f'<Grantee xmlns:xsi="{_XSI}" xsi:type="Group">'
                   + el("URI", _URIS[self.grantee]) + "</Grantee>")
        else:
            who = (f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">'
                   + el("ID", self.grantee) + el("DisplayName", self.grantee) + "</Grantee>")
        return f"<Grant>{who}{el('Permission', self.permission)}</Grant>"


@dataclass(frozen=True)
class Policy:
    """A resource's owner and grants (``owner`` empty: the account's owners, no grants)."""

    owner: str = ""
    grants: tuple[Grant, ...] = field(default_factory=tuple)

    def allows(self, user: str, permission: str, owns_account: bool) -> bool:
        """Tell whether ``user`` holds ``permission`` (``OWNER``: is the owner)."""
        if not self.owner:
            return owns_account
        if user == self.owner:
            return True
        if permission == "OWNER":
            return False
        return any(g.covers(user) and g.permission in (permission, "FULL_CONTROL")
                   for g in self.grants)

    def encode(self) -> str:
        """Return the stored (Swift s3api) form."""
        return json.dumps({"Owner": self.owner, "Grant": [
            {"Permission": g.permission, "Grantee": g.grantee} for g in self.grants]},
            separators=(",", ":"))

    @classmethod
    def decode(cls, value: str | None) -> Policy:
        """Return the policy a stored value states (an empty policy if none or unreadable)."""
        try:
            data = json.loads(value) if value else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("Owner"), str):
            return cls()
        grants = []
        for item in data.get("Grant") or []:
            if isinstance(item, dict) and item.get("Permission") in PERMISSIONS:
                who = str(item.get("Grantee", ""))
                grants.append(Grant(who, item["Permission"], who in _URIS))
        return cls(data["Owner"], tuple(grants))

    def xml(self, owner: str) -> bytes:
        """Return the ``AccessControlPolicy`` document (``owner`` shown when none is stored)."""
        shown = self.owner or owner
        grants = self.grants or (() if self.owner else (Grant(shown, "FULL_CONTROL"),))
        return doc("AccessControlPolicy", [
            f"<Owner>{el('ID', shown)}{el('DisplayName', shown)}</Owner>",
            "<AccessControlList>", *(g.xml() for g in grants), "</AccessControlList>"])


def canned(name: str, owner: str, bucket_owner: str) -> Policy:
    """Return the policy of canned ACL ``name`` (InvalidArgument when unknown)."""
    mine = Grant(owner, "FULL_CONTROL")
    table: dict[str, tuple[Grant, ...]] = {
        "private": (mine,),
        "public-read": (Grant("AllUsers", "READ", True), mine),
        "public-read-write": (Grant("AllUsers", "READ", True),
                              Grant("AllUsers", "WRITE", True), mine),
        "authenticated-read": (Grant("AuthenticatedUsers", "READ", True), mine),
        "bucket-owner-read": (Grant(bucket_owner, "READ"), mine),
        "bucket-owner-full-control": (mine, Grant(bucket_owner, "FULL_CONTROL")),
        "log-delivery-write": (Grant("LogDelivery", "WRITE", True),
                               Grant("LogDelivery", "READ_ACP", True), mine),
    }
    if name not in table:
        raise S3Error("InvalidArgument", extra={"ArgumentName": "x-amz-acl",
                                                "ArgumentValue": name})
    return Policy(owner, table[name])


def from_headers(headers: Mapping[str, str], owner: str, bucket_owner: str = "",
                 default: bool = True) -> Policy | None:
    """Return the policy ``x-amz-acl`` or ``x-amz-grant-*`` state.

    Without either: ``private`` for ``owner`` (``default``) or None.
    """
    grants: list[Grant] = []
    for name, value in headers.items():
        low = name.lower()
        if not low.startswith("x-amz-grant-"):
            continue
        permission = low[len("x-amz-grant-"):].upper().replace("-", "_")
        if permission not in PERMISSIONS:
            continue
        grants.extend(_header_grantee(part, permission) for part in value.split(","))
    if "x-amz-acl" in headers:
        if grants:
            raise S3Error("InvalidRequest", "Specifying both Canned ACLs and Header Grants "
                          "is not allowed")
        return canned(headers["x-amz-acl"], owner, bucket_owner or owner)
    if grants:
        return Policy(owner, tuple(grants[:MAX_GRANTS]))
    return canned("private", owner, owner) if default else None


#: Group name -> its URI (the inverse of :data:`GROUPS`).
_GROUP_URIS = {name: uri for uri, name in GROUPS.items()}
#: The request headers granting a permission (``x-amz-grant-read-acp``: ``READ_ACP``).
GRANT_HEADERS = frozenset("x-amz-grant-" + p.lower().replace("_", "-") for p in PERMISSIONS)


def grants_as_canned(req: S3Req) -> None:
    """Restate a canned-mode request's ``x-amz-grant-*`` headers as its ``x-amz-acl``.

    Without ``s3_acl`` there are only canned ACLs: grants that amount to one
    (``uri=...AllUsers`` READ is ``public-read``) act as it, others are
    ``NotImplemented`` (they were ignored: a bucket created asking for a grant
    came out private without a word).
    """
    headers = req.ctx.headers
    if headers.keys().isdisjoint(GRANT_HEADERS):
        return
    policy = from_headers(headers, req.user, default=False)
    assert policy is not None
    stated = [(_GROUP_URIS[g.grantee], None, g.permission) if g.group else
              (None, g.grantee, g.permission) for g in policy.grants]
    canned = acl.canned_of_grants(req.user, stated)
    for name in GRANT_HEADERS:
        headers.pop(name, None)
    headers["x-amz-acl"] = canned


def _header_grantee(part: str, permission: str) -> Grant:
    kind, sep, value = part.strip().partition("=")
    value = value.strip().strip("\"'")
    kind = kind.strip().lower()
    if not sep or not value:
        raise S3Error("InvalidArgument", "Argument format not recognized",
                      extra={"ArgumentName": kind, "ArgumentValue": value})
    if kind == "id":
        return Grant(value, permission)
    if kind == "uri":
        return Grant(_group(value), permission, True)
    if kind == "emailaddress":
        raise S3Error("NotImplemented", "Grants by e-mail address are not supported.")
    raise S3Error("InvalidArgument", "Argument format not recognized",
                  extra={"ArgumentName": kind, "ArgumentValue": value})


def _group(uri: str) -> str:
    if uri not in GROUPS:
        raise S3Error("InvalidArgument", "Invalid group uri",
                      extra={"ArgumentName": "uri", "ArgumentValue": uri})
    return GROUPS[uri]


def from_body(body: bytes, current_owner: str) -> Policy:
    """Return the policy an ``AccessControlPolicy`` document states.

    A DOCTYPE and entity references are dropped unread, never expanded (as lxml's
    ``resolve_entities=False`` in Swift's s3api). No Owner keeps the current one.
    """
    root = parse_untrusted(body, "MalformedACLError")
    acl = root.find("AccessControlList")
    if root.tag != "AccessControlPolicy" or acl is None:
        raise _malformed()
    owner_node = root.find("Owner")
    owner = (text(owner_node, "ID") or "") if owner_node is not None else current_owner
    grants = []
    for node in acl.findall("Grant"):
        grantee, permission = node.find("Grantee"), text(node, "Permission")
        if grantee is None or permission not in PERMISSIONS:
            raise _malformed()
        kind = next((v for k, v in grantee.attrib.items() if k.endswith("type")), "")
        if kind == "CanonicalUser" and text(grantee, "ID"):
            grants.append(Grant(text(grantee, "ID") or "", permission or ""))
        elif kind == "Group" and text(grantee, "URI"):
            grants.append(Grant(_group(text(grantee, "URI") or ""), permission or "", True))
        elif kind == "AmazonCustomerByEmail":
            raise S3Error("NotImplemented", "Grants by e-mail address are not supported.")
        else:
            raise _malformed()
    if len(grants) > MAX_GRANTS or not owner:
        raise _malformed()
    return Policy(owner, tuple(grants))


def _malformed() -> S3Error:
    return S3Error("MalformedACLError", "The XML you provided was not well-formed or did "
                   "not validate against our published schema", 400)


def required(method: str, query: Mapping[str, str], has_key: bool) -> tuple[str, str]:
    """Return ``(resource, permission)`` a request needs (resource ``bucket``/``object``).

    As Swift's s3api ``ACL_MAP``: listing and HEAD read the bucket, writes and
    deletes of objects (multipart steps included) write it, reads of an object
    read it, ``?acl`` reads or writes the ACP; deleting the bucket and its
    configuration (location, versioning, CORS, lifecycle, tagging) are the owner's.
    """
    if "acl" in query:
        return ("object" if has_key else "bucket"), \
            ("READ_ACP" if method in ("GET", "HEAD") else "WRITE_ACP")
    if not has_key:
        if method == "POST" and "delete" in query:
            return "bucket", "WRITE"
        if method in ("GET", "HEAD") and not query.keys() & _CONFIG:
            return "bucket", "READ"
        return "bucket", "OWNER"
    if "uploadId" in query or "uploads" in query:
        return "bucket", "READ" if method == "GET" else "WRITE"
    if method in ("GET", "HEAD"):
        return "object", "READ"
    return "bucket", "WRITE"


#: Bucket sub-resources only the bucket's owner reads (their writes are the owner's too).
_CONFIG = frozenset({"location", "versioning", "cors", "lifecycle", "tagging",
                     *unconfigured.ABSENT})


class Gate:
    """The checks and policy reads of one request in ``s3_acl`` mode."""

    def __init__(self, req: S3Req) -> None:
        self.req = req
        self._bucket: Policy | None = None

    async def bucket_policy(self) -> Policy:
        """Return the bucket's policy (NoSuchBucket when missing)."""
        if self._bucket is None:
            req = self.req
            self._bucket = Policy.decode(await bucketconf.read(req, req.account, BUCKET_META))
        return self._bucket

    def check(self, policy: Policy, permission: str) -> None:
        """Raise AccessDenied unless the caller holds ``permission`` under ``policy``."""
        if not policy.allows(self.req.user, permission, self.req.owns_account):
            raise S3Error("AccessDenied")

    async def authorize(self, stored_object: Mapping[str, str] | None = None) -> None:
        """Check the permission the request needs (:func:`required`).

        ``stored_object``: the object's stored headers when the request reads
        it (empty: absent, then reading the bucket is what is needed).
        """
        req = self.req
        resource, permission = required(req.ctx.method, req.q, bool(req.key))
        if resource == "bucket" or stored_object is None:
            self.check(await self.bucket_policy(), permission)
        else:
            await self.check_object(stored_object, permission)

    async def check_object(self, stored: Mapping[str, str], permission: str) -> None:
        """Check ``permission`` on an object (``stored`` empty: absent, READ on the bucket)."""
        if stored:
            self.check(object_policy(stored), permission)
        else:
            self.check(await self.bucket_policy(), "READ")


async def readable(req: S3Req, bucket: str) -> bool:
    """Tell whether the caller may read ``bucket`` (ListBuckets in ``s3_acl`` mode).

    A project's users own their buckets apart: ListBuckets shows only those
    the caller may read, as Swift's s3api with ``check_bucket_owner`` (one
    cached container read per bucket).
    """
    gate = Gate(dataclasses.replace(req, bucket=bucket, key="", q={}, gate=None))
    try:
        gate.check(await gate.bucket_policy(), "READ")
    except (S3Error, HTTPError):
        return False
    return True


def object_policy(stored: Mapping[str, str]) -> Policy:
    """Return an object's policy from its stored headers."""
    return Policy.decode(header_of(stored, OBJECT_META))


def gate_of(req: S3Req) -> Gate:
    """Return the request's gate (the router made one when it authorized the request)."""
    if req.gate is None:
        req.gate = Gate(req)
    gate: Gate = req.gate
    return gate


async def new_object_headers(req: S3Req) -> dict[str, str]:
    """Return the policy sysmeta an object written by the request gets (ACL mode only).

    The writer owns it; ``x-amz-acl`` or ``x-amz-grant-*`` say the grants (else private).
    """
    if not req.acl_mode:
        return {}
    bucket = await gate_of(req).bucket_policy()
    policy = from_headers(req.ctx.headers, req.user, bucket.owner or req.user)
    assert policy is not None
    return {OBJECT_META: policy.encode()}


async def _requested(req: S3Req, current: Policy) -> Policy:
    """Return the policy a Put*Acl asks for (headers or body, not both)."""
    owner = current.owner or req.user
    body = await req.ctx.body.read_all(MAX_ACL_XML)
    asked = from_headers(req.ctx.headers, owner, owner, default=False)
    if asked is not None and body.strip():
        raise S3Error("UnexpectedContent", "This request does not support content", 400)
    if asked is not None:
        return asked
    if not body.strip():
        raise S3Error("MissingSecurityHeader", "Your request was missing a required "
                      "header", 400, {"MissingHeaderName": "x-amz-acl"})
    policy = from_body(body, owner)
    if policy.owner != owner:  # an ACL never changes its resource's owner
        raise S3Error("AccessDenied")
    return policy


async def bucket_acl(req: S3Req) -> Resp:
    """Answer GetBucketAcl / PutBucketAcl (ACL mode; the router checked the ACP grant)."""
    current = await gate_of(req).bucket_policy()
    if req.ctx.method == "GET":
        return Resp(200, {"Content-Type": "application/xml"}, current.xml(req.account))
    policy = await _requested(req, current)
    await bucketconf.write(req, BUCKET_META, policy.encode())
    return Resp(200, {})


async def object_acl(req: S3Req) -> Resp:
    """Answer GetObjectAcl / PutObjectAcl (ACL mode; the router checked the ACP grant)."""
    stored = await versioning.raw_version_head(req, versioning.requested(req))
    if not stored:
        raise S3Error("NoSuchKey")
    current = object_policy(stored)
    bucket_owner = (await gate_of(req).bucket_policy()).owner or req.account
    if req.ctx.method == "GET":
        return Resp(200, {"Content-Type": "application/xml"}, current.xml(bucket_owner))
    policy = await _requested(req, current)
    await tagging.update_object_sysmeta(req, {OBJECT_META: policy.encode()})
    return Resp(200, {})


GRANTS_API = AclApi(bucket_acl, object_acl)
