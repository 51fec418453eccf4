"""The network agent against a real network API: bridges, DHCP namespaces, dnsmasq.

Everything is created by the test (through the API and the agent) and removed by
the agent's teardown; the checks read netlink, /proc and the namespaces only. The
only traffic is a ping inside a namespace the test creates, to the DHCP namespace,
over the agent's bridge (no root-namespace address is involved).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nubis.common import netdev
from nubis.daemons.network import dhcp, linux
from nubis.daemons.network.agent import NetworkAgent
from nubis.daemons.network.config import NetworkAgentConfig
from pyroute2 import IPRoute, NetNS, netns

from tests.functional.identity.server import ApiServer
from tests.functional.network.conftest import NetCloud
from tests.ports import free_port

pytestmark = pytest.mark.probe
TOKEN = "agent-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetCloud]:
    from nubis.bootstrap import bootstrap_identity
    from nubis.settings import load_config

    server = ApiServer(tmp_path_factory.mktemp("agent"), free_port(),
                       f'[network_api]\nagent_token = "{TOKEN}"\n')
    server.state.mkdir(parents=True, exist_ok=True)
    server.write_config()
    bootstrap_identity(load_config(server.config_path), server.state,
                       ["/identity", "/network"], False)
    server.start()
    try:
        yield NetCloud(server)
    finally:
        server.stop()


def _agent(cloud: NetCloud, root: Path) -> NetworkAgent:
    token = (cloud.server.state / "compute" / "service_token").read_text().strip()
    cfg = NetworkAgentConfig(network_url=f"{cloud.server.url}/network", agent_token=TOKEN,
                             compute_url=f"{cloud.server.url}/compute", compute_token=token)
    return NetworkAgent(cfg, root, teardown_on_close=True)


async def _metadata_get(namespace: str, loop: asyncio.AbstractEventLoop) -> bytes:
    """GET meta_data.json from the metadata address, from inside ``namespace``."""
    sock = await asyncio.to_thread(_connect_in, namespace)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(4096), 30)
    writer.close()
    return data


def _connect_in(namespace: str) -> socket.socket:
    netns.pushns(namespace)
    try:
        sock = socket.create_connection((linux.METADATA_IP, 80), timeout=10)
    finally:
        netns.popns()
    sock.setblocking(False)
    return sock


def _links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _root_addresses(ifname: str) -> list[str]:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        return [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx[0])] if idx else []


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop per test (the agent's HTTP client pools connections on it)."""
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


def test_agent_builds_and_removes_dhcp(cloud: NetCloud, tmp_path: Path,
                                       loop: asyncio.AbstractEventLoop) -> None:
    conn = cloud.sdk()
    net = conn.network.create_network(name="agent-net")
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.77.0.0/24")
    port = conn.network.create_port(network_id=net.id, device_owner="compute:nova",
                                    device_id=str(uuid.uuid4()))
    bridge = netdev.bridge_name(net.id)
    ns_name, root_if, ns_if = netdev.dhcp_names(sub.id)
    agent = _agent(cloud, tmp_path / "network")
    test_ns = f"nubis-test-{uuid.uuid4().hex[:8]}"
    test_if = f"nbt{uuid.uuid4().hex[:8]}"
    try:
        stats = loop.run_until_complete(agent.run_once())
        assert stats["started"] == 1
        assert {bridge, root_if} <= _links()
        assert _root_addresses(bridge) == [] and _root_addresses(root_if) == []
        assert ns_name in netns.listnetns()
        with NetNS(ns_name) as ns:
            idx = ns.link_lookup(ifname=ns_if)[0]
            addrs = {a.get_attr("IFA_ADDRESS") for a in ns.get_addr(index=idx, family=2)}
        assert addrs == {"10.77.0.2", linux.METADATA_IP}
        work = tmp_path / "network" / "dhcp" / sub.id
        ip = port.fixed_ips[0]["ip_address"]
        assert (work / "hosts").read_text() == (
            f"{port.mac_address},host-{ip.replace('.', '-')},{ip}\n")
        assert dhcp.stale_pid(work) is not None
        # A test namespace on the bridge with the port's address reaches the DHCP server.
        netns.create(test_ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=test_if, kind="veth", peer=test_if + "p")
            a = ipr.link_lookup(ifname=test_if)[0]
            b = ipr.link_lookup(ifname=test_if + "p")[0]
            netdev.disable_ipv6(test_if)
            ipr.link("set", index=a, master=ipr.link_lookup(ifname=bridge)[0], state="up")
            ipr.link("set", index=b, net_ns_fd=test_ns)
        with NetNS(test_ns) as ns:
            idx = ns.link_lookup(ifname=test_if + "p")[0]
            ns.link("set", index=idx, address=port.mac_address, state="up")
            ns.addr("add", index=idx, address=ip, prefixlen=24)
        ping = subprocess.run(["ping", "-c", "1", "-W", "2", "10.77.0.2"], timeout=30,
                              preexec_fn=lambda: netns.setns(test_ns), capture_output=True,
                              check=False)
        assert ping.returncode == 0, ping.stdout
        # The metadata proxy answers the port's address (relayed to the compute API,
        # which has no such instance: its 404 comes back).
        with NetNS(test_ns) as ns:
            idx = ns.link_lookup(ifname=test_if + "p")[0]
            ns.route("add", dst=f"{linux.METADATA_IP}/32", gateway="10.77.0.2", oif=idx)
        status = loop.run_until_complete(_metadata_get(test_ns, loop))
        assert status.startswith(b"HTTP/1.1 404"), status
        # A new port appears in the hosts file (dnsmasq reloaded, not restarted).
        second = conn.network.create_port(network_id=net.id)
        stats = loop.run_until_complete(agent.run_once())
        assert stats["reloaded"] == 1 and stats["started"] == 0
        assert second.mac_address in (work / "hosts").read_text()
        # The subnet and network go: so do the namespace, veth, bridge and dnsmasq.
        pid = dhcp.stale_pid(work)
        for p in (port, second):
            conn.network.delete_port(p)
        netdev.delete_link(test_if)
        conn.network.delete_network(net)
        stats = loop.run_until_complete(agent.run_once())
        assert stats["removed"] == 2
        assert ns_name not in netns.listnetns()
        assert not {bridge, root_if} & _links()
        assert pid is not None and not Path(f"/proc/{pid}").exists()
    finally:
        if test_ns in netns.listnetns():
            netns.remove(test_ns)
        netdev.delete_link(test_if)
        loop.run_until_complete(agent.teardown())
    assert not {bridge, root_if} & _links() and ns_name not in netns.listnetns()


