"""Security groups enforced by the network agent's nftables tables, on real bridge ports.

Two stand-in guests: namespaces the test creates, each joined to the network's
bridge by a veth whose root end carries the port's tap name (what the agent's rules
match, as for a QEMU guest's tap) and whose inner end carries the port's MAC and
fixed IP. So the traffic crosses the same bridge, ``br_netfilter`` conntrack and
nftables chains a guest's would; it stays inside the test's namespaces and the
agent's bridge. The guests under QEMU are in ``test_guest_secgroups.py``.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nubis.common import netdev
from pyroute2 import IPRoute, NetNS, netns

from tests.functional.network.conftest import NetCloud
from tests.probe.network.test_agent import _agent, cloud, loop  # noqa: F401 (fixtures)

pytestmark = pytest.mark.probe
CIDR = "10.81.0.0/24"

LISTEN = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept()
c.sendall(b"hello")
c.close()
"""
CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(c.recv(5).decode())
except OSError as exc:
    print("failed", exc)
"""
OFFER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("0.0.0.0", 67))
s.sendto(b"not really an offer", ("10.81.0.255", 68))
"""


ECHO = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
s.settimeout(60)
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(60)
while data := c.recv(64):
    c.sendall(data)
"""
TALK = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
for line in sys.stdin:
    c.settimeout(3)
    try:
        c.sendall(line.strip().encode())
        print(c.recv(64).decode() or "closed", flush=True)
    except OSError as exc:
        print("failed", type(exc).__name__, flush=True)
"""


class Guest:
    """A namespace on the bridge standing in for the guest of one port."""

    def __init__(self, port: Any, bridge: str) -> None:
        self.port = port
        self.ns = f"nubis-sgt-{uuid.uuid4().hex[:8]}"
        self.tap = netdev.tap_name(port.id)
        self.inner = "eth0"
        self.ip = port.fixed_ips[0]["ip_address"]
        netns.create(self.ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.tap, kind="veth", peer="sgtpeer" + self.tap[3:8])
            netdev.disable_ipv6(self.tap)
            ipr.link("set", index=ipr.link_lookup(ifname=self.tap)[0],
                     master=ipr.link_lookup(ifname=bridge)[0], state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="sgtpeer" + self.tap[3:8])[0],
                     net_ns_fd=self.ns)
        with NetNS(self.ns) as ns:
            idx = ns.link_lookup(ifname="sgtpeer" + self.tap[3:8])[0]
            ns.link("set", index=idx, ifname=self.inner, address=port.mac_address, state="up")
            ns.addr("add", index=idx, address=self.ip, prefixlen=24)

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the guest's namespace."""
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False, preexec_fn=lambda: netns.setns(self.ns))

    def pings(self, ip: str, source: str | None = None) -> bool:
        """Return whether one ping from here to ``ip`` is answered."""
        extra = ["-I", source] if source else []
        return self.run("ping", "-c", "1", "-W", "2", *extra, ip).returncode == 0

    def set_mac(self, mac: str) -> None:
        """Change the inner interface's MAC (spoofing)."""
        with NetNS(self.ns) as ns:
            ns.link("set", index=ns.link_lookup(ifname=self.inner)[0], address=mac)

    def add_address(self, ip: str) -> None:
        """Give the inner interface one more address."""
        with NetNS(self.ns) as ns:
            ns.addr("add", index=ns.link_lookup(ifname=self.inner)[0], address=ip, prefixlen=24)

    def flush_neighbours(self) -> None:
        """Forget learnt MACs (so the next packet needs ARP again)."""
        self.run("ip", "neigh", "flush", "all")

    def remove(self) -> None:
        """Delete the namespace and the root end of the veth."""
        if self.ns in netns.listnetns():
            netns.remove(self.ns)
        netdev.delete_link(self.tap)


def _tcp(server: Guest, client: Guest, port: int) -> str:
    """Listen in ``server`` on ``port``, connect from ``client``; return what it read."""
    listener = subprocess.Popen([sys.executable, "-c", LISTEN, str(port)],
                                stdout=subprocess.PIPE, text=True,
                                preexec_fn=lambda: netns.setns(server.ns))
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
        return client.run(sys.executable, "-c", CONNECT, server.ip, str(port)).stdout.strip()
    finally:
        listener.kill()
        listener.wait(timeout=30)


