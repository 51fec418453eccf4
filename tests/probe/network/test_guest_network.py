"""One guest on the demo ``private`` network: lease, metadata, ping, SNAT, floating IP.

The whole ``nubis up`` cloud (its ``public`` network, ``router1`` and ``private``
network) with one QEMU/TCG guest of the test image, used for every check (one boot
instead of one per scenario: TCG boots dominate the probe suite's time):

* the guest gets its DHCP lease and its metadata, and answers ping from its subnet's
  DHCP namespace once the default group lets ICMP in; the root namespace has no
  address or route into the tenant network;
* SNAT: the guest's init pings the external network's far end (the agent's namespace,
  ``172.24.4.1``) named in its user_data and prints the result on its console;
* a floating IP answers ping from that external namespace while associated, and
  stops answering once removed;
* deleting the server removes its port and its tap.

No traffic leaves the namespaces and bridges of this cloud.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from nubis.common import netdev
from nubis.daemons.network import router
from pyroute2 import IPRoute, netns

from nubis.networkboot import PUBLIC_NETWORK
from nubis.testimage.initramfs import IP_LINE, METADATA_LINE, PING_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = [pytest.mark.probe, pytest.mark.timeout(1500)]
EXTERNAL_GATEWAY = "172.24.4.1"
NAME = "netvm1"


def _ping_from(namespace: str, address: str) -> bool:
    proc = subprocess.run(["ping", "-c", "1", "-W", "2", address], capture_output=True,
                          timeout=30, check=False, preexec_fn=lambda: netns.setns(namespace))
    return proc.returncode == 0


def _console(compute: ComputeCloud, name: str) -> str:
    out: str = compute.osc("console", "log", "show", name, cloud="nubis-demo").stdout
    return out


def _links() -> set[str]:
    with IPRoute() as ipr:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


def _settled(log: str) -> str | None:
    """Return the console once the guest has reported its ping (or has no lease)."""
    done = (PING_LINE, f"{IP_LINE}none")
    return log if any(d in log for d in done) else None


def _check_lease_metadata_snat(compute: ComputeCloud, server: dict[str, Any],
                               ip: str) -> None:
    log = wait_for(lambda: _settled(_console(compute, NAME)),
                   "the guest's lease, metadata and ping lines")
    assert f"{IP_LINE}{ip}" in log, log[-2000:]
    assert f"{METADATA_LINE}{server['id']}" in log, log[-2000:]
    # SNAT: the guest reaches the external namespace (which has no route to it).
    assert f"{PING_LINE}{EXTERNAL_GATEWAY}: ok" in log, log[-2000:]


def _check_dhcp_namespace_ping(port: Any, private: Any) -> None:
    ip = port.fixed_ips[0]["ip_address"]
    ns_name = netdev.dhcp_names(port.fixed_ips[0]["subnet_id"])[0]
    # The agent applies the new rule at its next pass (every 2 s, later under load).
    wait_for(lambda: _ping_from(ns_name, ip), "the guest to answer ping", bound=120)
    # The root namespace has no address or route into the tenant network.
    routes = subprocess.run(["ip", "-4", "route", "get", ip], capture_output=True,
                            text=True, timeout=10, check=False).stdout
    assert netdev.bridge_name(private.id) not in routes


def _check_floating_ip(compute: ComputeCloud, conn: Any, public: Any,
                       fip: dict[str, Any]) -> None:
    address = fip["floating_ip_address"]
    ext_ns = router.external_names(public.id)[0]
    # The CLI's `server add floating ip` (a port update through the network API).
    compute.osc("server", "add", "floating", "ip", NAME, address, cloud="nubis-demo")
    shown = compute.osc("server", "show", NAME, "-f", "json", cloud="nubis-demo")
    assert address in str(shown["addresses"])
    assert wait_for(lambda: _ping_from(ext_ns, address), "the floating IP to answer",
                    bound=120)
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=netdev.bridge_name(public.id))[0]
        assert not ipr.get_addr(index=idx)
    # Removed: the floating IP stops answering.
    compute.osc("server", "remove", "floating", "ip", NAME, address, cloud="nubis-demo")
    assert conn.network.get_ip(fip["id"]).port_id is None
    assert wait_for(lambda: not _ping_from(ext_ns, address), "the floating IP to go",
                    bound=120)


def test_guest_lease_metadata_snat_and_floating_ip(compute: ComputeCloud,
                                                  tmp_path: Path) -> None:
    conn = compute.sdk("nubis-demo")
    private = conn.network.find_network("private")
    public = conn.network.find_network(PUBLIC_NETWORK)
    assert private is not None
    assert public is not None and public.is_router_external
    user_data = tmp_path / "user_data"
    user_data.write_text(f"nubis-ping={EXTERNAL_GATEWAY}\n")
    fip = compute.osc("floating", "ip", "create", PUBLIC_NETWORK, "-f", "json",
                      cloud="nubis-demo")
    server = compute.osc("server", "create", "--image", "nubis-test", "--flavor", "m1.nano",
                         "--network", "private", "--user-data", str(user_data), "--wait",
                         NAME, "-f", "json", cloud="nubis-demo")
    icmp = None
    tap = None
    try:
        assert server["status"] == "ACTIVE"
        ports = list(conn.network.ports(device_id=server["id"]))
        assert len(ports) == 1 and ports[0].device_owner == "compute:nova"
        ip = ports[0].fixed_ips[0]["ip_address"]
        tap = netdev.tap_name(ports[0].id)
        shown = compute.osc("server", "show", NAME, "-f", "json", cloud="nubis-demo")
        assert ip in str(shown["addresses"])
        assert tap in _links()
        _check_lease_metadata_snat(compute, server, ip)
        # Ping in (from the DHCP namespace, then the external side) only once the
        # project's default group lets ICMP in (enforced on the guest's tap).
        default = next(conn.network.security_groups(name="default",
                                                    project_id=conn.current_project_id))
        icmp = conn.network.create_security_group_rule(
            security_group_id=default.id, direction="ingress", ethertype="IPv4",
            protocol="icmp", remote_ip_prefix="0.0.0.0/0")
        _check_dhcp_namespace_ping(ports[0], private)
        _check_floating_ip(compute, conn, public, fip)
    finally:
        if icmp is not None:
            conn.network.delete_security_group_rule(icmp)
        compute.osc("server", "delete", "--wait", NAME, cloud="nubis-demo")
        compute.osc("floating", "ip", "delete", fip["id"], cloud="nubis-demo")
    assert not list(conn.network.ports(device_id=server["id"]))
    wait_for(lambda: tap not in _links(), "the guest's tap to go")
    assert tap is not None and not re.search(tap, " ".join(_links()))
