"""Host aggregates (``openstack aggregate ...``) and ``os-simple-tenant-usage``
(``openstack usage list/show``) against the probe cloud."""

from __future__ import annotations

import pytest
import requests

from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = pytest.mark.probe


def fault(r: requests.Response, status: int, name: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    doc = r.json()
    assert list(doc) == [name], doc
    message: str = doc[name]["message"]
    return message


def test_aggregate_cli_flow(compute: ComputeCloud) -> None:
    host = str(compute.osc("hypervisor", "list", "-f", "json")[0]["Hypervisor Hostname"])
    agg = compute.osc("aggregate", "create", "--zone", "zone-a", "agg1", "-f", "json")
    assert agg["name"] == "agg1" and agg["availability_zone"] == "zone-a"
    dup = compute.osc("aggregate", "create", "agg1", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    compute.osc("aggregate", "add", "host", "agg1", host)
    again = compute.osc("aggregate", "add", "host", "agg1", host, check=False)
    assert again.returncode != 0 and "already has host" in again.stderr
    unknown = compute.osc("aggregate", "add", "host", "agg1", "no-such-host", check=False)
    assert unknown.returncode != 0 and "could not be found" in unknown.stderr
    compute.osc("aggregate", "set", "--property", "ssd=true", "agg1")
    shown = compute.osc("aggregate", "show", "agg1", "-f", "json")
    assert shown["hosts"] == [host]
    assert shown["properties"] == {"ssd": "true"} or shown["properties"] == "ssd='true'"
    assert shown["availability_zone"] == "zone-a"
    zones = compute.osc("availability", "zone", "list", "--compute", "-f", "json")
    assert {"Zone Name": "zone-a", "Zone Status": "available"} in zones
    long = compute.osc("availability", "zone", "list", "--compute", "--long", "-f", "json")
    assert any(z["Zone Name"] == "zone-a" and z["Host Name"] == host
               and z["Service Name"] == "nova-compute" for z in long), long
    services = compute.osc("compute", "service", "list", "--host", host, "--service",
                           "nova-compute", "-f", "json")
    assert [s["Zone"] for s in services] == ["zone-a"]

    token, _ = compute.login("nubis-admin")
    agg_id = agg["id"]
    fault(compute.http("DELETE", f"/v2.1/os-aggregates/{agg_id}", token), 400, "badRequest")
    demo_token, _ = compute.login("nubis-demo")
    fault(compute.http("GET", "/v2.1/os-aggregates", demo_token), 403, "forbidden")
    fault(compute.http("GET", "/v2.1/os-aggregates/999999", token), 404, "itemNotFound")
    fault(compute.http("GET", "/v2.1/os-aggregates/abc", token), 400, "badRequest")
    r = compute.http("GET", f"/v2.1/os-aggregates/{agg_id}", token, mv="2.41")
    assert r.json()["aggregate"]["uuid"] and r.json()["aggregate"]["metadata"] == {
        "availability_zone": "zone-a", "ssd": "true"}
    fault(compute.http("POST", f"/v2.1/os-aggregates/{agg_id}/action", token,
                       json={"remove_host": {"host": "nope"}}), 404, "itemNotFound")

    compute.osc("aggregate", "remove", "host", "agg1", host)
    assert compute.osc("aggregate", "show", "agg1", "-f", "json")["hosts"] == []
    zones = compute.osc("availability", "zone", "list", "--compute", "-f", "json")
    assert "zone-a" not in [z["Zone Name"] for z in zones]
    compute.osc("aggregate", "delete", "agg1")
    names = [a["Name"] for a in compute.osc("aggregate", "list", "-f", "json")]
    assert "agg1" not in names


def test_usage_list_and_show(compute: ComputeCloud) -> None:
    server = compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                         "--nic", "none", "--wait", "usage1", "-f", "json",
                         cloud="nubis-demo")
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-AZ:availability_zone"] == "nova"  # its host's zone (the default)
    sid = str(server["id"])
    compute.osc("server", "delete", "--wait", sid, cloud="nubis-demo")
    _token, project = compute.login("nubis-demo")

    rows = compute.osc("usage", "list", "--start", "2000-01-01", "-f", "json")
    mine = [r for r in rows if r["Project"] in (project, "nubis-demo", "demo")]
    assert mine, rows
    assert sid in [u["instance_id"] for u in mine[0]["Servers"]]
    shown = compute.osc("usage", "show", "--project", project, "--start", "2000-01-01",
                        "-f", "json")
    assert sid in [u["instance_id"] for u in shown["Servers"]]

    token, _ = compute.login("nubis-admin")
    r = compute.http("GET", f"/v2.1/os-simple-tenant-usage/{project}?start=2000-01-01T00:00:00",
                     token)
    usage = r.json()["tenant_usage"]
    ours = [u for u in usage["server_usages"] if u["instance_id"] == sid]
    assert ours and ours[0]["state"] == "terminated" and ours[0]["ended_at"]
    assert ours[0]["vcpus"] == 1 and ours[0]["memory_mb"] == 128 and ours[0]["hours"] > 0
    assert usage["total_hours"] > 0 and usage["total_vcpus_usage"] > 0
    page = compute.http("GET", "/v2.1/os-simple-tenant-usage?start=2000-01-01T00:00:00"
                        "&detailed=1&limit=1", token, mv="2.40").json()
    assert len(page["tenant_usages"]) == 1
    assert len(page["tenant_usages"][0]["server_usages"]) == 1
    demo_token, _ = compute.login("nubis-demo")
    fault(compute.http("GET", "/v2.1/os-simple-tenant-usage", demo_token), 403, "forbidden")
    fault(compute.http("GET", "/v2.1/os-simple-tenant-usage?start=2030-01-01T00:00:00"
                       "&end=2020-01-01T00:00:00", token), 400, "badRequest")


def test_admin_boots_on_a_requested_host(compute: ComputeCloud) -> None:
    """2.74's ``host`` and the ``zone:host`` syntax: admins only, the host must exist."""
    host = str(compute.osc("hypervisor", "list", "-f", "json")[0]["Hypervisor Hostname"])
    base = ("--os-compute-api-version", "2.74", "server", "create", "--flavor", "m1.nano",
            "--image", "nubis-test", "--nic", "none")
    server = compute.osc(*base, "--host", host, "--wait", "pinned", "-f", "json")
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == host
    compute.osc("server", "delete", "--wait", "pinned")

    unknown = compute.osc(*base, "--host", "no-such-host", "nope", check=False)
    assert unknown.returncode != 0
    assert "Compute host no-such-host could not be found" in unknown.stderr
    pair = compute.osc(*base, "--host", host, "--hypervisor-hostname", "other", "nope",
                       check=False)
    assert pair.returncode != 0 and f"Compute host {host} could not be found" in pair.stderr
    member = compute.osc(*base, "--host", host, "nope", cloud="nubis-demo", check=False)
    assert member.returncode != 0 and "requested_destination" in member.stderr
    forced = compute.osc(*base, "--availability-zone", f"nova:{host}", "nope",
                         cloud="nubis-demo", check=False)
    assert forced.returncode != 0 and "forced_host" in forced.stderr

    token, _ = compute.login("nubis-admin")  # a forced host that does not exist
    image = compute.osc("image", "show", "nubis-test", "-f", "json")["id"]
    flavor = compute.osc("flavor", "show", "m1.nano", "-f", "json")["id"]
    r = compute.http("POST", "/v2.1/servers", token, json={"server": {
        "name": "lost", "imageRef": image, "flavorRef": flavor, "networks": "none",
        "availability_zone": "nova:no-such-host"}}, mv="2.37")
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_for(lambda: compute.osc("server", "show", sid, "-f", "json")["status"] == "ERROR",
             "the forced build to fail")
    fault = compute.osc("server", "show", sid, "-f", "json")["fault"]
    assert "No valid host" in str(fault) and "requested destination" in str(fault)
    compute.osc("server", "delete", "--wait", sid)
