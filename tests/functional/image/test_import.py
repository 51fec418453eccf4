"""Interoperable image import (``glance-direct``, ``web-download``): the ``openstack`` CLI,
openstacksdk, errors, task schemas, and the recovery of an import whose api process died."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
import requests

from tests.functional.image.conftest import (
    IMPORT_TIMEOUT,
    ImageCloud,
    Project,
    WebSource,
    api_restarted,
    becomes,
)
from tests.functional.proxy.cloud import eventually

pytestmark = pytest.mark.functional


def _name() -> str:
    return f"imp-{uuid.uuid4().hex[:6]}"


def test_info_lists_the_import_methods(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    r = images.http("GET", "/v2/info/import", token)
    assert r.json()["import-methods"]["value"] == ["glance-direct", "web-download"]


def test_openstack_cli_creates_an_image_by_import(images: ImageCloud, tmp_path: Path) -> None:
    src = tmp_path / "disk.raw"
    src.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    made = images.osc("image", "create", "--import", "--file", str(src), "--disk-format",
                      "raw", "--container-format", "bare", _name(), "-f", "json")
    shown = images.osc("image", "show", made["id"], "-f", "json")
    assert shown["status"] == "active" and shown["size"] == src.stat().st_size
    assert shown["checksum"] == hashlib.md5(src.read_bytes(), usedforsecurity=False).hexdigest()
    out = tmp_path / "back.raw"
    images.osc("image", "save", "--file", str(out), made["id"])
    assert out.read_bytes() == src.read_bytes()
    images.osc("image", "delete", made["id"])
    assert images.service_objects(made["id"]) == []


def test_stage_then_import_with_openstacksdk(images: ImageCloud) -> None:
    conn = images.sdk("nubis-demo")
    data = os.urandom(300_000)
    image = conn.image.create_image(name=_name(), disk_format="raw", container_format="bare")
    conn.image.stage_image(image, data=data)
    staged = conn.image.get_image(image)
    assert staged.status == "uploading"
    token, _ = images.login("nubis-demo")
    assert images.http("GET", f"/v2/images/{image.id}/file", token).status_code == 204
    conn.image.import_image(image, method="glance-direct")
    done = conn.image.get_image(image)
    assert (done.status, done.size) == ("active", len(data))
    assert done.hash_value == hashlib.sha512(data).hexdigest()
    assert images.http("GET", f"/v2/images/{image.id}/file", token).content == data
    conn.image.delete_image(image)


def test_import_errors(images: ImageCloud) -> None:
    conn = images.sdk("nubis-demo")
    token, _ = images.login("nubis-demo")
    image = conn.image.create_image(name=_name(), disk_format="raw", container_format="bare")
    path = f"/v2/images/{image.id}/import"

    def post(body: object) -> tuple[int, str]:
        r = images.http("POST", path, token, json=body)
        return r.status_code, r.text

    for body, status, words in (
            ({}, 400, "requires a 'method' field"),
            ({"method": {}}, 400, "requires a 'name' field"),
            ({"method": {"name": "copy-image"}}, 400,
             "Unknown import method name 'copy-image'"),
            ({"method": {"name": "glance-direct"}, "all_stores": "yes"}, 400,
             "'all_stores' must be boolean"),
            ({"method": {"name": "glance-direct"}}, 409, "needs to be staged")):
        got, text = post(body)
        assert got == status and words in text, (body, got, text)
    stage = images.http("PUT", f"/v2/images/{image.id}/stage", token, data=b"x" * 10,
                        headers={"Content-Type": "application/octet-stream"})
    assert stage.status_code == 204
    again = images.http("PUT", f"/v2/images/{image.id}/stage", token, data=b"y",
                        headers={"Content-Type": "application/octet-stream"})
    assert again.status_code == 409  # staged already
    assert post({"method": {"name": "glance-direct"}})[0] == 202
    got, text = post({"method": {"name": "glance-direct"}})
    assert got == 409 and "status active cannot be target for import" in text
    conn.image.delete_image(image)
    # the cloud admin may import another project's staged image (modify_image)
    other = conn.image.create_image(name=_name(), disk_format="raw", container_format="bare")
    admin_token, _ = images.login("nubis-admin")
    conn.image.stage_image(other, data=b"z" * 100)
    alt = images.http("POST", f"/v2/images/{other.id}/import", admin_token,
                      json={"method": {"name": "glance-direct"}})
    assert alt.status_code == 202
    conn.image.delete_image(other)


def _queued(images: ImageCloud) -> str:
    """Create an image without data (``openstack image create`` would upload its stdin)."""
    image = images.sdk("nubis-demo").image.create_image(
        name=_name(), disk_format="raw", container_format="bare")
    return str(image.id)


def test_web_download_with_the_openstack_cli(images: ImageCloud, web_source: WebSource,
                                             tmp_path: Path) -> None:
    """``openstack image import --method web-download``: plain, chunked and redirected."""
    token, _ = images.login("nubis-demo")
    for path in ("/disk.raw", "/chunked.raw", "/redirect"):
        image_id = _queued(images)
        images.osc("image", "import", "--method", "web-download", "--uri",
                   web_source.url(path), image_id)
        becomes(images, token, image_id, "active")
        shown = images.osc("image", "show", image_id, "-f", "json")
        assert shown["size"] == len(web_source.data)
        assert shown["checksum"] == hashlib.md5(web_source.data,
                                                usedforsecurity=False).hexdigest()
        out = tmp_path / "back.raw"
        images.osc("image", "save", "--file", str(out), image_id)
        assert out.read_bytes() == web_source.data
        images.osc("image", "delete", image_id)
    assert web_source.hits["main"][-2:] == ["/redirect", "/disk.raw"]


def test_web_download_refusals_and_failures(images: ImageCloud, web_source: WebSource) -> None:
    """URIs that fail the filters are 400s; a download that fails leaves the image queued."""
    token, _ = images.login("nubis-demo")
    image_id = _queued(images)
    path = f"/v2/images/{image_id}/import"

    def post(uri: object) -> requests.Response:
        return images.http("POST", path, token,
                           json={"method": {"name": "web-download", "uri": uri}})

    blocked = f"http://127.0.0.2:{web_source.blocked_port}/disk.raw"
    for uri in (web_source.url("/x").replace(str(web_source.port), "8081"),  # a port
                f"ftp://127.0.0.1:{web_source.port}/disk.raw", blocked,  # a network
                f"http://user:pw@127.0.0.1:{web_source.port}/disk.raw", None,
                "http://169.254.169.254/latest/meta-data/", web_source.url("/a b")):
        r = post(uri)
        assert r.status_code == 400, (uri, r.text)
        assert f"URI for web-download does not pass filtering: {uri}" in r.text
    for failing in ("/missing", "/short", "/to-blocked"):
        assert post(web_source.url(failing)).status_code == 202
        becomes(images, token, image_id, "queued")
        assert images.service_objects(image_id) == []
    assert web_source.hits["blocked"] == []  # the redirect into a blocked network
    assert post(web_source.url("/disk.raw")).status_code == 202
    becomes(images, token, image_id, "active")
    r = post(web_source.url("/disk.raw"))
    assert r.status_code == 409 and "status active cannot be target" in r.text
    staged = _queued(images)
    images.http("PUT", f"/v2/images/{staged}/stage", token, data=b"x",
                headers={"Content-Type": "application/octet-stream"})
    r = images.http("POST", f"/v2/images/{staged}/import", token,
                    json={"method": {"name": "web-download", "uri": web_source.url("/d")}})
    assert r.status_code == 409
    assert "Image needs to be in 'queued' state to use 'web-download' method" in r.text
    for done in (image_id, staged):
        images.osc("image", "delete", done)


def test_import_tasks_say_what_happened(images: ImageCloud, web_source: WebSource,
                                        alt: Project) -> None:
    """``openstack image task list/show`` and openstacksdk's ``image_tasks``."""
    token, project_id = images.login("nubis-demo")
    image_id = _queued(images)
    path = f"/v2/images/{image_id}/import"
    for uri in (web_source.url("/missing"), web_source.url("/disk.raw")):
        r = images.http("POST", path, token,
                        json={"method": {"name": "web-download", "uri": uri}})
        assert r.status_code == 202
        becomes(images, token, image_id, "queued" if "missing" in uri else "active")
    mine = [t for t in images.osc("image", "task", "list", "-f", "json")
            if t["ID"] in {x.id for x in images.sdk("nubis-demo").image.image_tasks(image_id)}]
    assert sorted(t["Status"] for t in mine) == ["failure", "success"]
    assert {(t["Type"], t["Owner"]) for t in mine} == {("api_image_import", project_id)}
    failed = next(t for t in mine if t["Status"] == "failure")
    shown = images.osc("image", "task", "show", failed["ID"], "-f", "json")
    assert "answered 404" in shown["message"] and shown["expires_at"]
    assert shown["input"]["import_req"]["method"]["uri"] == web_source.url("/missing")
    done = next(t for t in mine if t["Status"] == "success")
    assert images.osc("image", "task", "show", done["ID"], "-f", "json")["result"] == {
        "image_id": image_id}
    failures = images.osc("image", "task", "list", "--status", "failure", "-f", "json")
    assert failed["ID"] in {t["ID"] for t in failures}
    assert done["ID"] not in {t["ID"] for t in failures}
    # another project sees neither the tasks nor the image's; the admin sees them
    other, _ = images.token(alt.user, alt.password, alt.name)
    assert images.http("GET", f"/v2/tasks/{failed['ID']}", other).status_code == 404
    assert failed["ID"] not in {t["id"] for t in images.http(
        "GET", "/v2/tasks", other).json()["tasks"]}
    assert images.http("GET", f"/v2/images/{image_id}/tasks", other).status_code == 404
    admin, _ = images.login("nubis-admin")
    assert images.http("GET", f"/v2/tasks/{failed['ID']}", admin).json()["status"] == "failure"
    assert images.http("GET", "/v2/tasks?status=sideways", token).status_code == 400
    images.osc("image", "delete", image_id)


