"""Routers and floating IPs through openstacksdk and the ``openstack`` CLI, with bad input."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import openstack
import pytest

from tests.functional.network.conftest import NetCloud, Project


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _fault(resp) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    body = resp.json()["NeutronError"]
    return resp.status_code, body["type"]


@dataclass
class L3:
    """An external network (a /29: five addresses) and a demo network with a port."""

    conn: openstack.connection.Connection
    ext_id: str
    ext_subnet: str
    net_id: str
    subnet_id: str
    port_id: str


@pytest.fixture
def l3(net: NetCloud) -> Iterator[L3]:
    admin = net.sdk("nubis-admin")
    conn = net.sdk()
    ext = admin.network.create_network(name=_name("public"), is_router_external=True)
    ext_sub = admin.network.create_subnet(network_id=ext.id, ip_version=4, is_dhcp_enabled=False,
                                          cidr="203.0.113.0/29")
    n = conn.network.create_network(name=_name("priv"))
    s = conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.44.0.0/24")
    p = conn.network.create_port(network_id=n.id, device_owner="compute:nova",
                                 device_id=str(uuid.uuid4()))
    try:
        yield L3(conn, ext.id, ext_sub.id, n.id, s.id, p.id)
    finally:
        for fip in admin.network.ips(floating_network_id=ext.id):
            admin.network.delete_ip(fip)
        for router in admin.network.routers():
            if (router.external_gateway_info or {}).get("network_id") == ext.id or \
                    router.name.startswith("r-"):
                for port in admin.network.ports(device_id=router.id,
                                                device_owner="network:router_interface"):
                    admin.network.remove_interface_from_router(router, port=port.id)
                admin.network.delete_router(router)
        conn.network.delete_port(p.id)
        conn.network.delete_network(n.id)
        admin.network.delete_network(ext.id)


def test_router_gateway_interface_and_floating_ip(net: NetCloud, l3: L3) -> None:
    conn = l3.conn
    ext = conn.network.get_network(l3.ext_id)  # external networks are visible to all
    assert ext.is_router_external
    router = conn.network.create_router(name=_name("r"),
                                        external_gateway_info={"network_id": l3.ext_id})
    gw = router.external_gateway_info
    assert gw["network_id"] == l3.ext_id and gw["enable_snat"] is True
    assert gw["external_fixed_ips"][0]["ip_address"] == "203.0.113.2"
    added = conn.network.add_interface_to_router(router, subnet=l3.subnet_id)
    assert added["subnet_id"] == l3.subnet_id
    iface = conn.network.get_port(added["port_id"])
    assert iface.device_owner == "network:router_interface"
    assert iface.fixed_ips[0]["ip_address"] == "10.44.0.1"  # the subnet's gateway
    fip = conn.network.create_ip(floating_network_id=l3.ext_id)
    assert fip.status == "DOWN" and fip.port_id is None
    assert fip.floating_ip_address.startswith("203.0.113.")
    fip = conn.network.update_ip(fip, port_id=l3.port_id)
    fixed = conn.network.get_port(l3.port_id).fixed_ips[0]["ip_address"]
    assert (fip.port_id, fip.fixed_ip_address, fip.router_id, fip.status) == (
        l3.port_id, fixed, router.id, "ACTIVE")
    assert [f.id for f in conn.network.ips(port_id=l3.port_id)] == [fip.id]
    # A second floating IP on the same fixed address is refused.
    other = conn.network.create_ip(floating_network_id=l3.ext_id)
    r = net.http("PUT", f"/floatingips/{other.id}", net.token(),
                 json={"floatingip": {"port_id": l3.port_id}})
    assert _fault(r) == (409, "FloatingIPPortAlreadyAssociated")
    conn.network.delete_ip(other)
    # The associated fixed address cannot be taken off the port; another can be added.
    r = net.http("PUT", f"/ports/{l3.port_id}", net.token(), json={"port": {
        "fixed_ips": [{"subnet_id": l3.subnet_id, "ip_address": "10.44.0.99"}]}})
    assert _fault(r) == (409, "FixedIpAddressInUse")
    both = conn.network.update_port(l3.port_id, fixed_ips=[
        {"ip_address": fixed}, {"subnet_id": l3.subnet_id, "ip_address": "10.44.0.99"}])
    assert [ip["ip_address"] for ip in both.fixed_ips] == [fixed, "10.44.0.99"]
    r = net.http("PUT", f"/ports/{added['port_id']}", net.token(), json={"port": {
        "fixed_ips": [{"subnet_id": l3.subnet_id, "ip_address": "10.44.0.98"}]}})
    assert _fault(r) == (409, "PortInUse")  # a router's interface keeps its address
    # Interfaces in use: the router and the interface cannot go.
    r = net.http("DELETE", f"/routers/{router.id}", net.token())
    assert _fault(r) == (409, "RouterInUse")
    r = net.http("PUT", f"/routers/{router.id}/remove_router_interface", net.token(),
                 json={"subnet_id": l3.subnet_id})
    assert _fault(r) == (409, "RouterInterfaceInUseByFloatingIP")
    r = net.http("DELETE", f"/ports/{added['port_id']}", net.token())
    assert _fault(r) == (409, "L3PortInUse")
    # Disassociate, then take everything apart.
    fip = conn.network.update_ip(fip, port_id=None)
    assert (fip.port_id, fip.fixed_ip_address, fip.status) == (None, None, "DOWN")
    conn.network.remove_interface_from_router(router, subnet=l3.subnet_id)
    r = net.http("PUT", f"/routers/{router.id}/remove_router_interface", net.token(),
                 json={"subnet_id": l3.subnet_id})
    assert _fault(r) == (404, "RouterInterfaceNotFoundForSubnet")
    r = net.http("PUT", f"/routers/{router.id}/remove_router_interface", net.token(),
                 json={"port_id": str(uuid.uuid4())})
    assert _fault(r) == (404, "RouterInterfaceNotFound")
    conn.network.delete_ip(fip)
    conn.network.delete_router(router)
    assert not list(conn.network.ports(device_id=router.id))


def test_floating_ip_errors(net: NetCloud, l3: L3, alt: Project) -> None:
    conn, token = l3.conn, net.token()
    fip = conn.network.create_ip(floating_network_id=l3.ext_id)
    # No router between the port's subnet and the external network.
    r = net.http("PUT", f"/floatingips/{fip.id}", token,
                 json={"floatingip": {"port_id": l3.port_id}})
    assert _fault(r) == (404, "ExternalGatewayForFloatingIPNotFound")
    # Not an external network; an unknown one; another project's port; a foreign address.
    r = net.http("POST", "/floatingips", token,
                 json={"floatingip": {"floating_network_id": l3.net_id}})
    assert _fault(r) == (400, "BadRequest")
    r = net.http("POST", "/floatingips", token,
                 json={"floatingip": {"floating_network_id": str(uuid.uuid4())}})
    assert _fault(r) == (404, "NetworkNotFound")
    r = net.http("POST", "/floatingips", token, json={"floatingip": {}})
    assert _fault(r) == (400, "HTTPBadRequest")
    alt_conn = net.project_sdk(alt)
    r = net.http("PUT", f"/floatingips/{fip.id}", alt_conn.auth_token,
                 json={"floatingip": {"port_id": None}})
    assert _fault(r) == (404, "FloatingIPNotFound")
    router = conn.network.create_router(name=_name("r"),
                                        external_gateway_info={"network_id": l3.ext_id})
    conn.network.add_interface_to_router(router, subnet=l3.subnet_id)
    r = net.http("PUT", f"/floatingips/{fip.id}", token, json={"floatingip": {
        "port_id": l3.port_id, "fixed_ip_address": "10.44.0.250"}})
    assert _fault(r) == (400, "BadRequest")
    # Only admins choose the address or SNAT.
    r = net.http("POST", "/floatingips", token, json={"floatingip": {
        "floating_network_id": l3.ext_id, "floating_ip_address": "203.0.113.6"}})
    assert _fault(r) == (403, "PolicyNotAuthorized")
    r = net.http("PUT", f"/routers/{router.id}", token, json={"router": {
        "external_gateway_info": {"network_id": l3.ext_id, "enable_snat": False}}})
    assert _fault(r) == (403, "PolicyNotAuthorized")
    # The pool (.2-.6) is exhausted by the gateway (.2) and four floating IPs.
    made = [conn.network.create_ip(floating_network_id=l3.ext_id) for _ in range(3)]
    assert len({f.floating_ip_address for f in [fip, *made]}) == 4
    r = net.http("POST", "/floatingips", token,
                 json={"floatingip": {"floating_network_id": l3.ext_id}})
    assert _fault(r) == (409, "IpAddressGenerationFailure")
    assert len(list(conn.network.ips(floating_network_id=l3.ext_id))) == 4
    # Deleting the associated port disassociates its floating IP.
    assert conn.network.update_ip(fip, port_id=l3.port_id).status == "ACTIVE"
    spare = conn.network.create_port(network_id=l3.net_id)
    conn.network.update_ip(made[0], port_id=spare.id)
    conn.network.delete_port(spare)
    gone = conn.network.get_ip(made[0].id)
    assert (gone.port_id, gone.fixed_ip_address, gone.status) == (None, None, "DOWN")


def test_router_bad_input(net: NetCloud, l3: L3, alt: Project) -> None:
    token = net.token()
    for body, expected in (
            ({"router": {"external_gateway_info": {"network_id": l3.net_id}}},
             (400, "BadRequest")),
            ({"router": {"external_gateway_info": {"network_id": str(uuid.uuid4())}}},
             (404, "NetworkNotFound")),
            ({"router": {"bogus": 1}}, (400, "HTTPBadRequest")),
            ({"router": {"distributed": True}}, (400, "HTTPBadRequest")),
            ({"router": "x"}, (400, "HTTPBadRequest"))):
        r = net.http("POST", "/routers", token, json=body)
        assert _fault(r) == expected, (body, r.text)
    router = l3.conn.network.create_router(name=_name("r"))
    assert router.external_gateway_info is None
    for body in ({}, {"subnet_id": l3.subnet_id, "port_id": l3.port_id}, {"subnet_id": 5}):
        r = net.http("PUT", f"/routers/{router.id}/add_router_interface", token, json=body)
        assert _fault(r) == (400, "BadRequest"), body
    r = net.http("PUT", f"/routers/{router.id}/add_router_interface", token,
                 json={"port_id": l3.port_id})
    assert _fault(r) == (409, "PortInUse")
    l3.conn.network.add_interface_to_router(router, subnet=l3.subnet_id)
    r = net.http("PUT", f"/routers/{router.id}/add_router_interface", token,
                 json={"subnet_id": l3.subnet_id})
    assert _fault(r) == (400, "BadRequest")
    alt_token = net.project_sdk(alt).auth_token
    r = net.http("GET", f"/routers/{router.id}", alt_token)
    assert _fault(r) == (404, "RouterNotFound")
    r = net.http("GET", "/routers", alt_token)
    assert router.id not in {x["id"] for x in r.json()["routers"]}
    exts = {e["alias"] for e in net.http("GET", "/extensions", token).json()["extensions"]}
    assert {"router", "external-net", "ext-gw-mode"} <= exts


def test_router_and_floating_ip_with_openstack_cli(net: NetCloud, l3: L3) -> None:
    name = _name("r")
    router = net.osc("router", "create", name, "-f", "json")
    net.osc("router", "set", "--external-gateway", l3.ext_id, name)
    net.osc("router", "add", "subnet", name, l3.subnet_id)
    shown = net.osc("router", "show", name, "-f", "json")
    assert shown["external_gateway_info"]["network_id"] == l3.ext_id
    fip = net.osc("floating", "ip", "create", l3.ext_id, "-f", "json")
    net.osc("floating", "ip", "set", "--port", l3.port_id, fip["floating_ip_address"])
    listed = net.osc("floating", "ip", "list", "--port", l3.port_id, "-f", "json")
    assert [f["Floating IP Address"] for f in listed] == [fip["floating_ip_address"]]
    net.osc("floating", "ip", "unset", "--port", fip["floating_ip_address"])
    net.osc("floating", "ip", "delete", fip["id"])
    net.osc("router", "remove", "subnet", name, l3.subnet_id)
    net.osc("router", "delete", router["id"])


def test_server_addresses_show_the_floating_ip(net: NetCloud, l3: L3) -> None:
    from tests.functional.network.test_compute_ports import _on

    conn = l3.conn
    server = conn.network.get_port(l3.port_id).device_id
    router = conn.network.create_router(name=_name("r"),
                                        external_gateway_info={"network_id": l3.ext_id})
    conn.network.add_interface_to_router(router, subnet=l3.subnet_id)
    fip = conn.network.create_ip(floating_network_id=l3.ext_id, port_id=l3.port_id)
    addrs = _on(net)(lambda c: c.addresses([server], conn.auth_token))[server]
    kinds = [(a["OS-EXT-IPS:type"], a["addr"]) for a in next(iter(addrs.values()))]
    assert kinds[1] == ("floating", fip.floating_ip_address) and kinds[0][0] == "fixed"


def test_up_hook_makes_public_and_router1_once(net: NetCloud) -> None:
    from nubis import networkboot as nb

    conn, admin = net.sdk(), net.sdk("nubis-admin")
    made_private = nb.ensure_private_network(net.server.state)
    try:
        assert nb.ensure_public_router(net.server.state) is True
        assert nb.ensure_public_router(net.server.state) is False
        public = admin.network.find_network(nb.PUBLIC_NETWORK)
        assert public is not None and public.is_router_external
        assert [s.cidr for s in admin.network.subnets(network_id=public.id)] == [nb.PUBLIC_CIDR]
        router = conn.network.find_router(nb.ROUTER)
        assert router is not None and router.project_id == conn.current_project_id
        assert router.external_gateway_info["network_id"] == public.id
        private = conn.network.find_network(nb.PRIVATE_NETWORK)
        assert private is not None
        ifaces = list(conn.network.ports(device_id=router.id,
                                         device_owner="network:router_interface"))
        assert [p.network_id for p in ifaces] == [private.id]
    finally:
        router = conn.network.find_router(nb.ROUTER)
        if router is not None:
            for p in conn.network.ports(device_id=router.id,
                                        device_owner="network:router_interface"):
                conn.network.remove_interface_from_router(router, port=p.id)
            conn.network.delete_router(router)
        public = admin.network.find_network(nb.PUBLIC_NETWORK)
        if public is not None:
            admin.network.delete_network(public)
        if made_private:
            conn.network.delete_network(conn.network.find_network(nb.PRIVATE_NETWORK))


def test_router_and_floating_ip_quotas(net: NetCloud, l3: L3, alt: Project) -> None:
    admin = net.sdk("nubis-admin")
    admin_token = admin.auth_token
    r = net.http("PUT", f"/quotas/{alt.id}", admin_token,
                 json={"quota": {"floatingip": 1, "router": 0}})
    assert r.status_code == 200 and r.json()["quota"]["floatingip"] == 1
    token = net.project_sdk(alt).auth_token
    try:
        first = net.http("POST", "/floatingips", token,
                         json={"floatingip": {"floating_network_id": l3.ext_id}})
        assert first.status_code == 201, first.text
        r = net.http("POST", "/floatingips", token,
                     json={"floatingip": {"floating_network_id": l3.ext_id}})
        assert _fault(r) == (409, "OverQuota")
        r = net.http("POST", "/routers", token, json={"router": {"name": "r-quota"}})
        assert _fault(r) == (409, "OverQuota")
        assert net.http("DELETE", f"/floatingips/{first.json()['floatingip']['id']}",
                        token).status_code == 204
    finally:
        net.http("DELETE", f"/quotas/{alt.id}", admin_token)


def test_ports_on_an_external_network_are_its_owners(net: NetCloud, l3: L3) -> None:
    """Neutron's ownership check: only the network's owner (or an admin) adds ports.

    The external network is visible to the demo project (it makes floating IPs and
    router gateways on it, whose ports the L3 calls make), but its own port create
    on it is a 403 ``HTTPForbidden`` fault; on a shared network it is allowed.
    """
    conn, admin = l3.conn, net.sdk("nubis-admin")
    assert conn.network.get_network(l3.ext_id).is_router_external
    with pytest.raises(openstack.exceptions.ForbiddenException) as refused:
        conn.network.create_port(network_id=l3.ext_id)
    assert refused.value.status_code == 403
    project = conn.current_project_id
    r = net.http("POST", "/ports", net.token(), json={"port": {"network_id": l3.ext_id}})
    assert _fault(r) == (403, "HTTPForbidden")
    assert r.json()["NeutronError"]["message"] == (
        f"Tenant {project} not allowed to create port on this network")
    assert not list(conn.network.ports(network_id=l3.ext_id))
    # The L3 calls still make their ports on it; the admin may add one itself.
    fip = conn.network.create_ip(floating_network_id=l3.ext_id)
    assert fip.floating_ip_address.startswith("203.0.113.")
    own = admin.network.create_port(network_id=l3.ext_id)
    admin.network.delete_port(own)
    # A shared network (the admin's) takes the demo project's ports.
    shared = admin.network.create_network(name=_name("shared"), is_shared=True)
    try:
        admin.network.create_subnet(network_id=shared.id, ip_version=4, cidr="10.45.0.0/24",
                                    is_dhcp_enabled=False)
        port = conn.network.create_port(network_id=shared.id)
        assert port.project_id == project
        conn.network.delete_port(port)
    finally:
        admin.network.delete_network(shared.id)


def test_extra_routes(net: NetCloud, l3: L3) -> None:
    """``openstack router set --route/--no-route``, ``router add/remove route``; the checks."""
    name = _name("r")
    router = net.osc("router", "create", name, "-f", "json")
    token = net.token()

    def put(path: str, body: object) -> tuple[int, str]:
        return _fault(net.http("PUT", f"/routers/{router['id']}{path}", token, json=body))

    def routes() -> list[tuple[str, str]]:
        shown = net.http("GET", f"/routers/{router['id']}", token).json()["router"]
        return [(r["destination"], r["nexthop"]) for r in shown["routes"]]

    # the next hop must be on a subnet the router has a port on
    assert put("", {"router": {"routes": [{"destination": "10.55.0.0/24",
                                           "nexthop": "10.44.0.5"}]}}) == (400, "InvalidRoutes")
    net.osc("router", "add", "subnet", name, l3.subnet_id)
    net.osc("router", "set", "--route", "destination=10.55.0.0/24,gateway=10.44.0.5", name)
    net.osc("router", "add", "route", "--route", "destination=10.66.0.0/24,gateway=10.44.0.6",
            name)
    assert routes() == [("10.55.0.0/24", "10.44.0.5"), ("10.66.0.0/24", "10.44.0.6")]
    for bad, expected in (
            ([{"destination": "10.77.0.0/24", "nexthop": "10.44.0.1"}],  # the router's own
             (400, "InvalidRoutes")),
            ([{"destination": "10.77.0.0/24", "nexthop": "192.0.2.1"}], (400, "InvalidRoutes")),
            ([{"destination": "not-a-cidr", "nexthop": "10.44.0.5"}], (400, "HTTPBadRequest")),
            ([{"destination": "10.77.0.0/24", "nexthop": "nowhere"}], (400, "HTTPBadRequest")),
            ([{"destination": "10.77.0.0/24"}], (400, "HTTPBadRequest")),
            ([{"destination": f"10.{i}.0.0/24", "nexthop": "10.44.0.5"} for i in range(31)],
             (400, "RoutesExhausted"))):
        assert put("", {"router": {"routes": bad}}) == expected, bad
    r = net.http("PUT", f"/routers/{router['id']}", token, json={"router": {"routes": [
        {"destination": "10.77.0.0/24", "nexthop": "nowhere"}]}})
    assert "Invalid input for routes" in r.json()["NeutronError"]["message"]
    assert _fault(net.http("POST", "/routers", token, json={"router": {
        "name": _name("r"), "routes": []}})) == (400, "HTTPBadRequest")
    # the interface a route goes through cannot go
    r = net.http("PUT", f"/routers/{router['id']}/remove_router_interface", token,
                 json={"subnet_id": l3.subnet_id})
    assert _fault(r) == (409, "RouterInterfaceInUseByRoute")
    net.osc("router", "remove", "route", "--route",
            "destination=10.55.0.0/24,gateway=10.44.0.5", name)
    assert routes() == [("10.66.0.0/24", "10.44.0.6")]
    net.osc("router", "set", "--no-route", name)
    assert routes() == []
    net.osc("router", "remove", "subnet", name, l3.subnet_id)
    net.osc("router", "delete", router["id"])
    exts = {e["alias"] for e in net.http("GET", "/extensions", token).json()["extensions"]}
    assert {"extraroute", "extraroute-atomic"} <= exts
