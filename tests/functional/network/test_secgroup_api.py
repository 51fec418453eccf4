"""Security group bad input on ports and rules: Neutron's errors, nothing half-created."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from tests.functional.network.conftest import NetCloud, Project


def _fault(resp: requests.Response) -> tuple[int, str]:
    body = resp.json()["NeutronError"]
    return resp.status_code, str(body["type"])


def test_group_and_port_security_errors(net: NetCloud, alt: Project) -> None:
    conn = net.sdk()
    other = net.project_sdk(alt)
    tok = conn.auth_token
    theirs = other.network.create_security_group(name=f"theirs-{uuid.uuid4().hex[:6]}")
    mine = conn.network.create_security_group(name=f"mine-{uuid.uuid4().hex[:6]}")
    n = conn.network.create_network(name=f"sgbad-{uuid.uuid4().hex[:6]}")
    conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.3.0.0/29",
                               allocation_pools=[{"start": "10.3.0.3", "end": "10.3.0.3"}],
                               is_dhcp_enabled=False)

    def port(**body: Any) -> requests.Response:
        return net.http("POST", "/ports", tok, json={"port": {"network_id": n.id, **body}})

    def rule(**body: Any) -> requests.Response:
        return net.http("POST", "/security-group-rules", tok, json={"security_group_rule": {
            "security_group_id": mine.id, "direction": "ingress", **body}})

    try:
        # Another project's group: not found, as a port's group or as a remote group.
        assert _fault(port(security_groups=[theirs.id])) == (404, "SecurityGroupNotFound")
        assert _fault(rule(remote_group_id=theirs.id)) == (404, "SecurityGroupNotFound")
        # Groups or address pairs on a port without port security: 409.
        assert _fault(port(port_security_enabled=False, security_groups=[mine.id])) == (
            409, "PortSecurityAndIPRequiredForSecurityGroups")
        assert _fault(port(port_security_enabled=False, security_groups=[],
                           allowed_address_pairs=[{"ip_address": "10.3.0.7"}])) == (
            409, "AddressPairAndPortSecurityRequired")
        assert _fault(rule(protocol="gre; drop")) == (400, "SecurityGroupRuleInvalidProtocol")
        assert _fault(rule(protocol="tcp", port_range_min=0)) == (
            400, "SecurityGroupInvalidPortValue")
        assert _fault(rule(remote_group_id=mine.id, remote_ip_prefix="10.0.0.0/8")) == (
            400, "SecurityGroupRemoteGroupAndRemoteIpPrefix")
        # Nothing was half-made: the pool's one address is still free, no rule was added.
        assert [r.direction for r in conn.network.security_group_rules(
            security_group_id=mine.id)] == ["egress", "egress"]
        made = conn.network.create_port(network_id=n.id, security_groups=[mine.id])
        assert made.fixed_ips[0]["ip_address"] == "10.3.0.3"
        # Port security cannot go while the port has groups (or pairs stay).
        r = net.http("PUT", f"/ports/{made.id}", tok, json={"port": {
            "port_security_enabled": False}})
        assert _fault(r) == (409, "PortSecurityPortHasSecurityGroup")
        conn.network.update_port(made, allowed_address_pairs=[{"ip_address": "10.3.0.6"}])
        r = net.http("PUT", f"/ports/{made.id}", tok, json={"port": {
            "port_security_enabled": False, "security_groups": []}})
        assert _fault(r) == (409, "AddressPairAndPortSecurityRequired")
        off = conn.network.update_port(made, port_security_enabled=False, security_groups=[],
                                       allowed_address_pairs=[])
        assert off.is_port_security_enabled is False and off.security_group_ids == []
        conn.network.delete_port(made)
    finally:
        for p in conn.network.ports(network_id=n.id):
            conn.network.delete_port(p)
        conn.network.delete_network(n)
        conn.network.delete_security_group(mine)
        other.network.delete_security_group(theirs)
