"""Replication protocol and the partition index, between two in-process object servers."""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from nubis.daemons.storage.diskfile import DiskFile, ObjectDevice
from nubis.daemons.storage.replication import RECORD_HEADER, ReplicationClient, pack_record
from nubis.fastpath.hashpath import hash_path_hex

from .stack import HOST, SEED, Stack, run, stack, ts

PART = 5


def path(name: str) -> str:
    return f"/d1/{PART}/AUTH_a/c/{name}"


def node(st: Stack) -> dict[str, object]:
    return {"ip": HOST, "port": st.ports["object"], "device": "d1"}


def dev(st: Stack) -> ObjectDevice:
    got = st.obj.devices.get("d1")
    assert got is not None
    return got


async def push_all(src: Stack, dst: Stack) -> int:
    """Push every object of ``src``'s partition that ``dst`` lacks; return how many."""
    client = ReplicationClient(src.client)
    d = dev(src)
    theirs = await client.entries(node(dst), 0, PART, list(d.suffix_hashes(0, PART)))
    sent = 0
    for hash_hex, (t, _) in d.entries(0, PART).items():
        if hash_hex in theirs and theirs[hash_hex][0] >= t:
            continue
        df = DiskFile(d, 0, PART, hash_hex)
        rec = df.record()
        assert rec is not None
        assert await client.push(node(dst), df, rec)
        sent += 1
    return sent


def test_push_makes_replicas_identical(tmp_path: Path) -> None:
    big = os.urandom(300_000)

    async def go() -> None:
        async with stack(tmp_path / "a") as a, stack(tmp_path / "b") as b:
            h = {"Content-Type": "text/plain"}
            assert (await a.req("object", "PUT", path("small"), {"X-Timestamp": ts(), **h,
                                "X-Object-Meta-Color": "red"}, b"tiny")).status == 201
            assert (await a.req("object", "PUT", path("big"), {"X-Timestamp": ts(), **h},
                                big)).status == 201
            assert (await a.req("object", "POST", path("big"), {"X-Timestamp": ts(),
                                "X-Object-Meta-Later": "yes"})).status == 202
            assert (await a.req("object", "PUT", path("gone"), {"X-Timestamp": ts(), **h},
                                b"x")).status == 201
            assert (await a.req("object", "DELETE", path("gone"),
                                {"X-Timestamp": ts()})).status == 204
            client = ReplicationClient(a.client)
            local = dev(a).suffix_hashes(0, PART)
            assert len(local) == 3 and await client.suffix_hashes(node(b), 0, PART) == {}
            assert await push_all(a, b) == 3
            assert await client.suffix_hashes(node(b), 0, PART) == local
            assert await client.bulk_hashes(node(b), 0, [PART, PART + 1]) == {
                PART: local, PART + 1: {}}
            for bad in (b"", b"\x91\xa1x", b"\x91\xff"):  # not a list of partitions
                r = await b.req("object", "POST", "/d1/_replicate/0", {}, bad)
                assert r.status == 400, bad
            assert await push_all(a, b) == 0
            for name, body in (("small", b"tiny"), ("big", big)):
                ra = await a.req("object", "GET", path(name))
                rb = await b.req("object", "GET", path(name))
                assert rb.status == 200 and rb.body == body
                for k in ("etag", "last-modified", "x-timestamp", "x-object-meta-color",
                          "x-object-meta-later", "content-type"):
                    assert ra.headers.get(k) == rb.headers.get(k), (name, k)
            r = await b.req("object", "GET", path("gone"))
            assert r.status == 404 and r.headers["x-backend-timestamp"]
            # an older version pushed again is refused politely (409 counts as "has it")
            df = DiskFile(dev(a), 0, PART, hash_path_hex(SEED, b"/AUTH_a/c/small"))
            rec = df.record()
            assert rec is not None and await client.push(node(b), df, rec)
    run(go())


