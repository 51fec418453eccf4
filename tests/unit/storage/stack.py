"""An in-process storage node (object + container + account servers) on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from nubis.common.httpclient import ClientResponse, HTTPClient
from nubis.common.httpserver import HTTPServer
from nubis.daemons.storage.accountserver import AccountServer
from nubis.daemons.storage.config import StorageConfig
from nubis.daemons.storage.containerserver import ContainerServer
from nubis.daemons.storage.objectserver import ObjectServer

HOST = "127.0.0.1"
SEED = 0x5EED


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return uvloop.run(coro)


_clock = itertools.count(1_700_000_000)


def ts() -> str:
    return f"{next(_clock)}.00000"


@dataclass
class Stack:
    devices: Path
    client: HTTPClient
    obj: ObjectServer
    cont: ContainerServer
    acct: AccountServer
    ports: dict[str, int] = field(default_factory=dict)
    servers: dict[str, HTTPServer] = field(default_factory=dict)

    async def req(self, kind: str, method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> ClientResponse:
        return await self.client.fetch(HOST, self.ports[kind], method, path, headers or {}, body)

    def container_headers(self, device: str = "d1", part: str = "0") -> dict[str, str]:
        return {"X-Container-Host": f"{HOST}:{self.ports['container']}",
                "X-Container-Partition": part, "X-Container-Device": device}

    def account_headers(self, device: str = "d1", part: str = "0") -> dict[str, str]:
        return {"X-Account-Host": f"{HOST}:{self.ports['account']}",
                "X-Account-Partition": part, "X-Account-Device": device}

    async def stop_server(self, kind: str) -> None:
        await self.servers.pop(kind).close()

    async def start_server(self, kind: str) -> None:
        app = {"object": self.obj, "container": self.cont, "account": self.acct}[kind]
        srv = HTTPServer(app.handle, HOST, self.ports.get(kind, 0))
        self.ports[kind] = await srv.start()
        self.servers[kind] = srv


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, **overrides: Any) -> AsyncIterator[Stack]:
    devices = tmp_path / "devices"
    (devices / "d1").mkdir(parents=True, exist_ok=True)
    cfg = StorageConfig(**{"account_update_interval": 0.05, **overrides})
    st = Stack(devices, HTTPClient(timeout=10), ObjectServer(cfg, devices, SEED),
               ContainerServer(cfg, devices), AccountServer(cfg, devices))
    for app in (st.obj, st.cont, st.acct):
        await app.start()
    for kind in ("object", "container", "account"):
        await st.start_server(kind)
    try:
        yield st
    finally:
        await st.client.close()
        for srv in list(st.servers.values()):
            await srv.close()
        for app in (st.obj, st.cont, st.acct):
            await app.stop()


async def eventually(fn: Any, timeout: float = 10.0) -> Any:
    """Poll async ``fn`` until it returns something truthy (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = await fn()
        if got or loop.time() > end:
            return got
        await asyncio.sleep(0.02)
