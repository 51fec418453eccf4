"""The expirer's S3 lifecycle scanner over a real device (the container HEAD is faked)."""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nubis.api.shared.s3lifecycle import (
    DELETE_MARKER,
    SYSMETA,
    TAGGING_META,
    UPLOAD_MARKER,
    VERSIONS_SYSMETA,
    Rule,
    encode,
)
from nubis.daemons.storage.diskfile import ObjectDevice, ObjectRecord
from nubis.daemons.storage.lifecycle import LifecycleScanner

NOW = 1_900_000_000.0


class _Ring:
    def get_nodes(self, account: str, container: str) -> tuple[int, list[dict[str, Any]]]:
        return 0, [{"ip": "127.0.0.1", "port": 1, "device": "d1"}]


class _Rings:
    def ring(self, kind: str) -> Any:
        return _Ring()


class _Client:
    """Answers container HEADs with the rules of ``by_container``; counts them."""

    def __init__(self, by_container: dict[str, list[Rule]]) -> None:
        self.by_container = by_container
        self.heads: list[str] = []

    async def fetch(self, ip: str, port: int, method: str, path: str,
                    headers: dict[str, str]) -> SimpleNamespace:
        container = path.rsplit("/", 1)[1]
        self.heads.append(container)
        rules = self.by_container.get(container)
        if rules is None:
            return SimpleNamespace(status=404, headers={})
        headers = {SYSMETA.title(): encode(rules)}
        if container.startswith("v"):
            headers[VERSIONS_SYSMETA] = "%00versions%00" + container
        return SimpleNamespace(status=204, headers=headers)


async def _put(dev: ObjectDevice, name: str, ts: float, size: int = 5,
               meta: dict[str, str] | None = None, deleted: bool = False,
               content_type: str = "") -> None:
    hash_hex = hashlib.md5(name.encode()).hexdigest()
    rec = ObjectRecord(ts=f"{ts:016.5f}", size=size, meta=meta or {}, deleted=deleted,
                       name=name, data_ts=f"{ts:016.5f}", content_type=content_type)
    await dev.commit_record(0, hash_hex, rec, [])


