"""FormPOST and etag-quoter on nubis: browser forms (requests' multipart) and swiftclient."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
import uuid

import pytest
import requests
from swiftclient import client as sc

from tests.functional.proxy.cloud import Cloud
from tests.functional.proxy.test_core import conn_for, raw, status_of

pytestmark = pytest.mark.functional

KEY = "form-key"


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    return conn_for(cloud)


@pytest.fixture
def box(conn: sc.Connection) -> str:
    """A container with its own Temp-URL key (the form signer)."""
    name = "form-" + uuid.uuid4().hex[:8]
    conn.put_container(name, {"X-Container-Meta-Temp-URL-Key": KEY})
    return name


def _path(conn: sc.Connection, container: str, prefix: str = "") -> str:
    base = urllib.parse.urlparse(conn.get_auth()[0]).path
    return f"{base}/{container}" + (f"/{prefix}" if prefix else "")


def _fields(path: str, key: str = KEY, redirect: str = "", max_size: int = 1024,
            max_count: int = 3, expires: int | None = None,
            digest: str = "sha256") -> dict[str, str]:
    expires = int(time.time()) + 300 if expires is None else expires
    msg = f"{path}\n{redirect}\n{max_size}\n{max_count}\n{expires}".encode()
    sig = hmac.new(key.encode(), msg, digest).hexdigest()
    out = {"max_file_size": str(max_size), "max_file_count": str(max_count),
           "expires": str(expires), "signature": sig}
    if redirect:
        out["redirect"] = redirect
    return out


def _post(cloud: Cloud, path: str, fields: dict[str, str],
          files: list[tuple[str, bytes]], **file_opts: str) -> requests.Response:
    """POST a browser-style form (fields first, then the files)."""
    parts: list[tuple[str, tuple[str | None, bytes | str] | tuple[str, bytes, str]]] = [
        (k, (None, v)) for k, v in fields.items()]
    for i, (name, data) in enumerate(files):
        ctype = file_opts.get("content_type")
        parts.append((f"file{i}", (name, data, ctype) if ctype else (name, data)))
    return requests.post(f"http://127.0.0.1:{cloud.config.proxy.port}{path}", files=parts,
                         allow_redirects=False, timeout=30)


def test_info_announces_formpost_ratelimit_etag_quoter(conn: sc.Connection) -> None:
    info = conn.get_capabilities()
    assert info["formpost"]["allowed_digests"] == ["sha1", "sha256", "sha512"]
    assert info["etag_quoter"] == {"enable_by_default": False}
    assert info["ratelimit"]["max_sleep_time_seconds"] == 60.0


def test_formpost_uploads_under_the_signed_prefix(cloud: Cloud, conn: sc.Connection,
                                                 box: str) -> None:
    path = _path(conn, box, "up/")
    resp = _post(cloud, path, _fields(path), [("a.txt", b"alpha"), ("b.bin", b"bravo!")],
                 content_type="text/plain")
    assert (resp.status_code, resp.text) == (201, "201 Created")
    headers, body = conn.get_object(box, "up/a.txt")
    assert body == b"alpha" and headers["content-type"] == "text/plain"
    assert conn.get_object(box, "up/b.bin")[1] == b"bravo!"
    # Filenames are names, never paths: "../x" stays under the signed prefix.
    resp = _post(cloud, path, _fields(path), [("../../escape", b"e")])
    assert resp.status_code == 201
    names = [o["name"] for o in conn.get_container(box)[1]]
    assert "up/../../escape" in names and all(n.startswith("up/") for n in names)
    token = conn.get_auth()[1]  # http.client keeps the dots (requests would resolve them)
    assert raw(cloud, "GET", f"{path}../../escape", {"X-Auth-Token": token})[2] == b"e"


def test_formpost_redirect_and_account_key(cloud: Cloud) -> None:
    conn = conn_for(cloud, "test2:tester2")
    conn.post_account({"X-Account-Meta-Temp-URL-Key-2": "acct-form-key"})
    box = "form-" + uuid.uuid4().hex[:8]
    conn.put_container(box)
    path = _path(conn, box)  # the container root: files keep their names
    fields = _fields(path, key="acct-form-key", redirect="https://example.test/done?x=1",
                     digest="sha512")
    resp = _post(cloud, path, {**fields, "x_delete_after": "600"}, [("r.txt", b"redir")])
    assert resp.status_code == 303
    assert resp.headers["location"] == "https://example.test/done?x=1&status=201&message="
    headers, body = conn.get_object(box, "r.txt")
    assert body == b"redir" and "x-delete-at" in headers
    # A base64 signature (<digest>:<urlsafe b64>) signs the same way.
    plain = _fields(path, key="acct-form-key", digest="sha1")
    raw_sig = bytes.fromhex(plain["signature"])
    plain["signature"] = "sha1:" + base64.urlsafe_b64encode(raw_sig).decode().rstrip("=")
    assert _post(cloud, path, plain, [("b64.txt", b"x")]).status_code == 201


def test_formpost_limits(cloud: Cloud, conn: sc.Connection, box: str) -> None:
    path = _path(conn, box, "lim-")
    # Larger than max_file_size: 400 and nothing stored.
    resp = _post(cloud, path, _fields(path, max_size=10), [("big", b"x" * 11)])
    assert resp.status_code == 400 and "max_file_size exceeded" in resp.text
    assert status_of(conn.head_object, box, "lim-big") == 404
    # More files than max_file_count: the extra one is not stored.
    resp = _post(cloud, path, _fields(path, max_count=1), [("one", b"1"), ("two", b"2")])
    assert resp.status_code == 400
    assert resp.text == "400 Bad Request\r\nFormPost: Max File Count Exceeded"
    assert conn.get_object(box, "lim-one")[1] == b"1"
    assert status_of(conn.head_object, box, "lim-two") == 404
    # Expired forms, bad signatures and a wrong path are 401.
    resp = _post(cloud, path, _fields(path, expires=int(time.time()) - 1), [("e", b"e")])
    assert (resp.status_code, resp.text) == (401, "FormPost: Form Expired")
    resp = _post(cloud, path, _fields(path, key="wrong"), [("s", b"s")])
    assert (resp.status_code, resp.text) == (401, "FormPost: Invalid Signature")
    other = _path(conn, box, "elsewhere-")
    resp = _post(cloud, other, _fields(path), [("p", b"p")])
    assert resp.status_code == 401
    assert status_of(conn.head_object, box, "elsewhere-p") == 404
    # No file at all, a non-integer limit, a bad first boundary.
    assert _post(cloud, path, _fields(path), []).text == \
        "400 Bad Request\r\nFormPost: No Files To Process"
    resp = _post(cloud, path, {**_fields(path), "max_file_size": "big"}, [("n", b"n")])
    assert (resp.status_code, resp.text) == (400, "FormPost: max_file_size not an integer")
    status, _, body = raw(cloud, "POST", path,
                          {"Content-Type": "multipart/form-data; boundary=XX"}, b"--YY\r\n")
    assert (status, body) == (400, b"FormPost: invalid starting boundary")


def test_etag_quoter_by_account_and_container(conn: sc.Connection, box: str) -> None:
    conn.put_object(box, "o", b"test")
    bare = hashlib.md5(b"test").hexdigest()
    assert conn.head_object(box, "o")["etag"] == bare
    conn.post_container(box, {"X-Container-Rfc-Compliant-Etags": "yes"})
    assert conn.head_container(box)["x-container-rfc-compliant-etags"] == "True"
    assert conn.head_object(box, "o")["etag"] == f'"{bare}"'
    assert conn.get_object(box, "o")[0]["etag"] == f'"{bare}"'
    conn.post_container(box, {"X-Container-Rfc-Compliant-Etags": "false"})
    conn.post_account({"X-Account-Rfc-Compliant-Etags": "true"})
    try:
        assert conn.head_object(box, "o")["etag"] == bare  # the container's "false" wins
        conn.post_container(box, {"X-Remove-Container-Rfc-Compliant-Etags": "x"})
        assert "x-container-rfc-compliant-etags" not in conn.head_container(box)
        assert conn.head_object(box, "o")["etag"] == f'"{bare}"'
    finally:
        conn.post_account({"X-Account-Rfc-Compliant-Etags": ""})
    assert conn.head_object(box, "o")["etag"] == bare


def test_formpost_streams_large_files(cloud: Cloud, conn: sc.Connection, box: str) -> None:
    path = _path(conn, box, "big/")
    data = bytes(range(256)) * (3 * 4096 + 17)  # ~3 MiB: many reads, the streamed PUT path
    resp = _post(cloud, path, _fields(path, max_size=len(data)), [("blob", data)])
    assert resp.status_code == 201
    headers, body = conn.get_object(box, "big/blob")
    assert body == data and headers["etag"] == hashlib.md5(data).hexdigest()
    resp = _post(cloud, path, _fields(path, max_size=len(data) - 1), [("blob2", data)])
    assert resp.status_code == 400
    assert status_of(conn.head_object, box, "big/blob2") == 404
