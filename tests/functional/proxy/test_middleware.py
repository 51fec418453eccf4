"""Swift's pipeline middleware on nubis: legacy object versioning (and friends)."""

from __future__ import annotations

import urllib.parse
import uuid

import pytest
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud
from tests.functional.proxy.test_core import conn_for, raw

pytestmark = pytest.mark.functional


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    return conn_for(cloud)


def _names(conn: sc.Connection, container: str) -> list[str]:
    return [o["name"] for o in conn.get_container(container)[1]]


# --- legacy versioning -------------------------------------------------------

def test_info_announces_versioned_writes(conn: sc.Connection) -> None:
    info = conn.get_capabilities()
    assert info["versioned_writes"]["allowed_flags"] == ["x-versions-location",
                                                         "x-history-location"]


def test_versions_location_stack_mode(conn: sc.Connection) -> None:
    base = "v-" + uuid.uuid4().hex[:8]
    conn.put_container(base + "-ver")
    conn.put_container(base, {"X-Versions-Location": base + "-ver"})
    assert conn.head_container(base)["x-versions-location"] == base + "-ver"
    conn.put_object(base, "ö", b"one", content_type="text/one")
    conn.put_object(base, "ö", b"two", content_type="text/two")
    conn.put_object(base, "ö", b"three")
    saved = _names(conn, base + "-ver")
    assert len(saved) == 2 and all(n.startswith("002ö/") for n in saved)
    assert conn.get_object(base + "-ver", saved[0])[1] == b"one"
    # A POST is no new version.
    conn.post_object(base, "ö", {"X-Object-Meta-A": "b"})
    assert len(_names(conn, base + "-ver")) == 2
    # Each DELETE pops the newest saved version back.
    conn.delete_object(base, "ö")
    headers, body = conn.get_object(base, "ö")
    assert body == b"two" and headers["content-type"] == "text/two"
    conn.delete_object(base, "ö")
    assert conn.get_object(base, "ö")[1] == b"one"
    assert _names(conn, base + "-ver") == []
    conn.delete_object(base, "ö")
    with pytest.raises(ClientException) as info:
        conn.get_object(base, "ö")
    assert info.value.http_status == 404


def test_history_location_keeps_everything(conn: sc.Connection) -> None:
    base = "h-" + uuid.uuid4().hex[:8]
    conn.put_container(base + "-ver")
    conn.put_container(base, {"X-History-Location": base + "-ver"})
    headers = conn.head_container(base)
    assert headers["x-history-location"] == base + "-ver"
    assert "x-versions-location" not in headers
    conn.put_object(base, "o", b"one")
    conn.put_object(base, "o", b"two")
    conn.delete_object(base, "o")
    listing = conn.get_container(base + "-ver")[1]
    assert [o["content_type"] for o in listing][-1] == \
        "application/x-deleted;swift_versions_deleted=1"
    assert [conn.get_object(base + "-ver", o["name"])[1] for o in listing[:2]] == \
        [b"one", b"two"]
    with pytest.raises(ClientException):
        conn.get_object(base, "o")


def test_versioning_header_rules(conn: sc.Connection) -> None:
    base = "r-" + uuid.uuid4().hex[:8]
    with pytest.raises(ClientException) as info:
        conn.put_container(base, {"X-Versions-Location": "a", "X-History-Location": "b"})
    assert info.value.http_status == 400
    with pytest.raises(ClientException) as info:
        conn.put_container(base, {"X-Versions-Location": "a/b"})
    assert info.value.http_status == 412
    conn.put_container(base, {"X-Versions-Location": "elsewhere"})
    conn.post_container(base, {"X-Remove-Versions-Location": "x"})
    assert "x-versions-location" not in conn.head_container(base)
    # Writing into a versioned container whose versions container is missing: 412.
    conn.post_container(base, {"X-Versions-Location": "missing-" + base})
    conn.put_object(base, "o", b"first")
    with pytest.raises(ClientException) as info:
        conn.put_object(base, "o", b"second")
    assert info.value.http_status == 412


