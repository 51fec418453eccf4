"""A device short of free space is refused before a write starts (507)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from nubis.daemons.storage import devices
from nubis.daemons.storage.devices import DeviceSet

from .stack import run, stack, ts


class _Statvfs:
    def __init__(self, free_blocks: int, blocks: int = 1000) -> None:
        self.f_bavail = free_blocks
        self.f_blocks = blocks
        self.f_frsize = 4096


def test_short_of_space_uses_the_reserve_and_the_write_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d1").mkdir()
    space = {"free": 500}
    monkeypatch.setattr(os, "statvfs", lambda p: _Statvfs(space["free"]))
    monkeypatch.setattr(devices, "SPACE_TTL", -1.0)  # ask every time
    ds: DeviceSet[Any] = DeviceSet(tmp_path, lambda p: None)
    assert not ds.short_of_space("d1", 1.0)
    assert ds.short_of_space("d1", 1.0, need=495 * 4096)  # would leave < 10 blocks
    assert ds.short_of_space("d1", 60.0)
    space["free"] = 5
    assert ds.short_of_space("d1", 1.0)
    assert not ds.short_of_space("d1", 0.0)


def test_object_put_and_replication_get_507_below_the_reserve(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path, reserve_percent=100.0) as st:
            r = await st.req("object", "PUT", "/d1/0/AUTH_a/c/o",
                             {"X-Timestamp": ts(), "Content-Type": "text/plain"}, b"data")
            assert r.status == 507
            r = await st.req("object", "POST", "/d1/_replicate/0", {}, b"\x90")
            assert r.status == 507
            assert (await st.req("object", "GET", "/d1/0/AUTH_a/c/o")).status == 404

    run(go())
