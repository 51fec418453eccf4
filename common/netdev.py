"""Linux network device names and the tenant bridge, shared by the network agent and compute.

Both the network agent (which builds a network's bridge, DHCP namespace and
dnsmasq) and the compute daemon (which plugs a guest's tap into the bridge through
libvirt) must agree on names, so they live here. Names are derived from resource
ids and fit Linux's 15-character interface names:

* ``nbr-<11 hex of the network id>`` -- the network's bridge (root namespace);
* ``tap<11 of the port id>`` -- a guest's tap (as Neutron names them);
* ``ndh-<11 of the subnet id>`` / ``ns-<11>`` -- a DHCP namespace's veth pair.

Network safety: a bridge made here never gets an address (IPv6 is switched off on
it before it comes up, so not even a link-local one) and never enslaves a host
interface; only veths and taps made for tenants join it. Everything goes through
pyroute2's netlink sockets, never the ``ip`` command.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path

BRIDGE_PREFIX = "nbr-"
TAP_PREFIX = "tap"
DHCP_VETH_PREFIX = "ndh-"
NS_VETH_PREFIX = "ns-"
#: Namespace names of the DHCP servers: ``nubis-dhcp-<subnet id>``.
DHCP_NS_PREFIX = "nubis-dhcp-"
#: Every name this module makes starts with one of these (cleanup matches on them).
OWNED_PREFIXES = (BRIDGE_PREFIX, DHCP_VETH_PREFIX)


def _short(resource_id: str) -> str:
    return resource_id.replace("-", "")[:11]


def bridge_name(network_id: str) -> str:
    """Return the bridge of a network."""
    return BRIDGE_PREFIX + _short(network_id)


def tap_name(port_id: str) -> str:
    """Return the tap device of a guest port."""
    return TAP_PREFIX + _short(port_id)


def dhcp_names(subnet_id: str) -> tuple[str, str, str]:
    """Return (namespace, root-side veth, namespace-side veth) of a subnet's DHCP server."""
    short = _short(subnet_id)
    return DHCP_NS_PREFIX + subnet_id, DHCP_VETH_PREFIX + short, NS_VETH_PREFIX + short


def disable_ipv6(ifname: str) -> None:
    """Switch IPv6 off on an interface (no link-local address in the root namespace)."""
    path = Path("/proc/sys/net/ipv6/conf") / ifname / "disable_ipv6"
    with contextlib.suppress(FileNotFoundError):  # IPv6 compiled out, or the link is gone
        path.write_text("1")


def ensure_bridge(network_id: str, mtu: int) -> int:
    """Create (or find) a network's bridge, address-less and up; return its index."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    name = bridge_name(network_id)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                ipr.link("add", ifname=name, kind="bridge", br_stp_state=0,
                         br_forward_delay=0)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            found = ipr.link_lookup(ifname=name)
        index = int(found[0])
        disable_ipv6(name)
        ipr.link("set", index=index, mtu=mtu, state="up")
        return index


def delete_link(ifname: str) -> bool:
    """Delete an interface of the root namespace; return whether it existed."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
        return True


def links_with_prefix(prefixes: tuple[str, ...]) -> list[str]:
    """Return the root namespace's interfaces whose names start with one of ``prefixes``."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return sorted(n for n in names if n and n.startswith(prefixes))
