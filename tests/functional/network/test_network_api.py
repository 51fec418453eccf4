"""The Neutron v2.0 subset through openstacksdk, with Neutron's errors for bad input."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openstack
import pytest

from tests.functional.network.conftest import NetCloud, Project


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def network(net: NetCloud) -> Iterator[tuple[openstack.connection.Connection, str, str]]:
    """A demo-project network with one /24 subnet; removed afterwards."""
    conn = net.sdk()
    n = conn.network.create_network(name=_name("net"))
    s = conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.0.0.0/24",
                                   name=_name("sub"))
    try:
        yield conn, n.id, s.id
    finally:
        for p in conn.network.ports(network_id=n.id):
            conn.network.delete_port(p)
        conn.network.delete_network(n)


def _fault(resp) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    body = resp.json()["NeutronError"]
    return resp.status_code, body["type"], body["message"]


def test_network_subnet_port_lifecycle(net: NetCloud) -> None:
    conn = net.sdk()
    n = conn.network.create_network(name=_name("net"))
    assert n.status == "ACTIVE" and n.mtu == 1450 and not n.is_shared
    s = conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.1.0.0/24",
                                   dns_nameservers=["10.1.0.53"])
    assert s.gateway_ip == "10.1.0.1"
    assert s.allocation_pools == [{"start": "10.1.0.2", "end": "10.1.0.254"}]
    p1 = conn.network.create_port(network_id=n.id, name="p1")
    p2 = conn.network.create_port(network_id=n.id,
                                  fixed_ips=[{"subnet_id": s.id, "ip_address": "10.1.0.77"}])
    assert [ip["ip_address"] for ip in p1.fixed_ips] == ["10.1.0.3"]  # .2: DHCP
    assert p2.fixed_ips == [{"subnet_id": s.id, "ip_address": "10.1.0.77"}]
    assert p1.mac_address.startswith("fa:16:3e:") and p1.mac_address != p2.mac_address
    default = conn.network.find_security_group("default")
    assert default is not None and p1.security_group_ids == [default.id]
    dhcp = list(conn.network.ports(network_id=n.id, device_owner="network:dhcp"))
    assert [ip["ip_address"] for p in dhcp for ip in p.fixed_ips] == ["10.1.0.2"]
    assert {p.id for p in conn.network.ports(network_id=n.id)} == {p1.id, p2.id, dhcp[0].id}
    assert [p.id for p in conn.network.ports(fixed_ips="ip_address=10.1.0.77")] == [p2.id]
    assert conn.network.get_network(n.id).subnet_ids == [s.id]
    # A port still on the network keeps it (NetworkInUse); the address comes back on delete.
    with pytest.raises(openstack.exceptions.ConflictException):
        conn.network.delete_network(n)
    conn.network.delete_port(p1)
    p3 = conn.network.create_port(network_id=n.id)
    assert [ip["ip_address"] for ip in p3.fixed_ips] == ["10.1.0.3"]
    for p in (p2, p3):
        conn.network.delete_port(p)
    conn.network.delete_network(n)
    assert conn.network.find_network(n.id) is None
    assert conn.network.find_subnet(s.id) is None


def test_overlapping_subnet_is_invalid_input(net: NetCloud, network) -> None:  # type: ignore[no-untyped-def]
    conn, net_id, _ = network
    r = net.http("POST", "/subnets", conn.auth_token, json={"subnet": {
        "network_id": net_id, "ip_version": 4, "cidr": "10.0.0.128/25"}})
    status, kind, message = _fault(r)
    assert (status, kind) == (400, "InvalidInput")
    assert "overlaps with another subnet" in message
    assert len(list(conn.network.subnets(network_id=net_id))) == 1
    assert len(list(conn.network.ports(network_id=net_id))) == 1  # the DHCP port


def test_fixed_ip_outside_subnet_and_taken(net: NetCloud, network) -> None:  # type: ignore[no-untyped-def]
    conn, net_id, sub_id = network
    tok = conn.auth_token
    r = net.http("POST", "/ports", tok, json={"port": {"network_id": net_id, "fixed_ips": [
        {"subnet_id": sub_id, "ip_address": "192.168.9.9"}]}})
    assert _fault(r)[:2] == (400, "InvalidIpForSubnet")
    ok = net.http("POST", "/ports", tok, json={"port": {"network_id": net_id, "fixed_ips": [
        {"ip_address": "10.0.0.9"}]}})
    assert ok.status_code == 201, ok.text
    again = net.http("POST", "/ports", tok, json={"port": {"network_id": net_id, "fixed_ips": [
        {"ip_address": "10.0.0.9"}]}})
    assert _fault(again)[:2] == (409, "IpAddressAlreadyAllocated")
    mine = [p for p in conn.network.ports(network_id=net_id) if p.device_owner != "network:dhcp"]
    assert len(mine) == 1


def test_port_fixed_ips_update(net: NetCloud, network) -> None:  # type: ignore[no-untyped-def]
    """Neutron's update: named addresses and bare subnets kept, the rest released."""
    conn, net_id, sub_id = network
    port = conn.network.create_port(network_id=net_id)
    first = port.fixed_ips[0]["ip_address"]
    moved = conn.network.update_port(port, fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert moved.fixed_ips == [{"subnet_id": sub_id, "ip_address": "10.0.0.50"}]
    taker = conn.network.create_port(network_id=net_id, fixed_ips=[{"ip_address": first}])
    assert taker.fixed_ips[0]["ip_address"] == first  # the old address went back
    two = conn.network.update_port(port, fixed_ips=[{"subnet_id": sub_id},
                                                    {"ip_address": "10.0.0.51"}])
    assert [ip["ip_address"] for ip in two.fixed_ips] == ["10.0.0.50", "10.0.0.51"]
    tok = conn.auth_token
    for ips, want in (([{"ip_address": first}], (409, "IpAddressAlreadyAllocated")),
                      ([{"ip_address": "192.168.9.9"}], (400, "InvalidIpForNetwork")),
                      ("10.0.0.9", (400, "HTTPBadRequest"))):
        r = net.http("PUT", f"/ports/{port.id}", tok, json={"port": {"fixed_ips": ips}})
        assert _fault(r)[:2] == want, r.text
    assert conn.network.get_port(port.id).fixed_ips == two.fixed_ips  # nothing half-done
    dhcp = next(iter(conn.network.ports(network_id=net_id, device_owner="network:dhcp")))
    r = net.http("PUT", f"/ports/{dhcp.id}", tok, json={"port": {"fixed_ips": []}})
    assert _fault(r)[:2] == (409, "PortInUse")
    assert conn.network.update_port(port, fixed_ips=[]).fixed_ips == []


def test_exhausted_pool(net: NetCloud) -> None:
    conn = net.sdk()
    n = conn.network.create_network(name=_name("small"))
    try:
        conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.9.0.0/29",
                                   allocation_pools=[{"start": "10.9.0.2", "end": "10.9.0.3"}],
                                   is_dhcp_enabled=False)
        got = [conn.network.create_port(network_id=n.id) for _ in range(2)]
        assert sorted(p.fixed_ips[0]["ip_address"] for p in got) == ["10.9.0.2", "10.9.0.3"]
        r = net.http("POST", "/ports", conn.auth_token, json={"port": {"network_id": n.id}})
        status, kind, message = _fault(r)
        assert (status, kind) == (409, "IpAddressGenerationFailure")
        assert message == f"No more IP addresses available on network {n.id}."
        assert len(list(conn.network.ports(network_id=n.id))) == 2
    finally:
        for p in conn.network.ports(network_id=n.id):
            conn.network.delete_port(p)
        conn.network.delete_network(n)


