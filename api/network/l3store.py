"""Routers and floating IPs (SQLAlchemy Core) on the network store's engine.

A router's gateway and interfaces are ports made through :class:`NetworkStore`
(so the IPAM's guarantees hold for them too); the router and floating IP rows only
point at them. Multi-step changes undo what they made when a later step fails, so
a refused request leaves nothing half-created.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from nubis.api.network import l3schema as t
from nubis.api.network import schema as s
from nubis.api.network.errors import NeutronError, conflict, not_found
from nubis.api.network.model import Port, Record, Subnet, common_view
from nubis.api.network.store import NetworkStore, new_id
from nubis.common.db import migrate

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
GATEWAY_OWNER = "network:router_gateway"
INTERFACE_OWNER = "network:router_interface"
FLOATING_OWNER = "network:floatingip"
#: Ports the router and floating IP calls own (refused by ``DELETE /ports``).
L3_OWNERS = (GATEWAY_OWNER, INTERFACE_OWNER, FLOATING_OWNER)


def router_not_found(router_id: str) -> NeutronError:
    """Return Neutron's RouterNotFound."""
    return not_found("RouterNotFound", f"Router {router_id} could not be found")


def floatingip_not_found(fip_id: str) -> NeutronError:
    """Return Neutron's FloatingIPNotFound."""
    return not_found("FloatingIPNotFound", f"Floating IP {fip_id} could not be found")


@dataclass(frozen=True)
class Router(Record):
    """A router row with its gateway port (if any)."""

    gateway: Port | None = None

    def gateway_info(self) -> dict[str, Any] | None:
        """Return Neutron's ``external_gateway_info`` (None without a gateway)."""
        if self.row["gw_network_id"] is None:
            return None
        fixed = list(self.gateway.view()["fixed_ips"]) if self.gateway else []
        return {"network_id": self.row["gw_network_id"],
                "enable_snat": bool(self.row["enable_snat"]), "external_fixed_ips": fixed}

    def routes(self) -> list[dict[str, str]]:
        """Return the router's extra routes (``[{destination, nexthop}]``)."""
        routes: list[dict[str, str]] = json.loads(self.row.get("routes") or "[]")
        return routes

    def view(self) -> dict[str, Any]:
        """Render Neutron's router."""
        r = self.row
        return {**common_view(r), "name": r["name"], "admin_state_up": r["admin_state_up"],
                "status": "ACTIVE", "external_gateway_info": self.gateway_info(),
                "routes": self.routes(), "availability_zone_hints": [],
                "availability_zones": ["nova"],
                "flavor_id": None}


@dataclass(frozen=True)
class FloatingIP(Record):
    """A floating IP row."""

    @property
    def network_id(self) -> str:
        """Return the external network's id."""
        return str(self.row["floating_network_id"])

    def view(self) -> dict[str, Any]:
        """Render Neutron's floating IP (``ACTIVE`` while associated)."""
        r = self.row
        return {**common_view(r), "floating_network_id": r["floating_network_id"],
                "floating_ip_address": r["floating_ip_address"],
                "fixed_ip_address": r["fixed_ip_address"], "port_id": r["fixed_port_id"],
                "router_id": r["router_id"],
                "status": "ACTIVE" if r["fixed_port_id"] else "DOWN",
                "qos_policy_id": None, "port_details": None}


