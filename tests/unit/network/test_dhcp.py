"""Unit tests of the DHCP server's rendering and its reload-or-restart decision."""

from __future__ import annotations

from nubis.daemons.network.dhcp import DhcpConfig, hosts_file, removed


def _cfg(*hosts: tuple[str, str]) -> DhcpConfig:
    return DhcpConfig(subnet_id="s1", cidr="10.0.0.0/24", gateway_ip="10.0.0.1",
                      dhcp_ip="10.0.0.2", interface="tap-dhcp", namespace="ns",
                      dns_nameservers=(), host_routes=(), mtu=1500, hosts=hosts)


def test_hosts_file_has_one_static_line_per_port() -> None:
    cfg = _cfg(("fa:16:3e:00:00:02", "10.0.0.4"), ("fa:16:3e:00:00:01", "10.0.0.3"))
    assert hosts_file(cfg).decode().splitlines() == [
        "fa:16:3e:00:00:01,host-10-0-0-3,10.0.0.3",
        "fa:16:3e:00:00:02,host-10-0-0-4,10.0.0.4"]


def test_added_ports_only_reload() -> None:
    old = _cfg(("fa:16:3e:00:00:01", "10.0.0.3"))
    assert removed(old, _cfg(("fa:16:3e:00:00:01", "10.0.0.3"),
                             ("fa:16:3e:00:00:02", "10.0.0.4"))) == set()


def test_a_removed_or_moved_host_needs_a_restart() -> None:
    old = _cfg(("fa:16:3e:00:00:01", "10.0.0.3"), ("fa:16:3e:00:00:02", "10.0.0.4"))
    assert removed(old, _cfg(("fa:16:3e:00:00:02", "10.0.0.4"))) == {
        ("fa:16:3e:00:00:01", "10.0.0.3")}
    moved = _cfg(("fa:16:3e:00:00:09", "10.0.0.3"), ("fa:16:3e:00:00:02", "10.0.0.4"))
    assert removed(old, moved) == {("fa:16:3e:00:00:01", "10.0.0.3")}
