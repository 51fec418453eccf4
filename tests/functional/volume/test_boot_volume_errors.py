"""Bad ``block_device_mapping_v2`` on ``POST /servers``: Nova's JSON faults, nothing made.

Refused before any guest is scheduled, so these need no compute host: the
whole ``nubis up`` cloud of the volume tests serves the compute API, and the
volumes named are real Cinder volumes (missing, another project's, not
bootable, reserved by an attachment).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.functional.volume.conftest import VolumeCloud

pytestmark = pytest.mark.functional


def _compute(volumes: VolumeCloud, method: str, path: str, cloud: str = "nubis-demo",
             **kw: Any) -> requests.Response:
    conn = volumes.sdk(cloud)
    url = conn.compute.get_endpoint().rstrip("/")
    headers = {"X-Auth-Token": conn.auth_token, "OpenStack-API-Version": "compute 2.79"}
    return requests.request(method, f"{url}{path}", headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def flavor(volumes: VolumeCloud) -> str:
    return str(next(iter(volumes.sdk().compute.flavors())).id)


@pytest.fixture(scope="module")
def image(volumes: VolumeCloud) -> str:
    """A small active image (raw bytes) in the demo project."""
    conn = volumes.sdk()
    img = conn.image.create_image(name=f"bdm-{uuid.uuid4().hex[:6]}", disk_format="raw",
                                  container_format="bare", data=b"\0" * 65536)
    return str(img.id)


@pytest.fixture
def blank(volumes: VolumeCloud) -> Iterator[str]:
    conn = volumes.sdk()
    vol = conn.block_storage.create_volume(size=1, name=f"blank-{uuid.uuid4().hex[:6]}")
    conn.block_storage.wait_for_status(vol, "available", wait=120)
    try:
        yield str(vol.id)
    finally:
        conn.block_storage.delete_volume(vol.id)


def _create(volumes: VolumeCloud, flavor: str, bdms: Any, **extra: Any) -> requests.Response:
    name = f"bdm-{uuid.uuid4().hex[:8]}"
    body = {"server": {"name": name, "flavorRef": flavor, "networks": "none",
                       "block_device_mapping_v2": bdms, **extra}}
    r = _compute(volumes, "POST", "/servers", json=body)
    listed = _compute(volumes, "GET", f"/servers?name={name}").json()["servers"]
    assert listed == [], "a refused create left a server behind"
    return r


def _assert_400(r: requests.Response, words: str) -> None:
    assert r.status_code == 400, r.text
    doc = r.json()
    assert set(doc) == {"badRequest"} and doc["badRequest"]["code"] == 400, doc
    assert words in doc["badRequest"]["message"], doc


@pytest.mark.parametrize(("mapping", "words"), [
    ({"source_type": "disk", "destination_type": "volume", "boot_index": 0,
      "volume_size": 1}, "source_type"),
    ({"source_type": "image", "destination_type": "nowhere", "boot_index": 0,
      "volume_size": 1}, "destination_type"),
    ({"source_type": "image", "destination_type": "volume", "boot_index": 0},
     "non-zero size"),
    ({"source_type": "image", "destination_type": "volume", "boot_index": 2,
      "volume_size": 1}, "Boot sequence"),
    ({"source_type": "volume", "destination_type": "volume", "boot_index": 0},
     "Missing device UUID"),
    ({"source_type": "image", "destination_type": "volume", "boot_index": 0,
      "volume_size": 1, "delete_on_termination": "perhaps"}, "delete_on_termination"),
])
def test_malformed_mappings(volumes: VolumeCloud, flavor: str, image: str,
                            mapping: dict[str, Any], words: str) -> None:
    if mapping["source_type"] == "image":
        mapping = {**mapping, "uuid": image}
    _assert_400(_create(volumes, flavor, [mapping]), words)


def test_unknown_and_foreign_volumes(volumes: VolumeCloud, flavor: str) -> None:
    missing = str(uuid.uuid4())
    bdm = {"source_type": "volume", "destination_type": "volume", "boot_index": 0}
    _assert_400(_create(volumes, flavor, [{**bdm, "uuid": missing}]),
                f"failed to get volume {missing}")
    admin = volumes.sdk("nubis-admin")
    theirs = admin.block_storage.create_volume(size=1, name=f"adm-{uuid.uuid4().hex[:6]}")
    try:
        admin.block_storage.wait_for_status(theirs, "available", wait=120)
        _assert_400(_create(volumes, flavor, [{**bdm, "uuid": theirs.id}]),
                    f"failed to get volume {theirs.id}")
    finally:
        admin.block_storage.delete_volume(theirs.id)


def test_volume_not_bootable_or_not_available(volumes: VolumeCloud, flavor: str,
                                              blank: str) -> None:
    bdm = {"source_type": "volume", "destination_type": "volume", "uuid": blank}
    _assert_400(_create(volumes, flavor, [{**bdm, "boot_index": 0}]), "is not bootable")
    conn = volumes.sdk()
    url = conn.block_storage.get_endpoint().rstrip("/")
    headers = {"X-Auth-Token": conn.auth_token, "OpenStack-API-Version": "volume 3.44"}
    made = requests.post(f"{url}/attachments", headers=headers, timeout=60, json={
        "attachment": {"volume_uuid": blank, "instance_uuid": str(uuid.uuid4())}})
    assert made.status_code == 200, made.text
    try:
        r = _create(volumes, flavor, [{**bdm, "boot_index": 1}], imageRef="")
        _assert_400(r, "Boot sequence")
        with_image = _create(volumes, flavor, [{**bdm, "boot_index": 0}])
        _assert_400(with_image, "status must be 'available'")
    finally:
        requests.delete(f"{url}/attachments/{made.json()['attachment']['id']}",
                        headers=headers, timeout=60)
    assert conn.block_storage.get_volume(blank).status == "available"


def test_one_volume_for_many_servers(volumes: VolumeCloud, flavor: str, blank: str) -> None:
    bdm = {"source_type": "volume", "destination_type": "volume", "uuid": blank,
           "boot_index": 0}
    _assert_400(_create(volumes, flavor, [bdm], min_count=2),
                "Cannot attach one or more volumes to multiple instances")


def test_cli_boot_from_a_blank_volume_is_refused(volumes: VolumeCloud, flavor: str,
                                                 blank: str) -> None:
    proc = volumes.osc("server", "create", "--flavor", flavor, "--volume", blank,
                       "--nic", "none", "bdm-cli", check=False)
    assert proc.returncode != 0 and "is not bootable" in proc.stderr, proc.stderr
    assert volumes.osc("server", "list", "--name", "bdm-cli", "-f", "json") == []
