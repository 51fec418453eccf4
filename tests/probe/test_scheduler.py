"""Start the real ``nubis scheduler`` daemon on a free port and drive it over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ports import free_port
from tests.procs import terminate

pytestmark = pytest.mark.probe
TOKEN = "probe-service-token"


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    conf = tmp_path / "nubis.toml"
    conf.write_text(f'[cluster]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[scheduler]\nport = {port}\nservice_token = "{TOKEN}"\n'
                    'enabled_filters = ["ComputeFilter", "AvailabilityZoneFilter", '
                    '"ServerGroupAntiAffinityFilter"]\n')
    log = (tmp_path / "scheduler.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "nubis", "daemon", "scheduler",
                             "--config", str(conf)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail((tmp_path / "scheduler.log").read_text())
            try:
                if requests.get(f"{base}/healthcheck", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("scheduler did not start")
        yield base
    finally:
        terminate(proc)
        log.close()


def test_scheduler_daemon_end_to_end(scheduler: str) -> None:
    s = requests.Session()
    s.headers["X-Auth-Token"] = TOKEN
    assert requests.post(f"{scheduler}/v1/select_destinations", json={}).status_code == 401
    for i in range(3):
        r = s.put(f"{scheduler}/v1/hosts/cn{i}", json={
            "inventories": {"VCPU": {"total": 4}, "MEMORY_MB": {"total": 8192},
                            "DISK_GB": {"total": 80}},
            "hypervisor_type": "QEMU", "supported_instances": [["x86_64", "qemu", "hvm"]]},
            timeout=10)
        assert r.status_code == 200, r.text
    r = s.post(f"{scheduler}/v1/select_destinations", json={"request_spec": {
        "max_count": 3, "project_id": "p", "user_id": "u",
        "flavor": {"vcpus": 2, "memory_mb": 1024, "root_gb": 10},
        "instance_group": {"uuid": "g", "policy": "anti-affinity"}}}, timeout=10)
    assert r.status_code == 200, r.text
    dests = r.json()["destinations"]
    assert sorted(d["host"] for d in dests) == ["cn0", "cn1", "cn2"]
    # anti-affinity: each later instance has one candidate (and alternate) fewer
    assert [len(d["alternates"]) for d in dests] == [2, 1, 0]
    # the claims are visible through placement
    first = dests[0]
    mv = {"OpenStack-API-Version": "placement 1.28"}
    r = s.get(f"{scheduler}/placement/allocations/{first['instance_uuid']}", headers=mv,
              timeout=10)
    assert r.json()["allocations"][first["compute_node_uuid"]]["resources"] == {
        "VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 10}
    r = s.get(f"{scheduler}/placement/resource_providers", headers=mv, timeout=10)
    assert {p["name"] for p in r.json()["resource_providers"]} == {"cn0", "cn1", "cn2"}
    # impossible request: explained
    r = s.post(f"{scheduler}/v1/select_destinations",
               json={"flavor": {"vcpus": 4, "memory_mb": 512}}, timeout=10)
    assert r.status_code == 409
    assert "CoreFilter-equivalent: 3 of 3 removed" in r.json()["noValidHost"]["message"]
    # release, then it fits again
    assert s.delete(f"{scheduler}/v1/instances/{first['instance_uuid']}",
                    timeout=10).status_code == 204
    r = s.post(f"{scheduler}/v1/select_destinations",
               json={"flavor": {"vcpus": 4, "memory_mb": 512}}, timeout=10)
    assert r.status_code == 200
    assert r.json()["destinations"][0]["host"] == first["host"]
    text = s.get(f"{scheduler}/metrics", timeout=10).text
    assert "nubis_scheduler_instances_placed_total 4" in text
