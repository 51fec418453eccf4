"""Routers built by the network agent: floating IP DNAT, SNAT, disassociation, cleanup.

A real ``nubis api`` and the agent; the "guest" is a namespace the test makes, on the
tenant network's bridge with its port's MAC and address. Pings run only between the
test's namespace and the agent's external namespace, through the router namespace;
the root namespace has no address or route on either bridge.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openstack
import pytest
from nubis.common import netdev
from nubis.daemons.network import router
from pyroute2 import IPRoute, NetNS, netns

from tests.functional.network.conftest import NetCloud
from tests.probe.network.test_agent import _agent, _links, cloud, loop  # noqa: F401

pytestmark = pytest.mark.probe


def _ping(namespace: str, address: str, count: int = 1) -> bool:
    proc = subprocess.run(["ping", "-c", str(count), "-W", "2", address], timeout=30,
                          preexec_fn=lambda: netns.setns(namespace), capture_output=True,
                          check=False)
    return proc.returncode == 0


def _nft(namespace: str) -> str:
    return subprocess.run(["nft", "list", "ruleset"], timeout=30, capture_output=True,
                          text=True, check=True,
                          preexec_fn=lambda: netns.setns(namespace)).stdout


def _extra_routes(namespace: str) -> list[tuple[str, str]]:
    """Return the extra routes the agent put in a router namespace."""
    with NetNS(namespace) as ns:
        return [(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"))
                for r in ns.route("dump", family=socket.AF_INET)
                if r["proto"] == router.RTPROT_EXTRA]


@dataclass
class Guestish:
    """The test's namespace standing in for a guest."""

    ns: str
    veth: str


@pytest.fixture
def fake_guest() -> Iterator[Guestish]:
    g = Guestish(f"nubis-test-{uuid.uuid4().hex[:8]}", f"nbt{uuid.uuid4().hex[:8]}")
    try:
        yield g
    finally:
        if g.ns in netns.listnetns():
            netns.remove(g.ns)
        netdev.delete_link(g.veth)


def _plug_guest(g: Guestish, bridge: str, mac: str, ip: str, gateway: str) -> None:
    netns.create(g.ns)
    with IPRoute() as ipr:
        ipr.link("add", ifname=g.veth, kind="veth", peer=g.veth + "p")
        netdev.disable_ipv6(g.veth)
        ipr.link("set", index=ipr.link_lookup(ifname=g.veth)[0],
                 master=ipr.link_lookup(ifname=bridge)[0], state="up")
        ipr.link("set", index=ipr.link_lookup(ifname=g.veth + "p")[0], net_ns_fd=g.ns)
    with NetNS(g.ns) as ns:
        idx = ns.link_lookup(ifname=g.veth + "p")[0]
        ns.link("set", index=idx, address=mac, state="up")
        ns.addr("add", index=idx, address=ip, prefixlen=24)
        ns.route("add", dst="0.0.0.0", dst_len=0, gateway=gateway, oif=idx)


def _cleanup(admin: openstack.connection.Connection, rid: str, sub_id: str,
             ids: list[str]) -> None:
    for fip in admin.network.ips():
        if fip.router_id == rid or fip.floating_network_id == ids[0]:
            admin.network.delete_ip(fip)
    if admin.network.find_router(rid) is not None:
        if list(admin.network.ports(device_id=rid, device_owner="network:router_interface")):
            admin.network.remove_interface_from_router(rid, subnet=sub_id)
        admin.network.delete_router(rid)
    for port in admin.network.ports(network_id=ids[1]):
        if port.device_owner != "network:dhcp":
            admin.network.delete_port(port)
    for net_id in reversed(ids):
        admin.network.delete_network(net_id)


