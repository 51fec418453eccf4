"""Import leases and the recovery of imports whose api process stopped.

Two recoverers on one SQLite database stand for two api processes; the clock is
injected (no wall-clock thresholds) and the object store is a dictionary.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import jsonschema
import pytest
from nubis.api.image.config import LEASE_RENEWALS, ImageConfig
from nubis.api.image.jsonschemas import task_schema
from nubis.api.image.recovery import ImportLease, ImportRecovery, import_object_name
from nubis.api.image.store import ImageStore
from nubis.api.image.swift import StoreError, SwiftClient
from nubis.api.image.tasks import Task, TaskStore, task_view
from nubis.api.shared.auth import AuthContext
from nubis.common.db import make_engine

T0 = datetime(2024, 5, 1, 12, 0, 0)
#: Lease renewed every second; abandoned after 6 s (LEASE_RENEWALS x 1 s > 5 s timeout).
CONFIG = ImageConfig(import_lease_interval=1.0, import_timeout=5.0)
BOUND = timedelta(seconds=CONFIG.import_lease_timeout)


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeSwift:
    """The image container as a set of object names."""

    def __init__(self) -> None:
        self.objects: set[str] = set()
        self.broken = False

    async def delete(self, name: str, manifest: bool = False) -> bool:
        if self.broken:
            raise StoreError("object store unreachable: refused")
        if manifest:
            for segment in [o for o in self.objects if o.startswith(f"{name}-")]:
                self.objects.discard(segment)
        if name not in self.objects:
            return False
        self.objects.discard(name)
        return True


def _caller(user_id: str, is_admin: bool) -> AuthContext:
    """Return the little of a caller the task store reads."""
    return cast(AuthContext, SimpleNamespace(user_id=user_id, project_id="p1",
                                             is_admin=is_admin))


class World:
    """One database, its clock and object store, and two api processes' recoverers."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.engine = make_engine(f"sqlite:///{tmp_path / 'image.db'}")
        self.store = ImageStore(self.engine, self.clock)
        self.store.migrate()
        self.records = TaskStore(self.engine, self.clock)
        self.swift = FakeSwift()
        self.recoverers = [ImportRecovery(CONFIG, self.store, TaskStore(self.engine, self.clock),
                                          cast(SwiftClient, self.swift)) for _ in range(2)]
        self.ctx = _caller("u1", is_admin=False)

    def image(self, status: str = "queued", **values: Any) -> str:
        image = self.store.create({"name": "x", "owner": "p1", "disk_format": "raw",
                                   "container_format": "bare"}, {}, [])
        if status != "queued":
            assert self.store.transition(image.id, ["queued"], status, **values)
        return str(image.id)

    def begin(self, image_id: str, before: str = "queued",
              method: str = "web-download") -> str:
        task_id = self.records.begin(self.ctx, image_id, before, "req-1",
                                     {"name": method, "uri": "http://example.com/d"})
        assert task_id is not None
        return str(task_id)

    def task(self, task_id: str) -> Task:
        task = self.records.get(_caller("admin", is_admin=True), task_id)
        assert task is not None
        return task

    def status(self, image_id: str) -> str:
        image = self.store.get(image_id)
        assert image is not None
        return str(image.status)

    def sweep(self, which: int = 0) -> list[str]:
        return asyncio.run(self.recoverers[which].sweep())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.engine.dispose()


def test_the_abandonment_bound_is_several_renewals_and_at_least_the_import_timeout() -> None:
    assert ImageConfig().import_lease_timeout == max(LEASE_RENEWALS * 10.0, 60.0)
    assert ImageConfig(import_lease_interval=30.0).import_lease_timeout == 180.0
    assert ImageConfig(import_lease_interval=0.1, import_timeout=2.0
                       ).import_lease_timeout == 2.0
    assert CONFIG.import_lease_timeout == 6.0


def test_an_expired_lease_is_recovered_once_and_a_renewed_one_left_alone(
        world: World) -> None:
    stopped, live = world.image(), world.image()
    stopped_task, live_task = world.begin(stopped), world.begin(live)
    partial = import_object_name(stopped, stopped_task)
    others = {import_object_name(live, live_task), f"{import_object_name(live, live_task)}"
              "-00001", stopped}
    world.swift.objects |= {partial, f"{partial}-00001", f"{partial}-00002", *others}
    world.clock.advance(5)
    assert world.records.renew(live_task)  # the live process renews; the other stopped
    world.clock.advance(2)  # 7 s after the start, 2 s after the renewal
    assert world.sweep(0) == [stopped]
    assert world.sweep(1) == []  # the second process finds nothing left to take over
    task = world.task(stopped_task)
    assert task.status == "failure" and "interrupted" in task.message
    assert task.expires_at == world.clock.now + timedelta(hours=48)
    assert world.status(stopped) == "queued"
    assert world.swift.objects == others  # the partial download is gone, nothing else
    assert world.status(live) == "importing"
    assert world.task(live_task).status == "processing"
    # the stopped process, were it still alive, would find its lease taken over
    assert not world.records.renew(stopped_task)
    assert not world.records.succeed(stopped_task, stopped, size=1)
    assert world.status(stopped) == "queued"
    assert world.records.renew(live_task)
    assert world.records.succeed(live_task, live, size=3)
    assert (world.status(live), world.task(live_task).status) == ("active", "success")


