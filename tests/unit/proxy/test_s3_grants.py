"""S3 ACL policies of ``s3_acl`` mode: storage form, grants, headers, bodies, checks."""

from __future__ import annotations

import json

import pytest
from nubis.api.proxy.s3 import grants
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.grants import Grant, Policy
from nubis.api.proxy.s3.xmlio import parse_untrusted

XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def _code(call: object, *args: object) -> str:
    with pytest.raises(S3Error) as exc:
        call(*args)  # type: ignore[operator]
    return exc.value.code


def _policy_xml(owner: str, *grant_xml: str) -> bytes:
    owner_el = f"<Owner><ID>{owner}</ID></Owner>" if owner else ""
    return (f"<AccessControlPolicy>{owner_el}<AccessControlList>{''.join(grant_xml)}"
            "</AccessControlList></AccessControlPolicy>").encode()


def _user(ident: str, perm: str) -> str:
    return (f'<Grant><Grantee {XSI} xsi:type="CanonicalUser"><ID>{ident}</ID></Grantee>'
            f"<Permission>{perm}</Permission></Grant>")


def _group(uri: str, perm: str) -> str:
    return (f'<Grant><Grantee {XSI} xsi:type="Group"><URI>{uri}</URI></Grantee>'
            f"<Permission>{perm}</Permission></Grant>")


def test_stored_form_is_swift_s3apis_and_round_trips() -> None:
    stored = ('{"Owner":"test:tester","Grant":[{"Permission":"FULL_CONTROL",'
              '"Grantee":"test:tester"},{"Permission":"READ","Grantee":"AllUsers"}]}')
    policy = Policy.decode(stored)
    assert policy == Policy("test:tester", (Grant("test:tester", "FULL_CONTROL"),
                                            Grant("AllUsers", "READ", True)))
    assert json.loads(policy.encode()) == json.loads(stored)
    assert Policy.decode(policy.encode()) == policy
    for junk in (None, "", "[]", "{not json", '{"Grant": []}'):
        assert Policy.decode(junk) == Policy()


def test_owner_grants_and_groups_decide_access() -> None:
    policy = grants.canned("public-read", "p:owner", "p:owner")
    assert policy.allows("p:owner", "OWNER", owns_account=False)
    assert policy.allows("p:other", "READ", owns_account=False)
    assert not policy.allows("p:other", "WRITE", owns_account=True)
    assert not policy.allows("p:other", "OWNER", owns_account=True)
    named = Policy("p:owner", (Grant("p:reader", "READ"), Grant("p:admin", "FULL_CONTROL")))
    assert named.allows("p:reader", "READ", False)
    assert not named.allows("p:reader", "READ_ACP", False)
    assert named.allows("p:admin", "WRITE_ACP", False)
    assert not named.allows("p:admin", "OWNER", False)
    logs = grants.canned("log-delivery-write", "p:owner", "p:owner")
    assert logs.allows("p:.log_delivery", "WRITE", False)
    assert not logs.allows("p:someone", "WRITE", False)


def test_a_resource_without_a_policy_is_the_account_owners() -> None:
    assert Policy().allows("p:anyone", "FULL_CONTROL", owns_account=True)
    assert not Policy().allows("p:anyone", "READ", owns_account=False)
    doc = Policy().xml("AUTH_p")
    assert b"<ID>AUTH_p</ID>" in doc and b"FULL_CONTROL" in doc


def test_canned_acls_name_the_object_and_bucket_owners() -> None:
    both = grants.canned("bucket-owner-full-control", "p:writer", "p:bucket")
    assert both.owner == "p:writer"
    assert set(both.grants) == {Grant("p:writer", "FULL_CONTROL"),
                                Grant("p:bucket", "FULL_CONTROL")}
    assert Grant("p:bucket", "READ") in grants.canned("bucket-owner-read", "p:w", "p:bucket").grants
    assert _code(grants.canned, "world-writable", "a", "a") == "InvalidArgument"


