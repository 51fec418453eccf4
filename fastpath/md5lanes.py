"""MD5 of many messages at once: the compiled lanes when available, else the twin."""

from __future__ import annotations

from nubis.fastpath._md5lanes_py import LANES
from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("md5lanes")

md5_many = _impl.md5_many
#: Whether messages are hashed side by side (compiled kernel on an AVX2 CPU).
SIDE_BY_SIDE: bool = _impl.SIDE_BY_SIDE

__all__ = ["IMPLEMENTATION", "LANES", "SIDE_BY_SIDE", "md5_many"]
