"""Routers and floating IPs: ``/v2.0/routers`` and ``/v2.0/floatingips``.

``PUT /v2.0/routers/{id}/add_router_interface`` (``remove_...``) take a
``subnet_id`` or a ``port_id``. A router belongs to a project; its ``external_gateway_info`` names a
``router:external`` network (``enable_snat`` and ``external_fixed_ips`` are
admin-only, as in Neutron's default policy). A floating IP is an address on an
external network; associating it with a port needs a router with a gateway on that
network and an interface on the port's subnet (else
``ExternalGatewayForFloatingIPNotFound``). The agent builds both from
``/agent/v1/state``.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import falcon
import falcon.asgi
from nubis.api.network import l3schema as t
from nubis.api.network.errors import NeutronError, bad_request, policy_denied
from nubis.api.network.ipam import parse_route_list
from nubis.api.network.l3store import (
    L3_OWNERS,
    FloatingIP,
    Router,
    already_associated,
    floatingip_not_found,
    router_not_found,
)
from nubis.api.network.model import Network, Port
from nubis.api.network.networks import find_network, find_subnet
from nubis.api.network.ports import find_port, parse_fixed_ips
from nubis.api.network.service import (
    Handler,
    NetworkService,
    auth,
    body_of,
    flag,
    only,
    owned_where,
    text,
    update_body,
)
from nubis.api.shared.rest import read_json

ROUTER_KEYS = ("name", "description", "admin_state_up", "external_gateway_info",
               "project_id", "tenant_id", "distributed", "ha", "availability_zone_hints",
               "flavor_id", "tags", "routes")
ROUTER_UPDATABLE = ("name", "description", "admin_state_up", "external_gateway_info",
                    "routes")
#: Most extra routes one router holds (Neutron's ``max_routes``).
MAX_ROUTES = 30
FIP_KEYS = ("floating_network_id", "floating_ip_address", "subnet_id", "port_id",
            "fixed_ip_address", "project_id", "tenant_id", "description", "tags",
            "dns_domain", "dns_name", "qos_policy_id")
FIP_UPDATABLE = ("port_id", "fixed_ip_address", "description")


def bad_router(message: str) -> NeutronError:
    """Return Neutron's ``BadRequest`` of the router resource."""
    return NeutronError(400, "BadRequest", f"Bad router request: {message}.")


def bad_floatingip(message: str) -> NeutronError:
    """Return Neutron's ``BadRequest`` of the floating IP resource."""
    return NeutronError(400, "BadRequest", f"Bad floatingip request: {message}.")


def external_network(svc: NetworkService, req: falcon.asgi.Request, net_id: Any,
                     bad: Any) -> Network:
    """Return a visible ``router:external`` network, else NetworkNotFound / ``bad``."""
    if not isinstance(net_id, str) or not net_id:
        raise bad(f"Invalid network id '{net_id}'")
    net = find_network(svc, req, net_id)
    if not net.external:
        raise bad(f"Network {net_id} is not a valid external network")
    return net


def find_router(svc: NetworkService, req: falcon.asgi.Request, router_id: str) -> Router:
    """Return a router of the caller's project (any for admins), or RouterNotFound."""
    router = svc.l3.get_router(router_id)
    ctx = auth(req)
    if router is None or not (ctx.is_admin or router.project_id == ctx.project_id):
        raise router_not_found(router_id)
    return router


def parse_gateway(svc: NetworkService, req: falcon.asgi.Request, raw: Any
                  ) -> tuple[str | None, list[dict[str, str]] | None, bool | None]:
    """Return (network id or None, external fixed IPs, enable_snat) of a gateway body."""
    if raw is None or raw == {}:
        return None, None, None
    if not isinstance(raw, dict) or set(raw) - {"network_id", "enable_snat",
                                                "external_fixed_ips"}:
        raise bad_request("external_gateway_info", f"'{raw}' is not a valid gateway")
    admin = auth(req).is_admin
    for key in ("enable_snat", "external_fixed_ips"):
        if key in raw and not admin:
            raise policy_denied(f"rule:create_router:external_gateway_info:{key}")
    if "network_id" not in raw:
        raise bad_request("external_gateway_info", "'network_id' is required")
    net = external_network(svc, req, raw["network_id"], bad_router)
    fixed = parse_fixed_ips(raw["external_fixed_ips"]) if raw.get(
        "external_fixed_ips") else None
    snat = flag(raw, "enable_snat", True) if "enable_snat" in raw else None
    return net.id, fixed, snat


