"""The security group ruleset the agent renders (text only; the probe tests apply it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nubis.daemons.network import secgroups

NET = "11111111-2222-3333-4444-555555555555"
GROUP = "aaaaaaaa-2222-3333-4444-555555555555"
P1 = "b1111111-2222-3333-4444-555555555555"


def _rule(direction: str, **kw: Any) -> dict[str, Any]:
    return {"direction": direction, "ethertype": "IPv4", "protocol": None,
            "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
            "remote_group_id": None, **kw}


def _port(pid: str, mac: str, ip: str, **kw: Any) -> dict[str, Any]:
    return {"id": pid, "mac_address": mac, "device_owner": "compute:nova",
            "fixed_ips": [{"subnet_id": "s", "ip_address": ip}], "security_groups": [GROUP],
            "port_security_enabled": True, "allowed_address_pairs": [], **kw}


def _state(ports: list[dict[str, Any]], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"networks": [{"id": NET, "ports": ports}],
            "security_groups": [{"id": GROUP, "rules": rules}]}


def _render(state: dict[str, Any]) -> str:
    return secgroups.render(secgroups.parse_policy(state),
                            secgroups.Tables.for_root(Path("/nonexistent/x")))


def test_rules_render_as_matches() -> None:
    text = _render(_state([_port(P1, "fa:16:3e:00:00:01", "10.0.0.3")], [
        _rule("egress"), _rule("egress", ethertype="IPv6"),
        _rule("ingress", remote_group_id=GROUP),
        _rule("ingress", protocol="tcp", port_range_min=22, port_range_max=22,
              remote_ip_prefix="0.0.0.0/0"),
        _rule("ingress", protocol="udp", port_range_min=1000, port_range_max=2000,
              remote_ip_prefix="192.168.0.0/16"),
        _rule("ingress", protocol="icmp", port_range_min=8, port_range_max=0),
        _rule("ingress", protocol="47")]))
    tap = "tapb1111111222"
    assert f'iifname "{tap}" jump e_{tap}' in text and f'oifname "{tap}" jump i_{tap}' in text
    ingress = text.split(f"chain i_{tap} {{")[1].split("\n}\n")[0]
    assert "ip saddr @g_aaaaaaaa222233334444 counter accept" in ingress
    assert "ip protocol tcp th dport 22 counter accept" in ingress
    assert "ip saddr { 192.168.0.0/16 } ip protocol udp th dport 1000-2000" in ingress
    assert "ip protocol icmp icmp type 8 icmp code 0 counter accept" in ingress
    assert "ip protocol 47 counter accept" in ingress
    assert ingress.strip().endswith("counter drop")
    egress = text.split(f"chain r_{tap} {{")[1].split("\n}\n")[0]
    assert "\ncounter accept" in egress  # the IPv4 egress-anywhere rule; IPv6 is not rendered
    assert "elements = { 10.0.0.3 }" in text
    assert f"ct zone set {secgroups.zone_of(NET)}" in text


def test_anti_spoofing_covers_fixed_ips_and_pairs() -> None:
    port = _port(P1, "fa:16:3e:00:00:01", "10.0.0.3", allowed_address_pairs=[
        {"ip_address": "10.0.1.0/24", "mac_address": "fa:16:3e:00:00:09"},
        {"ip_address": "10.0.0.9"}])
    text = _render(_state([port], [_rule("egress")]))
    assert "ether saddr != { fa:16:3e:00:00:01, fa:16:3e:00:00:09 } counter drop" in text
    assert "ether saddr fa:16:3e:00:00:01 ip saddr { 10.0.0.3, 10.0.0.9 } jump" in text
    assert "ether saddr fa:16:3e:00:00:09 ip saddr { 10.0.1.0/24 } jump" in text
    assert "arp saddr ether fa:16:3e:00:00:09 arp saddr ip { 10.0.1.0/24, 0.0.0.0 }" in text


def test_unfiltered_ports() -> None:
    off = _port(P1, "fa:16:3e:00:00:01", "10.0.0.3", port_security_enabled=False,
                security_groups=[])
    dhcp = _port("c1111111-2222", "fa:16:3e:00:00:02", "10.0.0.2", device_owner="network:dhcp")
    text = _render(_state([off, dhcp], [_rule("egress")]))
    assert "jump e_" not in text and "jump i_" not in text
    # The DHCP port is still a member of its groups (remote group sets).
    assert "10.0.0.2" in text


@pytest.mark.parametrize("bad", [
    {"security_groups": ['g"; flush ruleset']},
    {"mac_address": "fa:16:3e:00:00:01 drop"},
    {"fixed_ips": [{"ip_address": "10.0.0.3 }"}]},
    {"id": "p1 accept"},
])
def test_values_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(secgroups.FirewallError):
        _render(_state([_port(P1, "fa:16:3e:00:00:01", "10.0.0.3", **bad)], []))


def test_bad_rule_values_are_refused() -> None:
    with pytest.raises(secgroups.FirewallError):
        _render(_state([], [_rule("ingress", protocol="tcp; drop")]))
    with pytest.raises(secgroups.FirewallError):
        _render(_state([], [_rule("ingress", protocol="tcp", port_range_min=70000)]))
