"""IPAM: pools and gateways, and allocation that never hands out an address twice."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import pytest
from nubis.api.network import ipam
from nubis.api.network.errors import NeutronError
from nubis.api.network.store import NetworkStore, encode
from nubis.common.db import make_engine


def test_default_pools_skip_the_gateway() -> None:
    net = ipam.parse_cidr("10.0.0.0/24")
    assert [p.as_dict() for p in ipam.default_pools(net, ipam.parse_ip("10.0.0.1"))] == [
        {"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert [p.as_dict() for p in ipam.default_pools(net, ipam.parse_ip("10.0.0.100"))] == [
        {"start": "10.0.0.1", "end": "10.0.0.99"}, {"start": "10.0.0.101", "end": "10.0.0.254"}]
    assert [p.as_dict() for p in ipam.default_pools(net, None)] == [
        {"start": "10.0.0.1", "end": "10.0.0.254"}]


@pytest.mark.parametrize("raw,kind", [
    ("10.0.0.1/24", "HTTPBadRequest"), ("nonsense", "HTTPBadRequest"),
    ("fd00::/64", "HTTPBadRequest"), ("10.0.0.0/31", "InvalidInput")])
def test_bad_cidrs(raw: str, kind: str) -> None:
    with pytest.raises(NeutronError) as exc:
        ipam.parse_cidr(raw)
    assert exc.value.kind == kind and exc.value.status == 400


def test_pools_must_fit_and_not_overlap() -> None:
    net = ipam.parse_cidr("10.0.0.0/24")
    gw = ipam.parse_ip("10.0.0.1")
    with pytest.raises(NeutronError):
        ipam.parse_pools([{"start": "10.0.0.2", "end": "10.0.1.5"}], net, gw)
    with pytest.raises(NeutronError):
        ipam.parse_pools([{"start": "10.0.0.2", "end": "10.0.0.9"},
                          {"start": "10.0.0.5", "end": "10.0.0.20"}], net, gw)
    with pytest.raises(NeutronError) as exc:
        ipam.parse_pools([{"start": "10.0.0.1", "end": "10.0.0.9"}], net, gw)
    assert exc.value.status == 409


def test_pick_lowest_then_spread() -> None:
    pools = [ipam.Pool(ipam.parse_ip("10.0.0.2"), ipam.parse_ip("10.0.0.10"))]
    used = {int(ipam.parse_ip("10.0.0.2"))}
    assert str(ipam.pick(pools, used, 0)) == "10.0.0.3"
    assert ipam.pick(pools, used, 3) in [ipam.parse_ip(f"10.0.0.{i}") for i in range(3, 11)]
    full = {int(ipam.parse_ip(f"10.0.0.{i}")) for i in range(2, 11)}
    assert ipam.pick(pools, full, 0) is None


def _store(tmp_path: Path) -> tuple[NetworkStore, str, str]:
    store = NetworkStore(make_engine(f"sqlite:///{tmp_path / 'net.db'}"))
    store.migrate()
    net = store.create_network({"project_id": "p", "name": "n", "network_type": "vxlan",
                                "mtu": 1450})
    cidr = ipam.parse_cidr("10.0.0.0/24")
    subnet = store.create_subnet(encode({
        "project_id": "p", "network_id": net.id, "ip_version": 4, "cidr": str(cidr),
        "gateway_ip": "10.0.0.1", "allocation_pools": [
            p.as_dict() for p in ipam.default_pools(cidr, ipam.parse_ip("10.0.0.1"))]}))
    return store, net.id, subnet.id


def _hammer(store: NetworkStore, net_id: str, threads: int, each: int) -> tuple[
        list[str], list[NeutronError]]:
    got: list[str] = []
    refused: list[NeutronError] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(each):
            try:
                port = store.create_port({"project_id": "p", "network_id": net_id}, None, [])
            except NeutronError as exc:
                with lock:
                    refused.append(exc)
                continue
            with lock:
                got.extend(ip for _sub, ip in port.fixed_ips)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    return got, refused


def test_concurrent_allocations_are_unique(tmp_path: Path) -> None:
    store, net_id, _ = _store(tmp_path)
    got, refused = _hammer(store, net_id, threads=8, each=15)
    assert not refused
    assert len(got) == 120 and len(set(got)) == 120
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.0.0.0/24") for ip in got)
    assert "10.0.0.1" not in got
    macs = [p.mac_address for p in store.list_ports()]
    assert len(set(macs)) == len(macs) == 120


def test_concurrent_exhaustion_hands_out_each_address_once(tmp_path: Path) -> None:
    store, net_id, _ = _store(tmp_path)
    got, refused = _hammer(store, net_id, threads=8, each=35)  # 280 wanted, 253 exist
    assert len(got) == 253 and len(set(got)) == 253
    assert len(refused) == 27
    assert {e.kind for e in refused} == {"IpAddressGenerationFailure"}
    assert len(store.list_ports()) == 253