def test_floating_ip_dnat_snat_and_teardown(cloud: NetCloud, tmp_path: Path,  # noqa: F811
                                            loop: asyncio.AbstractEventLoop,  # noqa: F811
                                            fake_guest: Guestish) -> None:
    admin, conn = cloud.sdk("nubis-admin"), cloud.sdk()
    ext = admin.network.create_network(name="ext-probe", is_router_external=True,
                                       provider_network_type="flat")
    admin.network.create_subnet(network_id=ext.id, ip_version=4, cidr="198.51.100.0/24",
                                is_dhcp_enabled=False)
    net = conn.network.create_network(name="l3-probe")
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.90.0.0/24")
    port = conn.network.create_port(network_id=net.id, device_owner="compute:nova",
                                    device_id=str(uuid.uuid4()))
    r = conn.network.create_router(name="r-probe",
                                   external_gateway_info={"network_id": ext.id})
    agent = _agent(cloud, tmp_path / "network")
    ext_ns = router.external_names(ext.id)[0]
    r_ns = router.router_namespace(r.id)
    try:
        conn.network.add_interface_to_router(r, subnet=sub.id)
        fip = conn.network.create_ip(floating_network_id=ext.id, port_id=port.id)
        loop.run_until_complete(agent.run_once())
        assert {ext_ns, r_ns} <= set(netns.listnetns())
        gw_ip = conn.network.get_router(r.id).external_gateway_info[
            "external_fixed_ips"][0]["ip_address"]
        fixed = port.fixed_ips[0]["ip_address"]
        _plug_guest(fake_guest, netdev.bridge_name(net.id), port.mac_address, fixed,
                    "10.90.0.1")
        # The external side reaches the guest by its floating IP (DNAT), and the guest
        # reaches the external side (SNAT to the floating IP: no route back to 10.90/24).
        assert _ping(ext_ns, fip.floating_ip_address, 2)
        assert _ping(fake_guest.ns, "198.51.100.1", 2)
        # Hairpin: from behind the router, the floating IP answers too (here the
        # guest's own: DNAT to it, SNAT to the gateway address, back the same way).
        assert _ping(fake_guest.ns, fip.floating_ip_address, 2)
        rules = _nft(r_ns)
        assert f"dnat to {fixed}" in rules and f"snat to {fip.floating_ip_address}" in rules
        assert f"snat to {gw_ip}" in rules
        # Forwarding is on inside the router only; the root has no address on the bridges.
        for bridge in (netdev.bridge_name(ext.id), netdev.bridge_name(net.id)):
            with IPRoute() as ipr:
                idx = ipr.link_lookup(ifname=bridge)[0]
                assert not ipr.get_addr(index=idx)
        # Disassociated: the floating IP stops answering; the guest still gets out via
        # the router's SNAT to its gateway address.
        conn.network.update_ip(fip, port_id=None)
        loop.run_until_complete(agent.run_once())
        assert not _ping(ext_ns, fip.floating_ip_address)
        assert f"dnat to {fixed}" not in _nft(r_ns)
        assert _ping(fake_guest.ns, "198.51.100.1")
        # An extra route with the guest as next hop: the router reaches what is behind it.
        with NetNS(fake_guest.ns) as ns:
            ns.addr("add", index=ns.link_lookup(ifname=fake_guest.veth + "p")[0],
                    address="10.91.0.1", prefixlen=32)
        assert not _ping(r_ns, "10.91.0.1")
        conn.network.update_router(r, routes=[{"destination": "10.91.0.0/24",
                                               "nexthop": fixed}])
        loop.run_until_complete(agent.run_once())
        assert _ping(r_ns, "10.91.0.1")
        assert _extra_routes(r_ns) == [("10.91.0.0/24", fixed)]
        conn.network.update_router(r, routes=[])
        loop.run_until_complete(agent.run_once())
        assert _extra_routes(r_ns) == [] and not _ping(r_ns, "10.91.0.1")
        # This router's legs and this external network's far end (other clouds on the
        # machine, e.g. a CI run's compute cloud, have their own nrt-/nxe- links).
        ours = {router.ROUTER_VETH_PREFIX + p.id.replace("-", "")[:11]
                for p in admin.network.ports(device_id=r.id)}
        ours.add(router.external_names(ext.id)[1])
        assert len(ours) >= 3 and ours <= _links()  # interface, gateway, external far end
        # A restarted agent rebuilds the same; teardown removes every namespace and link.
        assert agent.proxy is not None
        loop.run_until_complete(agent.proxy.stop_all())
        fresh = _agent(cloud, tmp_path / "network")
        loop.run_until_complete(fresh.run_once())
        assert f"snat to {gw_ip}" in _nft(r_ns)
        loop.run_until_complete(fresh.teardown())
        assert not {ext_ns, r_ns} & set(netns.listnetns())
        assert not ours & _links()
    finally:
        loop.run_until_complete(agent.teardown())
        _cleanup(admin, r.id, sub.id, [ext.id, net.id])
    assert not {ext_ns, r_ns} & set(netns.listnetns())
    assert not {netdev.bridge_name(ext.id), netdev.bridge_name(net.id)} & _links()
