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


def test_qos_spec_refusals(volumes: VolumeCloud) -> None:
    """Cinder's answers to bad QoS requests (admin calls the CLI cannot all make)."""
    tag = uuid.uuid4().hex[:6]

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        r = volumes.http(method, path, cloud="nubis-admin", json=body)
        return r.status_code, (r.json() if r.content else None)

    status, doc = call("POST", "/qos-specs", {"qos_specs": {"name": f"a-{tag}",
                                                            "consumer": "both"}})
    assert status == 200 and doc["qos_specs"]["consumer"] == "both"
    first = doc["qos_specs"]["id"]
    status, doc = call("POST", "/qos-specs", {"qos_specs": {"name": f"a-{tag}"}})
    assert status == 409 and "already exists" in doc["conflictingRequest"]["message"]
    status, doc = call("POST", "/qos-specs", {"qos_specs": {"name": f"b-{tag}",
                                                            "consumer": "middle"}})
    assert status == 400 and "consumer" in doc["badRequest"]["message"]
    status, doc = call("POST", "/qos-specs", {"qos_specs": {"name": f"b-{tag}"}})
    second = doc["qos_specs"]["id"]
    assert doc["qos_specs"]["consumer"] == "back-end"  # Cinder's default
    vtype = volumes.osc("volume", "type", "create", f"t-{tag}", "-f", "json",
                        cloud="nubis-admin")["id"]
    assert call("GET", f"/qos-specs/{first}/associate")[0] == 400  # no vol_type_id
    assert call("GET", f"/qos-specs/{first}/associate?vol_type_id=nope")[0] == 404
    assert call("GET", f"/qos-specs/{first}/associate?vol_type_id={vtype}")[0] == 202
    status, doc = call("GET", f"/qos-specs/{second}/associate?vol_type_id={vtype}")
    assert status == 400 and "already associated" in doc["badRequest"]["message"]
    status, doc = call("GET", f"/qos-specs/{first}/associations")
    assert doc == {"qos_associations": [{"association_type": "volume_type",
                                         "name": f"t-{tag}", "id": vtype}]}
    status, doc = call("PUT", f"/qos-specs/{first}/delete_keys", {"keys": ["absent"]})
    assert status == 404 and "absent" in doc["itemNotFound"]["message"]
    assert call("GET", f"/qos-specs/{first}/disassociate_all")[0] == 202
    assert call("GET", f"/qos-specs/{first}/associations")[1] == {"qos_associations": []}
    assert call("GET", "/qos-specs/nope")[0] == 404
    for spec in (first, second):
        assert call("DELETE", f"/qos-specs/{spec}")[0] == 202
    volumes.osc("volume", "type", "delete", vtype, cloud="nubis-admin")
