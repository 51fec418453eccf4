"""Entry of the S3 API: addressing, authentication, dispatch, the one error mapping.

:func:`wants_s3` is the proxy's cheap test (a header prefix, a query key or a
virtual-hosted ``Host``) made before any Swift handling; :func:`anonymous_path`
is the later test for unsigned path-style requests (see there); :class:`S3Api`
answers the request. Path style is ``/bucket/key``; virtual-hosted style is
``bucket.<s3_domain>/key``. Unsigned requests are answered by
:mod:`~nubis.api.proxy.s3.anonymous` (public reads, else AccessDenied). Every
answer carries ``x-amz-request-id``; every failure is S3's ``<Error>`` document
(:func:`errors.to_s3`).
"""

from __future__ import annotations

import dataclasses
import importlib
import urllib.parse
from collections.abc import Mapping

from nubis.api.proxy.context import Ctx, Resp
from nubis.api.proxy.errors import HTTPError
from nubis.api.proxy.s3 import (
    acl,
    anonymous,
    attributes,
    buckets,
    cors,
    grants,
    lifecycle,
    multipart,
    objects,
    postobject,
    segments,
    tagging,
    unconfigured,
    versioning,
)
from nubis.api.proxy.s3.auth import CredentialSource, authenticate, check_payload_hash
from nubis.api.proxy.s3.errors import S3Error, error_body, from_swift, to_s3
from nubis.api.proxy.s3.request import Registry, S3Req
from nubis.api.shared import awssig

#: Query parameters of the signature, not sub-resources.
AUTH_PARAMS = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                         "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
                         "AWSAccessKeyId", "Signature", "Expires"})

#: ``GET /info``'s ``s3api`` entry (Swift's names; ``s3_acl`` is ``[proxy] s3_acl``).
S3_INFO: dict[str, object] = {
    "max_bucket_listing": buckets.MAX_KEYS, "max_parts_listing": 1000,
    "max_upload_part_num": segments.MAX_PARTS, "max_multi_delete_objects": 1000,
    "allow_multipart_uploads": True, "min_segment_size": multipart.MIN_PART,
    "s3_acl": False,
}


#: Methods some S3 operation uses (besides a preflight's ``OPTIONS``); PERF: one
#: frozenset lookup (``python -m nubis.bench s3``).
_S3_METHODS = frozenset(("GET", "HEAD", "PUT", "POST", "DELETE"))
#: Methods whose body S3 holds to its ``x-amz-content-sha256`` (PERF: a GET's is never
#: read, so it gets no hashing body; ``python -m nubis.bench s3``).
_BODY_METHODS = frozenset(("PUT", "POST"))


def wants_s3(headers: Mapping[str, str], raw_query: bytes, domain: str) -> bool:
    """Tell whether a request is for the S3 API (PERF: bench s3 vs swift; no parsing)."""
    if awssig.is_s3_request(headers, raw_query):
        return True
    host = headers.get("host", "")
    return bool(domain) and domain in host and host.split(":", 1)[0].endswith("." + domain)


#: First path segments that are Swift's (or the proxy's own), never an unsigned
#: request's path-style bucket (``/auth/v1.0``, ``/v1.0``, ``/info``, ...).
SWIFT_SEGMENTS = frozenset({"v1", "auth", "v1.0", "info", "healthcheck", "crossdomain.xml"})
#: Headers and query keys of Swift's own authentication (tokens, TempURLs).
_SWIFT_AUTH_HEADERS = ("x-auth-token", "x-storage-token", "x-service-token")
_SWIFT_AUTH_PARAMS = ("temp_url_sig", "temp_url_expires")


