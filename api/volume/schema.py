"""Volume tables (SQLAlchemy Core) and their versioned migrations.

Every Cinder resource (volume, snapshot, backup, volume type, attachment) is a
row of ``volume_resource`` with the columns it is filtered, paged and raced on
(project, name, status, times) and the rest as JSON text, read and written whole
with its row. Status changes are compare-and-swap updates on ``status``, so two
racing actions (a delete and an attach) cannot both win. Quota overrides and
volume type access lists have their own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

ID = 36
NAME = 255
#: Id of the ``__DEFAULT__`` volume type every deployment has.
DEFAULT_TYPE_ID = "4c4f9d36-8a8b-4c44-9b5e-6e1d0d3c1a01"
DEFAULT_TYPE = "__DEFAULT__"

resources = sa.Table(
    "volume_resource", metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("project_id", sa.String(NAME), nullable=False),
    sa.Column("name", sa.String(NAME), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=True),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Index("volume_resource_kind_project", "kind", "project_id"),
)

quotas = sa.Table(
    "volume_quota", metadata,
    sa.Column("project_id", sa.String(NAME), primary_key=True),
    sa.Column("resource", sa.String(NAME), primary_key=True),
    sa.Column("hard_limit", sa.Integer, nullable=False),
)

type_access = sa.Table(
    "volume_type_access", metadata,
    sa.Column("type_id", sa.String(ID), primary_key=True),
    sa.Column("project_id", sa.String(NAME), primary_key=True),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)
    now = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(resources.insert().values(
        id=DEFAULT_TYPE_ID, kind="type", project_id="", name=DEFAULT_TYPE, status="active",
        created_at=now, doc='{"description": "Default Volume Type", "is_public": true, '
                            '"extra_specs": {}}'))


MIGRATIONS = [_v1_create]
