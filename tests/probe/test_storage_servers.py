"""Probe: the real object, container and account server processes on loopback.

Each server runs as ``python -m nubis daemon <name>`` on free ports with its own
state dir; the tests drive Swift's backend protocol over HTTP, kill servers
with SIGKILL and check that nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from nubis.common.httpclient import HTTPClient, HTTPClientError

from tests.ports import free_port

pytestmark = pytest.mark.probe

HOST = "127.0.0.1"
KINDS = ("object", "container", "account")


class Node:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {k: free_port() for k in KINDS}
        (root / "devices" / "d1").mkdir(parents=True)
        self.config = root / "nubis.toml"
        self.config.write_text(
            f'[cluster]\nstate_dir = "{root}"\nhash_path_suffix = "probe"\n'
            f"[storage]\nobject_port = {self.ports['object']}\n"
            f"container_port = {self.ports['container']}\n"
            f"account_port = {self.ports['account']}\n"
            "account_update_interval = 0.1\n")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, kind: str) -> None:
        env = {**os.environ, "NUBIS_STORAGE_NODE": "0"}
        log = open(self.root / f"{kind}.log", "ab")  # noqa: SIM115
        self.procs[kind] = subprocess.Popen(
            [sys.executable, "-m", "nubis", "daemon", f"{kind}-server", "--config",
             str(self.config)], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.procs[kind].poll() is None, (self.root / f"{kind}.log").read_text()
            try:
                with socket.create_connection((HOST, self.ports[kind]), timeout=1) as s:
                    s.sendall(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
                    if s.recv(100).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{kind} server did not start")

    def stop(self, kind: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs.pop(kind)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop_all(self) -> None:
        for kind in list(self.procs):
            self.stop(kind, signal.SIGKILL)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        for kind in KINDS:
            n.start(kind)
        yield n
    finally:
        n.stop_all()


def ts(i: int) -> str:
    return f"{1_700_000_000 + i}.00000"


def run(node: Node, coro_fn):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        client = HTTPClient(timeout=10)
        try:
            return await asyncio.wait_for(coro_fn(client), 120)
        finally:
            await client.close()
    return uvloop.run(main())


def container_headers(node: Node) -> dict[str, str]:
    return {"X-Container-Host": f"{HOST}:{node.ports['container']}",
            "X-Container-Partition": "0", "X-Container-Device": "d1"}


async def setup_container(node: Node, client: HTTPClient) -> None:
    r = await client.fetch(HOST, node.ports["account"], "PUT", "/d1/0/AUTH_p",
                           {"X-Timestamp": ts(0)})
    assert r.status == 201
    r = await client.fetch(HOST, node.ports["container"], "PUT", "/d1/0/AUTH_p/c",
                           {"X-Timestamp": ts(1),
                            "X-Account-Host": f"{HOST}:{node.ports['account']}",
                            "X-Account-Partition": "0", "X-Account-Device": "d1"})
    assert r.status == 201


async def poll(fn, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while True:
        got = await fn()
        if got or time.monotonic() > end:
            return got
        await asyncio.sleep(0.05)


def test_backend_protocol_end_to_end(node: Node) -> None:
    async def go(client: HTTPClient) -> None:
        await setup_container(node, client)
        op = node.ports["object"]
        names = ["photos/a.jpg", "photos/b.jpg", "readme", "z/deep/x"]
        for i, name in enumerate(names):
            r = await client.fetch(HOST, op, "PUT", f"/d1/7/AUTH_p/c/{name}",
                                   {"X-Timestamp": ts(10 + i), "Content-Type": "image/jpeg",
                                    **container_headers(node)}, name.encode() * 10)
            assert r.status == 201
        r = await client.fetch(HOST, op, "GET", "/d1/7/AUTH_p/c/readme")
        assert r.body == b"readme" * 10 and r.headers["etag"] == \
            hashlib.md5(b"readme" * 10).hexdigest()
        r = await client.fetch(HOST, op, "PUT", "/d1/7/AUTH_p/c/readme",
                               {"X-Timestamp": ts(5), "Content-Type": "x/y"}, b"old")
        assert r.status == 409 and r.headers["x-backend-timestamp"] == ts(12)
        r = await client.fetch(HOST, op, "GET", "/missing-dev/7/AUTH_p/c/readme")
        assert r.status == 507

        async def listed() -> list[object]:
            r = await client.fetch(HOST, node.ports["container"], "GET",
                                   "/d1/0/AUTH_p/c?format=json&delimiter=/")
            rows = json.loads(r.body) if r.status == 200 else []
            return rows if len(rows) == 3 else []
        rows = await poll(listed)
        assert [x.get("name", x.get("subdir")) for x in rows] == ["photos/", "readme", "z/"]

        async def account_counts() -> bool:
            r = await client.fetch(HOST, node.ports["account"], "HEAD", "/d1/0/AUTH_p")
            return r.headers.get("x-account-object-count") == "4"
        assert await poll(account_counts)
    run(node, go)


def test_sigkill_loses_no_acknowledged_write(node: Node) -> None:
    bodies = {f"obj-{i}": hashlib.sha256(b"%d" % i).digest() * (1 + (i % 7) * 800)
              for i in range(60)}

    async def write(client: HTTPClient) -> dict[str, str]:
        op = node.ports["object"]

        async def one(i: int, name: str) -> tuple[str, str]:
            r = await client.fetch(HOST, op, "PUT", f"/d1/3/AUTH_p/c/{name}",
                                   {"X-Timestamp": ts(100 + i), "Content-Type": "a/b"},
                                   bodies[name])
            assert r.status == 201
            return name, r.headers["etag"]
        got = await asyncio.gather(*(one(i, n) for i, n in enumerate(bodies)))
        return dict(got)

    etags = run(node, write)
    node.stop("object", signal.SIGKILL)  # no clean shutdown, no flush
    node.start("object")

    async def read(client: HTTPClient) -> None:
        for name, data in bodies.items():
            r = await client.fetch(HOST, node.ports["object"], "GET", f"/d1/3/AUTH_p/c/{name}")
            assert r.status == 200 and r.body == data, name
            assert r.headers["etag"] == etags[name] == hashlib.md5(data).hexdigest()
    run(node, read)


def test_container_server_down_updates_arrive_later(node: Node) -> None:
    async def before(client: HTTPClient) -> None:
        await setup_container(node, client)
    run(node, before)
    node.stop("container")

    async def write(client: HTTPClient) -> None:
        for i in range(5):
            r = await client.fetch(HOST, node.ports["object"], "PUT", f"/d1/3/AUTH_p/c/late{i}",
                                   {"X-Timestamp": ts(200 + i), "Content-Type": "a/b",
                                    **container_headers(node)}, b"x" * i)
            assert r.status == 201
    run(node, write)
    node.stop("object", signal.SIGKILL)  # the queue must survive a crash too
    node.start("object")
    node.start("container")
    # The object server does not retry by itself: one updater pass delivers them.
    updater = subprocess.run(
        [sys.executable, "-m", "nubis", "daemon", "object-updater", "--once", "--config",
         str(node.config)], env={**os.environ, "NUBIS_STORAGE_NODE": "0"},
        capture_output=True, text=True, timeout=60, check=False)
    assert updater.returncode == 0, updater.stderr
    assert "applied=5" in updater.stderr, updater.stderr

    async def check(client: HTTPClient) -> None:
        async def listed() -> bool:
            try:
                r = await client.fetch(HOST, node.ports["container"], "GET", "/d1/0/AUTH_p/c")
            except HTTPClientError:
                return False
            return r.body == b"".join(b"late%d\n" % i for i in range(5))
        assert await poll(listed)
    run(node, check)


def test_sigterm_is_a_clean_exit(node: Node) -> None:
    for kind in KINDS:
        assert node.stop(kind) == 0


def test_listings_survive_sigkill_of_container_server(node: Node) -> None:
    async def write(client: HTTPClient) -> None:
        await setup_container(node, client)
        for i in range(10):
            r = await client.fetch(HOST, node.ports["object"], "PUT", f"/d1/3/AUTH_p/c/k{i}",
                                   {"X-Timestamp": ts(300 + i), "Content-Type": "a/b",
                                    **container_headers(node)}, b"y" * i)
            assert r.status == 201
        r = await client.fetch(HOST, node.ports["container"], "HEAD", "/d1/0/AUTH_p/c")
        assert r.headers["x-container-object-count"] == "10"  # updated before the 201s
    run(node, write)
    node.stop("container", signal.SIGKILL)
    node.start("container")

    async def check(client: HTTPClient) -> None:
        r = await client.fetch(HOST, node.ports["container"], "GET", "/d1/0/AUTH_p/c")
        assert r.body == b"".join(b"k%d\n" % i for i in range(10))
    run(node, check)
