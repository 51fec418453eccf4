"""ACLs, TempURL, large objects and the `swift` CLI against a real cloud."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually
from tests.functional.proxy.test_core import _assert, conn_for, raw

pytestmark = pytest.mark.functional


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    return conn_for(cloud)


@pytest.fixture
def container(conn: sc.Connection) -> str:
    name = "f-" + uuid.uuid4().hex[:8]
    conn.put_container(name)
    return name


def swift_cli(cloud: Cloud, *args: str, cwd: Path | None = None,
              user: str = "test:tester") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "OS_"))}
    env.update(ST_AUTH=cloud.auth_url, ST_USER=user,
               ST_KEY=cloud.config.tempauth.users[user].key)
    exe = Path(sys.executable).with_name("swift")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120, check=False)


# --- ACLs --------------------------------------------------------------------------

def test_container_read_acl_for_user(cloud: Cloud, conn: sc.Connection,
                                     container: str) -> None:
    conn.put_object(container, "o", b"shared")
    url = conn.get_auth()[0]
    token3 = conn_for(cloud, "test:tester3").get_auth()[1]
    with pytest.raises(ClientException) as info:
        sc.get_object(url, token3, container, "o")
    assert info.value.http_status == 403
    conn.post_container(container, {"X-Container-Read": "test:tester3"})
    assert sc.get_object(url, token3, container, "o")[1] == b"shared"
    # Non-owners never see the ACLs themselves.
    assert "x-container-read" not in sc.head_container(url, token3, container)
    with pytest.raises(ClientException) as info:
        sc.put_object(url, token3, container, "w", b"x")
    assert info.value.http_status == 403
    conn.post_container(container, {"X-Container-Write": "test:tester3"})
    sc.put_object(url, token3, container, "w", b"x")


def test_public_read_and_listing_acls(cloud: Cloud, conn: sc.Connection,
                                      container: str) -> None:
    conn.put_object(container, "pub", b"public")
    path = urllib.parse.urlparse(conn.get_auth()[0]).path
    assert raw(cloud, "GET", f"{path}/{container}/pub")[0] == 401
    conn.post_container(container, {"X-Container-Read": ".r:*"})
    status, _, body = raw(cloud, "GET", f"{path}/{container}/pub")
    assert (status, body) == (200, b"public")
    assert raw(cloud, "GET", f"{path}/{container}")[0] == 401
    conn.post_container(container, {"X-Container-Read": ".r:*,.rlistings"})
    eventually(lambda: _assert(raw(cloud, "GET", f"{path}/{container}")[2] == b"pub\n"))
    assert raw(cloud, "PUT", f"{path}/{container}/anon", {"Content-Length": "1"}, b"x")[0] \
        == 401


def test_bad_acl_is_400(conn: sc.Connection, container: str) -> None:
    with pytest.raises(ClientException) as info:
        conn.post_container(container, {"X-Container-Read": ".bogus:x"})
    assert info.value.http_status == 400


# --- TempURL -----------------------------------------------------------------------

def test_tempurl(cloud: Cloud, conn: sc.Connection, container: str) -> None:
    conn.post_account({"X-Account-Meta-Temp-URL-Key": "secret-key"})
    conn.put_object(container, "shared.bin", b"tempurl body")
    path = urllib.parse.urlparse(conn.get_auth()[0]).path + f"/{container}/shared.bin"
    expires = int(time.time()) + 300
    for digest in (hashlib.sha256, hashlib.sha1):
        sig = hmac.new(b"secret-key", f"GET\n{expires}\n{path}".encode(), digest).hexdigest()
        status, headers, body = raw(
            cloud, "GET", f"{path}?temp_url_sig={sig}&temp_url_expires={expires}")
        assert (status, body) == (200, b"tempurl body")
        assert "attachment" in headers["content-disposition"]
    assert raw(cloud, "GET", f"{path}?temp_url_sig={'0' * 64}&temp_url_expires={expires}"
               )[0] == 401
    put_sig = hmac.new(b"secret-key", f"PUT\n{expires}\n{path}".encode(),
                       hashlib.sha256).hexdigest()
    assert raw(cloud, "DELETE", f"{path}?temp_url_sig={put_sig}&temp_url_expires={expires}"
               )[0] == 401
    status, _, _ = raw(cloud, "PUT", f"{path}?temp_url_sig={put_sig}&temp_url_expires="
                       f"{expires}", {"Content-Length": "3"}, b"new")
    assert status == 201
    assert conn.get_object(container, "shared.bin")[1] == b"new"
    past = int(time.time()) - 10
    assert raw(cloud, "GET", f"{path}?temp_url_sig={put_sig}&temp_url_expires={past}"
               )[0] == 401


# --- large objects -------------------------------------------------------------------

def test_slo_put_get_range_delete(cloud: Cloud, conn: sc.Connection,
                                  container: str) -> None:
    import json

    segs = [bytes([65 + i]) * 1000 for i in range(3)]
    manifest = []
    for i, data in enumerate(segs):
        etag = conn.put_object(container, f"seg/{i}", data)
        manifest.append({"path": f"/{container}/seg/{i}", "etag": etag,
                         "size_bytes": len(data)})
    conn.put_object(container, "slo", json.dumps(manifest),
                    query_string="multipart-manifest=put")
    headers, body = conn.get_object(container, "slo")
    assert body == b"".join(segs)
    assert headers["x-static-large-object"].lower() == "true"
    expected = hashlib.md5("".join(hashlib.md5(s).hexdigest() for s in segs).encode())
    assert headers["etag"].strip('"') == expected.hexdigest()
    _, part = conn.get_object(container, "slo", headers={"Range": "bytes=990-2009"})
    assert part == b"".join(segs)[990:2010]
    _, raw_manifest = conn.get_object(container, "slo", query_string="multipart-manifest=get")
    assert len(json.loads(raw_manifest)) == 3
    bad = [{"path": f"/{container}/seg/0", "etag": "0" * 32, "size_bytes": 1000}]
    with pytest.raises(ClientException) as info:
        conn.put_object(container, "bad-slo", json.dumps(bad),
                        query_string="multipart-manifest=put")
    assert info.value.http_status == 400
    conn.delete_object(container, "slo", query_string="multipart-manifest=delete")
    eventually(lambda: _assert(conn.get_container(container)[1] == []))


def test_dlo(conn: sc.Connection, container: str) -> None:
    for i in range(3):
        conn.put_object(container, f"parts/{i:03d}", str(i).encode() * 10)
    eventually(lambda: _assert(len(conn.get_container(container, prefix="parts/")[1]) == 3))
    conn.put_object(container, "dlo", b"", headers={"X-Object-Manifest": f"{container}/parts/"})
    headers, body = conn.get_object(container, "dlo")
    assert body == b"0" * 10 + b"1" * 10 + b"2" * 10
    assert "x-object-manifest" in headers
    _, part = conn.get_object(container, "dlo", headers={"Range": "bytes=5-14"})
    assert part == b"0" * 5 + b"1" * 5


# --- the swift CLI -------------------------------------------------------------------

def test_swift_cli_round_trip(cloud: Cloud, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "small.txt").write_bytes(b"small file\n")
    (src / "big.bin").write_bytes(os.urandom(300_000))
    (src / "slo.bin").write_bytes(os.urandom(250_000))
    cont = "cli-" + uuid.uuid4().hex[:6]
    r = swift_cli(cloud, "stat")
    assert r.returncode == 0, r.stderr
    assert "Account: AUTH_test" in r.stdout
    r = swift_cli(cloud, "post", cont, "-m", "color:green")
    assert r.returncode == 0, r.stderr
    r = swift_cli(cloud, "upload", cont, "dir", "big.bin", cwd=src)
    assert r.returncode == 0, r.stderr
    r = swift_cli(cloud, "upload", cont, "big.bin", "--segment-size", "100000",
                  "--object-name", "dlo.bin", cwd=src)
    assert r.returncode == 0, r.stderr
    r = swift_cli(cloud, "upload", cont, "slo.bin", "--segment-size", "100000", "--use-slo",
                  cwd=src)
    assert r.returncode == 0, r.stderr
    def listed() -> None:
        r = swift_cli(cloud, "list", cont, "--prefix", "d", "--delimiter", "/")
        assert r.returncode == 0 and r.stdout.split() == ["dir/", "dlo.bin"], r.stdout

    eventually(listed)
    eventually(lambda: _assert(len(swift_cli(cloud, "list", cont).stdout.split()) == 4))
    dst = tmp_path / "dst"
    dst.mkdir()
    r = swift_cli(cloud, "download", cont, cwd=dst)
    assert r.returncode == 0, r.stderr
    assert (dst / "dir" / "small.txt").read_bytes() == b"small file\n"
    assert (dst / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (dst / "dlo.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert (dst / "slo.bin").read_bytes() == (src / "slo.bin").read_bytes()
    r = swift_cli(cloud, "stat", cont)
    assert "Meta Color: green" in r.stdout
    r = swift_cli(cloud, "copy", cont, "dir/small.txt", "--destination", f"/{cont}/copy.txt")
    assert r.returncode == 0, r.stderr
    r = swift_cli(cloud, "download", cont, "copy.txt", "-o", "-")
    assert r.stdout == "small file\n"
    r = swift_cli(cloud, "capabilities")
    assert r.returncode == 0 and "slo" in r.stdout and "tempurl" in r.stdout
    r = swift_cli(cloud, "delete", cont)
    assert r.returncode == 0, r.stderr
    eventually(lambda: _assert(cont not in swift_cli(cloud, "list").stdout.split()))


def test_slo_cannot_read_segments_the_user_cannot(cloud: Cloud, conn: sc.Connection) -> None:
    import json

    private = "priv-" + uuid.uuid4().hex[:6]
    shared = "shr-" + uuid.uuid4().hex[:6]
    conn.put_container(private)
    conn.put_container(shared, headers={"X-Container-Read": "test:tester3",
                                        "X-Container-Write": "test:tester3"})
    etag = conn.put_object(private, "secret", b"top secret")
    url = conn.get_auth()[0]
    token3 = conn_for(cloud, "test:tester3").get_auth()[1]
    manifest = json.dumps([{"path": f"/{private}/secret", "etag": etag, "size_bytes": 10}])
    with pytest.raises(ClientException) as info:
        sc.put_object(url, token3, shared, "steal", manifest,
                      query_string="multipart-manifest=put")
    assert info.value.http_status == 400
    # An owner-made manifest in the shared container still cannot be read through.
    conn.put_object(shared, "steal2", manifest, query_string="multipart-manifest=put")
    with pytest.raises(ClientException) as info:
        sc.get_object(url, token3, shared, "steal2")
    assert info.value.http_status == 409  # Swift's answer for an unreadable segment
    assert b"top secret" not in (info.value.http_response_content or b"")
    assert conn.get_object(shared, "steal2")[1] == b"top secret"
