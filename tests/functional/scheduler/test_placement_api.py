"""The placement REST subset and the scheduler API through Falcon's ASGI test client."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.server import build_app
from nubis.daemons.scheduler.service import SchedulerService
from nubis.daemons.scheduler.store import open_engine

pytestmark = pytest.mark.functional
TOKEN = "test-service-token"
MV = {"OpenStack-API-Version": "placement 1.39", "X-Auth-Token": TOKEN}


@pytest.fixture
def client(tmp_path: Path) -> falcon.testing.TestClient:
    svc = SchedulerService(SchedulerConfig(), open_engine(f"sqlite:///{tmp_path / 's.db'}"))
    app = build_app(svc, TOKEN)
    c = falcon.testing.TestClient(app)
    c.svc = svc  # type: ignore[attr-defined]
    return c


def call(c: falcon.testing.TestClient, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> falcon.testing.Result:
    return c.simulate_request(method, path, json=body, headers=headers or MV)


def make_rp(c: falcon.testing.TestClient, name: str, vcpus: int = 8) -> str:
    r = call(c, "POST", "/placement/resource_providers", {"name": name})
    assert r.status_code == 200, r.text
    rp = r.json["uuid"]
    r = call(c, "PUT", f"/placement/resource_providers/{rp}/inventories", {
        "resource_provider_generation": r.json["generation"],
        "inventories": {"VCPU": {"total": vcpus, "allocation_ratio": 1.0},
                        "MEMORY_MB": {"total": 4096, "reserved": 512},
                        "DISK_GB": {"total": 100, "step_size": 10, "max_unit": 50}}})
    assert r.status_code == 200, r.text
    return str(rp)


def test_auth_required_except_discovery_and_health(client: falcon.testing.TestClient) -> None:
    assert client.simulate_get("/placement/").status_code == 200
    assert client.simulate_get("/healthcheck").text == "OK"
    r = client.simulate_get("/placement/resource_providers")
    assert r.status_code == 401
    assert r.json["errors"][0]["status"] == 401
    r = client.simulate_get("/placement/resource_providers", headers={"X-Auth-Token": "nope"})
    assert r.status_code == 401
    assert client.simulate_get("/v1/hosts").status_code == 401
    assert client.simulate_get("/metrics").status_code == 401


def test_provider_inventory_generation_conflicts(client: falcon.testing.TestClient) -> None:
    rp = make_rp(client, "cn1")
    r = call(client, "GET", f"/placement/resource_providers/{rp}/inventories")
    gen = r.json["resource_provider_generation"]
    assert r.json["inventories"]["MEMORY_MB"]["reserved"] == 512
    stale = call(client, "PUT", f"/placement/resource_providers/{rp}/inventories", {
        "resource_provider_generation": gen - 1, "inventories": {"VCPU": {"total": 4}}})
    assert stale.status_code == 409
    assert stale.json["errors"][0]["code"] == "placement.concurrent_update"
    assert stale.headers["OpenStack-API-Version"] == "placement 1.39"
    dup = call(client, "POST", "/placement/resource_providers", {"name": "cn1"})
    assert dup.status_code == 409
    bad = call(client, "PUT", f"/placement/resource_providers/{rp}/inventories", {
        "resource_provider_generation": gen, "inventories": {"VCPU": {"total": -3}}})
    assert bad.status_code == 400
    assert call(client, "GET", f"/placement/resource_providers/{uuid.uuid4()}"
                ).status_code == 404
    r = client.simulate_get("/placement/resource_providers",
                            headers={"X-Auth-Token": TOKEN,
                                     "OpenStack-API-Version": "placement 9.99"})
    assert r.status_code == 406


def test_allocations_capacity_and_candidates(client: falcon.testing.TestClient) -> None:
    rp1 = make_rp(client, "cn1", vcpus=2)
    rp2 = make_rp(client, "cn2", vcpus=8)
    consumer = str(uuid.uuid4())
    body = {"allocations": {rp1: {"resources": {"VCPU": 2, "MEMORY_MB": 1024}}},
            "project_id": "p", "user_id": "u", "consumer_generation": None}
    assert call(client, "PUT", f"/placement/allocations/{consumer}", body).status_code == 204
    r = call(client, "GET", f"/placement/allocations/{consumer}")
    assert r.json["allocations"][rp1]["resources"] == {"VCPU": 2, "MEMORY_MB": 1024}
    assert r.json["consumer_generation"] == 1
    # a second consumer does not fit on rp1 any more
    other = str(uuid.uuid4())
    over = call(client, "PUT", f"/placement/allocations/{other}", {
        **body, "allocations": {rp1: {"resources": {"VCPU": 1}}}})
    assert over.status_code == 409
    # step_size 10 on DISK_GB
    step = call(client, "PUT", f"/placement/allocations/{other}", {
        **body, "allocations": {rp2: {"resources": {"DISK_GB": 15}}}})
    assert step.status_code == 400
    # stale consumer generation
    stale = call(client, "PUT", f"/placement/allocations/{consumer}", {**body})
    assert stale.status_code == 409
    r = call(client, "GET", "/placement/allocation_candidates?resources=VCPU:1,MEMORY_MB:512")
    assert list(r.json["provider_summaries"]) == [rp2]
    assert r.json["provider_summaries"][rp2]["resources"]["MEMORY_MB"]["capacity"] == 3584
    usage = call(client, "GET", f"/placement/resource_providers/{rp1}/usages").json
    assert usage["usages"]["VCPU"] == 2
    assert call(client, "GET", "/placement/usages?project_id=p").json["usages"]["VCPU"] == 2
    # the scheduler's matrix follows placement writes
    r = call(client, "POST", "/v1/select_destinations",
             {"flavor": {"vcpus": 1, "memory_mb": 512, "root_gb": 10}})
    assert r.status_code == 200, r.text
    assert r.json["destinations"][0]["compute_node_uuid"] == rp2
    assert call(client, "DELETE", f"/placement/allocations/{consumer}").status_code == 204
    assert call(client, "DELETE", f"/placement/allocations/{consumer}").status_code == 404
    r = call(client, "GET", "/placement/allocation_candidates?resources=VCPU:2")
    assert set(r.json["provider_summaries"]) == {rp1, rp2}
    assert call(client, "GET", "/placement/allocation_candidates?resources=VCPU-2"
                ).status_code == 400


def test_traits_filter_candidates(client: falcon.testing.TestClient) -> None:
    rp1 = make_rp(client, "cn1")
    rp2 = make_rp(client, "cn2")
    assert call(client, "PUT", "/placement/traits/CUSTOM_FAST").status_code == 201
    assert call(client, "PUT", "/placement/traits/CUSTOM_FAST").status_code == 204
    assert call(client, "PUT", "/placement/traits/NOT_CUSTOM").status_code == 400
    gen = call(client, "GET", f"/placement/resource_providers/{rp1}").json["generation"]
    r = call(client, "PUT", f"/placement/resource_providers/{rp1}/traits",
             {"traits": ["CUSTOM_FAST"], "resource_provider_generation": gen})
    assert r.status_code == 200, r.text
    r = call(client, "GET",
             "/placement/allocation_candidates?resources=VCPU:1&required=CUSTOM_FAST")
    assert list(r.json["provider_summaries"]) == [rp1]
    r = call(client, "GET",
             "/placement/allocation_candidates?resources=VCPU:1&required=!CUSTOM_FAST")
    assert list(r.json["provider_summaries"]) == [rp2]
    r = call(client, "POST", "/v1/select_destinations", {"request_spec": {
        "flavor": {"vcpus": 1, "memory_mb": 256, "root_gb": 0,
                   "extra_specs": {"trait:CUSTOM_FAST": "required"}}}})
    assert r.json["destinations"][0]["compute_node_uuid"] == rp1
    assert "CUSTOM_FAST" in call(client, "GET", "/placement/traits").json["traits"]


def test_select_destinations_errors(client: falcon.testing.TestClient) -> None:
    r = call(client, "PUT", "/v1/hosts/node1", {"inventories": {
        "VCPU": {"total": 2}, "MEMORY_MB": {"total": 2048}, "DISK_GB": {"total": 20}}})
    assert r.status_code == 200, r.text
    r = call(client, "POST", "/v1/select_destinations",
             {"flavor": {"vcpus": 64, "memory_mb": 512}})
    assert r.status_code == 409
    assert r.json["noValidHost"]["filters"][0] == {"name": "CoreFilter-equivalent",
                                                   "removed": 1, "entered": 1}
    assert "CoreFilter-equivalent: 1 of 1 removed" in r.json["noValidHost"]["message"]
    r = client.simulate_post("/v1/select_destinations", body="{not json",
                             headers={"X-Auth-Token": TOKEN,
                                      "Content-Type": "application/json"})
    assert r.status_code == 400
    assert "error" in r.json
    r = call(client, "POST", "/v1/select_destinations", {"flavor": {"vcpus": "many"}})
    assert r.status_code == 400
    assert call(client, "PUT", "/v1/hosts/node2", {"inventories": {"VCPU": {}}}
                ).status_code == 400
    assert call(client, "GET", "/v1/nothing").status_code == 404
    metrics = call(client, "GET", "/metrics").text
    assert "nubis_scheduler_no_valid_host_total 1" in metrics


def test_aggregate_az_through_api(client: falcon.testing.TestClient) -> None:
    for name in ("a", "b"):
        call(client, "PUT", f"/v1/hosts/{name}", {"inventories": {
            "VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}, "DISK_GB": {"total": 40}}})
    assert call(client, "PUT", "/v1/aggregates/agg1", {"hosts": ["b"]}).status_code == 400
    r = call(client, "PUT", "/v1/aggregates/00000000-0000-0000-0000-0000000000a1",
             {"name": "rack1", "hosts": ["b"], "metadata": {"availability_zone": "az1"}})
    assert r.status_code == 200
    r = call(client, "POST", "/v1/select_destinations",
             {"availability_zone": "az1", "flavor": {"vcpus": 1, "memory_mb": 128}})
    assert r.json["destinations"][0]["host"] == "b"
    r = call(client, "POST", "/v1/select_destinations",
             {"availability_zone": "az9", "flavor": {"vcpus": 1, "memory_mb": 128}})
    assert "AvailabilityZoneFilter: 2 of 2 removed" in r.json["noValidHost"]["message"]


def test_requested_destination_restricts_the_hosts(client: falcon.testing.TestClient) -> None:
    for name in ("a", "b", "c"):
        call(client, "PUT", f"/v1/hosts/{name}", {"inventories": {
            "VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}, "DISK_GB": {"total": 40}}})
    flavor = {"vcpus": 1, "memory_mb": 128}
    for _ in range(3):  # the weighers would spread these; the request pins them
        r = call(client, "POST", "/v1/select_destinations",
                 {"requested_hosts": ["c"], "flavor": flavor})
        assert r.json["destinations"][0]["host"] == "c"
    r = call(client, "POST", "/v1/select_destinations",
             {"requested_hosts": ["nowhere"], "flavor": flavor})
    assert "requested destination" in r.json["noValidHost"]["message"]
    r = call(client, "POST", "/v1/select_destinations",
             {"requested_hosts": {"c": 1}, "flavor": flavor})
    assert r.status_code == 400
    r = call(client, "POST", "/v1/select_destinations",
             {"requested_hosts": ["c"], "force_hosts": "yes", "flavor": flavor})
    assert r.status_code == 400


def test_forced_host_skips_the_filters_but_not_the_resources(
        client: falcon.testing.TestClient) -> None:
    """As Nova's host manager: a forced host passes no filter, yet must fit the flavor."""
    for name in ("a", "b"):
        call(client, "PUT", f"/v1/hosts/{name}", {"inventories": {
            "VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}, "DISK_GB": {"total": 40}}})
    call(client, "PUT", "/v1/hosts/b", {"enabled": False, "inventories": {
        "VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}, "DISK_GB": {"total": 40}}})
    flavor = {"vcpus": 1, "memory_mb": 128}
    r = call(client, "POST", "/v1/select_destinations",
             {"requested_hosts": ["b"], "flavor": flavor})
    assert "ComputeFilter" in r.json["noValidHost"]["message"]  # requested: filtered
    r = call(client, "POST", "/v1/select_destinations",
             {"requested_hosts": ["b"], "force_hosts": True, "flavor": flavor})
    assert r.json["destinations"][0]["host"] == "b"  # forced: the disabled host is used
    r = call(client, "POST", "/v1/select_destinations", {
        "requested_hosts": ["b"], "force_hosts": True,
        "flavor": {"vcpus": 64, "memory_mb": 128}})
    assert "noValidHost" in r.json  # but it must still have room


def test_keystone_tokens_need_admin(tmp_path: Path) -> None:
    import time

    from nubis.api.shared.auth import TokenVerifier
    from nubis.api.shared.revoke import RevocationList
    from nubis.api.shared.tokens import KeyRepository, ProjectRef, TokenCodec, TokenPayload

    keys = KeyRepository(tmp_path / "keys")
    keys.setup()
    verifier = TokenVerifier(keys, RevocationList(None, 60.0, 3600.0))
    codec = TokenCodec(keys.load())

    def token(role: str) -> str:
        now = time.time()
        return codec.encode(TokenPayload(
            user_id="u1", user_name="alice", user_domain_id="default",
            user_domain_name="Default", methods=("password",), issued_at=now,
            expires_at=now + 600, audit_ids=("a1",), roles=(("r1", role),),
            project=ProjectRef("p1", "demo", "default", "Default")))

    svc = SchedulerService(SchedulerConfig(), open_engine(f"sqlite:///{tmp_path / 's.db'}"))
    client = falcon.testing.TestClient(build_app(svc, "", verifier))
    r = client.simulate_get("/placement/resource_providers",
                            headers={"X-Auth-Token": token("admin")})
    assert r.status_code == 200
    r = client.simulate_get("/placement/resource_providers",
                            headers={"X-Auth-Token": token("member")})
    assert r.status_code == 403
    assert r.json["errors"][0]["status"] == 403
    r = client.simulate_get("/v1/hosts", headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401
