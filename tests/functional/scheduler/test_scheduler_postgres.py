"""The claim and placement tests again, on a real PostgreSQL server instead of SQLite.

The test functions are imported from ``test_claims`` and ``test_placement_api``;
this module overrides their database fixtures (``db_url``, ``client``) so the
same assertions run against a fresh database on a throwaway cluster
(:mod:`tests.pg`). PostgreSQL-only cases follow: concurrent migrations, and
claims from two engines racing on the same providers under row locks.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
import requests
import sqlalchemy as sa
from nubis.common.db import is_busy, make_engine, migrate, postgres_url, schema_version
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.errors import CapacityExceeded, ConcurrentUpdate
from nubis.daemons.scheduler.server import build_app
from nubis.daemons.scheduler.service import SchedulerService
from nubis.daemons.scheduler.store import (
    MIGRATIONS,
    PlacementStore,
    allocations,
    open_engine,
)
from sqlalchemy.engine import Engine

from tests.functional.scheduler.test_claims import (  # noqa: F401
    report,
    svc,
    test_anti_affinity_and_release,
    test_concurrent_claims_never_overcommit,
    test_impossible_request_explains_per_filter,
    test_multi_instance_is_all_or_nothing,
    test_state_survives_restart,
    test_unknown_filter_is_a_startup_error,
)
from tests.functional.scheduler.test_placement_api import (  # noqa: F401
    TOKEN,
    test_aggregate_az_through_api,
    test_allocations_capacity_and_candidates,
    test_provider_inventory_generation_conflicts,
    test_select_destinations_errors,
    test_traits_filter_candidates,
)
from tests.pg import PgCluster, pg_cluster  # noqa: F401
from tests.ports import free_port
from tests.procs import terminate

pytestmark = pytest.mark.functional


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines a test opens, disposed afterwards (so connections do not pile up)."""
    opened: list[Engine] = []
    yield opened
    for engine in opened:
        engine.dispose()


@pytest.fixture
def db_url(pg: PgCluster) -> str:
    return pg.new_database()


@pytest.fixture
def client(db_url: str) -> Iterator[falcon.testing.TestClient]:
    engine = open_engine(db_url)
    service = SchedulerService(SchedulerConfig(), engine)
    c = falcon.testing.TestClient(build_app(service, TOKEN))
    c.svc = service  # type: ignore[attr-defined]
    yield c
    engine.dispose()


def test_engine_is_postgresql_with_psycopg3(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert db_url.startswith("postgresql://")
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    finally:
        engine.dispose()
    # libpq's spelling too; an explicit driver or another database is left alone
    assert postgres_url("postgres://u:p%40w@h:5/d") == "postgresql+psycopg://u:p%40w@h:5/d"
    assert postgres_url("postgresql+psycopg2://h/d") == "postgresql+psycopg2://h/d"
    assert postgres_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_concurrent_migrations_apply_once(db_url: str, engines: list[Engine]) -> None:
    # Several processes starting at once against an empty database.
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        engine = make_engine(db_url)
        engines.append(engine)
        barrier.wait()
        try:
            migrate(engine, "placement", MIGRATIONS)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert schema_version(engines[0], "placement") == len(MIGRATIONS)
    with engines[0].connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(allocations)).scalar() == 0


