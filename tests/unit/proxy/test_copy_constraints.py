"""Copy headers, manifest headers and ACL cleaning, checked like Swift's constraints."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from nubis.api.proxy import auth, constraints, largeobj
from nubis.api.proxy.errors import HTTPError

LIMITS = constraints.Limits()


def error_of(fn: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(HTTPError) as info:
        fn(*args)
    return info.value.status, info.value.body


@pytest.mark.parametrize(("value", "want"), [
    ("c/o", ("c", "o")), ("/c/o", ("c", "o")), ("c/a/b/", ("c", "a/b/")),
    ("c/%E2%98%83", ("c", "\u2603")), ("c%2Fx/o", ("c", "x/o")),
    # header values arrive latin-1 decoded: raw UTF-8 bytes still mean UTF-8
    ("c/\xe2\x98\x83", ("c", "\u2603")),
])
def test_path_header_splits(value: str, want: tuple[str, str]) -> None:
    assert constraints.check_path_header(value, "Destination") == want


@pytest.mark.parametrize(("value", "body"), [
    ("c", "Destination header must be of the form <container name>/<object name>"),
    ("//o", "Destination header must be of the form <container name>/<object name>"),
    ("c/", "Destination header must be of the form <container name>/<object name>"),
    ("c/%FF", "Invalid UTF8 or contains NULL"),
    ("%FF/o", "Invalid UTF8 or contains NULL"),
    ("c/a%00", "Invalid UTF8 or contains NULL"),
    ("c/%ED%A0%80", "Invalid UTF8 or contains NULL"),  # an encoded surrogate
])
def test_path_header_errors_are_412(value: str, body: str) -> None:
    assert error_of(constraints.check_path_header, value, "Destination") == (412, body)


def test_account_header() -> None:
    assert constraints.check_account_header("AUTH_%74est", LIMITS) == "AUTH_test"
    assert error_of(constraints.check_account_header, "", LIMITS) == (
        412, "Account name cannot be empty")
    assert error_of(constraints.check_account_header, "a%2Fb", LIMITS) == (
        412, "Account name cannot contain slashes")
    assert error_of(constraints.check_account_header, "AUTH_%FF", LIMITS)[0] == 412
    assert error_of(constraints.check_account_header, "a" * 300, LIMITS)[0] == 400


@pytest.mark.parametrize("value", ["c/p", "c/a/b", "c/%E2%98%83", "c/p p"])
def test_object_manifest_ok(value: str) -> None:
    constraints.check_object_manifest(value)


@pytest.mark.parametrize("value", ["c", "/p", "c/", "c//p", "c/p?x", "c/p&x", "c/%FF", ""])
def test_object_manifest_bad(value: str) -> None:
    assert error_of(constraints.check_object_manifest, value) == (
        400, "X-Object-Manifest must be in the format container/prefix")


@pytest.mark.parametrize(("value", "name", "want"), [
    (".r:*, .rlistings", "x-container-read", ".r:*,.rlistings"),
    (".referrer : *.example.com", "x-container-read", ".r:.example.com"),
    (".r:-*.thief.com", "x-container-read", ".r:-.thief.com"),
    ("bob, , sue:x", "x-container-write", "bob,sue:x"),
])
def test_clean_acl(value: str, name: str, want: str) -> None:
    assert auth.clean_acl(value, name) == want


@pytest.mark.parametrize(("value", "name", "body"), [
    (".r:*", "x-container-write", "Referrers not allowed in write ACL: '.r:*'"),
    ("bob,.ref:x.org", "X-Container-Write", "Referrers not allowed in write ACL: '.ref:x.org'"),
    (".r:", "x-container-read", "No host/domain value after referrer designation in "
                                "ACL: '.r:'"),
    (".r:-", "x-container-read", "No host/domain value after referrer designation in "
                                 "ACL: '.r:-'"),
    (".r:*.", "x-container-read", "No host/domain value after referrer designation in "
                                  "ACL: '.r:*.'"),
    (".nope:x", "x-container-read", "Unknown designator '.nope' in ACL: '.nope:x'"),
])
def test_clean_acl_errors(value: str, name: str, body: str) -> None:
    assert error_of(auth.clean_acl, value, name) == (400, body)


def test_manifest_sysmeta_matches_swift() -> None:
    manifest = [{"name": "/c/a", "hash": "a" * 32, "bytes": 10},
                {"name": "/c/b", "hash": "b" * 32, "bytes": 100, "range": "10-19"}]
    data = json.dumps(manifest).encode()
    meta = largeobj.manifest_sysmeta(data)
    etag = hashlib.md5(("a" * 32 + "b" * 32 + ":10-19;").encode()).hexdigest()
    assert meta[largeobj.SLO_ETAG] == etag
    assert meta[largeobj.OVERRIDE_SIZE] == meta[largeobj.SLO_SIZE] == "20"
    assert meta[largeobj.OVERRIDE_ETAG] == (f"{hashlib.md5(data).hexdigest()}; "
                                            f"slo_etag={etag}")
    assert error_of(largeobj.manifest_sysmeta, b"{}")[0] == 400