def _scan(tmp_path: Path, batch: int) -> None:
    async def go() -> None:
        with ThreadPoolExecutor(2) as pool:
            dev = ObjectDevice(tmp_path / "d1", pool, fsync=False, map_mib=64, window=0.0,
                               max_batch=64)
            old = NOW - 10 * 86400
            await _put(dev, "/AUTH_a/b/logs/1", old)
            await _put(dev, "/AUTH_a/b/logs/2", old, meta={TAGGING_META: '[["k","v"]]'})
            await _put(dev, "/AUTH_a/b/logs/3", old, deleted=True)
            await _put(dev, "/AUTH_a/b/logs/young", NOW - 3600)
            await _put(dev, "/AUTH_a/b/other", old)
            await _put(dev, "/AUTH_a/plain/logs/1", old)
            await _put(dev, "/.s3_registry/b/logs/1", old)
            client = _Client({"b": [Rule("r", True, prefix="logs/", days=2),
                                    Rule("t", True, tags=(("k", "v"),), date=0)],
                              "plain": []})
            scanner = LifecycleScanner(_Rings(), client, batch, 60.0)  # type: ignore[arg-type]
            found: set[str] = set()
            seen_total = 0
            for _ in range(8 // batch + 1):
                seen, due = await scanner.due(dev, NOW)
                seen_total += seen
                found |= {d.record.name for d in due}
            assert found == {"/AUTH_a/b/logs/1", "/AUTH_a/b/logs/2"}
            assert seen_total >= 7
            assert sorted(set(client.heads)) == ["b", "plain"]  # no system account
            assert len(client.heads) == 2  # cached per container
            await dev.committer.close()
            dev.env.close()
    asyncio.run(go())


def test_scanner_finds_due_objects_in_one_slice(tmp_path: Path) -> None:
    _scan(tmp_path, 1000)


def test_scanner_walks_in_slices_and_wraps(tmp_path: Path) -> None:
    _scan(tmp_path, 2)


def test_scanner_finds_versions_markers_and_uploads(tmp_path: Path) -> None:
    async def go() -> None:
        with ThreadPoolExecutor(2) as pool:
            dev = ObjectDevice(tmp_path / "d1", pool, fsync=False, map_mib=64, window=0.0,
                               max_batch=64)
            old, young = NOW - 10 * 86400, NOW - 3600
            await _put(dev, "/AUTH_a/vb/k", old, meta={
                "x-object-sysmeta-versions-symlink": "true",
                "x-object-sysmeta-symlink-target-bytes": "7"})
            await _put(dev, "/AUTH_a/\x00versions\x00vb/\x00k\x009999", old)
            await _put(dev, "/AUTH_a/\x00versions\x00vb/\x00k\x009998", young)
            await _put(dev, "/AUTH_a/\x00versions\x00vb/\x00m\x009997", young,
                       content_type=DELETE_MARKER)
            await _put(dev, "/AUTH_a/vb+segments/up/k/ID1", old, content_type=UPLOAD_MARKER)
            await _put(dev, "/AUTH_a/vb+segments/up/k/ID1/00001", old)
            await _put(dev, "/AUTH_a/vb+segments/up/y/ID2", young, content_type=UPLOAD_MARKER)
            await _put(dev, "/AUTH_a/plain/k", old)
            await _put(dev, "/AUTH_a/plain/big", old, meta={"x-static-large-object": "True"})
            rules = [Rule("r", True, days=2, noncurrent_days=2, abort_days=2)]
            client = _Client({"vb": rules, "plain": rules})
            scanner = LifecycleScanner(_Rings(), client, 1000, 60.0)  # type: ignore[arg-type]
            _, due = await scanner.due(dev, NOW)
            got = {(d.kind, d.bucket, d.key, d.ident, d.simple) for d in due}
            assert got == {
                ("current", "vb", "k", "", False),  # a version link: a delete marker
                ("version", "vb", "k", f"{old:016.5f}", False),  # old enough to judge
                ("version", "vb", "m", f"{young:016.5f}", False),  # a marker (Days rule)
                ("upload", "vb", "up/k", "ID1", False),
                ("current", "plain", "k", "", True),  # deleted at storage level
                ("current", "plain", "big", "", False)}  # a manifest: its segments too
            assert {d.conf.versioned for d in due if d.conf} == {True, False}
            await dev.committer.close()
            dev.env.close()
    asyncio.run(go())


def test_first_primary_acts_and_the_others_take_over_when_it_is_down() -> None:
    from nubis.daemons.storage.expirer import ObjectExpirer
    from nubis.daemons.storage.lifecycle import Due

    nodes = [{"ip": "127.0.0.1", "port": 6200 + i, "device": f"d{i}"} for i in range(3)]
    exp = ObjectExpirer.__new__(ObjectExpirer)
    exp.conf = SimpleNamespace(lifecycle_takeover=3600.0)  # type: ignore[assignment]
    exp.object_ring = lambda policy: SimpleNamespace(  # type: ignore[method-assign]
        get_part_nodes=lambda part: nodes)
    local: list[str] = []
    down: set[str] = set()
    asked: list[str] = []
    exp.is_local = lambda node, name: node["device"] in local  # type: ignore[method-assign]

    async def serves(node: dict[str, str], item: object) -> bool:
        asked.append(node["device"])
        return node["device"] not in down

    exp._serves = serves  # type: ignore[assignment, method-assign]
    item = Due(0, SimpleNamespace(part=7), since=1000.0)  # type: ignore[arg-type]

    def leads(device: str, now: float) -> bool:
        local[:] = [device]
        return asyncio.run(exp._leads(SimpleNamespace(name=device),  # type: ignore[arg-type]
                                      item, now))

    assert leads("d0", 1000.0) and leads("d0", 1e12)
    # Long due (a rule added over old objects): the first primary is up, so it alone acts.
    assert not leads("d1", 1e12) and not leads("d2", 1e12)
    down.add("d0")
    assert not leads("d1", 1000.0 + 3599) and leads("d1", 1000.0 + 3600)
    assert not leads("d2", 1000.0 + 7199)
    assert not leads("d2", 1000.0 + 7200)  # d1 is up: it takes over, not d2
    down.add("d1")
    assert leads("d2", 1000.0 + 7200)
    asked.clear()
    assert not leads("d1", 1000.0 + 3599) and asked == []  # not yet due: nobody asked
    assert not leads("handoff", 1e12)  # not a primary: never