def router_values(body: dict[str, Any], create: bool) -> dict[str, Any]:
    """Parse a router body's own attributes."""
    for key in ("distributed", "ha"):
        if body.get(key):
            raise bad_request(key, "distributed and HA routers are not supported")
    if create and "routes" in body:
        raise NeutronError(400, "HTTPBadRequest", "Attribute 'routes' not allowed in POST")
    out: dict[str, Any] = {}
    for key in ("name", "description"):
        if create or key in body:
            out[key] = text(body, key)
    if create or "admin_state_up" in body:
        out["admin_state_up"] = flag(body, "admin_state_up", True)
    return out


def parse_routes(raw: Any) -> list[dict[str, str]]:
    """Validate extra routes (``[{destination: cidr, nexthop: ip}]``, IPv4, no duplicates)."""
    if raw is None:
        return []
    out: list[dict[str, str]] = []
    for route in parse_route_list(raw, "routes"):
        if ipaddress.ip_network(route["destination"]).version != 4 or \
                ipaddress.ip_address(route["nexthop"]).version != 4:
            raise bad_request("routes", "only IPv4 routes are supported")
        if route in out:
            raise bad_request("routes", f"Duplicate hostroute '{route}'")
        out.append(route)
    return out


def check_routes(svc: NetworkService, router: Router, routes: list[dict[str, str]]) -> None:
    """Refuse too many routes, or a next hop the router cannot reach (as Neutron)."""
    if len(routes) > MAX_ROUTES:
        raise NeutronError(400, "RoutesExhausted", (
            f"Unable to complete operation for {router.id}. The number of routes exceeds "
            f"the maximum {MAX_ROUTES}."))
    cidrs, own = svc.l3.connected(router)
    for route in routes:
        hop = ipaddress.ip_address(route["nexthop"])
        reason = ("the nexthop is used by router" if route["nexthop"] in own else
                  None if any(hop in net for net in cidrs) else
                  "the nexthop is not connected with router")
        if reason is not None:
            raise NeutronError(400, "InvalidRoutes",
                               f"Invalid format for routes: {routes}, {reason}")


