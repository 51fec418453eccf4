"""Container-update overrides (object server) and listing parameters (container server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .stack import Stack, eventually, run, stack, ts

C = "/d1/0/AUTH_a/c"


async def _container(st: Stack) -> None:
    await st.req("account", "PUT", "/d1/0/AUTH_a", {"X-Timestamp": ts()})
    r = await st.req("container", "PUT", C, {"X-Timestamp": ts(), **st.account_headers()})
    assert r.status == 201


async def _listing(st: Stack, count: int) -> dict[str, dict[str, Any]]:
    async def rows() -> dict[str, dict[str, Any]]:
        r = await st.req("container", "GET", C + "?format=json")
        items = json.loads(r.body) if r.status == 200 else []
        return {o["name"]: o for o in items} if len(items) == count else {}
    got: dict[str, dict[str, Any]] = await eventually(rows)
    assert len(got) == count
    return got


def test_sysmeta_override_wins_over_backend_override(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await _container(st)
            base = {"Content-Type": "application/json", **st.container_headers()}
            r = await st.req("object", "PUT", "/d1/5/AUTH_a/c/slo", {
                "X-Timestamp": ts(), **base,
                "X-Object-Sysmeta-Container-Update-Override-Size": "3000",
                "X-Object-Sysmeta-Container-Update-Override-Etag": "abc; slo_etag=def",
                "X-Backend-Container-Update-Override-Size": "7",
                "X-Backend-Container-Update-Override-Content-Type": "text/x-big"},
                b"[]")
            assert r.status == 201
            r = await st.req("object", "PUT", "/d1/5/AUTH_a/c/plain",
                             {"X-Timestamp": ts(), **base}, b"1234")
            assert r.status == 201
            rows = await _listing(st, 2)
            slo = rows["slo"]
            assert (slo["bytes"], slo["hash"], slo["slo_etag"], slo["content_type"]) == (
                3000, "abc", '"def"', "text/x-big")
            plain = rows["plain"]
            assert plain["bytes"] == 4 and "slo_etag" not in plain
            # the object itself keeps its own size and ETag
            r = await st.req("object", "HEAD", "/d1/5/AUTH_a/c/slo")
            assert r.headers["content-length"] == "2"
            r = await st.req("container", "HEAD", C)
            assert r.headers["x-container-bytes-used"] == "3004"
    run(go())


def test_listing_applies_swift_bytes_and_keeps_other_params(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await _container(st)
            r = await st.req("container", "PUT", C + "/big", {
                "X-Timestamp": ts(), "X-Size": "10",
                "X-Content-Type": "text/plain;charset=utf-8;swift_bytes=12345",
                "X-Etag": "0123; s3_etag=x-2; slo_etag=feed"})
            assert r.status == 201
            row = (await _listing(st, 1))["big"]
            assert row["bytes"] == 12345
            assert row["content_type"] == "text/plain;charset=utf-8"
            assert row["hash"] == "0123; s3_etag=x-2" and row["slo_etag"] == '"feed"'
            r = await st.req("container", "GET", C + "?format=xml")
            assert b"<slo_etag>&quot;feed&quot;</slo_etag>" in r.body or \
                b'<slo_etag>"feed"</slo_etag>' in r.body
    run(go())
