"""Retype (``os-retype``) with the ``openstack`` CLI, and Cinder's refusals."""

from __future__ import annotations

import uuid

import pytest

from tests.functional.volume.conftest import VolumeCloud

pytestmark = pytest.mark.functional


def test_retype_changes_the_type_only(volumes: VolumeCloud) -> None:
    tag = uuid.uuid4().hex[:6]
    fast = volumes.osc("volume", "type", "create", f"fast-{tag}", "-f", "json",
                       cloud="nubis-admin")
    hidden = volumes.osc("volume", "type", "create", "--private", f"hidden-{tag}",
                         "-f", "json", cloud="nubis-admin")
    vol = volumes.osc("volume", "create", "--size", "1", f"rt-{tag}", "-f", "json")["id"]
    volumes.wait("volume", vol)
    volumes.osc("volume", "set", "--type", fast["name"], "--retype-policy", "never", vol)
    shown = volumes.osc("volume", "show", vol, "-f", "json")
    assert (shown["type"], shown["status"], shown["size"]) == (fast["name"], "available", 1)
    listed = volumes.osc("volume", "list", "--long", "-f", "json")
    assert next(v["Type"] for v in listed if v["ID"] == vol) == fast["name"]

    def retype(body: dict[str, str]) -> tuple[int, str]:
        r = volumes.http("POST", f"/volumes/{vol}/action", json={"os-retype": body})
        return r.status_code, r.json()["badRequest"]["message"] if r.status_code == 400 else ""

    status, message = retype({"new_type": fast["id"]})
    assert status == 400 and "same as original" in message
    status, message = retype({"new_type": hidden["name"]})  # private, not shared: unknown
    assert status == 400 and "Invalid volume_type passed" in message
    status, message = retype({"new_type": "__DEFAULT__", "migration_policy": "sometimes"})
    assert status == 400 and "migration_policy must be" in message
    status, message = retype({})
    assert status == 400 and "must be specified" in message
    assert volumes.osc("volume", "show", vol, "-f", "json")["type"] == fast["name"]
    status, _ = retype({"new_type": "__DEFAULT__", "migration_policy": "on-demand"})
    assert status == 202
    assert volumes.osc("volume", "show", vol, "-f", "json")["type"] == "__DEFAULT__"
    volumes.osc("volume", "delete", vol)