def test_other_projects_network_is_not_found(net: NetCloud, network, alt: Project) -> None:  # type: ignore[no-untyped-def]
    _conn, net_id, _ = network
    other = net.project_sdk(alt)
    tok = other.auth_token
    assert _fault(net.http("GET", f"/networks/{net_id}", tok))[:2] == (404, "NetworkNotFound")
    r = net.http("POST", "/ports", tok, json={"port": {"network_id": net_id}})
    assert _fault(r)[:2] == (404, "NetworkNotFound")
    r = net.http("POST", "/subnets", tok, json={"subnet": {
        "network_id": net_id, "ip_version": 4, "cidr": "10.5.0.0/24"}})
    assert _fault(r)[:2] == (404, "NetworkNotFound")
    assert net_id not in {n.id for n in other.network.networks()}
    # The same CIDR in another project's network is fine.
    mine = other.network.create_network(name=_name("alt"))
    other.network.create_subnet(network_id=mine.id, ip_version=4, cidr="10.0.0.0/24")
    other.network.delete_network(mine)


def test_security_groups(net: NetCloud) -> None:
    conn = net.sdk()
    default = conn.network.find_security_group("default")
    assert default is not None
    rules = {(r["direction"], r["ethertype"], r["remote_group_id"])
             for r in default.security_group_rules}
    assert rules == {("egress", "IPv4", None), ("egress", "IPv6", None),
                     ("ingress", "IPv4", default.id), ("ingress", "IPv6", default.id)}
    sg = conn.network.create_security_group(name=_name("web"), description="web")
    rule = conn.network.create_security_group_rule(
        security_group_id=sg.id, direction="ingress", protocol="tcp",
        port_range_min=22, port_range_max=22, remote_ip_prefix="192.0.2.0/24")
    assert rule.protocol == "tcp" and rule.ether_type == "IPv4"
    tok = conn.auth_token
    dup = net.http("POST", "/security-group-rules", tok, json={"security_group_rule": {
        "security_group_id": sg.id, "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.0.2.0/24"}})
    assert _fault(dup)[:2] == (409, "SecurityGroupRuleExists")
    bad = net.http("POST", "/security-group-rules", tok, json={"security_group_rule": {
        "security_group_id": sg.id, "direction": "ingress", "protocol": "tcp",
        "port_range_min": 90, "port_range_max": 80}})
    assert _fault(bad)[:2] == (400, "SecurityGroupInvalidPortRange")
    n = conn.network.create_network(name=_name("sgnet"))
    conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.2.0.0/24")
    port = conn.network.create_port(network_id=n.id, security_group_ids=[sg.id])
    in_use = net.http("DELETE", f"/security-groups/{sg.id}", tok)
    assert _fault(in_use)[:2] == (409, "SecurityGroupInUse")
    conn.network.delete_port(port)
    conn.network.delete_network(n)
    conn.network.delete_security_group_rule(rule)
    conn.network.delete_security_group(sg)
    r = net.http("DELETE", f"/security-groups/{default.id}", tok)
    assert _fault(r)[:2] == (409, "SecurityGroupCannotRemoveDefault")


