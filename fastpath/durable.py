"""Durable file placement: the compiled kernel when available, else the pure twin."""

from __future__ import annotations

from nubis.fastpath._durable_py import fsync_dir, makedirs
from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("durable")

place_durably = _impl.place_durably

__all__ = ["IMPLEMENTATION", "fsync_dir", "makedirs", "place_durably"]
