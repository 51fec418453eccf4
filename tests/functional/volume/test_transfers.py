"""Volume transfers between projects with the ``openstack`` CLI, and Cinder's errors."""

from __future__ import annotations

import uuid

from tests.functional.volume.conftest import VolumeCloud


def _volume(volumes: VolumeCloud, snapshot: bool = False) -> tuple[str, str | None]:
    name = f"xfer-{uuid.uuid4().hex[:6]}"
    vol = volumes.osc("volume", "create", "--size", "1", name, "-f", "json")
    volumes.wait("volume", vol["id"])
    snap = None
    if snapshot:
        made = volumes.osc("volume", "snapshot", "create", "--volume", vol["id"],
                           f"{name}-s", "-f", "json")
        snap = volumes.wait("snapshot", made["id"])["id"]
    return vol["id"], snap


def test_transfer_a_volume_and_its_snapshot_to_another_project(volumes: VolumeCloud) -> None:
    vol, snap = _volume(volumes, snapshot=True)
    offer = volumes.osc("volume", "transfer", "request", "create", "--name", "gift", vol,
                        "-f", "json")
    assert offer["volume_id"] == vol and offer["auth_key"]
    assert volumes.osc("volume", "show", vol, "-f", "json")["status"] == "awaiting-transfer"
    listed = volumes.osc("volume", "transfer", "request", "list", "-f", "json")
    assert [t["ID"] for t in listed if t["Volume"] == vol] == [offer["id"]]
    shown = volumes.osc("volume", "transfer", "request", "show", offer["id"], "-f", "json")
    assert shown["name"] == "gift" and "auth_key" not in shown
    # a wrong key is Cinder's 400; the right one hands the volume over
    bad = volumes.http("POST", f"/os-volume-transfer/{offer['id']}/accept",
                cloud="nubis-admin", json={"accept": {"auth_key": "not-the-key"}})
    assert bad.status_code == 400 and "Invalid auth key" in bad.text, bad.text
    volumes.osc("volume", "transfer", "request", "accept", "--auth-key", offer["auth_key"],
                offer["id"], cloud="nubis-admin")
    mine = volumes.osc("volume", "show", vol, "-f", "json", cloud="nubis-admin")
    admin_project = volumes.sdk("nubis-admin").current_project_id
    assert mine["status"] == "available"
    assert mine["os-vol-tenant-attr:tenant_id"] == admin_project
    gone = volumes.osc("volume", "show", vol, check=False)
    assert gone.returncode != 0  # the demo project no longer sees it
    snapped = volumes.osc("volume", "snapshot", "show", str(snap), "-f", "json",
                          cloud="nubis-admin")
    assert snapped["volume_id"] == vol
    again = volumes.http("POST", f"/os-volume-transfer/{offer['id']}/accept",
                  cloud="nubis-admin", json={"accept": {"auth_key": offer["auth_key"]}})
    assert again.status_code == 404  # a transfer is used once
    volumes.osc("volume", "snapshot", "delete", str(snap), cloud="nubis-admin")
    volumes.osc("volume", "delete", vol, cloud="nubis-admin")


def test_withdrawn_transfer_and_refusals(volumes: VolumeCloud) -> None:
    vol, _ = _volume(volumes)
    offer = volumes.osc("volume", "transfer", "request", "create", vol, "-f", "json")
    twice = volumes.http("POST", "/os-volume-transfer",
                  json={"transfer": {"volume_id": vol}})
    assert twice.status_code == 400 and "status must be available" in twice.text
    deleting = volumes.http("DELETE", f"/volumes/{vol}")
    assert deleting.status_code == 400  # a volume on offer cannot be deleted
    volumes.osc("volume", "transfer", "request", "delete", offer["id"])
    assert volumes.osc("volume", "show", vol, "-f", "json")["status"] == "available"
    missing = volumes.http("POST", "/os-volume-transfer", json={"transfer": {}})
    assert missing.status_code == 400
    foreign = volumes.http("POST", "/os-volume-transfer", cloud="nubis-admin",
                    json={"transfer": {"volume_id": str(uuid.uuid4())}})
    assert foreign.status_code == 404
    newer = volumes.http("POST", "/volume-transfers",
                  headers={"OpenStack-API-Version": "volume 3.55"},
                  json={"transfer": {"volume_id": vol, "no_snapshots": True}})
    assert newer.status_code == 202 and newer.json()["transfer"]["no_snapshots"] is True
    volumes.http("DELETE", f"/volume-transfers/{newer.json()['transfer']['id']}")
    volumes.osc("volume", "delete", vol)