def test_extensions_and_faults(net: NetCloud) -> None:
    conn = net.sdk()
    aliases = {e.alias for e in conn.network.extensions()}
    assert {"security-group", "binding", "port-security", "quotas", "external-net"} <= aliases
    assert {"router", "ext-gw-mode"} <= aliases
    tok = conn.auth_token
    assert _fault(net.http("GET", f"/networks/{uuid.uuid4()}", tok))[:2] == (
        404, "NetworkNotFound")
    assert net.http("GET", "/networks", "bogus").status_code == 401
    r = net.http("POST", "/networks", tok, data=b"{nope",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "NeutronError" in r.json()
    r = net.http("POST", "/networks", tok, json={"network": {"shared": True}})
    assert _fault(r)[:2] == (403, "PolicyNotAuthorized")
    r = net.http("POST", "/subnets", tok, json={"subnet": {
        "network_id": str(uuid.uuid4()), "ip_version": 4, "cidr": "10.0.0.1/24"}})
    assert r.status_code in (400, 404)


def test_list_filters_sorting_paging(net: NetCloud) -> None:
    conn = net.sdk()
    tag = uuid.uuid4().hex[:6]
    made = [conn.network.create_network(name=f"page-{tag}-{i}") for i in range(3)]
    try:
        tok = conn.auth_token
        r = net.http("GET", f"/networks?name=page-{tag}-1&fields=id&fields=name", tok)
        assert r.json()["networks"] == [{"id": made[1].id, "name": f"page-{tag}-1"}]
        r = net.http("GET", "/networks?sort_key=name&sort_dir=desc&limit=2", tok)
        doc = r.json()
        names = [n["name"] for n in doc["networks"]]
        assert names == sorted(names, reverse=True) and len(names) == 2
        assert doc["networks_links"][0]["rel"] == "next"
        pages = list(conn.network.networks(name=[n.name for n in made], limit=1))
        assert {n.id for n in pages} == {n.id for n in made}
    finally:
        for n in made:
            conn.network.delete_network(n)


def test_up_hook_makes_the_demo_private_network_once(net: NetCloud) -> None:
    from nubis.networkboot import PRIVATE_CIDR, ensure_private_network

    assert ensure_private_network(net.server.state) is True
    assert ensure_private_network(net.server.state) is False
    conn = net.sdk()
    private = conn.network.find_network("private")
    assert private is not None and private.project_id == conn.current_project_id
    subnets = list(conn.network.subnets(network_id=private.id))
    assert [s.cidr for s in subnets] == [PRIVATE_CIDR]
