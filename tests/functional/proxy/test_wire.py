"""Wire-level Swift behaviour on both front ends: header name case, transfer codings.

Hand-written HTTP on purpose: clients (python-swiftclient, http.client's
parsing) hide both the case of response header names and how a server frames
a body with an odd ``Transfer-Encoding``.
"""

from __future__ import annotations

import http.client
import socket
import urllib.parse
import uuid

import pytest
from swiftclient import client as sc

from tests.functional.proxy.cloud import Cloud

pytestmark = pytest.mark.functional


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    user = "test:tester"
    return sc.Connection(authurl=cloud.auth_url, user=user,
                         key=cloud.config.tempauth.users[user].key, retries=0)


@pytest.fixture
def target(conn: sc.Connection) -> tuple[str, str]:
    """Return ``(container path, token)`` of a fresh container."""
    url, token = conn.get_auth()
    name = "wire-" + uuid.uuid4().hex[:8]
    conn.put_container(name)
    return f"{urllib.parse.urlparse(url).path}/{name}", token


def _request(cloud: Cloud, method: str, path: str,
             headers: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    c = http.client.HTTPConnection("127.0.0.1", cloud.config.proxy.port, timeout=30)
    try:
        c.request(method, path, body=b"" if method in ("PUT", "POST") else None,
                  headers=headers)
        r = c.getresponse()
        r.read()
        return r.status, r.getheaders()
    finally:
        c.close()


def test_metadata_header_names_go_out_in_swifts_case(cloud: Cloud,
                                                     target: tuple[str, str]) -> None:
    """Swift title-cases the names of metadata headers (its ``test_metadata``)."""
    path, token = target
    auth = {"X-Auth-Token": token}
    status, _ = _request(cloud, "PUT", f"{path}/o",
                         {**auth, "x-object-meta-Color": "blUe", "X-Object-Meta-food": "PizZa"})
    assert status == 201
    status, headers = _request(cloud, "GET", f"{path}/o", auth)
    meta = {k: v for k, v in headers if "meta" in k.lower()}
    assert (status, meta) == (200, {"X-Object-Meta-Color": "blUe", "X-Object-Meta-Food": "PizZa"})
    status, _ = _request(cloud, "POST", path, {**auth, "x-container-meta-sHape": "round"})
    assert status == 204
    status, headers = _request(cloud, "HEAD", path, auth)
    meta = {k: v for k, v in headers if "meta" in k.lower()}
    assert (status, meta) == (204, {"X-Container-Meta-Shape": "round"})


def _exchange(cloud: Cloud, head: str, rest: bytes) -> tuple[bytes, bytes]:
    """Send a request head and ``rest``; return the status line and all until EOF."""
    with socket.create_connection(("127.0.0.1", cloud.config.proxy.port), timeout=30) as s:
        s.sendall(head.encode() + b"\r\n" + rest)
        data = b""
        while len(data) < 1 << 20:  # the server closes the connection after its answer
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    line, _, after = data.partition(b"\r\n")
    return line, after


def _put_head(path: str, token: str, coding: str) -> str:
    return (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n"
            f"Content-Type: application/octet-stream\r\nTransfer-Encoding: {coding}\r\n")


@pytest.mark.parametrize(("coding", "status", "text"), [
    ("gzip,chunked", b"501", b"Unsupported Transfer-Coding header value specified in "
                             b"Transfer-Encoding header"),
    ("gzip, chunked", b"501", b"Unsupported Transfer-Coding header value specified in "
                              b"Transfer-Encoding header"),
    ("gzip", b"400", b"Invalid Transfer-Encoding header value"),
])
def test_unsupported_transfer_codings_get_swifts_answer(
        cloud: Cloud, conn: sc.Connection, target: tuple[str, str],
        coding: str, status: bytes, text: bytes) -> None:
    """Swift frames no body for them: 501 for several codings, 400 for another one."""
    path, token = target
    line, rest = _exchange(cloud, _put_head(f"{path}/o", token, coding), bytes(range(100)))
    assert line.split(b" ", 2)[1] == status, (line, rest)
    assert rest.endswith(b"\r\n\r\n" + text)
    assert b"text/plain" in rest.lower()
    assert _request(cloud, "HEAD", f"{path}/o", {"X-Auth-Token": token})[0] == 404


def test_nothing_after_a_refused_coding_is_run(cloud: Cloud, conn: sc.Connection,
                                               target: tuple[str, str]) -> None:
    """A request smuggled after a ``gzip, chunked`` head never runs."""
    path, token = target
    assert _request(cloud, "PUT", f"{path}/keep", {"X-Auth-Token": token})[0] == 201
    smuggled = (f"DELETE {path}/keep HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-Auth-Token: {token}\r\nContent-Length: 0\r\n\r\n").encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(b"hello"), b"hello")
    line, _ = _exchange(cloud, _put_head(f"{path}/o", token, "gzip, chunked"), body + smuggled)
    assert line.split(b" ", 2)[1] == b"501"
    assert _request(cloud, "HEAD", f"{path}/keep", {"X-Auth-Token": token})[0] == 200


