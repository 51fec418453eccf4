"""Swift's ``allow_open_expired``: reaching expired, not yet deleted objects.

The session cloud runs with the option off (the default). A second cloud turns it
on and runs no object expirer of its own, so an expired object stays until a test
runs the expirer (:func:`expirer_pass`). Objects expire 2-4 s after their PUT; the
tests poll for that with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator

import pytest
from swiftclient import client as sc

from tests.functional.proxy.cloud import Cloud, eventually, expirer_pass, start_cloud
from tests.functional.proxy.test_core import _assert, conn_for, raw, status_of

pytestmark = pytest.mark.functional

#: The header values the tests send for "open it" and "do not".
TRUE_VALUES = ("true", "True", "yes", "1")
FALSE_VALUES = ("false", "no", "")


@pytest.fixture(scope="module")
def open_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("nubis-open-expired"),
                    section_lines={"proxy": "allow_open_expired = true"},
                    extra_config="\n[object_expirer]\nenabled = false\n")
    try:
        yield c
    finally:
        c.down()


Request = Callable[..., tuple[int, dict[str, str], bytes]]


def expiring_object(cloud: Cloud, body: bytes = b"expiring body",
                    after: int = 2) -> tuple[sc.Connection, str, Request, int]:
    """PUT an object expiring in ``after`` s, wait until a plain GET is 404.

    Returns:
        The connection, the container, a raw request of the object (method, extra
        headers, body) and the object's ``X-Delete-At``.
    """
    conn = conn_for(cloud)
    url, token = conn.get_auth()
    container = "oe-" + uuid.uuid4().hex[:8]
    conn.put_container(container)
    delete_at = int(time.time()) + after
    conn.put_object(container, "obj", body, headers={"X-Delete-At": str(delete_at),
                                                     "X-Object-Meta-Test": "before"})
    path = f"{urllib.parse.urlparse(url).path}/{container}/obj"

    def request(method: str, extra: dict[str, str] | None = None,
                data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        return raw(cloud, method, path, {"X-Auth-Token": token, **(extra or {})}, data)

    eventually(lambda: _assert(request("GET")[0] == 404), timeout=after + 15)
    return conn, container, request, delete_at


# --- the option off (the session cloud) ---------------------------------------------

def test_disabled_the_header_changes_nothing(cloud: Cloud) -> None:
    info = json.loads(raw(cloud, "GET", "/info")[2])
    assert info["swift"]["allow_open_expired"] is False
    assert "x-open-expired" in info["tempurl"]["incoming_remove_headers"]
    conn, container, request, _ = expiring_object(cloud)
    for method in ("GET", "HEAD"):
        for value in TRUE_VALUES + FALSE_VALUES:
            assert request(method, {"X-Open-Expired": value})[0] == 404, (method, value)
    later = str(int(time.time()) + 3600)
    for value in ("true", "false"):
        assert request("POST", {"X-Open-Expired": value, "X-Delete-At": later,
                                "X-Object-Meta-Test": "restored!"})[0] == 404
    assert status_of(conn.head_object, container, "obj",
                     headers={"X-Open-Expired": "true"}) == 404


# --- the option on --------------------------------------------------------------------

def test_info_shows_the_option(open_cloud: Cloud) -> None:
    info = json.loads(raw(open_cloud, "GET", "/info")[2])
    assert info["swift"]["allow_open_expired"] is True


def test_get_head_with_the_header_read_an_expired_object(open_cloud: Cloud) -> None:
    conn, container, request, delete_at = expiring_object(open_cloud)
    for value in TRUE_VALUES:
        status, headers, body = request("GET", {"X-Open-Expired": value})
        assert (status, body) == (200, b"expiring body"), value
        assert int(headers["x-delete-at"]) == delete_at <= time.time()
        assert headers["x-object-meta-test"] == "before"
        status, headers, body = request("HEAD", {"X-Open-Expired": value})
        assert (status, body, headers["content-length"]) == (200, b"", "13"), value
    for method in ("GET", "HEAD"):
        assert request(method)[0] == 404
        for value in FALSE_VALUES:
            assert request(method, {"X-Open-Expired": value})[0] == 404, (method, value)
    headers, body = conn.get_object(container, "obj", headers={"X-Open-Expired": "true"})
    assert body == b"expiring body" and headers["x-delete-at"] == str(delete_at)
    status, _, body = request("GET", {"X-Open-Expired": "true", "Range": "bytes=0-7"})
    assert (status, body) == (206, b"expiring")
    # A copy's source read says the header too; the copy would carry the past
    # X-Delete-At (Swift's 400) unless the request gives another or fresh metadata.
    copy = {"Destination": f"{container}/copy"}
    assert request("COPY", copy)[0] == 404
    status, _, body = request("COPY", {**copy, "X-Open-Expired": "true"})
    assert (status, body) == (400, b"X-Delete-At in past")
    later = str(int(time.time()) + 3600)
    assert request("COPY", {**copy, "X-Open-Expired": "true", "X-Delete-At": later})[0] == 201
    headers, body = conn.get_object(container, "copy")
    assert (body, headers["x-delete-at"]) == (b"expiring body", later)
    assert request("COPY", {**copy, "X-Open-Expired": "true",
                            "X-Fresh-Metadata": "true"})[0] == 201
    assert "x-delete-at" not in conn.head_object(container, "copy")


def test_post_with_the_header_restores_an_expired_object(open_cloud: Cloud) -> None:
    conn, container, request, _ = expiring_object(open_cloud)
    later = int(time.time()) + 3600
    post = {"X-Delete-At": str(later), "X-Object-Meta-Test": "restored!"}
    assert request("POST", post)[0] == 404
    for value in FALSE_VALUES:
        assert request("POST", {**post, "X-Open-Expired": value})[0] == 404, value
    assert request("POST", {**post, "X-Open-Expired": "True"})[0] == 202
    headers = conn.head_object(container, "obj")  # a plain HEAD and GET again
    assert headers["x-delete-at"] == str(later)
    assert headers["x-object-meta-test"] == "restored!"
    assert conn.get_object(container, "obj")[1] == b"expiring body"


def test_tempurl_never_opens_an_expired_object(open_cloud: Cloud) -> None:
    conn, container, request, _ = expiring_object(open_cloud)
    key = "oe-" + uuid.uuid4().hex
    conn.post_account({"X-Account-Meta-Temp-URL-Key": key})
    path = urllib.parse.urlparse(conn.get_auth()[0]).path + f"/{container}/obj"
    expires = int(time.time()) + 300
    sig = hmac.new(key.encode(), f"GET\n{expires}\n{path}".encode(),
                   hashlib.sha256).hexdigest()
    status, _, _ = raw(open_cloud, "GET", f"{path}?temp_url_sig={sig}&temp_url_expires="
                       f"{expires}", {"X-Open-Expired": "true"})
    assert status == 404
    assert request("GET", {"X-Open-Expired": "true"})[0] == 200


def test_slo_parts_with_the_header(open_cloud: Cloud) -> None:
    """Swift's test_x_delete_at_with_part_number_and_open_expired: the segments expired too."""
    conn = conn_for(open_cloud)
    url, token = conn.get_auth()
    container = "oe-" + uuid.uuid4().hex[:8]
    conn.put_container(container)
    segments = [b"one", b"two", b"three", b"four"]
    delete_at = int(time.time()) + 4
    expiry = {"X-Delete-At": str(delete_at)}
    for i, data in enumerate(segments):
        conn.put_object(container, f"seg/{i}", data, headers=expiry)
    manifest = [{"path": f"/{container}/seg/{i}", "etag": hashlib.md5(data).hexdigest(),
                 "size_bytes": len(data)} for i, data in enumerate(segments)]
    conn.put_object(container, "manifest", json.dumps(manifest), headers=expiry,
                    query_string="multipart-manifest=put")
    base = f"{urllib.parse.urlparse(url).path}/{container}"

    def request(method: str, name: str, query: str = "",
                extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return raw(open_cloud, method, f"{base}/{name}{query}",
                   {"X-Auth-Token": token, **(extra or {})})

    def expired() -> None:
        try:
            _assert(request("GET", "manifest")[0] == 404 and request("GET", "seg/3")[0] == 404)
        except http.client.IncompleteRead:  # a segment expired while the manifest was read
            raise AssertionError("cut while its segments expired") from None

    eventually(expired, timeout=20)
    opened = {"X-Open-Expired": "true"}
    status, _, body = request("GET", "manifest", "?multipart-manifest=get", opened)
    assert status == 200 and len(json.loads(body)) == 4
    for n, data in enumerate(segments, 1):
        status, headers, body = request("GET", "manifest", f"?part-number={n}", opened)
        assert (status, body, headers["x-parts-count"]) == (206, data, "4"), n
        status, headers, _ = request("HEAD", "manifest", f"?part-number={n}", opened)
        assert (status, headers["content-length"]) == (206, str(len(data))), n
        for method in ("GET", "HEAD"):
            assert request(method, "manifest", f"?part-number={n}")[0] == 404
    status, _, body = request("GET", "manifest", "", opened)
    assert (status, body) == (200, b"".join(segments))
    assert request("HEAD", "manifest", "", opened)[0] == 200
    assert request("HEAD", "manifest")[0] == 404


def test_the_expirer_still_reaps_them(open_cloud: Cloud) -> None:
    conn, container, request, _ = expiring_object(open_cloud)
    opened = {"X-Open-Expired": "true"}
    assert request("GET", opened)[0] == 200
    expirer_pass(open_cloud)
    for method in ("GET", "HEAD"):
        assert request(method, opened)[0] == 404
    later = str(int(time.time()) + 3600)
    assert request("POST", {**opened, "X-Delete-At": later})[0] == 404
    eventually(lambda: _assert(conn.get_container(container)[1] == []))  # listing updated
