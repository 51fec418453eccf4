"""Security groups enforced with nftables on each guest port (the agent's firewall).

The guest taps are bridge ports in the root namespace. This machine's kernel has no
``nf_conntrack_bridge``, so a bridge-family chain cannot match ``ct state``; it does
have ``br_netfilter``, which runs bridged IPv4 through the IPv4 hooks (the bridge as
the in/out device) and attaches conntrack there. So each agent owns two tables:

* ``table ip nubis_ct_<h>`` -- on the IPv4 prerouting hook that ``br_netfilter``
  calls for bridged packets: a conntrack zone per network (``raw`` priority, so two
  projects' equal CIDRs never share a connection), then, after conntrack, the
  packet's ``ct state`` copied into two bits of ``meta mark``
  (``MARK_ESTABLISHED`` / ``MARK_INVALID``). Only packets arriving on this agent's
  bridges are touched.
* ``table bridge nubis_sg_<h>`` -- the bridge ``forward`` hook, where the in and out
  devices are the taps, in two base chains (``egress`` by in-device, then
  ``ingress`` by out-device, since an accept ends only its own base chain): per
  port an egress chain (anti-spoofing of MAC, ARP and IPv4
  source against the fixed IPs and allowed address pairs; DHCP client traffic
  allowed, DHCP server replies from the guest dropped; then the egress rules) and an
  ingress chain (ARP and DHCP replies allowed; then the ingress rules). Both accept
  established/related first (the mark bit) and end in a counted drop.

A port whose ``port_security_enabled`` is false gets no chain (unfiltered), and
only ports whose owner starts with ``compute:`` (guests) are filtered: DHCP and
router ports are not. Only IPv4 rules are enforced; IPv6 frames from or to a
filtered port are dropped. ``<h>`` is derived from the agent's state directory, so
several clouds on one machine never touch each other's tables, and every rule
matches on this agent's own taps only.

Every value in the generated ruleset is parsed and re-rendered here (ids, MACs,
addresses, numbers); nothing from the API reaches ``nft`` as text. The ruleset is
applied atomically with ``nft -f -`` (replace both tables in one transaction) when
it differs from what was last applied, and on the agent's first pass.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import subprocess
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.common import netdev

NFT = "nft"
#: ``meta mark`` bits the IPv4 prerouting chain sets from ``ct state``.
MARK_ESTABLISHED = 0x01000000
MARK_INVALID = 0x02000000
_ID = re.compile(r"^[0-9a-zA-Z-]{1,64}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_L4 = {"tcp", "udp", "sctp"}


class FirewallError(Exception):
    """``nft`` refused a ruleset, or the state held a value that cannot be rendered."""


def _id(value: Any) -> str:
    text = str(value)
    if not _ID.match(text):
        raise FirewallError(f"not an id: {text[:80]!r}")
    return text


def _mac(value: Any) -> str:
    text = str(value).lower()
    if not _MAC.match(text):
        raise FirewallError(f"not a MAC address: {text[:80]!r}")
    return text


def _net4(value: Any) -> ipaddress.IPv4Network | None:
    """Return an IPv4 address or CIDR as a network; None for IPv6; raise for junk."""
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise FirewallError(f"not an address: {str(value)[:80]!r}") from None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def _num(value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise FirewallError(f"not a number: {str(value)[:80]!r}") from None
    if not low <= n <= high:
        raise FirewallError(f"{n} is outside {low}..{high}")
    return n


@dataclass(frozen=True)
class SgRule:
    """One IPv4 security group rule, parsed."""

    ingress: bool
    #: ``tcp``/``udp``/``sctp``/``icmp``, a protocol number as text, or None (any).
    protocol: str | None
    port_min: int | None
    port_max: int | None
    remote_cidr: ipaddress.IPv4Network | None
    remote_group: str | None

    @classmethod
    def parse(cls, row: Mapping[str, Any]) -> SgRule | None:
        """Return the rule, or None when it is not an IPv4 rule."""
        if row.get("ethertype", "IPv4") != "IPv4":
            return None
        direction = row.get("direction")
        if direction not in ("ingress", "egress"):
            raise FirewallError(f"bad direction {direction!r}")
        raw = row.get("protocol")
        protocol: str | None
        if raw is None:
            protocol = None
        elif raw in _L4 or raw == "icmp":
            protocol = str(raw)
        elif raw == "ipv6-icmp":
            return None
        else:
            protocol = str(_num(raw, 0, 255))
        cidr = None
        if row.get("remote_ip_prefix") is not None:
            cidr = _net4(row["remote_ip_prefix"])
            if cidr is None:
                return None
        group = row.get("remote_group_id")
        return cls(direction == "ingress", protocol, _num(row.get("port_range_min"), 0, 65535),
                   _num(row.get("port_range_max"), 0, 65535), cidr,
                   _id(group) if group is not None else None)


@dataclass(frozen=True)
class PortFilter:
    """What one guest port may send and receive."""

    port_id: str
    network_id: str
    mac: str
    #: (MAC, IPv4 networks it may use as source): the fixed IPs, then the pairs.
    sources: tuple[tuple[str, tuple[ipaddress.IPv4Network, ...]], ...]
    groups: tuple[str, ...]

    @property
    def tap(self) -> str:
        """Return the port's tap device."""
        return netdev.tap_name(self.port_id)