def anonymous_path(raw_path: str, headers: Mapping[str, str], query: Mapping[str, str],
                   swift_hosts: tuple[str, ...] = ()) -> str | None:
    """Return the bucket an unsigned path-style request addresses (None: it is Swift's).

    Asked by the dispatcher only for requests :func:`wants_s3` declined and no
    proxy path (``/healthcheck``, ``/info``, ``/crossdomain.xml``, a remapped
    host, ``/auth``, ``/v1.0``) took, just before Swift's own routing; ``""``
    is the service (``GET /``: ListBuckets, AccessDenied for an anonymous caller).

    Which paths: only those that cannot be Swift's. A request carrying any
    credential stays where it was (an ``Authorization`` header, a Swift token,
    a TempURL signature); so do ``/v1/...`` and the other proxy paths
    (:data:`SWIFT_SEGMENTS`), hosts of the storage domain (``swift_hosts``,
    domain remap: their root answers ``412 Bad URL``), paths that are not
    UTF-8 or hold a NUL (Swift's 412), an empty first segment (``//v1/a``:
    Swift's 404) and a first segment no bucket can have (S3's characters, 3 to
    255 of them: ``/v2`` keeps Swift's ``412 Bad URL``). What is left Swift
    answers only as "not my API" (``412 Bad URL`` for ``/name``, ``404`` for
    ``/name/more``); Swift's functional suite sends unsigned requests only to
    ``/v1/...`` paths and remapped hosts, so none of the answers it checks
    change. Every such path is S3's whether or not the bucket exists, so a
    missing bucket is S3's AccessDenied too (no registry lookup for Swift's
    requests; the alternative, path style only for existing buckets, would
    answer a missing bucket with a Swift 412/404).
    """
    if raw_path.startswith("/v1/") or "authorization" in headers:  # PERF: Swift's paths
        return None
    if any(h in headers for h in _SWIFT_AUTH_HEADERS) or any(
            p in query for p in _SWIFT_AUTH_PARAMS):
        return None
    if swift_hosts and headers.get("host", "").rsplit(":", 1)[0].endswith(swift_hosts):
        return None
    try:
        path = urllib.parse.unquote_to_bytes(raw_path.split("?", 1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in path or not path.startswith("/"):
        return None
    if path == "/":
        return ""
    first = path[1:].split("/", 1)[0]
    if not first or first in SWIFT_SEGMENTS:
        return None
    try:
        buckets.check_bucket_name(first, strict=False)
    except S3Error:
        return None
    return first


def load_source(target: str, tokens: object) -> CredentialSource | None:
    """Build the credential source of ``[proxy] s3_credentials`` (``module:function``)."""
    if not target:
        return None
    module, _, func = target.partition(":")
    source: CredentialSource = getattr(importlib.import_module(module), func)(tokens)
    return source


class S3Api:
    """The S3 API of one proxy worker."""

    def __init__(self, source: CredentialSource | None, reseller_prefix: str = "AUTH_"
                 ) -> None:
        self.source = source
        self.reseller_prefix = reseller_prefix
        self.registry = Registry()

    async def handle(self, ctx: Ctx, raw_query: bytes) -> Resp:
        """Answer one S3 request (never raises)."""
        bucket, key = self._address(ctx)
        resource = f"/{bucket}/{key}" if key else (f"/{bucket}" if bucket else "/")
        try:
            if ctx.method == "OPTIONS":  # a CORS preflight: unauthenticated, as in S3
                resp = await cors.preflight(S3Req(ctx, None, bucket, key), self.registry)
            elif ctx.method not in _S3_METHODS:  # before the signature, as Swift's s3api
                raise S3Error("MethodNotAllowed", extra={
                    "Method": ctx.method,
                    "ResourceType": "OBJECT" if key else "BUCKET" if bucket else "SERVICE"})
            elif postobject.is_post_object(ctx, bucket, key):  # a browser form upload
                resp = await postobject.answer(ctx, bucket, self.source, self.reseller_prefix,
                                               self._dispatch)
            elif anonymous.is_anonymous(ctx.headers, ctx.query):
                resp = await anonymous.answer(ctx, self.registry, bucket, key)
            else:
                resp = await self._dispatch(self._authenticated(ctx, raw_query, bucket, key))
        except Exception as exc:
            err = to_s3(exc, resource)
            body = error_body(err, resource, ctx.trans_id)
            headers = {"Content-Type": "application/xml", **err.headers}
            if ctx.method == "HEAD" or err.status == 304:
                body = b""
            resp = Resp(err.status, headers, body)
        if bucket and "origin" in ctx.headers and ctx.method != "OPTIONS":
            await cors.decorate(S3Req(ctx, None, bucket, key), self.registry, resp)
        resp.headers["x-amz-request-id"] = ctx.trans_id
        resp.headers["x-amz-id-2"] = ctx.trans_id
        if isinstance(resp.body, bytes) and "Content-Length" not in resp.headers:
            resp.headers["Content-Length"] = str(len(resp.body))
        return resp

    def _address(self, ctx: Ctx) -> tuple[str, str]:
        path = urllib.parse.unquote(ctx.path.split("?", 1)[0])
        host = ctx.headers.get("host", "").split(":", 1)[0]
        domain = ctx.state.conf.s3_domain
        if domain and host.endswith("." + domain):
            return host[: -len(domain) - 1], path.lstrip("/")
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key

    def _authenticated(self, ctx: Ctx, raw_query: bytes, bucket: str, key: str) -> S3Req:
        caller = authenticate(self.source, ctx.method, ctx.path.split("?", 1)[0],
                              raw_query.decode("latin-1"), ctx.headers, self.reseller_prefix)
        query = {k: v for k, v in ctx.query.items() if k not in AUTH_PARAMS}
        return S3Req(ctx, caller, bucket, key, query)

    async def _dispatch(self, req: S3Req) -> Resp:
        try:
            if req.caller is not None and req.ctx.method in _BODY_METHODS:
                await check_payload_hash(req.ctx, req.caller)
            return await self._route(req)
        except HTTPError as exc:
            missing = "NoSuchKey" if req.key else "NoSuchBucket"
            raise from_swift(exc, missing) from None

    async def _route(self, req: S3Req) -> Resp:
        method, q = req.ctx.method, req.q
        unconfigured.check_headers(req.ctx.headers)
        if not req.acl_mode and method in ("PUT", "POST"):
            grants.grants_as_canned(req)
        if not req.bucket:
            if method == "GET":
                return await buckets.list_buckets(req, grants.readable if req.acl_mode else None)
            raise S3Error("MethodNotAllowed")
        if method == "PUT" and not req.key and not q:
            return await buckets.create(req, self.registry, _bucket_acl_headers(req))
        buckets.check_bucket_name(req.bucket, strict=False)
        owner = await self.registry.owner(req, req.bucket)
        if owner is not None and owner != req.account:
            raise S3Error("AccessDenied")
        check_expected_owner(req)
        if req.acl_mode:
            await _authorize(req)
        elif req.key and method in ("PUT", "POST") and "acl" not in q \
                and "x-amz-acl" in req.ctx.headers:
            # PutObject, CopyObject, CreateMultipartUpload: objects share their
            # bucket's ACL, so only the owner-only canned ACLs and the bucket's are theirs.
            await acl.check_object_canned(req, req.ctx.headers["x-amz-acl"])
        if not req.key:
            return await self._bucket(req)
        return await self._object(req)

    async def _bucket(self, req: S3Req) -> Resp:
        method, q = req.ctx.method, req.q
        if q.keys() & {"cors", "lifecycle"} and method in ("GET", "PUT", "DELETE"):
            return await (cors.handle(req) if "cors" in q else lifecycle.handle(req))
        if (absent := unconfigured.asked(q)) is not None and method in ("GET", "PUT", "DELETE"):
            return await unconfigured.handle(req, absent)
        if not q.keys().isdisjoint(_BUCKET_NOT_OFFERED):
            raise S3Error("NotImplemented", status=501)
        if method == "GET":
            if "location" in q:
                return await buckets.location(req)
            if "uploads" in q:
                return await multipart.list_uploads(req)
            if "versioning" in q:
                return await versioning.get_config(req)
            if "acl" in q:
                return await _acl_api(req).bucket_acl(req)
            if "versions" in q:
                return await buckets.list_versions(req)
            if "tagging" in q:
                return await tagging.bucket_tagging(req)
            return await buckets.list_objects(req)
        if method == "HEAD":
            return await buckets.head(req)
        if method == "DELETE" and not q:
            return await buckets.delete(req, self.registry)
        if method == "POST" and "delete" in q:
            return await objects.delete_many(req)
        if method == "PUT" and "acl" in q:
            return await _acl_api(req).bucket_acl(req)
        if method in ("PUT", "DELETE") and "tagging" in q:
            return await tagging.bucket_tagging(req)
        if method == "PUT" and "versioning" in q:
            return await versioning.put_config(req)
        if method == "PUT":
            raise S3Error("NotImplemented", status=501)
        raise S3Error("MethodNotAllowed", extra={"Method": method,
                                                 "ResourceType": "BUCKET"})

    async def _object(self, req: S3Req) -> Resp:
        method, q = req.ctx.method, req.q
        if not q:  # PERF: bench s3 -- a plain object request asks no sub-resource
            return await self._plain_object(req, method)
        if not q.keys().isdisjoint(_OBJECT_NOT_OFFERED):
            raise S3Error("NotImplemented", status=501)
        if "uploadId" in q:
            return await multipart.on_upload(req)
        if method == "POST" and "uploads" in q:
            return await multipart.create(req)
        if "acl" in q and method in ("GET", "PUT"):
            return await _acl_api(req).object_acl(req)
        if "tagging" in q and method in ("GET", "PUT", "DELETE"):
            return await tagging.object_tagging(req, objects.object_ctx(req, "POST"))
        if "attributes" in q and method == "GET":
            return await attributes.get(req)
        # never answered as a GetObject (``?attributes`` with another method neither)
        if q.keys() & {"acl", "tagging", "attributes"}:
            raise S3Error("NotImplemented", status=501)
        return await self._plain_object(req, method)

    async def _plain_object(self, req: S3Req, method: str) -> Resp:
        if method == "PUT":
            return await objects.put(req)
        if method in ("GET", "HEAD"):
            return await objects.get_or_head(req)
        if method == "DELETE":
            return await objects.delete(req)
        raise S3Error("MethodNotAllowed", extra={"Method": method,
                                                 "ResourceType": "OBJECT"})


#: Object sub-resources of S3 operations nubis does not offer: NotImplemented for
#: every method, never a plain object request (a PutObjectAnnotation, a
#: RenameObject or an UpdateObjectEncryption is a PUT to the key: answered as
#: PutObject it would replace the object; a DeleteObjectAnnotation would delete it).
_OBJECT_NOT_OFFERED = frozenset({
    "annotation", "renameObject", "encryption", "part", "retention", "legal-hold",
    "torrent", "restore", "select"})
#: Bucket sub-resources of S3 operations nubis does not offer and has no "not
#: configured" answer for (``unconfigured.ABSENT``): never answered as ListObjects.
_BUCKET_NOT_OFFERED = frozenset({
    "abac", "default-storage-class", "metadataConfiguration", "metadataTable",
    "metadataAnnotationTable", "metadataInventoryTable", "metadataJournalTable", "session"})

#: Headers naming the account a request expects to own its bucket (its copy source's).
EXPECTED_OWNER_HEADERS = ("x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner")


def check_expected_owner(req: S3Req) -> None:
    """Refuse (AccessDenied) a request whose bucket is not owned by the account it names.

    S3 clients name the owning account's id in ``x-amz-expected-bucket-owner``
    (the copy source's in ``x-amz-source-expected-bucket-owner``). A bucket the
    caller reaches lives in its project's account, so the project id (the
    ``<Owner><ID>`` outside ACL mode) is the one that matches.
    """
    headers = req.ctx.headers
    if headers.keys().isdisjoint(EXPECTED_OWNER_HEADERS) or req.caller is None:
        return  # PERF: bench s3 -- one C call, no generator
    owners = {req.caller.cred.project_id}
    if not req.acl_mode:
        owners.add(req.user)
    for name in EXPECTED_OWNER_HEADERS:
        if name in headers and headers[name].strip() not in owners:
            raise S3Error("AccessDenied")


def _acl_api(req: S3Req) -> acl.AclApi:
    """Return the ACL sub-resource handlers of the request's mode."""
    return grants.GRANTS_API if req.acl_mode else acl.CANNED_API


def _bucket_acl_headers(req: S3Req) -> dict[str, str] | None:
    """Return the container headers a CreateBucket's ACL asks for (None: none asked)."""
    if req.acl_mode:
        policy = grants.from_headers(req.ctx.headers, req.user)
        assert policy is not None
        return {grants.BUCKET_META: policy.encode()}
    canned = req.header("x-amz-acl")
    return acl.bucket_headers(canned) if canned else None


async def _authorize(req: S3Req) -> None:
    """Check the caller's grants for the request (ACL mode), its copy source's too."""
    gate = req.gate = grants.Gate(req)
    resource, _ = grants.required(req.ctx.method, req.q, bool(req.key))
    stored = await _stored(req) if resource == "object" else None
    await gate.authorize(stored)
    if req.key and req.ctx.method == "PUT" and "x-amz-copy-source" in req.ctx.headers:
        bucket, key, version = objects.copy_source(req)
        source = dataclasses.replace(req, bucket=bucket, key=key, q=(
            {"versionId": version} if version is not None else {}), gate=None)
        await grants.Gate(source).check_object(await _stored(source), "READ")


async def _stored(req: S3Req) -> dict[str, str]:
    """Return the object's stored headers (empty when absent or unreadable)."""
    try:
        return await versioning.raw_version_head(req, versioning.requested(req))
    except (HTTPError, S3Error, ValueError):
        return {}
