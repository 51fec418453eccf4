"""The router tables' schema v2 (extra routes) upgrades a v1 database in place."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from nubis.api.network import l3schema
from nubis.common.db import make_engine, migrate, schema_version


def test_v2_adds_routes_to_a_v1_router_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'net.db'}")
    v1 = sa.MetaData()
    old = l3schema.routers.to_metadata(v1)
    old._columns.remove(old.c.routes)  # the router table as schema v1 made it
    with engine.begin() as conn:
        v1.create_all(conn)
        conn.execute(old.insert().values(
            id="r1", project_id="p", name="r", admin_state_up=True, enable_snat=True,
            description="", created_at=sa.func.now(), updated_at=sa.func.now(),
            revision_number=1))
    migrate(engine, "network_l3", l3schema.MIGRATIONS[:1])
    assert migrate(engine, "network_l3", l3schema.MIGRATIONS) == 2
    assert schema_version(engine, "network_l3") == 2
    with engine.connect() as conn:
        row = conn.execute(sa.select(l3schema.routers)).mappings().one()
    assert row["routes"] == "[]"