def test_restart_adopts_and_teardown_removes_everything(
        cloud: NetCloud, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    conn = cloud.sdk()
    net = conn.network.create_network(name="agent-restart")
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.78.0.0/24")
    root = tmp_path / "network"
    ns_name, root_if, _ = netdev.dhcp_names(sub.id)
    first = _agent(cloud, root)
    try:
        loop.run_until_complete(first.run_once())
        old = dhcp.stale_pid(root / "dhcp" / sub.id)
        assert old is not None
        # A second agent (as after a crash: the first one's sockets are gone, its
        # dnsmasq is not) takes over: the old dnsmasq is replaced.
        assert first.proxy is not None
        loop.run_until_complete(first.proxy.stop_all())
        second = _agent(cloud, root)
        loop.run_until_complete(second.run_once())
        new = dhcp.stale_pid(root / "dhcp" / sub.id)
        assert new is not None and new != old
        loop.run_until_complete(second.close())
        assert ns_name not in netns.listnetns()
        assert not {netdev.bridge_name(net.id), root_if} & _links()
        assert dhcp.stale_pid(root / "dhcp" / sub.id) is None
    finally:
        loop.run_until_complete(first.teardown())
        conn.network.delete_network(net)


def test_same_cidr_in_two_projects_stays_apart(cloud: NetCloud, tmp_path: Path,
                                               loop: asyncio.AbstractEventLoop) -> None:
    demo = cloud.sdk()
    admin = cloud.sdk("nubis-admin")
    other = admin.identity.create_project(name=f"iso-{uuid.uuid4().hex[:6]}",
                                          domain_id="default")
    nets = []
    for project in (demo.current_project_id, other.id):
        net = admin.network.create_network(name="iso", project_id=project)
        admin.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.80.0.0/24",
                                    project_id=project)
        nets.append(net)
    ports = [admin.network.create_port(network_id=n.id) for n in nets]
    dhcp_macs = [next(p.mac_address for p in admin.network.ports(network_id=n.id)
                      if p.device_owner == "network:dhcp") for n in nets]
    agent = _agent(cloud, tmp_path / "network")
    test_ns = f"nubis-test-{uuid.uuid4().hex[:8]}"
    test_if = f"nbt{uuid.uuid4().hex[:8]}"
    try:
        loop.run_until_complete(agent.run_once())
        bridges = [netdev.bridge_name(n.id) for n in nets]
        assert set(bridges) <= _links() and bridges[0] != bridges[1]
        # A namespace on the first project's bridge reaches that project's 10.80.0.2 only.
        netns.create(test_ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=test_if, kind="veth", peer=test_if + "p")
            a = ipr.link_lookup(ifname=test_if)[0]
            netdev.disable_ipv6(test_if)
            ipr.link("set", index=a, master=ipr.link_lookup(ifname=bridges[0])[0], state="up")
            ipr.link("set", index=ipr.link_lookup(ifname=test_if + "p")[0], net_ns_fd=test_ns)
        ip = ports[0].fixed_ips[0]["ip_address"]
        with NetNS(test_ns) as ns:
            idx = ns.link_lookup(ifname=test_if + "p")[0]
            ns.link("set", index=idx, address=ports[0].mac_address, state="up")
            ns.addr("add", index=idx, address=ip, prefixlen=24)
        ping = subprocess.run(["ping", "-c", "1", "-W", "2", "10.80.0.2"], timeout=30,
                              preexec_fn=lambda: netns.setns(test_ns), capture_output=True,
                              check=False)
        assert ping.returncode == 0, ping.stdout
        with NetNS(test_ns) as ns:
            seen = {n.get_attr("NDA_LLADDR") for n in ns.get_neighbours(family=2)
                    if n.get_attr("NDA_DST") == "10.80.0.2"}
        assert seen == {dhcp_macs[0]}
    finally:
        if test_ns in netns.listnetns():
            netns.remove(test_ns)
        netdev.delete_link(test_if)
        loop.run_until_complete(agent.teardown())
        for p in ports:
            admin.network.delete_port(p)
        for n in nets:
            admin.network.delete_network(n)
        admin.identity.delete_project(other)
    assert not {netdev.bridge_name(n.id) for n in nets} & _links()
