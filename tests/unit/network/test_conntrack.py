"""Which connections a security group change revokes (the grant diff; the probe cuts them)."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace
from typing import Any

from nubis.daemons.network import conntrack, secgroups

from tests.unit.network.test_secgroups import GROUP, NET, P1, _port, _rule, _state

P2 = "b2222222-2222-3333-4444-555555555555"
SSH = _rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22,
            remote_ip_prefix="192.0.2.0/24")
PING = _rule("ingress", protocol="icmp")
OUT = _rule("egress")


def _policy(rules: list[dict[str, Any]], **port: Any) -> secgroups.Policy:
    return secgroups.parse_policy(_state([_port(P1, "fa:16:3e:00:00:01", "10.0.0.3", **port)],
                                         rules))


def _tuple(saddr: str, daddr: str, proto: int, dport: int | None = None) -> Any:
    return SimpleNamespace(saddr=saddr, daddr=daddr, proto=proto, dport=dport)


def test_only_lost_grants_are_revoked() -> None:
    before = _policy([SSH, PING, OUT])
    assert conntrack.revoked(None, before) == []  # nothing known before the first ruleset
    assert conntrack.revoked(before, before) == []
    (rev,) = conntrack.revoked(before, _policy([PING, OUT]))
    assert rev.zone == secgroups.zone_of(NET)
    assert [str(n) for n in rev.addresses] == ["10.0.0.3/32"]
    (grant,) = rev.grants
    assert (grant.ingress, grant.protocol, grant.port_min) == (True, 6, 22)
    # a port that leaves the group loses all its grants; a port no longer filtered none
    (rev,) = conntrack.revoked(before, _policy([SSH, PING, OUT], security_groups=[]))
    assert len(rev.grants) == 3
    assert conntrack.revoked(before, _policy([], port_security_enabled=False)) == []


def _grant(row: dict[str, Any]) -> conntrack.Grant:
    rule = secgroups.SgRule.parse(row)
    assert rule is not None
    return conntrack._grant(rule, _policy([]))


def test_a_grant_admits_what_its_rule_let_in() -> None:
    mine = (ipaddress.IPv4Network("10.0.0.3/32"),)
    ssh = _grant(SSH)
    assert ssh.admitted(_tuple("192.0.2.9", "10.0.0.3", 6, 22), mine)
    assert not ssh.admitted(_tuple("198.51.100.9", "10.0.0.3", 6, 22), mine)  # other peer
    assert not ssh.admitted(_tuple("192.0.2.9", "10.0.0.3", 6, 80), mine)  # other port
    assert not ssh.admitted(_tuple("192.0.2.9", "10.0.0.3", 17, 22), mine)  # UDP
    assert not ssh.admitted(_tuple("10.0.0.3", "192.0.2.9", 6, 22), mine)  # outgoing
    out = _grant(OUT)
    assert out.admitted(_tuple("10.0.0.3", "203.0.113.1", 17, 53), mine)
    assert not out.admitted(_tuple("203.0.113.1", "10.0.0.3", 17, 53), mine)


def test_a_remote_group_grant_covers_its_members_at_the_time() -> None:
    by_group = _rule("ingress", protocol="tcp", remote_group_id=GROUP)
    two = secgroups.parse_policy(_state([
        _port(P1, "fa:16:3e:00:00:01", "10.0.0.3"),
        _port(P2, "fa:16:3e:00:00:02", "10.0.0.4")], [by_group]))
    one = secgroups.parse_policy(_state([
        _port(P1, "fa:16:3e:00:00:01", "10.0.0.3"),
        _port(P2, "fa:16:3e:00:00:02", "10.0.0.4", security_groups=[])], [by_group]))
    revs = {str(r.addresses[0]): r for r in conntrack.revoked(two, one)}
    (lost,) = revs["10.0.0.3/32"].grants  # P1 no longer admits P2's address
    assert lost.remotes is not None and {str(n) for n in lost.remotes} == {
        "10.0.0.3/32", "10.0.0.4/32"}
