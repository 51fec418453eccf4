"""The devices of one storage node: directories under ``devices_dir``, opened lazily.

A device name comes from a request path, so it is validated before it touches
the filesystem; a missing (or, with ``mount_check``, unmounted), full or
read-only device is ``None`` -- the server answers 507.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from nubis.daemons.storage.lmdbstore import GroupCommitter


class Device(Protocol):
    """What a storage server keeps open per device: an LMDB environment and its writer."""

    env: Any
    committer: GroupCommitter


D = TypeVar("D", bound=Device)


#: Seconds a device's free space is taken as known.
SPACE_TTL = 0.25


class DeviceSet(Generic[D]):
    """The devices of one node, opened lazily by validated name."""

    def __init__(self, devices_dir: Path, factory: Callable[[Path], D], *,
                 mount_check: bool = False) -> None:
        self.devices_dir = devices_dir
        self.factory = factory
        self.mount_check = mount_check
        self.open: dict[str, D] = {}
        self._space: dict[str, tuple[float, int, int]] = {}

    def short_of_space(self, name: str, reserve_percent: float, need: int = 0) -> bool:
        """Tell whether device ``name`` would keep less than its reserve after ``need`` bytes.

        PERF: ``statvfs`` is asked at most every :data:`SPACE_TTL` seconds per
        device, not on every PUT (``python -m nubis.bench swift``).
        """
        if reserve_percent <= 0 and need <= 0:
            return False
        now = time.monotonic()
        seen = self._space.get(name)
        if seen is None or now - seen[0] > SPACE_TTL:
            try:
                st = os.statvfs(self.devices_dir / name)
            except OSError:
                return False
            seen = (now, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
            self._space[name] = seen
        _, free, total = seen
        return free - need < total * reserve_percent / 100.0

    def get(self, name: str) -> D | None:
        """Return the opened device ``name``, or None (507) if it does not exist."""
        dev = self.open.get(name)
        if dev is not None:
            return dev
        if not _valid_device_name(name):
            return None
        path = self.devices_dir / name
        if not path.is_dir() or (self.mount_check and not os.path.ismount(path)):
            return None
        try:
            dev = self.factory(path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
                return None
            raise
        self.open[name] = dev
        return dev

    def all(self) -> list[D]:
        """Open and return every device present in the devices directory."""
        try:
            names = sorted(e.name for e in os.scandir(self.devices_dir) if e.is_dir())
        except FileNotFoundError:
            return []
        found = (self.get(n) for n in names)
        return [d for d in found if d is not None]

    async def close(self, before_close: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop every opened device's writer, run ``before_close``, close them all."""
        for dev in list(self.open.values()):
            await dev.committer.close()
        if before_close is not None:
            await before_close()
        for dev in self.open.values():
            dev.env.close()
        self.open.clear()


def _valid_device_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name \
        and len(name) <= 255 and not name.startswith(".")


