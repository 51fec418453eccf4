"""EC fragment archives on the object server: two-phase durability, fetch by hash, rebuild."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nubis.common.cluster import ClusterConfig
from nubis.common.policies import ECPolicy
from nubis.daemons.storage.diskfile import ObjectRecord
from nubis.daemons.storage.reconstructor import RebuildError, rebuild_archive
from nubis.daemons.storage.replication import unpack_record
from nubis.fastpath.hashpath import hash_path_hex

from .stack import SEED, run, stack, ts

OBJ = "/d1/5/AUTH_a/c/o"
EC = {"X-Backend-Storage-Policy-Index": "2"}


def _policy() -> ECPolicy:
    p = ClusterConfig().policies().by_name("ec42")
    assert isinstance(p, ECPolicy)
    return p


def test_two_phase_commit(tmp_path: Path) -> None:
    async def go() -> None:
        async with stack(tmp_path) as st:
            await st.req("account", "PUT", "/d1/0/AUTH_a", {"X-Timestamp": ts()})
            await st.req("container", "PUT", "/d1/0/AUTH_a/c",
                         {"X-Timestamp": ts(), **st.account_headers(), **EC})
            t = ts()
            put = {"X-Timestamp": t, "Content-Type": "a/b", **EC, **st.container_headers(),
                   "X-Backend-Obj-Multiphase-Commit": "yes",
                   "X-Object-Sysmeta-Ec-Frag-Index": "3"}
            assert (await st.req("object", "PUT", OBJ, put, b"frag" * 100)).status == 201
            r = await st.req("object", "HEAD", OBJ, EC)
            assert r.status == 200 and r.headers["x-backend-ec-durable"] == "no"
            assert "x-backend-durable-timestamp" not in r.headers
            assert "x-object-sysmeta-ec-nondurable" not in r.headers
            listing = await st.req("container", "GET", "/d1/0/AUTH_a/c")
            assert listing.body == b""  # no container update before phase 2
            commit = {"X-Backend-Ec-Commit": t, **EC, **st.container_headers(),
                      "X-Object-Sysmeta-Ec-Etag": "e" * 32,
                      "X-Object-Sysmeta-Ec-Content-Length": "1600",
                      "X-Object-Sysmeta-Container-Update-Override-Size": "1600",
                      # a metadata footer of the upload: stored, type listed too
                      "X-Object-Sysmeta-S3-Checksum": "crc32:AAAAAA==",
                      "Content-Type": "c/d"}
            assert (await st.req("object", "POST", OBJ, {**commit,
                                                          "X-Backend-Ec-Commit": ts()})
                    ).status == 404  # another version
            assert (await st.req("object", "POST", OBJ, commit)).status == 202
            r = await st.req("object", "GET", OBJ, EC)
            assert r.body == b"frag" * 100 and "x-backend-ec-durable" not in r.headers
            assert r.headers["x-backend-durable-timestamp"] == t
            assert r.headers["x-object-sysmeta-ec-etag"] == "e" * 32
            assert r.headers["x-object-sysmeta-ec-frag-index"] == "3"
            assert r.headers["x-object-sysmeta-s3-checksum"] == "crc32:AAAAAA=="
            assert r.headers["content-type"] == "c/d"
            for _ in range(100):
                listing = await st.req("container", "GET", "/d1/0/AUTH_a/c?format=json")
                if listing.body != b"[]":
                    break
            assert b'"bytes": 1600' in listing.body or b'"bytes":1600' in listing.body
            assert b'c/d' in listing.body
            # fetch by hash (the reconstructor's read)
            h = hash_path_hex(SEED, b"/AUTH_a/c/o")
            r = await st.req("object", "POST", f"/d1/_ecfrag/2/5/{h}")
            assert r.status == 200 and r.body == b"frag" * 100
            rec = unpack_record(r.headers["x-backend-replication-record"])
            assert rec.name == "/AUTH_a/c/o" and rec.meta["x-object-sysmeta-ec-frag-index"] == "3"
            assert (await st.req("object", "POST", f"/d1/_ecfrag/2/5/{'0' * 32}")).status == 404
            assert (await st.req("object", "POST", "/d1/_ecfrag/2/5/zz")).status == 400
    run(go())


@pytest.mark.parametrize("length", [1, 4096, 1 << 20, 3 * (1 << 20) + 7])
def test_rebuild_archive_matches_the_lost_one(length: int) -> None:
    policy = _policy()
    data = os.urandom(length)
    archives: list[bytes] = [b""] * 6
    view = memoryview(data)
    for start in range(0, length, policy.segment_size):
        for i, f in enumerate(policy.codec.encode(view[start:start + policy.segment_size])):
            archives[i] += bytes(f)
    model = ObjectRecord(ts(), meta={"x-object-sysmeta-ec-content-length": str(length)})
    for lost in (0, 3, 5):
        sources = {i: a for i, a in enumerate(archives) if i != lost and i != (lost + 1) % 6}
        assert rebuild_archive(policy, model, sources, lost) == archives[lost]
    with pytest.raises(RebuildError):
        rebuild_archive(policy, ObjectRecord(ts()), {0: archives[0]}, 1)
