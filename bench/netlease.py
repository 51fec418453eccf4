"""Port create -> DHCP lease time (``python -m nubis.bench netlease``).

A real ``nubis api`` (identity + network) and the network agent (in this process, at
its configured pass interval), a network with one /24. Each round: ``POST /ports``
(a ``compute:nova`` port in the project's ``default`` group) through openstacksdk,
then a namespace joined to the network's bridge by a veth carrying the port's tap
name and MAC (what a guest's tap is; so the security group chains apply) runs
busybox ``udhcpc`` until it holds a lease. The figure is the time from the API call to
the lease: the agent's next pass, the dnsmasq hosts file and SIGHUP, the nftables
update and the DHCP exchange. A QEMU/TCG guest adds its boot (minutes on this
machine), which is not the network's part. ``udhcpc`` resends DISCOVER once a second,
so the figures are quantized to about 1 s; there is no reference to compare with on
this machine (no Neutron), so the report is absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

TOKEN = "bench-" + uuid.uuid4().hex


def _agent_thread(agent: Any, interval: float, stop: threading.Event) -> threading.Thread:
    async def passes() -> None:
        try:
            while not stop.is_set():
                try:
                    await agent.run_once()
                except Exception as exc:  # reported; the next pass retries
                    print(f"agent pass failed: {exc}")
                await asyncio.sleep(interval)
        finally:
            await agent.close()

    thread = threading.Thread(target=lambda: asyncio.run(passes()), daemon=True)
    thread.start()
    return thread


def _lease(port: Any, bridge: str) -> float:
    """Plug a stand-in guest for ``port`` into ``bridge``; return when it got a lease."""
    from nubis.common import netdev
    from pyroute2 import IPRoute, NetNS, netns

    ns_name, tap = f"nubis-bench-{uuid.uuid4().hex[:8]}", netdev.tap_name(port.id)
    peer = "nbp" + uuid.uuid4().hex[:8]
    netns.create(ns_name)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=tap, kind="veth", peer=peer)
            netdev.disable_ipv6(tap)
            ipr.link("set", index=ipr.link_lookup(ifname=tap)[0],
                     master=ipr.link_lookup(ifname=bridge)[0], state="up")
            ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=ns_name)
        with NetNS(ns_name) as ns:
            ns.link("set", index=ns.link_lookup(ifname=peer)[0], address=port.mac_address,
                    state="up")
        proc = subprocess.run(["busybox", "udhcpc", "-i", peer, "-f", "-q", "-n", "-t", "60",
                               "-T", "1", "-s", "/bin/true"], capture_output=True, text=True,
                              timeout=120, check=False,
                              preexec_fn=lambda: netns.setns(ns_name))
        done = time.perf_counter()
        if proc.returncode != 0 or port.fixed_ips[0]["ip_address"] not in proc.stderr + proc.stdout:
            raise RuntimeError(f"no lease: {proc.stderr[-500:]}")
        return done
    finally:
        netns.remove(ns_name)
        netdev.delete_link(tap)


def run(rounds: int, interval: float, tmp: Path) -> dict[str, Any]:
    """Start the API and the agent, time ``rounds`` port-create-to-lease cycles."""
    from nubis.common import netdev
    from nubis.daemons.network.agent import NetworkAgent
    from nubis.daemons.network.config import NetworkAgentConfig

    from nubis.bootstrap import bootstrap_identity
    from nubis.settings import load_config
    from tests.functional.identity.server import ApiServer
    from tests.ports import free_port

    server = ApiServer(tmp / "api", free_port(), f'[network_api]\nagent_token = "{TOKEN}"\n')
    server.state.mkdir(parents=True, exist_ok=True)
    server.write_config()
    bootstrap_identity(load_config(server.config_path), server.state,
                       ["/identity", "/network"], False)
    stop = threading.Event()
    thread = None
    try:
        for attempt in range(3):  # a loaded machine can be slow to bring the api up
            try:
                server.start()
                break
            except RuntimeError:
                server.stop()
                if attempt == 2:
                    raise
        import openstack

        os.environ["OS_CLIENT_CONFIG_FILE"] = str(server.clouds_yaml)
        conn = openstack.connect(cloud="nubis-demo")
        net = conn.network.create_network(name="bench-lease")
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.85.0.0/24")
        cfg = NetworkAgentConfig(network_url=f"{server.url}/network", agent_token=TOKEN,
                                 interval=interval, metadata=False)
        agent = NetworkAgent(cfg, tmp / "agent", teardown_on_close=True)
        thread = _agent_thread(agent, interval, stop)
        bridge = netdev.bridge_name(net.id)
        deadline = time.monotonic() + 60
        while not netdev.links_with_prefix((bridge,)) and time.monotonic() < deadline:
            time.sleep(0.1)
        times = []
        ports = []
        for _ in range(rounds):  # ports kept to the end: dnsmasq still holds a deleted
            t0 = time.perf_counter()  # port's lease, so its address must not come back
            port = conn.network.create_port(network_id=net.id, device_owner="compute:nova",
                                            device_id=str(uuid.uuid4()))
            ports.append(port)
            times.append(_lease(port, bridge) - t0)
        for port in ports:
            conn.network.delete_port(port)
        conn.network.delete_network(net)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        server.stop()
    times.sort()
    return {"rounds": rounds, "agent_interval_s": interval,
            "p50_s": round(statistics.median(times), 2), "min_s": round(times[0], 2),
            "max_s": round(times[-1], 2)}


def main(argv: list[str]) -> int:
    """Run the rounds and print the figures (or JSON)."""
    parser = argparse.ArgumentParser(prog="python -m nubis.bench netlease")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0,
                        help="the agent's pass interval (its default: 2 s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # dnsmasq reads its hosts file as an unprivileged user: a 0711 directory.
    with tempfile.TemporaryDirectory(prefix="nubis-bench-lease-", dir="/var/tmp") as tmp:
        Path(tmp).chmod(0o711)
        row = run(args.rounds, args.interval, Path(tmp))
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        print(f"port create -> lease over {row['rounds']} rounds (agent pass every "
              f"{row['agent_interval_s']} s): p50 {row['p50_s']} s, min {row['min_s']} s, "
              f"max {row['max_s']} s")
    return 0
