"""``fileutil.locked``: an exclusive cross-process lock for a ``with`` block."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nubis.common.fileutil import locked

TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(3)
"""


def other_process_can_lock(path: Path) -> bool:
    rc = subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)], check=False).returncode
    assert rc in (0, 3)
    return rc == 0


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    with locked(path):
        assert path.stat().st_mode & 0o777 == 0o600
        assert not other_process_can_lock(path)
    assert other_process_can_lock(path)
