"""What the network agents read: ``GET /network/agent/v1/state`` (service token only).

One document with every network that has a subnet, its subnets and its ports (MAC,
fixed IPs, owner, security groups, port security, allowed address pairs), every
security group's rules, and every router (gateway, interfaces, floating IPs), so an agent
can rebuild a host from scratch. Agents present the
shared service token in ``X-Nubis-Agent-Token``; Keystone tokens are not accepted here.
"""

from __future__ import annotations

import hmac
from typing import Any

import falcon
import falcon.asgi
from nubis.api.network.errors import NeutronError
from nubis.api.network.l3store import agent_routers
from nubis.api.network.service import NetworkService

TOKEN_HEADER = "X-Nubis-Agent-Token"


class AgentState:
    """``GET /agent/v1/state``."""

    auth_required = False

    def __init__(self, svc: NetworkService, token: str) -> None:
        self.svc = svc
        self.token = token

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Answer the whole wiring state (401 without the agent token)."""
        given = req.get_header(TOKEN_HEADER) or ""
        if not self.token or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise NeutronError(401, "Unauthorized", "The agent token is missing or wrong.")
        resp.media = state_document(self.svc)


def state_document(svc: NetworkService) -> dict[str, Any]:
    """Return every network with subnets, with its subnets and ports."""
    subnets_by_net: dict[str, list[dict[str, Any]]] = {}
    for subnet in svc.store.list_subnets():
        v = subnet.view()
        subnets_by_net.setdefault(subnet.network_id, []).append({
            k: v[k] for k in ("id", "cidr", "gateway_ip", "enable_dhcp", "dns_nameservers",
                              "host_routes", "allocation_pools")})
    ports_by_net: dict[str, list[dict[str, Any]]] = {}
    for port in svc.store.list_ports():
        v = port.view()
        ports_by_net.setdefault(port.network_id, []).append({
            k: v[k] for k in ("id", "mac_address", "device_id", "device_owner", "fixed_ips",
                              "admin_state_up", "project_id", "security_groups",
                              "port_security_enabled", "allowed_address_pairs")})
    out = []
    for net in svc.store.list_networks():
        if net.id not in subnets_by_net:
            continue
        r = net.row
        out.append({"id": net.id, "project_id": net.project_id, "mtu": r["mtu"],
                    "network_type": r["network_type"], "segmentation_id": r["segmentation_id"],
                    "external": net.external, "subnets": subnets_by_net[net.id],
                    "ports": ports_by_net.get(net.id, [])})
    return {"networks": out, "routers": agent_routers(svc.l3),
            "security_groups": groups_document(svc)}


def groups_document(svc: NetworkService) -> list[dict[str, Any]]:
    """Return every security group with its rules (what the agents' firewalls enforce)."""
    keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
            "remote_ip_prefix", "remote_group_id")
    return [{"id": g.id, "rules": [{k: r.row[k] for k in keys} for r in g.rules]}
            for g in svc.groups.list_groups()]