def test_unknown_methods_get_405_on_a_kept_connection(cloud: Cloud, conn: sc.Connection,
                                                      target: tuple[str, str]) -> None:
    """Methods llhttp does not know reach the proxy: Swift's 405, even without a token."""
    path, token = target
    account = path.rsplit("/", 1)[0]
    c = http.client.HTTPConnection("127.0.0.1", cloud.config.proxy.port, timeout=30)
    try:
        for method, where, auth, allow in (
                ("LICK", account, {"X-Auth-Token": token}, "GET, HEAD, POST"),
                ("GETorHEAD_base", account, {"X-Auth-Token": token}, "GET, HEAD, POST"),
                ("LICK", f"{path}/o", {}, "GET, HEAD, PUT, POST, DELETE, COPY"),
                ("HEAD", path, {"X-Auth-Token": token}, None)):
            c.request(method, where, headers=auth)
            r = c.getresponse()
            body = r.read()
            if allow is None:  # the connection still serves known methods
                assert r.status == 204
                continue
            assert (r.status, r.getheader("Allow")) == (405, allow), body
            assert b"Method Not Allowed" in body and r.getheader("X-Trans-Id")
    finally:
        c.close()


def test_repeated_request_headers_are_joined(cloud: Cloud) -> None:
    """Swift's WSGI server joins a repeated header: two ``x-amz-date`` are no valid date."""
    head = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\n"
            "x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nx-amz-date: \r\n"
            "X-Amz-Date: 20260101T000000Z\r\n")
    line, rest = _exchange(cloud, head, b"")
    assert line.split(b" ", 2)[1] == b"403", (line, rest)
    assert b"<Code>AccessDenied</Code>" in rest
    assert b"requires a valid Date or x-amz-date header" in rest


def test_empty_listings_announce_a_zero_length(cloud: Cloud, target: tuple[str, str]) -> None:
    """Swift's 204s carry ``Content-Length: 0`` (its ``test_GET_HEAD_content_type``)."""
    path, token = target
    for where in (path, path.rsplit("/", 1)[0]):  # empty container; the account
        for method in ("GET", "HEAD"):
            status, headers = _request(cloud, method, where, {"X-Auth-Token": token})
            lengths = [v for k, v in headers if k.lower() == "content-length"]
            if status == 204:
                assert lengths == ["0"], (method, where, headers)
    status, headers = _request(cloud, "HEAD", path, {"X-Auth-Token": token})
    assert status == 204 and ("Content-Length", "0") in headers


def test_absolute_form_request_lines_name_the_path(cloud: Cloud,
                                                   target: tuple[str, str]) -> None:
    """``PUT http://host:port/v1/...`` is a request for ``/v1/...`` (Swift's presigned tests)."""
    path, token = target
    url = f"http://127.0.0.1:{cloud.config.proxy.port}{path}/abs?x=1"
    head = (f"PUT {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n"
            "Content-Length: 2\r\nConnection: close\r\n")
    line, rest = _exchange(cloud, head, b"hi")
    assert line.split(b" ", 2)[1] == b"201", (line, rest)
    assert _request(cloud, "HEAD", f"{path}/abs", {"X-Auth-Token": token})[0] == 200


def test_a_body_answered_early_is_read_not_reset(cloud: Cloud, target: tuple[str, str]) -> None:
    """A client still sending a body the proxy refused gets the answer, not a reset."""
    path, _ = target
    c = http.client.HTTPConnection("127.0.0.1", cloud.config.proxy.port, timeout=30)
    try:  # 16 MiB with a bad token: refused before the body is read
        c.request("PUT", f"{path}/o", body=b"x" * (16 << 20),
                  headers={"X-Auth-Token": "AUTH_tk-bad"})
        r = c.getresponse()
        r.read()
        assert r.status == 401
    finally:
        c.close()
