"""The object auditor over a real device: good objects pass, flipped bytes are quarantined."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import lmdb
from nubis.common.cluster import ClusterConfig
from nubis.daemons.storage.auditor import ObjectAuditor
from nubis.daemons.storage.config import AuditorConfig, NodeSettings, StorageConfig
from nubis.daemons.storage.diskfile import ObjectRecord, object_key
from nubis.fastpath.hashpath import hash_path_hex

from .stack import SEED, run, stack, ts

BIG = os.urandom(300_000)


def _flip_inline(device: Path, hash_hex: str) -> None:
    env = lmdb.open(str(device / "objects.lmdb"), max_dbs=8)
    try:
        with env.begin(db=env.open_db(b"meta"), write=True) as txn:
            rec = ObjectRecord.unpack(txn.get(object_key(0, hash_hex)))
            assert rec.inline is not None
            txn.put(object_key(0, hash_hex),
                    replace(rec, inline=b"X" + rec.inline[1:]).pack())
    finally:
        env.close()


def test_auditor_quarantines_only_bad_objects(tmp_path: Path) -> None:
    async def write() -> None:
        async with stack(tmp_path) as st:
            for name, body in (("inline", b"hello"), ("file", BIG), ("good", b"fine"),
                               ("goodfile", BIG)):
                r = await st.req("object", "PUT", f"/d1/5/AUTH_a/c/{name}",
                                 {"X-Timestamp": ts()}, body)
                assert r.status == 201
            assert (await st.req("object", "DELETE", "/d1/5/AUTH_a/c/good",
                                 {"X-Timestamp": ts()})).status == 204
            assert (await st.req("object", "PUT", "/d1/5/AUTH_a/c/good",
                                 {"X-Timestamp": ts()}, b"fine")).status == 201
    run(write())
    device = tmp_path / "devices" / "d1"
    _flip_inline(device, hash_path_hex(SEED, b"/AUTH_a/c/inline"))
    file_hash = hash_path_hex(SEED, b"/AUTH_a/c/file")
    (data,) = (device / "objects" / "5" / file_hash[-3:] / file_hash).glob("*.data")
    with open(data, "r+b") as fh:
        fh.seek(250_000)
        fh.write(b"\0\1\2")

    async def audit() -> dict[str, int]:
        node = NodeSettings(0, "127.0.0.1", 1, 2, 3, tmp_path / "devices")
        auditor = ObjectAuditor(AuditorConfig(bytes_per_second=0), StorageConfig(),
                                ClusterConfig(state_dir=str(tmp_path)), tmp_path / "rings", node)
        try:
            return await auditor.run_once()
        finally:
            await auditor.close()

    stats = run(audit())
    assert stats["quarantined"] == 2 and stats["objects_checked"] == 4
    assert stats["bytes_checked"] >= 2 * 250_000
    quarantined = {p.name.split("-")[0] for p in (device / "quarantined" / "objects").iterdir()}
    assert quarantined == {file_hash, hash_path_hex(SEED, b"/AUTH_a/c/inline")}

    async def read() -> None:
        async with stack(tmp_path) as st:
            for name, want in (("inline", 404), ("file", 404), ("good", 200),
                               ("goodfile", 200)):
                r = await st.req("object", "GET", f"/d1/5/AUTH_a/c/{name}")
                assert r.status == want, name
            assert (await st.req("object", "GET", "/d1/5/AUTH_a/c/goodfile")).body == BIG
    run(read())
    assert run(audit()).get("quarantined", 0) == 0  # a second pass finds nothing
