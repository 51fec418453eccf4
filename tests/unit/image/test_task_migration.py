"""The image tables' schema v2 (import tasks) upgrades a v1 database in place."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from nubis.api.image import schema
from nubis.common.db import make_engine, migrate, schema_version


def test_v2_adds_the_task_table_to_a_v1_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'image.db'}")
    migrate(engine, "image", schema.MIGRATIONS[:1])
    with engine.begin() as conn:  # the tables schema v1 made: no task table
        schema.tasks.drop(conn)
    assert "image_task" not in sa.inspect(engine).get_table_names()
    assert migrate(engine, "image", schema.MIGRATIONS) == 2
    assert schema_version(engine, "image") == 2
    assert "image_task" in sa.inspect(engine).get_table_names()
