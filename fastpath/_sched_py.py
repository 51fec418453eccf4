"""Scheduler selection kernel, pure-Python twin of ``_sched_c.pyx``.

:func:`select` finishes one filter/weigher pass over the host columns: it clears
the rows of ``alive`` where a resource does not fit (``limit < amount``), then
weighs the surviving rows exactly like ``nova.weights.BaseWeightHandler`` —
per weigher, raw value ``column[row] * factor``, min-max normalised over the
survivors (all equal: the weigher adds nothing), multiplied by its multiplier
and summed in weigher order — and returns the survivor count and the rows of
the ``k`` highest weights, ties in row order (a stable descending sort).

The compiled twin does the same float operations in the same order, so both
return identical rows; it does it in one or two sweeps over the columns without
compaction or temporaries, and without the GIL. Both report each weigher's
min/max over the survivors in ``bounds``; only the compiled one uses a
``predict``-ion of them (to skip its second sweep).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: Most resource limits and weigher terms one call accepts.
MAX_TERMS = 16

#: One weigher term: (column over all rows, factor applied to the raw value, multiplier).
Term = tuple[npt.NDArray[np.float64] | npt.NDArray[np.int64], float, float]


def _check(alive: npt.NDArray[np.uint8], limits: Sequence[npt.NDArray[np.int64]],
           amounts: Sequence[int], terms: Sequence[Term], k: int) -> int:
    """Validate the arguments; return the row count."""
    n = len(alive)
    if len(limits) != len(amounts):
        raise ValueError("limits and amounts differ in length")
    if len(limits) > MAX_TERMS or len(terms) > MAX_TERMS:
        raise ValueError(f"at most {MAX_TERMS} limits and {MAX_TERMS} weigher terms")
    if k < 0:
        raise ValueError("k must be >= 0")
    for col in list(limits) + [t[0] for t in terms]:
        if len(col) < n:
            raise ValueError("a column is shorter than alive")
    return n


def select(alive: npt.NDArray[np.uint8], limits: Sequence[npt.NDArray[np.int64]],
           amounts: Sequence[int], terms: Sequence[Term], k: int,
           scratch: npt.NDArray[np.float64] | None = None,
           predict: npt.NDArray[np.float64] | None = None,
           bounds: npt.NDArray[np.float64] | None = None,
           ) -> tuple[int, npt.NDArray[np.int64]]:
    """Apply the resource limits to ``alive`` (in place), weigh, return (count, best rows).

    Args:
        alive: One byte per row, non-zero where the host passed the other filters;
            rows failing a limit are set to 0.
        limits: Per resource, the largest amount each row can take (int64 columns).
        amounts: Per resource, the amount requested.
        terms: The weighers, in order: (column, factor, multiplier); float64 or int64.
        k: How many best rows to return (fewer when fewer survive).
        scratch: Optional float64 work space of ``2 * len(alive) + 2`` items, reused
            between calls (the compiled kernel's; this twin does not need it).
        predict: Optional ``bounds`` of an earlier call; the compiled kernel uses them
            to save its second sweep when they still hold (this twin ignores them).
        bounds: Optional float64 array of ``2 * len(terms)`` items that receives each
            weigher's (min, max) raw value over the survivors (``(inf, -inf)`` with
            fewer than two survivors).
    """
    n = _check(alive, limits, amounts, terms, k)
    if predict is not None and len(predict) < 2 * len(terms):
        raise ValueError("predict needs 2 items per weigher term")
    mask = alive[:n].view(np.bool_)
    for lim, amount in zip(limits, amounts, strict=True):
        mask &= lim[:n] >= amount
    rows = np.flatnonzero(mask)
    count = len(rows)
    extremes = [(np.inf, -np.inf)] * len(terms)
    raws: list[npt.NDArray[np.float64]] = []
    if count > 1:
        for col, factor, _mult in terms:
            raws.append(col[rows].astype(np.float64) * float(factor))
        extremes = [(float(raw.min()), float(raw.max())) for raw in raws]
    if bounds is not None:
        if len(bounds) < 2 * len(terms):
            raise ValueError("bounds needs 2 items per weigher term")
        bounds[: 2 * len(terms)] = [v for pair in extremes for v in pair]
    if count == 0 or k == 0:
        return count, np.empty(0, dtype=np.int64)
    total = np.zeros(count, dtype=np.float64)
    if count > 1:
        for raw, (lo, hi), (_col, _factor, mult) in zip(raws, extremes, terms, strict=True):
            if lo == hi:
                continue
            buf = (raw - lo) / (hi - lo)
            if mult == 1.0:
                total += buf
            elif mult == -1.0:
                total -= buf
            else:
                total += buf * float(mult)
    order = np.argsort(-total, kind="stable")[:k]
    return count, rows[order].astype(np.int64)
