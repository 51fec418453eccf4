"""Security groups and rules: ``/v2.0/security-groups``, ``/v2.0/security-group-rules``.

Listing a project's groups (or creating a port) makes its ``default`` group first.
Rules: direction ingress/egress, ethertype IPv4/IPv6, a protocol by name or number,
port ranges for tcp/udp/sctp (ICMP type/code for icmp), and a remote CIDR *or* a
remote group.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import falcon
import falcon.asgi
from nubis.api.network import schema as s
from nubis.api.network.errors import (
    NeutronError,
    bad_request,
    group_not_found,
    rule_not_found,
)
from nubis.api.network.model import Rule, SecurityGroup
from nubis.api.network.service import (
    Handler,
    NetworkService,
    auth,
    body_of,
    flag,
    only,
    owned_where,
    project_of,
    text,
)
from nubis.api.shared.rest import read_json

PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "ipv6-icmp",
             "ipv6-icmp": "ipv6-icmp", "sctp": "sctp", "6": "tcp", "17": "udp", "1": "icmp",
             "58": "ipv6-icmp", "132": "sctp"}
RULE_KEYS = ("security_group_id", "direction", "ethertype", "protocol", "port_range_min",
             "port_range_max", "remote_ip_prefix", "remote_group_id", "description",
             "project_id", "tenant_id", "remote_address_group_id")


def find_group(svc: NetworkService, req: falcon.asgi.Request, sg_id: str) -> SecurityGroup:
    """Return a group of the caller's project (any for admins), or SecurityGroupNotFound."""
    group = svc.groups.get_group(sg_id)
    ctx = auth(req)
    if group is None or not (ctx.is_admin or group.project_id == ctx.project_id):
        raise group_not_found(sg_id)
    return group


class SecurityGroups(Handler):
    """``/v2.0/security-groups`` and ``/v2.0/security-groups/{id}``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List groups (the caller's project gets its ``default`` group first)."""
        project = project_of(req)
        self.svc.groups.ensure_default(project)
        where = owned_where(req, s.security_groups.c.project_id)
        groups = self.svc.groups.list_groups(where)
        resp.media = self.svc.listing(req, "security_groups", [g.view() for g in groups])

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a group (with the two default egress rules)."""
        body = body_of(await read_json(req), "security_group")
        only(body, ("name", "description", "project_id", "tenant_id", "stateful", "tags"),
             "security_group")
        project = self.svc.owner_for_create(req, body, "create_security_group")
        name = text(body, "name")
        if name == "default":
            raise NeutronError(409, "SecurityGroupDefaultAlreadyExists",
                               "Default security group already exists.")
        self.svc.groups.ensure_default(project)
        self.svc.check_quota(project, "security_group", s.security_groups)
        group = self.svc.groups.create_group(project, name, text(body, "description"),
                                             flag(body, "stateful", True))
        resp.status = falcon.HTTP_201
        resp.media = {"security_group": group.view()}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         sg_id: str) -> None:
        """Show a group with its rules."""
        resp.media = self.svc.one(req, "security_group", find_group(self.svc, req, sg_id).view())

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         sg_id: str) -> None:
        """Rename or describe a group (the default group keeps its name)."""
        group = find_group(self.svc, req, sg_id)
        body = body_of(await read_json(req), "security_group")
        only(body, ("name", "description"), "security_group")
        values: dict[str, Any] = {k: text(body, k) for k in ("name", "description")
                                  if k in body}
        if group.name == "default" and values.get("name", "default") != "default":
            raise NeutronError(409, "SecurityGroupCannotUpdateDefault",
                               "Updating default security group not allowed.")
        resp.media = {"security_group": self.svc.groups.update_group(sg_id, values).view()}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            sg_id: str) -> None:
        """Delete a group (409 while in use, or for the default group)."""
        find_group(self.svc, req, sg_id)
        self.svc.groups.delete_group(sg_id)
        resp.status = falcon.HTTP_204


def _port(value: Any, key: str) -> int | None:
    if value is None:
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise bad_request("security_group_rule", f"Invalid value for port {value}") from None
    return port


def check_ports(protocol: str | None, low: int | None, high: int | None) -> tuple[
        int | None, int | None]:
    """Validate a rule's port range against its protocol; return (min, max)."""
    if protocol in ("tcp", "udp", "sctp"):
        if low is not None and high is None:
            high = low
        if low is None and high is not None:
            raise NeutronError(400, "SecurityGroupInvalidPortRange",
                               "For TCP/UDP protocols, port_range_min must be <= "
                               "port_range_max")
        for p in (low, high):
            if p is not None and not 1 <= p <= 65535:
                raise NeutronError(400, "SecurityGroupInvalidPortValue",
                                   f"Invalid value for port {p}")
        if low is not None and high is not None and low > high:
            raise NeutronError(400, "SecurityGroupInvalidPortRange",
                               "For TCP/UDP protocols, port_range_min must be <= "
                               "port_range_max")
        return low, high
    if protocol in ("icmp", "ipv6-icmp"):
        for p, what in ((low, "type"), (high, "code")):
            if p is not None and not 0 <= p <= 255:
                raise NeutronError(400, "SecurityGroupInvalidIcmpValue",
                                   f"Invalid value for ICMP {what} {p}")
        if low is None and high is not None:
            raise NeutronError(400, "SecurityGroupMissingIcmpType",
                               f"ICMP code (port-range-max) {high} is provided but ICMP type "
                               "(port-range-min) is missing.")
        return low, high
    if low is not None or high is not None:
        raise NeutronError(400, "SecurityGroupInvalidProtocolForPortRange",
                           f"Ports cannot be specified for protocol {protocol}")
    return None, None


