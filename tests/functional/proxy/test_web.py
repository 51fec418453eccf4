"""Swift's web-facing middleware on nubis: staticweb, domain_remap, crossdomain, bulk."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest
from swiftclient import client as sc

from tests.functional.proxy.cloud import Cloud
from tests.functional.proxy.test_core import conn_for, raw

pytestmark = pytest.mark.functional


@pytest.fixture
def conn(cloud: Cloud) -> sc.Connection:
    return conn_for(cloud)


def _site(conn: sc.Connection, acl: str = ".r:*,.rlistings", **meta: str) -> str:
    name = "web-" + uuid.uuid4().hex[:8]
    headers = {"X-Container-Read": acl}
    headers.update({f"X-Container-Meta-{k.replace('_', '-')}": v for k, v in meta.items()})
    conn.put_container(name, headers)
    conn.put_object(name, "index.html", b"<h1>home</h1>", content_type="text/html")
    conn.put_object(name, "docs/a.txt", b"A")
    conn.put_object(name, "docs/sub/b.txt", b"BB")
    conn.put_object(name, "404oops.html", b"custom not found", content_type="text/html")
    return name


def test_info_announces_web_middleware(conn: sc.Connection) -> None:
    info = conn.get_capabilities()
    for key in ("staticweb", "domain_remap", "crossdomain", "bulk_upload", "bulk_delete"):
        assert key in info
    assert info["bulk_delete"]["max_deletes_per_request"] == 10000
    assert info["bulk_upload"]["max_containers_per_extraction"] == 10000


# --- staticweb ---------------------------------------------------------------

def test_staticweb_index_redirect_and_listing(cloud: Cloud, conn: sc.Connection) -> None:
    site = _site(conn, Web_Index="index.html", Web_Listings="true")
    path = f"/v1/AUTH_test/{site}"
    status, headers, _ = raw(cloud, "GET", path, {"Host": "example.test"})
    assert status == 301 and headers["location"] == f"http://example.test{path}/"
    status, _, body = raw(cloud, "GET", path + "/")
    assert (status, body) == (200, b"<h1>home</h1>")
    # docs/ has no index.html: the listing shows its files and subdirectories.
    status, headers, body = raw(cloud, "GET", path + "/docs/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    text = body.decode()
    assert f"Listing of {path}/docs/" in text
    assert '<a href="./a%2Etxt">a.txt</a>' in text and '<a href="./sub/">sub/</a>' in text
    assert '<a href="../">../</a>' in text
    # A directory without the slash redirects; a missing one is 404.
    assert raw(cloud, "GET", path + "/docs")[0] == 301
    assert raw(cloud, "GET", path + "/nothing/")[0] == 404
    assert raw(cloud, "GET", path + "/docs/a.txt")[2] == b"A"


def test_staticweb_error_page_and_disabled_listing(cloud: Cloud, conn: sc.Connection) -> None:
    site = _site(conn, Web_Error="oops.html", Web_Index="missing.html")
    status, _, body = raw(cloud, "GET", f"/v1/AUTH_test/{site}/docs/")
    assert (status, body) == (404, b"custom not found")
    conn.post_container(site, {"X-Remove-Container-Meta-Web-Error": "x"})
    status, _, body = raw(cloud, "GET", f"/v1/AUTH_test/{site}/")
    assert status == 404 and b"Web Listing Disabled" in body


def test_staticweb_keeps_the_read_acl(cloud: Cloud, conn: sc.Connection) -> None:
    # Objects public, listings not: the site's pages work, its listings do not.
    site = _site(conn, acl=".r:*", Web_Listings="true")
    assert raw(cloud, "GET", f"/v1/AUTH_test/{site}/")[0] == 401
    assert raw(cloud, "GET", f"/v1/AUTH_test/{site}/docs/a.txt")[0] == 200
    # A private container stays private, whatever its web settings.
    private = _site(conn, acl="", Web_Listings="true", Web_Index="index.html")
    for sub in ("", "/", "/index.html", "/docs/"):
        assert raw(cloud, "GET", f"/v1/AUTH_test/{private}{sub}")[0] == 401


def test_staticweb_web_mode_for_token_holders(cloud: Cloud, conn: sc.Connection) -> None:
    site = _site(conn, Web_Listings="true")
    _, token = cloud.login()
    status, headers, body = raw(cloud, "GET", f"/v1/AUTH_test/{site}/",
                                {"X-Auth-Token": token})
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"index.html\n" in body  # the API listing, not a web page
    status, _, body = raw(cloud, "GET", f"/v1/AUTH_test/{site}/",
                          {"X-Auth-Token": token, "X-Web-Mode": "true"})
    assert status == 200 and b"<title>Listing of" in body


# --- domain_remap and crossdomain ---------------------------------------------

def test_domain_remap_addresses_accounts_and_containers(cloud: Cloud,
                                                        conn: sc.Connection) -> None:
    site = _site(conn, Web_Index="index.html")
    _, token = cloud.login()
    status, _, body = raw(cloud, "GET", "/", {"Host": "AUTH-test.swift.localhost",
                                              "X-Auth-Token": token})
    assert status == 200 and site in body.decode().split("\n")
    status, _, body = raw(cloud, "GET", "/docs/a.txt",
                          {"Host": f"{site}.AUTH_test.swift.localhost:8080"})
    assert (status, body) == (200, b"A")
    status, _, body = raw(cloud, "GET", "/", {"Host": f"{site}.auth-test.swift.localhost"})
    assert (status, body) == (200, b"<h1>home</h1>")
    status, headers, _ = raw(cloud, "GET", "/docs",
                             {"Host": f"{site}.AUTH_test.swift.localhost"})
    assert status == 301
    assert headers["location"] == f"http://{site}.AUTH_test.swift.localhost/docs/"
    # Bad input: too many labels; an unknown reseller prefix passes through untouched.
    status, _, body = raw(cloud, "GET", "/", {"Host": "a.b.AUTH_test.swift.localhost"})
    assert (status, body) == (400, b"Bad domain in host header")
    # (so ``GET /`` reaches the proxy as is: Swift's "412 Bad URL", no account segment).
    status, _, body = raw(cloud, "GET", "/", {"Host": "other.swift.localhost"})
    assert (status, body) == (412, b"Bad URL")


def test_crossdomain_policy(cloud: Cloud) -> None:
    status, headers, body = raw(cloud, "GET", "/crossdomain.xml")
    assert status == 200 and headers["content-type"].startswith("application/xml")
    assert b'<allow-access-from domain="*" secure="false" />' in body


# --- bulk ----------------------------------------------------------------------

def _tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _bulk(cloud: Cloud, method: str, path: str, body: bytes,
          accept: str = "application/json", **headers: str) -> dict[str, object]:
    _, token = cloud.login()
    status, hdrs, data = raw(cloud, method, path, {"X-Auth-Token": token, "Accept": accept,
                                                   **headers}, body)
    assert status == 200 and hdrs["content-type"] == accept
    result: dict[str, object] = json.loads(data)
    return result


@pytest.mark.parametrize(("kind", "mode"), [("tar", "w"), ("tar.gz", "w:gz"),
                                            ("tar.bz2", "w:bz2")])
def test_extract_archive_creates_containers_and_objects(cloud: Cloud, conn: sc.Connection,
                                                        kind: str, mode: str) -> None:
    c1, c2 = ("x-" + uuid.uuid4().hex[:8] for _ in range(2))
    archive = _tar({f"{c1}/a.txt": b"aaa", f"./{c1}/d/b.txt": b"bb", f"{c2}/c": b"c",
                    "top-level-is-ignored": b"z"}, mode)
    result = _bulk(cloud, "PUT", f"/v1/AUTH_test?extract-archive={kind}", archive,
                   **{"X-Object-Meta-Batch": "7"})
    assert result["Response Status"] == "201 Created" and result["Errors"] == []
    assert result["Number Files Created"] == 3
    headers, body = conn.get_object(c1, "d/b.txt")
    assert body == b"bb" and headers["x-object-meta-batch"] == "7"
    assert conn.get_object(c2, "c")[1] == b"c"
    # Into a container, below a prefix.
    result = _bulk(cloud, "PUT", f"/v1/AUTH_test/{c2}/pre?extract-archive={kind}",
                   _tar({"x/y": b"1"}, mode))
    assert result["Number Files Created"] == 1
    assert conn.get_object(c2, "pre/x/y")[1] == b"1"


def test_extract_archive_bad_input(cloud: Cloud, conn: sc.Connection) -> None:
    _, token = cloud.login()
    status, _, body = raw(cloud, "PUT", "/v1/AUTH_test?extract-archive=zip",
                          {"X-Auth-Token": token}, b"x")
    assert (status, body) == (400, b"Unsupported archive format")
    result = _bulk(cloud, "PUT", "/v1/AUTH_test?extract-archive=tar.gz", b"not a tarball")
    assert result["Response Status"] == "400 Bad Request"
    assert str(result["Response Body"]).startswith("Invalid Tar File")
    # Path tricks are refused per member; the rest is stored.
    c = "x-" + uuid.uuid4().hex[:8]
    result = _bulk(cloud, "PUT", "/v1/AUTH_test?extract-archive=tar",
                   _tar({f"{c}/../AUTH_other/o": b"1", f"{c}/ok": b"2",
                         f"{c}/{'n' * 1100}": b"3"}))
    assert result["Number Files Created"] == 1
    assert result["Response Status"] == "400 Bad Request"
    statuses = sorted(s for _, s in result["Errors"])  # type: ignore[attr-defined]
    assert statuses == ["400 Bad Request", "400 Bad Request"]
    assert [o["name"] for o in conn.get_container(c)[1]] == ["ok"]
    # No token: nothing is written; the summary says 401.
    status, _, body = raw(cloud, "PUT", "/v1/AUTH_test?extract-archive=tar",
                          {"Accept": "application/json"}, _tar({f"{c}/anon": b"x"}))
    assert status == 200 and json.loads(body)["Response Status"] == "401 Unauthorized"


def test_bulk_delete_objects_then_containers(cloud: Cloud, conn: sc.Connection) -> None:
    c = "d-" + uuid.uuid4().hex[:8]
    conn.put_container(c)
    conn.put_object(c, "ö 1", b"1")
    conn.put_object(c, "two", b"2")
    names = f"/{c}/%C3%B6%201\n{c}/two\n{c}\n{c}/missing\n".encode()
    result = _bulk(cloud, "DELETE", "/v1/AUTH_test?bulk-delete", names,
                   **{"Content-Type": "text/plain"})
    assert result["Number Deleted"] == 3 and result["Number Not Found"] == 1
    assert result["Response Status"] == "200 OK"
    _, token = cloud.login()
    status, _, body = raw(cloud, "POST", "/v1/AUTH_test?bulk-delete",
                          {"X-Auth-Token": token, "Accept": "application/xml"}, b"\n")
    assert status == 200 and b"<response_status>400 Bad Request</response_status>" in body
    too_many = b"\n".join(b"c/o%d" % i for i in range(10001))
    result = _bulk(cloud, "POST", "/v1/AUTH_test?bulk-delete", too_many)
    assert result["Response Status"] == "413 Request Entity Too Large"
    result = _bulk(cloud, "POST", "/v1/AUTH_test?bulk-delete", b"c/o",
                   **{"Content-Type": "application/json"})
    assert result["Response Status"] == "406 Not Acceptable"


# --- CORS ------------------------------------------------------------------------

def test_cors_preflight_and_actual_requests(cloud: Cloud, conn: sc.Connection) -> None:
    c = "cors-" + uuid.uuid4().hex[:8]
    conn.put_container(c, {"X-Container-Meta-Access-Control-Allow-Origin":
                           "http://good.example http://other.example",
                           "X-Container-Meta-Access-Control-Max-Age": "600",
                           "X-Container-Meta-Access-Control-Expose-Headers": "X-Custom"})
    conn.put_object(c, "o", b"x", headers={"X-Object-Meta-Color": "red"})
    status, headers, _ = raw(cloud, "OPTIONS", f"/v1/AUTH_test/{c}/o")
    assert status == 200 and "GET" in headers["allow"]
    status, headers, _ = raw(cloud, "OPTIONS", f"/v1/AUTH_test/{c}/o", {
        "Origin": "http://good.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "x-auth-token, content-type"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://good.example"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-allow-headers"] == "x-auth-token, content-type"
    assert "PUT" in headers["access-control-allow-methods"]
    # Bad input: an origin not listed, a method the resource lacks.
    assert raw(cloud, "OPTIONS", f"/v1/AUTH_test/{c}/o", {
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})[0] == 401
    assert raw(cloud, "OPTIONS", f"/v1/AUTH_test/{c}/o", {
        "Origin": "http://good.example", "Access-Control-Request-Method": "TRACE"})[0] == 401
    # The actual request: allowed origins see the headers, others do not; auth still applies.
    _, token = cloud.login()
    status, headers, _ = raw(cloud, "GET", f"/v1/AUTH_test/{c}/o",
                             {"Origin": "http://good.example", "X-Auth-Token": token})
    assert status == 200 and headers["access-control-allow-origin"] == "http://good.example"
    exposed = headers["access-control-expose-headers"].split(", ")
    assert "x-object-meta-color" in exposed and "x-custom" in exposed and "etag" in exposed
    status, headers, _ = raw(cloud, "GET", f"/v1/AUTH_test/{c}/o",
                             {"Origin": "http://evil.example", "X-Auth-Token": token})
    assert status == 200 and "access-control-allow-origin" not in headers
    status, headers, _ = raw(cloud, "GET", f"/v1/AUTH_test/{c}/o",
                             {"Origin": "http://good.example"})
    assert status == 401 and headers["access-control-allow-origin"] == "http://good.example"
