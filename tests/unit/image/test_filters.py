"""``GET /v2/images`` query parsing (pure logic)."""

from __future__ import annotations

from datetime import datetime

import pytest
from nubis.api.image.filters import TimeFilter, parse_list_query
from nubis.api.shared.errors import BadRequestError


def q(**params: str | list[str]):  # type: ignore[no-untyped-def]
    multi = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    return parse_list_query(multi, default_limit=25, max_limit=100)


def test_defaults() -> None:
    query = q()
    assert query.limit == 25 and query.sort == (("created_at", "desc"),)
    assert query.member_status == "accepted" and query.os_hidden is False
    assert query.visibility is None and not query.columns and not query.properties


def test_limit_is_capped_and_checked() -> None:
    assert q(limit="5000").limit == 100 and q(limit="0").limit == 0
    for bad in ("x", "-1"):
        with pytest.raises(BadRequestError, match="limit"):
            q(limit=bad)


def test_classic_and_new_sort_syntax() -> None:
    assert q(sort_key=["name", "size"], sort_dir="asc").sort == (("name", "asc"),
                                                                 ("size", "asc"))
    assert q(sort_key=["name", "size"], sort_dir=["asc", "desc"]).sort == (
        ("name", "asc"), ("size", "desc"))
    assert q(sort="name:asc,size").sort == (("name", "asc"), ("size", "desc"))
    with pytest.raises(BadRequestError, match="cannot be combined"):
        q(sort="name", sort_key="name")
    with pytest.raises(BadRequestError, match="does not match"):
        q(sort_key=["name", "size", "id"], sort_dir=["asc", "desc"])
    with pytest.raises(BadRequestError, match="Invalid sort key"):
        q(sort_key="owner")
    with pytest.raises(BadRequestError, match="Invalid sort direction"):
        q(sort_dir="up")


def test_filters() -> None:
    query = q(name="in:a,\"b\"", status="active", tag=["x", "y"], os_distro="debian",
              size_min="10", size_max="20", protected="true", visibility="all",
              member_status="all", os_hidden="true", marker="m1")
    assert query.columns == {"name": ("a", "b"), "status": ("active",)}
    assert query.tags == ("x", "y") and query.properties == {"os_distro": "debian"}
    assert (query.size_min, query.size_max, query.protected) == (10, 20, True)
    assert query.visibility is None and query.member_status == "all"
    assert query.os_hidden is True and query.marker == "m1"


def test_time_filters() -> None:
    query = q(created_at="gte:2024-01-02T03:04:05Z", updated_at="2024-01-02T04:04:05+01:00")
    assert query.times == (TimeFilter("created_at", "gte", datetime(2024, 1, 2, 3, 4, 5)),
                           TimeFilter("updated_at", "eq", datetime(2024, 1, 2, 3, 4, 5)))
    with pytest.raises(BadRequestError, match="date"):
        q(created_at="gt:soon")


@pytest.mark.parametrize(("key", "value"), [
    ("visibility", "galactic"), ("member_status", "maybe"), ("size_min", "big"),
    ("protected", "yes"), ("os_hidden", "1"), ("changes-since", "2020-01-01")])
def test_refused_values(key: str, value: str) -> None:
    with pytest.raises(BadRequestError):
        q(**{key: value})