@dataclass(frozen=True)
class Policy:
    """Everything the ruleset is made from."""

    ports: tuple[PortFilter, ...]
    #: Group id -> its IPv4 rules.
    rules: Mapping[str, tuple[SgRule, ...]]
    #: Group id -> the IPv4 addresses of its member ports (fixed IPs and pairs).
    members: Mapping[str, tuple[ipaddress.IPv4Network, ...]]
    #: The bridges of the networks the agent wires.
    networks: tuple[str, ...]


def _sources(port: Mapping[str, Any], mac: str) -> tuple[
        tuple[str, tuple[ipaddress.IPv4Network, ...]], ...]:
    by_mac: dict[str, list[ipaddress.IPv4Network]] = {mac: []}
    for ip in port.get("fixed_ips", []):
        net = _net4(ip["ip_address"])
        if net is not None:
            by_mac[mac].append(net)
    for pair in port.get("allowed_address_pairs", []):
        net = _net4(pair["ip_address"])
        if net is not None:
            pair_mac = _mac(pair.get("mac_address") or mac)
            by_mac.setdefault(pair_mac, []).append(net)
    return tuple((m, tuple(ipaddress.collapse_addresses(nets))) for m, nets in by_mac.items())


def parse_policy(state: Mapping[str, Any]) -> Policy:
    """Parse the agent state document into a :class:`Policy` (validating every value)."""
    ports: list[PortFilter] = []
    members: dict[str, list[ipaddress.IPv4Network]] = {}
    for net in state.get("networks", []):
        net_id = _id(net["id"])
        for port in net.get("ports", []):
            groups = tuple(_id(g) for g in port.get("security_groups", []))
            mac = _mac(port["mac_address"])
            sources = _sources(port, mac)
            for group in groups:
                members.setdefault(group, []).extend(n for _m, nets in sources for n in nets)
            secure = port.get("port_security_enabled", True)
            if secure and str(port.get("device_owner", "")).startswith("compute:"):
                ports.append(PortFilter(_id(port["id"]), net_id, mac, sources, groups))
    rules: dict[str, tuple[SgRule, ...]] = {}
    for group in state.get("security_groups", []):
        parsed = (SgRule.parse(r) for r in group.get("rules", []))
        rules[_id(group["id"])] = tuple(r for r in parsed if r is not None)
    return Policy(tuple(sorted(ports, key=lambda p: p.port_id)), rules,
                  {g: tuple(ipaddress.collapse_addresses(n)) for g, n in members.items()},
                  tuple(sorted({_id(n["id"]) for n in state.get("networks", [])})))


def zone_of(network_id: str) -> int:
    """Return the conntrack zone of a network (1..65000, from its id)."""
    return zlib.crc32(network_id.encode()) % 65000 + 1


def _set(nets: Iterable[ipaddress.IPv4Network]) -> str:
    items = [str(n) if n.prefixlen < 32 else str(n.network_address) for n in nets]
    return "{ " + ", ".join(items) + " }"


