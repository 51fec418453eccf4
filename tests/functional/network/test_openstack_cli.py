"""The ``openstack`` CLI against the network API: create, list, show, delete."""

from __future__ import annotations

import uuid

from tests.functional.network.conftest import NetCloud


def test_cli_network_flow(net: NetCloud) -> None:
    sfx = uuid.uuid4().hex[:6]
    n = net.osc("network", "create", f"cli-{sfx}", "-f", "json")
    assert n["name"] == f"cli-{sfx}" and n["status"] == "ACTIVE"
    s = net.osc("subnet", "create", "--network", f"cli-{sfx}", "--subnet-range",
                "10.0.0.0/24", f"cli-sub-{sfx}", "-f", "json")
    assert s["cidr"] == "10.0.0.0/24" and s["gateway_ip"] == "10.0.0.1"
    p = net.osc("port", "create", "--network", f"cli-{sfx}", "--fixed-ip",
                "ip-address=10.0.0.50", f"cli-port-{sfx}", "-f", "json")
    assert p["fixed_ips"][0]["ip_address"] == "10.0.0.50"
    net.osc("port", "set", "--fixed-ip", "ip-address=10.0.0.60", p["id"])
    net.osc("port", "unset", "--fixed-ip", f"subnet={s['id']},ip-address=10.0.0.50", p["id"])
    shown = net.osc("port", "show", p["id"], "-f", "json")
    assert [ip["ip_address"] for ip in shown["fixed_ips"]] == ["10.0.0.60"]
    sg = net.osc("security", "group", "create", f"cli-sg-{sfx}", "-f", "json")
    rule = net.osc("security", "group", "rule", "create", "--protocol", "icmp",
                   "--ingress", sg["id"], "-f", "json")
    assert rule["protocol"] == "icmp"
    rules = net.osc("security", "group", "rule", "list", sg["id"], "-f", "json")
    assert rule["id"] in {r["ID"] for r in rules}
    ports = net.osc("port", "list", "--network", f"cli-{sfx}", "-f", "json")
    assert p["id"] in [x["ID"] for x in ports] and len(ports) == 2  # with the DHCP port
    assert f"cli-{sfx}" in {x["Name"] for x in net.osc("network", "list", "-f", "json")}
    assert s["id"] in {x["ID"] for x in net.osc("subnet", "list", "-f", "json")}
    groups = {x["Name"] for x in net.osc("security", "group", "list", "-f", "json")}
    assert {"default", f"cli-sg-{sfx}"} <= groups
    net.osc("security", "group", "rule", "delete", rule["id"])
    net.osc("security", "group", "delete", sg["id"])
    net.osc("port", "delete", p["id"])
    net.osc("subnet", "delete", s["id"])
    net.osc("network", "delete", n["id"])
    assert f"cli-{sfx}" not in {x["Name"] for x in net.osc("network", "list", "-f", "json")}
