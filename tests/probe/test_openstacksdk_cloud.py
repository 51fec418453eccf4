"""A whole `nubis up` cloud driven through openstacksdk: catalog, identity, placement."""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openstack
import pytest

from tests.functional.identity.server import cli_env, clouds_entry
from tests.functional.identity.test_parity_clients import done_when_scenario
from tests.functional.proxy.cloud import Cloud, start_cloud


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("sdk") / "state")
    try:
        yield c
    finally:
        c.down()


def connect(state: Path, name: str):  # type: ignore[no-untyped-def]
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(state / "clouds.yaml")
    try:
        return openstack.connect(cloud=name)
    finally:
        del os.environ["OS_CLIENT_CONFIG_FILE"]


def test_catalog_lists_every_running_service(cloud: Cloud) -> None:
    conn = connect(cloud.state, "nubis-admin")
    types = {s.type for s in conn.identity.services()}
    assert {"identity", "image", "object-store", "placement"} <= types
    placement = conn.session.get_endpoint(service_type="placement", interface="public")
    assert placement.endswith("/placement")


def test_placement_through_openstacksdk(cloud: Cloud) -> None:
    conn = connect(cloud.state, "nubis-admin")
    rp = conn.placement.create_resource_provider(name="sdk-host-1")
    try:
        names = [p.name for p in conn.placement.resource_providers()]
        assert "sdk-host-1" in names
        got = conn.placement.get_resource_provider(rp.id)
        assert got.name == "sdk-host-1" and got.generation == 0
    finally:
        conn.placement.delete_resource_provider(rp.id)
    assert "sdk-host-1" not in [p.name for p in conn.placement.resource_providers()]


def test_demo_member_cannot_use_placement(cloud: Cloud) -> None:
    conn = connect(cloud.state, "nubis-demo")
    with pytest.raises(openstack.exceptions.HttpException) as err:
        list(conn.placement.resource_providers())
    assert err.value.status_code == 403


class UpCloudLogins:
    """The ``openstack`` CLI's view of a ``nubis up`` state dir (its clouds.yaml)."""

    def __init__(self, state: Path) -> None:
        self.clouds_yaml = state / "clouds.yaml"
        self.auth_url = str(self.cloud("nubis-admin")["auth"]["auth_url"])

    def cloud(self, name: str) -> dict[str, Any]:
        return clouds_entry(self.clouds_yaml, name)

    def cli_env(self) -> dict[str, str]:
        return cli_env(self.clouds_yaml)


def test_keystone_parity_done_when_on_nubis_up(cloud: Cloud) -> None:
    """Issue 15's acceptance scenario against the cloud ``nubis up`` made."""
    done_when_scenario(UpCloudLogins(cloud.state))  # type: ignore[arg-type]


def test_idle_keep_alive_connections_outlive_a_cli_poll(cloud: Cloud) -> None:
    """A connection idle longer than ``openstack --wait``'s 5 s poll is still served.

    uvicorn's default keep-alive (5 s) raced that poll: the CLI reused the
    connection as the server closed it and failed with "connection reset by peer".
    """
    conn = connect(cloud.state, "nubis-admin")
    urls = [conn.session.get_endpoint(service_type=kind, interface="public")
            for kind in ("identity", "placement")]
    pooled = [http.client.HTTPConnection(urlsplit(u).hostname, urlsplit(u).port, timeout=30)
              for u in urls]
    for c, u in zip(pooled, urls, strict=True):
        c.request("GET", urlsplit(u).path or "/")
        c.getresponse().read()
    time.sleep(6)  # idle past uvicorn's default keep-alive; not a speed threshold
    for c, u in zip(pooled, urls, strict=True):
        c.request("GET", urlsplit(u).path or "/")
        resp = c.getresponse()
        resp.read()
        assert resp.status < 500 and c.sock is not None
        c.close()
