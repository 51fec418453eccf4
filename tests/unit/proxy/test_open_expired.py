"""Swift's ``allow_open_expired``: when the proxy has object servers open expired objects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nubis.api.proxy import transfer
from nubis.api.proxy.app import build_proxy
from nubis.api.proxy.backend import Reply
from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.api.proxy.context import Ctx

OPEN = "x-backend-open-expired"


class _Backend:
    """Records the headers of each object read; every node answers 404."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        ring = SimpleNamespace(get_nodes=lambda *names: (7, [{"ip": "127.0.0.1", "port": 1}]))
        self.rings = SimpleNamespace(get=lambda kind, policy=0: ring)

    async def open_read(self, ring: Any, part: int, nodes: Any, method: str,
                        names: tuple[str, ...], headers: dict[str, str],
                        query: str = "") -> Reply:
        self.sent.append(dict(headers))
        return Reply(404, {})


def _ctx(allow: bool, method: str, headers: dict[str, str], backend: Any = None) -> Ctx:
    state = SimpleNamespace(conf=ProxyConfig(allow_open_expired=allow), backend=backend,
                            policies=SimpleNamespace(get=lambda index: None))
    return Ctx(cast(Any, state), method, "/v1/AUTH_a/c/o", {}, headers, cast(Any, None),
               account="AUTH_a", container="c", obj="o")


@pytest.mark.parametrize(("allow", "value", "opens"), [
    (True, "true", True), (True, "True", True), (True, "yes", True), (True, "1", True),
    (True, "t", True), (True, "on", True),
    (True, "false", False), (True, "no", False), (True, "", False), (True, None, False),
    (False, "true", False), (False, None, False),
])
def test_opens_expired_needs_the_option_and_a_true_header(allow: bool, value: str | None,
                                                          opens: bool) -> None:
    headers = {} if value is None else {"x-open-expired": value}
    ctx = _ctx(allow, "GET", headers)
    assert transfer.opens_expired(ctx) is opens
    assert transfer.open_expired_headers(ctx) == ({OPEN: "true"} if opens else {})


@pytest.mark.parametrize(("method", "sent"), [
    ("GET", True), ("HEAD", True), ("PUT", False), ("DELETE", False), ("POST", False),
])
def test_reads_carry_the_backend_header_for_a_get_or_head(method: str, sent: bool) -> None:
    """Reads made for a PUT (If-None-Match, versioning) or DELETE never open expired objects."""
    backend = _Backend()
    for allow in (True, False):
        ctx = _ctx(allow, method, {"x-open-expired": "true"}, backend)
        got = asyncio.run(transfer.fetch(ctx, "AUTH_a", "c", "o", 0, "HEAD"))
        assert isinstance(got, Reply) and got.status == 404
    assert [OPEN in h for h in backend.sent] == [sent, False]
    assert all(h.get(OPEN, "true") == "true" for h in backend.sent)


def test_info_shows_the_option(tmp_path: Path) -> None:
    ta = TempAuthConfig()
    off = build_proxy(ProxyConfig(), ta, tmp_path, "", "nubis").info
    on = build_proxy(ProxyConfig(allow_open_expired=True), ta, tmp_path, "", "nubis").info
    assert off["swift"]["allow_open_expired"] is False
    assert on["swift"]["allow_open_expired"] is True
    assert "x-open-expired" in off["tempurl"]["incoming_remove_headers"]
