"""Shared service tokens kept in the state directory (internal service-to-service auth).

An internal API (the scheduler, a compute daemon) accepts a random token its
callers read from a 0600 file under the state dir; whichever process needs it
first creates it (``O_EXCL``, so two racing first starts agree on one token).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(path: Path) -> str:
    """Return the token stored at ``path``, creating it (random, mode 0600) if absent."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return token


def _read(path: Path) -> str:
    token = path.read_text().strip()
    if not token:
        raise FileNotFoundError(path)  # a writer is between create and write
    return token