def test_task_schemas(images: ImageCloud, web_source: WebSource) -> None:
    """``/v2/schemas/task(s)``: served like the image schemas; tasks shown match them."""
    token, _ = images.login("nubis-demo")
    for name in ("image", "task", "tasks"):
        assert images.http("GET", f"/v2/schemas/{name}", "").status_code == 401
    task = images.http("GET", "/v2/schemas/task", token).json()
    tasks = images.http("GET", "/v2/schemas/tasks", token).json()
    assert task["name"] == "task" and tasks["name"] == "tasks"
    assert task["properties"]["status"]["enum"] == ["pending", "processing", "success",
                                                    "failure"]
    assert {"id", "type", "input", "result", "owner", "message", "expires_at",
            "created_at", "updated_at", "self", "schema"} <= set(task["properties"])
    assert {link["rel"] for link in tasks["links"]} == {"first", "next", "describedby"}
    image_id = _queued(images)
    r = images.http("POST", f"/v2/images/{image_id}/import", token,
                    json={"method": {"name": "web-download", "uri": web_source.url("/nil")}})
    assert r.status_code == 202
    becomes(images, token, image_id, "queued")
    task_id = _task_of(images, image_id)
    listed = images.http("GET", "/v2/tasks", token).json()
    jsonschema.validate(listed, tasks)
    assert task_id in {t["id"] for t in listed["tasks"]}
    shown = images.http("GET", f"/v2/tasks/{task_id}", token).json()
    jsonschema.validate(shown, task)
    assert shown["status"] == "failure" and shown["schema"] == "/v2/schemas/task"
    images.osc("image", "delete", image_id)


