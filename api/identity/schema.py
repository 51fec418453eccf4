"""Identity tables (SQLAlchemy Core) and their versioned migrations.

Applied with ``nubis.common.db.migrate(engine, "identity", MIGRATIONS)``; the
same schema runs on SQLite and PostgreSQL. Free-form attributes Keystone keeps
("extra": email, tags, ...) live in a JSON text column.
"""

from __future__ import annotations

import sqlalchemy as sa
from nubis.api.shared.revoke import revocation_events
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

ID = 64
NAME = 255


def _id(name: str = "id", **kw: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(ID), **kw)  # type: ignore[arg-type]


domains = sa.Table(
    "identity_domain", metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
)

projects = sa.Table(
    "identity_project", metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False),
    _id("domain_id", nullable=False, index=True),
    _id("parent_id", nullable=True, index=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.UniqueConstraint("domain_id", "name", name="uq_identity_project_name"),
)

users = sa.Table(
    "identity_user", metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False),
    _id("domain_id", nullable=False, index=True),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("password_hash", sa.Text, nullable=True),
    _id("default_project_id", nullable=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("domain_id", "name", name="uq_identity_user_name"),
)

groups = sa.Table(
    "identity_group", metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False),
    _id("domain_id", nullable=False, index=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.UniqueConstraint("domain_id", "name", name="uq_identity_group_name"),
)

memberships = sa.Table(
    "identity_membership", metadata,
    _id("user_id", primary_key=True),
    _id("group_id", primary_key=True, index=True),
)

#: ``domain_id`` is "" for global roles (so the unique constraint works everywhere).
roles = sa.Table(
    "identity_role", metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False),
    _id("domain_id", nullable=False, default=""),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.UniqueConstraint("domain_id", "name", name="uq_identity_role_name"),
)

implied_roles = sa.Table(
    "identity_implied_role", metadata,
    _id("prior_role_id", primary_key=True),
    _id("implied_role_id", primary_key=True),
)

#: ``type``: UserProject, GroupProject, UserDomain, GroupDomain, UserSystem, GroupSystem.
assignments = sa.Table(
    "identity_assignment", metadata,
    sa.Column("type", sa.String(16), primary_key=True),
    _id("actor_id", primary_key=True, index=True),
    _id("target_id", primary_key=True, index=True),
    _id("role_id", primary_key=True, index=True),
)

regions = sa.Table(
    "identity_region", metadata,
    sa.Column("id", sa.String(NAME), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("parent_region_id", sa.String(NAME), nullable=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
)

services = sa.Table(
    "identity_service", metadata,
    _id(primary_key=True),
    sa.Column("type", sa.String(NAME), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
)

endpoints = sa.Table(
    "identity_endpoint", metadata,
    _id(primary_key=True),
    _id("service_id", nullable=False, index=True),
    sa.Column("interface", sa.String(8), nullable=False),
    sa.Column("region_id", sa.String(NAME), nullable=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
)

app_creds = sa.Table(
    "identity_app_cred", metadata,
    _id(primary_key=True),
    sa.Column("name", sa.String(NAME), nullable=False),
    _id("user_id", nullable=False, index=True),
    _id("project_id", nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("unrestricted", sa.Boolean, nullable=False, default=False),
    sa.Column("role_ids", sa.Text, nullable=False, default="[]"),
    sa.UniqueConstraint("user_id", "name", name="uq_identity_app_cred_name"),
)

credentials = sa.Table(
    "identity_credential", metadata,
    _id(primary_key=True),
    _id("user_id", nullable=False, index=True),
    _id("project_id", nullable=True),
    sa.Column("type", sa.String(NAME), nullable=False),
    sa.Column("blob", sa.Text, nullable=False),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)
    revocation_events.create(conn, checkfirst=True)


MIGRATIONS = [_v1_create]
