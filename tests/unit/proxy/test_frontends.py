"""The proxy core answers the same through both front-ends (native server, Falcon ASGI)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import falcon.testing
import uvloop
from nubis.api.proxy.app import build_app, build_proxy
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.proxy.native import NativeFrontEnd
from nubis.common.httpclient import HTTPClient


def test_info_and_errors_match_across_front_ends(tmp_path: Path) -> None:
    conf, ta = ProxyConfig(), TempAuthConfig()
    asgi = falcon.testing.TestClient(build_app(conf, ta, tmp_path, "", "nubis"))
    info = asgi.simulate_get("/info")
    missing = asgi.simulate_get("/v2")  # no account: Swift's 412 "Bad URL"
    assert info.status_code == 200 and missing.status_code == 412

    async def native() -> tuple[int, bytes, int, bytes, str]:
        server = NativeFrontEnd(build_proxy(conf, ta, tmp_path, "", "nubis")).server(
            "127.0.0.1", 0)
        port = await server.start()
        client = HTTPClient(timeout=10)
        try:
            a = await client.fetch("127.0.0.1", port, "GET", "/info")
            b = await client.fetch("127.0.0.1", port, "GET", "/v2")
            h = await client.fetch("127.0.0.1", port, "HEAD", "/info")
            assert h.status == 200 and h.body == b""
            return a.status, a.body, b.status, b.body, b.headers["content-type"]
        finally:
            await client.close()
            await asyncio.wait_for(server.close(), 5)

    status, body, nstatus, nbody, ctype = uvloop.run(native())
    assert (status, json.loads(body)) == (200, info.json)
    assert (nstatus, nbody) == (412, missing.content)
    assert ctype == missing.headers["content-type"]
