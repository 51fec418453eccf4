"""Interoperable image import (``glance-direct``): the ``openstack`` CLI, openstacksdk, errors."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from tests.functional.image.conftest import ImageCloud

pytestmark = pytest.mark.functional


def _name() -> str:
    return f"imp-{uuid.uuid4().hex[:6]}"


def test_info_lists_glance_direct(images: ImageCloud) -> None:
    token, _ = images.login("nubis-demo")
    r = images.http("GET", "/v2/info/import", token)
    assert r.json()["import-methods"]["value"] == ["glance-direct"]


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
            ({"method": {"name": "web-download", "uri": "http://127.0.0.1/x"}}, 400,
             "Unknown import method name 'web-download'"),
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
