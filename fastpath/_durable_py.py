"""Durable placement of a written file (pure twin of ``_durable_c.pyx``).

``place_durably(tmp, dest_dir, target, fd, sync)`` renames the written temp
file ``tmp`` to ``target`` (a path inside ``dest_dir``), creating ``dest_dir``
and missing parents first, then -- when ``sync`` -- flushes the file's data
(``fdatasync(fd)``), ``dest_dir`` and the parent of every directory it
created, so the new name survives a crash. Returns how many directories were
created. All paths are ``bytes``.

The compiled twin runs the whole sequence without the GIL: one GIL hand-off per
object instead of one per system call (``python -m nubis.bench swift``, 1 MiB PUT).

This is the one kernel that does I/O (see ``fastpath/__init__.py``); its
:func:`fsync_dir` and :func:`makedirs` are the project's only implementations of
those two steps (``nubis.common.fileutil`` uses them too).
"""

from __future__ import annotations

import contextlib
import errno
import os

#: Mode of directories created on the way.
DIR_MODE = 0o755


def fsync_dir(path: str | bytes | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename or create in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: bytes) -> int:
    """Create ``path`` and missing parents; return how many were created."""
    missing: list[bytes] = []
    p = path
    while p and p != b"/" and not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, DIR_MODE)
    return len(missing)


def place_durably(tmp: bytes, dest_dir: bytes, target: bytes, fd: int, sync: bool) -> int:
    """Rename ``tmp`` to ``target`` in ``dest_dir`` (created as needed), then make it durable."""
    created = 0
    try:
        os.rename(tmp, target)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        created = makedirs(dest_dir)
        os.rename(tmp, target)
    if sync:
        os.fdatasync(fd)
        d = dest_dir
        fsync_dir(d)
        for _ in range(created):
            d = os.path.dirname(d)
            fsync_dir(d)
    return created
