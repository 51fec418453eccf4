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

def _assignment_key() -> list[sa.Column[str]]:
    """Return the key columns every version of the assignment table has."""
    return [sa.Column("type", sa.String(16), primary_key=True),
            _id("actor_id", primary_key=True, index=True),
            _id("target_id", primary_key=True, index=True),
            _id("role_id", primary_key=True, index=True)]


#: ``type``: UserProject, GroupProject, UserDomain, GroupDomain, UserSystem, GroupSystem.
#: ``inherited`` (OS-INHERIT) grants apply to the target's subtree, not to the target.
assignments = sa.Table(
    "identity_role_assignment", metadata, *_assignment_key(),
    sa.Column("inherited", sa.Boolean, primary_key=True, default=False),
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


#: Security-compliance state of a user (Keystone keeps it on the user and password rows).
user_security = sa.Table(
    "identity_user_security", metadata,
    _id("user_id", primary_key=True),
    sa.Column("failed_auth_count", sa.Integer, nullable=False, default=0),
    sa.Column("failed_auth_at", sa.Float, nullable=True),
    sa.Column("password_created_at", sa.Float, nullable=True),
    sa.Column("password_expires_at", sa.Float, nullable=True),
)

#: Earlier password hashes (``unique_last_password_count``), newest first by time.
password_history = sa.Table(
    "identity_password_history", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _id("user_id", nullable=False, index=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

#: OS-TRUST trusts. ``remaining_uses`` NULL means unlimited.
trusts = sa.Table(
    "identity_trust", metadata,
    _id(primary_key=True),
    _id("trustor_user_id", nullable=False, index=True),
    _id("trustee_user_id", nullable=False, index=True),
    _id("project_id", nullable=True),
    sa.Column("impersonation", sa.Boolean, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("remaining_uses", sa.Integer, nullable=True),
    sa.Column("redelegation_count", sa.Integer, nullable=False, default=0),
    _id("redelegated_trust_id", nullable=True),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
)

trust_roles = sa.Table(
    "identity_trust_role", metadata,
    _id("trust_id", primary_key=True),
    _id("role_id", primary_key=True),
)

#: Unified limits: a default per (service, region, resource) ...
registered_limits = sa.Table(
    "identity_registered_limit", metadata,
    _id(primary_key=True),
    _id("service_id", nullable=False),
    sa.Column("region_id", sa.String(NAME), nullable=False, default=""),
    sa.Column("resource_name", sa.String(NAME), nullable=False),
    sa.Column("default_limit", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.UniqueConstraint("service_id", "region_id", "resource_name",
                        name="uq_identity_registered_limit"),
)

#: ... and per-project or per-domain overrides (``target_id`` is the project or domain).
limits = sa.Table(
    "identity_limit", metadata,
    _id(primary_key=True),
    _id("target_id", nullable=False, index=True),
    sa.Column("target_kind", sa.String(8), nullable=False),
    _id("service_id", nullable=False),
    sa.Column("region_id", sa.String(NAME), nullable=False, default=""),
    sa.Column("resource_name", sa.String(NAME), nullable=False),
    sa.Column("resource_limit", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.UniqueConstraint("target_id", "service_id", "region_id", "resource_name",
                        name="uq_identity_limit"),
)

#: The assignment table of schema version 1 (no ``inherited``), replaced in version 2.
_v1_metadata = sa.MetaData()
_v1_assignments = sa.Table("identity_assignment", _v1_metadata, *_assignment_key())

_V1_TABLES = [domains, projects, users, groups, memberships, roles, implied_roles, regions,
              services, endpoints, app_creds, credentials]
_V2_TABLES = [assignments, user_security, password_history, trusts, trust_roles,
              registered_limits, limits]


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn, tables=_V1_TABLES)
    _v1_metadata.create_all(conn)
    revocation_events.create(conn, checkfirst=True)


def _v2_keystone_parity(conn: Connection) -> None:
    """Inherited grants, trusts, unified limits, security compliance, trust revocations."""
    metadata.create_all(conn, tables=_V2_TABLES)
    old = _v1_assignments
    rows = conn.execute(sa.select(old)).mappings().all()
    if rows:
        conn.execute(assignments.insert(), [{**r, "inherited": False} for r in rows])
    old.drop(conn)
    columns = {c["name"] for c in sa.inspect(conn).get_columns(revocation_events.name)}
    if "trust_id" not in columns:
        conn.execute(sa.text(f"ALTER TABLE {revocation_events.name} "
                             "ADD COLUMN trust_id VARCHAR(64)"))


MIGRATIONS = [_v1_create, _v2_keystone_parity]
