"""Pure parts of the lifecycle actions: request parsing, domain XML resize, statuses."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from nubis.api.compute.lifecycle import _flavor_resources
from nubis.api.compute.model import server_status
from nubis.daemons.compute.domain import DomainSpec, domain_xml
from nubis.daemons.compute.lifecycle import parse_resize, parse_snapshot, resize_domain_xml
from nubis.daemons.compute.service import BadBuildRequestError


def test_resize_domain_xml_changes_only_sizes(tmp_path: Path) -> None:
    spec = DomainSpec(uuid="0e5b4c1e-55f4-4b9c-9a53-4d0b3f1d4c11", name="nubis-x", vcpus=1,
                      memory_mib=128, domain_type="qemu", console_log=tmp_path / "c.log",
                      root_disk=tmp_path / "disk")
    before = ET.fromstring(domain_xml(spec))
    after = ET.fromstring(resize_domain_xml(domain_xml(spec), 2, 192))
    assert after.findtext("vcpu") == "2"
    assert after.findtext("memory") == str(192 * 1024)
    assert after.find("memory").get("unit") == "KiB"  # type: ignore[union-attr]
    assert after.findtext("uuid") == before.findtext("uuid")
    assert ET.tostring(after.find("devices")) == ET.tostring(before.find("devices"))  # type: ignore[arg-type]


def test_parse_resize_and_snapshot() -> None:
    req = parse_resize({"vcpus": 2, "memory_mb": 192, "root_gb": 1, "power_on": False})
    assert (req.vcpus, req.memory_mb, req.root_gb, req.power_on) == (2, 192, 1, False)
    for bad in ({"vcpus": 0, "memory_mb": 128, "root_gb": 1},
                {"vcpus": 1, "memory_mb": "128", "root_gb": 1},
                {"vcpus": True, "memory_mb": 128, "root_gb": 1}, [], None):
        with pytest.raises(BadBuildRequestError):
            parse_resize(bad)
    snap = parse_snapshot({"image_id": "i", "image_url": "http://127.0.0.1/image",
                           "token": "t"})
    assert snap.image_url == "http://127.0.0.1/image"
    for bad_snap in ({"image_id": "i", "image_url": "file:///etc/passwd", "token": "t"},
                     {"image_id": "", "image_url": "http://x", "token": "t"}, "x"):
        with pytest.raises(BadBuildRequestError):
            parse_snapshot(bad_snap)


def test_action_statuses_follow_nova() -> None:
    assert server_status("paused", None) == "PAUSED"
    assert server_status("suspended", None) == "SUSPENDED"
    assert server_status("active", "resize_prep") == "RESIZE"
    assert server_status("stopped", "resize_migrating") == "RESIZE"
    assert server_status("resized", None) == "VERIFY_RESIZE"
    assert server_status("resized", "resize_reverting") == "REVERT_RESIZE"
    assert server_status("active", "rebuilding") == "REBUILD"
    assert server_status("active", "image_uploading") == "ACTIVE"


def test_flavor_resources_drop_zeroes() -> None:
    assert _flavor_resources({"vcpus": 1, "ram": 192, "disk": 0, "ephemeral": 0}) == {
        "VCPU": 1, "MEMORY_MB": 192}


def test_action_bodies_follow_novas_schemas() -> None:
    from nubis.api.compute.lifecycle import _only, _rebuild_keys
    from nubis.api.shared.errors import BadRequestError

    assert "key_name" not in _rebuild_keys((2, 53)) and "key_name" in _rebuild_keys((2, 54))
    assert "personality" in _rebuild_keys((2, 56)) and "user_data" in _rebuild_keys((2, 57))
    _only({"imageRef": "x", "name": "n"}, _rebuild_keys((2, 1)), "rebuild")
    with pytest.raises(BadRequestError, match="'flavor' was unexpected"):
        _only({"flavorRef": "1", "flavor": "2"}, ("flavorRef",), "resize")