class L3Store:
    """Router and floating IP rows, and the ports they own."""

    def __init__(self, store: NetworkStore) -> None:
        self.store = store
        self.engine = store.engine

    def migrate(self) -> None:
        """Create or upgrade the router and floating IP tables."""
        migrate(self.engine, "network_l3", t.MIGRATIONS)

    # --- routers -----------------------------------------------------------------------

    def get_router(self, router_id: str) -> Router | None:
        """Return a router with its gateway port, or None."""
        found = self.list_routers([t.routers.c.id == router_id])
        return found[0] if found else None

    def list_routers(self, where: Sequence[Any] = ()) -> list[Router]:
        """Return routers matching ``where``."""
        r = t.routers
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(r).where(*where).order_by(r.c.created_at, r.c.id)
                                ).mappings().all()
        gw_ids = [row["gw_port_id"] for row in rows if row["gw_port_id"]]
        ports = {p.id: p for p in self.store.list_ports([s.ports.c.id.in_(gw_ids)])} \
            if gw_ids else {}
        return [Router(dict(row), ports.get(row["gw_port_id"] or "")) for row in rows]

    def create_router(self, values: Mapping[str, Any],
                      gateway: tuple[str, list[dict[str, str]] | None] | None) -> Router:
        """Insert a router (and its gateway port on ``gateway``'s network)."""
        router_id = new_id()
        now = self.store.clock()
        with self.engine.begin() as conn:
            conn.execute(t.routers.insert().values(
                id=router_id, **values, gw_network_id=None, gw_port_id=None,
                created_at=now, updated_at=now, revision_number=0))
        if gateway is not None:
            try:
                self.set_gateway(router_id, gateway[0], gateway[1],
                                 bool(values.get("enable_snat", True)))
            except Exception:
                with self.engine.begin() as conn:
                    conn.execute(t.routers.delete().where(t.routers.c.id == router_id))
                raise
        router = self.get_router(router_id)
        assert router is not None
        return router

    def update_router(self, router_id: str, values: Mapping[str, Any]) -> Router:
        """Change a router's own attributes."""
        r = t.routers
        with self.engine.begin() as conn:
            conn.execute(r.update().where(r.c.id == router_id).values(
                **values, updated_at=self.store.clock(), revision_number=r.c.revision_number + 1))
        router = self.get_router(router_id)
        if router is None:
            raise router_not_found(router_id)
        return router

    def set_gateway(self, router_id: str, network_id: str | None,
                    fixed_ips: list[dict[str, str]] | None, enable_snat: bool) -> None:
        """Point a router's gateway at ``network_id`` (None clears it)."""
        router = self.get_router(router_id)
        if router is None:
            raise router_not_found(router_id)
        old_net = router.row["gw_network_id"]
        if old_net == network_id and fixed_ips is None:
            self.update_router(router_id, {"enable_snat": enable_snat})
            return
        if old_net is not None and self._fips_of_router(router_id):
            raise conflict("RouterExternalGatewayInUseByFloatingIp", (
                f"Gateway cannot be updated for router {router_id}, since a gateway to "
                f"external network {old_net} is required by one or more floating IPs."))
        port_id = None
        if network_id is not None:
            port_id = self.store.create_port(
                {"network_id": network_id, "project_id": "", "name": "",
                 "device_owner": GATEWAY_OWNER, "device_id": router_id,
                 "port_security_enabled": False, "status": "ACTIVE"}, fixed_ips, []).id
        self.update_router(router_id, {"gw_network_id": network_id, "gw_port_id": port_id,
                                       "enable_snat": enable_snat})
        if router.gateway is not None:
            self.store.delete_port(router.gateway.id)

    def interfaces(self, router_id: str) -> list[Port]:
        """Return a router's interface ports."""
        p = s.ports
        return self.store.list_ports([p.c.device_id == router_id,
                                      p.c.device_owner == INTERFACE_OWNER])

    def add_interface_subnet(self, router: Router, subnet: Subnet) -> Port:
        """Give a router a port holding ``subnet``'s gateway address."""
        gateway = subnet.row["gateway_ip"]
        if not gateway:
            raise NeutronError(400, "BadRequest", (
                f"Bad router request: Subnet {subnet.id} does not have a gateway IP."))
        self._check_new_subnet(router, [subnet.id])
        return self.store.create_port(
            {"network_id": subnet.network_id, "project_id": router.project_id, "name": "",
             "device_owner": INTERFACE_OWNER, "device_id": router.id,
             "port_security_enabled": False, "status": "ACTIVE"},
            [{"subnet_id": subnet.id, "ip_address": gateway}], [])

    def add_interface_port(self, router: Router, port: Port) -> Port:
        """Make an unused port with addresses one of a router's interfaces."""
        if port.row["device_id"] or port.device_owner:
            raise conflict("PortInUse", f"Unable to complete operation on port {port.id} for "
                           f"network {port.network_id}. Port already has an attached device "
                           f"{port.row['device_id'] or port.device_owner}.")
        if not port.fixed_ips:
            raise NeutronError(400, "BadRequest", (
                "Bad router request: Router port must have at least one fixed IP."))
        self._check_new_subnet(router, [sub for sub, _ip in port.fixed_ips])
        return self.store.update_port(port.id, {"device_owner": INTERFACE_OWNER,
                                                "device_id": router.id, "status": "ACTIVE"},
                                      [])

    def _check_new_subnet(self, router: Router, subnet_ids: Sequence[str]) -> None:
        have = {sub for p in self.interfaces(router.id) for sub, _ip in p.fixed_ips}
        for sub in subnet_ids:
            if sub in have:
                raise NeutronError(400, "BadRequest", (
                    f"Bad router request: Router already has a port on subnet {sub}."))
        if router.gateway is not None and any(
                sub in subnet_ids for sub, _ip in router.gateway.fixed_ips):
            raise NeutronError(400, "BadRequest", (
                "Bad router request: Router's gateway subnet cannot be an interface."))

    def connected(self, router: Router) -> tuple[list[Net], set[str]]:
        """Return the CIDRs of the subnets a router has ports on, and its own addresses."""
        ports = [*self.interfaces(router.id), *([router.gateway] if router.gateway else [])]
        wanted = {sub for port in ports for sub, _ip in port.fixed_ips}
        cidrs = [ipaddress.ip_network(sub.cidr) for sub in self.store.list_subnets()
                 if sub.id in wanted]
        return cidrs, {ip for port in ports for _sub, ip in port.fixed_ips}

    def _routes_through(self, router: Router, subnets: set[str]) -> bool:
        cidrs = [ipaddress.ip_network(sub.cidr) for sub in self.store.list_subnets()
                 if sub.id in subnets]
        return any(ipaddress.ip_address(route["nexthop"]) in net
                   for route in router.routes() for net in cidrs)

    def remove_interface(self, router: Router, subnet_id: str | None,
                         port_id: str | None) -> Port:
        """Delete the interface port on ``subnet_id`` (or ``port_id``); return it."""
        for port in self.interfaces(router.id):
            subnets = {sub for sub, _ip in port.fixed_ips}
            if (port_id is None or port.id == port_id) and (
                    subnet_id is None or subnet_id in subnets):
                if self._fips_behind(router.id, subnets):
                    raise conflict("RouterInterfaceInUseByFloatingIP", (
                        f"Router interface for subnet {sorted(subnets)[0]} on router "
                        f"{router.id} cannot be deleted, as it is required by one or "
                        "more floating IPs."))
                if self._routes_through(router, subnets):
                    raise conflict("RouterInterfaceInUseByRoute", (
                        f"Router interface for subnet {sorted(subnets)[0]} on router "
                        f"{router.id} cannot be deleted, as it is required by one or "
                        "more routes."))
                self.store.delete_port(port.id)
                return port
        if port_id is not None:
            raise not_found("RouterInterfaceNotFound", (
                f"Router {router.id} does not have an interface with id {port_id}"))
        raise not_found("RouterInterfaceNotFoundForSubnet", (
            f"Router {router.id} has no interface on subnet {subnet_id}"))

    def delete_router(self, router: Router) -> None:
        """Delete a router and its gateway port (409 while it has interfaces)."""
        if self.interfaces(router.id) or self._fips_of_router(router.id):
            raise conflict("RouterInUse", f"Router {router.id} still has ports")
        with self.engine.begin() as conn:
            conn.execute(t.routers.delete().where(t.routers.c.id == router.id))
        if router.gateway is not None:
            self.store.delete_port(router.gateway.id)

    def _fips_of_router(self, router_id: str) -> list[FloatingIP]:
        return self.list_floating_ips([t.floating_ips.c.router_id == router_id])

    def _fips_behind(self, router_id: str, subnets: set[str]) -> bool:
        for fip in self._fips_of_router(router_id):
            port = self.store.get_port(str(fip.row["fixed_port_id"]))
            if port is not None and any(sub in subnets for sub, _ip in port.fixed_ips):
                return True
        return False

    # --- floating IPs ------------------------------------------------------------------

    def get_floating_ip(self, fip_id: str) -> FloatingIP | None:
        """Return a floating IP, or None."""
        found = self.list_floating_ips([t.floating_ips.c.id == fip_id])
        return found[0] if found else None

    def list_floating_ips(self, where: Sequence[Any] = ()) -> list[FloatingIP]:
        """Return floating IPs matching ``where``."""
        f = t.floating_ips
        with self.engine.connect() as conn:
            return [FloatingIP(dict(r)) for r in conn.execute(
                sa.select(f).where(*where).order_by(f.c.created_at, f.c.id)).mappings()]

    def create_floating_ip(self, values: Mapping[str, Any],
                           fixed_ips: list[dict[str, str]] | None) -> FloatingIP:
        """Allocate an address (a port) on the external network and record the floating IP."""
        fip_id = new_id()
        net_id = values["floating_network_id"]
        port = self.store.create_port(
            {"network_id": net_id, "project_id": "", "name": "",
             "device_owner": FLOATING_OWNER, "device_id": fip_id,
             "port_security_enabled": False, "status": "N/A"}, fixed_ips, [])
        if not port.fixed_ips:
            self.store.delete_port(port.id)
            raise conflict("IpAddressGenerationFailure",
                           f"No more IP addresses available on network {net_id}.")
        now = self.store.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(t.floating_ips.insert().values(
                    id=fip_id, **values, floating_port_id=port.id,
                    floating_ip_address=port.fixed_ips[0][1], fixed_port_id=None,
                    fixed_ip_address=None, router_id=None, created_at=now, updated_at=now,
                    revision_number=0))
        except Exception:
            self.store.delete_port(port.id)
            raise
        fip = self.get_floating_ip(fip_id)
        assert fip is not None
        return fip

    def associate(self, fip: FloatingIP, port: Port | None, fixed_ip: str | None,
                  router_id: str | None) -> FloatingIP:
        """Point a floating IP at (port, fixed address) through ``router_id``, or clear it."""
        f = t.floating_ips
        try:
            with self.engine.begin() as conn:
                conn.execute(f.update().where(f.c.id == fip.id).values(
                    fixed_port_id=port.id if port else None, fixed_ip_address=fixed_ip,
                    router_id=router_id, updated_at=self.store.clock(),
                    revision_number=f.c.revision_number + 1))
        except sa.exc.IntegrityError:
            assert port is not None
            raise already_associated(fip, port.id, str(fixed_ip)) from None
        out = self.get_floating_ip(fip.id)
        if out is None:
            raise floatingip_not_found(fip.id)
        return out

    def describe(self, fip: FloatingIP, description: str) -> FloatingIP:
        """Change a floating IP's description."""
        f = t.floating_ips
        with self.engine.begin() as conn:
            conn.execute(f.update().where(f.c.id == fip.id).values(
                description=description, updated_at=self.store.clock(),
                revision_number=f.c.revision_number + 1))
        out = self.get_floating_ip(fip.id)
        if out is None:
            raise floatingip_not_found(fip.id)
        return out

    def associated_with(self, port_id: str, fixed_ip: str) -> FloatingIP | None:
        """Return the floating IP already on (port, fixed address), if any."""
        f = t.floating_ips
        found = self.list_floating_ips([f.c.fixed_port_id == port_id,
                                        f.c.fixed_ip_address == fixed_ip])
        return found[0] if found else None

    def router_for(self, network_id: str, subnet_id: str) -> str | None:
        """Return a router with a gateway on ``network_id`` and an interface on ``subnet_id``."""
        for router in self.list_routers([t.routers.c.gw_network_id == network_id]):
            for port in self.interfaces(router.id):
                if any(sub == subnet_id for sub, _ip in port.fixed_ips):
                    return router.id
        return None

    def delete_floating_ip(self, fip: FloatingIP) -> None:
        """Delete a floating IP and release its address."""
        with self.engine.begin() as conn:
            if not conn.execute(t.floating_ips.delete().where(
                    t.floating_ips.c.id == fip.id)).rowcount:
                raise floatingip_not_found(fip.id)
        self.store.delete_port(str(fip.row["floating_port_id"]))

    def port_deleted(self, port_id: str) -> None:
        """Disassociate the floating IPs of a port that is going away (as Neutron does)."""
        f = t.floating_ips
        with self.engine.begin() as conn:
            conn.execute(f.update().where(f.c.fixed_port_id == port_id).values(
                fixed_port_id=None, fixed_ip_address=None, router_id=None,
                updated_at=self.store.clock(), revision_number=f.c.revision_number + 1))