@pytest.fixture
def guests(cloud: NetCloud,  # noqa: F811
           loop: asyncio.AbstractEventLoop) -> Iterator[tuple[Any, Any, list[Guest], Any]]:  # noqa: F811
    """A network, a group allowing ICMP and TCP 8000-8100 in, two ports, two guests."""
    conn = cloud.sdk()
    net = conn.network.create_network(name="sg-net")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr=CIDR)
    group = conn.network.create_security_group(name=f"sg-{uuid.uuid4().hex[:6]}")
    for proto, low, high in (("icmp", None, None), ("tcp", 8000, 8100)):
        conn.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ethertype="IPv4",
            protocol=proto, port_range_min=low, port_range_max=high,
            remote_ip_prefix="0.0.0.0/0")
    ports = [conn.network.create_port(network_id=net.id, device_owner="compute:nova",
                                      device_id=str(uuid.uuid4()), security_groups=[group.id])
             for _ in range(2)]
    # dnsmasq reads its hosts file as an unprivileged user: not under pytest's 0700 tmp.
    top = Path(tempfile.mkdtemp(prefix="nubis-sg-", dir="/var/tmp"))
    top.chmod(0o711)
    agent = _agent(cloud, top / "network")
    made: list[Guest] = []
    try:
        loop.run_until_complete(agent.run_once())
        bridge = netdev.bridge_name(net.id)
        made += [Guest(p, bridge) for p in ports]
        yield conn, agent, made, group
    finally:
        for g in made:
            g.remove()
        loop.run_until_complete(agent.teardown())
        for p in ports:
            conn.network.delete_port(p)
        conn.network.delete_network(net)
        conn.network.delete_security_group(group)
        shutil.rmtree(top, ignore_errors=True)
    assert agent.firewall.exists() == []
    assert not {g.tap for g in made} & set(netdev.links_with_prefix((netdev.TAP_PREFIX,)))


def _drops(agent: Any, chain: str, rule: str = "") -> int:
    """Return the packets counted by a chain's final drop rule (or the one starting ``rule``)."""
    out = subprocess.run(["nft", "list", "chain", "bridge", agent.firewall.tables.sg, chain],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    start = rule or "counter packets"
    found = [line.strip() for line in out.splitlines() if line.strip().startswith(start)]
    return int(found[-1].split("counter packets ")[1].split()[0])


def test_rules_follow_the_api(guests: tuple[Any, Any, list[Guest], Any],
                              loop: asyncio.AbstractEventLoop) -> None:  # noqa: F811
    conn, agent, (g1, g2), group = guests
    assert agent.firewall.exists() == [f"ip {agent.firewall.tables.ct}",
                                       f"bridge {agent.firewall.tables.sg}"]
    assert g1.pings(g2.ip) and g2.pings(g1.ip)
    # TCP: inside the group's 8000-8100 range answered (the replies reach g1's
    # ephemeral port only as an established connection); outside it dropped.
    assert _tcp(g2, g1, 8080) == "hello"
    assert _tcp(g2, g1, 9090).startswith("failed")
    # Removing the ICMP ingress rule stops ping (counted by g2's ingress drop) ...
    icmp = next(r for r in conn.network.security_group_rules(security_group_id=group.id)
                if r.protocol == "icmp")
    conn.network.delete_security_group_rule(icmp)
    assert loop.run_until_complete(agent.run_once())["firewall"] == 1
    before = _drops(agent, f"i_{g2.tap}")
    assert not g1.pings(g2.ip)
    assert _drops(agent, f"i_{g2.tap}") > before
    assert not g2.pings(g1.ip)  # g1 has the same group: no ICMP in either way
    # Adding it back restores it.
    conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", ethertype="IPv4", protocol="icmp",
        remote_ip_prefix="0.0.0.0/0")
    loop.run_until_complete(agent.run_once())
    assert g1.pings(g2.ip) and g2.pings(g1.ip)
    # An unchanged state is not re-applied.
    assert loop.run_until_complete(agent.run_once())["firewall"] == 0


def test_a_removed_rule_cuts_the_connections_it_let_in(
        guests: tuple[Any, Any, list[Guest], Any],
        loop: asyncio.AbstractEventLoop) -> None:  # noqa: F811
    """As Neutron: the established connections a rule admitted end with the rule."""
    conn, agent, (g1, g2), group = guests
    server = subprocess.Popen([sys.executable, "-c", ECHO, "8090"], stdout=subprocess.PIPE,
                              text=True, preexec_fn=lambda: netns.setns(g2.ns))
    client = None
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        client = subprocess.Popen([sys.executable, "-c", TALK, g2.ip, "8090"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  preexec_fn=lambda: netns.setns(g1.ns))
        assert client.stdin is not None and client.stdout is not None

        def say(word: str) -> str:
            assert client is not None and client.stdin is not None
            assert client.stdout is not None
            client.stdin.write(word + "\n")
            client.stdin.flush()
            return client.stdout.readline().strip()

        assert say("one") == "one"
        rules = list(conn.network.security_group_rules(security_group_id=group.id))
        # a rule the connection does not depend on goes: it lives on
        conn.network.delete_security_group_rule(next(r for r in rules if r.protocol == "icmp"))
        assert loop.run_until_complete(agent.run_once())["firewall"] == 1
        assert say("two") == "two"
        # the rule that let it in goes: its next packet is new, and dropped
        conn.network.delete_security_group_rule(next(r for r in rules if r.protocol == "tcp"))
        assert loop.run_until_complete(agent.run_once())["firewall"] == 1
        before = _drops(agent, f"i_{g2.tap}")
        assert say("three").startswith("failed")
        assert _drops(agent, f"i_{g2.tap}") > before
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=30)


