"""Cross-account copies and SLO listings, through python-swiftclient."""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually
from tests.functional.proxy.test_core import _assert, conn_for, raw

pytestmark = pytest.mark.functional


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _status(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(ClientException) as info:
        call(*args, **kwargs)
    return int(info.value.http_status or 0)


# --- Destination-Account / X-Copy-From-Account ------------------------------------------

def test_copy_to_another_account_needs_write_access(cloud: Cloud) -> None:
    tester, tester2 = conn_for(cloud), conn_for(cloud, "test2:tester2")
    src, dst = _name("xsrc"), _name("xdst")
    tester.put_container(src)
    tester.put_object(src, "o", b"cross account", headers={"X-Object-Meta-Kind": "x"})
    tester2.put_container(dst)
    # test:tester owns AUTH_test only: no write access to AUTH_test2/dst yet.
    assert _status(tester.copy_object, src, "o", destination=f"/{dst}/o",
                   headers={"Destination-Account": "AUTH_test2"}) == 403
    tester2.post_container(dst, {"X-Container-Write": "test:tester"})
    resp: dict[str, Any] = {}
    tester.copy_object(src, "o", destination=f"/{dst}/o",
                       headers={"Destination-Account": "AUTH_test2"}, response_dict=resp)
    assert resp["status"] == 201
    assert resp["headers"]["x-copied-from-account"] == "AUTH_test"
    assert resp["headers"]["x-copied-from"] == f"{src}/o"
    headers, body = tester2.get_object(dst, "o")
    assert body == b"cross account" and headers["x-object-meta-kind"] == "x"
    # Nothing was written into the caller's own account.
    assert _status(tester.head_object, dst, "o") == 404


def test_copy_from_another_account_needs_read_access(cloud: Cloud) -> None:
    tester, tester2 = conn_for(cloud), conn_for(cloud, "test2:tester2")
    src, dst = _name("ysrc"), _name("ydst")
    tester.put_container(src)
    tester.put_object(src, "o", b"pulled across")
    tester2.put_container(dst)
    pull = {"X-Copy-From": f"{src}/o", "X-Copy-From-Account": "AUTH_test"}
    assert _status(tester2.put_object, dst, "pulled", b"", headers=pull) == 403
    tester.post_container(src, {"X-Container-Read": "test2:tester2"})
    resp: dict[str, Any] = {}
    tester2.put_object(dst, "pulled", b"", headers=pull, response_dict=resp)
    assert resp["headers"]["x-copied-from-account"] == "AUTH_test"
    assert tester2.get_object(dst, "pulled")[1] == b"pulled across"
    # A large object is assembled from the source account's segments.
    _, total = _make_slo(tester, src)
    tester2.put_object(dst, "pulled-slo", b"", headers={
        "X-Copy-From": f"{src}/slo", "X-Copy-From-Account": "AUTH_test"})
    headers, body = tester2.get_object(dst, "pulled-slo")
    assert len(body) == total and body.startswith(b"A" * 1000)
    assert "x-static-large-object" not in headers
    # A source that does not exist in the other account is 404, not a copy of ours.
    tester2.put_container(src)
    tester2.put_object(src, "o", b"decoy")
    assert _status(tester2.put_object, dst, "missing", b"", headers={
        "X-Copy-From": f"{src}/nothing-here", "X-Copy-From-Account": "AUTH_test"}) == 404


def test_anonymous_cross_account_copy_is_401(cloud: Cloud) -> None:
    tester = conn_for(cloud)
    src = _name("zsrc")
    tester.put_container(src, headers={"X-Container-Read": ".r:*"})
    tester.put_object(src, "o", b"public")
    status, _, body = raw(cloud, "COPY", f"/v1/AUTH_test/{src}/o",
                          {"Destination": f"{src}/copy", "Destination-Account": "AUTH_test2"})
    assert status == 401, body


# --- SLO listings -------------------------------------------------------------------------

def _make_slo(conn: sc.Connection, container: str, name: str = "slo") -> tuple[str, int]:
    segs = [bytes([65 + i]) * (1000 + i) for i in range(3)]
    manifest = []
    for i, data in enumerate(segs):
        etag = conn.put_object(container, f"seg/{i}", data)
        manifest.append({"path": f"/{container}/seg/{i}", "etag": etag,
                         "size_bytes": len(data)})
    conn.put_object(container, name, json.dumps(manifest),
                    query_string="multipart-manifest=put")
    return conn.head_object(container, name)["etag"], sum(len(s) for s in segs)


def _listed(conn: sc.Connection, container: str, name: str) -> dict[str, Any]:
    def find() -> dict[str, Any]:
        items = {o["name"]: o for o in conn.get_container(container)[1]}
        _assert(name in items)
        return items[name]
    return eventually(find)  # type: ignore[no-any-return]


def test_slo_listing_shows_total_size_and_slo_etag(cloud: Cloud) -> None:
    conn = conn_for(cloud)
    container = _name("slo-list")
    conn.put_container(container)
    slo_etag, total = _make_slo(conn, container)
    item = _listed(conn, container, "slo")
    _, stored = conn.get_object(container, "slo", query_string="multipart-manifest=get")
    assert item["bytes"] == total
    assert item["slo_etag"] == slo_etag  # quoted, as Swift shows it
    assert item["hash"] == hashlib.md5(stored).hexdigest()
    assert item["content_type"] == "application/octet-stream"
    # The container counts the large object's size, like Swift.
    eventually(lambda: _assert(int(conn.head_container(container)["x-container-bytes-used"])
                               == 2 * total))
    path = urllib.parse.urlparse(conn.get_auth()[0]).path
    status, _, body = raw(cloud, "GET", f"{path}/{container}?format=xml",
                          {"X-Auth-Token": conn.get_auth()[1]})
    assert status == 200
    obj = next(o for o in ET.fromstring(body).iter("object") if o.findtext("name") == "slo")
    assert obj.findtext("bytes") == str(total) and obj.findtext("slo_etag") == slo_etag


def test_copied_slo_manifest_lists_its_total_size(cloud: Cloud) -> None:
    conn = conn_for(cloud)
    container = _name("slo-copy")
    conn.put_container(container)
    slo_etag, total = _make_slo(conn, container)
    url, token = conn.get_auth()
    # swiftclient's copy_object cannot send a query string: COPY by hand.
    status, _, body = raw(cloud, "COPY", f"{urllib.parse.urlparse(url).path}/{container}/slo"
                          "?multipart-manifest=get",
                          {"X-Auth-Token": token, "Destination": f"{container}/slo-copy"})
    assert status == 201, body
    headers, body = conn.get_object(container, "slo-copy")
    assert len(body) == total and headers["etag"] == slo_etag
    item = _listed(conn, container, "slo-copy")
    assert item["bytes"] == total and item["slo_etag"] == slo_etag


def test_copy_reads_the_source_before_checking_the_destination(cloud: Cloud) -> None:
    """Swift's order: the source GET's 403/404 wins over the destination's answer."""
    tester, tester2 = conn_for(cloud), conn_for(cloud, "test2:tester2")
    theirs, mine = _name("osrc"), _name("odst")
    tester2.put_container(theirs)  # test:tester may not read it
    tester2.put_object(theirs, "o", b"private")
    tester.put_container(mine)
    pull = {"X-Copy-From-Account": "AUTH_test2"}
    # No read access: 403 even when the destination container does not exist.
    assert _status(tester.put_object, _name("nowhere"), "o", b"", headers={
        **pull, "X-Copy-From": f"{theirs}/o"}) == 403
    assert _status(tester.put_object, mine, "o", b"", headers={
        **pull, "X-Copy-From": f"{_name('none')}/o"}) == 403
    # A readable source that is missing: 404 even when the destination is not writable.
    assert _status(tester.copy_object, mine, "missing", destination=f"/{theirs}/o",
                   headers={"Destination-Account": "AUTH_test2"}) == 404
    # A readable source, a destination the caller may not write: 403.
    tester.put_object(mine, "o", b"mine")
    assert _status(tester.copy_object, mine, "o", destination=f"/{_name('none')}/o",
                   headers={"Destination-Account": "AUTH_test2"}) == 403


def test_raw_utf8_request_line_and_utf8_content_type(cloud: Cloud) -> None:
    """Unescaped UTF-8 in the request line names the same object; listings show text."""
    tester = conn_for(cloud)
    cont = _name("utf8")
    tester.put_container(cont)
    url, token = tester.get_auth()
    path = urllib.parse.urlparse(url).path
    c = http.client.HTTPConnection("127.0.0.1", cloud.config.proxy.port, timeout=30)
    try:
        # http.client refuses non-ASCII in request lines: write the head by hand.
        c.putrequest("PUT", "/", skip_host=True, skip_accept_encoding=True)
        c._buffer[0] = f"PUT {path}/{cont}/caf\u00e9 HTTP/1.1".encode()
        for k, v in (("Host", "localhost"), ("X-Auth-Token", token),
                     ("Content-Length", "2"), ("Content-Type", "text/\u00e9t\u00e9")):
            c.putheader(k, v.encode())
        c.endheaders(b"ok")
        resp = c.getresponse()
        assert resp.status == 201, resp.read()
        resp.read()
        c.putrequest("GET", "/", skip_host=True, skip_accept_encoding=True)
        # Bytes that are not UTF-8: Swift's 412.
        c._buffer[0] = f"GET {path}/\xa9\xc3 HTTP/1.1".encode("latin-1")
        c.putheader("Host", "localhost")
        c.putheader("X-Auth-Token", token)
        c.endheaders()
        bad = c.getresponse()
        assert (bad.status, bad.read()) == (412, b"Invalid UTF8 or contains NULL")
    finally:
        c.close()
    assert tester.get_object(cont, "caf\u00e9")[1] == b"ok"
    [row] = tester.get_container(cont)[1]
    assert (row["name"], row["content_type"]) == ("caf\u00e9", "text/\u00e9t\u00e9")
