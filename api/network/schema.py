"""Network tables (SQLAlchemy Core) and their versioned migrations.

Applied with ``nubis.common.db.migrate(engine, "network", MIGRATIONS)``. The IPAM's
guarantee lives in the schema: ``network_ip_allocation`` has the primary key
(subnet, address), so two concurrent port creations can never commit the same
address — the loser's INSERT fails and it retries with another one. MAC addresses
are unique per network the same way. Free-form parts (allocation pools, DNS
servers, host routes, allowed address pairs) are JSON text read and written whole
with their row.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

ID = 36
NAME = 255


def owned() -> list[sa.Column[Any]]:
    """Return the ``id`` and (indexed) ``project_id`` columns of a project's resource."""
    return [sa.Column("id", sa.String(ID), primary_key=True),
            sa.Column("project_id", sa.String(NAME), nullable=False, index=True)]


def named() -> list[sa.Column[Any]]:
    """Return the ``name`` and ``description`` columns."""
    return [sa.Column("name", sa.String(NAME), nullable=False, default=""),
            sa.Column("description", sa.String(NAME), nullable=False, default="")]


def revisioned() -> list[sa.Column[Any]]:
    """Return the ``revision_number``, ``created_at`` and ``updated_at`` columns."""
    return [sa.Column("revision_number", sa.Integer, nullable=False, default=0),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False)]

networks = sa.Table(
    "network_network", metadata,
    *owned(), *named(),
    sa.Column("admin_state_up", sa.Boolean, nullable=False, default=True),
    sa.Column("shared", sa.Boolean, nullable=False, default=False),
    sa.Column("external", sa.Boolean, nullable=False, default=False),
    sa.Column("port_security_enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("network_type", sa.String(16), nullable=False),
    sa.Column("physical_network", sa.String(NAME), nullable=True),
    sa.Column("segmentation_id", sa.Integer, nullable=True, unique=True),
    sa.Column("mtu", sa.Integer, nullable=False),
    *revisioned(),
)

subnets = sa.Table(
    "network_subnet", metadata,
    *owned(),
    sa.Column("network_id", sa.String(ID), sa.ForeignKey("network_network.id"),
              nullable=False, index=True),
    sa.Column("name", sa.String(NAME), nullable=False, default=""),
    sa.Column("description", sa.String(NAME), nullable=False, default=""),
    sa.Column("ip_version", sa.Integer, nullable=False),
    sa.Column("cidr", sa.String(64), nullable=False),
    sa.Column("gateway_ip", sa.String(64), nullable=True),
    sa.Column("enable_dhcp", sa.Boolean, nullable=False, default=True),
    sa.Column("allocation_pools", sa.Text, nullable=False, default="[]"),
    sa.Column("dns_nameservers", sa.Text, nullable=False, default="[]"),
    sa.Column("host_routes", sa.Text, nullable=False, default="[]"),
    *revisioned(),
)

ports = sa.Table(
    "network_port", metadata,
    *owned(),
    sa.Column("network_id", sa.String(ID), sa.ForeignKey("network_network.id"),
              nullable=False, index=True),
    sa.Column("name", sa.String(NAME), nullable=False, default=""),
    sa.Column("description", sa.String(NAME), nullable=False, default=""),
    sa.Column("mac_address", sa.String(32), nullable=False),
    sa.Column("admin_state_up", sa.Boolean, nullable=False, default=True),
    sa.Column("status", sa.String(16), nullable=False, default="DOWN"),
    sa.Column("device_id", sa.String(NAME), nullable=False, default="", index=True),
    sa.Column("device_owner", sa.String(NAME), nullable=False, default=""),
    sa.Column("host_id", sa.String(NAME), nullable=False, default=""),
    sa.Column("port_security_enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("allowed_address_pairs", sa.Text, nullable=False, default="[]"),
    *revisioned(),
    sa.UniqueConstraint("network_id", "mac_address", name="uq_network_port_mac"),
)

ip_allocations = sa.Table(
    "network_ip_allocation", metadata,
    sa.Column("subnet_id", sa.String(ID), sa.ForeignKey("network_subnet.id"),
              primary_key=True),
    sa.Column("ip_address", sa.String(64), primary_key=True),
    sa.Column("port_id", sa.String(ID), sa.ForeignKey("network_port.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("network_id", sa.String(ID), nullable=False),
)

security_groups = sa.Table(
    "network_security_group", metadata,
    *owned(), *named(),
    sa.Column("stateful", sa.Boolean, nullable=False, default=True),
    *revisioned(),
)

#: One row per project: its ``default`` group (the primary key makes creating it race-free).
default_groups = sa.Table(
    "network_default_security_group", metadata,
    sa.Column("project_id", sa.String(NAME), primary_key=True),
    sa.Column("security_group_id", sa.String(ID),
              sa.ForeignKey("network_security_group.id", ondelete="CASCADE"), nullable=False),
)

sg_rules = sa.Table(
    "network_security_group_rule", metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("project_id", sa.String(NAME), nullable=False),
    sa.Column("security_group_id", sa.String(ID),
              sa.ForeignKey("network_security_group.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("ethertype", sa.String(8), nullable=False),
    sa.Column("protocol", sa.String(40), nullable=True),
    sa.Column("port_range_min", sa.Integer, nullable=True),
    sa.Column("port_range_max", sa.Integer, nullable=True),
    sa.Column("remote_ip_prefix", sa.String(64), nullable=True),
    sa.Column("remote_group_id", sa.String(ID),
              sa.ForeignKey("network_security_group.id", ondelete="CASCADE"), nullable=True),
    sa.Column("description", sa.String(NAME), nullable=False, default=""),
    *revisioned(),
)

port_groups = sa.Table(
    "network_port_security_group", metadata,
    sa.Column("port_id", sa.String(ID), sa.ForeignKey("network_port.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("security_group_id", sa.String(ID),
              sa.ForeignKey("network_security_group.id"), primary_key=True, index=True),
)

quotas = sa.Table(
    "network_quota", metadata,
    sa.Column("project_id", sa.String(NAME), primary_key=True),
    sa.Column("resource", sa.String(NAME), primary_key=True),
    sa.Column("hard_limit", sa.Integer, nullable=False),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [_v1_create]
