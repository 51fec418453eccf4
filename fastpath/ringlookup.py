"""Ring lookup kernels: the compiled ones when available, else the pure twin."""

from __future__ import annotations

from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("ringlookup")

WALK_SPAN: int = _impl.WALK_SPAN
TIER_LEVELS: int = _impl.TIER_LEVELS
RingTable = _impl.RingTable
handoff_walk = _impl.handoff_walk
tier_counts = _impl.tier_counts

__all__ = ["IMPLEMENTATION", "TIER_LEVELS", "WALK_SPAN", "RingTable", "handoff_walk",
           "tier_counts"]
