"""The real ``openstack`` CLI against the volume service of a whole cloud.

Volumes are real qcow2 files made by the volume daemon with ``qemu-img``; backups
go through the real proxy into the object store. Each test removes what it made.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from tests.functional.volume.conftest import VolumeCloud, wait_gone

pytestmark = pytest.mark.functional


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_create_snapshot_clone_extend_delete(volumes: VolumeCloud) -> None:
    v1, s1, v2 = _name("v"), _name("s"), _name("v")
    made = volumes.osc("volume", "create", "--size", "1", v1, "-f", "json")
    assert made["status"] == "creating" and made["size"] == 1
    shown = volumes.wait("volume", v1)
    assert str(shown["bootable"]).lower() == "false" and shown["type"] == "__DEFAULT__"
    assert (volumes.volumes_path / f"volume-{made['id']}").is_file()
    volumes.osc("volume", "snapshot", "create", "--volume", v1, s1, "-f", "json")
    volumes.wait("snapshot", s1)
    volumes.osc("volume", "create", "--snapshot", s1, v2, "-f", "json")
    clone = volumes.wait("volume", v2)
    assert clone["size"] == 1 and clone["snapshot_id"]
    volumes.osc("volume", "set", "--size", "2", "--property", "k=v", v1)
    extended = volumes.wait("volume", v1)
    assert extended["size"] == 2 and extended["properties"] == {"k": "v"}
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json",
                           str(volumes.volumes_path / f"volume-{made['id']}")],
                          capture_output=True, text=True, check=True).stdout
    assert '"virtual-size": 2147483648' in info
    # A volume with snapshots is only deleted with cascade (Cinder's 400 otherwise).
    refused = volumes.osc("volume", "delete", v1, check=False)
    assert refused.returncode != 0 and "dependent snapshots" in refused.stderr
    # Shrinking is refused.
    shrink = volumes.osc("volume", "set", "--size", "1", v1, check=False)
    assert shrink.returncode != 0
    volumes.osc("volume", "delete", "--purge", v1)
    volumes.osc("volume", "delete", v2)
    conn = volumes.sdk()
    for vid in (made["id"], clone["id"]):
        wait_gone(conn.block_storage.find_volume, vid)
    assert not (volumes.volumes_path / f"volume-{made['id']}").exists()
    assert list(conn.block_storage.snapshots(name=s1)) == []


def test_backup_restore_round_trips_bytes(volumes: VolumeCloud) -> None:
    src, dst = _name("src"), _name("dst")
    vol = volumes.osc("volume", "create", "--size", "1", src, "-f", "json")
    volumes.wait("volume", src)
    path = volumes.volumes_path / f"volume-{vol['id']}"
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 3M",
                    "-c", "write -P 0x5c 1000M 1M", str(path)], check=True,
                   capture_output=True)
    full = volumes.osc("volume", "backup", "create", "--name", _name("b"), src, "-f", "json")
    done = volumes.wait("backup", full["id"])
    assert done["is_incremental"] is False and done["object_count"] >= 2
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x11 512M 1M", str(path)],
                   check=True, capture_output=True)
    inc = volumes.osc("volume", "backup", "create", "--incremental", "--name", _name("i"),
                      src, "-f", "json")
    inc_done = volumes.wait("backup", inc["id"])
    assert inc_done["is_incremental"] is True
    assert inc_done["object_count"] < done["object_count"] + 1
    restored = volumes.osc("volume", "backup", "restore", inc["id"], dst, "-f", "json")
    volumes.wait("volume", restored["volume_id"])
    volumes.wait("backup", inc["id"])
    out = volumes.volumes_path / f"volume-{restored['volume_id']}"
    same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(path),
                           str(out)], capture_output=True, text=True, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    # The parent cannot go while an incremental depends on it.
    assert volumes.osc("volume", "backup", "delete", full["id"], check=False).returncode != 0
    volumes.osc("volume", "backup", "delete", inc["id"])
    conn = volumes.sdk()
    wait_gone(conn.block_storage.find_backup, inc["id"])
    volumes.osc("volume", "backup", "delete", full["id"])
    wait_gone(conn.block_storage.find_backup, full["id"])
    volumes.osc("volume", "delete", src, restored["volume_id"])


def test_volume_from_image_is_bootable_and_holds_its_bytes(volumes: VolumeCloud,
                                                           tmp_path: object) -> None:
    from pathlib import Path

    src = Path(str(tmp_path)) / "img.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src), "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 1M", str(src)],
                   check=True, capture_output=True)
    image, vol = _name("img"), _name("fromimg")
    img = volumes.osc("image", "create", "--file", str(src), "--disk-format", "qcow2",
                      "--container-format", "bare", image, "-f", "json")
    made = volumes.osc("volume", "create", "--image", image, "--size", "1", vol, "-f", "json")
    shown = volumes.wait("volume", vol)
    assert str(shown["bootable"]).lower() == "true"
    assert shown["volume_image_metadata"]["image_id"] == img["id"]
    same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(src),
                           str(volumes.volumes_path / f"volume-{made['id']}")],
                          capture_output=True, text=True, check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    too_small = volumes.osc("volume", "create", "--image", image, "--size", "0", vol,
                            check=False)
    assert too_small.returncode != 0
    volumes.osc("volume", "delete", vol)
    volumes.osc("image", "delete", image)
