"""The image tables' schema upgrades: v2 (import tasks), v3 (the lease index), v4 (uploads)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from nubis.api.image import schema
from nubis.common.db import make_engine, migrate, schema_version


def _indexes(engine: sa.Engine) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(engine).get_indexes("image_task")}


def test_v2_adds_the_task_table_to_a_v1_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'image.db'}")
    migrate(engine, "image", schema.MIGRATIONS[:1])
    with engine.begin() as conn:  # the tables schema v1 made: no task table
        schema.tasks.drop(conn)
        schema.uploads.drop(conn)
    assert "image_task" not in sa.inspect(engine).get_table_names()
    assert migrate(engine, "image", schema.MIGRATIONS) == 4
    assert schema_version(engine, "image") == 4
    assert "image_task" in sa.inspect(engine).get_table_names()
    assert "ix_image_task_lease" in _indexes(engine)


def test_v3_indexes_the_leases_of_a_v2_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'image.db'}")
    migrate(engine, "image", schema.MIGRATIONS[:2])
    with engine.begin() as conn:  # the task table schema v2 made: no lease index
        conn.execute(sa.text("DROP INDEX ix_image_task_lease"))
    assert "ix_image_task_lease" not in _indexes(engine)
    assert migrate(engine, "image", schema.MIGRATIONS) == 4
    assert schema_version(engine, "image") == 4
    assert "ix_image_task_lease" in _indexes(engine)
    assert migrate(engine, "image", schema.MIGRATIONS) == 4  # idempotent


def test_v4_adds_the_upload_table_to_a_v3_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'image.db'}")
    migrate(engine, "image", schema.MIGRATIONS[:3])
    with engine.begin() as conn:  # the tables schema v3 made: no upload table
        schema.uploads.drop(conn)
    assert "image_upload" not in sa.inspect(engine).get_table_names()
    assert migrate(engine, "image", schema.MIGRATIONS) == 4
    assert schema_version(engine, "image") == 4
    indexes = {str(i["name"]) for i in sa.inspect(engine).get_indexes("image_upload")}
    assert "ix_image_upload_lease" in indexes
    assert migrate(engine, "image", schema.MIGRATIONS) == 4  # idempotent