def _task_of(images: ImageCloud, image_id: str) -> str:
    """Return the id of the image's only import task (openstacksdk's ``image_tasks``)."""
    found = list(images.sdk("nubis-demo").image.image_tasks(image_id))
    assert len(found) == 1, found
    return str(found[0].id)


def test_an_import_whose_api_process_stopped_is_recovered(
        images: ImageCloud, web_source: WebSource) -> None:
    """A web-download alive keeps its task; once its api process is killed, it is undone.

    The api process really dies (SIGKILL; the watchdog starts a new one) in the
    middle of a download that had stored a first segment. While it ran, its
    lease kept it ``processing`` past the abandonment bound; after the kill, the
    new process's recovery fails the task ("interrupted"), deletes the partial
    objects and puts the image back to ``queued``, where a new import works.
    """
    token, _ = images.login("nubis-demo")
    image_id = _queued(images)
    r = images.http("POST", f"/v2/images/{image_id}/import", token,
                    json={"method": {"name": "web-download", "uri": web_source.url("/slow")}})
    assert r.status_code == 202
    task_id = _task_of(images, image_id)
    prefix = f"{image_id}-{task_id}"
    eventually(lambda: _assert_stored(images, image_id, f"{prefix}-00001"), timeout=120)
    # alive: the lease is renewed, so the task outlives the abandonment bound untouched
    deadline = time.monotonic() + 120
    while True:
        shown = images.osc("image", "task", "show", task_id, "-f", "json")
        assert shown["status"] == "processing", shown
        age = datetime.fromisoformat(shown["updated_at"].rstrip("Z")) - \
            datetime.fromisoformat(shown["created_at"].rstrip("Z"))
        if age.total_seconds() > IMPORT_TIMEOUT + 2:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    assert becomes(images, token, image_id, "importing")["status"] == "importing"
    old_pid = images.cloud.pid("api")
    images.cloud.kill("api", hold=False)
    api_restarted(images, old_pid)
    deadline = time.monotonic() + 120
    while (shown := images.osc("image", "task", "show", task_id, "-f", "json")
           )["status"] == "processing":
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    assert shown["status"] == "failure" and "import was interrupted" in shown["message"]
    assert shown["expires_at"] and shown["result"] is None
    image = becomes(images, token, image_id, "queued")
    assert (image["size"], image["checksum"]) == (None, None)
    eventually(lambda: _assert_stored(images, image_id, None), timeout=60)
    # the image is usable again
    r = images.http("POST", f"/v2/images/{image_id}/import", token,
                    json={"method": {"name": "web-download",
                                     "uri": web_source.url("/disk.raw")}})
    assert r.status_code == 202
    assert becomes(images, token, image_id, "active")["size"] == len(web_source.data)
    images.osc("image", "delete", image_id)
    assert images.service_objects(image_id) == []


def _assert_stored(images: ImageCloud, image_id: str, name: str | None) -> None:
    """Assert the image's objects include ``name`` (None: that there are none)."""
    names = images.service_objects(image_id)
    assert (name in names) if name is not None else names == [], names
