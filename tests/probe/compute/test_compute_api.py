"""The compute API without booting: versions, microversions, flavors, keypairs, quotas,
NoValidHost, Nova's JSON faults for bad input, and tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = pytest.mark.probe


@pytest.fixture(scope="module")
def admin(compute: ComputeCloud) -> tuple[str, str]:
    return compute.login("nubis-admin")


@pytest.fixture(scope="module")
def demo(compute: ComputeCloud) -> tuple[str, str]:
    return compute.login("nubis-demo")


def image_id(compute: ComputeCloud) -> str:
    return str(compute.osc("image", "show", "nubis-test", "-f", "json")["id"])


def fault(r: requests.Response, status: int, name: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    doc = r.json()
    assert list(doc) == [name], doc
    assert doc[name]["code"] == status
    message: str = doc[name]["message"]
    return message


def test_version_documents_and_microversions(compute: ComputeCloud,
                                             admin: tuple[str, str]) -> None:
    root = requests.get(compute.compute_url, timeout=30)
    assert root.status_code == 200
    (v21,) = root.json()["versions"]
    assert (v21["id"], v21["min_version"], v21["version"]) == ("v2.1", "2.1", "2.96")
    one = requests.get(f"{compute.compute_url}/v2.1", timeout=30).json()["version"]
    assert one["version"] == "2.96" and one["status"] == "CURRENT"
    token = admin[0]
    r = compute.http("GET", "/v2.1/flavors", token, mv="2.55")
    assert r.headers["OpenStack-API-Version"] == "compute 2.55"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.55"
    assert "description" in r.json()["flavors"][0]
    r = compute.http("GET", "/v2.1/flavors", token,
                     headers={"X-OpenStack-Nova-API-Version": "2.10"})
    assert r.headers["OpenStack-API-Version"] == "compute 2.10"
    assert "description" not in r.json()["flavors"][0]
    r = compute.http("GET", "/v2.1/flavors", token)
    assert r.headers["OpenStack-API-Version"] == "compute 2.1"
    r = compute.http("GET", "/v2.1/flavors", token, mv="latest")
    assert r.headers["OpenStack-API-Version"] == "compute 2.96"
    for bad in ("2.97", "3.0", "2.0"):
        r = compute.http("GET", "/v2.1/flavors", token, mv=bad)
        assert r.status_code == 406, (bad, r.text)
        assert "not supported by the API" in r.json()["computeFault"]["message"]
    fault(compute.http("GET", "/v2.1/flavors", token, mv="2.x"), 400, "badRequest")
    assert compute.http("GET", "/v2.1/flavors", "bogus").status_code == 401


def test_flavors_extra_specs_access_and_admin_only(compute: ComputeCloud,
                                                   admin: tuple[str, str],
                                                   demo: tuple[str, str]) -> None:
    atok, _ = admin
    dtok, demo_project = demo
    body = {"flavor": {"name": f"priv-{uuid.uuid4().hex[:6]}", "ram": 64, "vcpus": 1,
                       "disk": 1, "os-flavor-access:is_public": False}}
    fault(compute.http("POST", "/v2.1/flavors", dtok, json=body), 403, "forbidden")
    r = compute.http("POST", "/v2.1/flavors", atok, json=body)
    assert r.status_code == 200, r.text
    fid = r.json()["flavor"]["id"]
    assert compute.http("GET", f"/v2.1/flavors/{fid}", dtok).status_code == 404
    r = compute.http("POST", f"/v2.1/flavors/{fid}/os-extra_specs", atok,
                     json={"extra_specs": {"hw:cpu_policy": "shared"}})
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "shared"}}
    r = compute.http("POST", f"/v2.1/flavors/{fid}/action", atok,
                     json={"addTenantAccess": {"tenant": demo_project}})
    assert r.json()["flavor_access"] == [{"flavor_id": fid, "tenant_id": demo_project}]
    shown = compute.http("GET", f"/v2.1/flavors/{fid}", dtok, mv="2.61").json()["flavor"]
    assert shown["extra_specs"] == {"hw:cpu_policy": "shared"}
    assert shown["os-flavor-access:is_public"] is False
    assert compute.http("DELETE", f"/v2.1/flavors/{fid}", atok).status_code == 202
    assert compute.http("GET", f"/v2.1/flavors/{fid}", atok).status_code == 404
    fault(compute.http("POST", "/v2.1/flavors", atok, json={"flavor": {"name": "x"}}),
          400, "badRequest")
    dup = {"flavor": {"name": "m1.nano", "ram": 1, "vcpus": 1, "disk": 1}}
    fault(compute.http("POST", "/v2.1/flavors", atok, json=dup), 409, "conflictingRequest")


def test_keypairs_import_and_generate(compute: ComputeCloud, demo: tuple[str, str]) -> None:
    token, _ = demo
    r = compute.http("POST", "/v2.1/os-keypairs", token, mv="2.2",
                     json={"keypair": {"name": "gen"}})
    assert r.status_code == 201, r.text
    gen = r.json()["keypair"]
    assert gen["private_key"].startswith("-----BEGIN") and gen["type"] == "ssh"
    public = gen["public_key"]
    r = compute.http("POST", "/v2.1/os-keypairs", token, mv="2.92",
                     json={"keypair": {"name": "imported", "public_key": public}})
    assert r.status_code == 201 and "private_key" not in r.json()["keypair"]
    assert r.json()["keypair"]["fingerprint"] == gen["fingerprint"]
    fault(compute.http("POST", "/v2.1/os-keypairs", token, mv="2.92",
                       json={"keypair": {"name": "nokey"}}), 400, "badRequest")
    fault(compute.http("POST", "/v2.1/os-keypairs", token,
                       json={"keypair": {"name": "bad", "public_key": "ssh-rsa nope"}}),
          400, "badRequest")
    fault(compute.http("POST", "/v2.1/os-keypairs", token,
                       json={"keypair": {"name": "gen", "public_key": public}}),
          409, "conflictingRequest")
    names = [k["keypair"]["name"] for k in
             compute.http("GET", "/v2.1/os-keypairs", token).json()["keypairs"]]
    assert {"gen", "imported"} <= set(names)
    listed = compute.osc("keypair", "list", "-f", "json", cloud="nubis-demo")
    assert {"gen", "imported"} <= {k["Name"] for k in listed}
    for name in ("gen", "imported"):
        assert compute.http("DELETE", f"/v2.1/os-keypairs/{name}", token,
                            mv="2.2").status_code == 204
    fault(compute.http("GET", "/v2.1/os-keypairs/gen", token), 404, "itemNotFound")


def create(compute: ComputeCloud, token: str, server: dict[str, Any],
           mv: str = "2.37") -> requests.Response:
    return compute.http("POST", "/v2.1/servers", token, mv=mv, json={"server": server})


def errored(compute: ComputeCloud, token: str, sid: str) -> dict[str, Any]:
    """Wait (bounded) for server ``sid`` to go ERROR; return it."""
    def check() -> dict[str, Any] | None:
        server: dict[str, Any] = compute.http("GET", f"/v2.1/servers/{sid}",
                                              token).json()["server"]
        return server if server["status"] == "ERROR" else None
    found: dict[str, Any] = wait_for(check, f"server {sid} to go ERROR", bound=60)
    return found


def test_malformed_bodies_are_nova_faults(compute: ComputeCloud,
                                          demo: tuple[str, str]) -> None:
    token, _ = demo
    img = image_id(compute)
    good = {"name": "x", "imageRef": img, "flavorRef": "42", "networks": "none"}
    raw = compute.http("POST", "/v2.1/servers", token, data=b"{not json",
                       headers={"Content-Type": "application/json"})
    fault(raw, 400, "badRequest")
    fault(compute.http("POST", "/v2.1/servers", token, json={"nope": 1}), 400, "badRequest")
    for broken in ({**good, "name": ""}, {**good, "flavorRef": "no-such-flavor"},
                   {**good, "imageRef": str(uuid.uuid4())}, {**good, "min_count": 0},
                   {**good, "min_count": 3, "max_count": 2}, {**good, "metadata": "x"},
                   {**good, "user_data": "%%%"}, {**good, "key_name": "missing"},
                   {k: v for k, v in good.items() if k != "networks"}):
        fault(create(compute, token, broken), 400, "badRequest")
    missing = str(uuid.uuid4())
    message = fault(create(compute, token, {**good, "networks": [{"uuid": missing}]}),
                    400, "badRequest")
    assert message == f"Network {missing} could not be found."
    fault(compute.http("POST", f"/v2.1/servers/{uuid.uuid4()}/action", token,
                       json={"os-stop": None}), 404, "itemNotFound")
    fault(compute.http("GET", "/v2.1/servers?limit=x", token), 400, "badRequest")
    fault(compute.http("GET", f"/v2.1/servers?marker={uuid.uuid4()}", token), 400,
          "badRequest")
    assert compute.http("PATCH", "/v2.1/servers", token).status_code == 405


def test_quota_exceeded_is_403(compute: ComputeCloud, admin: tuple[str, str],
                               demo: tuple[str, str]) -> None:
    atok, _ = admin
    dtok, project = demo
    r = compute.http("PUT", f"/v2.1/os-quota-sets/{project}", atok,
                     json={"quota_set": {"instances": 0}})
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 0
    try:
        server = {"name": "q", "imageRef": image_id(compute), "flavorRef": "42",
                  "networks": "none"}
        message = fault(create(compute, dtok, server), 403, "forbidden")
        assert "Quota exceeded for instances" in message
        limits = compute.http("GET", "/v2.1/limits", dtok).json()["limits"]["absolute"]
        assert limits["maxTotalInstances"] == 0
        fault(compute.http("PUT", f"/v2.1/os-quota-sets/{project}", dtok,
                           json={"quota_set": {"instances": 50}}), 403, "forbidden")
    finally:
        assert compute.http("DELETE", f"/v2.1/os-quota-sets/{project}",
                            atok).status_code == 202
    shown = compute.http("GET", f"/v2.1/os-quota-sets/{project}", dtok).json()
    assert shown["quota_set"]["instances"] == 10


def test_no_valid_host_and_tenant_isolation(compute: ComputeCloud, admin: tuple[str, str],
                                            demo: tuple[str, str]) -> None:
    atok, _ = admin
    dtok, _ = demo
    r = compute.http("POST", "/v2.1/flavors", atok, json={"flavor": {
        "name": f"huge-{uuid.uuid4().hex[:6]}", "ram": 128, "vcpus": 1, "disk": 100000}})
    fid = r.json()["flavor"]["id"]
    r = create(compute, atok, {"name": "too-big", "imageRef": image_id(compute),
                               "flavorRef": fid, "networks": "none"})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    server = errored(compute, atok, sid)
    message = server["fault"]["message"]
    assert "No valid host was found" in message and "DiskFilter-equivalent" in message
    assert "1 of 1" in message
    assert server["OS-EXT-STS:vm_state"] == "error" and server["fault"]["code"] == 500
    # another project's server is a 404 for every verb
    fault(compute.http("GET", f"/v2.1/servers/{sid}", dtok), 404, "itemNotFound")
    fault(compute.http("DELETE", f"/v2.1/servers/{sid}", dtok), 404, "itemNotFound")
    fault(compute.http("POST", f"/v2.1/servers/{sid}/action", dtok,
                       json={"os-start": None}), 404, "itemNotFound")
    assert sid not in {s["id"] for s in compute.http(
        "GET", "/v2.1/servers?all_tenants=1", dtok).json()["servers"]}
    assert sid in {s["id"] for s in compute.http(
        "GET", "/v2.1/servers/detail?all_tenants=1", atok).json()["servers"]}
    fault(compute.http("POST", f"/v2.1/servers/{sid}/action", atok,
                       json={"os-stop": None}), 409, "conflictingRequest")
    # tags (2.26+) and the tag list filters
    r = compute.http("PUT", f"/v2.1/servers/{sid}/tags", atok, mv="2.26",
                     json={"tags": ["big", "probe"]})
    assert r.json() == {"tags": ["big", "probe"]}
    assert compute.http("PUT", f"/v2.1/servers/{sid}/tags/x", atok,
                        mv="2.26").status_code == 201
    assert compute.http("GET", f"/v2.1/servers/{sid}/tags/big", atok,
                        mv="2.26").status_code == 204
    tagged = compute.http("GET", "/v2.1/servers?tags=big,x", atok, mv="2.26").json()
    assert [s["id"] for s in tagged["servers"]] == [sid]
    untagged = compute.http("GET", "/v2.1/servers?not-tags-any=probe", atok, mv="2.26").json()
    assert sid not in [s["id"] for s in untagged["servers"]]
    fault(compute.http("GET", f"/v2.1/servers/{sid}/tags", atok), 404, "itemNotFound")
    assert compute.http("DELETE", f"/v2.1/servers/{sid}", atok).status_code == 204
    wait_for(lambda: compute.http("GET", f"/v2.1/servers/{sid}", atok).status_code == 404,
             "the errored server to be deleted", bound=60)
    compute.http("DELETE", f"/v2.1/flavors/{fid}", atok)


def test_anti_affinity_on_one_host_names_the_filter(compute: ComputeCloud) -> None:
    group = compute.osc("server", "group", "create", "--policy", "anti-affinity", "apart",
                        "-f", "json", cloud="nubis-demo")
    assert group["policy"] == "anti-affinity"
    compute.osc("server", "create", "--flavor", "m1.nano", "--image", "nubis-test",
                "--nic", "none", "--hint", f"group={group['id']}", "--min", "2", "--max", "2",
                "pair", cloud="nubis-demo")
    token, _ = compute.login("nubis-demo")

    def errored() -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = compute.http(
            "GET", "/v2.1/servers/detail?name=^pair-", token).json()["servers"]
        return servers if servers and all(s["status"] == "ERROR" for s in servers) else []
    servers = wait_for(errored, "both group members to go ERROR", bound=60)
    assert len(servers) == 2
    for server in servers:
        assert "ServerGroupAntiAffinityFilter" in server["fault"]["message"]
    shown = compute.osc("server", "group", "show", group["id"], "-f", "json",
                        cloud="nubis-demo")
    assert sorted(shown["members"].split(", ") if isinstance(shown["members"], str)
                  else shown["members"]) == sorted(s["id"] for s in servers)
    events = compute.osc("server", "event", "list", servers[0]["id"], "-f", "json",
                         cloud="nubis-demo")
    assert [e["Action"] for e in events] == ["create"]
    for server in servers:
        assert compute.http("DELETE", f"/v2.1/servers/{server['id']}",
                            token).status_code == 204
    compute.osc("server", "group", "delete", group["id"], cloud="nubis-demo")


def test_hypervisors_services_zones(compute: ComputeCloud) -> None:
    (hv,) = compute.osc("hypervisor", "list", "-f", "json")
    assert hv["State"] == "up" and hv["Hypervisor Type"] == "QEMU"
    services = {s["Binary"]: s for s in compute.osc("compute", "service", "list", "-f", "json")}
    assert sorted(services) == ["nova-compute", "nova-conductor", "nova-scheduler"]
    svc = services["nova-compute"]
    assert (svc["Host"], svc["State"], svc["Status"], svc["Zone"]) == (
        hv["Hypervisor Hostname"], "up", "enabled", "nova")
    assert services["nova-scheduler"]["Zone"] == services["nova-conductor"]["Zone"] == "internal"
    zones = compute.osc("availability", "zone", "list", "--compute", "-f", "json")
    assert zones == [{"Zone Name": "internal", "Zone Status": "available"},  # as Nova's admin
                     {"Zone Name": "nova", "Zone Status": "available"}]     # view shows it
    detail = compute.osc("availability", "zone", "list", "--compute", "--long", "-f", "json")
    assert {(z["Zone Name"], z["Service Name"]) for z in detail} == {
        ("internal", "nova-scheduler"), ("internal", "nova-conductor"), ("nova", "nova-compute")}
    token, _ = compute.login("nubis-demo")
    fault(compute.http("GET", "/v2.1/os-hypervisors", token), 403, "forbidden")


def test_disabled_or_forced_down_compute_service_is_not_scheduled(
        compute: ComputeCloud, admin: tuple[str, str], demo: tuple[str, str]) -> None:
    """``openstack compute service set --disable/--down``: Nova's ComputeFilter skips the host."""
    token, _ = admin
    (hv,) = compute.osc("hypervisor", "list", "-f", "json")
    host = hv["Hypervisor Hostname"]
    flavor = compute.osc("flavor", "show", "m1.nano", "-f", "json")["id"]

    def compute_service(*mv: str) -> dict[str, Any]:
        (row,) = compute.osc(*mv, "compute", "service", "list", "--service", "nova-compute",
                             "--long", "-f", "json")
        return dict(row)

    def fails_to_schedule() -> str:
        r = create(compute, token, {"name": "parked", "imageRef": image_id(compute),
                                    "flavorRef": flavor, "networks": "none"})
        assert r.status_code == 202, r.text
        sid = r.json()["server"]["id"]
        message: str = errored(compute, token, sid)["fault"]["message"]
        assert compute.http("DELETE", f"/v2.1/servers/{sid}", token).status_code == 204
        return message

    compute.osc("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
                host, "nova-compute")  # 2.53+: PUT /os-services/{uuid}
    row = compute_service()
    assert (row["Status"], row["Disabled Reason"], row["State"]) == (
        "disabled", "maintenance", "up")
    assert compute.osc("hypervisor", "list", "-f", "json")[0]["State"] == "up"
    assert "ComputeFilter: 1 of 1 removed" in fails_to_schedule()
    compute.osc("compute", "service", "set", "--enable", host, "nova-compute")
    assert (compute_service()["Status"], compute_service()["Disabled Reason"]) == (
        "enabled", None)
    legacy = ("--os-compute-api-version", "2.11")  # PUT /os-services/{action}
    compute.osc(*legacy, "compute", "service", "set", "--down", host, "nova-compute")
    row = compute_service(*legacy)
    assert (row["State"], row["Status"], row["Forced Down"]) == ("down", "enabled", True)
    assert "ComputeFilter: 1 of 1 removed" in fails_to_schedule()
    r = compute.http("PUT", "/v2.1/os-services/disable", token,  # 2.1: no forced_down field
                     json={"host": host, "binary": "nova-compute"})
    assert r.json() == {"service": {"host": host, "binary": "nova-compute",
                                    "status": "disabled"}}, r.text
    row = compute_service(*legacy)
    assert (row["State"], row["Status"], row["Forced Down"]) == ("down", "disabled", True)
    compute.osc(*legacy, "compute", "service", "set", "--up", "--disable", host,
                "nova-compute")
    assert (compute_service()["State"], compute_service()["Status"]) == ("up", "disabled")
    compute.osc(*legacy, "compute", "service", "set", "--enable", host, "nova-compute")
    assert compute_service()["Status"] == "enabled"

    # Nova's refusals
    ids = {s["binary"]: s["id"] for s in compute.http(
        "GET", "/v2.1/os-services", token, mv="2.53").json()["services"]}
    put = ids["nova-compute"]
    message = fault(compute.http("PUT", f"/v2.1/os-services/{ids['nova-scheduler']}", token,
                                 mv="2.53", json={"status": "disabled"}), 400, "badRequest")
    assert "Only nova-compute services can be updated" in message
    fault(compute.http("PUT", f"/v2.1/os-services/{uuid.uuid4()}", token, mv="2.53",
                       json={"status": "disabled"}), 404, "itemNotFound")
    for body in ({}, {"status": "enabled", "disabled_reason": "x"}, {"status": "off"},
                 {"forced_down": "yes"}, {"status": "disabled", "disabled_reason": ""},
                 {"status": "disabled", "host": host}):
        fault(compute.http("PUT", f"/v2.1/os-services/{put}", token, mv="2.53", json=body),
              400, "badRequest")
    fault(compute.http("PUT", "/v2.1/os-services/disable", token,
                       json={"host": "no-such-host", "binary": "nova-compute"}),
          404, "itemNotFound")
    fault(compute.http("PUT", "/v2.1/os-services/reboot", token,
                       json={"host": host, "binary": "nova-compute"}), 404, "itemNotFound")
    fault(compute.http("PUT", "/v2.1/os-services/disable-log-reason", token,
                       json={"host": host, "binary": "nova-compute"}), 400, "badRequest")
    dtok, _ = demo
    fault(compute.http("PUT", f"/v2.1/os-services/{put}", dtok, mv="2.53",
                       json={"status": "disabled"}), 403, "forbidden")
    assert compute_service()["Status"] == "enabled"

    # delete: the scheduler forgets the host until its daemon reports again
    fault(compute.http("DELETE", f"/v2.1/os-services/{ids['nova-scheduler']}", token,
                       mv="2.53"), 400, "badRequest")
    fault(compute.http("DELETE", f"/v2.1/os-services/{uuid.uuid4()}", token, mv="2.53"),
          404, "itemNotFound")
    # (its daemon may report again at once: the forgotten disable is what shows it)
    compute.osc("compute", "service", "set", "--disable", host, "nova-compute")
    compute.osc("compute", "service", "delete", put)
    wait_for(lambda: any(s["Binary"] == "nova-compute" and s["Status"] == "enabled"
                         for s in compute.osc("compute", "service", "list", "-f", "json")),
             "the compute host to register again, enabled", bound=90)