def test_two_recoverers_cannot_both_take_an_import_over(world: World) -> None:
    image_id = world.image()
    task_id = world.begin(image_id)
    world.clock.advance(7)
    task = world.task(task_id)
    cutoff = world.clock.now - BOUND
    assert [t.id for t in world.records.expired(cutoff, 10)] == [task_id]
    assert world.records.interrupt(task, cutoff, "interrupted")
    assert not world.records.interrupt(task, cutoff, "interrupted")
    # a lease renewed after the other process read it is not taken over
    other = world.begin(world.image())
    world.clock.advance(7)
    stale = world.task(other)
    assert world.records.renew(other)
    assert not world.records.interrupt(stale, world.clock.now - BOUND, "interrupted")
    assert world.task(other).status == "processing"


def test_an_interrupted_glance_direct_import_drops_its_staged_data(world: World) -> None:
    image_id = world.image("uploading", location="staged", segments=2, size=10,
                           checksum="c" * 32, os_hash_algo="sha512", os_hash_value="h")
    world.swift.objects |= {"staged", "staged-00001", "staged-00002"}
    task_id = world.begin(image_id, before="uploading", method="glance-direct")
    world.clock.advance(6.5)
    assert world.sweep() == [image_id]
    image = world.store.get(image_id)
    assert image is not None and image.status == "queued"
    assert (image.location, image.segments, image.size, image.checksum,
            image.os_hash_value) == (None, 0, None, None, None)
    assert world.swift.objects == set()
    assert world.task(task_id).status == "failure"


def test_a_recoverer_that_stopped_half_way_is_finished_by_a_later_sweep(
        world: World) -> None:
    image_id = world.image()
    task_id = world.begin(image_id)
    partial = import_object_name(image_id, task_id)
    world.swift.objects |= {partial, f"{partial}-00001"}
    world.clock.advance(7)
    # a recoverer failed the task, then stopped before deleting the bytes
    assert world.records.interrupt(world.task(task_id), world.clock.now - BOUND, "x")
    assert world.sweep() == []  # its claim is fresh: it may still be working
    assert world.status(image_id) == "importing"
    world.clock.advance(7)
    assert world.sweep(1) == [image_id]
    assert world.status(image_id) == "queued" and world.swift.objects == set()


def test_bytes_that_cannot_be_deleted_yet_keep_the_image_importing(world: World) -> None:
    image_id = world.image()
    task_id = world.begin(image_id)
    world.swift.objects.add(f"{import_object_name(image_id, task_id)}-00001")
    world.clock.advance(7)
    world.swift.broken = True
    assert world.sweep() == []
    assert world.task(task_id).status == "failure"
    assert world.status(image_id) == "importing"  # not queued while its bytes remain
    world.swift.broken = False
    world.clock.advance(7)
    assert world.sweep() == [image_id] and world.swift.objects == set()


def test_a_running_import_renews_its_lease_and_stops_once_taken_over(world: World) -> None:
    image_id = world.image()
    task_id = world.begin(image_id)
    ended: list[str] = []

    async def until(check: Any) -> None:  # bounded polling, no time threshold
        for _ in range(2000):
            if check():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("condition never met")

    async def scenario() -> bool:
        lease = ImportLease(world.records, task_id, 0.001)

        async def importing() -> None:
            try:
                async with lease:
                    await asyncio.Event().wait()
            except asyncio.CancelledError:
                ended.append("cancelled")
                raise

        job = asyncio.get_running_loop().create_task(importing())
        world.clock.advance(30)
        await until(lambda: world.task(task_id).updated_at == world.clock.now)
        assert not world.records.expired(world.clock.now - BOUND, 10)  # renewed: not expired
        # another process takes the import over (this one looked stopped to it)
        assert world.records.interrupt(world.task(task_id), world.clock.now + BOUND, "x")
        await until(job.done)
        return lease.lost and job.cancelled()

    assert asyncio.run(scenario())
    assert ended == ["cancelled"]


def test_a_finished_import_ignores_a_late_end(world: World) -> None:
    image_id = world.image()
    task_id = world.begin(image_id)
    assert world.records.fail(task_id, image_id, "web-download of x failed: 404")
    assert world.status(image_id) == "queued"
    assert not world.records.succeed(task_id, image_id, size=1)
    assert not world.records.fail(task_id, image_id, "again")
    assert world.task(task_id).message == "web-download of x failed: 404"
    assert world.records.begin(world.ctx, image_id, "uploading", "r", {}) is None


def test_tasks_match_the_task_schemas(world: World) -> None:
    image_id = world.image()
    done = world.begin(image_id)
    world.records.succeed(done, image_id, size=1)
    running = world.begin(world.image())
    full, partial = task_schema(), task_schema(partial=True)
    for schema in (full, partial):
        jsonschema.Draft4Validator.check_schema(schema)
    for task_id in (done, running):
        view = json.loads(json.dumps(task_view(world.task(task_id), True)))
        jsonschema.validate(view, full)
        jsonschema.validate(json.loads(json.dumps(task_view(world.task(task_id), False))),
                            partial)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(view, partial)  # a list entry has no input/result/message
    assert full["properties"]["status"]["enum"] == ["pending", "processing", "success",
                                                    "failure"]
