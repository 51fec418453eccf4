"""S3 lifecycle rules: stored form, filters and when a rule expires an object."""

from __future__ import annotations

import calendar

from nubis.api.proxy import objver
from nubis.api.proxy.s3 import buckets, multipart
from nubis.api.shared import s3lifecycle
from nubis.api.shared.s3lifecycle import (
    DAY,
    Rule,
    abort_due_at,
    decode,
    due_at,
    encode,
    noncurrent_due_at,
    object_tags,
    removes_markers,
)

JAN1 = calendar.timegm((2030, 1, 1, 0, 0, 0))


def test_days_count_from_creation_and_round_up_to_midnight() -> None:
    rule = Rule("r", True, days=2)
    assert rule.due_at(JAN1 + 10) == JAN1 + 3 * DAY
    assert rule.due_at(JAN1) == JAN1 + 2 * DAY  # already a midnight


def test_date_rules_expire_every_match_from_that_date() -> None:
    rule = Rule("r", True, date=JAN1)
    assert rule.due_at(JAN1 + 5 * DAY) == JAN1


def test_filters_prefix_tags_and_sizes() -> None:
    rule = Rule("r", True, prefix="logs/", tags=(("a", "1"), ("b", "2")), size_gt=10,
                size_lt=100, days=1)
    assert rule.matches("logs/x", [("b", "2"), ("a", "1"), ("c", "3")], 50)
    assert not rule.matches("logz/x", [("a", "1"), ("b", "2")], 50)
    assert not rule.matches("logs/x", [("a", "1")], 50)
    assert not rule.matches("logs/x", [("a", "1"), ("b", "2")], 10)
    assert not rule.matches("logs/x", [("a", "1"), ("b", "2")], 100)


def test_due_at_takes_the_earliest_enabled_matching_rule() -> None:
    rules = [Rule("late", True, days=10), Rule("off", False, date=0),
             Rule("soon", True, prefix="a", days=1), Rule("other", True, prefix="b", date=0)]
    assert due_at(rules, "a1", [], 1, JAN1) == JAN1 + DAY
    assert due_at(rules, "c1", [], 1, JAN1) == JAN1 + 10 * DAY
    assert due_at([Rule("off", False, date=0)], "a", [], 1, JAN1) is None


def test_stored_form_round_trips_and_bad_values_read_as_none() -> None:
    rules = [Rule("a", True, prefix="p/", tags=(("k", "v"),), size_gt=1, days=3,
                  filter_style="and"), Rule("b", False, date=JAN1, filter_style="legacy")]
    assert decode(encode(rules)) == rules
    assert decode("") == [] and decode("{not json") == [] and decode('[{"x": 1}]') == []
    assert object_tags('[["k","v"]]') == [("k", "v")]
    assert object_tags(None) == [] and object_tags("nope") == []


def test_noncurrent_marker_and_upload_times() -> None:
    rules = [Rule("nc", True, prefix="a", noncurrent_days=2),
             Rule("mp", True, prefix="up/", abort_days=1), Rule("m", True, prefix="m", marker=True),
             Rule("exp", True, prefix="d", days=5), Rule("date", True, prefix="z", date=JAN1)]
    assert noncurrent_due_at(rules, "a1", [], 1, JAN1 + 10) == JAN1 + 3 * DAY
    assert noncurrent_due_at(rules, "b1", [], 1, JAN1) is None
    assert abort_due_at(rules, "up/k", JAN1 + 1) == JAN1 + 2 * DAY
    assert abort_due_at(rules, "k", JAN1) is None
    assert removes_markers(rules, "m1") and removes_markers(rules, "d1")  # Days rules too
    assert not removes_markers(rules, "z1") and not removes_markers(rules, "a1")
    assert due_at(rules, "a1", [], 1, JAN1) is None  # no current-version action
    assert decode(encode(rules)) == rules


def test_storage_layout_names_match_the_proxy() -> None:
    assert s3lifecycle.DELETE_MARKER == objver.DELETE_MARKER
    assert s3lifecycle.VERSIONS_SYSMETA == objver.SYSMETA_CONT
    assert objver.versions_container("b") == s3lifecycle.VERSIONS_PREFIX + "b"
    assert s3lifecycle.SEGMENTS_SUFFIX == buckets.SEGMENTS
    assert s3lifecycle.UPLOAD_MARKER == multipart.MARKER_TYPE
