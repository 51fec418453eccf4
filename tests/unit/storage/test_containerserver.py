"""Container and account servers over real HTTP and a real LMDB."""

from __future__ import annotations

import json
from pathlib import Path

from .stack import Stack, eventually, run, stack, ts

C = "/d1/0/AUTH_a/c"


async def make_container(st: Stack, path: str = C, **extra: str) -> None:
    r = await st.req("container", "PUT", path, {"X-Timestamp": ts(), **st.account_headers(),
                                                 **extra})
    assert r.status == 201, r.status


async def put_row(st: Stack, name: str, size: int = 1, path: str = C, t: str = "") -> int:
    r = await st.req("container", "PUT", f"{path}/{name}",
                     {"X-Timestamp": t or ts(), "X-Size": str(size),
                      "X-Content-Type": "text/plain", "X-Etag": "e" * 32})
    return r.status


def test_container_lifecycle_and_metadata(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            assert (await st.req("container", "HEAD", C)).status == 404
            await make_container(st, **{"X-Container-Meta-Color": "red",
                                        "X-Container-Read": ".r:*"})
            r = await st.req("container", "PUT", C, {"X-Timestamp": ts()})
            assert r.status == 202
            r = await st.req("container", "HEAD", C)
            assert r.status == 204
            assert r.headers["x-container-meta-color"] == "red"
            assert r.headers["x-container-read"] == ".r:*"
            assert r.headers["x-container-object-count"] == "0"
            assert r.headers["x-backend-storage-policy-index"] == "0"
            r = await st.req("container", "POST", C, {"X-Timestamp": ts(),
                                                       "X-Container-Meta-Color": ""})
            assert r.status == 204
            r = await st.req("container", "HEAD", C)
            assert "x-container-meta-color" not in r.headers
            r = await st.req("container", "PUT", C, {"X-Timestamp": ts(),
                                                      "X-Backend-Storage-Policy-Index": "2"})
            assert r.status == 409 and r.headers["x-backend-storage-policy-index"] == "0"
            assert await put_row(st, "o", 10) == 201
            r = await st.req("container", "DELETE", C, {"X-Timestamp": ts()})
            assert r.status == 409
            r = await st.req("container", "DELETE", f"{C}/o", {"X-Timestamp": ts()})
            assert r.status == 204
            r = await st.req("container", "DELETE", C, {"X-Timestamp": ts()})
            assert r.status == 204
            r = await st.req("container", "HEAD", C)
            assert r.status == 404 and "x-backend-delete-timestamp" in r.headers
            assert (await st.req("container", "DELETE", C, {"X-Timestamp": ts()})).status == 404
            assert await put_row(st, "late") == 404
            # re-create with another policy: allowed once deleted; metadata was cleared
            await make_container(st, **{"X-Backend-Storage-Policy-Index": "2"})
            r = await st.req("container", "HEAD", C)
            assert r.headers["x-backend-storage-policy-index"] == "2"
            assert "x-container-read" not in r.headers
    run(go())


def test_rows_last_writer_wins_and_counts(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await make_container(st)
            t1, t2, t3, t4 = ts(), ts(), ts(), ts()
            assert await put_row(st, "o", 5, t=t2) == 201
            assert await put_row(st, "o", 7, t=t1) == 201  # older: ignored
            r = await st.req("container", "GET", C + "?format=json")
            rows = json.loads(r.body)
            assert [(x["name"], x["bytes"]) for x in rows] == [("o", 5)]
            r = await st.req("container", "DELETE", f"{C}/o", {"X-Timestamp": t4})
            assert r.status == 204
            assert await put_row(st, "o", 9, t=t3) == 201  # older than the delete: ignored
            r = await st.req("container", "HEAD", C)
            assert r.headers["x-container-object-count"] == "0"
            assert r.headers["x-container-bytes-used"] == "0"
            for i in range(5):
                assert await put_row(st, f"x{i}", 100) == 201
            assert await put_row(st, "x0", 50) == 201  # overwrite adjusts bytes
            r = await st.req("container", "HEAD", C)
            assert r.headers["x-container-object-count"] == "5"
            assert r.headers["x-container-bytes-used"] == "450"
            assert (await st.req("container", "PUT", "/d1/0/AUTH_a/nope/o",
                                 {"X-Timestamp": ts()})).status == 404
    run(go())


def test_listing_formats_and_params(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await make_container(st)
            r = await st.req("container", "GET", C)
            assert r.status == 204
            r = await st.req("container", "GET", C + "?format=json")
            assert r.status == 200 and r.body == b"[]"
            for name in ("a/1", "a/2", "b", "c/x", "d", "caf\u00e9"):
                assert await put_row(st, name.replace("\u00e9", "%C3%A9")) == 201
            r = await st.req("container", "GET", C)
            assert r.body.decode().split("\n")[:-1] == ["a/1", "a/2", "b", "c/x", "caf\u00e9", "d"]
            r = await st.req("container", "GET", C + "?delimiter=/&limit=3")
            assert r.body == b"a/\nb\nc/\n"
            r = await st.req("container", "GET", C + "?prefix=a/&reverse=on")
            assert r.body == b"a/2\na/1\n"
            r = await st.req("container", "GET", C + "?marker=b&end_marker=d")
            assert r.body == "c/x\ncaf\u00e9\n".encode()
            r = await st.req("container", "GET", C + "?delimiter=/&format=json")
            rows = json.loads(r.body)
            assert rows[0] == {"subdir": "a/"}
            assert rows[1]["name"] == "b" and rows[1]["hash"] == "e" * 32
            assert rows[1]["last_modified"].endswith(".000000")
            r = await st.req("container", "GET", C, {"Accept": "application/xml"})
            assert r.headers["content-type"].startswith("application/xml")
            assert b"<container name=\"c\"><object><name>a/1</name>" in r.body
            r = await st.req("container", "GET", C, {"Accept": "application/json;q=0.5, "
                                                               "text/plain;q=0.9"})
            assert r.headers["content-type"].startswith("text/plain")
            assert (await st.req("container", "GET", C, {"Accept": "image/png"})).status == 406
            assert (await st.req("container", "GET", C + "?limit=10001")).status == 412
            # Swift 2.38: a limit that is not all digits means the default; multi-character
            # delimiters work; a parameter that is not UTF-8 is a 400.
            assert (await st.req("container", "GET", C + "?limit=-1")).status == 200
            assert (await st.req("container", "GET", C + "?delimiter=a/")).status == 200
            assert (await st.req("container", "GET", C + "?prefix=%ff")).status == 400
    run(go())


def test_account_server_and_updates(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            acct = "/d1/0/AUTH_a"
            assert (await st.req("account", "HEAD", acct)).status == 404
            r = await st.req("account", "PUT", acct, {"X-Timestamp": ts(),
                                                    "X-Account-Meta-Temp-Url-Key": "k"})
            assert r.status == 201
            assert (await st.req("account", "PUT", acct, {"X-Timestamp": ts()})).status == 202
            r = await st.req("account", "GET", acct)
            assert r.status == 204 and r.headers["x-account-meta-temp-url-key"] == "k"
            await make_container(st, "/d1/0/AUTH_a/c1")
            await make_container(st, "/d1/0/AUTH_a/c2")
            r = await st.req("account", "GET", acct)
            assert r.body == b"c1\nc2\n"
            for i in range(3):
                assert await put_row(st, f"o{i}", 10, path="/d1/0/AUTH_a/c1") == 201

            async def counted() -> bool:
                r = await st.req("account", "HEAD", acct)
                return r.headers["x-account-object-count"] == "3"
            assert await eventually(counted)
            r = await st.req("account", "HEAD", acct)
            assert r.headers["x-account-container-count"] == "2"
            assert r.headers["x-account-bytes-used"] == "30"
            r = await st.req("account", "GET", acct + "?format=json")
            rows = json.loads(r.body)
            assert [(x["name"], x["count"], x["bytes"]) for x in rows] == \
                [("c1", 3, 30), ("c2", 0, 0)]
            assert (await st.req("container", "DELETE", "/d1/0/AUTH_a/c2",
                                 {"X-Timestamp": ts()})).status == 204
            r = await st.req("account", "GET", acct)
            assert r.body == b"c1\n"
            r = await st.req("account", "POST", acct, {"X-Timestamp": ts(),
                                                     "X-Account-Meta-Quota": "9"})
            assert r.status == 204
            assert (await st.req("account", "DELETE", acct, {"X-Timestamp": ts()})).status == 204
            r = await st.req("account", "HEAD", acct)
            assert r.status == 404 and r.headers["x-account-status"] == "Deleted"
            assert (await st.req("account", "PUT", acct, {"X-Timestamp": ts()})).status == 403
            r = await st.req("account", "PUT", acct + "/c3", {"X-Put-Timestamp": ts(),
                                                            "X-Delete-Timestamp": "0",
                                                            "X-Object-Count": "0",
                                                            "X-Bytes-Used": "0"})
            assert r.status == 404
    run(go())


def test_account_autocreated_by_first_container(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await make_container(st, "/d1/0/AUTH_new/c")
            r = await st.req("account", "GET", "/d1/0/AUTH_new?format=json")
            assert r.status == 200 and json.loads(r.body)[0]["name"] == "c"
    run(go())


def test_rows_batch_endpoint(tmp_path: Path) -> None:
    import msgpack

    async def go() -> None:
        async with stack(tmp_path) as st:
            await make_container(st)
            items = [["PUT", "/AUTH_a/c/x", {"X-Timestamp": ts(), "X-Size": "3",
                                             "X-Content-Type": "a/b", "X-Etag": "e"}],
                     ["PUT", "/AUTH_a/c/caf%C3%A9", {"X-Timestamp": ts(), "X-Size": "4"}],
                     ["PUT", "/AUTH_a/nope/x", {"X-Timestamp": ts()}],
                     ["PUT", "/AUTH_a/c/bad", {"X-Timestamp": "never"}],
                     ["PATCH", "/AUTH_a/c/y", {}], "garbage",
                     ["DELETE", "/AUTH_a/c/x", {"X-Timestamp": ts()}]]
            r = await st.req("container", "POST", "/d1/_rows", {}, msgpack.packb(items))
            assert r.status == 200
            assert msgpack.unpackb(r.body) == [201, 201, 404, 400, 400, 400, 204]
            r = await st.req("container", "GET", C)
            assert r.body == "caf\u00e9\n".encode()
            r = await st.req("container", "POST", "/d1/_rows", {}, b"\xc1not msgpack")
            assert r.status == 400
            r = await st.req("container", "POST", "/nodev/_rows", {}, msgpack.packb([]))
            assert r.status == 507
    run(go())


def test_object_server_batches_container_updates(tmp_path: Path) -> None:
    import asyncio

    async def go() -> None:
        async with stack(tmp_path) as st:
            await make_container(st)
            seen: list[str] = []
            handle = st.cont.handle

            async def counting(req):  # type: ignore[no-untyped-def]
                seen.append(f"{req.method} {req.path}")
                return await handle(req)
            st.servers["container"].handler = counting
            ch = st.container_headers()

            async def put(i: int) -> int:
                r = await st.req("object", "PUT", f"/d1/1/AUTH_a/c/o{i:02d}",
                                 {"X-Timestamp": ts(), "Content-Type": "t/p", **ch}, b"x" * i)
                return r.status
            assert await asyncio.gather(*(put(i) for i in range(20))) == [201] * 20

            async def all_listed() -> bool:
                r = await st.req("container", "HEAD", C)
                return r.headers["x-container-object-count"] == "20"
            assert await eventually(all_listed)
            assert any(s == "POST /d1/_rows" for s in seen)
            assert len(seen) < 20  # batched, not one request per object
            r = await st.req("container", "HEAD", C)
            assert r.headers["x-container-bytes-used"] == str(sum(range(20)))
    run(go())
