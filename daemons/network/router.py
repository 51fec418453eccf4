"""Routers on this host: one namespace per router, NAT with nftables, and the external side.

A router lives in namespace ``nubis-router-<router id>``: each interface is a veth
whose root end (``nrt-<11 of the port id>``, no address, IPv6 off) joins the tenant
network's bridge and whose namespace end (``qr-<11>``) carries the port's MAC and
the subnet's gateway address; the gateway is the same on the external network's
bridge (``qg-<11>``), holding the gateway address and, as ``/32`` addresses, every
floating IP the router serves, with the default route to the external subnet's
gateway, and the router's extra routes (marked with :data:`RTPROT_EXTRA`, so a
pass replaces exactly its own). Forwarding is switched on inside the namespace
only. Table ``ip
nubis_router`` in the namespace DNATs each floating IP to its fixed address, SNATs
that fixed address back to it, and (``enable_snat``) SNATs the tenant subnets to the
gateway address; it is replaced whole, atomically, when it changes.

The external network's far end is namespace ``nubis-ext-<network id>``: a veth
(``nxe-<11>`` on the bridge, ``ex-<11>`` inside) holding the external subnet's
gateway address. It is where the router's default route points and what a test
pings from. The host's own interfaces never join a bridge, and the root namespace
gets no address and no route towards any of this. Everything is pyroute2 netlink
and ``nft -f -`` run with an argument list inside the namespace (no shell).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.common import netdev
from nubis.daemons.network.linux import remove_namespace
from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

LOG = logging.getLogger("nubis.daemons.network")
ROUTER_NS_PREFIX = "nubis-router-"
EXTERNAL_NS_PREFIX = "nubis-ext-"
ROUTER_VETH_PREFIX = "nrt-"
EXTERNAL_VETH_PREFIX = "nxe-"
INTERFACE_PREFIX = "qr-"
GATEWAY_PREFIX = "qg-"
TABLE = "nubis_router"
NFT = "nft"
#: Routing protocol number marking the extra routes the agent put in a router's
#: namespace (not one of iproute2's ``rt_protos``), so a pass finds its own again.
RTPROT_EXTRA = 73


def _short(resource_id: str) -> str:
    return resource_id.replace("-", "")[:11]


def router_namespace(router_id: str) -> str:
    """Return the namespace of a router."""
    return ROUTER_NS_PREFIX + router_id


def external_names(network_id: str) -> tuple[str, str, str]:
    """Return (namespace, root veth, namespace veth) of an external network's far end."""
    short = _short(network_id)
    return EXTERNAL_NS_PREFIX + network_id, EXTERNAL_VETH_PREFIX + short, "ex-" + short


@dataclass(frozen=True)
class Leg:
    """One router port: which bridge, which MAC, which address."""

    port_id: str
    network_id: str
    mac: str
    ip: str
    cidr: str
    gateway_ip: str | None
    mtu: int

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Leg:
        """Read a port of the agent state's ``routers`` entries."""
        return cls(str(doc["port_id"]), str(doc["network_id"]), str(doc["mac"]),
                   str(doc["ip"]), str(doc["cidr"]), doc.get("gateway_ip"), int(doc["mtu"]))

    @property
    def prefixlen(self) -> int:
        """Return the subnet's prefix length."""
        return ipaddress.ip_network(self.cidr).prefixlen

    def names(self, inside_prefix: str) -> tuple[str, str]:
        """Return (root veth, namespace veth)."""
        short = _short(self.port_id)
        return ROUTER_VETH_PREFIX + short, inside_prefix + short


@dataclass(frozen=True)
class RouterSpec:
    """What one router namespace must hold."""

    id: str
    enable_snat: bool
    gateway: Leg | None
    interfaces: tuple[Leg, ...]
    #: (floating address, fixed address) pairs.
    floating: tuple[tuple[str, str], ...]
    #: Extra routes: (destination CIDR, next hop), parsed and re-rendered.
    routes: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> RouterSpec:
        """Read one entry of the agent state's ``routers``."""
        gw = doc.get("gateway")
        return cls(str(doc["id"]), bool(doc["enable_snat"]),
                   Leg.parse(gw) if gw else None,
                   tuple(Leg.parse(i) for i in doc["interfaces"]),
                   tuple(sorted((str(f["floating_ip"]), str(f["fixed_ip"]))
                                for f in doc["floating_ips"])),
                   tuple(sorted((str(ipaddress.IPv4Network(r["destination"])),
                                 str(ipaddress.IPv4Address(r["nexthop"])))
                                for r in doc.get("routes", []))))


