"""Guests on tenant networks: DHCP lease, metadata, ping from the DHCP namespace, cleanup.

A whole ``nubis up`` cloud (QEMU/TCG guests of the test image). The only traffic is
between the guest and the DHCP namespace of its subnet, over the network's bridge;
the root namespace has no address on it. Deleting the server removes its port and
its tap.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from nubis.common import netdev
from pyroute2 import IPRoute

from nubis.testimage.initramfs import IP_LINE, METADATA_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for
from tests.probe.network.test_guest_floating_ip import _console, _ping_from

pytestmark = pytest.mark.probe


def _links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _settled(log: str) -> str | None:
    """Return the console once the guest has reported its network (either way)."""
    done = (METADATA_LINE, "nubis-test-image metadata:", f"{IP_LINE}none")
    return log if any(d in log for d in done) else None


def test_server_on_private_network_gets_lease_and_metadata(compute: ComputeCloud) -> None:
    conn = compute.sdk("nubis-demo")
    private = conn.network.find_network("private")
    assert private is not None
    server = compute.osc("server", "create", "--image", "nubis-test", "--flavor", "m1.nano",
                         "--network", "private", "--wait", "netvm1", "-f", "json",
                         cloud="nubis-demo")
    assert server["status"] == "ACTIVE"
    ports = list(conn.network.ports(device_id=server["id"]))
    assert len(ports) == 1 and ports[0].device_owner == "compute:nova"
    ip = ports[0].fixed_ips[0]["ip_address"]
    tap = netdev.tap_name(ports[0].id)
    icmp = None
    try:
        shown = compute.osc("server", "show", "netvm1", "-f", "json", cloud="nubis-demo")
        assert ip in str(shown["addresses"])
        assert tap in _links()
        log = wait_for(lambda: _settled(_console(compute, "netvm1")),
                       "the guest's DHCP lease and metadata lines")
        assert f"{IP_LINE}{ip}" in log, log[-2000:]
        assert f"{METADATA_LINE}{server['id']}" in log, log[-2000:]
        # The guest answers ping from its subnet's DHCP namespace (not a member of the
        # default group, so only once the group lets ICMP in).
        default = next(conn.network.security_groups(name="default",
                                                    project_id=conn.current_project_id))
        icmp = conn.network.create_security_group_rule(
            security_group_id=default.id, direction="ingress", ethertype="IPv4",
            protocol="icmp", remote_ip_prefix="0.0.0.0/0")
        subnet_id = ports[0].fixed_ips[0]["subnet_id"]
        ns_name = netdev.dhcp_names(subnet_id)[0]
        # The agent applies the new rule at its next pass (every 2 s, later under load).
        wait_for(lambda: _ping_from(ns_name, ip), "the guest to answer ping", bound=120)
        # The root namespace has no address or route into the tenant network.
        routes = subprocess.run(["ip", "-4", "route", "get", ip], capture_output=True,
                                text=True, timeout=10, check=False).stdout
        assert netdev.bridge_name(private.id) not in routes
    finally:
        if icmp is not None:
            conn.network.delete_security_group_rule(icmp)
        compute.osc("server", "delete", "--wait", "netvm1", cloud="nubis-demo")
    assert not list(conn.network.ports(device_id=server["id"]))
    wait_for(lambda: tap not in _links(), "the guest's tap to go")
    assert not re.search(tap, " ".join(_links()))
