"""Nova's ``instance_build_timeout``: builds stuck in BUILD go to ERROR.

Builds run in the api process; one an api restart interrupted would otherwise
stay in BUILD. The store is real (SQLite); the peers are the stand-ins of
``test_reschedule``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from nubis.api.compute import reschedule, schema
from nubis.api.compute.build import Builder, BuildPlan

from tests.unit.compute.test_reschedule import (
    FakeComputes,
    FakeScheduler,
    FakeService,
    _instance,
    _selection,
    _store,
)


def test_stale_builds_go_to_error_and_a_late_build_keeps_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    stale, fresh, deleting = _instance(store), _instance(store), _instance(store)
    t = schema.instances
    with store.engine.begin() as conn:
        conn.execute(t.update().where(t.c.uuid.in_([stale, deleting])).values(
            created_at=store.clock() - timedelta(hours=2)))
        conn.execute(t.update().where(t.c.uuid == deleting).values(task_state="deleting"))
    sched, computes = FakeScheduler(["h1"], set()), FakeComputes({})
    monkeypatch.setattr(reschedule, "placement_call", sched.placement)
    builder = Builder(FakeService(store, sched, computes))  # type: ignore[arg-type]
    assert builder.fail_stale_builds(0) == 0  # 0 turns the check off
    assert builder.fail_stale_builds(3600) == 1
    states = {u: store.get_instance(u) for u in (stale, fresh, deleting)}
    assert {u: (i.vm_state, i.task_state) for u, i in states.items() if i} == {
        stale: ("error", None), fresh: ("building", "scheduling"),
        deleting: ("building", "deleting")}
    timed_out = states[stale]
    assert timed_out is not None and timed_out.fault is not None
    assert timed_out.fault["message"] == "Instance build timed out. Set to error state."
    assert builder.fail_stale_builds(3600) == 0  # done once
    # the interrupted build, had it been alive, loses its compare-and-swap: it
    # removes what it made but leaves the ERROR record (not a delete)
    plan = BuildPlan(token="t", image=None, kernel=None, ramdisk=None, cmdline="",
                     public_keys={})
    assert timed_out is not None
    asyncio.run(builder._build_one(timed_out, _selection(stale, ["h1"]), plan))
    after = store.get_instance(stale)
    assert after is not None and (after.vm_state, after.deleted) == ("error", False)
    assert ("h1", stale) in computes.deleted and stale in sched.released
