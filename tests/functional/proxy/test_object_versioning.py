"""New-style object versioning (``X-Versions-Enabled``) driven with python-swiftclient."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually
from tests.functional.proxy.test_core import conn_for

pytestmark = pytest.mark.functional

DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    return conn_for(cloud)


def _versions(conn: sc.Connection, container: str, **params: str) -> list[dict[str, object]]:
    query = "&".join(["versions", *(f"{k}={v}" for k, v in params.items())])
    return list(conn.get_container(container, query_string=query)[1])


def _status(call: object, *args: object, **kwargs: object) -> int:
    with pytest.raises(ClientException) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return int(info.value.http_status)


def test_info_announces_object_versioning(conn: sc.Connection) -> None:
    assert "object_versioning" in conn.get_capabilities()


def test_versions_put_get_delete_restore(conn: sc.Connection) -> None:
    base = "ov-" + uuid.uuid4().hex[:8]
    conn.put_container(base, {"X-Versions-Enabled": "true"})
    assert conn.head_container(base)["x-versions-enabled"] == "True"
    # The hidden container is not listed, and clients cannot name it.
    assert all(not c["name"].startswith("\x00") for c in conn.get_account()[1])
    assert _status(conn.get_container, "\x00versions\x00" + base) == 412
    ids = []
    for body in (b"one", b"two", b"three"):
        headers: dict[str, str] = {}
        conn.put_object(base, "ö", body, content_type="text/" + body.decode(),
                        response_dict=headers)  # type: ignore[arg-type]
        ids.append(headers["headers"]["x-object-version-id"])  # type: ignore[index]
    headers, body = conn.get_object(base, "ö")
    assert body == b"three" and headers["x-object-version-id"] == ids[2]
    assert conn.get_object(base, "ö", query_string=f"version-id={ids[0]}")[1] == b"one"
    row = conn.get_container(base)[1][0]
    assert (row["name"], row["bytes"], row["content_type"]) == ("ö", 5, "text/three")
    listing = _versions(conn, base)
    assert [(r["version_id"], r["is_latest"]) for r in listing] == [
        (ids[2], True), (ids[1], False), (ids[0], False)]
    # A DELETE writes a delete marker; the older versions stay readable.
    conn.delete_object(base, "ö")
    assert _status(conn.get_object, base, "ö") == 404
    listing = _versions(conn, base)
    assert listing[0]["content_type"] == DELETE_MARKER and listing[0]["is_latest"]
    assert conn.get_container(base)[1] == []
    # PUT ?version-id makes an old version current again.
    conn.put_object(base, "ö", b"", query_string=f"version-id={ids[1]}")
    assert conn.get_object(base, "ö")[1] == b"two"
    # DELETE ?version-id removes that version only (no marker).
    conn.delete_object(base, "ö", query_string=f"version-id={ids[0]}")
    assert _status(conn.get_object, base, "ö", query_string=f"version-id={ids[0]}") == 404
    # A versioned container is deleted only once all its versions are.
    conn.post_container(base, {"X-Versions-Enabled": "false"})
    conn.delete_object(base, "ö")
    assert _status(conn.delete_container, base) == 409
    for row in _versions(conn, base):
        conn.delete_object(base, str(row["name"]),
                           query_string=f"version-id={row['version_id']}")
    conn.delete_container(base)


def test_null_versions_and_disabling(conn: sc.Connection) -> None:
    base = "on-" + uuid.uuid4().hex[:8]
    conn.put_container(base)
    conn.put_object(base, "o", b"plain")
    assert [r["version_id"] for r in _versions(conn, base)] == ["null"]
    assert conn.get_object(base, "o", query_string="version-id=null")[1] == b"plain"
    conn.post_container(base, {"X-Versions-Enabled": "true"})
    conn.put_object(base, "o", b"versioned")
    # The null version was moved aside under its own timestamp.
    listing = _versions(conn, base)
    assert len(listing) == 2 and "null" not in [r["version_id"] for r in listing]
    old = listing[1]["version_id"]
    assert conn.get_object(base, "o", query_string=f"version-id={old}")[1] == b"plain"
    assert _status(conn.get_object, base, "o", query_string="version-id=null") == 404
    conn.post_container(base, {"X-Versions-Enabled": "false"})
    assert conn.head_container(base)["x-versions-enabled"] == "False"
    conn.put_object(base, "o", b"unversioned")  # replaces the link: a null version
    listing = _versions(conn, base)
    assert (listing[0]["version_id"], listing[0]["is_latest"]) == ("null", True)
    assert len(listing) == 3
    headers, body = conn.get_object(base, "o")
    assert body == b"unversioned" and headers["x-object-version-id"] == "null"


def test_versioning_bad_input(conn: sc.Connection) -> None:
    base = "ob-" + uuid.uuid4().hex[:8]
    conn.put_container(base + "-old")
    conn.put_container(base, {"X-Versions-Location": base + "-old"})
    # Legacy and new-style versioning do not mix.
    assert _status(conn.post_container, base, {"X-Versions-Enabled": "true"}) == 400
    assert _status(conn.put_container, base + "-both",
                   {"X-Versions-Enabled": "true", "X-History-Location": "x"}) == 400
    conn.put_container(base + "-new", {"X-Versions-Enabled": "true"})
    conn.put_object(base + "-new", "o", b"x")
    assert _status(conn.get_object, base + "-new", "o", query_string="version-id=bogus") == 400
    assert _status(conn.put_object, base + "-new", "o", b"data",
                   query_string="version-id=1234567890.12345") == 400
    assert _status(conn.get_container, base + "-new", query_string="versions&format=xml") \
        == 406
    assert _status(conn.get_container, base + "-new",
                   query_string="versions&version_marker=1") == 400
    assert _status(conn.get_object, base, "o", query_string="version-id=1.0") == 400


def _slo_in_versioned_container(conn: sc.Connection, tag: str) -> tuple[str, str, str]:
    """Put segments ``a``, ``b`` (64 KiB each) and an SLO of ``a`` in a versioned container.

    Returns the versioned container, the segments container and the manifest's
    version id.
    """
    base = tag + "-" + uuid.uuid4().hex[:8]
    conn.put_container(base, {"X-Versions-Enabled": "true"})
    conn.put_container(base + "-segs")
    for letter in "ab":
        conn.put_object(base + "-segs", letter, letter.encode() * 65536)
    manifest = [{"path": f"/{base}-segs/a", "size_bytes": 65536,
                 "etag": hashlib.md5(b"a" * 65536, usedforsecurity=False).hexdigest()}]
    out: dict[str, object] = {}
    conn.put_object(base, "slo", json.dumps(manifest), response_dict=out,
                    query_string="multipart-manifest=put")
    return base, base + "-segs", str(out["headers"]["x-object-version-id"])  # type: ignore[index]


def _assert_equal(got: object, want: object) -> None:
    assert got == want


_SHOWN = ("content-length", "content-type", "etag", "last-modified", "x-manifest-etag",
          "x-object-version-id", "x-static-large-object")


def test_symlinks_to_an_slo_in_a_versioned_container(cloud: Cloud, conn: sc.Connection
                                                     ) -> None:
    base, _segs, v1 = _slo_in_versioned_container(conn, "ovsl")
    slo = conn.head_object(base, "slo")
    assert slo["x-object-version-id"] == v1 and slo["content-length"] == "65536"
    # A symlink (itself versioned) to the SLO: version link, link, version link, manifest.
    conn.put_object(base, "link", b"", headers={"X-Symlink-Target": f"{base}/slo"})
    head = conn.head_object(base, "link")
    assert {k: head.get(k) for k in _SHOWN} == {k: slo.get(k) for k in _SHOWN}
    assert head["content-location"] == f"/v1/AUTH_test/{base}/link?version-id={v1}"
    assert conn.get_object(base, "link")[1] == b"a" * 65536
    # A static link pinned to the manifest's ETag reads the same.
    conn.put_object(base, "link", b"", headers={
        "X-Symlink-Target": f"{base}/slo", "X-Symlink-Target-Etag": slo["x-manifest-etag"]})
    head = conn.head_object(base, "link")
    assert {k: head.get(k) for k in _SHOWN} == {k: slo.get(k) for k in _SHOWN}
    # A reader the container's ACL admits follows the version links too.
    conn.post_container(base, {"X-Container-Read": "test:tester3"})
    conn.post_container(base + "-segs", {"X-Container-Read": "test:tester3"})
    reader = conn_for(cloud, "test:tester3")
    assert reader.get_object(base, "link")[1] == b"a" * 65536


def test_slo_whose_first_segment_is_gone_is_409(conn: sc.Connection) -> None:
    base, segs, v1 = _slo_in_versioned_container(conn, "ovsd")
    # Version 2 is the same manifest (segment a), as a restored copy would be.
    manifest = conn.get_object(base, "slo", query_string="multipart-manifest=get")[1]
    conn.put_object(base, "slo", json.dumps([{"path": row["name"], "etag": row["hash"],
                                              "size_bytes": row["bytes"]}
                                             for row in json.loads(manifest)]),
                    query_string="multipart-manifest=put")
    assert conn.get_object(base, "slo")[1] == b"a" * 65536
    # Deleting version 1 with its segments removes segment a, which version 2 names.
    out: dict[str, object] = {}
    conn.delete_object(base, "slo", response_dict=out, headers={"Accept": "application/json"},
                       query_string=f"multipart-manifest=delete&version-id={v1}")
    assert out["status"] == 200
    eventually(lambda: _assert_equal([r["name"] for r in conn.get_container(segs)[1]], ["b"]))
    eventually(lambda: _assert_equal(len(_versions(conn, base)), 1))
    # The GET fails before any byte is sent (a range too); HEAD answers from the manifest.
    assert _status(conn.get_object, base, "slo") == 409
    assert _status(conn.get_object, base, "slo", headers={"Range": "bytes=10-20"}) == 409
    assert conn.head_object(base, "slo")["content-length"] == "65536"
