"""Network data access (SQLAlchemy Core): networks, subnets, ports and their addresses.

Every write that picks something unique (an address, a MAC, a subnet range on a
network) runs as one transaction that is retried whole when it loses a race: a
concurrent INSERT of the same (subnet, address) or (network, MAC) fails on the
primary key / unique constraint, and SQLite's "database is locked" after a
concurrent commit is a lost race too. Nothing is locked per subnet: writers on
PostgreSQL run in parallel and only the colliding one retries.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from nubis.api.network import ipam
from nubis.api.network import schema as s
from nubis.api.network.errors import (
    NeutronError,
    conflict,
    network_not_found,
    port_not_found,
    subnet_not_found,
)
from nubis.api.network.model import Network, Port, Subnet
from nubis.common.db import is_busy, migrate
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")
Clock = Callable[[], datetime]

#: ``device_owner`` of a router's interface port (the one port that holds the gateway).
ROUTER_INTERFACE = "network:router_interface"
#: Whole-transaction attempts before a write that keeps losing races gives up (409).
ATTEMPTS = 40


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (how the tables store it)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    """Return a new resource id (a random UUID)."""
    return str(uuid.uuid4())


class NetworkStore:
    """Rows of the network API on the shared control-plane engine."""

    def __init__(self, engine: Engine, clock: Clock = utcnow, base_mac: str = "fa:16:3e",
                 rng: random.Random | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.base_mac = base_mac
        self.rng = rng or random.Random()
        # PERF(bench network): SQLite has one writer at a time; queueing this process's
        # writers here beats SQLite's busy handler (it sleeps up to 100 ms per retry).
        # PostgreSQL writers are not serialized: only colliding ones retry.
        self._sqlite_writer = threading.Lock() if engine.dialect.name == "sqlite" else None

    def migrate(self) -> None:
        """Create or upgrade the network tables."""
        migrate(self.engine, "network", s.MIGRATIONS)

    def write(self, step: Callable[[Connection, int], T]) -> T:
        """Run ``step(conn, attempt)`` in a transaction, again while it loses races."""
        for attempt in range(ATTEMPTS):
            try:
                if self._sqlite_writer is None:
                    with self.engine.begin() as conn:
                        return step(conn, attempt)
                with self._sqlite_writer, self.engine.begin() as conn:
                    return step(conn, attempt)
            except sa.exc.IntegrityError:
                pass
            except sa.exc.OperationalError as exc:
                if not is_busy(exc):
                    raise
            time.sleep(min(0.05, 0.001 * (1 << min(attempt, 6))) * self.rng.random())
        raise conflict("Conflict", "The request lost too many races with concurrent "
                       "writers; try again.")

    # --- networks ----------------------------------------------------------------------

    def create_network(self, values: Mapping[str, Any]) -> Network:
        """Insert a network; return it."""
        now = self.clock()
        net_id = new_id()
        with self.engine.begin() as conn:
            if values.get("segmentation_id") is None and values["network_type"] == "vxlan":
                taken = {r[0] for r in conn.execute(sa.select(s.networks.c.segmentation_id))}
                values = {**values, "segmentation_id": next(
                    i for i in range(1, 1 << 24) if i not in taken)}
            conn.execute(s.networks.insert().values(
                id=net_id, **values, created_at=now, updated_at=now, revision_number=0))
        net = self.get_network(net_id)
        assert net is not None
        return net

    def get_network(self, net_id: str) -> Network | None:
        """Return a network with its subnet ids, or None."""
        nets = self.list_networks([s.networks.c.id == net_id])
        return nets[0] if nets else None

    def list_networks(self, where: Sequence[Any] = ()) -> list[Network]:
        """Return networks matching ``where`` with their subnet ids."""
        n, sub = s.networks, s.subnets
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(n).where(*where).order_by(n.c.created_at, n.c.id)
                                ).mappings().all()
            ids = [r["id"] for r in rows]
            by_net: dict[str, list[str]] = {i: [] for i in ids}
            if ids:
                for r in conn.execute(sa.select(sub.c.network_id, sub.c.id)
                                      .where(sub.c.network_id.in_(ids))
                                      .order_by(sub.c.created_at, sub.c.id)):
                    by_net[r[0]].append(r[1])
        return [Network(dict(r), tuple(by_net[r["id"]])) for r in rows]

    def update_network(self, net_id: str, values: Mapping[str, Any]) -> Network:
        """Change a network's attributes."""
        self._touch(s.networks, net_id, values)
        net = self.get_network(net_id)
        assert net is not None
        return net

    def delete_network(self, net_id: str) -> None:
        """Delete a network, its DHCP ports and subnets; 409 while other ports use it."""
        p, a = s.ports, s.ip_allocations
        with self.engine.begin() as conn:
            busy = conn.execute(sa.select(sa.func.count()).where(
                p.c.network_id == net_id, p.c.device_owner != "network:dhcp")).scalar_one()
            if busy:
                raise conflict("NetworkInUse", f"Unable to complete operation on network "
                               f"{net_id}. There are one or more ports still in use on the "
                               "network.")
            dhcp = [r[0] for r in conn.execute(sa.select(p.c.id).where(p.c.network_id == net_id))]
            if dhcp:
                conn.execute(a.delete().where(a.c.port_id.in_(dhcp)))
                conn.execute(s.port_groups.delete().where(s.port_groups.c.port_id.in_(dhcp)))
                conn.execute(p.delete().where(p.c.id.in_(dhcp)))
            conn.execute(s.subnets.delete().where(s.subnets.c.network_id == net_id))
            if not conn.execute(s.networks.delete().where(s.networks.c.id == net_id)).rowcount:
                raise network_not_found(net_id)

    def _touch(self, table: sa.Table, row_id: str, values: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == row_id).values(
                **values, updated_at=self.clock(),
                revision_number=table.c.revision_number + 1))

    # --- subnets -----------------------------------------------------------------------

    def create_subnet(self, values: Mapping[str, Any]) -> Subnet:
        """Insert a subnet; 400 when its range overlaps another subnet of its network."""
        net_id = values["network_id"]
        net = ipam.parse_cidr(values["cidr"])
        sub_id = new_id()

        def step(conn: Connection, attempt: int) -> None:
            locked = conn.execute(sa.select(s.networks.c.id).where(
                s.networks.c.id == net_id).with_for_update()).first()
            if locked is None:
                raise network_not_found(net_id)
            others = [r[0] for r in conn.execute(sa.select(s.subnets.c.cidr).where(
                s.subnets.c.network_id == net_id))]
            if ipam.overlaps(net, others):
                raise NeutronError(400, "InvalidInput", (
                    f"Invalid input for operation: Requested subnet with cidr: {net} for "
                    f"network: {net_id} overlaps with another subnet."))
            now = self.clock()
            conn.execute(s.subnets.insert().values(
                id=sub_id, **values, created_at=now, updated_at=now, revision_number=0))

        self.write(step)
        subnet = self.get_subnet(sub_id)
        assert subnet is not None
        return subnet

    def get_subnet(self, subnet_id: str) -> Subnet | None:
        """Return a subnet, or None."""
        subs = self.list_subnets([s.subnets.c.id == subnet_id])
        return subs[0] if subs else None

    def list_subnets(self, where: Sequence[Any] = ()) -> list[Subnet]:
        """Return subnets matching ``where``."""
        t = s.subnets
        with self.engine.connect() as conn:
            return [Subnet(dict(r)) for r in conn.execute(
                sa.select(t).where(*where).order_by(t.c.created_at, t.c.id)).mappings()]

    def update_subnet(self, subnet_id: str, values: Mapping[str, Any]) -> Subnet:
        """Change a subnet's attributes."""
        self._touch(s.subnets, subnet_id, values)
        subnet = self.get_subnet(subnet_id)
        assert subnet is not None
        return subnet

    def delete_subnet(self, subnet_id: str) -> None:
        """Delete a subnet (and DHCP ports' addresses on it); 409 while ports use it."""
        a, p = s.ip_allocations, s.ports
        with self.engine.begin() as conn:
            users = conn.execute(sa.select(p.c.id, p.c.device_owner).join(
                a, a.c.port_id == p.c.id).where(a.c.subnet_id == subnet_id)).all()
            if any(owner != "network:dhcp" for _pid, owner in users):
                raise conflict("SubnetInUse", f"Unable to complete operation on subnet "
                               f"{subnet_id}: One or more ports have an IP allocation from "
                               "this subnet.")
            dhcp = [pid for pid, _owner in users]
            conn.execute(a.delete().where(a.c.subnet_id == subnet_id))
            if dhcp:
                conn.execute(a.delete().where(a.c.port_id.in_(dhcp)))
                conn.execute(p.delete().where(p.c.id.in_(dhcp)))
            if not conn.execute(s.subnets.delete().where(s.subnets.c.id == subnet_id)).rowcount:
                raise subnet_not_found(subnet_id)

    # --- ports -------------------------------------------------------------------------

    def create_port(self, values: Mapping[str, Any], fixed_ips: list[dict[str, str]] | None,
                    groups: Sequence[str]) -> Port:
        """Insert a port with a fresh MAC (unless given) and its fixed IPs.

        Args:
            values: the port's columns (``network_id``, ``project_id``, ``name``, ...).
            fixed_ips: requested ``[{subnet_id?, ip_address?}]``, or None for one address
                from the first subnet of the network with a free one.
            groups: security group ids to attach.
        """
        port_id = new_id()
        net_id = values["network_id"]

        def step(conn: Connection, attempt: int) -> None:
            subnets = [Subnet(dict(r)) for r in conn.execute(sa.select(s.subnets).where(
                s.subnets.c.network_id == net_id).order_by(s.subnets.c.created_at,
                                                           s.subnets.c.id)).mappings()]
            if "mac_address" in values:
                check_mac_free(conn, net_id, values["mac_address"])
            now = self.clock()
            row = {"mac_address": ipam.random_mac(self.base_mac, self.rng), **values}
            conn.execute(s.ports.insert().values(id=port_id, **row, created_at=now,
                                                 updated_at=now, revision_number=0))
            self._allocate(conn, port_id, net_id, subnets, fixed_ips, attempt,
                           values.get("device_owner") == ROUTER_INTERFACE)
            for sg in groups:
                conn.execute(s.port_groups.insert().values(port_id=port_id,
                                                           security_group_id=sg))

        self.write(step)
        port = self.get_port(port_id)
        assert port is not None
        return port

    def _allocate(self, conn: Connection, port_id: str, net_id: str, subnets: list[Subnet],
                  requests: list[dict[str, str]] | None, attempt: int,
                  gateway_ok: bool = False) -> None:
        """Insert the port's address rows (a router interface may take the gateway)."""
        if requests is None:
            self._allocate_any(conn, port_id, net_id, subnets, attempt)
            return
        for req in requests:
            subnet = resolve_subnet(req, net_id, subnets)
            used = self._used(conn, subnet.id)
            if "ip_address" in req:
                ip = ipam.parse_ip(req["ip_address"])
                check_fixed_ip(ip, subnet, gateway_ok)
                if int(ip) in used:
                    raise conflict("IpAddressAlreadyAllocated", f"IP address {ip} already "
                                   f"allocated in subnet {subnet.id}")
            else:
                picked = ipam.pick(subnet.pools, used, attempt, self.rng)
                if picked is None:
                    raise exhausted(net_id)
                ip = picked
            conn.execute(s.ip_allocations.insert().values(
                subnet_id=subnet.id, ip_address=str(ip), port_id=port_id, network_id=net_id))

    def _allocate_any(self, conn: Connection, port_id: str, net_id: str,
                      subnets: list[Subnet], attempt: int) -> None:
        if not subnets:
            return
        for subnet in subnets:
            ip = ipam.pick(subnet.pools, self._used(conn, subnet.id), attempt, self.rng)
            if ip is not None:
                conn.execute(s.ip_allocations.insert().values(
                    subnet_id=subnet.id, ip_address=str(ip), port_id=port_id,
                    network_id=net_id))
                return
        raise exhausted(net_id)

    def _used(self, conn: Connection, subnet_id: str) -> set[int]:
        a = s.ip_allocations
        # PERF(bench network: ports): one indexed range read of the subnet's addresses.
        return {int(ipam.parse_ip(r[0])) for r in conn.execute(
            sa.select(a.c.ip_address).where(a.c.subnet_id == subnet_id))}

    def get_port(self, port_id: str) -> Port | None:
        """Return a port with its addresses and groups, or None."""
        ports = self.list_ports([s.ports.c.id == port_id])
        return ports[0] if ports else None

    def list_ports(self, where: Sequence[Any] = ()) -> list[Port]:
        """Return ports matching ``where`` with their addresses and groups."""
        p, a, g = s.ports, s.ip_allocations, s.port_groups
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(p).where(*where).order_by(p.c.created_at, p.c.id)
                                ).mappings().all()
            ids = [r["id"] for r in rows]
            ips: dict[str, list[tuple[str, str]]] = {i: [] for i in ids}
            sgs: dict[str, list[str]] = {i: [] for i in ids}
            for chunk in _chunks(ids, 500):
                for r in conn.execute(sa.select(a.c.port_id, a.c.subnet_id, a.c.ip_address)
                                      .where(a.c.port_id.in_(chunk))):
                    ips[r[0]].append((r[1], r[2]))
                for pid, sg in conn.execute(sa.select(g.c.port_id, g.c.security_group_id)
                                            .where(g.c.port_id.in_(chunk))):
                    sgs[pid].append(sg)
        return [Port(dict(r), tuple(sorted(ips[r["id"]], key=_ip_order)),
                     tuple(sorted(sgs[r["id"]]))) for r in rows]

    def update_port(self, port_id: str, values: Mapping[str, Any],
                    groups: Sequence[str] | None = None) -> Port:
        """Change a port's attributes (and replace its security groups when given)."""
        with self.engine.begin() as conn:
            if values:
                conn.execute(s.ports.update().where(s.ports.c.id == port_id).values(
                    **values, updated_at=self.clock(),
                    revision_number=s.ports.c.revision_number + 1))
            if groups is not None:
                conn.execute(s.port_groups.delete().where(s.port_groups.c.port_id == port_id))
                for sg in groups:
                    conn.execute(s.port_groups.insert().values(port_id=port_id,
                                                               security_group_id=sg))
        port = self.get_port(port_id)
        if port is None:
            raise port_not_found(port_id)
        return port

    def replace_fixed_ips(self, port: Port, requests: list[dict[str, str]]) -> None:
        """Give ``port`` exactly the addresses ``requests`` asks for (Neutron's update).

        An ``ip_address`` the port already holds, or a bare ``subnet_id`` where it
        holds one, keeps that address; anything else is allocated as on create; the
        port's other addresses go back to the pool, in the same transaction.
        """
        net_id = port.network_id

        def step(conn: Connection, attempt: int) -> None:
            subnets = [Subnet(dict(r)) for r in conn.execute(sa.select(s.subnets).where(
                s.subnets.c.network_id == net_id).order_by(s.subnets.c.created_at,
                                                           s.subnets.c.id)).mappings()]
            a = s.ip_allocations
            held = sorted(((r[0], r[1]) for r in conn.execute(
                sa.select(a.c.subnet_id, a.c.ip_address).where(a.c.port_id == port.id))),
                key=_ip_order)
            wanted: list[dict[str, str]] = []
            for req in requests:
                subnet = resolve_subnet(req, net_id, subnets)
                if "ip_address" in req:
                    mine = (subnet.id, str(ipam.parse_ip(req["ip_address"])))
                else:
                    mine = next((h for h in held if h[0] == subnet.id), ("", ""))
                if mine in held:
                    held.remove(mine)
                else:
                    wanted.append({**req, "subnet_id": subnet.id})
            for subnet_id, ip in held:
                conn.execute(a.delete().where(a.c.port_id == port.id,
                                              a.c.subnet_id == subnet_id,
                                              a.c.ip_address == ip))
            self._allocate(conn, port.id, net_id, subnets, wanted, attempt)
            conn.execute(s.ports.update().where(s.ports.c.id == port.id).values(
                updated_at=self.clock(), revision_number=s.ports.c.revision_number + 1))

        self.write(step)

    def delete_port(self, port_id: str) -> None:
        """Delete a port and release its addresses."""
        with self.engine.begin() as conn:
            conn.execute(s.ip_allocations.delete().where(s.ip_allocations.c.port_id == port_id))
            conn.execute(s.port_groups.delete().where(s.port_groups.c.port_id == port_id))
            if not conn.execute(s.ports.delete().where(s.ports.c.id == port_id)).rowcount:
                raise port_not_found(port_id)

    def count(self, table: sa.Table, project_id: str) -> int:
        """Return how many rows of ``table`` a project owns."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(
                table.c.project_id == project_id)).scalar_one())

    # --- quotas ------------------------------------------------------------------------

    def quotas(self, project_id: str) -> dict[str, int]:
        """Return a project's quota overrides."""
        t = s.quotas
        with self.engine.connect() as conn:
            return {r.resource: r.hard_limit for r in conn.execute(
                sa.select(t).where(t.c.project_id == project_id))}

    def set_quotas(self, project_id: str, limits: Mapping[str, int]) -> None:
        """Create or replace quota overrides of a project."""
        t = s.quotas
        with self.engine.begin() as conn:
            for resource, limit in limits.items():
                conn.execute(t.delete().where(t.c.project_id == project_id,
                                              t.c.resource == resource))
                conn.execute(t.insert().values(project_id=project_id, resource=resource,
                                               hard_limit=limit))

    def delete_quotas(self, project_id: str) -> None:
        """Revert a project to the default quotas."""
        with self.engine.begin() as conn:
            conn.execute(s.quotas.delete().where(s.quotas.c.project_id == project_id))


