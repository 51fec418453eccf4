"""Bad input and limits through openstacksdk (and raw HTTP for the exact fault bodies)."""

from __future__ import annotations

import uuid
from typing import Any

import openstack.exceptions
import pytest
import requests

from tests.functional.volume.conftest import VolumeCloud, wait_gone

pytestmark = pytest.mark.functional


@pytest.mark.parametrize("size", [0, -1, "x", 1.5])
def test_bad_sizes_are_cinder_400s(volumes: VolumeCloud, size: Any) -> None:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    r = volumes.http("POST", "/volumes", json={"volume": {"size": size, "name": name}})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"badRequest"} and r.json()["badRequest"]["code"] == 400
    assert list(volumes.sdk().block_storage.volumes(name=name)) == []


def test_unknown_type_is_404_and_creates_nothing(volumes: VolumeCloud) -> None:
    name = f"typed-{uuid.uuid4().hex[:6]}"
    r = volumes.http("POST", "/volumes",
              json={"volume": {"size": 1, "name": name, "volume_type": "nope"}})
    assert r.status_code == 404 and "itemNotFound" in r.json()
    assert list(volumes.sdk().block_storage.volumes(name=name)) == []


def test_versions_and_microversions(volumes: VolumeCloud) -> None:
    conn = volumes.sdk()
    root = conn.block_storage.get_endpoint().rstrip("/").rsplit("/v3", 1)[0]
    r = requests.get(f"{root}/", timeout=30)
    assert r.status_code == 300
    doc = r.json()["versions"][0]
    assert doc["version"] == "3.70" and doc["min_version"] == "3.0"
    ok = volumes.http("GET", "/volumes", headers={"OpenStack-API-Version": "volume 3.70"})
    assert ok.headers["OpenStack-API-Version"] == "volume 3.70"
    too_new = volumes.http("GET", "/volumes",
                    headers={"OpenStack-API-Version": "volume 3.71"})
    assert too_new.status_code == 406


def test_quota_exceeded_is_413(volumes: VolumeCloud) -> None:
    admin = volumes.sdk("nubis-admin")
    project = admin.identity.find_project("demo")
    r = volumes.http("PUT", f"/os-quota-sets/{project.id}", cloud="nubis-admin",
              json={"quota_set": {"gigabytes": 3}})
    assert r.status_code == 200, r.text
    try:
        big = volumes.http("POST", "/volumes", json={"volume": {"size": 4}})
        assert big.status_code == 413 and "overLimit" in big.json(), big.text
        assert "gigabytes" in big.json()["overLimit"]["message"]
        limits = volumes.http("GET", "/limits").json()["limits"]["absolute"]
        assert limits["maxTotalVolumeGigabytes"] == 3
    finally:
        volumes.http("DELETE", f"/os-quota-sets/{project.id}", cloud="nubis-admin")


def test_other_projects_volume_is_invisible(volumes: VolumeCloud) -> None:
    admin = volumes.sdk("nubis-admin")
    vol = admin.block_storage.create_volume(size=1, name=f"adm-{uuid.uuid4().hex[:6]}")
    try:
        admin.block_storage.wait_for_status(vol, "available", wait=60)
        demo = volumes.sdk()
        with pytest.raises(openstack.exceptions.NotFoundException):
            demo.block_storage.get_volume(vol.id)
        r = volumes.http("DELETE", f"/volumes/{vol.id}")
        assert r.status_code == 404 and "itemNotFound" in r.json()
    finally:
        admin.block_storage.delete_volume(vol.id)


def test_attached_volume_cannot_be_deleted(volumes: VolumeCloud) -> None:
    conn = volumes.sdk()
    vol = conn.block_storage.create_volume(size=1, name=f"att-{uuid.uuid4().hex[:6]}")
    conn.block_storage.wait_for_status(vol, "available", wait=60)
    server = str(uuid.uuid4())
    headers = {"OpenStack-API-Version": "volume 3.44"}
    made = volumes.http("POST", "/attachments", headers=headers, json={"attachment": {
        "volume_uuid": vol.id, "instance_uuid": server, "connector": {"host": "h"}}})
    assert made.status_code == 200, made.text
    att = made.json()["attachment"]
    assert att["connection_info"]["driver_volume_type"] == "file"
    done = volumes.http("POST", f"/attachments/{att['id']}/action", headers=headers,
                 json={"os-complete": None})
    assert done.status_code == 204
    assert conn.block_storage.get_volume(vol.id).status == "in-use"
    refused = volumes.http("DELETE", f"/volumes/{vol.id}")
    assert refused.status_code == 400 and "badRequest" in refused.json()
    gone = volumes.http("DELETE", f"/attachments/{att['id']}", headers=headers)
    assert gone.status_code == 200
    assert conn.block_storage.get_volume(vol.id).status == "available"
    conn.block_storage.delete_volume(vol.id)


def test_in_use_extend_from_342_and_snapshot_from_366(volumes: VolumeCloud) -> None:
    conn = volumes.sdk()
    vol = conn.block_storage.create_volume(size=1, name=f"use-{uuid.uuid4().hex[:6]}")
    conn.block_storage.wait_for_status(vol, "available", wait=60)
    v344 = {"OpenStack-API-Version": "volume 3.44"}
    att = volumes.http("POST", "/attachments", headers=v344, json={"attachment": {
        "volume_uuid": vol.id, "instance_uuid": str(uuid.uuid4()),
        "connector": {"host": "h"}}}).json()["attachment"]
    volumes.http("POST", f"/attachments/{att['id']}/action", headers=v344,
          json={"os-complete": None})
    assert conn.block_storage.get_volume(vol.id).status == "in-use"
    extend = {"os-extend": {"new_size": 2}}
    old = volumes.http("POST", f"/volumes/{vol.id}/action", json=extend)
    assert old.status_code == 400 and "'available' to extend" in old.text
    new = volumes.http("POST", f"/volumes/{vol.id}/action", json=extend,
                headers={"OpenStack-API-Version": "volume 3.42"})
    assert new.status_code == 202, new.text
    conn.block_storage.wait_for_status(vol, "in-use", wait=60)  # not attached to a guest:
    assert conn.block_storage.get_volume(vol.id).size == 2      # qemu-img resize did it
    snap = {"snapshot": {"volume_id": vol.id, "name": "s"}}
    refused = volumes.http("POST", "/snapshots", json=snap)
    assert refused.status_code == 400 and "in-use" in refused.text
    no_false = volumes.http("POST", "/snapshots", headers={
        "OpenStack-API-Version": "volume 3.66"},
        json={"snapshot": {**snap["snapshot"], "force": False}})
    assert no_false.status_code == 400
    made = volumes.http("POST", "/snapshots", json=snap,
                 headers={"OpenStack-API-Version": "volume 3.66"})
    assert made.status_code == 202, made.text
    sid = made.json()["snapshot"]["id"]
    conn.block_storage.wait_for_status(conn.block_storage.get_snapshot(sid), "available",
                                       wait=60)
    conn.block_storage.delete_snapshot(sid)
    volumes.http("DELETE", f"/attachments/{att['id']}", headers=v344)
    wait_gone(conn.block_storage.find_snapshot, sid)
    conn.block_storage.delete_volume(vol.id)