def test_racing_claims_on_one_provider_never_overcommit(db_url: str,
                                                        engines: list[Engine]) -> None:
    # Two claim writers (two scheduler processes) race for one 8-VCPU provider,
    # each claim at the generation it last saw: the row lock + CAS lets one win.
    service = SchedulerService(SchedulerConfig(), open_engine(db_url))
    engines.append(service.db)
    report(service, "solo", vcpus=8, ram=65536, disk=1000)
    rp_id = next(iter(service.rp_ids.values()))
    store = PlacementStore(service.db)
    placed: list[str] = []
    lost: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        writer = store.claim_writer()
        try:
            for i in range(12):
                for _ in range(50):  # bounded retries on a lost race
                    with service.db.connect() as conn:
                        gen = conn.execute(sa.text(
                            "SELECT generation FROM placement_resource_providers "
                            "WHERE id = :id"), {"id": rp_id}).scalar_one()
                    item: Any = (f"{name}-{i}", "p", "u", rp_id, {"VCPU": 1})
                    try:
                        writer.claim([item], {rp_id: gen})
                    except ConcurrentUpdate:
                        continue
                    except CapacityExceeded:
                        with lock:
                            lost.append(item[0])
                        break
                    with lock:
                        placed.append(item[0])
                    break
        finally:
            writer.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(placed) == 8
    assert len(lost) == 16
    with service.db.connect() as conn:
        used = conn.execute(sa.select(sa.func.sum(allocations.c.used))
                            .where(allocations.c.rp_id == rp_id)).scalar_one()
    assert int(used) == 8


def test_values_postgresql_cannot_hold_are_400s(client: falcon.testing.TestClient) -> None:
    headers = {"OpenStack-API-Version": "placement 1.39", "X-Auth-Token": TOKEN}
    rp = client.simulate_post("/placement/resource_providers", json={"name": "ok"},
                              headers=headers).json["uuid"]
    r = client.simulate_put(f"/placement/resource_providers/{rp}/inventories", json={
        "resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}},
        headers=headers)
    assert r.status_code == 200, r.text
    consumer = "00000000-0000-4000-8000-000000000001"
    cases: list[tuple[str, str, Any]] = [
        ("POST", "/placement/resource_providers", {"name": "a\u0000b"}),
        ("PUT", f"/placement/resource_providers/{rp}", {"name": "x\u0000"}),
        ("GET", "/placement/resource_providers/%00", None),
        ("GET", "/placement/allocations/%00", None),
        ("GET", "/placement/usages?project_id=%00", None),
        ("PUT", f"/placement/allocations/{consumer}", {
            "allocations": {rp: {"resources": {"VCPU": 1}}}, "project_id": "p" * 300,
            "user_id": "u",
            "consumer_generation": None}),
        ("PUT", "/v1/hosts/h%00", {"inventories": {"VCPU": {"total": 1}}}),
        ("PUT", f"/v1/aggregates/{consumer}", {"name": "n\u0000", "hosts": [],
                                               "metadata": {}}),
        ("DELETE", "/v1/instances/%00", None),
        ("POST", "/v1/select_destinations", {"flavor": {"vcpus": 1},
                                             "project_id": "p\u0000"}),
        ("POST", "/v1/select_destinations", {"flavor": {"vcpus": 1}, "user_id": "u" * 300}),
        ("POST", "/v1/select_destinations", {"flavor": {"vcpus": 1},
                                             "instance_uuids": ["x" * 37]}),
    ]
    for method, path, body in cases:
        r = client.simulate_request(method, path, json=body, headers=headers)
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        doc = r.json
        assert (doc["errors"][0]["status"] if "errors" in doc else doc["error"]["code"]) == 400


def test_racing_provider_creates_conflict_not_fail(db_url: str, engines: list[Engine]) -> None:
    # B checks the name before A commits, then waits on the unique index: 409, not 500.
    engine = open_engine(db_url)
    engines.append(engine)
    store = PlacementStore(engine)
    outcome: list[BaseException | None] = []
    with engine.connect() as conn_a:
        tx = conn_a.begin()
        store.create_provider(conn_a, "00000000-0000-4000-8000-00000000000a", "same")

        def create_b() -> None:
            try:
                with engine.begin() as conn_b:
                    store.create_provider(conn_b, "00000000-0000-4000-8000-00000000000b",
                                          "same")
                outcome.append(None)
            except BaseException as exc:  # collected for the assertion below
                outcome.append(exc)

        thread = threading.Thread(target=create_b)
        thread.start()
        thread.join(timeout=0.5)
        tx.commit()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], ConcurrentUpdate), outcome
    with engine.connect() as conn:
        assert [p.name for p in store.list_providers(conn)] == ["same"]


