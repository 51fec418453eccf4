"""Probe tests: the proxy against real daemons, with servers killed and uploads cut off."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nubis.common.net import local_socket_name
from nubis.daemons.storage.config import node_settings
from swiftclient import client as sc
from swiftclient.exceptions import ClientException

from tests.functional.proxy.cloud import Cloud, eventually, start_cloud

pytestmark = pytest.mark.probe


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("nubis-probe"))
    try:
        yield c
    finally:
        c.down()


def connect(cloud: Cloud) -> sc.Connection:
    return sc.Connection(authurl=cloud.auth_url, user="test:tester",
                         key=cloud.config.tempauth.users["test:tester"].key, retries=0)


def test_one_object_server_down_loses_nothing(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "ha-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    before = {f"before-{i}": f"b{i}".encode() * 100 for i in range(10)}
    for name, data in before.items():
        conn.put_object(cont, name, data)
    cloud.kill("object-server-1")
    acked: dict[str, bytes] = {}
    for i in range(30):
        data = hashlib.sha256(str(i).encode()).digest() * (1 + i * 40)
        etag = conn.put_object(cont, f"during-{i}", data)
        assert etag == hashlib.md5(data).hexdigest()
        acked[f"during-{i}"] = data
    big = bytes(range(256)) * 4096  # streamed path (1 MiB)
    conn.put_object(cont, "during-big", big)
    acked["during-big"] = big
    for name, data in {**before, **acked}.items():
        assert conn.get_object(cont, name)[1] == data, name
    # Bring the node back (``nubis up`` restarts only what is missing): still all there.
    r = cloud.up()
    assert r.returncode == 0, r.stderr
    assert "running proxy" in r.stdout and "started object-server-1" in r.stdout
    for name, data in {**before, **acked}.items():
        assert conn.get_object(cont, name)[1] == data, name
    def all_listed() -> None:
        names = {o["name"] for o in conn.get_container(cont)[1]}
        assert names == set(before) | set(acked)

    eventually(all_listed)


def test_container_server_down_writes_still_succeed(cloud: Cloud) -> None:
    conn = connect(cloud)
    cont = "cs-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    cloud.kill("container-server-2")
    try:
        for i in range(12):
            conn.put_object(cont, f"o{i}", b"x" * i)
        for i in range(12):
            assert conn.get_object(cont, f"o{i}")[1] == b"x" * i
        assert conn.head_container(cont)["x-storage-policy"] == "rep3"
    finally:
        r = cloud.up()
        assert r.returncode == 0, r.stderr
    # The object servers queued the updates it missed; the updaters deliver them.
    for node in range(4):
        r = subprocess.run([sys.executable, "-m", "nubis", "daemon", "object-updater", "--once",
                            "--config", str(cloud.state / "nubis.toml")],
                           env={**os.environ, "NUBIS_STORAGE_NODE": str(node)},
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr

    def listed() -> None:
        names = {o["name"] for o in conn.get_container(cont)[1]}
        assert names == {f"o{i}" for i in range(12)}

    eventually(listed)


def _cut_upload(cloud: Cloud, path: str, token: str, chunked: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", cloud.config.proxy.port), timeout=10)
    try:
        if chunked:
            head = (f"PUT {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                    f"Transfer-Encoding: chunked\r\n\r\n")
            sock.sendall(head.encode())
            for _ in range(8):
                sock.sendall(b"10000\r\n" + b"c" * 0x10000 + b"\r\n")
        else:
            head = (f"PUT {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {token}\r\n"
                    f"Content-Length: {4 * 1024 * 1024}\r\n\r\n")
            sock.sendall(head.encode())
            sock.sendall(b"x" * (1024 * 1024))
    finally:
        sock.close()


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("size", ["small", "large"])
def test_cut_off_upload_leaves_nothing(cloud: Cloud, chunked: bool, size: str) -> None:
    conn = connect(cloud)
    cont = "cut-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    url, token = conn.get_auth()
    base = url.split("/v1/", 1)[1]
    if size == "small":
        sock = socket.create_connection(("127.0.0.1", cloud.config.proxy.port), timeout=10)
        sock.sendall((f"PUT /v1/{base}/{cont}/victim HTTP/1.1\r\nHost: x\r\n"
                      f"X-Auth-Token: {token}\r\nContent-Length: 4096\r\n\r\n").encode()
                     + b"y" * 1000)
        sock.close()
    else:
        _cut_upload(cloud, f"/v1/{base}/{cont}/victim", token, chunked)
    # A later complete request on a fresh connection is served normally...
    conn.put_object(cont, "witness", b"ok")
    # ...and the cut-off object is neither listed nor readable.
    def only_witness() -> None:
        assert [o["name"] for o in conn.get_container(cont)[1]] == ["witness"]

    eventually(only_witness)
    with pytest.raises(ClientException) as info:
        conn.get_object(cont, "victim")
    assert info.value.http_status == 404


def test_state_dir_layout(cloud: Cloud) -> None:
    state: Path = cloud.state
    assert (state / "nubis.toml").is_file() and (state / "swiftrc").is_file()
    # One object ring per storage policy (rep3, rep2, ec42, ec84), each on its own
    # devices: three per node.
    assert {p.name for p in (state / "rings").glob("*.ring")} == {
        "object.ring", "object-1.ring", "object-2.ring", "object-3.ring",
        "container.ring", "account.ring"}
    assert len(list((state / "devices").glob("node*/d*"))) == 12


def _unix_sockets(name: str) -> list[str]:
    """Return the states of this host's Unix sockets named ``name``.

    ``01``: listening; ``03``: connected.
    """
    rows = Path("/proc/net/unix").read_text().splitlines()[1:]
    return [row.split()[5] for row in rows
            if len(row.split()) == 8 and row.split()[7] == "@" + name.lstrip("\0")]


def test_the_proxy_reaches_local_storage_servers_by_unix_socket(cloud: Cloud) -> None:
    """``[cluster] local_sockets`` (on by default): storage servers listen on their names.

    And the proxy's backend connections use them.
    """
    conn = connect(cloud)
    cont = "ux-" + uuid.uuid4().hex[:6]
    conn.put_container(cont)
    for i in range(8):
        conn.put_object(cont, f"o{i}", b"u" * (100 + i))
        assert conn.get_object(cont, f"o{i}")[1] == b"u" * (100 + i)
    storage = cloud.config.storage
    connected = 0
    for index in range(storage.node_count):
        node = node_settings(storage, cloud.state, index)
        for port in (node.object_port, node.container_port, node.account_port):
            states = _unix_sockets(local_socket_name(node.bind_ip, port))
            assert "01" in states, (index, port, states)  # listening
            connected += states.count("03")
    # The 3 replicas of 8 objects, their container and account: pooled Unix connections.
    assert connected >= 3
