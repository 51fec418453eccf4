"""The object reconstructor: keeps every EC fragment archive on the node that should hold it.

One pass, per device of the node and per erasure-coded policy:

* **Rebuild.** For every partition where the device is primary ``j`` of the
  policy's ring, the suffix hashes of the other primaries are fetched (256
  partitions per request, the replication protocol's); suffix hashes cover
  names and timestamps, not fragment indexes, so every holder of a sound
  partition has the same ones. For differing suffixes the entry lists are
  compared; an object that another primary holds newer than here (missing,
  quarantined by the auditor, or older) is rebuilt: ``k`` durable archives of
  that version are fetched from the other primaries
  (``POST /<dev>/_ecfrag/<policy>/<part>/<hash>``, checked chunk by chunk by
  their servers), fragment ``j`` of every segment is recomputed with ISA-L
  (:meth:`Codec.reconstruct_into`), and the archive is written locally through
  :class:`~nubis.daemons.storage.diskfile.DiskFileWriter` with the source's
  record (timestamps, metadata, durable) and fragment index ``j``. A newer
  tombstone is copied as a tombstone.
* **Revert.** Every archive on a device that is not a primary of its partition
  (a handoff that took a fragment while a primary was down) is pushed to the
  primary of its fragment index (the replication protocol's ``PUT``) and
  removed here once that primary has it.

The whole archive is held in memory while rebuilding (``k`` sources plus the
result: about ``(k + 1) / k`` times the object's size).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from nubis.common import backend as hdr
from nubis.common.cluster import ClusterConfig
from nubis.common.daemon import RateLimiter
from nubis.common.httpclient import HTTPClientError
from nubis.common.policies import ECPolicy
from nubis.daemons.storage import ecfrag
from nubis.daemons.storage.background import NodeDaemon, run_node_daemon
from nubis.daemons.storage.config import NodeSettings, ReconstructorConfig, StorageConfig
from nubis.daemons.storage.diskfile import ConflictError, DiskFile, ObjectDevice, ObjectRecord
from nubis.daemons.storage.replication import (
    RECORD_HEADER,
    ReplicationClient,
    ReplicationError,
    unpack_record,
)
from nubis.ring.ring import Ring

LOG = logging.getLogger(__name__)

DevDict = dict[str, Any]
#: Partitions per suffix-hash request.
BULK = 256


class RebuildError(Exception):
    """Not enough sound fragment archives to rebuild one."""


class ObjectReconstructor(NodeDaemon):
    """Rebuild missing fragment archives and revert the ones parked on handoffs."""

    name = "object-reconstructor"

    def __init__(self, section: ReconstructorConfig, storage: StorageConfig,
                 cluster: ClusterConfig, ring_dir: Path, node: NodeSettings) -> None:
        super().__init__(section, storage, cluster, ring_dir, node)
        self.conf = section
        self.remote = ReplicationClient(self.client)
        self.limit = RateLimiter(section.objects_per_second)

    async def run_once(self) -> dict[str, int]:
        """Reconstruct and revert on every device of this node once."""
        stats: Counter[str] = Counter()
        ec = [p for p in self.policies if isinstance(p, ECPolicy)]
        for device in self.devices.all():
            for policy in ec:
                ring = self.object_ring(policy.index)
                if ring is None:
                    continue
                await self.rebuild_device(device, policy, ring, stats)
                await self.revert_device(device, policy, ring, stats)
        return dict(stats)

    # -- rebuild ---------------------------------------------------------------------
    def _primary_parts(self, device: ObjectDevice, ring: Ring) -> dict[int, int]:
        """Return ``{partition: fragment index}`` of the partitions ``device`` is primary of."""
        out: dict[int, int] = {}
        for part in range(ring.partition_count):
            for index, node in enumerate(ring.get_part_nodes(part)):
                if self.is_local(node, device.name):
                    out[part] = index
        return out

    async def rebuild_device(self, device: ObjectDevice, policy: ECPolicy, ring: Ring,
                             stats: Counter[str]) -> None:
        """Rebuild every archive this device should hold and lacks."""
        mine = self._primary_parts(device, ring)
        if not mine:
            return
        peers: dict[tuple[str, int, str], tuple[DevDict, list[int]]] = {}
        for part in mine:
            for node in ring.get_part_nodes(part):
                if not self.is_local(node, device.name):
                    key = (node["ip"], int(node["port"]), node["device"])
                    peers.setdefault(key, (node, []))[1].append(part)
        remote: dict[tuple[tuple[str, int, str], int], dict[str, str]] = {}
        for key, (node, parts) in peers.items():
            for i in range(0, len(parts), BULK):
                try:
                    got = await self.remote.bulk_hashes(node, policy.index, parts[i:i + BULK])
                except ReplicationError as exc:
                    LOG.warning("suffix hashes from %s: %s", key, exc)
                    stats["errors"] += 1
                    continue
                for part, hashes in got.items():
                    remote[(key, part)] = hashes
        sem = asyncio.Semaphore(self.conf.concurrency)

        async def job(part: int, index: int) -> None:
            async with sem:
                try:
                    await self.rebuild_partition(device, policy, ring, part, index, remote,
                                                 stats)
                except (ReplicationError, HTTPClientError, OSError) as exc:
                    LOG.warning("rebuilding %s/%d/%d: %s", device.name, policy.index, part, exc)
                    stats["errors"] += 1

        await asyncio.gather(*(job(p, i) for p, i in mine.items()))

    async def rebuild_partition(self, device: ObjectDevice, policy: ECPolicy, ring: Ring,
                                part: int, index: int,
                                remote: dict[tuple[tuple[str, int, str], int], dict[str, str]],
                                stats: Counter[str]) -> None:
        """Bring one partition's archives on this device up to the other primaries'."""
        local = device.suffix_hashes(policy.index, part)
        others = [n for n in ring.get_part_nodes(part) if not self.is_local(n, device.name)]
        wanted: dict[str, tuple[str, bool]] = {}
        for node in others:
            theirs = remote.get(((node["ip"], int(node["port"]), node["device"]), part))
            if theirs is None:
                continue
            differ = [s for s, h in theirs.items() if local.get(s) != h]
            if not differ:
                continue
            for h, (ts, deleted) in (await self.remote.entries(node, policy.index, part,
                                                                differ)).items():
                if h not in wanted or wanted[h][0] < ts:
                    wanted[h] = (ts, deleted)
        if not wanted:
            return
        mine = device.entries(policy.index, part, {h[-3:] for h in wanted})
        for hash_hex, (ts, deleted) in wanted.items():
            have = mine.get(hash_hex)
            if have is not None and have[0] >= ts:
                continue
            await self.limit.consume(1)
            df = DiskFile(device, policy.index, part, hash_hex)
            try:
                if await self.rebuild_one(df, policy, others, index, ts, deleted):
                    stats["tombstones_copied" if deleted else "rebuilt"] += 1
            except RebuildError as exc:
                LOG.warning("cannot rebuild %s/%s: %s", device.name, hash_hex, exc)
                stats["unrebuildable"] += 1

    async def rebuild_one(self, df: DiskFile, policy: ECPolicy, others: list[DevDict],
                          index: int, ts: str, deleted: bool) -> bool:
        """Rebuild fragment archive ``index`` of one object version here; True if stored."""
        if deleted:
            name = ""
            for node in others:
                rec, _ = await self._fetch(node, df, head_only=True)
                if rec is not None:
                    name = rec.name
                    break
            tomb = ObjectRecord(ts, deleted=True, part=df.part, name=name)
            try:
                await df.delete(tomb, [])
            except ConflictError:
                return False
            return True
        sources: dict[int, bytes] = {}
        model: ObjectRecord | None = None
        for node in others:
            if len(sources) >= policy.k:
                break
            rec, body = await self._fetch(node, df)
            if rec is None or rec.data_timestamp != ts or not ecfrag.is_durable(rec):
                continue
            frag = int(rec.meta.get(hdr.EC_FRAG_INDEX, "-1"))
            if frag < 0 or frag in sources or frag == index:
                continue
            sources[frag] = body
            if model is None or frag < int(model.meta[hdr.EC_FRAG_INDEX]):
                model = rec
        if model is None or len(sources) < policy.k:
            raise RebuildError(f"{len(sources)} of {policy.k} archives of {ts} found")
        archive = await asyncio.get_running_loop().run_in_executor(
            df.device.executor, rebuild_archive, policy, model, sources, index)
        return await self._store(df, model, archive, index)

    async def _fetch(self, node: DevDict, df: DiskFile,
                     head_only: bool = False) -> tuple[ObjectRecord | None, bytes]:
        path = f"/{node['device']}/{ecfrag.FETCH_SEGMENT}/{df.policy}/{df.part}/{df.hash_hex}"
        try:
            resp = await self.client.request(node["ip"], int(node["port"]), "POST", path)
            if head_only:
                resp.close()
            else:
                await resp.read()
        except (HTTPClientError, OSError) as exc:
            LOG.warning("fetching %s from %s:%s: %s", df.hash_hex, node["ip"], node["port"],
                        exc)
            return None, b""
        if resp.status != 200:
            return None, b""
        rec = unpack_record(resp.headers.get(RECORD_HEADER.lower(), ""))
        if not head_only and len(resp.body) != rec.size:
            return None, b""
        return rec, resp.body

    async def _store(self, df: DiskFile, model: ObjectRecord, archive: bytes,
                     index: int) -> bool:
        writer = df.writer(self.storage.inline_threshold)
        try:
            await writer.write(archive)
            await writer.close()
            assert writer.md5 is not None
            meta = {**model.meta, hdr.EC_FRAG_INDEX: str(index)}
            rec = replace(model, size=writer.size, etag=writer.md5.hexdigest(), meta=meta,
                          sums=tuple(writer.sums),
                          inline=writer.body if writer.inline else None)
            try:
                await writer.commit(rec, [])
            except ConflictError:
                return False
            return True
        finally:
            await writer.discard()

    # -- revert ----------------------------------------------------------------------
    async def revert_device(self, device: ObjectDevice, policy: ECPolicy, ring: Ring,
                            stats: Counter[str]) -> None:
        """Push archives parked on this (handoff) device to their primaries, then drop them."""
        for pol, part in device.partitions():
            if pol != policy.index:
                continue
            primaries = ring.get_part_nodes(part)
            if any(self.is_local(n, device.name) for n in primaries):
                continue
            for hash_hex, (ts, deleted) in device.entries(pol, part).items():
                df = DiskFile(device, pol, part, hash_hex)
                rec = df.record()
                if rec is None or rec.ts != ts:
                    continue
                targets = primaries if deleted else \
                    [primaries[int(rec.meta.get(hdr.EC_FRAG_INDEX, "0")) % len(primaries)]]
                await self.limit.consume(1)
                try:
                    done = [await self.remote.push(t, df, rec) for t in targets]
                except ReplicationError as exc:
                    LOG.warning("reverting %s: %s", hash_hex, exc)
                    stats["errors"] += 1
                    continue
                if all(done) and await device.forget(pol, hash_hex, ts):
                    await device.run(device.remove_files, pol, part, hash_hex, ts)
                    stats["reverted"] += 1


def rebuild_archive(policy: ECPolicy, model: ObjectRecord, sources: dict[int, bytes],
                    index: int) -> bytes:
    """Return fragment archive ``index`` recomputed from ``k`` others (blocking; no GIL)."""
    length = int(model.meta.get(hdr.EC_CONTENT_LENGTH, "-1"))
    if length < 0:
        raise RebuildError("the archive's record has no object length")
    out = bytearray(policy.archive_size(length))
    views = {i: memoryview(b) for i, b in sources.items()}
    pos = 0
    for seg_len in policy.segments(length):
        size = policy.fragment_size(seg_len)
        frags = {i: v[pos:pos + size] for i, v in views.items()}
        if any(len(f) != size for f in frags.values()):
            raise RebuildError("a source archive is short")
        policy.codec.reconstruct_into(frags, [index], [memoryview(out)[pos:pos + size]])
        pos += size
    return bytes(out)


def run(section: ReconstructorConfig, storage: StorageConfig, cluster: ClusterConfig,
        ring_dir: Path, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon object-reconstructor``); node from the environment."""
    return run_node_daemon(ObjectReconstructor, section, storage, cluster, ring_dir, once)
