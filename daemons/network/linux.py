"""The agent's netlink work through pyroute2: DHCP namespaces and their veth into a bridge.

A subnet's DHCP server lives in namespace ``nubis-dhcp-<subnet id>``: a veth pair whose
root end (``ndh-…``, no address, IPv6 off) joins the network's bridge and whose other
end (``ns-…``) carries the DHCP port's MAC and address, plus ``169.254.169.254/32`` for
the metadata proxy. The root namespace never gets an address or route for a tenant.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass

from nubis.common import netdev
from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

METADATA_IP = "169.254.169.254"


@dataclass(frozen=True)
class DhcpWiring:
    """Where one subnet's DHCP server sits and what it answers as."""

    subnet_id: str
    network_id: str
    cidr: str
    mac: str
    ip: str
    mtu: int

    @property
    def names(self) -> tuple[str, str, str]:
        """Return (namespace, root veth, namespace veth)."""
        return netdev.dhcp_names(self.subnet_id)


def list_dhcp_namespaces() -> list[str]:
    """Return the DHCP namespaces that exist (by name)."""
    return sorted(n for n in netns.listnetns() if n.startswith(netdev.DHCP_NS_PREFIX))


def remove_namespace(name: str) -> None:
    """Delete a namespace (its veth end goes with it, taking the root end too)."""
    try:
        netns.remove(name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def ensure_dhcp_port(w: DhcpWiring) -> None:
    """Build (or repair) a subnet's DHCP namespace and plug it into its bridge."""
    ns_name, root_if, ns_if = w.names
    bridge = netdev.ensure_bridge(w.network_id, w.mtu)
    if ns_name not in netns.listnetns():
        netns.create(ns_name)
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=root_if):
            _make_veth(ipr, root_if, ns_if, ns_name)
        root_idx = ipr.link_lookup(ifname=root_if)[0]
        netdev.disable_ipv6(root_if)
        ipr.link("set", index=root_idx, master=bridge, mtu=w.mtu, state="up")
    _configure_inside(w, ns_name, ns_if)


def _make_veth(ipr: IPRoute, root_if: str, ns_if: str, ns_name: str) -> None:
    try:
        ipr.link("add", ifname=root_if, kind="veth", peer=ns_if)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
    found = ipr.link_lookup(ifname=ns_if)
    if found:
        ipr.link("set", index=found[0], net_ns_fd=ns_name)


def _configure_inside(w: DhcpWiring, ns_name: str, ns_if: str) -> None:
    """Set the namespace end's MAC, MTU and addresses (exactly these) and bring it up."""
    prefix = ipaddress.ip_network(w.cidr).prefixlen
    wanted = {(w.ip, prefix), (METADATA_IP, 32)}
    with NetNS(ns_name) as ns:
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")
        found = ns.link_lookup(ifname=ns_if)
        if not found:
            raise RuntimeError(f"{ns_if} is missing from namespace {ns_name}")
        idx = found[0]
        ns.link("set", index=idx, address=w.mac, mtu=w.mtu, state="up")
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ns.get_addr(index=idx, family=2)}
        for ip, plen in have - wanted:
            ns.addr("del", index=idx, address=ip, prefixlen=plen)
        for ip, plen in wanted - have:
            ns.addr("add", index=idx, address=ip, prefixlen=plen)


def remove_dhcp_port(subnet_id: str) -> None:
    """Remove a subnet's DHCP namespace and its veth."""
    ns_name, root_if, _ns_if = netdev.dhcp_names(subnet_id)
    remove_namespace(ns_name)
    netdev.delete_link(root_if)


def bridge_has_members(bridge: str) -> bool:
    """Return whether any interface is still enslaved to ``bridge``."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            return False
        return any(link.get_attr("IFLA_MASTER") == found[0] for link in ipr.get_links())