def _group_set(group: str) -> str:
    return "g_" + group.replace("-", "")[:20]


def _match(rule: SgRule, sets: set[str]) -> str | None:
    """Render a rule's match (without verdict); None when it can never match."""
    peer = "saddr" if rule.ingress else "daddr"
    parts = []
    if rule.remote_cidr is not None and rule.remote_cidr.prefixlen > 0:
        parts.append(f"ip {peer} {_set([rule.remote_cidr])}")
    if rule.remote_group is not None:
        name = _group_set(rule.remote_group)
        if name not in sets:
            return None  # a group without IPv4 members
        parts.append(f"ip {peer} @{name}")
    if rule.protocol in _L4:
        parts.append(f"ip protocol {rule.protocol}")
        if rule.port_min is not None:
            high = rule.port_max if rule.port_max is not None else rule.port_min
            ports = str(rule.port_min) if high == rule.port_min else f"{rule.port_min}-{high}"
            parts.append(f"th dport {ports}")
    elif rule.protocol == "icmp":
        parts.append("ip protocol icmp")
        if rule.port_min is not None:
            parts.append(f"icmp type {rule.port_min}")
            if rule.port_max is not None:
                parts.append(f"icmp code {rule.port_max}")
    elif rule.protocol is not None:
        parts.append(f"ip protocol {rule.protocol}")
    return " ".join(parts)


def _rule_lines(port: PortFilter, policy: Policy, ingress: bool, sets: set[str]) -> list[str]:
    lines = []
    for group in port.groups:
        for rule in policy.rules.get(group, ()):
            if rule.ingress != ingress:
                continue
            match = _match(rule, sets)
            if match is not None:
                lines.append(f"{match} counter accept".strip())
    return list(dict.fromkeys(lines))


def _egress_chain(port: PortFilter, policy: Policy, sets: set[str]) -> list[str]:
    macs = "{ " + ", ".join(m for m, _n in port.sources) + " }"
    out = [f"chain e_{port.tap} {{",
           f"ether saddr != {macs} counter drop",
           f"ether type arp jump a_{port.tap}",
           "ether type != ip counter drop",
           "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept",
           "udp sport 67 udp dport 68 counter drop"]
    out += [f"ether saddr {mac} ip saddr {_set(nets)} jump r_{port.tap}"
            for mac, nets in port.sources if nets]
    out += ["counter drop", "}", f"chain a_{port.tap} {{"]
    for mac, nets in port.sources:
        allowed = _set([*nets, ipaddress.IPv4Network("0.0.0.0/32")])
        out.append(f"ether saddr {mac} arp saddr ether {mac} arp saddr ip {allowed} accept")
    out += ["counter drop", "}", f"chain r_{port.tap} {{",
            f"meta mark & {MARK_ESTABLISHED:#x} == {MARK_ESTABLISHED:#x} counter accept",
            f"meta mark & {MARK_INVALID:#x} == {MARK_INVALID:#x} counter drop",
            "udp sport 68 udp dport 67 accept",
            *_rule_lines(port, policy, False, sets), "counter drop", "}"]
    return out


def _ingress_chain(port: PortFilter, policy: Policy, sets: set[str]) -> list[str]:
    return [f"chain i_{port.tap} {{",
            "ether type arp accept",
            "ether type != ip counter drop",
            f"meta mark & {MARK_ESTABLISHED:#x} == {MARK_ESTABLISHED:#x} counter accept",
            f"meta mark & {MARK_INVALID:#x} == {MARK_INVALID:#x} counter drop",
            "udp sport 67 udp dport 68 accept",
            *_rule_lines(port, policy, True, sets), "counter drop", "}"]


@dataclass(frozen=True)
class Tables:
    """The names of one agent's two tables."""

    ct: str
    sg: str

    @classmethod
    def for_root(cls, root: Path) -> Tables:
        """Return the table names of the agent whose state directory is ``root``."""
        h = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
        return cls(f"nubis_ct_{h}", f"nubis_sg_{h}")