def test_anti_spoofing_and_port_security(guests: tuple[Any, Any, list[Guest], Any],
                                         loop: asyncio.AbstractEventLoop) -> None:  # noqa: F811
    conn, agent, (g1, g2), group = guests
    assert g1.pings(g2.ip)
    # A source address that is not the port's: dropped at g1's egress.
    g1.add_address("10.81.0.200")
    assert not g1.pings(g2.ip, source="10.81.0.200")
    # Allowed as an address pair: passes.
    conn.network.update_port(g1.port, allowed_address_pairs=[{"ip_address": "10.81.0.200"}])
    loop.run_until_complete(agent.run_once())
    assert g1.pings(g2.ip, source="10.81.0.200")
    # Another MAC: nothing gets out (not even ARP).
    g1.set_mac("fa:16:3e:12:34:56")
    g1.flush_neighbours()
    assert not g1.pings(g2.ip)
    g1.set_mac(g1.port.mac_address)
    g1.flush_neighbours()
    assert g1.pings(g2.ip)
    # The default group: ingress only from its members.
    default = next(conn.network.security_groups(name="default",
                                                project_id=conn.current_project_id))
    conn.network.update_port(g2.port, security_groups=[default.id])
    loop.run_until_complete(agent.run_once())
    assert not g1.pings(g2.ip)
    conn.network.update_port(g1.port, security_groups=[group.id, default.id])
    loop.run_until_complete(agent.run_once())
    assert g1.pings(g2.ip)
    # Port security off: g2 is not filtered at all (a spoofed source gets out).
    conn.network.update_port(g2.port, security_groups=[], port_security_enabled=False)
    loop.run_until_complete(agent.run_once())
    assert f"e_{g2.tap}" not in subprocess.run(
        ["nft", "list", "table", "bridge", agent.firewall.tables.sg], capture_output=True,
        text=True, timeout=30, check=True).stdout
    g2.add_address("10.81.0.201")
    assert g2.pings(g1.ip, source="10.81.0.201")


def test_dhcp_passes_the_filter(guests: tuple[Any, Any, list[Guest], Any]) -> None:
    _conn, agent, (g1, _g2), _group = guests
    with NetNS(g1.ns) as ns:
        idx = ns.link_lookup(ifname=g1.inner)[0]
        ns.addr("del", index=idx, address=g1.ip, prefixlen=24)
    got = g1.run("busybox", "udhcpc", "-i", g1.inner, "-f", "-q", "-n", "-t", "10", "-T", "1",
                 "-s", "/bin/true", timeout=60)
    assert f"lease of {g1.ip} obtained" in got.stderr + got.stdout, got.stderr
    # A guest cannot answer as a DHCP server (counted by its egress chain).
    g1.add_address(g1.ip)
    before = _drops(agent, f"e_{g1.tap}", "udp sport 67")
    sent = g1.run(sys.executable, "-c", OFFER, timeout=30)
    assert sent.returncode == 0, sent.stderr
    assert _drops(agent, f"e_{g1.tap}", "udp sport 67") > before  # once per port flooded


def _lease(g: Guest) -> str:
    """Drop the guest's address and run one busybox udhcpc; return what it printed."""
    with NetNS(g.ns) as ns:
        idx = ns.link_lookup(ifname=g.inner)[0]
        ns.addr("del", index=idx, address=g.ip, prefixlen=24)
    got = g.run("busybox", "udhcpc", "-i", g.inner, "-f", "-q", "-n", "-t", "10", "-T", "1",
                "-s", "/bin/true", timeout=60)
    return got.stderr + got.stdout


def test_a_freed_address_leases_to_its_next_port(guests: tuple[Any, Any, list[Guest], Any],
                                                 loop: asyncio.AbstractEventLoop) -> None:  # noqa: F811
    conn, agent, (g1, _g2), group = guests
    assert f"lease of {g1.ip} obtained" in _lease(g1)
    # The port goes; later a new port (another MAC) gets the same address: dnsmasq would
    # still hold the old lease in memory, so the agent restarts it when a host goes.
    net_id, ip = g1.port.network_id, g1.ip
    g1.remove()
    conn.network.delete_port(g1.port)
    loop.run_until_complete(agent.run_once())  # the agent sees the port go first
    port = conn.network.create_port(network_id=net_id, device_owner="compute:nova",
                                    device_id=str(uuid.uuid4()), security_groups=[group.id],
                                    fixed_ips=[{"ip_address": ip}])
    g3 = None
    try:
        assert port.mac_address != g1.port.mac_address
        loop.run_until_complete(agent.run_once())
        g3 = Guest(port, netdev.bridge_name(net_id))
        assert f"lease of {ip} obtained" in _lease(g3)
    finally:
        if g3 is not None:
            g3.remove()
        conn.network.delete_port(port)
