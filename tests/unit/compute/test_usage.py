"""Usage arithmetic of ``os-simple-tenant-usage`` (Nova's ``_hours_for`` and totals)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from nubis.api.compute.model import Instance
from nubis.api.compute.usage import hours_for, parse_time, server_usage, summarize
from nubis.api.shared.errors import BadRequestError

T0 = datetime(2026, 1, 1)


def _inst(launched: datetime | None, ended: datetime | None) -> Instance:
    return Instance(
        uuid="u1", project_id="p1", user_id="x", name="vm", hostname="vm", description=None,
        image_ref="", kernel_id="", ramdisk_id="", flavor={"name": "m1.nano", "ephemeral": 2},
        vcpus=2, memory_mb=128, root_gb=1, vm_state="active", task_state=None,
        power_state=1, host="h", node="h", key_name=None, key_data=None, user_data=None,
        metadata={}, tags=(), fault=None, config_drive=False, availability_zone=None,
        reservation_id="r", launch_index=0, locked=False, created_at=T0, updated_at=T0,
        launched_at=launched, terminated_at=ended, deleted=ended is not None)


def test_hours_clip_to_the_window() -> None:
    start, stop = datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 20)
    assert hours_for(_inst(datetime(2026, 1, 1, 8), None), start, stop) == 10.0
    assert hours_for(_inst(datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 15)),
                     start, stop) == 3.0
    assert hours_for(_inst(datetime(2026, 1, 1, 1), datetime(2026, 1, 1, 2)),
                     start, stop) == 0.0
    assert hours_for(_inst(datetime(2026, 1, 2), None), start, stop) == 0.0
    assert hours_for(_inst(None, None), start, stop) == 0.0


def test_totals_and_terminated_state() -> None:
    start, stop = datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 20)
    gone = _inst(datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 15))
    live = replace(_inst(datetime(2026, 1, 1, 10), None), uuid="u2")
    usages = [server_usage(i, start, stop, stop) for i in (gone, live)]
    assert usages[0]["state"] == "terminated" and usages[0]["local_gb"] == 3
    assert usages[1]["state"] == "active" and usages[1]["ended_at"] is None
    (tenant,) = summarize(usages, start, stop, detailed=True)
    assert tenant["total_hours"] == 13.0
    assert tenant["total_vcpus_usage"] == 26.0
    assert tenant["total_memory_mb_usage"] == 128 * 13.0
    assert tenant["total_local_gb_usage"] == 3 * 13.0
    assert len(tenant["server_usages"]) == 2
    (brief,) = summarize(usages, start, stop, detailed=False)
    assert "server_usages" not in brief


def test_time_formats() -> None:
    assert parse_time("2026-01-01T10:00:00") == datetime(2026, 1, 1, 10)
    assert parse_time("2026-01-01 10:00:00.5") == datetime(2026, 1, 1, 10, 0, 0, 500000)
    assert parse_time("2026-01-01T10:00:00+01:00") == datetime(2026, 1, 1, 9)
    with pytest.raises(BadRequestError):
        parse_time("yesterday")
