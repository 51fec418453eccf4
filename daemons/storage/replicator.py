"""The object replicator: makes every primary of a partition hold what this node holds.

One pass, for each device of the node and each partition it holds objects or
tombstones of (the ``parts`` index, :mod:`nubis.daemons.storage.partindex`):

1. tombstones older than ``reclaim_age`` are removed (record, index row, file);
2. the partition's suffix hashes are compared with each other primary's
   (``POST /<dev>/_replicate/...``); only suffixes that differ are looked at:
   their entry lists are compared and every object or tombstone that is newer
   here (or missing there) is pushed (``PUT /<dev>/_replicate/...``), with its
   exact record and checksummed body;
3. on a handoff device (not a primary of the partition) everything is pushed
   to all primaries and, once every primary has it, removed here -- only the
   versions pushed: a newer write that arrived meanwhile stays.

Like Swift's replicator it only pushes: a node missing data is repaired by the
replicators of the nodes that have it. ``concurrency`` partitions are synced at
a time; ``objects_per_second`` bounds the pushes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from nubis.common.cluster import ClusterConfig
from nubis.common.daemon import RateLimiter
from nubis.daemons.storage.background import NodeDaemon, run_node_daemon
from nubis.daemons.storage.config import NodeSettings, ReplicatorConfig, StorageConfig
from nubis.daemons.storage.diskfile import DiskFile, ObjectDevice
from nubis.daemons.storage.protocol import Timestamp
from nubis.daemons.storage.replication import ReplicationClient, ReplicationError
from nubis.ring.ring import DevDict

LOG = logging.getLogger(__name__)

#: Objects of one partition pushed to one node at the same time.
#: PERF: concurrent pushes share the receiver's LMDB group commits
#: (``python -m nubis.bench replication``).
PUSHES_IN_FLIGHT = 8
#: Partitions whose suffix hashes one request asks another node for.
HASH_BATCH = 256


class ObjectReplicator(NodeDaemon):
    """Sync this node's object partitions with their other primaries."""

    name = "object-replicator"
    counters = ("partitions", "suffixes_synced", "objects_pushed", "push_failures", "failures",
                "errors", "tombstones_reclaimed", "handoff_partitions",
                "handoff_objects_removed", "handoffs_used")

    def __init__(self, section: ReplicatorConfig, storage: StorageConfig,
                 cluster: ClusterConfig, ring_dir: Path, node: NodeSettings) -> None:
        super().__init__(section, storage, cluster, ring_dir, node)
        self.conf = section
        self.remote = ReplicationClient(self.client)
        self.limiter = RateLimiter(section.objects_per_second)
        #: ``(policy, ip, port, device)`` of targets that answered 507 this pass.
        self.unavailable: set[tuple[Any, ...]] = set()

    async def run_once(self) -> dict[str, int]:
        """Replicate every partition of every device of this node once."""
        stats: Counter[str] = Counter()
        for device in self.devices.all():
            await self.replicate_device(device, stats)
        return dict(stats)

    async def replicate_device(self, device: ObjectDevice, stats: Counter[str]) -> None:
        """Replicate every partition one device holds."""
        plans: list[tuple[int, int, list[DevDict], bool]] = []
        for policy, part in device.partitions():
            ring = self.object_ring(policy)
            pol = self.policies.get(policy)
            if ring is None or (pol is not None and pol.is_ec):
                continue  # fragment archives are the reconstructor's
            primaries = ring.get_part_nodes(part)
            targets = [n for n in primaries if not self.is_local(n, device.name)]
            plans.append((policy, part, targets, len(targets) == len(primaries)))
        remote, self.unavailable = await self._remote_hashes(plans, stats)
        sem = asyncio.Semaphore(self.conf.concurrency)

        async def job(policy: int, part: int, targets: list[DevDict], handoff: bool) -> None:
            async with sem:
                try:
                    await self.replicate_partition(device, policy, part, targets, handoff,
                                                   remote, stats)
                except Exception:
                    stats["errors"] += 1
                    LOG.exception("replicating %s/%d/%d failed", device.name, policy, part)

        await asyncio.gather(*(job(*plan) for plan in plans))

    async def _remote_hashes(self, plans: list[tuple[int, int, list[DevDict], bool]],
                             stats: Counter[str]
                             ) -> tuple[dict[tuple[Any, ...], dict[str, str]],
                                        set[tuple[Any, ...]]]:
        """Fetch every target's suffix hashes, many partitions per request.

        Returns the hashes by ``(policy, ip, port, device, partition)`` and the
        ``(policy, ip, port, device)`` of targets that answered 507.

        PERF: one request per target device and :data:`HASH_BATCH` partitions
        instead of one per partition and target: an idle pass over a few
        thousand partitions costs a handful of requests
        (``python -m nubis.bench replication``, idle pass).
        """
        groups: dict[tuple[Any, ...], tuple[DevDict, list[int]]] = {}
        for policy, part, targets, _ in plans:
            for node in targets:
                key = (policy, node["ip"], int(node["port"]), node["device"])
                groups.setdefault(key, (node, []))[1].append(part)
        out: dict[tuple[Any, ...], dict[str, str]] = {}
        full: set[tuple[Any, ...]] = set()
        sem = asyncio.Semaphore(self.conf.concurrency)

        async def fetch(key: tuple[Any, ...], node: DevDict, parts: list[int]) -> None:
            async with sem:
                try:
                    got = await self.remote.bulk_hashes(node, key[0], parts)
                except ReplicationError as exc:
                    stats["failures"] += 1
                    if exc.status == 507:
                        full.add(key)
                    LOG.info("hashes from %s:%s/%s: %s", node["ip"], node["port"],
                             node["device"], exc)
                    return
                for part in parts:
                    out[(*key, part)] = got.get(part, {})

        await asyncio.gather(*(fetch(key, node, parts[i:i + HASH_BATCH])
                               for key, (node, parts) in groups.items()
                               for i in range(0, len(parts), HASH_BATCH)))
        return out, full

    async def replicate_partition(self, device: ObjectDevice, policy: int, part: int,
                                  targets: list[DevDict], handoff: bool,
                                  remote: dict[tuple[Any, ...], dict[str, str]],
                                  stats: Counter[str]) -> None:
        """Reclaim old tombstones, sync with the other primaries, empty a handoff."""
        stats["partitions"] += 1
        await self._reclaim(device, policy, part, stats)
        # What a handoff may drop afterwards: only versions the syncs below saw.
        snapshot = device.entries(policy, part) if handoff else {}
        in_sync = 0
        for node in targets:
            theirs = remote.get((policy, node["ip"], int(node["port"]), node["device"], part))
            if theirs is None:
                if not handoff and (policy, node["ip"], int(node["port"]),
                                    node["device"]) in self.unavailable:
                    await self._to_handoff(device, policy, part, targets, stats)
                continue  # the node did not answer
            try:
                if await self._sync(device, policy, part, node, theirs, stats):
                    in_sync += 1
            except ReplicationError as exc:
                stats["failures"] += 1
                LOG.info("partition %d to %s:%s/%s: %s", part, node["ip"], node["port"],
                         node["device"], exc)
        if handoff and targets and in_sync == len(targets):
            stats["handoff_partitions"] += 1
            await self._remove_partition(device, policy, part, snapshot, stats)

    async def _to_handoff(self, device: ObjectDevice, policy: int, part: int,
                          targets: list[DevDict], stats: Counter[str]) -> None:
        """Sync a partition to the first usable handoff in place of a primary answering 507.

        As Swift's replicator does: the data keeps its replica count while
        the device is full or unmounted; the handoff's own replicator moves it
        back once the primary takes writes again.
        """
        ring = self.object_ring(policy)
        if ring is None:
            return
        skip = {(n["ip"], int(n["port"]), n["device"]) for n in targets}
        for node in ring.get_more_nodes(part):
            key = (node["ip"], int(node["port"]), node["device"])
            if key in skip or self.is_local(node, device.name) or (policy, *key) in \
                    self.unavailable:
                continue
            try:
                theirs = await self.remote.suffix_hashes(node, policy, part)
                await self._sync(device, policy, part, node, theirs, stats)
            except ReplicationError as exc:
                if exc.status == 507:
                    self.unavailable.add((policy, *key))
                    continue
                LOG.info("partition %d to handoff %s:%s/%s: %s", part, node["ip"],
                         node["port"], node["device"], exc)
                return
            stats["handoffs_used"] += 1
            return

    async def _sync(self, device: ObjectDevice, policy: int, part: int, node: DevDict,
                    remote: dict[str, str], stats: Counter[str]) -> bool:
        """Push what ``node`` lacks of one partition; True when it now has everything."""
        local = device.suffix_hashes(policy, part)
        differ = [s for s, h in local.items() if remote.get(s) != h]
        if not differ:
            return True
        stats["suffixes_synced"] += len(differ)
        theirs = await self.remote.entries(node, policy, part, differ)
        wanted = [h for h, (ts, _) in device.entries(policy, part, set(differ)).items()
                  if h not in theirs or theirs[h][0] < ts]
        sem = asyncio.Semaphore(PUSHES_IN_FLIGHT)

        async def push(hash_hex: str) -> bool:
            async with sem:
                df = DiskFile(device, policy, part, hash_hex)
                rec = df.record()
                if rec is None:
                    return True  # removed meanwhile: the next pass sees it
                await self.limiter.consume(1)
                if await self.remote.push(node, df, rec):
                    stats["objects_pushed"] += 1
                    return True
                stats["push_failures"] += 1
                return False

        return all(await asyncio.gather(*(push(h) for h in wanted)))

    async def _reclaim(self, device: ObjectDevice, policy: int, part: int,
                       stats: Counter[str]) -> None:
        """Remove tombstones older than ``reclaim_age``."""
        cutoff = Timestamp.parse(f"{max(time.time() - self.conf.reclaim_age, 0):.5f}").internal
        for hash_hex, (ts, deleted) in device.entries(policy, part).items():
            if deleted and ts < cutoff and await device.forget(policy, hash_hex, ts):
                await device.run(device.remove_files, policy, part, hash_hex, ts)
                stats["tombstones_reclaimed"] += 1

    async def _remove_partition(self, device: ObjectDevice, policy: int, part: int,
                                snapshot: dict[str, tuple[str, bool]],
                                stats: Counter[str]) -> None:
        """Drop a handoff partition's objects every primary holds (versions unchanged)."""
        for hash_hex, (ts, _deleted) in snapshot.items():
            if await device.forget(policy, hash_hex, ts):
                await device.run(device.remove_files, policy, part, hash_hex, ts)
                stats["handoff_objects_removed"] += 1


def run(section: ReplicatorConfig, storage: StorageConfig, cluster: ClusterConfig,
        ring_dir: Path, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon object-replicator``); node from the environment."""
    return run_node_daemon(ObjectReplicator, section, storage, cluster, ring_dir, once)
