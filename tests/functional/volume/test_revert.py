"""Revert to snapshot (volume API 3.40) with the ``openstack`` CLI, on real qcow2 files."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.volume.conftest import VolumeCloud

pytestmark = pytest.mark.functional
V340 = ("--os-volume-api-version", "3.40")


def _qemu_io(path: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def _action(volumes: VolumeCloud, vol: str, body: dict[str, Any],
            version: str = "3.40") -> requests.Response:
    return volumes.http("POST", f"/volumes/{vol}/action", json=body,
                        headers={"OpenStack-API-Version": f"volume {version}"})


def test_revert_to_the_latest_snapshot(volumes: VolumeCloud) -> None:
    name = f"rev-{uuid.uuid4().hex[:6]}"
    vol = volumes.osc("volume", "create", "--size", "1", name, "-f", "json")["id"]
    volumes.wait("volume", vol)
    path = volumes.volumes_path / f"volume-{vol}"
    assert _qemu_io(path, "write -P 0x11 0 1M").returncode == 0
    first = volumes.osc("volume", "snapshot", "create", "--volume", vol, f"{name}-1",
                        "-f", "json")["id"]
    volumes.wait("snapshot", first)
    assert _qemu_io(path, "write -P 0x22 0 1M").returncode == 0
    latest = volumes.osc("volume", "snapshot", "create", "--volume", vol, f"{name}-2",
                         "-f", "json")["id"]
    volumes.wait("snapshot", latest)
    assert _qemu_io(path, "write -P 0x33 0 1M").returncode == 0
    # only the latest snapshot, and only from 3.40
    old = _action(volumes, vol, {"revert": {"snapshot_id": first}})
    assert old.status_code == 400 and "not the latest" in old.text
    early = _action(volumes, vol, {"revert": {"snapshot_id": latest}}, version="3.39")
    assert early.status_code == 400
    volumes.osc(*V340, "volume", "revert", latest)
    volumes.wait("volume", vol)
    assert volumes.osc("volume", "snapshot", "show", latest, "-f", "json")["status"] == \
        "available"
    check = _qemu_io(path, "read -P 0x22 0 1M")
    assert check.returncode == 0 and "Pattern verification failed" not in check.stdout
    volumes.osc("volume", "delete", "--purge", vol)