def resolve_subnet(req: Mapping[str, str], net_id: str, subnets: list[Subnet]) -> Subnet:
    """Return the subnet a fixed-IP request names (by id, or by the address it contains)."""
    if "subnet_id" in req:
        for subnet in subnets:
            if subnet.id == req["subnet_id"]:
                return subnet
        raise NeutronError(400, "InvalidInput", (
            f"Invalid input for operation: Failed to create port on network {net_id}, "
            f"because fixed_ips included invalid subnet {req['subnet_id']}."))
    ip = ipam.parse_ip(req.get("ip_address"))
    for subnet in subnets:
        if ip in ipam.parse_cidr(subnet.cidr):
            return subnet
    raise NeutronError(400, "InvalidIpForNetwork", (
        f"IP address {ip} is not a valid IP for any of the subnets on the specified network."))


def check_mac_free(conn: Connection, net_id: str, mac: str) -> None:
    """Refuse a requested MAC address another port of the network has."""
    p = s.ports
    if conn.execute(sa.select(p.c.id).where(p.c.network_id == net_id,
                                             p.c.mac_address == mac)).first() is not None:
        raise conflict("MacAddressInUse", f"Unable to complete operation for network "
                       f"{net_id}. The mac address {mac} is in use.")


def check_fixed_ip(ip: ipam.IPv4, subnet: Subnet, gateway_ok: bool = False) -> None:
    """Refuse an address outside the subnet, its network/broadcast address or its gateway."""
    net = ipam.parse_cidr(subnet.cidr)
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise NeutronError(400, "InvalidIpForSubnet",
                           f"IP address {ip} is not a valid IP for the specified subnet.")
    if subnet.row["gateway_ip"] == str(ip) and not gateway_ok:
        raise conflict("IpAddressAlreadyAllocated",
                       f"IP address {ip} already allocated in subnet {subnet.id}")


def exhausted(net_id: str) -> NeutronError:
    """Return Neutron's IpAddressGenerationFailure (409)."""
    return conflict("IpAddressGenerationFailure",
                    f"No more IP addresses available on network {net_id}.")


def encode(values: Mapping[str, Any]) -> dict[str, Any]:
    """Serialize the JSON columns of a subnet or port row."""
    out = dict(values)
    for key in ("allocation_pools", "dns_nameservers", "host_routes", "allowed_address_pairs"):
        if key in out and not isinstance(out[key], str):
            out[key] = json.dumps(out[key])
    return out


def _ip_order(item: tuple[str, str]) -> tuple[int, ...]:
    return tuple(int(x) for x in item[1].split("."))


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
