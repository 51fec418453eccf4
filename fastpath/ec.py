"""Erasure-coding kernel: the ISA-L one when compiled, else the pure twin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("ec")

MAX_FRAGMENTS: int = _impl.MAX_FRAGMENTS
if TYPE_CHECKING:
    from nubis.fastpath._ec_py import Codec
else:
    Codec = _impl.Codec

__all__ = ["IMPLEMENTATION", "MAX_FRAGMENTS", "Codec"]
