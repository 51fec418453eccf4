"""Scheduler selection kernel: both twins against a per-row Nova-style reference."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nubis.fastpath import sched

Kernels = Callable[[str], ModuleType]


def reference(alive: list[bool], limits: list[list[int]], amounts: list[int],
              terms: list[tuple[list[float], float, float]],
              k: int) -> tuple[list[bool], int, list[int]]:
    """Filter and weigh row by row like nova.weights.BaseWeightHandler."""
    n = len(alive)
    mask = [alive[r] and all(lim[r] >= a for lim, a in zip(limits, amounts, strict=True))
            for r in range(n)]
    rows = [r for r in range(n) if mask[r]]
    weights = {r: 0.0 for r in rows}
    if len(rows) > 1:
        for col, factor, mult in terms:
            raw = {r: float(col[r]) * factor for r in rows}
            lo, hi = min(raw.values()), max(raw.values())
            if lo == hi:
                continue
            for r in rows:
                x = (raw[r] - lo) / (hi - lo)
                weights[r] = (weights[r] + x if mult == 1.0 else weights[r] - x
                              if mult == -1.0 else weights[r] + x * mult)
    best = sorted(rows, key=lambda r: -weights[r])[:k]  # sorted() is stable
    return mask, len(rows), best


def _columns(draw: Any, n: int) -> tuple[list[bool], list[list[int]], list[int],
                                         list[tuple[list[Any], float, float]]]:
    alive = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    nl = draw(st.integers(0, 3))
    limits = [draw(st.lists(st.integers(-1, 6), min_size=n, max_size=n)) for _ in range(nl)]
    amounts = [draw(st.integers(0, 5)) for _ in range(nl)]
    terms = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            col: list[Any] = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
        else:
            col = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False).map(
                lambda x: round(x, 1)), min_size=n, max_size=n))
        terms.append((col, draw(st.sampled_from([1.0, -1.0, 1024.0])),
                      draw(st.sampled_from([1.0, -1.0, 0.5, 3.0, 1e6]))))
    return alive, limits, amounts, terms


@st.composite
def cases(draw: Any) -> Any:
    n = draw(st.integers(0, 40))
    return (*_columns(draw, n), draw(st.integers(0, 5)))


def _arrays(alive: list[bool], limits: list[list[int]],
            terms: list[tuple[list[Any], float, float]]) -> tuple[
        npt.NDArray[np.uint8], list[npt.NDArray[np.int64]], list[Any]]:
    arr = np.array(alive, dtype=np.uint8)
    lims = [np.array(lim, dtype=np.int64) for lim in limits]
    cols = [(np.array(c, dtype=np.int64 if c and isinstance(c[0], int) else np.float64),
             f, m) for c, f, m in terms]
    return arr, lims, cols


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_select_matches_reference(kernels: Kernels, case: Any) -> None:
    alive, limits, amounts, terms, k = case
    want_mask, want_count, want_best = reference(alive, limits, amounts, terms, k)
    arr, lims, cols = _arrays(alive, limits, terms)
    count, best = kernels("sched").select(arr, lims, amounts, cols, k)
    assert count == want_count
    assert best.dtype == np.int64
    assert best.tolist() == want_best
    assert arr.astype(bool).tolist() == want_mask


def test_twins_agree_on_many_rows_with_ties(kernels: Kernels) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    alive = (rng.random(n) > 0.1).astype(np.uint8)
    limits = [rng.integers(-1, 50, n), rng.integers(0, 1000, n)]
    terms = [(rng.integers(0, 8, n).astype(np.float64), 1.0, 1.0),
             (rng.integers(0, 4, n), 1.0, -1.0),
             (rng.integers(0, 3, n).astype(np.float64), 1024.0, 2.5)]
    got = kernels("sched").select(alive.copy(), limits, [3, 10], terms, 7)
    want = sched._impl.select(alive.copy(), limits, [3, 10], terms, 7)
    pure = kernels("sched").select.__module__.endswith("_py")
    assert got[0] == want[0]
    assert got[1].tolist() == want[1].tolist(), pure


def test_select_rejects_bad_arguments(kernels: Kernels) -> None:
    select = kernels("sched").select
    alive = np.ones(3, dtype=np.uint8)
    with pytest.raises(ValueError):
        select(alive, [np.zeros(3, dtype=np.int64)], [], [], 1)
    with pytest.raises(ValueError):
        select(alive, [np.zeros(2, dtype=np.int64)], [1], [], 1)
    with pytest.raises(ValueError):
        select(alive, [], [], [], -1)
    with pytest.raises(ValueError):
        select(alive, [np.zeros(3, dtype=np.int64)] * (sched.MAX_TERMS + 1),
               [0] * (sched.MAX_TERMS + 1), [], 1)


def test_empty_and_single_survivor(kernels: Kernels) -> None:
    select = kernels("sched").select
    count, best = select(np.zeros(0, dtype=np.uint8), [], [], [], 3)
    assert (count, best.tolist()) == (0, [])
    alive = np.array([0, 1, 0], dtype=np.uint8)
    count, best = select(alive, [], [], [(np.array([1.0, 5.0, 9.0]), 1.0, 1.0)], 3)
    assert (count, best.tolist()) == (1, [1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_twins_agree_across_blocks(kernels: Kernels, seed: int) -> None:
    """Several kernel blocks, dead blocks, huge integers, zero/negative factors."""
    from nubis.fastpath import _sched_py

    rng = np.random.default_rng(seed)
    n = 4099
    alive = (rng.random(n) > 0.3).astype(np.uint8)
    alive[1024:2048] = 0  # one whole block without survivors
    limits = [rng.integers(-1, 20, n)]
    big = 2**62
    terms: list[Any] = [
        (rng.integers(-big, big, n), 1.0, 1.0),  # beyond 2**53: rounding in the cast
        (rng.integers(0, 9, n), -1.0, 3.0),
        (rng.integers(0, 9, n), 0.0, 1.0),
        (rng.integers(0, 2**40, n), 1024.0, -1.0),
        (rng.random(n) * 1e6, -2.5, 0.5)]
    for k in (0, 1, 5, 40):
        got = kernels("sched").select(alive.copy(), limits, [5], terms, k)
        want = _sched_py.select(alive.copy(), limits, [5], terms, k)
        assert got[0] == want[0]
        assert got[1].tolist() == want[1].tolist()
    # every weigher constant: the first k survivors in row order
    flat = [(np.full(n, 7, dtype=np.int64), 1.0, 1.0)]
    got = kernels("sched").select(alive.copy(), limits, [5], flat, 6)
    want = _sched_py.select(alive.copy(), limits, [5], flat, 6)
    assert got[1].tolist() == want[1].tolist()
    assert got[1].tolist() == np.flatnonzero(alive.astype(bool) & (limits[0] >= 5))[:6].tolist()


@pytest.mark.parametrize("seed", [3, 4])
def test_predicted_extremes_never_change_the_answer(kernels: Kernels, seed: int) -> None:
    """``bounds`` match the twin; right, stale or nonsense predictions give one answer."""
    from nubis.fastpath import _sched_py

    rng = np.random.default_rng(seed)
    n = 3000
    limits = [rng.integers(-1, 20, n)]
    terms: list[Any] = [(rng.random(n) * 1e5, 1.0, 1.0), (rng.integers(0, 9, n), 1.0, -1.0),
                        (rng.integers(0, 4, n), 1024.0, 2.0)]
    select = kernels("sched").select
    alive = (rng.random(n) > 0.2).astype(np.uint8)
    want = _sched_py.select(alive.copy(), limits, [5], terms, 4)
    bounds = np.empty(6)
    twin_bounds = np.empty(6)
    _sched_py.select(alive.copy(), limits, [5], terms, 4, bounds=twin_bounds)
    got = select(alive.copy(), limits, [5], terms, 4, bounds=bounds)
    assert bounds.tolist() == twin_bounds.tolist()
    stale = bounds.copy()
    stale[1] += 1.0
    for predict in (bounds, stale, np.zeros(6), np.array([1, 1, 2, 2, 3, 3.0]),
                    np.full(6, np.nan)):
        got = select(alive.copy(), limits, [5], terms, 4, predict=predict)
        assert (got[0], got[1].tolist()) == (want[0], want[1].tolist())
    # one survivor, none, and k == 0 still report (inf, -inf) / the extremes
    for amount, k in ((19, 3), (99, 3), (5, 0)):
        one = np.empty(6)
        two = np.empty(6)
        a = select(alive.copy(), limits, [amount], terms, k, predict=bounds, bounds=one)
        b = _sched_py.select(alive.copy(), limits, [amount], terms, k, bounds=two)
        assert (a[0], a[1].tolist(), one.tolist()) == (b[0], b[1].tolist(), two.tolist())
