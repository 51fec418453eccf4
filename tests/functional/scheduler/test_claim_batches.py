"""Batched claims (group commit) on a real SQLite file: each claim all-or-nothing alone."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.errors import CapacityExceeded, ConcurrentUpdate, NoValidHost
from nubis.daemons.scheduler.request import parse_request_spec
from nubis.daemons.scheduler.service import SchedulerService
from nubis.daemons.scheduler.store import allocations, consumers, open_engine

pytestmark = pytest.mark.functional


@pytest.fixture
def svc(tmp_path: Path) -> SchedulerService:
    service = SchedulerService(SchedulerConfig(),
                               open_engine(f"sqlite:///{tmp_path / 'sched.sqlite'}"))
    for i in range(3):
        service.report_host(f"node{i}", {"inventories": {
            "VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}, "DISK_GB": {"total": 40}},
            "supported_instances": [["x86_64", "qemu", "hvm"]]})
    return service


def _rp(svc: SchedulerService, host: str) -> int:
    return svc.rp_ids[svc.state.uuids[svc.state.row_of[host]]]


def _gen(svc: SchedulerService, host: str) -> int:
    return svc.generations[svc.state.uuids[svc.state.row_of[host]]]


def _count(svc: SchedulerService, table: sa.Table) -> int:
    with svc.db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_lost_claim_rolls_back_alone(svc: SchedulerService) -> None:
    a, b = _rp(svc, "node0"), _rp(svc, "node1")
    ga, gb = _gen(svc, "node0"), _gen(svc, "node1")
    res = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
    out = svc.claims.claim_many([
        ([("c1", "p", "u", a, res)], {a: ga}),
        ([("c2", "p", "u", b, res)], {b: gb + 7}),                # stale generation
        ([("c3", "p", "u", b, res), ("c1", "p", "u", b, res)], {b: gb}),  # c1 exists
        ([("c4", "p", "u", b, {"VCPU": 99})], {b: gb}),           # over capacity
        ([("c5", "p", "u", b, res)], {b: gb}),
    ])
    assert out[0] == {a: ga + 1}
    assert isinstance(out[1], ConcurrentUpdate)
    assert isinstance(out[2], ConcurrentUpdate)
    assert isinstance(out[3], CapacityExceeded)
    assert out[4] == {b: gb + 1}
    with svc.db.connect() as conn:
        placed = {r.consumer_uuid for r in conn.execute(sa.select(allocations))}
        names = {r.uuid for r in conn.execute(sa.select(consumers))}
    assert placed == names == {"c1", "c5"}


def test_concurrent_callers_are_combined_without_overcommit(svc: SchedulerService) -> None:
    # 3 hosts x 4 VCPU = 12 instances of 1 VCPU fit; 20 callers race for them.
    results: list[Any] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        body = {"flavor": {"vcpus": 1, "memory_mb": 256, "root_gb": 1},
                "project_id": "p", "user_id": "u", "instance_uuids": [f"i{i}"]}
        try:
            got: Any = svc.select_destinations(parse_request_spec(body))
        except NoValidHost as exc:
            got = exc
        with lock:
            results.append(got)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 20
    placed = [r for r in results if isinstance(r, list)]
    assert len(placed) == 12
    assert all(isinstance(r, NoValidHost) for r in results if not isinstance(r, list))
    assert _count(svc, consumers) == 12
    per_host: dict[str, int] = {}
    for r in placed:
        per_host[r[0]["host"]] = per_host.get(r[0]["host"], 0) + 1
    assert per_host == {"node0": 4, "node1": 4, "node2": 4}
    assert not svc._combining and not svc._queue
