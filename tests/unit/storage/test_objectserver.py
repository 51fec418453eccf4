"""Object server over real HTTP and a real LMDB (in-process, free ports)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nubis.common.httpclient import HTTPClientError
from nubis.daemons.storage.diskfile import CHUNK, ObjectRecord, object_key
from nubis.fastpath.hashpath import hash_path_hex

from .stack import SEED, Stack, eventually, run, stack, ts

OBJ = "/d1/5/AUTH_a/c/o"


def hdrs(t: str, **extra: str) -> dict[str, str]:
    return {"X-Timestamp": t, "Content-Type": "text/plain", **extra}


def test_put_get_head_inline(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            t = ts()
            r = await st.req("object", "PUT", OBJ, hdrs(t, **{"X-Object-Meta-Color": "blue",
                                                               "Content-Disposition": "inline"}),
                             b"hello")
            assert r.status == 201
            assert r.headers["etag"] == hashlib.md5(b"hello").hexdigest()
            r = await st.req("object", "GET", OBJ)
            assert r.status == 200 and r.body == b"hello"
            assert r.headers["x-object-meta-color"] == "blue"
            assert r.headers["content-disposition"] == "inline"
            assert r.headers["x-timestamp"] == t and r.headers["x-backend-timestamp"] == t
            assert r.headers["content-type"] == "text/plain"
            r = await st.req("object", "HEAD", OBJ)
            assert r.status == 200 and r.body == b"" and r.headers["content-length"] == "5"
            # nothing written as a file for an inline object
            assert not (st.devices / "d1" / "objects").exists()
    run(go())


def test_large_object_ranges(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 1234)

    async def go() -> None:
        async with stack(tmp_path) as st:
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), ETag=hashlib.md5(data).hexdigest()),
                             data)
            assert r.status == 201
            r = await st.req("object", "GET", OBJ)
            assert r.status == 200 and r.body == data
            for rng, lo, hi in (("bytes=0-9", 0, 9), (f"bytes={CHUNK - 5}-{CHUNK + 5}", CHUNK - 5,
                                CHUNK + 5), ("bytes=-100", len(data) - 100, len(data) - 1),
                                (f"bytes={2 * CHUNK}-", 2 * CHUNK, len(data) - 1),
                                ("bytes=10-", 10, len(data) - 1)):
                r = await st.req("object", "GET", OBJ, {"Range": rng})
                assert r.status == 206, rng
                assert r.body == data[lo:hi + 1], rng
                assert r.headers["content-range"] == f"bytes {lo}-{hi}/{len(data)}"
            r = await st.req("object", "GET", OBJ, {"Range": f"bytes={len(data)}-"})
            assert r.status == 416
            r = await st.req("object", "GET", OBJ, {"Range": "bytes=0-1,5-6"})
            assert r.status == 200 and r.body == data  # multiple ranges: whole object
            files = list((st.devices / "d1" / "objects" / "5").rglob("*.data"))
            assert len(files) == 1 and files[0].stat().st_size == len(data)
    run(go())


def test_chunked_upload_spills_to_file(tmp_path: Path) -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(10):
            yield bytes([i]) * 10000

    async def go() -> None:
        async with stack(tmp_path, inline_threshold=50000) as st:
            r = await st.client.request("127.0.0.1", st.ports["object"], "PUT", OBJ,
                                        hdrs(ts()), body())
            assert r.status == 201
            r = await st.req("object", "GET", OBJ)
            assert r.body == b"".join(bytes([i]) * 10000 for i in range(10))
            assert list((st.devices / "d1").rglob("*.data"))
            assert not list((st.devices / "d1" / "tmp").iterdir())
    run(go())


def test_timestamp_conflicts(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            old, mid, new = ts(), ts(), ts()
            assert (await st.req("object", "PUT", OBJ, hdrs(mid), b"mid")).status == 201
            for t in (mid, old):
                r = await st.req("object", "PUT", OBJ, hdrs(t), b"other")
                assert r.status == 409 and r.headers["x-backend-timestamp"] == mid
                r = await st.req("object", "DELETE", OBJ, {"X-Timestamp": t})
                assert r.status == 409
                r = await st.req("object", "POST", OBJ, {"X-Timestamp": t})
                assert r.status == 409
            offset = mid + "_0000000000000001"
            assert (await st.req("object", "PUT", OBJ, hdrs(offset), b"offset")).status == 201
            assert (await st.req("object", "GET", OBJ)).body == b"offset"
            assert (await st.req("object", "PUT", OBJ, hdrs(new), b"new")).status == 201
            assert (await st.req("object", "GET", OBJ)).body == b"new"
    run(go())


def test_put_reports_what_it_replaced(tmp_path: Path) -> None:
    """``X-Backend-Report-Replaced`` names a metadata item of the replaced live object."""
    upload = "x-object-sysmeta-s3-upload-id"
    ask = {"X-Backend-Report-Replaced": upload}

    async def go() -> None:
        async with stack(tmp_path) as st:
            async def put(body: bytes, **extra: str) -> dict[str, str]:
                r = await st.req("object", "PUT", OBJ, hdrs(ts(), **extra), body)
                assert r.status == 201
                return dict(r.headers)

            assert "x-backend-replaced" not in await put(b"a", **ask)  # nothing replaced
            await put(b"b", **{"X-Object-Sysmeta-S3-Upload-Id": "u1"})
            assert "x-backend-replaced" not in await put(b"c")  # not asked
            await put(b"d", **{"X-Object-Sysmeta-S3-Upload-Id": "u2"})
            assert (await put(b"e", **ask))["x-backend-replaced"] == "u2"
            assert "x-backend-replaced" not in await put(b"f", **ask)  # e lacked the item
            await put(b"g", **{"X-Object-Sysmeta-S3-Upload-Id": "u3"})
            assert (await st.req("object", "DELETE", OBJ, {"X-Timestamp": ts()})).status == 204
            assert "x-backend-replaced" not in await put(b"h", **ask)  # a tombstone
            await put(b"i", **{"X-Object-Sysmeta-S3-Upload-Id": "u4",
                               "X-Backend-Obj-Multiphase-Commit": "yes"})
            assert "x-backend-replaced" not in await put(b"j", **ask)  # never made durable
            r = await st.req("object", "PUT", OBJ, hdrs("0000000001.00000", **ask), b"old")
            assert r.status == 409 and "x-backend-replaced" not in r.headers
    run(go())


def test_delete_tombstone_and_post(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            r = await st.req("object", "DELETE", OBJ, {"X-Timestamp": ts()})
            assert r.status == 404  # nothing was there, tombstone still written
            assert (await st.req("object", "PUT", OBJ, hdrs(ts()), b"x" * 70000)).status == 201
            t = ts()
            r = await st.req("object", "POST", OBJ, {"X-Timestamp": t, "X-Object-Meta-A": "1",
                                                     "Content-Type": "image/png"})
            assert r.status == 202
            r = await st.req("object", "HEAD", OBJ)
            assert r.headers["x-object-meta-a"] == "1" and r.headers["x-timestamp"] == t
            assert r.headers["content-type"] == "image/png"
            assert (await st.req("object", "GET", OBJ)).body == b"x" * 70000
            d = ts()
            r = await st.req("object", "DELETE", OBJ, {"X-Timestamp": d})
            assert r.status == 204 and r.headers["x-backend-timestamp"] == d
            r = await st.req("object", "GET", OBJ)
            assert r.status == 404 and r.headers["x-backend-timestamp"] == d
            r = await st.req("object", "POST", OBJ, {"X-Timestamp": ts()})
            assert r.status == 404
            await eventually_no_data_files(st)
            assert list((st.devices / "d1").rglob(f"{d}.ts"))
    run(go())


async def eventually_no_data_files(st: Stack) -> None:
    async def check() -> bool:
        return not list((st.devices / "d1").rglob("*.data"))
    assert await eventually(check)


def test_bad_requests(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            r = await st.req("object", "PUT", OBJ, {"Content-Type": "a/b"}, b"x")
            assert r.status == 400 and b"timestamp" in r.body.lower()
            r = await st.req("object", "PUT", OBJ, hdrs("yesterday"), b"x")
            assert r.status == 400
            r = await st.req("object", "PUT", "/nodev/5/a/c/o", hdrs(ts()), b"x")
            assert r.status == 507
            r = await st.req("object", "GET", "/../5/a/c/o")
            assert r.status == 400
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), ETag="0" * 32), b"x")
            assert r.status == 422
            assert (await st.req("object", "GET", OBJ)).status == 404
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{"X-Delete-At": "soon"}), b"x")
            assert r.status == 400
            r = await st.req("object", "PATCH", OBJ)
            assert r.status == 405
            assert (await st.req("object", "PUT", OBJ, hdrs(ts()), b"x")).status == 201
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{"If-None-Match": "*"}), b"y")
            assert r.status == 412
            r = await st.req("object", "GET", OBJ, {"If-None-Match": r.headers.get("etag", "x")})
            assert r.status == 200
    run(go())


def test_expired_object_is_gone(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            past = str(int(time.time()) - 10)
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{"X-Delete-At": past}), b"x")
            assert r.status == 201
            assert (await st.req("object", "GET", OBJ)).status == 404
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{
                "If-None-Match": "*", "X-Backend-Open-Expired": "true"}), b"y")
            assert r.status == 201  # no object for a PUT, even with X-Backend-Open-Expired
            assert (await st.req("object", "GET", OBJ)).body == b"y"
    run(go())


def test_open_expired_reaches_an_expired_object(tmp_path: Path) -> None:
    """``X-Backend-Open-Expired`` (a true value) opens it on GET/HEAD/POST only."""
    async def go() -> None:
        async with stack(tmp_path) as st:
            past = int(time.time()) - 10
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{
                "X-Delete-At": str(past), "X-Object-Meta-Color": "blue"}), b"old")
            assert r.status == 201
            for method in ("GET", "HEAD"):
                for value in ("false", "no", ""):
                    r = await st.req("object", method, OBJ, {"X-Backend-Open-Expired": value})
                    assert r.status == 404, (method, value)
                for value in ("true", "True", "yes", "1"):
                    r = await st.req("object", method, OBJ, {"X-Backend-Open-Expired": value})
                    assert r.status == 200, (method, value)
                    assert r.headers["x-delete-at"] == str(past)
                    assert r.headers["x-object-meta-color"] == "blue"
            r = await st.req("object", "GET", OBJ, {"X-Backend-Open-Expired": "true"})
            assert r.body == b"old"
            r = await st.req("object", "POST", OBJ, {"X-Timestamp": ts(),
                                                     "X-Object-Meta-Color": "red"})
            assert r.status == 404
            later = int(time.time()) + 3600
            r = await st.req("object", "POST", OBJ, {
                "X-Timestamp": ts(), "X-Backend-Open-Expired": "true",
                "X-Delete-At": str(later), "X-Object-Meta-Color": "green"})
            assert r.status == 202
            r = await st.req("object", "GET", OBJ)  # restored
            assert (r.status, r.body) == (200, b"old")
            assert r.headers["x-delete-at"] == str(later)
            assert r.headers["x-object-meta-color"] == "green"
            dev, h, _ = _record(st)
            assert dev.expiring(later) == [(later, object_key(0, h))]  # the expirer's new time
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{
                "X-Delete-At": str(past), "If-None-Match": "*",
                "X-Backend-Open-Expired": "true"}), b"new")
            assert r.status == 412  # restored: it exists for If-None-Match
    run(go())


def _record(st: Stack, policy: int = 0) -> tuple[object, str, ObjectRecord]:
    dev = st.obj.devices.get("d1")
    h = hash_path_hex(SEED, b"/AUTH_a/c/o")
    rec = dev.get(policy, h)
    assert rec is not None
    return dev, h, rec


def test_corrupt_inline_object_is_quarantined(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            assert (await st.req("object", "PUT", OBJ, hdrs(ts()), b"precious")).status == 201
            dev, h, rec = _record(st)
            bad = ObjectRecord(rec.ts, rec.size, rec.etag, rec.content_type, rec.meta, False,
                               rec.part, rec.name, rec.sums, b"PRECIOUS")
            with dev.env.begin(write=True, db=dev.meta_db) as txn:
                txn.put(object_key(0, h), bad.pack())
            r = await st.req("object", "GET", OBJ)
            assert r.status == 404 and b"PRECIOUS" not in r.body
            assert dev.get(0, h) is None
            assert list((st.devices / "d1" / "quarantined").rglob("*.record"))
    run(go())


def test_corrupt_file_is_quarantined(tmp_path: Path) -> None:
    data = os.urandom(100000)

    async def go() -> None:
        async with stack(tmp_path) as st:
            assert (await st.req("object", "PUT", OBJ, hdrs(ts()), data)).status == 201
            dev, h, rec = _record(st)
            path = dev.data_path(0, rec, h)
            raw = bytearray(path.read_bytes())
            raw[5000] ^= 0xFF
            path.write_bytes(bytes(raw))
            r = await st.req("object", "GET", OBJ)
            assert r.status == 404 and r.body != bytes(raw)
            assert dev.get(0, h) is None
            assert not path.exists()
            q = st.devices / "d1" / "quarantined" / "objects" / h
            assert (q / path.name).exists()
    run(go())


def test_corrupt_later_chunk_cuts_the_stream(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)

    async def go() -> None:
        async with stack(tmp_path) as st:
            assert (await st.req("object", "PUT", OBJ, hdrs(ts()), data)).status == 201
            dev, h, rec = _record(st)
            path = dev.data_path(0, rec, h)
            with open(path, "r+b") as fh:
                fh.seek(2 * CHUNK + 7)
                fh.write(b"\x00\x01\x02")
            got = b""
            with pytest.raises(HTTPClientError):
                resp = await st.client.request("127.0.0.1", st.ports["object"], "GET", OBJ)
                assert resp.status == 200
                async for chunk in resp.iter_body():
                    got += chunk
            assert got == data[:len(got)] and len(got) < len(data)  # never a corrupt byte
            assert (await st.req("object", "GET", OBJ)).status == 404
    run(go())


def test_missing_data_file_answers_404(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            assert (await st.req("object", "PUT", OBJ, hdrs(ts()), b"z" * 70000)).status == 201
            dev, h, rec = _record(st)
            dev.data_path(0, rec, h).unlink()
            assert (await st.req("object", "GET", OBJ)).status == 404
            assert dev.get(0, h) is None
    run(go())


def test_policies_are_separate(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            p1 = {"X-Backend-Storage-Policy-Index": "1"}
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **p1), b"x" * 70000)
            assert r.status == 201
            assert (await st.req("object", "GET", OBJ)).status == 404
            assert (await st.req("object", "GET", OBJ, p1)).body == b"x" * 70000
            assert list((st.devices / "d1" / "objects-1").rglob("*.data"))
    run(go())


def test_container_updates_and_async_pending(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await st.req("account", "PUT", "/d1/0/AUTH_a", {"X-Timestamp": ts()})
            r = await st.req("container", "PUT", "/d1/0/AUTH_a/c",
                             {"X-Timestamp": ts(), **st.account_headers()})
            assert r.status == 201
            ch = st.container_headers()
            assert (await st.req("object", "PUT", OBJ, hdrs(ts(), **ch), b"abc")).status == 201

            async def listed() -> bytes:
                r = await st.req("container", "GET", "/d1/0/AUTH_a/c")
                return r.body
            assert await eventually(listed) == b"o\n"
            dev = st.obj.devices.get("d1")

            async def drained() -> bool:
                return not dev.pending_updates()
            assert await eventually(drained)
            # container server down: the update waits durably on the device
            await st.stop_server("container")
            obj2 = "/d1/5/AUTH_a/c/o2"
            assert (await st.req("object", "PUT", obj2, hdrs(ts(), **ch), b"abcd")).status == 201

            async def failed() -> bool:
                return not st.obj.updates._in_flight and bool(dev.pending_updates())
            assert await eventually(failed)
            pending = dev.pending_updates()
            assert len(pending) == 1 and pending[0][1].path == "/AUTH_a/c/o2"
            await st.start_server("container")
            assert await st.obj.updates.sweep(dev) == 1
            assert await eventually(listed) == b"o\no2\n"
            r = await st.req("container", "HEAD", "/d1/0/AUTH_a/c")
            assert r.headers["x-container-object-count"] == "2"
            assert r.headers["x-container-bytes-used"] == "7"
    run(go())


def test_records_survive_restart(tmp_path: Path) -> None:
    async def go(put: bool) -> None:
        async with stack(tmp_path) as st:
            if put:
                assert (await st.req("object", "PUT", OBJ, hdrs(ts()), b"keep")).status == 201
                assert (await st.req("object", "PUT", OBJ + "big", hdrs(ts()),
                                     b"k" * 100000)).status == 201
            else:
                assert (await st.req("object", "GET", OBJ)).body == b"keep"
                assert (await st.req("object", "GET", OBJ + "big")).body == b"k" * 100000
    run(go(True))
    run(go(False))


def test_full_device_answers_507(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path, lmdb_map_mib=1) as st:
            statuses = []
            for i in range(40):
                r = await st.req("object", "PUT", f"{OBJ}{i}", hdrs(ts()), b"f" * 60000)
                statuses.append(r.status)
                if r.status == 507:
                    break
            assert statuses[0] == 201 and statuses[-1] == 507
            assert (await st.req("object", "GET", f"{OBJ}0")).status == 200
    run(go())


def test_expiry_index_follows_x_delete_at(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            far = int(time.time()) + 3600
            r = await st.req("object", "PUT", OBJ, hdrs(ts(), **{"X-Delete-At": str(far)}), b"x")
            assert r.status == 201
            dev, h, _ = _record(st)
            assert dev.expiring(far) == [(far, object_key(0, h))]
            assert dev.expiring(far - 1) == []
            later = far + 60
            r = await st.req("object", "POST", OBJ, {"X-Timestamp": ts(),
                                                     "X-Delete-At": str(later)})
            assert r.status == 202
            assert dev.expiring(later) == [(later, object_key(0, h))]
            assert (await st.req("object", "DELETE", OBJ, {"X-Timestamp": ts()})).status == 204
            assert dev.expiring(later) == []
    run(go())


@pytest.mark.parametrize("size", [0, 5, 3 * CHUNK + 17])
def test_proxy_vouched_md5_is_checked_with_xxh3(tmp_path: Path, size: int) -> None:
    """With ``X-Backend-Body-Xxh3`` the body is checked by xxh3 and the given ETag stored."""
    import xxhash

    data = os.urandom(size)
    md5 = hashlib.md5(data).hexdigest()
    good = f"{xxhash.xxh3_64_intdigest(data):016x}"
    bad = f"{xxhash.xxh3_64_intdigest(data + b'x'):016x}"

    async def go() -> None:
        async with stack(tmp_path) as st:
            r = await st.req("object", "PUT", OBJ,
                             hdrs(ts(), ETag=md5, **{"X-Backend-Body-Xxh3": bad}), data)
            assert r.status == 422  # the body is not what the proxy hashed
            r = await st.req("object", "GET", OBJ)
            assert r.status == 404
            r = await st.req("object", "PUT", OBJ,
                             hdrs(ts(), ETag=md5, **{"X-Backend-Body-Xxh3": "zz"}), data)
            assert r.status == 422
            r = await st.req("object", "PUT", OBJ,
                             hdrs(ts(), ETag=md5, **{"X-Backend-Body-Xxh3": good}), data)
            assert r.status == 201 and r.headers["etag"] == md5
            r = await st.req("object", "GET", OBJ)
            assert r.status == 200 and r.body == data and r.headers["etag"] == md5
            # without a well-formed ETag the header is ignored and the MD5 computed
            r = await st.req("object", "PUT", OBJ,
                             hdrs(ts(), ETag="nothex", **{"X-Backend-Body-Xxh3": good}), data)
            assert r.status == 422
            r = await st.req("object", "PUT", OBJ,
                             hdrs(ts(), **{"X-Backend-Body-Xxh3": bad}), data)
            assert r.status == 201 and r.headers["etag"] == md5
    run(go())


def test_metadata_footer_is_stored_with_the_object(tmp_path: Path) -> None:
    """A chunked PUT's trailer adds sysmeta and Content-Type, only when announced."""
    from nubis.common import backend as hdr

    async def put(st: Stack, path: str, announce: bool, **extra: str) -> int:
        head = hdrs(ts(), **({hdr.X_METADATA_FOOTER: "yes"} if announce else {}), **extra)
        ex = await st.client.open("127.0.0.1", st.ports["object"], "PUT", path, head)
        await ex.write(b"x" * 5000)
        await ex.finish({"X-Object-Sysmeta-S3-Checksum": "crc32:AAAAAA==",
                         "Content-Type": "application/x-told",
                         "X-Object-Meta-Sneaky": "no", "X-Object-Sysmeta-Ec-Nondurable": "yes",
                         "X-Delete-At": "1"})
        resp = await ex.response()
        await resp.release()
        return resp.status

    async def go() -> None:
        async with stack(tmp_path) as st:
            assert await put(st, OBJ, announce=True) == 201
            r = await st.req("object", "HEAD", OBJ)
            assert r.headers["x-object-sysmeta-s3-checksum"] == "crc32:AAAAAA=="
            assert r.headers["content-type"] == "application/x-told"
            assert r.headers["content-length"] == "5000"
            for name in ("x-object-meta-sneaky", "x-delete-at", "x-backend-ec-durable"):
                assert name not in r.headers, name
            other = "/d1/5/AUTH_a/c/quiet"
            assert await put(st, other, announce=False) == 201
            r = await st.req("object", "HEAD", other)
            assert r.headers["content-type"] == "text/plain"
            assert "x-object-sysmeta-s3-checksum" not in r.headers
            # the length a footer's chunked body announces is checked like Content-Length
            short = "/d1/5/AUTH_a/c/short"
            assert await put(st, short, True, **{hdr.X_OBJ_CONTENT_LENGTH: "5001"}) == 499
            assert (await st.req("object", "HEAD", short)).status == 404
            assert await put(st, short, True, **{hdr.X_OBJ_CONTENT_LENGTH: "5000"}) == 201
    run(go())


