"""The Swift v1 API through python-swiftclient against a real all-in-one cloud."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.parse
import uuid

import pytest
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually

pytestmark = pytest.mark.functional


def conn_for(cloud: Cloud, user: str = "test:tester") -> sc.Connection:
    return sc.Connection(authurl=cloud.auth_url, user=user,
                         key=cloud.config.tempauth.users[user].key, retries=0)


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    return conn_for(cloud)


@pytest.fixture
def container(conn: sc.Connection) -> str:
    name = "c-" + uuid.uuid4().hex[:8]
    conn.put_container(name)
    return name


def raw(cloud: Cloud, method: str, path: str, headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", cloud.config.proxy.port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def _assert(cond: bool) -> None:
    assert cond


def status_of(fn, *args, **kwargs) -> int:
    with pytest.raises(ClientException) as info:
        fn(*args, **kwargs)
    return int(info.value.http_status)


# --- auth, info, health ------------------------------------------------------------

def test_auth_and_account_stat(cloud: Cloud, conn: sc.Connection) -> None:
    url, token = conn.get_auth()
    assert url.endswith("/v1/AUTH_test") and token.startswith("AUTH_tk")
    headers = conn.head_account()
    assert "x-account-container-count" in headers


def test_bad_credentials_and_tokens(cloud: Cloud) -> None:
    status, _, body = raw(cloud, "GET", "/auth/v1.0",
                          {"X-Auth-User": "test:tester", "X-Auth-Key": "wrong"})
    assert status == 401 and body
    status, headers, body = raw(cloud, "GET", "/v1/AUTH_test",
                                {"X-Auth-Token": "AUTH_tkbogus.0000"})
    assert status == 401 and headers["content-type"].startswith("text/plain")
    assert raw(cloud, "GET", "/v1/AUTH_test")[0] == 401


def test_info_and_healthcheck(cloud: Cloud) -> None:
    status, _, body = raw(cloud, "GET", "/info")
    assert status == 200
    info = json.loads(body)
    assert info["swift"]["max_object_name_length"] == 1024
    assert info["swift"]["container_listing_limit"] == 10000
    assert "slo" in info and "tempurl" in info
    assert raw(cloud, "GET", "/healthcheck")[:3:2] == (200, b"OK")
    # Swift's InfoController answers OPTIONS to anyone (its RBAC functional test).
    status, headers, body = raw(cloud, "OPTIONS", "/info")
    assert (status, headers["allow"], body) == (200, "HEAD, GET, OPTIONS", b"")
    assert raw(cloud, "POST", "/info", {}, b"")[1]["allow"] == "HEAD, GET, OPTIONS"


# --- containers --------------------------------------------------------------------

def test_container_lifecycle(conn: sc.Connection) -> None:
    name = "life-" + uuid.uuid4().hex[:6]
    conn.put_container(name, headers={"X-Container-Meta-Color": "blue"})
    assert conn.head_container(name)["x-container-meta-color"] == "blue"
    conn.post_container(name, {"X-Container-Meta-Color": "red"})
    assert conn.head_container(name)["x-container-meta-color"] == "red"
    eventually(lambda: _assert(name in [c["name"] for c in conn.get_account()[1]]))
    conn.put_object(name, "o", b"x")
    eventually(lambda: _assert(conn.head_container(name)["x-container-object-count"] == "1"))
    assert status_of(conn.delete_container, name) == 409
    conn.delete_object(name, "o")
    eventually(lambda: _assert(conn.head_container(name)["x-container-object-count"] == "0"))
    conn.delete_container(name)
    assert status_of(conn.head_container, name) == 404


def test_listing_parameters(conn: sc.Connection, container: str) -> None:
    for n in ("a/1", "a/2", "b/1", "c"):
        conn.put_object(container, n, n.encode())
    eventually(lambda: _assert(len(conn.get_container(container)[1]) == 4))
    _, objs = conn.get_container(container, prefix="a/")
    assert [o["name"] for o in objs] == ["a/1", "a/2"]
    _, objs = conn.get_container(container, delimiter="/")
    assert [o.get("name") or o.get("subdir") for o in objs] == ["a/", "b/", "c"]
    _, objs = conn.get_container(container, marker="a/2", limit=1)
    assert [o["name"] for o in objs] == ["b/1"]
    _, objs = conn.get_container(container, end_marker="b")
    assert [o["name"] for o in objs] == ["a/1", "a/2"]
    assert objs[0]["bytes"] == 3
    assert objs[0]["hash"] == hashlib.md5(b"a/1").hexdigest()
    headers = conn.head_container(container)
    assert headers["x-container-object-count"] == "4"


def test_listing_limit_too_big(cloud: Cloud, conn: sc.Connection, container: str) -> None:
    url, token = conn.get_auth()
    path = urllib.parse.urlparse(url).path + f"/{container}?limit=10001"
    assert raw(cloud, "GET", path, {"X-Auth-Token": token})[0] == 412


# --- objects -------------------------------------------------------------------------

def test_object_roundtrip_with_metadata(conn: sc.Connection, container: str) -> None:
    data = b"hello world" * 100
    etag = conn.put_object(container, "doc.txt", data, headers={
        "X-Object-Meta-Owner": "me", "Content-Disposition": 'attachment; filename="d.txt"',
        "Content-Encoding": "identity"})
    assert etag == hashlib.md5(data).hexdigest()
    headers, body = conn.get_object(container, "doc.txt")
    assert body == data
    assert headers["x-object-meta-owner"] == "me"
    assert headers["content-type"].startswith("text/plain")
    assert headers["content-disposition"] == 'attachment; filename="d.txt"'
    assert headers["content-encoding"] == "identity"
    assert headers["etag"] == etag
    assert int(headers["content-length"]) == len(data)
    conn.post_object(container, "doc.txt", {"X-Object-Meta-Other": "x"})
    headers = conn.head_object(container, "doc.txt")
    assert headers["x-object-meta-other"] == "x" and "x-object-meta-owner" not in headers
    conn.delete_object(container, "doc.txt")
    assert status_of(conn.get_object, container, "doc.txt") == 404
    assert status_of(conn.delete_object, container, "doc.txt") == 404


def test_chunked_upload(conn: sc.Connection, container: str) -> None:
    pieces = [bytes([i]) * 70000 for i in range(5)]
    conn.put_object(container, "chunked", iter(pieces), chunk_size=70000)
    _, body = conn.get_object(container, "chunked")
    assert body == b"".join(pieces)


def test_large_streamed_object(conn: sc.Connection, container: str) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: the largest buffered body
    etag = conn.put_object(container, "big", data)
    assert etag == hashlib.md5(data).hexdigest()
    assert conn.get_object(container, "big")[1] == data
    # past 2 MiB the body streams; the proxy hashes it once and vouches for the MD5
    streamed = os.urandom(3 * 1024 * 1024 + 17)
    md5 = hashlib.md5(streamed).hexdigest()
    assert conn.put_object(container, "streamed", streamed) == md5
    assert conn.put_object(container, "streamed-etag", streamed, etag=md5) == md5
    pieces = [streamed[i:i + 300_000] for i in range(0, len(streamed), 300_000)]
    assert conn.put_object(container, "streamed-chunked", iter(pieces)) == md5
    for name in ("streamed", "streamed-etag", "streamed-chunked"):
        headers, body = conn.get_object(container, name)
        assert body == streamed and headers["etag"] == md5


def test_etag_mismatch_is_422(conn: sc.Connection, container: str) -> None:
    assert status_of(conn.put_object, container, "bad", b"abc", etag="0" * 32) == 422
    big = b"z" * (512 * 1024)
    assert status_of(conn.put_object, container, "bad-big", big, etag="0" * 32) == 422
    assert status_of(conn.head_object, container, "bad") == 404
    assert status_of(conn.head_object, container, "bad-big") == 404
    streamed = b"s" * (3 * 1024 * 1024)  # past 2 MiB: the streamed path
    assert status_of(conn.put_object, container, "bad-streamed", streamed,
                     etag="0" * 32) == 422
    assert status_of(conn.head_object, container, "bad-streamed") == 404


def test_ranges(cloud: Cloud, conn: sc.Connection, container: str) -> None:
    data = bytes(range(100))
    conn.put_object(container, "r", data)
    headers, body = conn.get_object(container, "r", headers={"Range": "bytes=10-19"})
    assert body == data[10:20] and headers["content-range"] == "bytes 10-19/100"
    _, body = conn.get_object(container, "r", headers={"Range": "bytes=-5"})
    assert body == data[-5:]
    headers, body = conn.get_object(container, "r", headers={"Range": "bytes=0-1,50-51"})
    assert headers["content-type"].startswith("multipart/byteranges")
    assert data[0:2] in body and data[50:52] in body
    assert status_of(conn.get_object, container, "r",
                     headers={"Range": "bytes=200-300"}) == 416


def test_ranges_deep_into_large_objects(conn: sc.Connection, container: str) -> None:
    """A replica opened at its range (and each SLO segment at its part) reads exact bytes.

    Single, open-ended, suffix (reopened past 1 MiB), several ranges, past the
    end (416 with the ETag), a conditional with a range, a symlink and an SLO
    whose ranges start inside segments.
    """
    mib = 1 << 20
    data = bytes(range(256)) * (3 * mib // 256) + b"tail"
    n = len(data)
    etag = conn.put_object(container, "deep", data)
    for spec, want in ((f"{2 * mib + 7}-{2 * mib + 17}", data[2 * mib + 7:2 * mib + 18]),
                       (f"{mib}-", data[mib:]), ("-4", b"tail"), (f"-{n - 5}", data[5:]),
                       (f"-{2 * mib}", data[-2 * mib:]), (f"{n - 1}-{n + 50}", data[-1:])):
        headers, body = conn.get_object(container, "deep", headers={"Range": f"bytes={spec}"})
        assert body == want, spec
        assert headers["content-range"].endswith(f"/{n}") and headers["etag"] == etag, spec
    headers, body = conn.get_object(
        container, "deep", headers={"Range": f"bytes={mib}-{mib + 1},{2 * mib}-{2 * mib + 2}"})
    assert headers["content-type"].startswith("multipart/byteranges")
    assert data[mib:mib + 2] in body and data[2 * mib:2 * mib + 3] in body
    with pytest.raises(ClientException) as past:
        conn.get_object(container, "deep", headers={"Range": f"bytes={n}-"})
    assert past.value.http_status == 416 and past.value.http_response_headers["etag"] == etag
    assert status_of(conn.get_object, container, "deep",
                     headers={"Range": f"bytes={mib}-", "If-Match": '"nope"'}) == 412
    conn.put_object(container, "deep-link", b"",
                    headers={"X-Symlink-Target": f"{container}/deep"})
    assert conn.get_object(container, "deep-link", headers={"Range": f"bytes={2 * mib}-"})[
        1] == data[2 * mib:]
    manifest = json.dumps([{"path": f"/{container}/deep"},
                           {"path": f"/{container}/deep", "range": f"{mib}-{2 * mib - 1}"}])
    conn.put_object(container, "deep-slo", manifest, query_string="multipart-manifest=put")
    whole = data + data[mib:2 * mib]
    for start, stop in ((mib + 3, mib + 9), (n - 2, n + 5), (n + 10, n + mib), (5, len(whole))):
        got = conn.get_object(container, "deep-slo",
                              headers={"Range": f"bytes={start}-{stop - 1}"})[1]
        assert got == whole[start:stop], (start, stop)
    # Each link hop is opened at the range (its 0 bytes answer 416, read as the whole
    # link); a manifest at the end is then read whole, a plain object at the range.
    conn.put_object(container, "slo-link", b"",
                    headers={"X-Symlink-Target": f"{container}/deep-slo"})
    conn.put_object(container, "link-link", b"",
                    headers={"X-Symlink-Target": f"{container}/deep-link"})
    for name, want in (("slo-link", whole), ("link-link", data)):
        got = conn.get_object(container, name, headers={"Range": f"bytes={mib + 3}-{mib + 9}"})
        assert got[1] == want[mib + 3:mib + 10], name
    assert status_of(conn.get_object, container, "link-link",
                     headers={"Range": f"bytes={n}-"}) == 416
    assert status_of(conn.get_object, container, "deep-link", query_string="symlink=get",
                     headers={"Range": "bytes=5-"}) == 416
    conn.put_object(container, "empty", b"")
    assert status_of(conn.get_object, container, "empty", headers={"Range": "bytes=5-"}) == 416


def test_conditional_requests(conn: sc.Connection, container: str) -> None:
    etag = conn.put_object(container, "cond", b"data")
    assert status_of(conn.get_object, container, "cond",
                     headers={"If-Match": '"nope"'}) == 412
    headers, _ = conn.get_object(container, "cond", headers={"If-Match": etag})
    assert headers["etag"] == etag
    with pytest.raises(ClientException) as info:
        conn.get_object(container, "cond", headers={"If-None-Match": etag})
    assert info.value.http_status == 304
    lm = conn.head_object(container, "cond")["last-modified"]
    with pytest.raises(ClientException) as info:
        conn.get_object(container, "cond", headers={"If-Modified-Since": lm})
    assert info.value.http_status == 304
    assert status_of(conn.put_object, container, "cond", b"new",
                     headers={"If-None-Match": "*"}) == 412
    conn.put_object(container, "fresh", b"new", headers={"If-None-Match": "*"})


def test_delete_after_sets_delete_at(conn: sc.Connection, container: str) -> None:
    conn.put_object(container, "temp", b"x", headers={"X-Delete-After": "3600"})
    assert int(conn.head_object(container, "temp")["x-delete-at"]) > 0
    assert status_of(conn.put_object, container, "past", b"x",
                     headers={"X-Delete-At": "1"}) == 400


def test_copy(conn: sc.Connection, container: str) -> None:
    conn.put_object(container, "src", b"copy me", headers={"X-Object-Meta-A": "1"})
    conn.put_object(container, "dst", b"", headers={"X-Copy-From": f"{container}/src"})
    headers, body = conn.get_object(container, "dst")
    assert body == b"copy me" and headers["x-object-meta-a"] == "1"
    conn.copy_object(container, "src", f"/{container}/dst2",
                     headers={"X-Object-Meta-B": "2"})
    headers, body = conn.get_object(container, "dst2")
    assert body == b"copy me" and headers["x-object-meta-b"] == "2"
    assert status_of(conn.put_object, container, "dst3", b"",
                     headers={"X-Copy-From": f"{container}/missing"}) == 404


# --- bad input ---------------------------------------------------------------------

def test_bad_names_and_metadata(cloud: Cloud, conn: sc.Connection, container: str) -> None:
    assert status_of(conn.put_object, container, "o" * 1025, b"x") == 400
    assert status_of(conn.put_container, "c" * 257) == 400
    assert status_of(conn.put_object, container, "m", b"x",
                     headers={"X-Object-Meta-" + "n" * 129: "v"}) == 400
    assert status_of(conn.put_object, container, "m", b"x",
                     headers={"X-Object-Meta-K": "v" * 257}) == 400
    many = {f"X-Object-Meta-K{i}": "v" for i in range(91)}
    assert status_of(conn.put_object, container, "m", b"x", headers=many) == 400
    assert status_of(conn.put_container, container + "-x",
                     headers={"X-Container-Meta-K": "v" * 257}) == 400
    assert status_of(conn.put_object, "no-such-container", "o", b"x") == 404
    url, token = conn.get_auth()
    base = urllib.parse.urlparse(url).path
    status, headers, body = raw(cloud, "PUT", f"{base}/{container}/nolen",
                                {"X-Auth-Token": token, "Content-Length": "abc"})
    assert status == 400 and body
    status, headers, body = raw(cloud, "GET", f"{base}/{container}/%FF",
                                {"X-Auth-Token": token})
    assert status == 412 and headers["content-type"].startswith("text/plain")
    assert raw(cloud, "PATCH", f"{base}/{container}/o", {"X-Auth-Token": token})[0] == 405


def test_other_accounts_are_forbidden(cloud: Cloud, conn: sc.Connection,
                                      container: str) -> None:
    conn.put_object(container, "secret", b"s")
    other = conn_for(cloud, "test2:tester2")
    url = conn.get_auth()[0]
    token2 = other.get_auth()[1]
    with pytest.raises(ClientException) as info:
        sc.get_object(url, token2, container, "secret")
    assert info.value.http_status == 403
    with pytest.raises(ClientException) as info:
        sc.get_container(url, token2, container)
    assert info.value.http_status == 403
    with pytest.raises(ClientException) as info:
        sc.put_container(url, token2, "intruder")
    assert info.value.http_status == 403


def test_odd_requests_never_500(cloud: Cloud, conn: sc.Connection, container: str) -> None:
    url, token = conn.get_auth()
    base = urllib.parse.urlparse(url).path
    auth = {"X-Auth-Token": token}
    conn.put_object(container, "x", b"data")
    cases: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
        ("GET", "/v1", auth, None, 412),  # Swift: "Bad URL"
        ("GET", "/v1/", auth, None, 404),
        ("GET", "/nothing/here", auth, None, 404),
        ("GET", f"{base}//obj", auth, None, 404),  # as Swift
        ("PUT", f"{base}/{container}/y", {**auth, "If-None-Match": "x"}, b"", 400),
        ("GET", f"{base}/{container}/a%00b", auth, None, 412),
        ("GET", f"{base}/{container}?limit=abc", auth, None, 200),  # ignored, as Swift
        ("GET", f"{base}/{container}?prefix=%FF", auth, None, 400),
        ("COPY", f"{base}/{container}/x", auth, None, 412),
        ("PUT", f"{base}/{container}/y", {**auth, "X-Copy-From": "nocontainer"}, b"", 412),
        ("PUT", f"{base}/{container}/y", {**auth, "X-Delete-After": "soon"}, b"", 400),
        ("PUT", f"{base}/{container}/y", {**auth, "Transfer-Encoding": "gzip"}, None, 400),
        ("POST", f"{base}/{container}/missing", auth, b"", 404),
        ("GET", f"{base}/no-such-container/x", auth, None, 404),
        ("DELETE", f"{base}/no-such-container", auth, None, 404),
        ("PUT", base, auth, b"", 405),
        ("DELETE", base, auth, None, 405),
        ("GET", f"{base}/{container}/x", {**auth, "Range": "bytes=5-1"}, None, 200),
        ("GET", f"{base}/{container}/x", {**auth, "Range": "bytes=4-"}, None, 416),
        ("HEAD", f"{base}/{container}/x", {**auth, "Range": "bytes=0-1"}, None, 200),
        ("PUT", f"{base}/{container}", {**auth, "X-Storage-Policy": "gold"}, b"", 400),
        ("GET", f"{base}/{container}/x?temp_url_sig=abc&temp_url_expires=1", {}, None, 401),
        ("GET", "/auth/v1.0", {"X-Auth-User": "nobody:x", "X-Auth-Key": "k"}, None, 401),
        ("GET", "/auth/v1.0", {}, None, 401),
        ("POST", "/info", {}, b"", 405),
    ]
    for method, path, headers, body, want in cases:
        status, rheaders, rbody = raw(cloud, method, path, headers, body)
        assert status == want, (method, path, status, rbody)
        if status >= 400 and method != "HEAD":
            assert rheaders["content-type"].startswith("text/plain"), (method, path)
            assert b"Traceback" not in rbody and rbody.strip()


def test_head_and_unicode_names(conn: sc.Connection, container: str) -> None:
    name = "dir/ünï cödé ?#%.txt"
    conn.put_object(container, name, b"unicode")
    headers = conn.head_object(container, name)
    assert headers["content-length"] == "7"
    assert conn.get_object(container, name)[1] == b"unicode"
    eventually(lambda: _assert(name in [o["name"] for o in conn.get_container(container)[1]]))
    cname = "çöntainer-" + uuid.uuid4().hex[:4]
    conn.put_container(cname)
    conn.put_object(cname, "trailing/", b"")
    assert conn.get_object(cname, "trailing/")[1] == b""


def test_account_listing_formats(cloud: Cloud, conn: sc.Connection, container: str) -> None:
    url, token = conn.get_auth()
    base = urllib.parse.urlparse(url).path
    eventually(lambda: _assert(container.encode() in raw(
        cloud, "GET", base, {"X-Auth-Token": token})[2]))
    status, headers, body = raw(cloud, "GET", f"{base}?format=json",
                                {"X-Auth-Token": token})
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert container in [c["name"] for c in json.loads(body)]
    status, headers, body = raw(cloud, "GET", f"{base}?format=xml", {"X-Auth-Token": token})
    assert status == 200 and b"<account" in body
    headers = conn.head_container(container)
    assert headers["x-storage-policy"] == "rep3"
