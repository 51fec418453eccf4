"""Claims against a real SQLite file: atomic, never overcommitted, explained when refused."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from nubis.common.errors import ConfigError
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.errors import BadRequest, NotFound, NoValidHost
from nubis.daemons.scheduler.request import parse_request_spec
from nubis.daemons.scheduler.service import SchedulerService
from nubis.daemons.scheduler.store import allocations, open_engine

pytestmark = pytest.mark.functional


def report(svc: SchedulerService, name: str, vcpus: int = 4, ram: int = 4096,
           disk: int = 40, **facts: Any) -> None:
    svc.report_host(name, {"inventories": {
        "VCPU": {"total": vcpus}, "MEMORY_MB": {"total": ram}, "DISK_GB": {"total": disk}},
        "supported_instances": [["x86_64", "qemu", "hvm"]], **facts})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scheduler.sqlite'}"


@pytest.fixture
def svc(db_url: str) -> SchedulerService:
    service = SchedulerService(SchedulerConfig(), open_engine(db_url))
    for i in range(4):
        report(service, f"node{i}")
    return service


def spec(**kw: Any) -> Any:
    body = {"flavor": {"vcpus": 1, "memory_mb": 1024, "root_gb": 10}, "project_id": "p",
            "user_id": "u"}
    body.update(kw)
    return parse_request_spec(body)


def db_usage(svc: SchedulerService) -> dict[tuple[int, str], int]:
    with svc.db.connect() as conn:
        rows = conn.execute(sa.select(allocations.c.rp_id, allocations.c.resource_class,
                                      sa.func.sum(allocations.c.used))
                            .group_by(allocations.c.rp_id, allocations.c.resource_class))
        return {(r[0], r[1]): int(r[2]) for r in rows}


def test_unknown_filter_is_a_startup_error(db_url: str) -> None:
    with pytest.raises(ConfigError, match="enabled_filters: unknown filter 'RamFliter'"):
        SchedulerService(SchedulerConfig(enabled_filters=("RamFliter",)), open_engine(db_url))


def test_impossible_request_explains_per_filter(svc: SchedulerService) -> None:
    with pytest.raises(NoValidHost) as err:
        svc.select_destinations(spec(flavor={"vcpus": 1, "memory_mb": 999999}))
    assert "RamFilter-equivalent: 4 of 4 removed" in str(err.value)
    with pytest.raises(NoValidHost) as err:
        svc.select_destinations(spec(availability_zone="nowhere"))
    assert "AvailabilityZoneFilter: 4 of 4 removed" in str(err.value)
    assert ("AvailabilityZoneFilter", 4, 4) in err.value.counts


def test_bad_request_specs_are_rejected() -> None:
    for body in ({"flavor": {"vcpus": -1}}, {"flavor": {"vcpus": "x"}}, {"max_count": 0},
                 {"min_count": 3, "max_count": 2}, {"scheduler_hints": {"query": "[nope"}},
                 {"instance_group": {"policy": "sideways"}}, {"flavor": []},
                 {"max_count": 10**6}):
        with pytest.raises(BadRequest):
            parse_request_spec(body)


def test_multi_instance_is_all_or_nothing(svc: SchedulerService) -> None:
    # 4 hosts x 4 vCPU: 5 instances of 4 vCPU cannot all fit.
    before = db_usage(svc)
    with pytest.raises(NoValidHost, match="Placed 4 of 5"):
        svc.select_destinations(spec(flavor={"vcpus": 4, "memory_mb": 512}, max_count=5))
    assert db_usage(svc) == before
    assert all(int(c.ints["used"][: svc.state.n].sum()) == 0
               for c in svc.state.resources.values())
    # min_count 2 of max 5 succeeds with what fits
    dests = svc.select_destinations(spec(flavor={"vcpus": 4, "memory_mb": 512},
                                         min_count=2, max_count=5))
    assert len(dests) == 4
    assert len({d["host"] for d in dests}) == 4


def test_anti_affinity_and_release(svc: SchedulerService) -> None:
    group = {"uuid": "g", "policy": "anti-affinity"}
    dests = svc.select_destinations(spec(max_count=4, instance_group=group))
    assert len({d["host"] for d in dests}) == 4
    members = [d["instance_uuid"] for d in dests]
    with pytest.raises(NoValidHost, match="ServerGroupAntiAffinityFilter: 4 of 4 removed"):
        svc.select_destinations(spec(instance_group={**group, "members": members}))
    assert svc.release(members[0])
    again = svc.select_destinations(spec(instance_group={**group, "members": members[1:]}))
    assert again[0]["host"] == dests[0]["host"]


def test_state_survives_restart(svc: SchedulerService, db_url: str) -> None:
    dests = svc.select_destinations(spec(max_count=3))
    fresh = SchedulerService(SchedulerConfig(), open_engine(db_url))
    assert fresh.host_summary() == svc.host_summary()
    assert fresh.state.instance_row.keys() == svc.state.instance_row.keys()
    assert {d["instance_uuid"] for d in dests} <= set(fresh.state.instance_row)


def test_concurrent_claims_never_overcommit(db_url: str) -> None:
    # Two services on one SQLite file (two scheduler processes): races are real.
    a = SchedulerService(SchedulerConfig(host_subset_size=2), open_engine(db_url))
    for i in range(3):
        report(a, f"n{i}", vcpus=8, ram=8192, disk=1000)
    b = SchedulerService(SchedulerConfig(host_subset_size=2), open_engine(db_url))
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(svc: SchedulerService, count: int) -> None:
        for _ in range(count):
            try:
                svc.select_destinations(spec(flavor={"vcpus": 1, "memory_mb": 512,
                                                     "root_gb": 1}))
                result = "placed"
            except NoValidHost as exc:
                assert "removed" in str(exc)
                result = "refused"
            except Exception as exc:  # a conflict after all retries is a refusal too
                result = f"error:{type(exc).__name__}"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(svc, 10)) for svc in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 40
    placed = outcomes.count("placed")
    assert placed + outcomes.count("refused") + sum(
        o.startswith("error:Conflict") for o in outcomes) == 40
    usage = db_usage(a)
    assert all(used <= 8 for (_, rc), used in usage.items() if rc == "VCPU")
    assert sum(used for (_, rc), used in usage.items() if rc == "VCPU") == placed
    assert placed == 24  # 3 hosts x 8 vCPU, each request 1 vCPU


def test_disabled_or_forced_down_service_takes_its_host_out(svc: SchedulerService,
                                                            db_url: str) -> None:
    """As Nova's ComputeFilter: an operator's disable or force-down outlives a restart."""
    def hosts(count: int) -> set[str]:
        placed = svc.select_destinations(spec(max_count=count, min_count=count))
        for dest in placed:
            svc.release(dest["instance_uuid"])
        return {d["host"] for d in placed}

    svc.set_service("node0", {"disabled": True, "disabled_reason": "maintenance"})
    svc.set_service("node1", {"forced_down": True})
    summary = {h["host"]: h for h in svc.host_summary()}
    assert summary["node0"]["enabled"] is False
    assert summary["node0"]["disabled_reason"] == "maintenance"
    assert summary["node1"]["enabled"] is True and summary["node1"]["forced_down"] is True
    for _ in range(5):
        assert hosts(2) == {"node2", "node3"}
    report(svc, "node0")  # a heartbeat does not re-enable it
    assert "node0" not in hosts(2)
    with pytest.raises(NoValidHost) as err:
        svc.select_destinations(spec(max_count=3, min_count=3, scheduler_hints={
            "different_host": []}, instance_group={"policy": "anti-affinity"}))
    assert "ComputeFilter: 2 of 4 removed" in str(err.value)
    again = SchedulerService(SchedulerConfig(), open_engine(db_url))
    assert {h["host"]: h["enabled"] for h in again.host_summary()}["node0"] is False
    svc.set_service("node0", {"disabled": False})
    svc.set_service("node1", {})
    assert hosts(4) == {"node0", "node1", "node2", "node3"}
    for bad in ({"disabled": "yes"}, {"disabled_reason": ""}, {"forced_down": 1},
                {"status": "disabled"}):
        with pytest.raises(BadRequest):
            svc.set_service("node0", bad)
    with pytest.raises(NotFound):
        svc.set_service("nowhere", {"disabled": True})


def test_v2_adds_the_service_table_to_a_v1_database(db_url: str) -> None:
    from nubis.common.db import make_engine, migrate, schema_version
    from nubis.daemons.scheduler import store

    engine = make_engine(db_url)
    migrate(engine, "placement", store.MIGRATIONS[:1])
    with engine.begin() as conn:  # the schema v1 made: no service table
        store.compute_services.drop(conn)
    fresh = SchedulerService(SchedulerConfig(), open_engine(db_url))
    assert schema_version(fresh.db, "placement") == 2
    report(fresh, "node0")
    fresh.set_service("node0", {"disabled": True})
    assert fresh.host_summary()[0]["enabled"] is False


def test_deleting_a_host_needs_it_free_and_a_report_brings_it_back(svc: SchedulerService,
                                                                   db_url: str) -> None:
    """Nova's compute service delete: refused while allocations hold the host."""
    from nubis.daemons.scheduler.errors import InventoryInUse

    placed = svc.select_destinations(spec(requested_hosts=["node3"], force_hosts=True))
    assert placed[0]["host"] == "node3"
    with pytest.raises(InventoryInUse):
        svc.delete_host("node3")
    svc.set_service("node3", {"disabled": True})
    svc.release(placed[0]["instance_uuid"])
    svc.delete_host("node3")
    assert sorted(h["host"] for h in svc.host_summary()) == ["node0", "node1", "node2"]
    with pytest.raises(NotFound):
        svc.delete_host("node3")
    again = SchedulerService(SchedulerConfig(), open_engine(db_url))
    assert "node3" not in {h["host"] for h in again.host_summary()}
    report(svc, "node3")  # its daemon reports again: a fresh, enabled host
    assert {d["host"] for d in svc.select_destinations(spec(
        max_count=4, min_count=4, instance_group={"policy": "anti-affinity"}))} == {
        "node0", "node1", "node2", "node3"}
