"""Durable file writes shared by every component (rings, builders, keys, configs).

``fsync_dir`` is the durable-placement kernel's (:mod:`nubis.fastpath.durable`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nubis.fastpath.durable import fsync_dir


def atomic_write(path: str | Path, chunks: Iterable[Any], *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``chunks`` (bytes-like) so readers see old or new, never half.

    Writes a temp file in the same directory, fsyncs it, renames it over ``path``
    and fsyncs the directory. On failure the temp file is removed and the old file
    is left as it was; the OSError propagates for the caller to word.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600 if missing) for a ``with`` block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
