"""The compute API's port handling (``api/compute/netclient.py``) against the real network API.

Ports a server's build makes are deleted with it; ports it claims are only unbound;
a request that fails half way leaves no port behind; ``auto`` finds the project's
one network.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nubis.api.compute.netclient import CLAIMED_OWNER, OWNER, NetworkClient
from nubis.api.shared.errors import BadRequestError, ConflictError
from nubis.common.httpclient import HTTPClient

from tests.functional.network.conftest import NetCloud, Project


def _on(net: NetCloud) -> Callable[[Callable[[NetworkClient], Awaitable[Any]]], Any]:
    """Return ``run(step)``: ``await step(client)`` on a fresh client of ``net``."""
    def run(step: Callable[[NetworkClient], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            http = HTTPClient(timeout=30)
            try:
                return await step(NetworkClient(http, f"{net.server.url}/network"))
            finally:
                await http.close()
        return asyncio.run(main())
    return run


def test_made_ports_go_claimed_ports_stay(net: NetCloud, alt: Project) -> None:
    _run = _on(net)
    conn = net.project_sdk(alt)
    token, project = conn.auth_token, conn.current_project_id
    n = conn.network.create_network(name="only")
    conn.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.60.0.0/24")
    own = conn.network.create_port(network_id=n.id, name="mine")
    server = str(uuid.uuid4())
    try:
        vifs = _run(lambda c: c.allocate([server], [{"uuid": n.id}, {"port": own.id}],
                                         token, project))[server]
        assert [v.created for v in vifs] == [True, False]
        owners = {p.id: p.device_owner for p in conn.network.ports(device_id=server)}
        assert owners == {vifs[0].port_id: OWNER, own.id: CLAIMED_OWNER}
        addrs = _run(lambda c: c.addresses([server], token))
        assert len(addrs[server]["only"]) == 2
        # A claimed port cannot be claimed twice.
        with pytest.raises(ConflictError):
            _run(lambda c: c.allocate([str(uuid.uuid4())], [{"port": own.id}], token,
                                      project))
        assert _run(lambda c: c.release(server, token)) == 1
        assert not list(conn.network.ports(device_id=server))
        kept = conn.network.get_port(own.id)
        assert kept.device_id == "" and kept.device_owner == ""
        # auto: the project's one network.
        auto = _run(lambda c: c.allocate([server], "auto", token, project))[server]
        assert [v.network_id for v in auto] == [n.id]
        _run(lambda c: c.release(server, token))
        # A request failing half way leaves nothing behind.
        with pytest.raises(BadRequestError):
            _run(lambda c: c.allocate([server], [{"uuid": n.id}, {"uuid": str(uuid.uuid4())}],
                                      token, project))
        mine = {p.id for p in conn.network.ports(network_id=n.id)
                if p.device_owner != "network:dhcp"}
        assert mine == {own.id}
    finally:
        conn.network.delete_port(own)
        conn.network.delete_network(n)