class Routers(Handler):
    """``/v2.0/routers``, ``/v2.0/routers/{id}`` and its interface actions."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's routers (every router for admins)."""
        where = owned_where(req, t.routers.c.project_id)
        items = [r.view() for r in self.svc.l3.list_routers(where)]
        resp.media = self.svc.listing(req, "routers", items)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a router (with its gateway when ``external_gateway_info`` is given)."""
        body = body_of(await read_json(req), "router")
        only(body, ROUTER_KEYS, "router")
        project = self.svc.owner_for_create(req, body, "create_router")
        values = router_values(body, create=True)
        net_id, fixed, snat = parse_gateway(self.svc, req, body.get("external_gateway_info"))
        values["enable_snat"] = True if snat is None else snat
        self.svc.check_quota(project, "router", t.routers)
        router = self.svc.l3.create_router({**values, "project_id": project},
                                           (net_id, fixed) if net_id else None)
        resp.status = falcon.HTTP_201
        resp.media = {"router": router.view()}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         router_id: str) -> None:
        """Show a router."""
        resp.media = self.svc.one(req, "router", find_router(self.svc, req, router_id).view())

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         router_id: str) -> None:
        """Update a router's attributes or its gateway."""
        router = find_router(self.svc, req, router_id)
        body = update_body(await read_json(req), "router", ROUTER_UPDATABLE)
        values = router_values(body, create=False)
        if "routes" in body:
            routes = parse_routes(body["routes"])
            check_routes(self.svc, router, routes)
            values["routes"] = json.dumps(routes)
        if "external_gateway_info" in body:
            net_id, fixed, snat = parse_gateway(self.svc, req, body["external_gateway_info"])
            keep = bool(router.row["enable_snat"]) if net_id == router.row[
                "gw_network_id"] else True
            self.svc.l3.set_gateway(router.id, net_id, fixed, keep if snat is None else snat)
        router = self.svc.l3.update_router(router.id, values)
        resp.media = {"router": router.view()}

    async def on_put_add_extraroutes(self, req: falcon.asgi.Request,
                                     resp: falcon.asgi.Response, router_id: str) -> None:
        """``add_extraroutes`` (extraroute-atomic): add routes the router lacks."""
        await self._change_routes(req, resp, router_id, add=True)

    async def on_put_remove_extraroutes(self, req: falcon.asgi.Request,
                                        resp: falcon.asgi.Response, router_id: str) -> None:
        """``remove_extraroutes`` (extraroute-atomic): remove the routes given."""
        await self._change_routes(req, resp, router_id, add=False)

    async def _change_routes(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             router_id: str, add: bool) -> None:
        router = find_router(self.svc, req, router_id)
        body = body_of(await read_json(req), "router")
        only(body, ("routes",), "router")
        given = parse_routes(body.get("routes"))
        current = router.routes()
        routes = current + [r for r in given if r not in current] if add else [
            r for r in current if r not in given]
        check_routes(self.svc, router, routes)
        router = self.svc.l3.update_router(router.id, {"routes": json.dumps(routes)})
        resp.media = {"router": router.view()}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            router_id: str) -> None:
        """Delete a router (RouterInUse while it has interfaces)."""
        self.svc.l3.delete_router(find_router(self.svc, req, router_id))
        resp.status = falcon.HTTP_204

    async def on_put_add(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         router_id: str) -> None:
        """``add_router_interface``: by ``subnet_id`` (the gateway address) or ``port_id``."""
        router = find_router(self.svc, req, router_id)
        kind, ident = _interface_body(await read_json(req))
        if kind == "subnet_id":
            subnet = find_subnet(self.svc, req, ident)
            if not auth(req).is_admin and subnet.row["project_id"] != router.project_id:
                net = find_network(self.svc, req, subnet.network_id)
                if not net.shared:
                    raise router_not_found(router_id)
            port = self.svc.l3.add_interface_subnet(router, subnet)
        else:
            port = self.svc.l3.add_interface_port(router, find_port(self.svc, req, ident))
        resp.media = interface_doc(router, port)

    async def on_put_remove(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            router_id: str) -> None:
        """``remove_router_interface``: the interface on ``subnet_id`` or port ``port_id``."""
        router = find_router(self.svc, req, router_id)
        doc = await read_json(req)
        if not isinstance(doc, dict):
            raise bad_router("Either subnet_id or port_id must be specified")
        subnet_id, port_id = doc.get("subnet_id"), doc.get("port_id")
        if not subnet_id and not port_id:
            raise bad_router("Either subnet_id or port_id must be specified")
        for value in (subnet_id, port_id):
            if value is not None and not isinstance(value, str):
                raise bad_router(f"Invalid id '{value}'")
        port = self.svc.l3.remove_interface(router, subnet_id, port_id)
        resp.media = interface_doc(router, port)


def _interface_body(doc: Any) -> tuple[str, str]:
    if not isinstance(doc, dict):
        raise bad_router("Either subnet_id or port_id must be specified")
    keys = [k for k in ("subnet_id", "port_id") if doc.get(k)]
    if len(keys) != 1:
        raise bad_router("Either subnet_id or port_id must be specified"
                         if not keys else "Cannot specify both subnet-id and port-id")
    value = doc[keys[0]]
    if not isinstance(value, str):
        raise bad_router(f"Invalid id '{value}'")
    return keys[0], value


def interface_doc(router: Router, port: Port) -> dict[str, Any]:
    """Render the answer of the interface actions."""
    subnets = [sub for sub, _ip in port.fixed_ips]
    return {"id": router.id, "tenant_id": router.project_id, "project_id": router.project_id,
            "port_id": port.id, "network_id": port.network_id,
            "subnet_id": subnets[0] if subnets else None, "subnet_ids": subnets}