# --- symlinks ----------------------------------------------------------------

def test_symlink_follows_and_lists(conn: sc.Connection) -> None:
    base = "s-" + uuid.uuid4().hex[:8]
    conn.put_container(base)
    etag = conn.put_object(base, "target", b"payload", content_type="text/target")
    conn.put_object(base, "link", b"", headers={"X-Symlink-Target": f"{base}/target"})
    headers, body = conn.get_object(base, "link")
    assert body == b"payload" and headers["etag"] == etag
    assert headers["content-location"].endswith(f"/{base}/target")
    headers, body = conn.get_object(base, "link", query_string="symlink=get")
    assert body == b"" and headers["x-symlink-target"] == f"{base}/target"
    row = {o["name"]: o for o in conn.get_container(base)[1]}["link"]
    assert row["symlink_path"].endswith(f"/{base}/target")
    assert row["content_type"] == "application/symlink"
    # A static link pins the target's ETag.
    conn.put_object(base, "static", b"", headers={"X-Symlink-Target": f"{base}/target",
                                                  "X-Symlink-Target-Etag": etag})
    row = {o["name"]: o for o in conn.get_container(base)[1]}["static"]
    assert (row["symlink_etag"], row["symlink_bytes"]) == (etag, 7)
    conn.put_object(base, "target", b"changed")
    with pytest.raises(ClientException) as info:
        conn.get_object(base, "static")
    assert info.value.http_status == 409


def test_symlink_rules(cloud: Cloud, conn: sc.Connection) -> None:
    base = "sr-" + uuid.uuid4().hex[:8]
    conn.put_container(base)
    for headers, status in (({"X-Symlink-Target": "no-slash"}, 412),
                            ({"X-Symlink-Target": f"{base}/self"}, 400)):
        with pytest.raises(ClientException) as info:
            conn.put_object(base, "self", b"", headers=headers)
        assert info.value.http_status == status
    with pytest.raises(ClientException) as info:
        conn.put_object(base, "l", b"body", headers={"X-Symlink-Target": f"{base}/t"})
    assert info.value.http_status == 400
    # Links to links: at most symloop_max (2) hops.
    conn.put_object(base, "t", b"x")
    conn.put_object(base, "l1", b"", headers={"X-Symlink-Target": f"{base}/t"})
    conn.put_object(base, "l2", b"", headers={"X-Symlink-Target": f"{base}/l1"})
    conn.put_object(base, "l3", b"", headers={"X-Symlink-Target": f"{base}/l2"})
    assert conn.get_object(base, "l2")[1] == b"x"
    with pytest.raises(ClientException) as info:
        conn.get_object(base, "l3")
    assert info.value.http_status == 409
    # A POST to a link is applied to it and answered 307 to the target.
    url, token = conn.get_auth()
    path = urllib.parse.urlsplit(url).path
    status, headers, _ = raw(cloud, "POST", f"{path}/{base}/l1",
                             {"X-Auth-Token": token, "X-Object-Meta-A": "b"})
    assert (status, headers["location"]) == (307, f"{path}/{base}/t")
    assert conn.head_object(base, "l1", query_string="symlink=get")["x-object-meta-a"] == "b"


# --- quotas ------------------------------------------------------------------

def test_container_quotas(conn: sc.Connection) -> None:
    base = "q-" + uuid.uuid4().hex[:8]
    with pytest.raises(ClientException) as info:
        conn.put_container(base, {"X-Container-Meta-Quota-Bytes": "ten"})
    assert info.value.http_status == 400
    conn.put_container(base, {"X-Container-Meta-Quota-Bytes": "10",
                              "X-Container-Meta-Quota-Count": "2"})
    with pytest.raises(ClientException) as info:
        conn.put_object(base, "big", b"01234567890")
    assert info.value.http_status == 413
    conn.put_object(base, "a", b"01234")
    conn.put_object(base, "b", b"01234")
    with pytest.raises(ClientException) as info:
        conn.put_object(base, "c", b"")
    assert info.value.http_status == 413
