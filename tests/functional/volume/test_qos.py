"""QoS specs (``openstack volume qos ...``) and the front-end limits a connection carries."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.functional.volume.conftest import VolumeCloud

pytestmark = pytest.mark.functional


def test_qos_specs_their_types_and_the_connection(volumes: VolumeCloud) -> None:
    tag = uuid.uuid4().hex[:6]

    def admin(*args: str) -> Any:
        return volumes.osc(*args, cloud="nubis-admin")

    spec = admin("volume", "qos", "create", "--consumer", "front-end",
                 "--property", "total_iops_sec=500", "--property", "read_bytes_sec_per_gb=1000",
                 "--property", "read_bytes_sec_per_gb_min=1500", f"gold-{tag}", "-f", "json")
    assert spec["consumer"] == "front-end"
    vtype = admin("volume", "type", "create", f"qos-{tag}", "-f", "json")

    def type_qos() -> object:
        r = volumes.http("GET", f"/types/{vtype['id']}", cloud="nubis-admin")
        return r.json()["volume_type"]["qos_specs_id"]

    assert type_qos() is None
    admin("volume", "qos", "associate", spec["id"], vtype["id"])
    shown = admin("volume", "qos", "show", spec["id"], "-f", "json")
    assert shown["associations"] in (
        [vtype["name"]], vtype["name"])  # a list or a joined string, by OSC version
    assert type_qos() == spec["id"]
    admin("volume", "qos", "set", "--property", "write_iops_sec=100", spec["id"])
    admin("volume", "qos", "unset", "--property", "total_iops_sec", spec["id"])
    props = admin("volume", "qos", "show", spec["id"], "-f", "json")["properties"]
    assert props == {"read_bytes_sec_per_gb": "1000", "read_bytes_sec_per_gb_min": "1500",
                     "write_iops_sec": "100"}
    # Only admins manage them; a bad limit is refused
    denied = volumes.osc("volume", "qos", "list", check=False)
    assert denied.returncode != 0 and "403" in denied.stderr + denied.stdout
    bad = volumes.osc("volume", "qos", "create", "--property", "total_iops_sec=lots",
                      f"x-{tag}", cloud="nubis-admin", check=False)
    assert bad.returncode != 0 and "non-negative integer" in bad.stderr
    # A volume of the type: its connection carries the front-end specs, scaled by size
    vol = volumes.osc("volume", "create", "--size", "2", "--type", vtype["name"],
                      f"q-{tag}", "-f", "json")["id"]
    volumes.wait("volume", vol)
    r = volumes.http("POST", f"/volumes/{vol}/action",
                     json={"os-initialize_connection": {"connector": {"host": "h"}}})
    assert r.status_code == 200, r.text
    assert r.json()["connection_info"]["data"]["qos_specs"] == {
        "read_bytes_sec": "2000", "write_iops_sec": "100"}
    # In use: not deletable without --force; disassociated, it is
    refused = volumes.osc("volume", "qos", "delete", spec["id"], cloud="nubis-admin",
                          check=False)
    assert refused.returncode != 0
    admin("volume", "qos", "disassociate", "--volume-type", vtype["id"], spec["id"])
    assert type_qos() is None
    r = volumes.http("POST", f"/volumes/{vol}/action",
                     json={"os-initialize_connection": {"connector": {"host": "h"}}})
    assert r.json()["connection_info"]["data"]["qos_specs"] is None
    admin("volume", "qos", "delete", spec["id"])
    volumes.osc("volume", "delete", vol)
