"""Unit tests of the proxy's pure logic: constraints, ranges, conditions, auth, TempURL."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from nubis.api.proxy import auth, constraints, httputil, largeobj, tempurl
from nubis.api.proxy.config import TempAuthConfig, TempAuthUser
from nubis.api.proxy.errors import HTTPError, error_response

LIMITS = constraints.Limits()


def status_of(fn, *args):
    with pytest.raises(HTTPError) as info:
        fn(*args)
    return info.value.status


# --- constraints -------------------------------------------------------------

def test_name_lengths():
    constraints.check_object_name("o" * 1024, LIMITS)
    assert status_of(constraints.check_object_name, "o" * 1025, LIMITS) == 400
    assert status_of(constraints.check_object_name, "é" * 513, LIMITS) == 400
    constraints.check_container_name("c" * 256, LIMITS)
    assert status_of(constraints.check_container_name, "c" * 257, LIMITS) == 400
    assert status_of(constraints.check_container_name, "a/b", LIMITS) == 400
    assert status_of(constraints.check_account_name, "a" * 257, LIMITS) == 400
    assert status_of(constraints.check_object_name, "bad\x00name", LIMITS) == 412


def test_metadata_limits():
    ok = {f"x-object-meta-k{i}": "v" for i in range(90)}
    constraints.check_metadata(ok, "object", LIMITS)
    too_many = {f"x-object-meta-k{i}": "v" for i in range(91)}
    assert status_of(constraints.check_metadata, too_many, "object", LIMITS) == 400
    long_name = {"x-object-meta-" + "n" * 129: "v"}
    assert status_of(constraints.check_metadata, long_name, "object", LIMITS) == 400
    long_value = {"x-object-meta-k": "v" * 257}
    assert status_of(constraints.check_metadata, long_value, "object", LIMITS) == 400
    overall = {f"x-object-meta-k{i:02d}": "v" * 250 for i in range(17)}
    assert status_of(constraints.check_metadata, overall, "object", LIMITS) == 400
    # Temp-URL keys do not count against account/container metadata.
    constraints.check_metadata({"x-account-meta-temp-url-key": "k" * 300}, "account", LIMITS)


def test_metadata_bytes_as_swift_counts_them():
    """Values arrive latin-1 decoded: limits count their bytes; only objects take non-UTF-8."""
    not_utf8 = {"x-object-meta-k": "\xe9\xa9"}  # the bytes e9 a9: not UTF-8
    constraints.check_metadata(not_utf8, "object", LIMITS)
    for target in ("container", "account"):
        bad = {f"x-{target}-meta-k": "\xe9\xa9"}
        assert status_of(constraints.check_metadata, bad, target, LIMITS) == 400
        constraints.check_metadata({f"x-{target}-meta-k": "caf\xc3\xa9"}, target, LIMITS)
    # 128 two-byte characters are 256 bytes: the value limit, not twice it.
    constraints.check_metadata({"x-object-meta-k": "\xc3\xa9" * 128}, "object", LIMITS)
    too_long = {"x-object-meta-k": "\xc3\xa9" * 128 + "x"}
    assert status_of(constraints.check_metadata, too_long, "object", LIMITS) == 400


def test_content_length():
    assert constraints.check_content_length({"content-length": "5"}, LIMITS) == 5
    assert constraints.check_content_length({"transfer-encoding": "chunked"}, LIMITS) is None
    assert status_of(constraints.check_content_length, {}, LIMITS) == 411
    assert status_of(constraints.check_content_length, {"content-length": "x"}, LIMITS) == 400
    big = {"content-length": str(5 * 1024 ** 3 + 1)}
    assert status_of(constraints.check_content_length, big, LIMITS) == 413


def test_delete_at():
    now = 1_700_000_000.0
    assert constraints.delete_at_from_headers({"x-delete-after": "10"}, now) == now + 10
    assert constraints.delete_at_from_headers({"x-delete-at": str(int(now) + 5)}, now) == \
        int(now) + 5
    assert status_of(constraints.delete_at_from_headers, {"x-delete-at": "1"}, now) == 400
    assert status_of(constraints.delete_at_from_headers, {"x-delete-after": "x"}, now) == 400


def test_listing_limit():
    assert constraints.check_listing_limit(None, 10000) == 10000
    assert constraints.check_listing_limit("5", 10000) == 5
    assert status_of(constraints.check_listing_limit, "10001", 10000) == 412


# --- ranges and conditions ---------------------------------------------------

def test_parse_and_resolve_ranges():
    r = httputil.parse_range("bytes=0-9,20-,-5")
    assert r is not None
    assert httputil.resolve_ranges(r, 100) == [(0, 10), (20, 100), (95, 100)]
    assert httputil.parse_range("bytes=9-0") is None
    assert httputil.parse_range("items=0-1") is None
    assert httputil.parse_range("bytes=a-b") is None
    with pytest.raises(HTTPError) as info:
        httputil.resolve_ranges(httputil.parse_range("bytes=100-200") or [], 100)
    assert info.value.status == 416
    assert info.value.headers["Content-Range"] == "bytes */100"
    assert httputil.resolve_ranges(httputil.parse_range("bytes=50-500") or [], 100) == \
        [(50, 100)]


def test_conditions():
    lm = 1_700_000_000.0
    c = httputil.check_conditions
    assert c({"if-match": '"abc"'}, "abc", lm, "GET") is None
    assert c({"if-match": '"nope"'}, "abc", lm, "GET") == 412
    assert c({"if-none-match": '"abc"'}, "abc", lm, "GET") == 304
    assert c({"if-none-match": "*"}, "abc", lm, "PUT") == 412
    later = httputil.http_date(lm + 10)
    earlier = httputil.http_date(lm - 10)
    assert c({"if-modified-since": later}, "abc", lm, "GET") == 304
    assert c({"if-modified-since": earlier}, "abc", lm, "GET") is None
    assert c({"if-unmodified-since": earlier}, "abc", lm, "GET") == 412
    assert c({"if-unmodified-since": "garbage"}, "abc", lm, "GET") is None


def test_multipart_length_matches_body():
    async def body():
        yield b"0123456789" * 10

    spans = [(0, 5), (10, 20)]
    from nubis.api.proxy.transfer import _multipart

    async def collect():
        return b"".join([c async for c in _multipart(body(), spans, "b0", "text/plain", 100)])

    data = asyncio.run(collect())
    assert len(data) == httputil.multipart_length("b0", "text/plain", spans, 100)
    assert b"Content-Range: bytes 10-19/100" in data


def test_slice_stream():
    async def body():
        for piece in (b"abc", b"defg", b"hij"):
            yield piece

    async def collect(a, b):
        return b"".join([c async for c in httputil.slice_stream(body(), a, b)])

    assert asyncio.run(collect(2, 8)) == b"cdefgh"
    assert asyncio.run(collect(0, 10)) == b"abcdefghij"


# --- auth ----------------------------------------------------------------------

def make_tempauth(now=None):
    conf = TempAuthConfig(token_life=60, users={
        "test:tester": TempAuthUser("testing", [".admin"]),
        "test:tester3": TempAuthUser("testing3", []),
        "admin:admin": TempAuthUser("admin", [".admin", ".reseller_admin"]),
    })
    return auth.TempAuth(conf, b"secret", clock=now)


def test_tempauth_tokens():
    ta = make_tempauth()
    token, ident = ta.login("test:tester", "testing")
    assert ident.owned_accounts == {"AUTH_test"}
    again = asyncio.run(ta.verify(token))
    assert again is not None and again.user == "test:tester"
    assert asyncio.run(ta.verify(token[:-1] + ("0" if token[-1] != "0" else "1"))) is None
    assert asyncio.run(ta.verify("AUTH_tkgarbage")) is None
    with pytest.raises(HTTPError) as info:
        ta.login("test:tester", "wrong")
    assert info.value.status == 401
    later = make_tempauth(now=lambda: time.time() + 3600)
    assert asyncio.run(later.verify(token)) is None


def test_authorize_rules():
    ta = make_tempauth()
    _, owner = ta.login("test:tester", "testing")
    _, plain = ta.login("test:tester3", "testing3")
    _, admin = ta.login("admin:admin", "admin")
    auth.authorize(owner, "GET", "AUTH_test", "c", None, None)
    auth.authorize(admin, "PUT", "AUTH_other", "c", None, None)
    assert status_of(auth.authorize, owner, "GET", "AUTH_other", "c", None, None) == 403
    assert status_of(auth.authorize, None, "GET", "AUTH_test", "c", "o", None) == 401
    assert status_of(auth.authorize, plain, "GET", "AUTH_test", "c", "o", None) == 403
    auth.authorize(plain, "GET", "AUTH_test", "c", "o", "test:tester3")
    auth.authorize(None, "GET", "AUTH_test", "c", "o", ".r:*")
    # .r:* alone does not allow listings; .rlistings does.
    assert status_of(auth.authorize, None, "GET", "AUTH_test", "c", None, ".r:*") == 401
    auth.authorize(None, "GET", "AUTH_test", "c", None, ".r:*,.rlistings")
    assert status_of(auth.authorize, None, "GET", "AUTH_test", "c", "o", ".r:-*") == 401


def test_acl_parsing():
    assert auth.parse_acl(".r:*,.rlistings,test:tester") == (["*"], [".rlistings",
                                                                    "test:tester"])
    assert auth.clean_acl(".r:*, test") == ".r:*,test"
    assert status_of(auth.clean_acl, ".bogus") == 400
    assert status_of(auth.clean_acl, ".r:") == 400
    assert auth.referrer_allowed("http://www.example.com/x", [".example.com"])
    assert not auth.referrer_allowed("http://evil.org/", [".example.com"])


# --- tempurl -----------------------------------------------------------------

def test_tempurl_signatures():
    exp = int(time.time()) + 60
    path = "/v1/AUTH_test/c/o"
    for digest in ("sha1", "sha256", "sha512"):
        sig = tempurl.sign("key", "GET", exp, path, digest)
        tu = tempurl.parse_params({"temp_url_sig": sig, "temp_url_expires": str(exp)})
        assert tu is not None
        assert tempurl.verify(tu, "GET", path, ["other", "key"])
        assert tempurl.verify(tu, "HEAD", path, ["key"])
        assert not tempurl.verify(tu, "PUT", path, ["key"])
        assert not tempurl.verify(tu, "GET", path + "x", ["key"])
    with pytest.raises(HTTPError):
        tempurl.parse_params({"temp_url_sig": "x", "temp_url_expires": "1"})


def test_tempurl_prefix():
    exp = int(time.time()) + 60
    sig = tempurl.sign("key", "GET", exp, "prefix:/v1/AUTH_test/c/pre")
    tu = tempurl.parse_params({"temp_url_sig": sig, "temp_url_expires": str(exp),
                               "temp_url_prefix": "pre"})
    assert tu is not None
    assert tempurl.verify(tu, "GET", "/v1/AUTH_test/c/prefix/obj", ["key"])
    assert not tempurl.verify(tu, "GET", "/v1/AUTH_test/c/other", ["key"])


# --- SLO manifests and error mapping -----------------------------------------

def test_manifest_validation():
    items = largeobj.parse_manifest(json.dumps(
        [{"path": "/segs/a", "etag": "abc", "size_bytes": 3}]).encode(), 10)
    assert items[0]["container"] == "segs" and items[0]["obj"] == "a"
    for bad in (b"not json", b"[]", b'[{"nopath": 1}]', b'[{"path": "/onlycontainer"}]',
                b'[{"path": "/c/o", "size_bytes": -1}]'):
        assert status_of(largeobj.parse_manifest, bad, 10) == 400
    too_many = json.dumps([{"path": "/c/o"}] * 11).encode()
    assert status_of(largeobj.parse_manifest, too_many, 10) == 400


def test_error_mapping_is_plain_and_never_a_traceback():
    status, headers, body = error_response(HTTPError(422))
    assert status == 422 and headers["Content-Type"].startswith("text/plain")
    status, _, body = error_response(RuntimeError("boom"))
    assert status == 500 and b"boom" not in body and b"Traceback" not in body
    assert error_response(TimeoutError())[0] == 504


# --- request bodies ------------------------------------------------------------

def _body(events, length=None, limit=None):
    from nubis.api.proxy.context import Body

    it = iter(events)

    async def receive():
        return next(it)

    return Body(None, receive, length, timeout=5, limit=limit)


def test_body_detects_disconnect_and_short_bodies():
    from nubis.api.proxy.errors import ClientDisconnectError

    ok = _body([{"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"c"}], length=3)
    assert asyncio.run(ok.read_all(10)) == b"abc"
    cut = _body([{"type": "http.request", "body": b"ab", "more_body": True},
                 {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnectError):
        asyncio.run(cut.read_all(10))
    short = _body([{"type": "http.request", "body": b"ab"}], length=5)
    with pytest.raises(ClientDisconnectError):
        asyncio.run(short.read_all(10))
    big = _body([{"type": "http.request", "body": b"x" * 10, "more_body": True}], limit=5)
    with pytest.raises(HTTPError) as info:
        asyncio.run(big.read_chunk())
    assert info.value.status == 413
