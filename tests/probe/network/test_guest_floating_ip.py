"""A real guest behind the demo ``router1``: SNAT out, a floating IP in, then removed.

The whole ``nubis up`` cloud (its ``public`` network, ``router1`` and ``private``
network) with one QEMU/TCG guest of the test image, reused for every check. The
guest's init pings the external network's far end (the agent's namespace,
``172.24.4.1``) named in its user_data and prints the result on its console; the
test pings the guest's floating IP from that namespace. No traffic leaves the
namespaces and bridges of this cloud; the root namespace has no address on them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from nubis.common import netdev
from nubis.daemons.network import router
from pyroute2 import IPRoute, netns

from nubis.networkboot import PUBLIC_NETWORK
from nubis.testimage.initramfs import PING_LINE
from tests.probe.compute.cloud import ComputeCloud, wait_for

pytestmark = [pytest.mark.probe, pytest.mark.timeout(1500)]
EXTERNAL_GATEWAY = "172.24.4.1"


def _ping_from(namespace: str, address: str) -> bool:
    proc = subprocess.run(["ping", "-c", "1", "-W", "2", address], capture_output=True,
                          timeout=30, check=False, preexec_fn=lambda: netns.setns(namespace))
    return proc.returncode == 0


def _console(compute: ComputeCloud, name: str) -> str:
    out: str = compute.osc("console", "log", "show", name, cloud="nubis-demo").stdout
    return out


def test_guest_snat_and_floating_ip(compute: ComputeCloud, tmp_path: Path) -> None:
    conn = compute.sdk("nubis-demo")
    public = conn.network.find_network(PUBLIC_NETWORK)
    assert public is not None and public.is_router_external
    ext_ns = router.external_names(public.id)[0]
    user_data = tmp_path / "user_data"
    user_data.write_text(f"nubis-ping={EXTERNAL_GATEWAY}\n")
    fip = compute.osc("floating", "ip", "create", PUBLIC_NETWORK, "-f", "json",
                      cloud="nubis-demo")
    address = fip["floating_ip_address"]
    server = compute.osc("server", "create", "--image", "nubis-test", "--flavor", "m1.nano",
                         "--network", "private", "--user-data", str(user_data), "--wait",
                         "fipvm1", "-f", "json", cloud="nubis-demo")
    icmp = None
    try:
        assert server["status"] == "ACTIVE"
        # SNAT: the guest reaches the external namespace (which has no route to it).
        log = wait_for(lambda: (lambda t: t if PING_LINE in t else None)(
            _console(compute, "fipvm1")), "the guest's ping line")
        assert f"{PING_LINE}{EXTERNAL_GATEWAY}: ok" in log, log[-2000:]
        # The external side may ping in once the project's default group lets ICMP in
        # (security groups are enforced on the guest's tap).
        default = next(conn.network.security_groups(name="default",
                                                    project_id=conn.current_project_id))
        icmp = conn.network.create_security_group_rule(
            security_group_id=default.id, direction="ingress", ethertype="IPv4",
            protocol="icmp", remote_ip_prefix="0.0.0.0/0")
        # The CLI's `server add floating ip` (a port update through the network API).
        compute.osc("server", "add", "floating", "ip", "fipvm1", address, cloud="nubis-demo")
        shown = compute.osc("server", "show", "fipvm1", "-f", "json", cloud="nubis-demo")
        assert address in str(shown["addresses"])
        assert wait_for(lambda: _ping_from(ext_ns, address), "the floating IP to answer",
                        bound=120)
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=netdev.bridge_name(public.id))[0]
            assert not ipr.get_addr(index=idx)
        # Removed: the floating IP stops answering.
        compute.osc("server", "remove", "floating", "ip", "fipvm1", address,
                    cloud="nubis-demo")
        assert conn.network.get_ip(fip["id"]).port_id is None
        assert wait_for(lambda: not _ping_from(ext_ns, address), "the floating IP to go",
                        bound=120)
    finally:
        if icmp is not None:
            conn.network.delete_security_group_rule(icmp)
        compute.osc("server", "delete", "--wait", "fipvm1", cloud="nubis-demo")
        compute.osc("floating", "ip", "delete", fip["id"], cloud="nubis-demo")
