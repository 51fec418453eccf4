"""Cut the connections a security group change no longer allows (as Neutron does).

The security group chains accept a connection's established and related packets
before any rule, so a connection that a rule let in would outlive the rule. After
the agent applies a new ruleset, :func:`revoked` compares what each port was
granted before with what it is granted now, and :func:`cut` deletes, in the
port's network conntrack zone, the entries a revoked grant had admitted: same
direction (toward the port's addresses for ingress, from them for egress),
protocol, destination port range and remote addresses. The connection's next
packet is then new again and meets the rules: dropped if nothing allows it any
more. A grant is a rule as it applies to one port, a remote group's rule taken
with the group's addresses at that time, so a port leaving a group also revokes
what its addresses were allowed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nubis.daemons.network.secgroups import Policy, PortFilter, SgRule, zone_of
from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError

LOG = logging.getLogger("nubis.network.conntrack")
_PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP,
              "sctp": socket.IPPROTO_SCTP, "icmp": socket.IPPROTO_ICMP}
_WITH_PORTS = {socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_SCTP}
Nets = tuple[ipaddress.IPv4Network, ...]


@dataclass(frozen=True)
class Grant:
    """What one rule lets through to or from one port."""

    ingress: bool
    protocol: int | None
    port_min: int | None
    port_max: int | None
    #: The peers it admits (None: any address).
    remotes: Nets | None

    def admitted(self, orig: Any, own: Nets) -> bool:
        """Tell whether the connection with original tuple ``orig`` is one this let in."""
        mine, peer = (orig.daddr, orig.saddr) if self.ingress else (orig.saddr, orig.daddr)
        if not _within(mine, own):
            return False
        if self.remotes is not None and not _within(peer, self.remotes):
            return False
        if self.protocol is None:
            return True
        if orig.proto != self.protocol:
            return False
        if self.protocol not in _WITH_PORTS or self.port_min is None:
            return True
        high = self.port_max if self.port_max is not None else self.port_min
        return orig.dport is not None and self.port_min <= int(orig.dport) <= high


@dataclass(frozen=True)
class Revocation:
    """Grants one port lost, and where its connections are tracked."""

    zone: int
    addresses: Nets
    grants: frozenset[Grant]


def _within(address: str | None, nets: Nets) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)


def _grant(rule: SgRule, policy: Policy) -> Grant:
    remotes: Nets | None = None
    if rule.remote_cidr is not None and rule.remote_cidr.prefixlen > 0:
        remotes = (rule.remote_cidr,)
    if rule.remote_group is not None:
        remotes = tuple(policy.members.get(rule.remote_group, ()))
    protocol = None if rule.protocol is None else _PROTOCOLS.get(rule.protocol) or int(
        rule.protocol)
    return Grant(rule.ingress, protocol, rule.port_min, rule.port_max, remotes)


def grants(port: PortFilter, policy: Policy) -> frozenset[Grant]:
    """Return everything the port's groups let through to or from it."""
    return frozenset(_grant(rule, policy) for group in port.groups
                     for rule in policy.rules.get(group, ()))


def revoked(before: Policy | None, after: Policy) -> list[Revocation]:
    """Return, per port filtered in both policies, the grants ``after`` took away."""
    if before is None:
        return []
    old = {p.port_id: p for p in before.ports}
    out = []
    for port in after.ports:
        prev = old.get(port.port_id)
        if prev is None:
            continue
        gone = grants(prev, before) - grants(port, after)
        if gone:
            own = tuple(n for _mac, nets in port.sources for n in nets)
            out.append(Revocation(zone_of(port.network_id), own, frozenset(gone)))
    return out


def cut(revocations: Iterable[Revocation]) -> int:
    """Delete the conntrack entries the revoked grants had admitted; return how many."""
    revocations = list(revocations)
    if not revocations:
        return 0
    by_zone: dict[int, list[Revocation]] = {}
    for rev in revocations:
        by_zone.setdefault(rev.zone, []).append(rev)
    deleted = 0
    ct = Conntrack()
    try:
        for zone, revs in by_zone.items():  # one dump per zone, however many ports lost
            for entry in list(ct.dump_entries(zone=zone)):
                if entry.zone not in (None, zone) or not any(
                        g.admitted(entry.tuple_orig, rev.addresses)
                        for rev in revs for g in rev.grants):
                    continue
                try:
                    ct.entry("del", tuple_orig=entry.tuple_orig, zone=zone)
                except NetlinkError as exc:
                    if exc.code != 2:  # ENOENT: it ended meanwhile
                        raise
                    continue
                deleted += 1
    finally:
        ct.close()
    if deleted:
        LOG.info("cut %d connection(s) that security group changes no longer allow",
                 deleted)
    return deleted
