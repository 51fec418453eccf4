"""The build flow's reschedule onto alternates, with the peers' clients faked.

The compute store is real (SQLite); the scheduler, Placement and compute-daemon
clients are stand-ins recording what the builder asks of them, so each test
can make the chosen host fail and check where the claim and the instance go.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from nubis.api.compute import reschedule, schema
from nubis.api.compute.build import Builder, BuildPlan
from nubis.api.compute.clients import PeerError
from nubis.api.compute.store import ComputeStore
from nubis.common.db import make_engine

RESOURCES = {"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1}


class FakeScheduler:
    """Host list (with compute URLs), claim release, and Placement's allocations."""

    def __init__(self, hosts: list[str], full: set[str]) -> None:
        self.hosts_ = {h: {"host": h, "stats": {"compute_url": f"http://{h}:8776"}}
                       for h in hosts}
        self.full = full
        self.allocations: dict[str, str] = {}
        self.released: list[str] = []

    async def hosts(self, max_age: float = 5.0) -> dict[str, dict[str, Any]]:
        return self.hosts_

    async def release(self, uuid: str) -> None:
        self.released.append(uuid)
        self.allocations.pop(uuid, None)

    async def placement(self, scheduler: Any, method: str, consumer: str,
                        body: Any = None) -> tuple[int, Any]:
        assert method == "PUT" and body["allocations"]
        rp = next(iter(body["allocations"]))
        assert body["allocations"][rp]["resources"] == RESOURCES
        if rp in self.full:
            return 409, {"errors": [{"detail": "capacity exceeded"}]}
        self.allocations[consumer] = rp
        return 204, None


class FakeComputes:
    """Compute daemons: builds fail on the hosts in ``failing``."""

    def __init__(self, failing: dict[str, PeerError]) -> None:
        self.failing = failing
        self.builds: list[str] = []
        self.deleted: list[tuple[str, str]] = []

    async def build(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        host = url.split("//")[1].split(":")[0]
        self.builds.append(host)
        if host in self.failing:
            raise self.failing[host]
        return {"power_state": 1, "timings": {"image": 0.1, "spawn": 0.2}}

    async def delete(self, url: str, uuid: str) -> None:
        self.deleted.append((url.split("//")[1].split(":")[0], uuid))


class FakeService:
    """What Builder needs of the compute API's shared state."""

    def __init__(self, store: ComputeStore, scheduler: FakeScheduler,
                 computes: FakeComputes) -> None:
        self.store = store
        self.scheduler = scheduler
        self.computes = computes
        self.images = type("Images", (), {"url": "http://image"})()
        self.cfg = type("Cfg", (), {"default_availability_zone": "nova"})()


def _store(tmp_path: Path) -> ComputeStore:
    store = ComputeStore(make_engine(f"sqlite:///{tmp_path / 'compute.db'}"))
    store.migrate()
    return store


def _instance(store: ComputeStore) -> str:
    uid = str(uuid.uuid4())
    store.create_instances([{
        "uuid": uid, "project_id": "p", "user_id": "u", "name": "vm", "hostname": "vm",
        "description": None, "image_ref": "img", "kernel_id": "", "ramdisk_id": "",
        "flavor": {"id": "42", "name": "m1.nano", "vcpus": 1, "ram": 128, "disk": 1,
                   "ephemeral": 0, "swap": 0, "extra_specs": {}},
        "vcpus": 1, "memory_mb": 128, "root_gb": 1, "vm_state": "building",
        "task_state": "scheduling", "power_state": 0, "key_name": None, "key_data": None,
        "user_data": None, "metadata": {}, "tags": [], "config_drive": True,
        "availability_zone": None, "reservation_id": "r-1", "launch_index": 0,
        "locked": False}])
    return uid


def _selection(uid: str, hosts: list[str]) -> dict[str, Any]:
    def host(name: str) -> dict[str, Any]:
        return {"host": name, "nodename": name, "compute_node_uuid": f"rp-{name}"}
    return {"instance_uuid": uid, **host(hosts[0]),
            "allocation_request": {"allocations": {f"rp-{hosts[0]}": {
                "resources": dict(RESOURCES)}}},
            "alternates": [host(h) for h in hosts[1:]]}


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hosts: list[str],
         failing: dict[str, PeerError], full: frozenset[str] = frozenset(),
         zones: dict[str, str] | None = None
         ) -> tuple[ComputeStore, str, FakeScheduler, FakeComputes]:
    store = _store(tmp_path)
    with store.engine.begin() as conn:  # one zoned aggregate per host of ``zones``
        for i, (host, zone) in enumerate((zones or {}).items()):
            conn.execute(schema.aggregates.insert().values(
                uuid=str(uuid.uuid4()), name=f"agg{i}", hosts=json.dumps([host]),
                metadata=json.dumps({"availability_zone": zone}), created_at=store.clock()))
    uid = _instance(store)
    sched = FakeScheduler(hosts, {f"rp-{h}" for h in full})
    sched.allocations[uid] = f"rp-{hosts[0]}"
    computes = FakeComputes(failing)
    monkeypatch.setattr(reschedule, "placement_call", sched.placement)
    builder = Builder(FakeService(store, sched, computes))  # type: ignore[arg-type]
    inst = store.get_instance(uid)
    assert inst is not None
    plan = BuildPlan(token="t", image=None, kernel=None, ramdisk=None, cmdline="",
                     public_keys={})
    asyncio.run(builder._build_one(inst, _selection(uid, hosts), plan))
    return store, uid, sched, computes