def ruleset(spec: RouterSpec) -> str:
    """Render the router's nftables table (replaced whole: add, delete, define)."""
    pre, post = [], []
    if spec.gateway is not None:
        qg = spec.gateway.names(GATEWAY_PREFIX)[1]
        for floating, fixed in spec.floating:
            pre.append(f"ip daddr {floating} dnat to {fixed}")
            post.append(f'oifname "{qg}" ip saddr {fixed} snat to {floating}')
        if spec.floating and spec.interfaces:
            # Hairpin (as Neutron's SNAT of DNATed traffic not from the gateway): a
            # guest reaching a floating IP of its own router gets the answer back
            # through the router, not straight from the fixed address it never asked.
            inside = ", ".join(sorted({str(ipaddress.ip_network(leg.cidr))
                                       for leg in spec.interfaces}))
            post.append(f'oifname != "{qg}" ct status dnat ip saddr {{ {inside} }} '
                        f"snat to {spec.gateway.ip}")
        if spec.enable_snat:
            for leg in spec.interfaces:
                net = ipaddress.ip_network(leg.cidr)
                post.append(f'oifname "{qg}" ip saddr {net} snat to {spec.gateway.ip}')
    body = [f"table ip {TABLE} {{", "  chain prerouting {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *(f"    {r}" for r in pre), "  }", "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            *(f"    {r}" for r in post), "  }", "}"]
    return "\n".join([f"table ip {TABLE} {{}}", f"delete table ip {TABLE}", *body]) + "\n"


def apply_ruleset(namespace: str, text: str) -> None:
    """Load ``text`` with ``nft -f -`` inside ``namespace`` (one atomic transaction)."""
    proc = subprocess.run([NFT, "-f", "-"], input=text.encode(), capture_output=True,
                          timeout=30, check=False, preexec_fn=_enter(namespace))
    if proc.returncode != 0:
        raise RuntimeError(f"nft failed in {namespace}: "
                           f"{proc.stderr.decode(errors='replace')[-300:]}")


def _enter(namespace: str) -> Any:
    def enter() -> None:
        netns.setns(namespace)
    return enter


def ensure_namespace(name: str) -> None:
    """Create a namespace (loopback up) unless it exists."""
    if name not in netns.listnetns():
        netns.create(name)
    with NetNS(name) as ns:
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")


def forward_inside(namespace: str) -> None:
    """Switch IPv4 forwarding on inside ``namespace`` only (this thread enters and leaves)."""
    netns.pushns(namespace)
    try:
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    finally:
        netns.popns()


def plug(namespace: str, root_if: str, ns_if: str, network_id: str, mtu: int,
         mac: str | None, addresses: set[tuple[str, int]]) -> int:
    """Join a veth's root end to a network's bridge; set the inside end exactly.

    Returns:
        The index of the namespace end.
    """
    bridge = netdev.ensure_bridge(network_id, mtu)
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=root_if):
            try:
                ipr.link("add", ifname=root_if, kind="veth", peer=ns_if)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            moved = ipr.link_lookup(ifname=ns_if)
            if moved:
                ipr.link("set", index=moved[0], net_ns_fd=namespace)
        root_idx = ipr.link_lookup(ifname=root_if)[0]
        netdev.disable_ipv6(root_if)
        ipr.link("set", index=root_idx, master=bridge, mtu=mtu, state="up")
    with NetNS(namespace) as ns:
        found = ns.link_lookup(ifname=ns_if)
        if not found:
            raise RuntimeError(f"{ns_if} is missing from namespace {namespace}")
        idx = int(found[0])
        if mac:
            ns.link("set", index=idx, address=mac)
        ns.link("set", index=idx, mtu=mtu, state="up")
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ns.get_addr(index=idx, family=2)}
        for ip, plen in have - addresses:
            ns.addr("del", index=idx, address=ip, prefixlen=plen)
        for ip, plen in sorted(addresses - have):
            ns.addr("add", index=idx, address=ip, prefixlen=plen)
    return idx


def prune_links(namespace: str, keep: Iterable[str], prefixes: tuple[str, ...]) -> int:
    """Delete the namespace's veths (``prefixes``) not in ``keep``; return how many."""
    wanted = set(keep)
    removed = 0
    with NetNS(namespace) as ns:
        for link in ns.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name and name.startswith(prefixes) and name not in wanted:
                with contextlib.suppress(NetlinkError):
                    ns.link("del", index=link["index"])
                removed += 1
    return removed


def set_default_route(namespace: str, oif: int, gateway: str | None) -> None:
    """Point the namespace's default route at ``gateway`` (or remove it)."""
    with NetNS(namespace) as ns:
        if gateway is None:
            with contextlib.suppress(NetlinkError):
                ns.route("del", dst="0.0.0.0", dst_len=0)
            return
        ns.route("replace", dst="0.0.0.0", dst_len=0, gateway=gateway, oif=oif)