def render(policy: Policy, tables: Tables) -> str:
    """Return the ``nft -f`` text that replaces both tables with ``policy``."""
    bridges = [netdev.bridge_name(n) for n in policy.networks]
    est, inv = MARK_ESTABLISHED, MARK_INVALID
    ct = [f"table ip {tables.ct} {{}}", f"delete table ip {tables.ct}",
          f"table ip {tables.ct} {{",
          "chain zone { type filter hook prerouting priority -300; policy accept;",
          *[f'iifname "{netdev.bridge_name(n)}" ct zone set {zone_of(n)}'
            for n in policy.networks],
          "}", "chain state { type filter hook prerouting priority -150; policy accept;"]
    if bridges:
        names = "{ " + ", ".join(f'"{b}"' for b in bridges) + " }"
        ct += [f"iifname {names} meta mark set meta mark & {~(est | inv) & 0xffffffff:#x}",
               f"iifname {names} ct state established,related meta mark set meta mark | {est:#x}",
               f"iifname {names} ct state invalid meta mark set meta mark | {inv:#x}"]
    ct.append("}\n}")
    sets = {g: nets for g, nets in policy.members.items() if nets}
    set_names = {_group_set(g) for g in sets}
    sg = [f"table bridge {tables.sg} {{}}", f"delete table bridge {tables.sg}",
          f"table bridge {tables.sg} {{"]
    for group, nets in sorted(sets.items()):
        sg += [f"set {_group_set(group)} {{ type ipv4_addr; flags interval; "
               f"elements = {_set(nets)} }}"]
    # Two base chains: an ``accept`` ends only its own chain, so a packet between two
    # filtered ports passes the sender's egress chain, then the receiver's ingress.
    sg.append("chain egress { type filter hook forward priority 0; policy accept;")
    sg += [f'iifname "{port.tap}" jump e_{port.tap}' for port in policy.ports]
    sg += ["}", "chain ingress { type filter hook forward priority 1; policy accept;"]
    sg += [f'oifname "{port.tap}" jump i_{port.tap}' for port in policy.ports]
    sg.append("}")
    for port in policy.ports:
        sg += _egress_chain(port, policy, set_names) + _ingress_chain(port, policy, set_names)
    sg.append("}")
    return "\n".join(ct + sg) + "\n"


def _nft(args: Sequence[str], text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NFT, *args], input=text, capture_output=True, text=True,
                          timeout=60, check=False)


class Firewall:
    """Apply one agent's security group ruleset; remove its tables on teardown."""

    def __init__(self, root: Path,
                 on_change: Callable[[Policy | None, Policy], object] | None = None) -> None:
        self.tables = Tables.for_root(root)
        self.applied: str | None = None
        #: The policy of the ruleset in force (None before the first apply).
        self.policy: Policy | None = None
        #: Called with (previous policy, new policy) once a new ruleset is in force
        #: (the agent cuts the connections it no longer allows, :mod:`.conntrack`).
        self.on_change = on_change

    def apply(self, state: Mapping[str, Any]) -> bool:
        """Bring the tables in line with ``state``; return whether ``nft`` was run."""
        policy = parse_policy(state)
        text = render(policy, self.tables)
        if text == self.applied:
            return False
        proc = _nft(["-f", "-"], text)
        if proc.returncode != 0:
            self.applied = None
            raise FirewallError(f"nft refused the ruleset: {proc.stderr.strip()[:2000]}")
        self.applied = text
        before, self.policy = self.policy, policy
        if self.on_change is not None:
            self.on_change(before, policy)
        return True

    def remove(self) -> None:
        """Delete both tables (missing ones are fine)."""
        for family, name in (("bridge", self.tables.sg), ("ip", self.tables.ct)):
            _nft(["delete", "table", family, name])
        self.applied = None
        self.policy = None

    def exists(self) -> list[str]:
        """Return which of this agent's tables exist (``family name``)."""
        listed = _nft(["list", "tables"]).stdout.split()
        found = set(zip(listed[1::3], listed[2::3], strict=False))
        return [f"{f} {n}" for f, n in (("ip", self.tables.ct), ("bridge", self.tables.sg))
                if (f, n) in found]
