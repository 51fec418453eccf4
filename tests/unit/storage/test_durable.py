"""Durable placement kernel (both twins): rename into new dirs, sync, report errors."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

Kernels = Callable[[str], ModuleType]


def _temp(root: Path, name: str, data: bytes) -> tuple[bytes, int]:
    path = root / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    return os.fsencode(path), fd


@pytest.mark.parametrize("sync", [True, False])
def test_place_creates_missing_dirs_and_moves_the_file(kernels: Kernels, tmp_path: Path,
                                                       sync: bool) -> None:
    mod = kernels("durable")
    (tmp_path / "objects").mkdir()
    dest = tmp_path / "objects" / "12" / "abc" / "hash"
    tmp, fd = _temp(tmp_path, "t1", b"payload")
    try:
        created = mod.place_durably(tmp, os.fsencode(dest), os.fsencode(dest / "1.data"),
                                    fd, sync)
    finally:
        os.close(fd)
    assert created == 3
    assert (dest / "1.data").read_bytes() == b"payload"
    assert not os.path.exists(tmp)
    tmp, fd = _temp(tmp_path, "t2", b"second")
    try:  # everything exists now: nothing created
        assert mod.place_durably(tmp, os.fsencode(dest), os.fsencode(dest / "2.data"),
                                 fd, sync) == 0
    finally:
        os.close(fd)
    assert sorted(os.listdir(dest)) == ["1.data", "2.data"]


def test_place_reports_errors_with_errno(kernels: Kernels, tmp_path: Path) -> None:
    mod = kernels("durable")
    dest = tmp_path / "d"
    tmp, fd = _temp(tmp_path, "t", b"x")
    os.unlink(tmp)
    try:
        with pytest.raises(OSError) as info:
            mod.place_durably(tmp, os.fsencode(dest), os.fsencode(dest / "f"), fd, True)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOENT
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    tmp, fd = _temp(tmp_path, "t3", b"x")
    try:  # a path component is a file: mkdir fails
        with pytest.raises(OSError) as info:
            mod.place_durably(tmp, os.fsencode(blocker / "sub"),
                              os.fsencode(blocker / "sub" / "f"), fd, True)
    finally:
        os.close(fd)
    assert info.value.errno in (errno.ENOTDIR, errno.EEXIST)
