"""Compute tables (SQLAlchemy Core) and their versioned migrations.

Applied with ``nubis.common.db.migrate(engine, "compute", MIGRATIONS)``. Instances
are soft-deleted (``deleted`` = 1, as Nova keeps them until archived) so a
deleted server's id stays unique; flavors, keypairs and quotas are real rows.
Free-form parts of an instance (flavor snapshot, metadata, fault, tags) are JSON
text: they are read and written whole with their instance.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

ID = 36
NAME = 255

flavors = sa.Table(
    "compute_flavor", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flavorid", sa.String(NAME), nullable=False, unique=True),
    sa.Column("name", sa.String(NAME), nullable=False, unique=True),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("root_gb", sa.Integer, nullable=False),
    sa.Column("ephemeral_gb", sa.Integer, nullable=False, default=0),
    sa.Column("swap", sa.Integer, nullable=False, default=0),
    sa.Column("rxtx_factor", sa.Float, nullable=False, default=1.0),
    sa.Column("is_public", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

flavor_extra_specs = sa.Table(
    "compute_flavor_extra_spec", metadata,
    sa.Column("flavor_id", sa.Integer, sa.ForeignKey("compute_flavor.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("key", sa.String(NAME), primary_key=True),
    sa.Column("value", sa.String(NAME), nullable=False),
)

flavor_access = sa.Table(
    "compute_flavor_access", metadata,
    sa.Column("flavor_id", sa.Integer, sa.ForeignKey("compute_flavor.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("project_id", sa.String(NAME), primary_key=True),
)

keypairs = sa.Table(
    "compute_keypair", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(NAME), nullable=False),
    sa.Column("name", sa.String(NAME), nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(NAME), nullable=False),
    sa.Column("type", sa.String(10), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("user_id", "name", name="uq_compute_keypair_user_name"),
)

instances = sa.Table(
    "compute_instance", metadata,
    sa.Column("uuid", sa.String(ID), primary_key=True),
    sa.Column("project_id", sa.String(NAME), nullable=False, index=True),
    sa.Column("user_id", sa.String(NAME), nullable=False),
    sa.Column("name", sa.String(NAME), nullable=False),
    sa.Column("hostname", sa.String(NAME), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("image_ref", sa.String(NAME), nullable=False, default=""),
    sa.Column("kernel_id", sa.String(NAME), nullable=False, default=""),
    sa.Column("ramdisk_id", sa.String(NAME), nullable=False, default=""),
    sa.Column("flavor", sa.Text, nullable=False),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("root_gb", sa.Integer, nullable=False),
    sa.Column("vm_state", sa.String(20), nullable=False),
    sa.Column("task_state", sa.String(40), nullable=True),
    sa.Column("power_state", sa.Integer, nullable=False, default=0),
    sa.Column("host", sa.String(NAME), nullable=True),
    sa.Column("node", sa.String(NAME), nullable=True),
    sa.Column("key_name", sa.String(NAME), nullable=True),
    sa.Column("key_data", sa.Text, nullable=True),
    sa.Column("user_data", sa.Text, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False, default="{}"),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("fault", sa.Text, nullable=True),
    sa.Column("config_drive", sa.Boolean, nullable=False, default=False),
    sa.Column("availability_zone", sa.String(NAME), nullable=True),
    sa.Column("reservation_id", sa.String(NAME), nullable=False),
    sa.Column("launch_index", sa.Integer, nullable=False, default=0),
    sa.Column("locked", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("launched_at", sa.DateTime, nullable=True),
    sa.Column("terminated_at", sa.DateTime, nullable=True),
    sa.Column("deleted", sa.Integer, nullable=False, default=0, index=True),
)

actions = sa.Table(
    "compute_instance_action", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_uuid", sa.String(ID), nullable=False, index=True),
    sa.Column("request_id", sa.String(NAME), nullable=False),
    sa.Column("action", sa.String(NAME), nullable=False),
    sa.Column("project_id", sa.String(NAME), nullable=False),
    sa.Column("user_id", sa.String(NAME), nullable=False),
    sa.Column("start_time", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("message", sa.String(NAME), nullable=True),
)

action_events = sa.Table(
    "compute_instance_action_event", metadata,
    sa.Column("action_id", sa.Integer,
              sa.ForeignKey("compute_instance_action.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("event", sa.String(NAME), nullable=False),
    sa.Column("start_time", sa.DateTime, nullable=False),
    sa.Column("finish_time", sa.DateTime, nullable=True),
    sa.Column("result", sa.String(NAME), nullable=True),
    sa.Column("details", sa.Text, nullable=True),
)

server_groups = sa.Table(
    "compute_server_group", metadata,
    sa.Column("uuid", sa.String(ID), primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False),
    sa.Column("project_id", sa.String(NAME), nullable=False, index=True),
    sa.Column("user_id", sa.String(NAME), nullable=False),
    sa.Column("policy", sa.String(40), nullable=False),
    sa.Column("rules", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

server_group_members = sa.Table(
    "compute_server_group_member", metadata,
    sa.Column("group_uuid", sa.String(ID),
              sa.ForeignKey("compute_server_group.uuid", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("instance_uuid", sa.String(ID), primary_key=True, index=True),
)

quotas = sa.Table(
    "compute_quota", metadata,
    sa.Column("project_id", sa.String(NAME), primary_key=True),
    sa.Column("resource", sa.String(NAME), primary_key=True),
    sa.Column("hard_limit", sa.Integer, nullable=False),
)

aggregates = sa.Table(
    "compute_aggregate", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(ID), nullable=False, unique=True),
    sa.Column("name", sa.String(NAME), nullable=False, unique=True),
    sa.Column("metadata", sa.Text, nullable=False, default="{}"),
    sa.Column("hosts", sa.Text, nullable=False, default="[]"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=True),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2_aggregates(conn: Connection) -> None:
    aggregates.create(conn, checkfirst=True)


MIGRATIONS = [_v1_create, _v2_aggregates]