def already_associated(fip: FloatingIP, port_id: str, fixed_ip: str) -> NeutronError:
    """Return Neutron's FloatingIPPortAlreadyAssociated (409)."""
    return conflict("FloatingIPPortAlreadyAssociated", (
        f"Cannot associate floating IP {fip.row['floating_ip_address']} ({fip.id}) with "
        f"port {port_id} using fixed IP {fixed_ip}, as that fixed IP already has a floating "
        f"IP on external network {fip.network_id}."))


def agent_routers(l3: L3Store) -> list[dict[str, Any]]:
    """Return what an agent needs to build every router (``/agent/v1/state``)."""
    store = l3.store
    subnets = {x.id: x for x in store.list_subnets()}
    mtus = {n.id: int(n.row["mtu"]) for n in store.list_networks()}
    fips_by_router: dict[str, list[dict[str, str]]] = {}
    for fip in l3.list_floating_ips([t.floating_ips.c.router_id.is_not(None)]):
        fips_by_router.setdefault(str(fip.row["router_id"]), []).append({
            "floating_ip": str(fip.row["floating_ip_address"]),
            "fixed_ip": str(fip.row["fixed_ip_address"])})

    def wire(port: Port) -> dict[str, Any] | None:
        if not port.fixed_ips or port.fixed_ips[0][0] not in subnets:
            return None
        sub_id, ip = port.fixed_ips[0]
        sub = subnets[sub_id]
        return {"port_id": port.id, "network_id": port.network_id, "subnet_id": sub_id,
                "mac": port.mac_address, "ip": ip, "cidr": sub.cidr,
                "gateway_ip": sub.row["gateway_ip"], "mtu": mtus.get(port.network_id, 1500)}

    out = []
    for router in l3.list_routers():
        interfaces = [w for w in (wire(p) for p in l3.interfaces(router.id)) if w]
        out.append({"id": router.id, "admin_state_up": bool(router.row["admin_state_up"]),
                    "enable_snat": bool(router.row["enable_snat"]), "routes": router.routes(),
                    "gateway": wire(router.gateway) if router.gateway else None,
                    "interfaces": interfaces,
                    "floating_ips": fips_by_router.get(router.id, [])})
    return out
