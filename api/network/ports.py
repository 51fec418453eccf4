"""Ports: ``/v2.0/ports`` — MAC and fixed-IP allocation, groups, binding.

A port belongs to a project and sits on a network the project may see (its own, a
shared or an external one). Without ``fixed_ips`` it gets one address from the first
subnet of its network that has a free one; with them, each entry names a subnet, an
address, or both. A port with port security and no ``security_groups`` joins its
project's ``default`` group (DHCP and router ports, ``network:*`` owners, join none).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import falcon
import falcon.asgi
from nubis.api.network import schema as s
from nubis.api.network.errors import (
    NeutronError,
    bad_request,
    conflict,
    group_not_found,
    policy_denied,
    port_not_found,
)
from nubis.api.network.l3store import L3_OWNERS
from nubis.api.network.model import Network, Port
from nubis.api.network.networks import find_network
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
from nubis.api.network.store import encode
from nubis.api.shared.rest import read_json

PORT_KEYS = ("name", "description", "network_id", "admin_state_up", "mac_address",
             "fixed_ips", "device_id", "device_owner", "binding:host_id",
             "binding:vnic_type", "binding:profile", "port_security_enabled",
             "security_groups", "allowed_address_pairs", "project_id", "tenant_id",
             "extra_dhcp_opts", "tags", "dns_name", "propagate_uplink_status")
UPDATABLE = ("name", "description", "admin_state_up", "device_id", "device_owner",
             "binding:host_id", "binding:vnic_type", "binding:profile",
             "port_security_enabled", "security_groups", "allowed_address_pairs",
             "extra_dhcp_opts", "dns_name", "fixed_ips")
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
#: Most allowed address pairs one port may carry (Neutron's ``max_allowed_address_pair``).
MAX_PAIRS = 10


def find_port(svc: NetworkService, req: falcon.asgi.Request, port_id: str) -> Port:
    """Return a port of the caller's project (any for admins), or PortNotFound."""
    port = svc.store.get_port(port_id)
    ctx = auth(req)
    if port is None or not (ctx.is_admin or port.project_id == ctx.project_id):
        raise port_not_found(port_id)
    return port