class FloatingIPs(Handler):
    """``/v2.0/floatingips`` and ``/v2.0/floatingips/{id}``."""

    def _find(self, req: falcon.asgi.Request, fip_id: str) -> FloatingIP:
        fip = self.svc.l3.get_floating_ip(fip_id)
        ctx = auth(req)
        if fip is None or not (ctx.is_admin or fip.project_id == ctx.project_id):
            raise floatingip_not_found(fip_id)
        return fip

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's floating IPs (every one for admins)."""
        f = t.floating_ips
        where = owned_where(req, f.c.project_id)
        items = [x.view() for x in self.svc.l3.list_floating_ips(where)]
        resp.media = self.svc.listing(req, "floatingips", items)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Allocate a floating IP (associated at once when ``port_id`` is given)."""
        body = body_of(await read_json(req), "floatingip")
        only(body, FIP_KEYS, "floatingip")
        if "floating_network_id" not in body:
            raise bad_request("floatingip", "'floating_network_id' is required")
        net = external_network(self.svc, req, body["floating_network_id"], bad_floatingip)
        project = self.svc.owner_for_create(req, body, "create_floatingip")
        wanted = self._address(req, body, net)
        target = None
        if body.get("port_id") is not None:
            target = self._target(req, net.id, None, body)
        self.svc.check_quota(project, "floatingip", t.floating_ips)
        fip = self.svc.l3.create_floating_ip(
            {"project_id": project, "description": text(body, "description"),
             "floating_network_id": net.id}, wanted)
        if target is not None:
            try:
                fip = self.svc.l3.associate(fip, *target)
            except NeutronError:
                self.svc.l3.delete_floating_ip(fip)
                raise
        resp.status = falcon.HTTP_201
        resp.media = {"floatingip": fip.view()}

    def _address(self, req: falcon.asgi.Request, body: dict[str, Any],
                 net: Network) -> list[dict[str, str]] | None:
        """Return the fixed-IP request of the floating address (admin-only choices)."""
        out: dict[str, str] = {}
        for key, attr in (("floating_ip_address", "ip_address"), ("subnet_id", "subnet_id")):
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise bad_request(key, f"'{value}' is not a valid value")
            if key == "floating_ip_address" and not auth(req).is_admin:
                raise policy_denied("rule:create_floatingip:floating_ip_address")
            out[attr] = value
        if "subnet_id" in out and out["subnet_id"] not in (
                self.svc.store.get_network(net.id) or net).subnets:
            raise bad_floatingip(f"Subnet {out['subnet_id']} is not on network {net.id}")
        return [out] if out else None

    def _target(self, req: falcon.asgi.Request, net_id: str, fip: FloatingIP | None,
                body: dict[str, Any]) -> tuple[Port, str, str]:
        """Return (port, fixed address, router) a floating IP may be associated with."""
        port_id = body["port_id"]
        if not isinstance(port_id, str):
            raise bad_request("port_id", f"'{port_id}' is not a valid port id")
        port = find_port(self.svc, req, port_id)
        if port.device_owner in L3_OWNERS or port.device_owner == "network:dhcp":
            raise bad_floatingip(f"Port {port.id} is owned by {port.device_owner}")
        fixed = body.get("fixed_ip_address")
        addresses = dict((ip, sub) for sub, ip in port.fixed_ips)
        if fixed is None:
            if not addresses:
                raise bad_floatingip(f"Cannot add floating IP to port {port.id} that has "
                                     "no fixed IPv4 addresses")
            if len(addresses) > 1:
                raise bad_floatingip(f"Port {port.id} has multiple fixed IPv4 addresses. "
                                     "Must provide a specific IPv4 address when assigning "
                                     "a floating IP")
            fixed = next(iter(addresses))
        if not isinstance(fixed, str) or fixed not in addresses:
            raise bad_floatingip(f"Port {port.id} does not have fixed ip {fixed}")
        router_id = self.svc.l3.router_for(net_id, addresses[fixed])
        if router_id is None:
            raise NeutronError(404, "ExternalGatewayForFloatingIPNotFound", (
                f"External network {net_id} is not reachable from subnet "
                f"{addresses[fixed]}.  Therefore, cannot associate Port {port.id} with a "
                "Floating IP."))
        existing = self.svc.l3.associated_with(port.id, fixed)
        if existing is not None and (fip is None or existing.id != fip.id):
            raise already_associated(existing, port.id, fixed)
        return port, fixed, router_id

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         fip_id: str) -> None:
        """Show a floating IP."""
        resp.media = self.svc.one(req, "floatingip", self._find(req, fip_id).view())

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         fip_id: str) -> None:
        """Associate (``port_id``), disassociate (``port_id: null``) or describe."""
        fip = self._find(req, fip_id)
        body = update_body(await read_json(req), "floatingip", FIP_UPDATABLE)
        if "description" in body:
            fip = self.svc.l3.describe(fip, text(body, "description"))
        if "port_id" in body:
            if body["port_id"] is None:
                fip = self.svc.l3.associate(fip, None, None, None)
            else:
                fip = self.svc.l3.associate(fip, *self._target(req, fip.network_id, fip, body))
        elif "fixed_ip_address" in body:
            raise bad_floatingip("fixed_ip_address cannot be specified without a port_id")
        resp.media = {"floatingip": fip.view()}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            fip_id: str) -> None:
        """Release a floating IP."""
        self.svc.l3.delete_floating_ip(self._find(req, fip_id))
        resp.status = falcon.HTTP_204
