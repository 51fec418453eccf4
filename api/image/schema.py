"""Image tables (SQLAlchemy Core) and their versioned migrations.

Applied with ``nubis.common.db.migrate(engine, "image", MIGRATIONS)``; the same
schema runs on SQLite and PostgreSQL. Times are naive UTC ``DateTime`` with
microseconds (shown to clients to the second, as Glance does). Where the bytes
live (``location``: an object name in the service account; ``segments``: 0 for
one object, N for an SLO of N segments) is internal and never shown.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

ID = 36
NAME = 255

images = sa.Table(
    "image_image", metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=True),
    sa.Column("status", sa.String(30), nullable=False, index=True),
    sa.Column("visibility", sa.String(20), nullable=False, index=True),
    sa.Column("protected", sa.Boolean, nullable=False, default=False),
    sa.Column("os_hidden", sa.Boolean, nullable=False, default=False),
    sa.Column("owner", sa.String(NAME), nullable=True, index=True),
    sa.Column("disk_format", sa.String(20), nullable=True),
    sa.Column("container_format", sa.String(20), nullable=True),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("virtual_size", sa.BigInteger, nullable=True),
    sa.Column("checksum", sa.String(32), nullable=True),
    sa.Column("os_hash_algo", sa.String(64), nullable=True),
    sa.Column("os_hash_value", sa.String(128), nullable=True),
    sa.Column("min_disk", sa.Integer, nullable=False, default=0),
    sa.Column("min_ram", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("location", sa.String(NAME), nullable=True),
    sa.Column("segments", sa.Integer, nullable=False, default=0),
)

properties = sa.Table(
    "image_property", metadata,
    sa.Column("image_id", sa.String(ID), sa.ForeignKey("image_image.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", sa.String(NAME), primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
)

tags = sa.Table(
    "image_tag", metadata,
    sa.Column("image_id", sa.String(ID), sa.ForeignKey("image_image.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("value", sa.String(NAME), primary_key=True),
)

members = sa.Table(
    "image_member", metadata,
    sa.Column("image_id", sa.String(ID), sa.ForeignKey("image_image.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("member", sa.String(NAME), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_image_member_member", "member", "status"),
)


#: Import tasks (Glance's ``api_image_import`` tasks): kept after their image goes.
#: A ``processing`` task's ``updated_at`` is its lease, renewed by the process
#: running the import; the recovery sweep finds expired leases through
#: ``ix_image_task_lease`` (schema v3).
tasks = sa.Table(
    "image_task", metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("type", sa.String(30), nullable=False),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("owner", sa.String(NAME), nullable=True, index=True),
    sa.Column("image_id", sa.String(ID), nullable=False, index=True),
    sa.Column("user_id", sa.String(NAME), nullable=True),
    sa.Column("request_id", sa.String(NAME), nullable=True),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=True),
    sa.Index("ix_image_task_lease", "status", "updated_at"),
)

#: Uploads and stages receiving bytes (``PUT .../file``, ``PUT .../stage``), one
#: row per request while it streams (schema v4). ``id`` names the objects its
#: bytes go to (``<image>-<id>``, so no other upload of the image shares them);
#: ``updated_at`` is its lease, renewed by the serving process while ``status``
#: is ``receiving``; ``interrupted`` once a recovery took it over. No foreign key:
#: the row outlives a deleted image until its bytes are gone.
uploads = sa.Table(
    "image_upload", metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("image_id", sa.String(ID), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_image_upload_lease", "status", "updated_at"),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2_tasks(conn: Connection) -> None:
    """Add the import tasks (a fresh database has the table already)."""
    tasks.create(conn, checkfirst=True)


def _v3_task_lease(conn: Connection) -> None:
    """Index the import leases (a fresh database has the index already)."""
    for index in tasks.indexes:
        if index.name == "ix_image_task_lease":
            index.create(conn, checkfirst=True)


def _v4_uploads(conn: Connection) -> None:
    """Add the uploads in progress (a fresh database has the table already)."""
    uploads.create(conn, checkfirst=True)


MIGRATIONS = [_v1_create, _v2_tasks, _v3_task_lease, _v4_uploads]
