"""Scheduler selection kernel: the compiled one when available, else the pure twin."""

from __future__ import annotations

from nubis.fastpath._select import load

_impl, IMPLEMENTATION = load("sched")

MAX_TERMS: int = _impl.MAX_TERMS
select = _impl.select

__all__ = ["IMPLEMENTATION", "MAX_TERMS", "select"]