@pytest.mark.parametrize("size", [5, 3 * CHUNK + 17])
def test_proxy_vouched_md5_in_the_trailer(tmp_path: Path, size: int) -> None:
    """With ``X-Backend-Body-Sums-In-Footer`` the trailer's ETag and xxh3 are checked."""
    import xxhash
    from nubis.common import backend as hdr

    data = os.urandom(size)
    md5 = hashlib.md5(data).hexdigest()
    good = f"{xxhash.xxh3_64_intdigest(data):016x}"
    bad = f"{xxhash.xxh3_64_intdigest(data + b'x'):016x}"

    async def put(st: Stack, trailer: dict[str, str], **extra: str) -> tuple[int, str]:
        head = hdrs(ts(), **{hdr.X_SUMS_IN_FOOTER: "yes"}, **extra)
        ex = await st.client.open("127.0.0.1", st.ports["object"], "PUT", OBJ, head)
        await ex.write(data[:3])
        await ex.write(data[3:])
        await ex.finish(trailer)
        resp = await ex.response()
        await resp.release()
        return resp.status, resp.headers.get("etag", "")

    async def go() -> None:
        async with stack(tmp_path) as st:
            for trailer in ({"ETag": md5, hdr.X_BODY_XXH3: bad},  # not what the proxy hashed
                            {"ETag": md5}, {hdr.X_BODY_XXH3: good},  # half the sums
                            {"ETag": "nothex", hdr.X_BODY_XXH3: good}, {}):
                assert (await put(st, trailer))[0] == 422, trailer
                assert (await st.req("object", "GET", OBJ)).status == 404
            # a client ETag passed on in the headers must be the one vouched for
            other = hashlib.md5(b"other").hexdigest()
            assert (await put(st, {"ETag": md5, hdr.X_BODY_XXH3: good}, ETag=other))[0] == 422
            assert await put(st, {"ETag": md5, hdr.X_BODY_XXH3: good}, ETag=md5) == (201, md5)
            # the trailer's sums are not stored as metadata
            assert await put(st, {"ETag": f'"{md5.upper()}"', hdr.X_BODY_XXH3: good}) \
                == (201, md5)
            r = await st.req("object", "GET", OBJ)
            assert r.status == 200 and r.body == data and r.headers["etag"] == md5
            assert hdr.X_BODY_XXH3 not in r.headers
    run(go())


def test_answer_headers_name_both_timestamps() -> None:
    """Last-Modified is the body's time, X-Timestamp the record's (they differ after a POST)."""
    from nubis.daemons.storage import objectserver
    from nubis.daemons.storage.protocol import Timestamp

    meta = {"x-object-meta-color": "blue", "x-object-sysmeta-s3-checksum": "crc32:AAAAAA=="}
    same = ObjectRecord(ts="1700000000.50000", size=1, meta=meta)
    posted = ObjectRecord(ts="1700000900.00000", size=1, meta=meta, data_ts="1700000000.50000")
    for rec, stamp in ((same, "1700000000.50000"), (posted, "1700000900.00000")):
        got = dict(objectserver._object_headers(rec))
        assert got["Last-Modified"] == Timestamp.parse("1700000001").http_date
        assert got["X-Timestamp"] == stamp and got["X-Backend-Data-Timestamp"] == "1700000000.50000"
        assert got["X-Object-Meta-Color"] == "blue"
        assert got["X-Object-Sysmeta-S3-Checksum"] == "crc32:AAAAAA=="
