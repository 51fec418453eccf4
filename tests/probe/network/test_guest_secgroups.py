"""Two QEMU guests on one network ping each other, as their security group allows.

Each guest's user_data names the other's address (``nubis-ping <ip>``); the test
image pings it every two seconds and prints ``ok``/``fail`` on its serial console
whenever the answer changes. So the check is the guests' own ICMP, guest tap to
guest tap across the network's bridge and the agent's nftables chains (nothing else
is on that path): removing the group's ICMP ingress rule turns both to ``fail``,
adding it back turns both to ``ok``. Traffic stays on the test's network's bridge.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from nubis.common import netdev
from pyroute2 import IPRoute

from nubis.testimage.initramfs import PING_LINE, PING_PEER
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = pytest.mark.probe


def _console(conn: Any, server: Any) -> str:
    out: str = conn.compute.get_server_console_output(server)["output"]
    return out


def _after(conn: Any, server: Any, line: str, marker: int) -> int | None:
    """Return the console offset of ``line`` once it appears after ``marker``."""
    log = _console(conn, server)
    at = log.find(line, marker)
    return at + len(line) if at >= 0 else None


def _taps() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


@pytest.mark.timeout(1200)  # two TCG boots and three phases on a loaded machine
def test_guests_ping_each_other_as_the_group_allows(compute: ComputeCloud) -> None:
    conn = compute.sdk("nubis-demo")
    image = conn.image.find_image("nubis-test")
    flavor = conn.compute.find_flavor("m1.nano")
    net = conn.network.create_network(name=f"sg-guests-{uuid.uuid4().hex[:6]}")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.82.0.0/24")
    group = conn.network.create_security_group(name=f"sg-ping-{uuid.uuid4().hex[:6]}")
    rule = conn.network.create_security_group_rule(
        security_group_id=group.id, direction="ingress", ethertype="IPv4", protocol="icmp",
        remote_ip_prefix="0.0.0.0/0")
    ports = [conn.network.create_port(network_id=net.id, security_groups=[group.id])
             for _ in range(2)]
    ips = [p.fixed_ips[0]["ip_address"] for p in ports]
    servers: list[Any] = []
    try:
        for i, port in enumerate(ports):
            user_data = f"{PING_PEER}{ips[1 - i]}\n".encode()
            servers.append(conn.compute.create_server(
                name=f"sgvm{i}", image_id=image.id, flavor_id=flavor.id,
                networks=[{"port": port.id}],
                user_data=base64.b64encode(user_data).decode()))
        for server in servers:
            conn.compute.wait_for_server(server, wait=300)
        lines = [f"{PING_LINE}{ips[1 - i]}" for i in range(2)]
        # Both reach each other (ICMP allowed in) ...
        marks = [wait_for(lambda s=s, line=line: _after(conn, s, f"{line} ok", 0),
                          f"{s.name} to ping its peer", bound=400)
                 for s, line in zip(servers, lines, strict=True)]
        # ... not once the ICMP ingress rule is gone ...
        conn.network.delete_security_group_rule(rule)
        marks = [wait_for(lambda s=s, line=line, m=m: _after(conn, s, f"{line} fail", m),
                          f"{s.name}'s ping to stop")
                 for s, line, m in zip(servers, lines, marks, strict=True)]
        # ... and again once it is back.
        conn.network.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ethertype="IPv4",
            protocol="icmp", remote_ip_prefix="0.0.0.0/0")
        for s, line, m in zip(servers, lines, marks, strict=True):
            wait_for(lambda s=s, line=line, m=m: _after(conn, s, f"{line} ok", m),
                     f"{s.name}'s ping to come back")
    finally:
        for server in servers:
            conn.compute.delete_server(server)
        for server in servers:
            conn.compute.wait_for_delete(server, wait=300)
        for port in ports:
            conn.network.delete_port(port, ignore_missing=True)
        conn.network.delete_network(net)
        conn.network.delete_security_group(group)
    taps = {netdev.tap_name(p.id) for p in ports}
    wait_for(lambda: not taps & _taps(), "the guests' taps to go")
