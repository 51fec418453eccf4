"""Router and floating IP tables (SQLAlchemy Core), migrated as component ``network_l3``.

Kept apart from :mod:`.schema` (its own metadata and migration list) so the L3
tables evolve without touching the core network migrations. Router interfaces and
gateways are ordinary ports (``device_owner`` ``network:router_interface`` /
``network:router_gateway``, ``device_id`` = the router); a floating IP owns a port
on its external network (``network:floatingip``). ``(fixed_port_id,
fixed_ip_address)`` is unique, so one fixed address never gets two floating IPs,
even under concurrent associations.
"""

from __future__ import annotations

import sqlalchemy as sa
from nubis.api.network.schema import ID, NAME, named, owned, revisioned
from sqlalchemy.engine import Connection

metadata = sa.MetaData()

routers = sa.Table(
    "network_router", metadata,
    *owned(), *named(),
    sa.Column("admin_state_up", sa.Boolean, nullable=False, default=True),
    sa.Column("gw_network_id", sa.String(ID), nullable=True, index=True),
    sa.Column("gw_port_id", sa.String(ID), nullable=True),
    sa.Column("enable_snat", sa.Boolean, nullable=False, default=True),
    #: Extra routes, JSON ``[{"destination": cidr, "nexthop": ip}]`` (schema v2).
    sa.Column("routes", sa.Text, nullable=False, default="[]", server_default="[]"),
    *revisioned(),
)

floating_ips = sa.Table(
    "network_floating_ip", metadata,
    *owned(),
    sa.Column("description", sa.String(NAME), nullable=False, default=""),
    sa.Column("floating_network_id", sa.String(ID), nullable=False, index=True),
    sa.Column("floating_port_id", sa.String(ID), nullable=False),
    sa.Column("floating_ip_address", sa.String(64), nullable=False),
    sa.Column("fixed_port_id", sa.String(ID), nullable=True, index=True),
    sa.Column("fixed_ip_address", sa.String(64), nullable=True),
    sa.Column("router_id", sa.String(ID), nullable=True, index=True),
    *revisioned(),
    sa.UniqueConstraint("fixed_port_id", "fixed_ip_address", name="uq_fip_fixed"),
)


def _v1_create(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2_extra_routes(conn: Connection) -> None:
    """Add ``routes`` to routers made before extra routes (v1 now creates it)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(routers.name)}
    if "routes" not in columns:
        conn.execute(sa.text(f"ALTER TABLE {routers.name} "
                             "ADD COLUMN routes TEXT NOT NULL DEFAULT '[]'"))


MIGRATIONS = [_v1_create, _v2_extra_routes]