def rule_values(body: dict[str, Any]) -> dict[str, Any]:
    """Parse a rule body into column values (group and project are added by the caller)."""
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise bad_request("security_group_rule", f"'{direction}' is not in "
                          "['ingress', 'egress']")
    ethertype = body.get("ethertype") or "IPv4"
    if ethertype not in ("IPv4", "IPv6"):
        raise NeutronError(400, "SecurityGroupRuleInvalidEtherType",
                           f"Security group rule for ethertype '{ethertype}' not supported. "
                           "Allowed values are ['IPv4', 'IPv6'].")
    raw = body.get("protocol")
    protocol: str | None
    if raw in (None, "any", "0"):
        protocol = None
    elif str(raw).lower() in PROTOCOLS:
        protocol = PROTOCOLS[str(raw).lower()]
    elif str(raw).isdigit() and 0 <= int(str(raw)) <= 255:
        protocol = str(int(str(raw)))
    else:
        raise NeutronError(400, "SecurityGroupRuleInvalidProtocol",
                           f"Security group rule protocol {raw} not supported. Only protocol "
                           "values tcp, udp, icmp, icmpv6, sctp and integer representations "
                           "[0 to 255] are supported.")
    low, high = check_ports(protocol, _port(body.get("port_range_min"), "min"),
                            _port(body.get("port_range_max"), "max"))
    prefix = body.get("remote_ip_prefix")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise bad_request("security_group_rule",
                              f"'{prefix}' is not a valid IP subnet") from None
        if f"IPv{net.version}" != ethertype:
            raise NeutronError(400, "SecurityGroupRuleParameterConflict",
                               f"Conflicting value ethertype {ethertype} for CIDR {prefix}")
        prefix = str(net)
    if prefix is not None and body.get("remote_group_id") is not None:
        raise NeutronError(400, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                           "Only remote_ip_prefix or remote_group_id may be provided.")
    return {"direction": direction, "ethertype": ethertype, "protocol": protocol,
            "port_range_min": low, "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group_id": body.get("remote_group_id"),
            "description": text(body, "description")}


class SecurityGroupRules(Handler):
    """``/v2.0/security-group-rules`` and ``/v2.0/security-group-rules/{id}``."""

    def _visible(self, req: falcon.asgi.Request) -> list[Rule]:
        return self.svc.groups.list_rules(owned_where(req, s.sg_rules.c.project_id))

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's rules."""
        self.svc.groups.ensure_default(project_of(req))
        resp.media = self.svc.listing(req, "security_group_rules",
                                      [r.view() for r in self._visible(req)])

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Add a rule to a group the caller owns."""
        body = body_of(await read_json(req), "security_group_rule")
        only(body, RULE_KEYS, "security_group_rule")
        if body.get("remote_address_group_id") is not None:
            raise bad_request("security_group_rule", "remote_address_group_id is not supported")
        group = find_group(self.svc, req, str(body.get("security_group_id")))
        values = rule_values(body)
        if values["remote_group_id"] is not None:
            find_group(self.svc, req, str(values["remote_group_id"]))
        self.svc.check_quota(group.project_id, "security_group_rule", s.sg_rules)
        rule = self.svc.groups.create_rule({**values, "security_group_id": group.id,
                                            "project_id": group.project_id})
        resp.status = falcon.HTTP_201
        resp.media = {"security_group_rule": rule.view()}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         rule_id: str) -> None:
        """Show a rule."""
        rule = self.svc.groups.get_rule(rule_id)
        ctx = auth(req)
        if rule is None or not (ctx.is_admin or rule.row["project_id"] == ctx.project_id):
            raise rule_not_found(rule_id)
        resp.media = self.svc.one(req, "security_group_rule", rule.view())

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            rule_id: str) -> None:
        """Delete a rule."""
        rule = self.svc.groups.get_rule(rule_id)
        ctx = auth(req)
        if rule is None or not (ctx.is_admin or rule.row["project_id"] == ctx.project_id):
            raise rule_not_found(rule_id)
        self.svc.groups.delete_rule(rule_id)
        resp.status = falcon.HTTP_204