def parse_fixed_ips(raw: Any) -> list[dict[str, str]]:
    """Validate ``fixed_ips`` (``[{subnet_id?, ip_address?}]``)."""
    if not isinstance(raw, list):
        raise bad_request("fixed_ips", f"'{raw}' is not a list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not item or set(item) - {"subnet_id", "ip_address"}:
            raise bad_request("fixed_ips", f"Invalid data format for fixed IP: '{item}'")
        if not all(isinstance(v, str) for v in item.values()):
            raise bad_request("fixed_ips", f"Invalid data format for fixed IP: '{item}'")
        out.append(dict(item))
    return out


def parse_pairs(raw: Any) -> list[dict[str, str]]:
    """Validate ``allowed_address_pairs`` (``[{ip_address: ip or cidr, mac_address?}]``)."""
    if not isinstance(raw, list):
        raise bad_request("allowed_address_pairs", f"'{raw}' is not a list")
    if len(raw) > MAX_PAIRS:
        raise NeutronError(400, "AllowedAddressPairExhausted",
                           f"The number of allowed address pair exceeds the maximum {MAX_PAIRS}.")
    out = []
    for item in raw:
        if not isinstance(item, dict) or "ip_address" not in item or (
                set(item) - {"ip_address", "mac_address"}):
            raise bad_request("allowed_address_pairs", f"Invalid data format: '{item}'")
        try:
            ip = str(ipaddress.ip_network(str(item["ip_address"]), strict=False))
        except ValueError:
            raise bad_request("allowed_address_pairs",
                              f"'{item['ip_address']}' is not a valid IP address") from None
        pair = {"ip_address": ip.removesuffix("/32")}
        if "mac_address" in item:
            pair["mac_address"] = parse_mac(item["mac_address"])
        out.append(pair)
    return out


def pairs_need_security(secure: bool, pairs: str) -> None:
    """Refuse allowed address pairs on a port without port security (Neutron's 409)."""
    if not secure and json.loads(pairs):
        raise conflict("AddressPairAndPortSecurityRequired", "Port Security must be enabled "
                       "in order to have allowed address pairs on a port.")


def parse_mac(raw: Any) -> str:
    """Return a unicast MAC address in lower case, or Neutron's 400."""
    value = str(raw).lower()
    if not MAC.match(value) or int(value[:2], 16) & 1 or value == "00:00:00:00:00:00":
        raise bad_request("mac_address", f"'{raw}' is not a valid MAC address")
    return value


def check_network_owner(req: falcon.asgi.Request, net: Network, project: str) -> None:
    """Refuse a non-admin's port on a network neither shared nor the port's project's.

    Neutron's ownership check (before its policy): an external network is visible
    to every project, but only its owner or an admin puts ports on it; the router
    gateway and floating IP ports the L3 calls make are not created through here.
    """
    if auth(req).is_admin or net.shared or net.project_id == project:
        return
    raise NeutronError(403, "HTTPForbidden",
                       f"Tenant {project} not allowed to create port on this network")


class Ports(Handler):
    """``/v2.0/ports`` and ``/v2.0/ports/{id}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's ports (every port for admins)."""
        where = owned_where(req, s.ports.c.project_id)
        ports = self.svc.store.list_ports(where)
        resp.media = self.svc.listing(req, "ports", [p.view() for p in ports])

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a port with a MAC and fixed IPs."""
        body = body_of(await read_json(req), "port")
        only(body, PORT_KEYS, "port")
        if "network_id" not in body:
            raise bad_request("port", "'network_id' is required")
        net = find_network(self.svc, req, str(body["network_id"]))
        project = self.svc.owner_for_create(req, body, "create_port")
        check_network_owner(req, net, project)
        values = self._values(req, body, create=True)
        values["port_security_enabled"] = flag(body, "port_security_enabled",
                                               bool(net.row["port_security_enabled"]))
        if "mac_address" in body:
            values["mac_address"] = parse_mac(body["mac_address"])
        fixed = parse_fixed_ips(body["fixed_ips"]) if "fixed_ips" in body else None
        groups = self._groups(req, body, project, values)
        pairs_need_security(values["port_security_enabled"],
                            values.get("allowed_address_pairs", "[]"))
        self.svc.check_quota(project, "port", s.ports)
        port = self.svc.store.create_port(
            {**values, "network_id": net.id, "project_id": project}, fixed, groups)
        resp.status = falcon.HTTP_201
        resp.media = {"port": port.view()}

    def _values(self, req: falcon.asgi.Request, body: dict[str, Any],
                create: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("name", "description", "device_id", "device_owner"):
            if create or key in body:
                out[key] = text(body, key)
        if create or "admin_state_up" in body:
            out["admin_state_up"] = flag(body, "admin_state_up", True)
        if "binding:host_id" in body:
            if not auth(req).is_admin:
                raise policy_denied(f"rule:{'create' if create else 'update'}_port:binding:"
                                    "host_id")
            out["host_id"] = text(body, "binding:host_id")
            out["status"] = "ACTIVE" if out["host_id"] else "DOWN"
        if body.get("binding:vnic_type", "normal") != "normal":
            raise bad_request("binding:vnic_type", "only 'normal' is supported")
        if "allowed_address_pairs" in body:
            out["allowed_address_pairs"] = parse_pairs(body["allowed_address_pairs"])
        if "port_security_enabled" in body:
            out["port_security_enabled"] = flag(body, "port_security_enabled", True)
        return encode(out)

    def _groups(self, req: falcon.asgi.Request, body: dict[str, Any], project: str,
                values: dict[str, Any]) -> list[str]:
        """Return the port's security groups (its project's default when none are named)."""
        secure = values.get("port_security_enabled", True)
        raw = body.get("security_groups")
        if raw is None:
            if not secure or str(values.get("device_owner", "")).startswith("network:"):
                return []
            return [self.svc.groups.ensure_default(project)]
        if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
            raise bad_request("security_groups", f"'{raw}' is not a list of ids")
        if raw and not secure:
            raise conflict("PortSecurityAndIPRequiredForSecurityGroups",
                           "Port security must be enabled and port must have an IP address "
                           "in order to use security groups.")
        ctx = auth(req)
        for sg_id in raw:
            group = self.svc.groups.get_group(sg_id)
            if group is None or not (ctx.is_admin or group.project_id == project):
                raise group_not_found(sg_id)
        return sorted(set(raw))

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         port_id: str) -> None:
        """Show a port."""
        resp.media = self.svc.one(req, "port", find_port(self.svc, req, port_id).view())

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         port_id: str) -> None:
        """Update a port (not its network or MAC)."""
        port = find_port(self.svc, req, port_id)
        body = update_body(await read_json(req), "port", UPDATABLE)
        values = self._values(req, body, create=False)
        if "fixed_ips" in body:
            self._replace_fixed_ips(port, parse_fixed_ips(body["fixed_ips"]))
        groups = None
        if "security_groups" in body:
            secure = values.get("port_security_enabled", port.row["port_security_enabled"])
            groups = self._groups(req, body, port.project_id,
                                  {"port_security_enabled": secure})
        elif values.get("port_security_enabled") is False and port.security_groups:
            raise conflict("PortSecurityPortHasSecurityGroup", "Port has security group "
                           "associated. Cannot disable port security or ip address until "
                           "security group is removed")
        pairs_need_security(values.get("port_security_enabled",
                                       port.row["port_security_enabled"]),
                            values.get("allowed_address_pairs",
                                       port.row["allowed_address_pairs"]))
        resp.media = {"port": self.svc.store.update_port(port_id, values, groups).view()}

    def _replace_fixed_ips(self, port: Port, requests: list[dict[str, str]]) -> None:
        """Change a port's addresses; refuse what would strand routers or floating IPs.

        The DHCP agent's next pass serves the new addresses (a guest sees them when
        it renews its lease, as with Neutron).
        """
        if port.device_owner.startswith("network:"):
            raise conflict("PortInUse", f"Port {port.id} has device owner "
                           f"{port.device_owner}: its fixed IPs are managed by Neutron.")
        for ip in _released(port, requests):
            fip = self.svc.l3.associated_with(port.id, ip)
            if fip is not None:
                raise conflict("FixedIpAddressInUse", f"Fixed IP {ip} of port {port.id} "
                               f"is associated with floating IP {fip.id}; disassociate "
                               "it first.")
        self.svc.store.replace_fixed_ips(port, requests)

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            port_id: str) -> None:
        """Delete a port and release its addresses (its floating IPs are disassociated)."""
        port = find_port(self.svc, req, port_id)
        if port.device_owner in L3_OWNERS:
            raise conflict("L3PortInUse", f"Port {port_id} cannot be deleted directly via "
                           f"the port API: has device owner {port.device_owner}.")
        self.svc.l3.port_deleted(port_id)
        self.svc.store.delete_port(port_id)
        resp.status = falcon.HTTP_204


def _released(port: Port, requests: list[dict[str, str]]) -> list[str]:
    """Return the port's addresses an update to ``requests`` gives up (as the store keeps).

    A request naming an address keeps it; a bare ``subnet_id`` keeps the port's
    first address in that subnet (an unparsable address is the store's 400).
    """
    held = list(port.fixed_ips)
    for r in requests:
        if "ip_address" in r:
            try:
                ip = str(ipaddress.IPv4Address(r["ip_address"]))
            except ValueError:
                continue
            match = next((h for h in held if h[1] == ip), None)
        else:
            match = next((h for h in held if h[0] == r.get("subnet_id")), None)
        if match is not None:
            held.remove(match)
    return [ip for _subnet, ip in held]
