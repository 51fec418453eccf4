"""Swift's ratelimit on nubis: a cloud with limits, two proxy workers sharing the schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from swiftclient import client as sc

from tests.functional.proxy.cloud import Cloud, start_cloud
from tests.functional.proxy.test_core import conn_for, status_of

pytestmark = pytest.mark.functional

#: One container write per 100 s per account, and per container from one object on:
#: any second write waits far past ``max_sleep_time_seconds`` and is answered 498.
LIMITS = """
[proxy.ratelimit]
account_ratelimit = 0.01
max_sleep_time_seconds = 1.0
container_ratelimits = { "1" = 0.01, "1000" = 0.005 }
account_blacklist = ["AUTH_test2"]
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(Path(tmp_path_factory.mktemp("nubis-ratelimit")), proxy_workers=2,
                    extra_config=LIMITS, section_lines={"proxy": "recheck_info = 0.2"})
    try:
        yield c
    finally:
        c.down()


def test_info_announces_the_limits(limited: Cloud) -> None:
    info = conn_for(limited).get_capabilities()["ratelimit"]
    assert info == {"account_ratelimit": 0.01, "max_sleep_time_seconds": 1.0,
                    "container_ratelimits": [[1, 0.01], [1000, 0.005]],
                    "container_listing_ratelimits": []}


def test_container_and_object_writes_are_limited(limited: Cloud) -> None:
    conn = conn_for(limited)
    conn.put_container("rl-box")
    # The account's next container write is far in the future: 498, on any worker.
    for i in range(4):
        assert status_of(conn_for(limited).put_container, f"rl-other-{i}") == 498
    assert status_of(conn.delete_container, "rl-box") == 498
    conn.head_account()  # reads are not limited
    # An empty container is not limited; from one object on, writes are.
    conn.put_object("rl-box", "first", b"1")
    statuses = _writes_until_limited(conn)
    assert statuses[-1] == 498 and 201 in statuses
    assert "first" in {o["name"] for o in conn.get_container("rl-box")[1]}


def _writes_until_limited(conn: sc.Connection, attempts: int = 100) -> list[int]:
    """PUT objects until one is refused (the workers' info caches catch up first)."""
    statuses: list[int] = []
    for i in range(attempts):
        try:
            conn.put_object("rl-box", f"o{i}", b"x")
            statuses.append(201)
        except sc.ClientException as exc:
            statuses.append(int(exc.http_status))
            break
        time.sleep(0.05)
    return statuses


def test_blacklisted_account_is_refused(limited: Cloud) -> None:
    conn = conn_for(limited, "test2:tester2")
    assert status_of(conn.head_account) == 497
