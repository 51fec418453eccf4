"""Unit tests of the zone plan behind the sampled placement."""

from __future__ import annotations

import numpy as np
from nubis.ring.sample import limit_per_device, zone_plan


def test_zone_plan_meets_demand_and_fills_a_tight_zone() -> None:
    # signature 0 may use zones 0 and 1, signature 1 only zone 0; spare equals demand,
    # so zone 0 must take all of signature 1 and signature 0 must go to zone 1 mostly
    allowed = np.array([[True, True], [True, False]])
    plan = zone_plan(allowed, np.array([60.0, 40.0]), np.array([50.0, 50.0]))
    assert np.allclose(plan.sum(axis=1), [60.0, 40.0])
    assert np.allclose(plan.sum(axis=0), [50.0, 50.0], atol=0.1)
    assert plan[1, 1] == 0.0


def test_zone_plan_spreads_in_proportion_when_spare_exceeds_demand() -> None:
    allowed = np.ones((1, 3), dtype=bool)
    plan = zone_plan(allowed, np.array([30.0]), np.array([10.0, 20.0, 30.0]))
    assert np.allclose(plan[0], [5.0, 10.0, 15.0])


def test_zone_plan_without_room_plans_nothing() -> None:
    allowed = np.array([[False, True]])
    plan = zone_plan(allowed, np.array([5.0]), np.array([7.0, 0.0]))
    assert not plan.any()


def test_limit_per_device_keeps_order_without_rotation() -> None:
    devs = np.array([2, 1, 2, 2, 1], dtype=np.int64)
    kept = limit_per_device(devs, np.array([0, 1, 2, 0]), 3, np.random.default_rng(0),
                            rotate=False)
    assert sorted(kept.tolist()) == [0, 1, 2]  # device 1: first one; device 2: first two


def test_zone_plan_stays_finite_when_no_plan_meets_every_zone() -> None:
    # zone 1 wants 90 but only signature 1 (demand 1) may use it: the scaling must not
    # overflow, and rows still meet their demand
    allowed = np.array([[True, False], [True, True]])
    plan = zone_plan(allowed, np.array([99.0, 1.0]), np.array([10.0, 90.0]))
    assert np.isfinite(plan).all()
    assert np.allclose(plan.sum(axis=1), [99.0, 1.0])
