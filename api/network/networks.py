"""Networks and subnets: ``/v2.0/networks`` and ``/v2.0/subnets``.

A network is visible to its project, to everyone when ``shared`` or
``router:external``, and to admins; anything else is a NetworkNotFound 404, as
Neutron answers for another project's network. Provider attributes, ``shared`` and
``router:external`` are admin-only on write.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import sqlalchemy as sa
from nubis.api.network import ipam
from nubis.api.network import schema as s
from nubis.api.network.errors import (
    NeutronError,
    bad_request,
    network_not_found,
    policy_denied,
    subnet_not_found,
)
from nubis.api.network.model import Network, Subnet
from nubis.api.network.service import (
    Handler,
    NetworkService,
    auth,
    body_of,
    flag,
    only,
    project_of,
    text,
    update_body,
)
from nubis.api.network.store import encode
from nubis.api.shared.rest import read_json

NETWORK_KEYS = ("name", "description", "admin_state_up", "shared", "router:external", "mtu",
                "port_security_enabled", "provider:network_type",
                "provider:physical_network", "provider:segmentation_id", "project_id",
                "tenant_id", "availability_zone_hints", "tags", "dns_domain", "is_default")
ADMIN_KEYS = ("shared", "router:external", "provider:network_type",
              "provider:physical_network", "provider:segmentation_id")
SUBNET_KEYS = ("name", "description", "network_id", "cidr", "ip_version", "gateway_ip",
               "enable_dhcp", "allocation_pools", "dns_nameservers", "host_routes",
               "project_id", "tenant_id", "subnetpool_id", "ipv6_ra_mode",
               "ipv6_address_mode", "service_types", "use_default_subnetpool", "prefixlen",
               "tags", "dns_publish_fixed_ip", "segment_id")
SUBNET_UPDATABLE = ("name", "description", "gateway_ip", "enable_dhcp", "allocation_pools",
                    "dns_nameservers", "host_routes", "service_types")


def visible_where(req: falcon.asgi.Request) -> list[Any]:
    """Return the SQL condition for the networks the caller may see."""
    ctx = auth(req)
    if ctx.is_admin:
        return []
    n = s.networks
    return [sa.or_(n.c.project_id == project_of(req), n.c.shared.is_(True),
                   n.c.external.is_(True))]


def find_network(svc: NetworkService, req: falcon.asgi.Request, net_id: str) -> Network:
    """Return a network the caller may see, or NetworkNotFound."""
    net = svc.store.get_network(net_id)
    ctx = auth(req)
    if net is None or not (ctx.is_admin or net.shared or net.external
                           or net.project_id == ctx.project_id):
        raise network_not_found(net_id)
    return net


def owned_network(svc: NetworkService, req: falcon.asgi.Request, net_id: str) -> Network:
    """Return a network the caller may change (its project's, or any for admins)."""
    net = find_network(svc, req, net_id)
    ctx = auth(req)
    if not ctx.is_admin and net.project_id != ctx.project_id:
        raise policy_denied("rule:update_network")
    return net


def network_values(svc: NetworkService, req: falcon.asgi.Request,
                   body: dict[str, Any], create: bool) -> dict[str, Any]:
    """Parse a network body into column values."""
    only(body, NETWORK_KEYS, "network")
    if not auth(req).is_admin:
        for key in ADMIN_KEYS:
            if key in body and (create or key != "shared"):
                raise policy_denied(f"rule:{'create' if create else 'update'}_network:{key}")
    out: dict[str, Any] = {}
    for key in ("name", "description"):
        if create or key in body:
            out[key] = text(body, key)
    for key, col, default in (("admin_state_up", "admin_state_up", True),
                              ("shared", "shared", False),
                              ("router:external", "external", False),
                              ("port_security_enabled", "port_security_enabled", True)):
        if create or key in body:
            out[col] = flag(body, key, default)
    if create:
        kind = body.get("provider:network_type", "vxlan")
        if kind not in ("vxlan", "flat"):
            raise NeutronError(400, "InvalidInput", "Invalid input for operation: network "
                               f"type {kind} is not supported (vxlan, flat).")
        out["network_type"] = kind
        out["physical_network"] = body.get("provider:physical_network") or (
            "external" if kind == "flat" else None)
        seg = body.get("provider:segmentation_id")
        if seg is not None and (not isinstance(seg, int) or not 1 <= seg < 1 << 24):
            raise bad_request("provider:segmentation_id", f"'{seg}' is not a VXLAN id")
        out["segmentation_id"] = seg if kind == "vxlan" else None
        default_mtu = svc.cfg.vxlan_mtu if kind == "vxlan" else svc.cfg.flat_mtu
        mtu = body.get("mtu", default_mtu)
        if not isinstance(mtu, int) or not 68 <= mtu <= default_mtu:
            raise bad_request("mtu", f"'{mtu}' must be between 68 and {default_mtu}")
        out["mtu"] = mtu
    elif "mtu" in body:
        raise bad_request("mtu", "the MTU of an existing network cannot change")
    return out


class Networks(Handler):
    """``/v2.0/networks`` and ``/v2.0/networks/{id}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List visible networks."""
        admin = auth(req).is_admin
        nets = self.svc.store.list_networks(visible_where(req))
        resp.media = self.svc.listing(req, "networks", [n.view(admin) for n in nets])

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a network."""
        body = body_of(await read_json(req), "network")
        project = self.svc.owner_for_create(req, body, "create_network")
        values = network_values(self.svc, req, body, create=True)
        self.svc.check_quota(project, "network", s.networks)
        net = self.svc.store.create_network({**values, "project_id": project})
        resp.status = falcon.HTTP_201
        resp.media = {"network": net.view(auth(req).is_admin)}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         net_id: str) -> None:
        """Show a network."""
        net = find_network(self.svc, req, net_id)
        resp.media = self.svc.one(req, "network", net.view(auth(req).is_admin))

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         net_id: str) -> None:
        """Update a network."""
        owned_network(self.svc, req, net_id)
        body = body_of(await read_json(req), "network")
        if "project_id" in body or "tenant_id" in body:
            raise bad_request("project_id", "Attribute 'project_id' cannot be updated")
        values = network_values(self.svc, req, body, create=False)
        net = self.svc.store.update_network(net_id, values)
        resp.media = {"network": net.view(auth(req).is_admin)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            net_id: str) -> None:
        """Delete a network (its DHCP ports and subnets go with it)."""
        owned_network(self.svc, req, net_id)
        self.svc.store.delete_network(net_id)
        resp.status = falcon.HTTP_204


def find_subnet(svc: NetworkService, req: falcon.asgi.Request, subnet_id: str) -> Subnet:
    """Return a subnet on a network the caller may see, or SubnetNotFound."""
    subnet = svc.store.get_subnet(subnet_id)
    if subnet is None:
        raise subnet_not_found(subnet_id)
    try:
        find_network(svc, req, subnet.network_id)
    except NeutronError:
        raise subnet_not_found(subnet_id) from None
    return subnet


def subnet_values(body: dict[str, Any], cidr: ipam.Net4,
                  current: Subnet | None = None) -> dict[str, Any]:
    """Parse the address attributes of a subnet body (create, or update of ``current``)."""
    out: dict[str, Any] = {}
    if current is None or "gateway_ip" in body:
        if "gateway_ip" in body and body["gateway_ip"] is None:
            gateway = None
        elif "gateway_ip" in body:
            gateway = ipam.parse_ip(body["gateway_ip"], "gateway_ip")
            if gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
                raise NeutronError(400, "InvalidInput", (
                    f"Invalid input for operation: Gateway IP {gateway} is not in the "
                    f"subnet {cidr}."))
        else:
            gateway = ipam.default_gateway(cidr)
        out["gateway_ip"] = None if gateway is None else str(gateway)
    else:
        gw = current.row["gateway_ip"]
        gateway = None if gw is None else ipam.parse_ip(gw)
    if "allocation_pools" in body and body["allocation_pools"] is not None:
        pools = ipam.parse_pools(body["allocation_pools"], cidr, gateway)
    elif current is None or "gateway_ip" in body:
        pools = ipam.default_pools(cidr, gateway) if current is None else current.pools
        for p in pools:
            if gateway is not None and gateway in p and current is not None:
                raise ipam.conflict_gateway(gateway, p.start, p.end)
    else:
        pools = current.pools
    out["allocation_pools"] = [p.as_dict() for p in pools]
    if current is None or "dns_nameservers" in body:
        out["dns_nameservers"] = ipam.parse_dns(body.get("dns_nameservers") or [])
    if current is None or "host_routes" in body:
        out["host_routes"] = ipam.parse_routes(body.get("host_routes") or [])
    for key in ("name", "description"):
        if current is None or key in body:
            out[key] = text(body, key)
    if current is None or "enable_dhcp" in body:
        out["enable_dhcp"] = flag(body, "enable_dhcp", True)
    return encode(out)


class Subnets(Handler):
    """``/v2.0/subnets`` and ``/v2.0/subnets/{id}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the subnets of visible networks."""
        nets = [n.id for n in self.svc.store.list_networks(visible_where(req))]
        subs = self.svc.store.list_subnets([s.subnets.c.network_id.in_(nets)]) if nets else []
        resp.media = self.svc.listing(req, "subnets", [x.view() for x in subs])

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create an IPv4 subnet on a network the caller owns."""
        body = body_of(await read_json(req), "subnet")
        only(body, SUBNET_KEYS, "subnet")
        for key in ("network_id", "cidr"):
            if key not in body:
                raise bad_request("subnet", f"'{key}' is required")
        if body.get("ip_version", 4) != 4:
            raise NeutronError(400, "InvalidInput", "Invalid input for operation: only "
                               "IPv4 subnets (ip_version 4) are supported.")
        net = find_network(self.svc, req, str(body["network_id"]))
        project = self.svc.owner_for_create(req, body, "create_subnet")
        if net.project_id != project and not auth(req).is_admin:
            raise policy_denied("rule:create_subnet:network_owner")
        cidr = ipam.parse_cidr(body["cidr"])
        values = subnet_values(body, cidr)
        self.svc.check_quota(project, "subnet", s.subnets)
        subnet = self.svc.store.create_subnet({
            **values, "network_id": net.id, "project_id": project, "ip_version": 4,
            "cidr": str(cidr)})
        if subnet.row["enable_dhcp"]:
            self.svc.store.create_port(
                {"network_id": net.id, "project_id": net.project_id, "name": "",
                 "device_owner": "network:dhcp", "device_id": f"dhcp-{subnet.id}",
                 "port_security_enabled": False, "status": "ACTIVE"},
                [{"subnet_id": subnet.id}], [])
        resp.status = falcon.HTTP_201
        resp.media = {"subnet": subnet.view()}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         subnet_id: str) -> None:
        """Show a subnet."""
        resp.media = self.svc.one(req, "subnet", find_subnet(self.svc, req, subnet_id).view())

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         subnet_id: str) -> None:
        """Update a subnet's name, gateway, pools, DNS servers, routes or DHCP flag."""
        subnet = find_subnet(self.svc, req, subnet_id)
        self._check_owner(req, subnet)
        body = update_body(await read_json(req), "subnet", SUBNET_UPDATABLE)
        values = subnet_values(body, ipam.parse_cidr(subnet.cidr), subnet)
        changed = {k: v for k, v in values.items() if k in body or (
            k == "allocation_pools" and "gateway_ip" in body)}
        resp.media = {"subnet": self.svc.store.update_subnet(subnet_id, changed).view()}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            subnet_id: str) -> None:
        """Delete a subnet (409 while ports other than DHCP have addresses on it)."""
        subnet = find_subnet(self.svc, req, subnet_id)
        self._check_owner(req, subnet)
        self.svc.store.delete_subnet(subnet_id)
        resp.status = falcon.HTTP_204

    def _check_owner(self, req: falcon.asgi.Request, subnet: Subnet) -> None:
        ctx = auth(req)
        if not ctx.is_admin and subnet.row["project_id"] != ctx.project_id:
            raise policy_denied("rule:update_subnet")

