"""IPv4 address management: subnet validation, allocation pools, picking free addresses.

Pure functions over :mod:`ipaddress`; the store runs them inside the transaction that
inserts the allocation row, and the (subnet, address) primary key is what makes an
address impossible to hand out twice (see :mod:`nubis.api.network.schema`).
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nubis.api.network.errors import NeutronError, bad_request, conflict, invalid_input

IPv4 = ipaddress.IPv4Address
Net4 = ipaddress.IPv4Network

#: Smallest prefix length a subnet may have (a /8 has 16 M addresses).
MIN_PREFIX = 8
#: Host routes and DNS servers a subnet may carry (Neutron's defaults).
MAX_DNS = 5
MAX_ROUTES = 20


@dataclass(frozen=True)
class Pool:
    """One allocation pool: first and last address, inclusive."""

    start: IPv4
    end: IPv4

    def as_dict(self) -> dict[str, str]:
        """Render as Neutron's ``{"start", "end"}``."""
        return {"start": str(self.start), "end": str(self.end)}

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, IPv4) and self.start <= ip <= self.end


def parse_ip(value: Any, what: str = "ip_address", resource: str = "subnet") -> IPv4:
    """Return an IPv4 address or Neutron's 400 (naming ``resource``)."""
    try:
        ip = ipaddress.ip_address(str(value)) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if not isinstance(ip, IPv4):
        raise bad_request(resource, f"'{value}' is not a valid IP address ({what})")
    return ip


def parse_cidr(value: Any) -> Net4:
    """Return an IPv4 network in canonical form, or Neutron's 400."""
    if not isinstance(value, str):
        raise bad_request("cidr", f"'{value}' is not a valid IP subnet")
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise bad_request("cidr", f"'{value}' is not a valid IP subnet") from None
    if not isinstance(net, Net4):
        raise bad_request("ip_version", "only IPv4 subnets are supported")
    if str(net) != value:
        raise bad_request("cidr", f"'{value}' isn't a recommended CIDR, '{net}' is "
                          "recommended")
    if net.prefixlen < MIN_PREFIX or net.prefixlen > 30:
        raise invalid_input(f"Requested subnet with cidr: {net} must have a prefix "
                            f"length between {MIN_PREFIX} and 30")
    return net


def default_gateway(net: Net4) -> IPv4:
    """Return the first host address (Neutron's default gateway)."""
    return net.network_address + 1


def default_pools(net: Net4, gateway: IPv4 | None) -> list[Pool]:
    """Return every host address except the gateway, as one or two pools."""
    first, last = net.network_address + 1, net.broadcast_address - 1
    if gateway is None or not first <= gateway <= last:
        return [Pool(first, last)]
    pools = []
    if gateway > first:
        pools.append(Pool(first, gateway - 1))
    if gateway < last:
        pools.append(Pool(gateway + 1, last))
    return pools


def parse_pools(raw: Any, net: Net4, gateway: IPv4 | None) -> list[Pool]:
    """Validate ``allocation_pools``: inside the subnet, ordered, disjoint, not the gateway."""
    if not isinstance(raw, list):
        raise bad_request("allocation_pools", f"'{raw}' is not a list")
    pools = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise bad_request("allocation_pools", f"Invalid data format for IP pool: '{item}'")
        start, end = parse_ip(item["start"], "start"), parse_ip(item["end"], "end")
        if start > end:
            raise invalid_input(f"Invalid IP address range {start}-{end}")
        if start not in net or end not in net or start == net.network_address or (
                end == net.broadcast_address):
            raise invalid_input(f"The allocation pool {start}-{end} spans beyond the subnet "
                                f"cidr {net}")
        if gateway is not None and start <= gateway <= end:
            raise conflict_gateway(gateway, start, end)
        pools.append(Pool(start, end))
    pools.sort(key=lambda p: p.start)
    for a, b in itertools.pairwise(pools):
        if b.start <= a.end:
            raise invalid_input(f"Found overlapping allocation pools: {a.start}-{a.end} and "
                                f"{b.start}-{b.end}")
    return pools