def test_a_deadlock_is_a_retryable_conflict(db_url: str, engines: list[Engine]) -> None:
    # Two writers lock two providers in opposite orders; PostgreSQL aborts one of them.
    engine = open_engine(db_url)
    engines.append(engine)
    store = PlacementStore(engine)
    with engine.begin() as conn:
        ids = [store.create_provider(conn, f"00000000-0000-4000-8000-00000000000{i}",
                                     f"rp{i}").id for i in (1, 2)]
    update = sa.text("UPDATE placement_resource_providers SET name = name WHERE id = :id")
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(first: int, second: int) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(update, {"id": first})
                barrier.wait(timeout=10)
                conn.execute(update, {"id": second})
        except sa.exc.DBAPIError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=order)
               for order in ((ids[0], ids[1]), (ids[1], ids[0]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(errors) == 1
    assert is_busy(errors[0])


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Scheduler processes a test starts, terminated afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        terminate(proc)


def _start_scheduler(root: Path, url: str, procs: list[subprocess.Popen[bytes]]) -> str:
    """Start ``nubis scheduler`` with ``[scheduler] database_url = url``; return its base URL."""
    port = free_port()
    conf = root / f"nubis-{port}.toml"
    conf.write_text(f'[cluster]\nstate_dir = "{root / f"state-{port}"}"\n'
                    f'[scheduler]\nport = {port}\nservice_token = "{TOKEN}"\n'
                    f'database_url = "{url}"\nhost_subset_size = 3\n')
    log = root / f"scheduler-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nubis", "daemon", "scheduler", "--config",
                                 str(conf)], stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(f"{base}/healthcheck", timeout=1).status_code == 200:
                return base
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError(f"scheduler did not start: {log.read_text()}")


def test_two_scheduler_daemons_share_postgresql_without_overcommit(
        db_url: str, tmp_path: Path, daemons: list[subprocess.Popen[bytes]],
        engines: list[Engine]) -> None:
    # Two real scheduler processes on one database race for 3 hosts x 4 VCPU.
    headers = {"X-Auth-Token": TOKEN}
    first = _start_scheduler(tmp_path, db_url, daemons)
    for i in range(3):
        r = requests.put(f"{first}/v1/hosts/cn{i}", headers=headers, timeout=10, json={
            "inventories": {"VCPU": {"total": 4}, "MEMORY_MB": {"total": 8192},
                            "DISK_GB": {"total": 80}},
            "supported_instances": [["x86_64", "qemu", "hvm"]]})
        assert r.status_code == 200, r.text
    second = _start_scheduler(tmp_path, db_url, daemons)  # loads the hosts from the database
    codes: list[int] = []
    lock = threading.Lock()

    def place(base: str) -> None:
        with requests.Session() as http:
            for _ in range(10):
                r = http.post(f"{base}/v1/select_destinations", headers=headers, timeout=30,
                              json={"flavor": {"vcpus": 1, "memory_mb": 256, "root_gb": 1},
                                    "project_id": "p", "user_id": "u"})
                with lock:
                    codes.append(r.status_code)

    threads = [threading.Thread(target=place, args=(base,)) for base in (first, second) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(codes) == 40 and set(codes) <= {200, 409}
    engine = make_engine(db_url)
    engines.append(engine)
    with engine.connect() as conn:
        per_rp = conn.execute(sa.select(allocations.c.rp_id, sa.func.sum(allocations.c.used))
                              .where(allocations.c.resource_class == "VCPU")
                              .group_by(allocations.c.rp_id)).all()
    assert all(int(used) <= 4 for _, used in per_rp)
    assert sum(int(used) for _, used in per_rp) == codes.count(200) == 12
