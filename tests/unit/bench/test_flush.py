"""The flush benchmark's modes place every replica file and clean up after themselves."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nubis.bench import flush


@pytest.mark.parametrize("mode", flush.MODES)
def test_each_mode_places_every_file(tmp_path: Path, mode: str) -> None:
    root = tmp_path / mode
    (root / "tmp").mkdir(parents=True)
    one = flush.writer(root, mode, b"x" * 4096)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(6)))
    placed = sorted(p for p in root.rglob("*") if p.is_file())
    if mode == "ceiling":
        assert [p.name for p in placed] == [f"{i}.tmp" for i in range(6)]
    else:
        assert len(placed) == 6 and all(p.name == "x.data" for p in placed)
        assert not os.listdir(root / "tmp")
    assert all(p.stat().st_size == 4096 for p in placed)


def test_run_reports_and_removes_its_files(tmp_path: Path) -> None:
    ops, cpu, flushes = flush.run(tmp_path, "nubis", 2, "no-such-device")
    assert ops > 0 and cpu >= 0 and flushes == 0
    assert not (tmp_path / "nubis").exists()


def test_group_sync_returns_for_every_caller(tmp_path: Path) -> None:
    group = flush.GroupSync()
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: group.sync(fd), range(32)))
    finally:
        os.close(fd)
