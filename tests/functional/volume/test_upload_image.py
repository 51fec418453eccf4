"""``openstack image create --volume``: an image of a volume's bytes (os-volume_upload_image)."""

from __future__ import annotations

import subprocess
import time
import uuid
from typing import Any

import pytest
import requests

from tests.functional.volume.conftest import VolumeCloud

pytestmark = pytest.mark.functional


def _wait_image(volumes: VolumeCloud, image_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = volumes.osc("image", "show", image_id, "-f", "json")
        if doc["status"] == "active":
            return doc
        assert doc["status"] in ("queued", "saving"), doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.5)


def test_image_from_a_volume_holds_its_bytes(volumes: VolumeCloud) -> None:
    name = f"up-{uuid.uuid4().hex[:6]}"
    vol = volumes.osc("volume", "create", "--size", "1", name, "-f", "json")["id"]
    volumes.wait("volume", vol)
    path = volumes.volumes_path / f"volume-{vol}"
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 4096 3M", str(path)],
                   capture_output=True, timeout=60, check=True)
    made = volumes.osc("image", "create", "--volume", vol, "--disk-format", "raw",
                       f"{name}-img", "-f", "json")
    assert made["status"] == "uploading" and made["disk_format"] == "raw"
    image = _wait_image(volumes, made["image_id"])
    assert image["size"] == 1024 ** 3 and image["min_disk"] == 1
    volumes.wait("volume", vol)  # available again
    conn = volumes.sdk()
    base = conn.image.get_endpoint().rstrip("/").removesuffix("/v2")
    got = requests.get(f"{base}/v2/images/{image['id']}/file",
                       headers={"X-Auth-Token": conn.auth_token,
                                "Range": f"bytes=0-{4096 + 3 * 1024 * 1024 + 4095}"},
                       timeout=120)
    assert got.status_code == 206
    head = got.content
    assert head[:4096] == bytes(4096)
    assert head[4096:4096 + 3 * 1024 * 1024] == b"\x5a" * (3 * 1024 * 1024)
    assert head[-4096:] == bytes(4096)
    # qcow2 too, through the 3.1 visibility option
    qcow = volumes.osc("--os-volume-api-version", "3.1", "image", "create", "--volume", vol,
                       "--disk-format", "qcow2", "--private", f"{name}-q", "-f", "json")
    q = _wait_image(volumes, qcow["image_id"])
    assert q["disk_format"] == "qcow2" and q["visibility"] == "private"
    for image_id in (image["id"], q["id"]):
        volumes.osc("image", "delete", image_id)
    volumes.osc("volume", "delete", vol)


def test_upload_refusals(volumes: VolumeCloud) -> None:
    conn = volumes.sdk()
    vol = conn.block_storage.create_volume(size=1, name=f"up-{uuid.uuid4().hex[:6]}")
    conn.block_storage.wait_for_status(vol, "available", wait=60)
    url = conn.block_storage.get_endpoint().rstrip("/")

    def act(arg: dict[str, Any]) -> requests.Response:
        return requests.post(f"{url}/volumes/{vol.id}/action", timeout=60,
                             headers={"X-Auth-Token": conn.auth_token},
                             json={"os-volume_upload_image": arg})

    for arg, words in (({}, "image_name"),
                       ({"image_name": "x", "disk_format": "vmdk"}, "disk-format"),
                       ({"image_name": "x", "container_format": "ovf"}, "container-format")):
        r = act(arg)
        assert r.status_code == 400 and words in r.text, (arg, r.text)
    images = {i.name for i in volumes.sdk().image.images()}
    assert "x" not in images  # nothing was created for a refused request
    conn.block_storage.delete_volume(vol)