def conflict_gateway(gateway: IPv4, start: IPv4, end: IPv4) -> NeutronError:
    """Return Neutron's GatewayConflictWithAllocationPools (409)."""
    return conflict("GatewayConflictWithAllocationPools",
                    f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.")


def parse_dns(raw: Any) -> list[str]:
    """Validate ``dns_nameservers`` (addresses, no duplicates, at most :data:`MAX_DNS`)."""
    if not isinstance(raw, list):
        raise bad_request("dns_nameservers", f"'{raw}' is not a list")
    out = [str(parse_ip(v, "dns_nameservers")) for v in raw]
    if len(set(out)) != len(out):
        raise bad_request("dns_nameservers", f"Duplicate nameserver in {raw}")
    if len(out) > MAX_DNS:
        raise limit_exceeded("DNSNameServersExhausted",
                           f"Unable to complete operation for subnet. The number of DNS "
                           f"nameservers exceeds the limit {MAX_DNS}.")
    return out


def parse_route_list(raw: Any, attribute: str) -> list[dict[str, str]]:
    """Validate a list of ``{destination: cidr, nexthop: ip}`` (``host_routes``, ``routes``)."""
    if not isinstance(raw, list):
        raise bad_request(attribute, f"'{raw}' is not a list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"destination", "nexthop"}:
            raise bad_request(attribute, f"Invalid data format for hostroute: '{item}'")
        try:
            dest = ipaddress.ip_network(str(item["destination"]))
        except ValueError:
            raise bad_request(attribute, f"'{item['destination']}' is not a valid IP "
                              "subnet") from None
        out.append({"destination": str(dest),
                    "nexthop": str(parse_ip(item["nexthop"], "nexthop", attribute))})
    return out


def parse_routes(raw: Any) -> list[dict[str, str]]:
    """Validate ``host_routes`` (``[{destination: cidr, nexthop: ip}]``)."""
    out = parse_route_list(raw, "host_routes")
    if len(out) > MAX_ROUTES:
        raise limit_exceeded("HostRoutesExhausted",
                           f"Unable to complete operation for subnet. The number of host "
                           f"routes exceeds the limit {MAX_ROUTES}.")
    return out


def limit_exceeded(kind: str, message: str) -> NeutronError:
    """Return a 400 of Neutron type ``kind`` (limits on per-subnet lists)."""
    return NeutronError(400, kind, message)


def overlaps(net: Net4, others: Iterable[str]) -> bool:
    """Return whether ``net`` overlaps any of the CIDRs ``others``."""
    return any(net.overlaps(ipaddress.ip_network(o)) for o in others)


def in_pools(ip: IPv4, pools: Sequence[Pool]) -> bool:
    """Return whether ``ip`` lies in one of ``pools``."""
    return any(ip in p for p in pools)


def free_addresses(pools: Sequence[Pool], used: set[int]) -> Iterator[IPv4]:
    """Yield the addresses of ``pools`` not in ``used`` (integers), lowest first."""
    for pool in pools:
        ip = int(pool.start)
        end = int(pool.end)
        while ip <= end:
            if ip not in used:
                yield IPv4(ip)
            ip += 1


def pick(pools: Sequence[Pool], used: set[int], attempt: int,
         rng: random.Random | None = None) -> IPv4 | None:
    """Choose an address to try; None when the pools are exhausted.

    The lowest free one first, then (after a lost race) a random one of the next few
    free ones, so concurrent writers spread out instead of colliding again.
    """
    window = 1 if attempt == 0 else min(64, 4 << attempt)
    candidates = []
    for ip in free_addresses(pools, used):
        candidates.append(ip)
        if len(candidates) >= window:
            break
    if not candidates:
        return None
    return (rng or random).choice(candidates)


def random_mac(base: str, rng: random.Random | None = None) -> str:
    """Return a MAC address with the first three octets of ``base`` (``fa:16:3e``)."""
    r = rng or random
    head = base.split(":")[:3]
    tail = [f"{r.randrange(256):02x}" for _ in range(3)]
    return ":".join(head + tail)
