"""The real ``openstack`` CLI against the image service of a whole cloud.

Each ``openstack`` run costs a second or more of start-up, so tests batch commands.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from tests.functional.image.conftest import ImageCloud, Project

pytestmark = pytest.mark.functional


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_create_list_show_set_unset_save_delete(images: ImageCloud, tmp_path: Path) -> None:
    src = tmp_path / "disk.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    name = f"cli-{uuid.uuid4().hex[:6]}"
    made = images.osc("image", "create", "--file", str(src), "--disk-format", "qcow2",
                      "--container-format", "bare", "--property", "k=v",
                      "--property", "os_distro=debian", name, "-f", "json")
    assert made["status"] == "active" and made["checksum"] == _md5(src)
    assert made["size"] == src.stat().st_size
    listed = images.osc("image", "list", "-f", "json")
    assert {"ID": made["id"], "Name": name, "Status": "active"} in listed
    images.osc("image", "set", "--property", "a=b", "--tag", "gold", "--min-ram", "64",
               "--name", f"{name}-2", name)
    images.osc("image", "unset", "--property", "k", f"{name}-2")
    shown = images.osc("image", "show", made["id"], "-f", "json")
    assert shown["name"] == f"{name}-2" and shown["tags"] == ["gold"] and shown["min_ram"] == 64
    assert shown["properties"]["a"] == "b" and shown["properties"]["os_distro"] == "debian"
    assert "k" not in shown["properties"]
    assert shown["properties"]["os_hash_algo"] == "sha512"
    out = tmp_path / "saved.bin"
    images.osc("image", "save", "--file", str(out), made["id"])
    assert _md5(out) == made["checksum"]
    images.osc("image", "delete", made["id"])
    assert images.osc("image", "show", made["id"], check=False).returncode != 0
    token, _ = images.login("nubis-demo")
    assert images.http("GET", f"/v2/images/{made['id']}", token).status_code == 404
    assert images.service_objects(made["id"]) == []


def test_share_with_a_project_and_accept(images: ImageCloud, alt: Project,
                                         tmp_path: Path) -> None:
    src = tmp_path / "shared.bin"
    src.write_bytes(os.urandom(100_000))
    name = f"shared-{uuid.uuid4().hex[:6]}"
    img = images.osc("image", "create", "--file", str(src), "--disk-format", "raw",
                     "--container-format", "bare", "--shared", name, "-f", "json")
    member = images.osc("image", "add", "project", img["id"], alt.id, "-f", "json")
    assert member["status"] == "pending"
    before = images.osc("image", "list", "-f", "json", project=alt)
    assert img["id"] not in {i["ID"] for i in before}  # pending: not listed yet
    images.osc("image", "set", "--accept", img["id"], project=alt)
    after = images.osc("image", "list", "-f", "json", project=alt)
    assert img["id"] in {i["ID"] for i in after}
    out = tmp_path / "got.bin"
    images.osc("image", "save", "--file", str(out), img["id"], project=alt)
    assert out.read_bytes() == src.read_bytes()
    members = images.osc("image", "member", "list", img["id"], "-f", "json")
    assert [(m["Member ID"], m["Status"]) for m in members] == [(alt.id, "accepted")]
    # a member may not change or delete the owner's image
    refused = images.osc("image", "set", "--name", "stolen", img["id"], check=False,
                         project=alt)
    assert refused.returncode != 0 and "403" in refused.stderr
    images.osc("image", "remove", "project", img["id"], alt.id)
    listed = images.osc("image", "list", "-f", "json", project=alt)
    assert img["id"] not in {i["ID"] for i in listed}


def test_only_admins_publish(images: ImageCloud, tmp_path: Path) -> None:
    name = f"pub-{uuid.uuid4().hex[:6]}"
    refused = images.osc("image", "create", "--public", "--disk-format", "raw",
                         "--container-format", "bare", name, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
    made = images.osc("image", "create", "--public", "--disk-format", "raw",
                      "--container-format", "bare", name, "-f", "json", cloud="nubis-admin")
    assert made["visibility"] == "public"
    seen = images.osc("image", "list", "--public", "-f", "json")  # demo sees it
    assert made["id"] in {i["ID"] for i in seen}
    images.osc("image", "delete", made["id"], cloud="nubis-admin")