def set_extra_routes(namespace: str, routes: Iterable[tuple[str, str]]) -> None:
    """Make the namespace's extra routes (ours: :data:`RTPROT_EXTRA`) exactly ``routes``.

    A route the kernel refuses (its next hop not on a connected subnet yet) is
    logged and tried again on the next pass.
    """
    wanted = {(dst, hop) for dst, hop in routes}
    with NetNS(namespace) as ns:
        for route in ns.route("dump", family=socket.AF_INET):
            if route["proto"] != RTPROT_EXTRA:
                continue
            have = (f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}",
                    route.get_attr("RTA_GATEWAY"))
            if have in wanted:
                wanted.discard(have)
                continue
            with contextlib.suppress(NetlinkError):
                ns.route("del", dst=have[0], gateway=have[1], proto=RTPROT_EXTRA)
        for dst, hop in sorted(wanted):
            try:
                ns.route("replace", dst=dst, gateway=hop, proto=RTPROT_EXTRA)
            except NetlinkError as exc:
                LOG.warning("router namespace %s: route %s via %s refused: %s", namespace,
                            dst, hop, exc)


class Routers:
    """This host's router and external namespaces, by id, with marker files as ownership."""

    def __init__(self, root: Path) -> None:
        self.router_dir = root / "routers"
        self.external_dir = root / "externals"
        #: Ruleset last loaded per router (a fresh agent loads every one again).
        self.applied: dict[str, str] = {}

    def reconcile(self, state: Mapping[str, Any]) -> dict[str, int]:
        """Build every external far end and router of ``state``; remove the rest of ours."""
        stats = {"routers": 0, "routers_removed": 0}
        externals: list[str] = []
        for net in state["networks"]:
            if net.get("external") and self._ensure_external(net):
                externals.append(str(net["id"]))
        routers = [RouterSpec.parse(r) for r in state.get("routers", [])
                   if r.get("admin_state_up", True)]
        for spec in routers:
            self._mark(self.router_dir, spec.id)
            self._ensure_router(spec)
            stats["routers"] += 1
        wanted = {r.id for r in routers}
        for router_id in self._marked(self.router_dir):
            if router_id not in wanted:
                self._remove_router(router_id)
                stats["routers_removed"] += 1
        for net_id in self._marked(self.external_dir):
            if net_id not in externals:
                self._remove_external(net_id)
        return stats

    def _ensure_external(self, net: Mapping[str, Any]) -> bool:
        subnet = next((s for s in net["subnets"] if s.get("gateway_ip")), None)
        if subnet is None:
            return False
        self._mark(self.external_dir, str(net["id"]))
        ns_name, root_if, ns_if = external_names(str(net["id"]))
        ensure_namespace(ns_name)
        plen = ipaddress.ip_network(subnet["cidr"]).prefixlen
        plug(ns_name, root_if, ns_if, str(net["id"]), int(net["mtu"]), None,
             {(str(subnet["gateway_ip"]), plen)})
        return True

    def _ensure_router(self, spec: RouterSpec) -> None:
        ns_name = router_namespace(spec.id)
        ensure_namespace(ns_name)
        forward_inside(ns_name)
        keep = []
        for leg in spec.interfaces:
            root_if, ns_if = leg.names(INTERFACE_PREFIX)
            plug(ns_name, root_if, ns_if, leg.network_id, leg.mtu, leg.mac,
                 {(leg.ip, leg.prefixlen)})
            keep.append(ns_if)
        if spec.gateway is not None:
            gw = spec.gateway
            root_if, ns_if = gw.names(GATEWAY_PREFIX)
            addresses = {(gw.ip, gw.prefixlen)} | {(f, 32) for f, _fixed in spec.floating}
            idx = plug(ns_name, root_if, ns_if, gw.network_id, gw.mtu, gw.mac, addresses)
            keep.append(ns_if)
            set_default_route(ns_name, idx, gw.gateway_ip)
        prune_links(ns_name, keep, (INTERFACE_PREFIX, GATEWAY_PREFIX))
        set_extra_routes(ns_name, spec.routes)
        text = ruleset(spec)
        if self.applied.get(spec.id) != text:
            apply_ruleset(ns_name, text)
            self.applied[spec.id] = text

    def _remove_router(self, router_id: str) -> None:
        remove_namespace(router_namespace(router_id))
        self.applied.pop(router_id, None)
        (self.router_dir / router_id).unlink(missing_ok=True)

    def _remove_external(self, network_id: str) -> None:
        ns_name, root_if, _ns_if = external_names(network_id)
        remove_namespace(ns_name)
        netdev.delete_link(root_if)
        (self.external_dir / network_id).unlink(missing_ok=True)

    def teardown(self) -> None:
        """Remove every router and external namespace this agent made."""
        for router_id in self._marked(self.router_dir):
            self._remove_router(router_id)
        for net_id in self._marked(self.external_dir):
            self._remove_external(net_id)

    @staticmethod
    def _mark(directory: Path, ident: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ident).touch()

    @staticmethod
    def _marked(directory: Path) -> Sequence[str]:
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir())
