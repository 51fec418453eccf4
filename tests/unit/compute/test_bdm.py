"""``block_device_mapping_v2`` validation (Nova's faults) and the build's volume list."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nubis.api.compute import bdm
from nubis.api.compute.servers import parse_create
from nubis.api.shared.errors import BadRequestError
from nubis.daemons.compute.service import BadBuildRequestError, parse_build

IMAGE = str(uuid.uuid4())
VOL = str(uuid.uuid4())
BFV = {"uuid": IMAGE, "source_type": "image", "destination_type": "volume",
       "boot_index": 0, "volume_size": 1, "delete_on_termination": True}


def _create(bdms: Any, **extra: Any) -> Any:
    body = {"server": {"name": "s", "flavorRef": "1", "networks": "none",
                       "block_device_mapping_v2": bdms, **extra}}
    return parse_create(body, (2, 37))[0]


def test_boot_from_volume_is_volume_backed_without_an_image() -> None:
    req = _create([BFV, {"uuid": VOL, "source_type": "volume", "boot_index": "1"}])
    assert req.volume_backed and req.image_ref == ""
    root = bdm.root_volume(req.block_devices)
    assert root is not None and root.volume_size == 1 and root.delete_on_termination
    data = req.block_devices[1]
    assert (data.destination_type, data.boot_index, data.delete_on_termination) == (
        "volume", 1, False)


def test_local_image_boot_keeps_the_image() -> None:
    req = _create([{"uuid": IMAGE, "source_type": "image", "destination_type": "local",
                    "boot_index": 0, "delete_on_termination": True}])
    assert not req.volume_backed and req.image_ref == IMAGE


@pytest.mark.parametrize(("mapping", "words"), [
    ({**BFV, "source_type": "disk"}, "source_type"),
    ({**BFV, "destination_type": "cloud"}, "destination_type"),
    ({**BFV, "volume_size": None}, "non-zero size"),
    ({**BFV, "uuid": None}, "Missing device UUID"),
    ({**BFV, "uuid": "not-a-uuid"}, "uuid"),
    ({**BFV, "boot_index": 1}, "Boot sequence"),
    ({**BFV, "boot_index": "x"}, "boot_index"),
    ({**BFV, "delete_on_termination": "maybe"}, "delete_on_termination"),
    ({"source_type": "blank", "destination_type": "local", "boot_index": -1,
      "volume_size": 1}, "not supported"),
    ({"uuid": VOL, "source_type": "volume", "destination_type": "local",
      "boot_index": 0}, "Block Device Mapping is Invalid"),
])
def test_bad_mappings_are_nova_400s(mapping: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequestError) as err:
        _create([mapping])
    assert words in str(err.value)


def test_sequences_duplicates_and_counts() -> None:
    vol = {"uuid": VOL, "source_type": "volume", "destination_type": "volume",
           "boot_index": 0}
    with pytest.raises(BadRequestError, match="Boot sequence"):
        _create([BFV, {**vol}])  # two boot_index 0
    with pytest.raises(BadRequestError, match="Duplicate"):
        _create([vol, {**vol, "boot_index": 1}])
    with pytest.raises(BadRequestError, match="multiple instances"):
        _create([vol], min_count=2)
    with pytest.raises(BadRequestError, match="array"):
        _create({"not": "a list"})


def test_build_request_takes_the_volumes() -> None:
    conn = {"driver_volume_type": "file", "data": {"path": "/srv/v/x", "format": "qcow2"}}
    body = {"uuid": str(uuid.uuid4()), "kernel": {"id": "k", "sha512": "a" * 128},
            "volumes": [{"volume_id": VOL, "boot_index": 0, "connection_info": conn},
                        {"volume_id": IMAGE, "boot_index": None, "connection_info": conn}]}
    req = parse_build(body)
    assert req.root_volume is not None and req.root_volume.volume_id == VOL
    assert [v.volume_id for v in req.volumes] == [IMAGE]
    for bad in ({**body, "volumes": [{"volume_id": VOL, "connection_info": {
                    "driver_volume_type": "iscsi", "data": {}}}]},
                {**body, "volumes": [{"volume_id": "x", "connection_info": conn}]},
                {**body, "image": {"id": "i", "sha512": "a" * 128}},
                {**body, "volumes": "all"}):
        with pytest.raises(BadBuildRequestError):
            parse_build(bad)