def test_grant_headers_and_their_refusals() -> None:
    policy = grants.from_headers({
        "x-amz-grant-read": 'id="p:a", uri="http://acs.amazonaws.com/groups/global/AllUsers"',
        "x-amz-grant-write-acp": "id=p:b", "x-amz-grant-bogus": "id=p:c"}, "p:me")
    assert policy is not None and policy.owner == "p:me"
    assert set(policy.grants) == {Grant("p:a", "READ"), Grant("AllUsers", "READ", True),
                                  Grant("p:b", "WRITE_ACP")}
    assert grants.from_headers({}, "p:me") == grants.canned("private", "p:me", "p:me")
    assert grants.from_headers({}, "p:me", default=False) is None
    both = {"x-amz-acl": "private", "x-amz-grant-read": "id=p:a"}
    assert _code(grants.from_headers, both, "p:me") == "InvalidRequest"
    assert _code(grants.from_headers, {"x-amz-grant-read": "emailAddress=a@b.c"},
                 "p:me") == "NotImplemented"
    assert _code(grants.from_headers, {"x-amz-grant-read": "uri=http://x/y"},
                 "p:me") == "InvalidArgument"
    assert _code(grants.from_headers, {"x-amz-grant-read": "who=p:a"}, "p:me") == \
        "InvalidArgument"


def test_policy_documents_parse_and_keep_the_owner() -> None:
    body = _policy_xml("p:me", _user("p:a", "READ"),
                       _group("http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
                              "WRITE"))
    policy = grants.from_body(body, "p:me")
    assert policy == Policy("p:me", (Grant("p:a", "READ"),
                                     Grant("AuthenticatedUsers", "WRITE", True)))
    assert grants.from_body(_policy_xml("", _user("p:a", "READ")), "p:cur").owner == "p:cur"
    rendered = policy.xml("unused")
    assert grants.from_body(rendered, "p:me") == policy


@pytest.mark.parametrize("body", [
    b"not xml",
    b"<Other/>",
    _policy_xml("p:me", _user("p:a", "EVERYTHING")),
    _policy_xml("p:me", '<Grant><Grantee><ID>x</ID></Grantee>'
                        "<Permission>READ</Permission></Grant>"),
    _policy_xml("p:me", *[_user(f"p:{i}", "READ") for i in range(grants.MAX_GRANTS + 1)]),
])
def test_malformed_policy_documents(body: bytes) -> None:
    assert _code(grants.from_body, body, "p:me") == "MalformedACLError"


def test_entities_are_dropped_never_expanded() -> None:
    xxe = (b'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>'
           + _policy_xml("p:me", _user("id&xxe;", "WRITE")))
    assert grants.from_body(xxe, "p:me").grants == (Grant("id", "WRITE"),)
    laughs = (b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
              b"<r>&b;&amp;&#65;</r>")
    assert parse_untrusted(laughs).text == "&A"
    assert _code(parse_untrusted, b'<!DOCTYPE a [<!ENTITY x "]>">]><r/>') == "MalformedXML"


@pytest.mark.parametrize(("method", "query", "key", "want"), [
    ("GET", {}, False, ("bucket", "READ")),
    ("HEAD", {}, False, ("bucket", "READ")),
    ("GET", {"uploads": ""}, False, ("bucket", "READ")),
    ("GET", {"acl": ""}, False, ("bucket", "READ_ACP")),
    ("PUT", {"acl": ""}, True, ("object", "WRITE_ACP")),
    ("GET", {"versioning": ""}, False, ("bucket", "OWNER")),
    ("PUT", {"cors": ""}, False, ("bucket", "OWNER")),
    ("DELETE", {}, False, ("bucket", "OWNER")),
    ("POST", {"delete": ""}, False, ("bucket", "WRITE")),
    ("GET", {}, True, ("object", "READ")),
    ("PUT", {}, True, ("bucket", "WRITE")),
    ("DELETE", {}, True, ("bucket", "WRITE")),
    ("POST", {"uploads": ""}, True, ("bucket", "WRITE")),
    ("GET", {"uploadId": "u"}, True, ("bucket", "READ")),
    ("POST", {"uploadId": "u"}, True, ("bucket", "WRITE")),
])
def test_each_operation_needs_swift_s3apis_permission(
        method: str, query: dict[str, str], key: bool, want: tuple[str, str]) -> None:
    assert grants.required(method, query, key) == want
