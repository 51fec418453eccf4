"""Unsigned S3 requests: which paths reach S3, what counts as unsigned, who they act as."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import falcon.testing
import pytest
from nubis.api.proxy.app import build_app
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.proxy.context import Ctx
from nubis.api.proxy.s3.anonymous import AnonymousReq, _wanted, is_anonymous
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.grants import Grant, Policy
from nubis.api.proxy.s3.request import S3Req
from nubis.api.proxy.s3.router import anonymous_path

SWIFT_HOSTS = (".swift.localhost",)


@pytest.mark.parametrize(("path", "headers", "query", "want"), [
    ("/", {}, {}, ""),  # the service: ListBuckets
    ("/bucket", {}, {}, "bucket"),
    ("/bucket/a/key", {}, {}, "bucket"),
    ("/my.bucket_x-1?acl", {}, {"acl": ""}, "my.bucket_x-1"),
    ("/caf%C3%A9/k", {}, {}, None),  # no bucket has that name: Swift's answer
    ("/v1", {}, {}, None),  # Swift's 412 Bad URL
    ("/v1/AUTH_test/c/o", {}, {}, None),
    ("/v2", {}, {}, None),  # too short for a bucket: Swift's 412 Bad URL
    ("/ab/c", {}, {}, None),
    ("//v1/AUTH_test", {}, {}, None),  # Swift's 404
    ("/auth/v1.0", {}, {}, None),
    ("/v1.0", {}, {}, None),
    ("/info", {}, {}, None),
    ("/healthcheck", {}, {}, None),
    ("/crossdomain.xml", {}, {}, None),
    ("/bucket/%FF", {}, {}, None),  # not UTF-8: Swift's 412
    ("/bucket/a%00b", {}, {}, None),
    ("/bucket/k", {"x-auth-token": "t"}, {}, None),
    ("/bucket/k", {"x-storage-token": "t"}, {}, None),
    ("/bucket/k", {"x-service-token": "t"}, {}, None),
    ("/bucket/k", {"authorization": "Bearer x"}, {}, None),
    ("/bucket/k", {}, {"temp_url_sig": "x", "temp_url_expires": "1"}, None),
    ("/", {"host": "other.swift.localhost"}, {}, None),  # the storage domain's root
    ("/bucket", {"host": "c.AUTH_test.swift.localhost:8080"}, {}, None),
    ("/", {"host": "example.com"}, {}, ""),
])
def test_anonymous_path(path: str, headers: dict[str, str], query: dict[str, str],
                        want: str | None) -> None:
    assert anonymous_path(path, headers, query, SWIFT_HOSTS) == want


def test_is_anonymous() -> None:
    assert is_anonymous({}, {})
    assert is_anonymous({"host": "b.s3.localhost"}, {"list-type": "2", "x-id": "GetObject"})
    assert not is_anonymous({"authorization": "AWS4-HMAC-SHA256 x"}, {})
    assert not is_anonymous({"authorization": "Bearer x"}, {})
    for key in ("X-Amz-Credential", "AWSAccessKeyId", "X-Amz-Signature", "Signature"):
        assert not is_anonymous({}, {key: "x"})


@pytest.mark.parametrize(("method", "key", "query", "want"), [
    ("GET", "k", {}, True),
    ("HEAD", "k", {"versionId": "1"}, True),
    ("GET", "k", {"response-content-type": "a/b", "x-id": "GetObject"}, True),
    ("GET", "", {"list-type": "2", "prefix": "p", "continuation-token": "t"}, True),
    ("GET", "", {"encoding-type": "url", "marker": "m"}, True),
    ("HEAD", "", {}, True),
    ("GET", "k", {"acl": ""}, False),
    ("GET", "k", {"tagging": ""}, False),
    ("GET", "k", {"uploadId": "u"}, False),
    ("GET", "", {"versioning": ""}, False),
    ("GET", "", {"versions": ""}, False),
    ("GET", "", {"location": ""}, False),
    ("PUT", "k", {}, False),
    ("POST", "", {"delete": ""}, False),
    ("DELETE", "k", {}, False),
])
def test_only_reads_are_wanted(method: str, key: str, query: dict[str, str],
                               want: bool) -> None:
    assert _wanted(method, key, query) is want


def _ctx(acl_mode: bool) -> Ctx:
    state = SimpleNamespace(conf=SimpleNamespace(s3_acl=acl_mode))
    return cast(Ctx, SimpleNamespace(state=state, headers={}))


def test_anonymous_request_acts_on_the_buckets_owner_only() -> None:
    req = AnonymousReq(_ctx(False), None, "b", "k", owner_account="AUTH_owner")
    assert (req.account, req.user, req.owns_account, req.identity) == (
        "AUTH_owner", "", False, None)
    ident = AnonymousReq(_ctx(True), None, "b", "k", owner_account="AUTH_owner").identity
    assert ident is not None and ident.owned_accounts == frozenset({"AUTH_owner"})
    assert not ident.reseller_admin
    with pytest.raises(S3Error) as exc:  # no owner named: nothing to act on
        _ = AnonymousReq(_ctx(False), None, "b", "k").account
    assert exc.value.code == "AccessDenied"
    with pytest.raises(S3Error):  # a plain unsigned request has no account at all
        _ = S3Req(_ctx(False), None, "b", "k").account


def test_unsigned_caller_holds_only_all_users_grants() -> None:
    policy = Policy("owner", (Grant("AllUsers", "READ", True),
                              Grant("AuthenticatedUsers", "WRITE", True),
                              Grant("", "READ_ACP"), Grant("LogDelivery", "WRITE_ACP", True)))
    assert policy.allows("", "READ", False)
    for permission in ("WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL", "OWNER"):
        assert not policy.allows("", permission, False), permission
    assert policy.allows("someone", "WRITE", False)  # signed callers keep theirs
    assert not Policy().allows("", "READ", False)  # no stored policy: the owners'


def test_dispatch_keeps_swift_answers(tmp_path: Path) -> None:
    client = falcon.testing.TestClient(build_app(ProxyConfig(), TempAuthConfig(), tmp_path,
                                                 "", "nubis"))
    answers: dict[str, Any] = {p: client.simulate_get(p) for p in ("/v1", "/v2", "/ab/c", "/")}
    assert (answers["/v1"].status_code, answers["/v1"].content) == (412, b"Bad URL")
    assert (answers["/v2"].status_code, answers["/v2"].content) == (412, b"Bad URL")
    assert answers["/ab/c"].status_code == 404
    root = answers["/"]
    assert root.status_code == 403 and b"<Code>AccessDenied</Code>" in root.content
    assert root.headers["x-amz-request-id"]
