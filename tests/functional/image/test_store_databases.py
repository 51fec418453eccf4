"""The image store on both control-plane databases: SQLite and a real PostgreSQL.

Keyset paging over nullable sort keys, compare-and-swap status changes, members
and tags, and the import leases' conditional updates must behave the same on both
(NULL ordering differs between them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from nubis.api.image.filters import parse_list_query
from nubis.api.image.model import ImageUpdate
from nubis.api.image.store import ImageStore
from nubis.api.image.tasks import TaskStore
from nubis.api.shared.auth import AuthContext
from nubis.common.db import make_engine

from tests.pg import PgCluster, pg_cluster  # noqa: F401

pytestmark = pytest.mark.functional


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'images.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg")
        url = cluster.new_database()
    engine = make_engine(url)
    ticks = iter(datetime(2024, 1, 1) + timedelta(seconds=i) for i in range(10_000))
    st = ImageStore(engine, clock=lambda: next(ticks))
    st.migrate()
    st.migrate()  # idempotent
    yield st
    engine.dispose()


def query(**params: str | list[str]):  # type: ignore[no-untyped-def]
    return parse_list_query({k: v if isinstance(v, list) else [v] for k, v in params.items()},
                            default_limit=25, max_limit=1000)


def test_paging_over_nullable_keys_is_complete_and_ordered(store: ImageStore) -> None:
    names = ["b", None, "a", "c", None, "a"]
    sizes = [5, None, 1, None, 3, 1]
    ids = [store.create({"name": n, "owner": "p1", "size": s}, {}, []).id
           for n, s in zip(names, sizes, strict=True)]
    for sort in ("name:asc", "name:desc", "size:asc,name:desc", "size:desc",
                 "created_at:asc"):
        whole = [i.id for i in store.list_images(query(sort=sort, limit="100"), "p1", False)]
        assert sorted(whole) == sorted(ids)
        paged: list[str] = []
        marker = None
        for _ in range(10):
            page = store.list_images(query(sort=sort, limit="2"), "p1", False, marker)
            paged += [i.id for i in page]
            if len(page) < 2:
                break
            marker = page[-1]
        assert paged == whole, sort


def test_visibility_membership_and_filters(store: ImageStore) -> None:
    mine = store.create({"name": "mine", "owner": "p1", "visibility": "private"},
                        {"os_distro": "debian"}, ["x"])
    assert mine.properties == {"os_distro": "debian"}
    shared = store.create({"name": "shared", "owner": "p2"}, {}, [])
    public = store.create({"name": "pub", "owner": "p2", "visibility": "public"}, {}, ["x"])
    community = store.create({"name": "com", "owner": "p2", "visibility": "community"}, {},
                             [])

    def names(project: str | None, admin: bool = False, **params: str) -> set[str]:
        return {i.name or "" for i in store.list_images(query(**params), project, admin)}

    assert names("p1") == {"mine", "pub"}
    assert store.add_member(shared.id, "p1", quota=5) is not None
    assert store.add_member(shared.id, "p1", quota=5) is None
    assert names("p1", member_status="pending") == {"mine", "pub", "shared"}
    store.set_member_status(store.members(shared.id, "p1")[0], "accepted")
    assert names("p1") == {"mine", "pub", "shared"}
    assert names("p1", visibility="community") == {"com"}
    assert names("p3") == {"pub"}
    assert names(None, admin=True) == {"mine", "shared", "pub"}
    assert names("p1", tag="x") == {"mine", "pub"}
    assert names("p1", os_distro="debian") == {"mine"}
    assert names("p1", name="in:mine,pub") == {"mine", "pub"}
    with pytest.raises(ValueError):
        store.add_member(shared.id, "p9", quota=1)
    assert community.visibility == "community" and public.tags == ("x",)


def test_status_changes_are_compare_and_swap(store: ImageStore) -> None:
    img = store.create({"name": "x", "owner": "p1"}, {"k": None}, ["t", "t"])
    assert img.tags == ("t",) and img.properties == {"k": None}
    assert store.transition(img.id, ["queued"], "saving")
    assert not store.transition(img.id, ["queued"], "saving")  # the second upload loses
    assert store.transition(img.id, ["saving"], "active", size=3, checksum="c" * 32)
    got = store.get(img.id)
    assert got is not None and (got.status, got.size) == ("active", 3)
    updated = store.update(got, ImageUpdate({**got.columns(), "name": "y"}, {"a": "b"}, ()))
    assert (updated.name, dict(updated.properties), updated.tags) == ("y", {"a": "b"}, ())
    store.add_tag(updated, "n")
    assert store.remove_tag(updated, "n") and not store.remove_tag(updated, "n")
    assert store.delete(img.id) and not store.delete(img.id)
    assert store.get(img.id) is None
    assert not store.transition(img.id, ["saving"], "active")  # deleted meanwhile


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leases.db'}"
    cluster: PgCluster = request.getfixturevalue("pg")
    return cluster.new_database()


def test_one_process_takes_an_abandoned_import_over(engine_url: str) -> None:
    """Processes racing (threads with their own connections) on the lease updates: one wins."""
    now = datetime(2024, 1, 1)
    clock = lambda: now  # noqa: E731
    engines = [make_engine(engine_url) for _ in range(4)]
    try:
        st = ImageStore(engines[0], clock)
        st.migrate()
        ctx = cast(AuthContext, SimpleNamespace(user_id="u", project_id="p1", is_admin=True))
        images = [st.create({"name": f"i{i}", "owner": "p1"}, {}, []).id for i in range(3)]
        tasks = [TaskStore(engines[0], clock).begin(ctx, i, "queued", "r", {}) for i in images]
        stores = [TaskStore(e, clock) for e in engines]
        stale = stores[0].expired(now + timedelta(seconds=1), 10)
        assert sorted(t.id for t in stale) == sorted(str(t) for t in tasks)
        barrier = threading.Barrier(len(stores))

        def race(store: TaskStore) -> list[bool]:
            barrier.wait()
            return [store.interrupt(t, now + timedelta(seconds=1), "interrupted")
                    for t in stale]

        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(race, stores))
        assert [sum(r[i] for r in results) for i in range(3)] == [1, 1, 1]
        # a renewed lease (the owner is alive) is not taken over, and ends well
        live = st.create({"name": "live", "owner": "p1"}, {}, []).id
        task_id = stores[1].begin(ctx, live, "queued", "r", {})
        assert task_id is not None
        snapshot = stores[2].expired(now + timedelta(seconds=1), 10)
        now += timedelta(seconds=5)
        assert stores[1].renew(task_id)
        assert not any(stores[3].interrupt(t, now - timedelta(seconds=1), "interrupted")
                       for t in snapshot)
        assert stores[1].succeed(task_id, live, size=1)
        got = st.get(live)
        assert got is not None and got.status == "active"
    finally:
        for e in engines:
            e.dispose()