def test_bad_pushes_are_refused(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path / "a") as a, stack(tmp_path / "b") as b:
            assert (await a.req("object", "PUT", path("o"), {"X-Timestamp": ts()},
                                b"body")).status == 201
            hash_hex = hash_path_hex(SEED, b"/AUTH_a/c/o")
            rec = DiskFile(dev(a), 0, PART, hash_hex).record()
            assert rec is not None
            url = f"/d1/_replicate/0/{PART}/{hash_hex}"
            good = {RECORD_HEADER: pack_record(rec)}
            r = await b.req("object", "PUT", url, good, b"bodx")  # checksum differs
            assert r.status == 422
            r = await b.req("object", "PUT", url, good, b"bod")   # short
            assert r.status == 422
            other = f"/d1/_replicate/0/{PART}/{'0' * 32}"
            assert (await b.req("object", "PUT", other, good, b"body")).status == 400
            wrong_part = f"/d1/_replicate/0/{PART + 1}/{hash_hex}"
            assert (await b.req("object", "PUT", wrong_part, good, b"body")).status == 400
            r = await b.req("object", "PUT", url, {RECORD_HEADER: "!!!"}, b"body")
            assert r.status == 400
            inline = {RECORD_HEADER: base64.b64encode(replace(rec, inline=b"body").pack())
                      .decode()}
            assert (await b.req("object", "PUT", url, inline, b"body")).status == 400
            for bad in ("/d1/_replicate/x/5", "/d1/_replicate/0/5/zz", "/d1/_replicate/0"):
                assert (await b.req("object", "POST", bad)).status == 400, bad
            assert (await b.req("object", "POST", f"/d1/_replicate/0/{PART}", {},
                                b"\xc1")).status == 400
            assert (await b.req("object", "POST", "/nodev/_replicate/0/5")).status == 507
            assert (await b.req("object", "GET", path("o"))).status == 404
            assert (await b.req("object", "PUT", url, good, b"body")).status == 201
            assert (await b.req("object", "GET", path("o"))).body == b"body"
    run(go())


def test_index_follows_writes_quarantine_and_old_devices(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            d = dev(st)
            t1 = ts()
            assert (await st.req("object", "PUT", path("o"), {"X-Timestamp": t1},
                                 b"v1")).status == 201
            hash_hex = hash_path_hex(SEED, b"/AUTH_a/c/o")
            assert d.entries(0, PART) == {hash_hex: (t1, False)}
            assert d.partitions() == [(0, PART)]
            t2 = ts()
            assert (await st.req("object", "DELETE", path("o"), {"X-Timestamp": t2})).status \
                == 204
            assert d.entries(0, PART) == {hash_hex: (t2, True)}
            assert (await st.req("object", "PUT", path("p"), {"X-Timestamp": ts()},
                                 b"v")).status == 201
            rec = DiskFile(d, 0, PART, hash_path_hex(SEED, b"/AUTH_a/c/p")).record()
            assert rec is not None
            await DiskFile(d, 0, PART, hash_path_hex(SEED, b"/AUTH_a/c/p")).quarantine(
                rec, "test")
            assert list(d.entries(0, PART)) == [hash_hex]
            assert await d.forget(0, hash_hex, "0000000001.00000") is False  # not that version
            assert await d.forget(0, hash_hex, t2) is True
            assert d.partitions() == [] and d.suffix_hashes(0, PART) == {}
            assert (await st.req("object", "PUT", path("q"), {"X-Timestamp": ts()},
                                 b"v")).status == 201
            before = d.suffix_hashes(0, PART)
            with d.env.begin(write=True) as txn:  # a device from before the index
                txn.drop(d.parts_db, delete=False)
        with ThreadPoolExecutor(1) as pool:
            again = ObjectDevice(tmp_path / "devices" / "d1", pool, fsync=False, map_mib=64,
                                 window=0, max_batch=8)
            assert again.suffix_hashes(0, PART) == before
            again.env.close()
    run(go())


def test_record_header_round_trip() -> None:
    from nubis.daemons.storage.diskfile import ObjectRecord
    from nubis.daemons.storage.replication import unpack_record

    rec = ObjectRecord(ts(), 3, "e", "t/p", {"x-object-meta-a": "b"}, False, 7, "/a/c/o",
                       (1, 2), b"abc", "")
    back = unpack_record(pack_record(rec))
    assert back == replace(rec, inline=None)
