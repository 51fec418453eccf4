"""Config drives: Nova's layout, limits, and a real ISO read back with isoinfo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from nubis.daemons.compute import configdrive
from nubis.daemons.compute.configdrive import InstanceMetadata
from nubis.daemons.compute.errors import ConfigDriveError

UUID = "0b9a9f3e-2c49-4f0e-8d2f-6a4b5c7d8e9f"


def md(**kw: object) -> InstanceMetadata:
    args: dict[str, object] = {"uuid": UUID, "hostname": "vm-1", "name": "VM one",
                               "project_id": "proj", "public_keys": {"k1": "ssh-ed25519 AAA"},
                               "meta": {"role": "web"}, "user_data": b"#!/bin/sh\necho hi\n",
                               "launch_index": 2, "availability_zone": "az1",
                               "random_seed": b"\x01\x02"}
    args.update(kw)
    return InstanceMetadata(**args)  # type: ignore[arg-type]


def test_meta_data_shape() -> None:
    doc = configdrive.meta_data(md())
    assert doc["uuid"] == UUID and doc["hostname"] == "vm-1" and doc["name"] == "VM one"
    assert doc["launch_index"] == 2 and doc["availability_zone"] == "az1"
    assert doc["project_id"] == "proj" and doc["meta"] == {"role": "web"}
    assert doc["public_keys"] == {"k1": "ssh-ed25519 AAA"}
    assert doc["keys"] == [{"name": "k1", "type": "ssh", "data": "ssh-ed25519 AAA"}]
    assert doc["random_seed"] == "AQI="
    bare = configdrive.meta_data(md(public_keys={}, random_seed=b""))
    assert "public_keys" not in bare and "random_seed" not in bare


def test_files() -> None:
    files = configdrive.files(md())
    assert set(files) == {f"openstack/latest/{n}" for n in (
        "meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json",
        "user_data")}
    assert files["openstack/latest/user_data"] == b"#!/bin/sh\necho hi\n"
    assert json.loads(files["openstack/latest/network_data.json"]) == {
        "links": [], "networks": [], "services": []}
    assert "openstack/latest/user_data" not in configdrive.files(md(user_data=None))


@pytest.mark.parametrize("bad", [
    {"uuid": "nope"}, {"hostname": "-bad"}, {"hostname": "a" * 64}, {"hostname": "a b"},
    {"user_data": b"x" * (configdrive.MAX_USER_DATA + 1)},
    {"meta": {str(i): "v" for i in range(configdrive.MAX_METADATA_ITEMS + 1)}},
    {"launch_index": -1},
])
def test_invalid_metadata(bad: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigDriveError):
        configdrive.build(md(**bad), tmp_path / "disk.config")
    assert list(tmp_path.iterdir()) == []


def isoinfo(*args: str) -> str:
    return subprocess.run(["isoinfo", *args], capture_output=True, check=True,
                          text=True).stdout


def test_real_iso(tmp_path: Path) -> None:
    user_data = "#cloud-config\nfinal_message: héllo\n".encode()
    iso = configdrive.build(md(user_data=user_data), tmp_path / "disk.config")
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]  # staging removed
    assert "Volume id: config-2" in isoinfo("-d", "-i", str(iso))
    listing = isoinfo("-R", "-f", "-i", str(iso)).split()
    assert "/openstack/latest/meta_data.json" in listing
    meta = json.loads(isoinfo("-R", "-x", "/openstack/latest/meta_data.json", "-i", str(iso)))
    assert meta["uuid"] == UUID and meta["hostname"] == "vm-1"
    got = subprocess.run(["isoinfo", "-R", "-x", "/openstack/latest/user_data", "-i", str(iso)],
                         capture_output=True, check=True).stdout
    assert got == user_data
