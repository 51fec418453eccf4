"""Container and account database replication between two in-process storage nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from nubis.daemons.storage import dbsync
from nubis.daemons.storage.accountdb import AccountDB
from nubis.daemons.storage.containerdb import ContainerDB, container_id

from .stack import Stack, run, stack, ts

C = "/d1/0/AUTH_a/c"
A = "/d1/0/AUTH_a"


def cdb(st: Stack) -> ContainerDB:
    got = st.cont.devices.get("d1")
    assert got is not None
    return got


def adb(st: Stack) -> AccountDB:
    got = st.acct.devices.get("d1")
    assert got is not None
    return got


async def push(src: Any, dst: Stack, kind: str, key: bytes) -> int:
    """Send ``src``'s scope ``key`` to ``dst``'s server as a replicator does."""
    chunks = src.export(key)
    for chunk in chunks:
        r = await dst.req(kind, "POST", "/d1" + dbsync.MERGE_SUFFIX, {}, dbsync.packb(chunk))
        assert r.status == 204, r.body
    return len(chunks)


async def in_sync(st: Stack, kind: str, items: list[list[str]]) -> list[bool]:
    r = await st.req(kind, "POST", "/d1" + dbsync.SYNC_SUFFIX, {}, dbsync.packb(items))
    assert r.status == 200, r.body
    return list(msgpack.unpackb(r.body))


async def row(st: Stack, method: str, name: str, t: str, size: int = 1, etag: str = "e") -> None:
    r = await st.req("container", method, f"{C}/{name}",
                     {"X-Timestamp": t, "X-Size": str(size), "X-Content-Type": "text/plain",
                      "X-Etag": etag * 32})
    assert r.status in (201, 204), r.status


async def listing(st: Stack) -> list[dict[str, Any]]:
    r = await st.req("container", "GET", C + "?format=json")
    assert r.status == 200, r.status
    return list(json.loads(r.body))


def test_containers_merge_both_ways_to_equal_digests(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbsync, "ROWS_PER_CHUNK", 2)  # several chunks per push

    async def go() -> None:
        async with stack(tmp_path / "a") as a, stack(tmp_path / "b") as b:
            created = ts()
            for st in (a, b):
                r = await st.req("container", "PUT", C, {"X-Timestamp": created,
                                                          **st.account_headers()})
                assert r.status == 201
            old, new = ts(), ts()
            await row(a, "PUT", "o1", new, 10, "a")    # newer here
            await row(b, "PUT", "o1", old, 5, "b")
            await row(a, "PUT", "o2", ts(), 2)
            await row(a, "PUT", "o3", ts(), 3)
            await row(a, "DELETE", "o3", ts())         # a tombstone only A has
            await row(b, "PUT", "o4", ts(), 4)         # a row only B has
            r = await b.req("container", "POST", C, {"X-Timestamp": ts(),
                                                      "X-Container-Meta-Color": "blue"})
            assert r.status == 204
            key = container_id("AUTH_a", "c")
            names = ["AUTH_a", "c"]
            assert await in_sync(b, "container", [[*names, cdb(a).digest(key) or ""]]) == [False]
            assert await push(cdb(a), b, "container", key) == 2
            assert await push(cdb(b), a, "container", key) >= 2
            assert cdb(a).digest(key) == cdb(b).digest(key)
            assert await in_sync(b, "container", [[*names, cdb(a).digest(key) or ""],
                                                  ["AUTH_a", "nope", "x"]]) == [True, False]
            for st in (a, b):
                got = {o["name"]: (o["bytes"], o["hash"]) for o in await listing(st)}
                assert got == {"o1": (10, "a" * 32), "o2": (2, "e" * 32), "o4": (4, "e" * 32)}
                r = await st.req("container", "HEAD", C)
                assert r.headers["x-container-meta-color"] == "blue"
                assert r.headers["x-container-object-count"] == "3"
                assert r.headers["x-container-bytes-used"] == "16"

    run(go())


def test_missing_container_is_created_and_deleted_one_stays_deleted(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path / "a") as a, stack(tmp_path / "b") as b:
            r = await a.req("container", "PUT", C, {"X-Timestamp": ts(), **a.account_headers()})
            assert r.status == 201
            await row(a, "PUT", "x", ts())
            key = container_id("AUTH_a", "c")
            await push(cdb(a), b, "container", key)  # a wiped replica gets it all back
            assert [o["name"] for o in await listing(b)] == ["x"]
            await row(a, "DELETE", "x", ts())
            r = await a.req("container", "DELETE", C, {"X-Timestamp": ts()})
            assert r.status == 204
            await push(cdb(a), b, "container", key)
            assert (await b.req("container", "HEAD", C)).status == 404
            assert cdb(a).digest(key) == cdb(b).digest(key)

    run(go())


def test_remove_keeps_a_changed_copy_and_reclaim_drops_old_tombstones(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            r = await st.req("container", "PUT", C, {"X-Timestamp": ts(),
                                                      **st.account_headers()})
            assert r.status == 201
            await row(st, "PUT", "x", ts())
            await row(st, "DELETE", "x", ts())
            db, key = cdb(st), container_id("AUTH_a", "c")
            digest = db.digest(key)
            assert digest is not None
            assert await db.reclaim(key, "0000000001.00000") == 0
            assert await db.reclaim(key, "9999999999.00000") == 1  # the row tombstone
            assert not await db.remove(key, digest)  # changed since: kept
            r = await st.req("container", "DELETE", C, {"X-Timestamp": ts()})
            assert r.status == 204
            assert await db.reclaim(key, "9999999999.00000") == 1  # the deleted record
            assert db.digest(key) is None and db.scopes() == []
            r = await st.req("container", "PUT", C, {"X-Timestamp": ts()})
            assert r.status == 201
            digest = db.digest(key)
            assert digest is not None and await db.remove(key, digest)
            assert (await st.req("container", "HEAD", C)).status == 404

    run(go())


def test_accounts_merge_rows_by_timestamp(tmp_path: Path) -> None:
    async def report(st: Stack, cont: str, put: str, delete: str, objects: int) -> None:
        r = await st.req("account", "PUT", f"{A}/{cont}",
                         {"X-Put-Timestamp": put, "X-Delete-Timestamp": delete,
                          "X-Object-Count": str(objects), "X-Bytes-Used": str(objects * 10),
                          "X-Backend-Storage-Policy-Index": "0"})
        assert r.status in (201, 204), r.status

    async def go() -> None:
        async with stack(tmp_path / "a") as a, stack(tmp_path / "b") as b:
            zero = "0000000000.00000"
            t1, t2 = ts(), ts()
            await report(a, "c1", t1, zero, 1)
            await report(a, "c2", t1, zero, 2)
            await report(a, "c2", t1, t2, 0)   # c2 deleted on A only
            await report(b, "c3", ts(), zero, 3)
            r = await a.req("account", "POST", A, {"X-Timestamp": ts(),
                                                    "X-Account-Meta-Team": "x"})
            assert r.status == 204
            key = b"AUTH_a"
            assert await in_sync(b, "account", [["AUTH_a", adb(a).digest(key) or ""]]) == [False]
            await push(adb(a), b, "account", key)
            await push(adb(b), a, "account", key)
            assert adb(a).digest(key) == adb(b).digest(key)
            for st in (a, b):
                r = await st.req("account", "GET", A + "?format=json")
                got = {c["name"]: c["count"] for c in json.loads(r.body)}
                assert got == {"c1": 1, "c3": 3}
                r = await st.req("account", "HEAD", A)
                assert r.headers["x-account-container-count"] == "2"
                assert r.headers["x-account-object-count"] == "4"
                assert r.headers["x-account-meta-team"] == "x"

    run(go())


def test_bad_replication_requests_are_400_and_names_like_suffixes_are_plain(
        tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            for kind in ("container", "account"):
                for suffix in (dbsync.SYNC_SUFFIX, dbsync.MERGE_SUFFIX):
                    for body in (b"\xc1", dbsync.packb({"record": 1}), dbsync.packb([[1]])):
                        r = await st.req(kind, "POST", "/d1" + suffix, {}, body)
                        assert r.status == 400, (kind, suffix, body)
                r = await st.req(kind, "POST", "/nodev" + dbsync.SYNC_SUFFIX, {},
                                 dbsync.packb([]))
                assert r.status == 507
            # A container called "_dbsync" is still a container.
            r = await st.req("container", "POST", "/d1/0/AUTH_a/_dbsync", {"X-Timestamp": ts()})
            assert r.status == 404

    run(go())


def test_replicator_pass_pushes_then_idles(tmp_path: Path) -> None:
    """The container replicator of node A (no server here) against node B's server."""
    from nubis.common.cluster import ClusterConfig
    from nubis.daemons.storage.config import NodeSettings, ReplicatorConfig, StorageConfig
    from nubis.daemons.storage.dbreplicator import ContainerReplicator
    from nubis.ring.builder import RingBuilder
    from nubis.ring.ringdata import write_ring_file

    async def go() -> None:
        async with stack(tmp_path / "b") as b:
            rings = tmp_path / "rings"
            rings.mkdir()
            builder = RingBuilder(4, 2, 1)
            a_port = b.ports["container"] + 1  # nothing listens: node A has no server here
            for zone, port in ((1, a_port), (2, b.ports["container"])):
                builder.add_dev(region=1, zone=zone, ip="127.0.0.1", port=port, device="d1",
                                weight=100.0)
            builder.rebalance(seed=1)
            write_ring_file(rings / "container.ring", builder.get_ring())
            devices = tmp_path / "a" / "devices"
            (devices / "d1" / "containers.lmdb").mkdir(parents=True)
            cluster = ClusterConfig(state_dir=str(tmp_path / "a"))
            node = NodeSettings(0, "127.0.0.1", a_port - 1, a_port, a_port + 1, devices)
            rep = ContainerReplicator(ReplicatorConfig(), StorageConfig(), cluster, rings, node)
            try:
                (_, db), = rep.databases()
                for n in range(3):
                    await db.put_container("AUTH_a", f"c{n}", ts(), 0, {}, [])
                    await db.put_object("AUTH_a", f"c{n}", "o", ts(), 1, "text/plain", "e")
                first = await rep.run_once()
                assert first["databases"] == 3 and first["databases_pushed"] == 3, first
                for n in range(3):
                    r = await b.req("container", "GET", f"/d1/0/AUTH_a/c{n}")
                    assert r.status == 200 and r.body == b"o\n"
                second = await rep.run_once()  # nothing written since: digests reused
                assert second["digests_reused"] == 3 and "databases_pushed" not in second
                await db.put_object("AUTH_a", "c1", "p", ts(), 1, "text/plain", "e")
                third = await rep.run_once()
                assert third["databases_pushed"] == 1 and "digests_reused" not in third
            finally:
                await rep.close()

    run(go())
