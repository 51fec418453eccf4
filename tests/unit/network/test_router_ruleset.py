"""The router namespace's nftables table, rendered from the agent state."""

from __future__ import annotations

from nubis.daemons.network.router import TABLE, RouterSpec, ruleset


def _leg(port: str, ip: str, cidr: str, gateway: str | None = None) -> dict[str, object]:
    return {"port_id": port, "network_id": "n-" + port, "subnet_id": "s-" + port,
            "mac": "fa:16:3e:00:00:01", "ip": ip, "cidr": cidr, "gateway_ip": gateway,
            "mtu": 1450}


def _spec(snat: bool, gateway: bool = True) -> RouterSpec:
    return RouterSpec.parse({
        "id": "r1", "admin_state_up": True, "enable_snat": snat,
        "gateway": _leg("gwport-0000-1111", "172.24.4.10", "172.24.4.0/24", "172.24.4.1")
        if gateway else None,
        "interfaces": [_leg("ifport-0000-2222", "10.0.0.1", "10.0.0.0/26")],
        "floating_ips": [{"floating_ip": "172.24.4.20", "fixed_ip": "10.0.0.5"}]})


def test_floating_ip_and_snat_rules() -> None:
    text = ruleset(_spec(snat=True))
    lines = [line.strip() for line in text.splitlines()]
    # Replaced whole in one nft transaction: create-if-missing, delete, define.
    assert lines[:3] == [f"table ip {TABLE} {{}}", f"delete table ip {TABLE}",
                         f"table ip {TABLE} {{"]
    assert "ip daddr 172.24.4.20 dnat to 10.0.0.5" in lines
    qg = "qg-gwport00001"
    assert f'oifname "{qg}" ip saddr 10.0.0.5 snat to 172.24.4.20' in lines
    assert f'oifname "{qg}" ip saddr 10.0.0.0/26 snat to 172.24.4.10' in lines
    # Hairpin, as Neutron (with or without enable_snat): DNATed traffic from inside
    # that goes back inside is SNATed to the gateway address.
    hairpin = f'oifname != "{qg}" ct status dnat ip saddr {{ 10.0.0.0/26 }} snat to 172.24.4.10'
    assert hairpin in lines
    assert hairpin in ruleset(_spec(snat=False))
    # The floating IP's own SNAT comes before the subnet's (first match wins).
    assert lines.index(f'oifname "{qg}" ip saddr 10.0.0.5 snat to 172.24.4.20') < \
        lines.index(f'oifname "{qg}" ip saddr 10.0.0.0/26 snat to 172.24.4.10')


def test_no_snat_and_no_gateway() -> None:
    assert "ip saddr 10.0.0.0/26 snat" not in ruleset(_spec(snat=False))
    assert "dnat to 10.0.0.5" in ruleset(_spec(snat=False))
    bare = ruleset(_spec(snat=True, gateway=False))
    assert "snat" not in bare and "dnat" not in bare
