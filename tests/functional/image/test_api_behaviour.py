"""Glance's exact behaviours by hand-written HTTP: errors, isolation, filters, paging.

Real clients cannot send most of the bad input here, so these requests are
hand-written; each asserts Glance's status and error format.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.functional.image.conftest import ImageCloud, Project

pytestmark = pytest.mark.functional

PATCH = "application/openstack-images-v2.1-json-patch"
OCTETS = {"Content-Type": "application/octet-stream"}


def _create(images: ImageCloud, token: str, **body: Any) -> dict[str, Any]:
    body = {"name": f"b-{uuid.uuid4().hex[:6]}", "disk_format": "raw",
            "container_format": "bare", **body}
    r = images.http("POST", "/v2/images", token, json=body)
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _patch(images: ImageCloud, token: str, image_id: str, ops: Any,
           media: str = PATCH) -> requests.Response:
    return images.http("PATCH", f"/v2/images/{image_id}", token, json=ops,
                       headers={"Content-Type": media})


def test_versions_and_schemas(images: ImageCloud) -> None:
    r = requests.get(images.image_url, timeout=10)
    assert r.status_code == 300
    versions = r.json()["versions"]
    assert versions[0]["status"] == "CURRENT"
    assert versions[0]["links"][0]["href"] == f"{images.image_url}/v2/"
    assert {v["id"] for v in versions} >= {"v2.0", "v2.1", "v2.5"}
    token, _ = images.login("nubis-demo")
    assert requests.get(f"{images.image_url}/v2/schemas/image", timeout=10).status_code == 401
    schema = images.http("GET", "/v2/schemas/image", token).json()
    assert schema["name"] == "image" and schema["additionalProperties"] == {"type": "string"}
    assert "kernel_id" in schema["properties"] and "os_hash_value" in schema["properties"]
    coll = images.http("GET", "/v2/schemas/images", token).json()
    assert coll["properties"]["images"]["items"]["name"] == "image"
    assert images.http("GET", "/v2/schemas/members", token).json()["name"] == "members"
    assert images.http("GET", "/v2/schemas/nope", token).status_code == 404


def test_upload_conflicts_limits_and_states(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    img = _create(images, token)
    path = f"/v2/images/{img['id']}/file"
    assert images.http("PUT", path, token, data=b"x", headers={
        "Content-Type": "text/plain"}).status_code == 415
    too_big = images.http("PUT", path, token, headers={**OCTETS, "Content-Length": str(2**41)})
    assert too_big.status_code == 413 and "too large" in too_big.json()["message"]
    assert images.http("PUT", path, token, data=b"hello", headers=OCTETS).status_code == 204
    again = images.http("PUT", path, token, data=b"again", headers=OCTETS)
    assert again.status_code == 409
    assert "transition from active to saving" in again.text
    bare = _create(images, token, disk_format=None, container_format=None)
    r = images.http("PUT", f"/v2/images/{bare['id']}/file", token, data=b"x", headers=OCTETS)
    assert r.status_code == 400 and "must be set prior to saving data" in r.text
    assert images.http("GET", f"/v2/images/{bare['id']}/file", token).status_code == 204
    # deactivate / reactivate
    act = f"/v2/images/{img['id']}/actions"
    bad = images.http("POST", f"/v2/images/{bare['id']}/actions/deactivate", token)
    assert bad.status_code == 400 and "status 'queued'" in bad.text
    assert images.http("POST", f"{act}/deactivate", token).status_code == 204
    shown = images.http("GET", f"/v2/images/{img['id']}", token).json()
    assert shown["status"] == "deactivated"
    assert images.http("GET", path, token).status_code == 403
    admin, _ = images.login("nubis-admin")
    assert images.http("GET", path, admin).content == b"hello"
    assert images.http("POST", f"{act}/reactivate", token).status_code == 204
    got = images.http("GET", path, token)
    assert got.content == b"hello" and got.headers["Content-MD5"] == shown["checksum"]
    # protected images cannot be deleted until unprotected
    assert _patch(images, token, img["id"],
                  [{"op": "replace", "path": "/protected", "value": True}]).status_code == 200
    refused = images.http("DELETE", f"/v2/images/{img['id']}", token)
    assert refused.status_code == 403 and "is protected" in refused.text
    _patch(images, token, img["id"], [{"op": "replace", "path": "/protected", "value": False}])
    assert images.http("DELETE", f"/v2/images/{img['id']}", token).status_code == 204
    assert images.http("DELETE", f"/v2/images/{bare['id']}", token).status_code == 204


def test_json_patch_rules(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    img = _create(images, token, kernel_id=None, tags=["a"])
    iid = img["id"]
    r = _patch(images, token, iid, [{"op": "add", "path": "/os_distro", "value": "debian"},
                                    {"op": "add", "path": "/tags", "value": ["x", "y", "x"]},
                                    {"op": "replace", "path": "/name", "value": "renamed"}])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["os_distro"], doc["tags"], doc["name"]) == ("debian", ["x", "y"], "renamed")
    cases: list[tuple[Any, int, str]] = [
        ([{"op": "replace", "path": "/nope", "value": "v"}], 409, "does not exist"),
        ([{"op": "remove", "path": "/nope"}], 409, "does not exist"),
        ([{"op": "remove", "path": "/name"}], 403, "may not be removed"),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403, "read-only"),
        ([{"op": "add", "path": "/os_glance_x", "value": "v"}], 403, "reserved"),
        ([{"op": "move", "path": "/name", "value": "v"}], 400, "Invalid operation"),
        ([{"path": "/name", "value": "v"}], 400, "Unable to find `op`"),
        ([{"op": "add", "path": "name", "value": "v"}], 400, 'does not start with "/"'),
        ([{"op": "add", "path": "/a/b", "value": "v"}], 400, "Invalid JSON pointer"),
        ([{"op": "add", "path": "/x"}], 400, 'requires a member named "value"'),
        ([{"op": "add", "path": "/x", "value": 5}], 400, "does not match schema"),
        ([{"op": "replace", "path": "/visibility", "value": "galactic"}], 400, "schema"),
        ([{"op": "replace", "path": "/min_ram", "value": "lots"}], 400, "schema"),
        ([{"op": "replace", "path": "/kernel_id", "value": "not-a-uuid"}], 400, "schema"),
        ({"op": "add"}, 400, "JSON array"),
        (["x"], 400, "must be JSON objects"),
        ([{"op": "replace", "path": "/visibility", "value": "public"}], 403, "publicize"),
        ([{"op": "replace", "path": "/owner", "value": "someone"}], 403, "non admin"),
        ([{"op": "add", "path": "/locations/-", "value": {"url": "x", "metadata": {}}}],
         403, "locations"),
    ]
    for ops, status, words in cases:
        r = _patch(images, token, iid, ops)
        assert (r.status_code, words in r.json()["message"]) == (status, True), (ops, r.text)
    r = _patch(images, token, iid, [{"op": "add", "path": "/x", "value": "v"}],
               media="application/json")
    assert r.status_code == 415 and "openstack-images-v2.1-json-patch" in r.headers[
        "Accept-Patch"]
    r = images.http("PATCH", f"/v2/images/{iid}", token, data=b"[{", headers={
        "Content-Type": PATCH})
    assert r.status_code == 400
    # draft 4 (the v2.0 media type) still works
    r = _patch(images, token, iid, [{"replace": "/name", "value": "d4"}],
               media="application/openstack-images-v2.0-json-patch")
    assert r.status_code == 200 and r.json()["name"] == "d4"
    images.http("DELETE", f"/v2/images/{iid}", token)


def test_errors_are_glance_documents(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    missing = str(uuid.uuid4())
    r = images.http("GET", f"/v2/images/{missing}", token, headers={
        "Accept": "application/json"})
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["code"] == "404 Not Found" and missing in r.json()["message"]
    html = images.http("GET", f"/v2/images/{missing}", token, headers={"Accept": "*/*"})
    assert html.headers["Content-Type"].startswith("text/html") and "<h1>404" in html.text
    bad = [("POST", "/v2/images", {"data": b"{not json", "headers": {
               "Content-Type": "application/json"}}, 400),
           ("POST", "/v2/images", {"json": {"disk_format": "floppy"}}, 400),
           ("POST", "/v2/images", {"json": {"status": "active"}}, 403),
           ("POST", "/v2/images", {"json": {"self": "x"}}, 403),
           ("POST", "/v2/images", {"json": ["x"]}, 400),
           ("POST", "/v2/images", {"json": {"x" * 256: "v"}}, 400),
           ("POST", "/v2/images", {"json": {"owner": "another-project"}}, 403),
           ("POST", "/v2/images", {"json": {"visibility": "public"}}, 403),
           ("POST", "/v2/images", {"data": b'{"name": "\xff"}', "headers": {
               "Content-Type": "application/json"}}, 400),
           ("POST", "/v2/images", {"data": b'{"name": "\\udcff"}', "headers": {
               "Content-Type": "application/json"}}, 400),
           ("POST", "/v2/images", {"data": b'{"min_ram": NaN}', "headers": {
               "Content-Type": "application/json"}}, 400),
           ("POST", "/v2/images", {"data": b"[" * 5000 + b"]" * 5000, "headers": {
               "Content-Type": "application/json"}}, 400),
           ("POST", "/v2/images", {"json": {"min_ram": 2**40}}, 400),
           ("POST", "/v2/images", {"json": {"id": "not-a-uuid"}}, 400),
           ("POST", "/v2/images", {"json": {"tags": ["t" * 256]}}, 400),
           ("POST", "/v2/images", {"json": {"p": "v" * (2 * 1024 * 1024)}}, 413),
           ("POST", "/v2/images", {"json": {f"p{i}": "v" for i in range(200)}}, 413),
           ("GET", "/v2/images?limit=abc", {}, 400),
           ("GET", "/v2/images?limit=-1", {}, 400),
           ("GET", "/v2/images?sort_key=bogus", {}, 400),
           ("GET", "/v2/images?sort_dir=sideways", {}, 400),
           ("GET", "/v2/images?sort=name:asc&sort_key=name", {}, 400),
           ("GET", "/v2/images?visibility=galactic", {}, 400),
           ("GET", "/v2/images?size_min=big", {}, 400),
           ("GET", "/v2/images?created_at=gt:yesterday", {}, 400),
           ("GET", "/v2/images?member_status=maybe", {}, 400),
           ("GET", f"/v2/images?marker={missing}", {}, 400),
           ("GET", "/v2/images?os_hidden=perhaps", {}, 400),
           ("GET", f"/v2/images/{missing}/file", {}, 404),
           ("DELETE", f"/v2/images/{missing}", {}, 404),
           ("POST", f"/v2/images/{missing}/actions/explode", {}, 404)]
    for method, path, kw, status in bad:
        r = images.http(method, path, token, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
    assert images.http("GET", "/v2/images", "not-a-token").status_code == 401


def test_tenant_isolation(images: ImageCloud, alt: Project) -> None:
    demo, _ = images.login("nubis-demo")
    other, _ = images.token(alt.user, alt.password, alt.name)
    admin, _ = images.login("nubis-admin")
    private = _create(images, demo, visibility="private")
    images.http("PUT", f"/v2/images/{private['id']}/file", demo, data=b"secret",
                headers=OCTETS)
    iid = private["id"]
    for method, path, kw in (("GET", "", {}), ("GET", "/file", {}), ("DELETE", "", {}),
                             ("PUT", "/file", {"data": b"x", "headers": OCTETS}),
                             ("PUT", "/tags/t", {}), ("GET", "/members", {}),
                             ("POST", "/actions/deactivate", {})):
        r = images.http(method, f"/v2/images/{iid}{path}", other, **kw)
        assert r.status_code == 404, (method, path, r.status_code)
    assert _patch(images, other, iid, [{"op": "replace", "path": "/name",
                                        "value": "x"}]).status_code == 404
    listed = images.http("GET", "/v2/images", other).json()["images"]
    assert iid not in {i["id"] for i in listed}
    assert iid in {i["id"] for i in images.http("GET", "/v2/images", admin).json()["images"]}
    assert images.http("GET", f"/v2/images/{iid}/file", admin).content == b"secret"
    # a community image is visible to all but listed only on request
    images.http("PATCH", f"/v2/images/{iid}", demo, json=[
        {"op": "replace", "path": "/visibility", "value": "community"}],
        headers={"Content-Type": PATCH})
    assert images.http("GET", f"/v2/images/{iid}", other).status_code == 200
    default = images.http("GET", "/v2/images", other).json()["images"]
    assert iid not in {i["id"] for i in default}
    community = images.http("GET", "/v2/images?visibility=community", other).json()["images"]
    assert iid in {i["id"] for i in community}
    assert images.http("DELETE", f"/v2/images/{iid}", other).status_code == 403
    # members: only on shared images, only the owner adds, only the member accepts
    r = images.http("POST", f"/v2/images/{iid}/members", demo, json={"member": alt.id})
    assert r.status_code == 403 and "Only shared images have members" in r.text
    _patch(images, demo, iid, [{"op": "replace", "path": "/visibility", "value": "shared"}])
    r = images.http("POST", f"/v2/images/{iid}/members", demo, json={"member": alt.id})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    again = images.http("POST", f"/v2/images/{iid}/members", demo, json={"member": alt.id})
    assert again.status_code == 409
    owner_accepts = images.http("PUT", f"/v2/images/{iid}/members/{alt.id}", demo,
                                json={"status": "accepted"})
    assert owner_accepts.status_code == 403
    bad = images.http("PUT", f"/v2/images/{iid}/members/{alt.id}", other,
                      json={"status": "maybe"})
    assert bad.status_code == 400
    listed = images.http("GET", "/v2/images?member_status=pending", other).json()["images"]
    assert iid in {i["id"] for i in listed}
    assert images.http("PUT", f"/v2/images/{iid}/members/{alt.id}", other,
                       json={"status": "rejected"}).json()["status"] == "rejected"
    mine = images.http("GET", f"/v2/images/{iid}/members", other).json()["members"]
    assert [m["member_id"] for m in mine] == [alt.id]
    assert images.http("DELETE", f"/v2/images/{iid}/members/{alt.id}",
                       other).status_code == 403
    assert images.http("DELETE", f"/v2/images/{iid}/members/{alt.id}",
                       demo).status_code == 204
    assert images.http("GET", f"/v2/images/{iid}", other).status_code == 404
    images.http("DELETE", f"/v2/images/{iid}", demo)


def test_filters_sorting_and_next_links(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    tag = f"t{uuid.uuid4().hex[:6]}"
    made = []
    for i, fmt in enumerate(["raw", "qcow2", "raw", "iso", "raw"]):
        img = _create(images, token, name=f"{tag}-{i}", disk_format=fmt, tags=[tag],
                      os_distro="debian" if i % 2 else "alpine")
        if i < 3:
            images.http("PUT", f"/v2/images/{img['id']}/file", token, data=b"x" * (10 ** i),
                        headers=OCTETS)
        made.append(img)

    def ids(query: str) -> list[str]:
        r = images.http("GET", f"/v2/images?tag={tag}&{query}", token)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["images"]]

    all_ids = [m["id"] for m in made]
    assert ids("sort_key=name&sort_dir=asc") == all_ids
    assert ids("sort=name:desc") == all_ids[::-1]
    assert ids("disk_format=raw&sort_key=name&sort_dir=asc") == [all_ids[0], all_ids[2],
                                                                  all_ids[4]]
    assert ids("disk_format=in:qcow2,iso&sort_key=name&sort_dir=asc") == all_ids[1:4:2]
    assert ids("os_distro=debian&sort_key=name&sort_dir=asc") == [all_ids[1], all_ids[3]]
    assert ids("status=queued&sort_key=name&sort_dir=asc") == all_ids[3:]
    assert ids("size_min=5&size_max=50&sort_key=name") == [all_ids[1]]
    assert ids("sort_key=size&sort_dir=desc&sort_key=name&sort_dir=asc")[:3] == [
        all_ids[2], all_ids[1], all_ids[0]]
    assert set(ids(f"name={tag}-3")) == {all_ids[3]}
    first = made[0]["created_at"]
    assert set(ids(f"created_at=gte:{first}")) == set(all_ids)
    assert ids("created_at=lt:2000-01-01T00:00:00Z") == []
    # paging: follow `next` links two at a time
    seen: list[str] = []
    url = f"/v2/images?tag={tag}&limit=2&sort_key=name&sort_dir=asc"
    for _ in range(10):
        page = images.http("GET", url, token).json()
        seen += [i["id"] for i in page["images"]]
        assert page["first"].startswith("/v2/images?") and page["schema"] == "/v2/schemas/images"
        if "next" not in page:
            break
        url = page["next"]
    assert seen == all_ids
    # hidden images are listed only when asked for
    _patch(images, token, all_ids[0], [{"op": "replace", "path": "/os_hidden", "value": True}])
    assert all_ids[0] not in ids("")
    assert ids("os_hidden=true") == [all_ids[0]]
    # tags through their own resource
    assert images.http("PUT", f"/v2/images/{all_ids[1]}/tags/extra", token).status_code == 204
    assert ids("tag=extra") == [all_ids[1]]
    assert images.http("DELETE", f"/v2/images/{all_ids[1]}/tags/extra",
                       token).status_code == 204
    assert images.http("DELETE", f"/v2/images/{all_ids[1]}/tags/extra",
                       token).status_code == 404
    for iid in all_ids:
        images.http("DELETE", f"/v2/images/{iid}", token)
