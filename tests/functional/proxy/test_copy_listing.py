"""Cross-account copies and SLO listings, through python-swiftclient."""

from __future__ import annotations

import hashlib
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