def test_build_failure_moves_to_the_alternate(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store, uid, sched, computes = _run(tmp_path, monkeypatch, ["h1", "h2", "h3"], {
        "h1": PeerError("start instance: internal error: qemu unexpectedly closed", 500)})
    inst = store.get_instance(uid)
    assert inst is not None
    assert (inst.vm_state, inst.task_state, inst.host) == ("active", None, "h2")
    assert computes.builds == ["h1", "h2"]
    assert ("h1", uid) in computes.deleted  # the failed host's leftovers are removed
    assert sched.allocations[uid] == "rp-h2"  # the claim moved with the instance
    assert sched.released == []


def test_full_alternate_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, uid, sched, computes = _run(
        tmp_path, monkeypatch, ["h1", "h2", "h3"],
        {"h1": PeerError("image download failed: 503", 500)}, full=frozenset({"h2"}))
    inst = store.get_instance(uid)
    assert inst is not None and inst.host == "h3" and inst.vm_state == "active"
    assert computes.builds == ["h1", "h3"]
    assert sched.allocations[uid] == "rp-h3"


def test_no_alternate_left_is_error_with_why(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store, uid, sched, computes = _run(tmp_path, monkeypatch, ["h1", "h2"], {
        "h1": PeerError("libvirt: cannot allocate memory", 500),
        "h2": PeerError("libvirt: domain crashed on start", 500)})
    inst = store.get_instance(uid)
    assert inst is not None and inst.vm_state == "error" and inst.fault is not None
    message = inst.fault["message"]
    assert "domain crashed on start" in message and "no alternate host is left" in message
    assert "h1" in message and "h2" in message
    assert computes.builds == ["h1", "h2"]
    assert sched.released == [uid]  # the claim is released
    assert uid not in sched.allocations


def test_bad_request_is_not_rescheduled(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store, uid, sched, computes = _run(tmp_path, monkeypatch, ["h1", "h2"], {
        "h1": PeerError("image disk_format 'iso' cannot boot here", 400)})
    inst = store.get_instance(uid)
    assert inst is not None and inst.vm_state == "error"
    assert inst.fault is not None and "cannot boot here" in inst.fault["message"]
    assert computes.builds == ["h1"] and sched.released == [uid]


def test_single_host_fails_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, uid, sched, _ = _run(tmp_path, monkeypatch, ["h1"], {
        "h1": PeerError("compute unreachable", 0)})
    inst = store.get_instance(uid)
    assert inst is not None and inst.vm_state == "error" and inst.fault is not None
    assert inst.fault["message"].startswith(f"Build of instance {uid} aborted: compute")
    assert sched.released == [uid]


def test_instance_takes_its_hosts_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Booted without a zone, an instance records its (final) host's zone, as Nova's."""
    store, uid, _, _ = _run(tmp_path, monkeypatch, ["h1", "h2"], {
        "h1": PeerError("libvirt: domain crashed on start", 500)},
        zones={"h1": "zone-a", "h2": "zone-b"})
    inst = store.get_instance(uid)
    assert inst is not None and inst.host == "h2" and inst.availability_zone == "zone-b"
    assert store.host_zones() == {"h1": "zone-a", "h2": "zone-b"}


def test_host_in_no_zoned_aggregate_is_in_the_default_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, uid, _, _ = _run(tmp_path, monkeypatch, ["h1"], {}, zones={"h9": "zone-z"})
    inst = store.get_instance(uid)
    assert inst is not None and inst.availability_zone == "nova"
