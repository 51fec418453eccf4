"""The object auditor: reads every stored object back and checks its checksums.

Each pass walks the object records of every device of the node (short LMDB
read transactions of :data:`BATCH` records, resuming after the last key) and
verifies each live object: an inline body against its length and checksum in
the record, a file body chunk by chunk against the stored xxh3 of every 1 MiB
chunk (a missing or short file fails too). A bad object is quarantined --
its files moved to ``quarantined/``, an inline record written there, the
record and its index rows dropped (never deleted outright) -- so the
replicators of the nodes holding good copies push it back. Reads are paced by
``bytes_per_second`` and ``objects_per_second``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from nubis.common.cluster import ClusterConfig
from nubis.common.daemon import RateLimiter
from nubis.daemons.storage.background import NodeDaemon, run_node_daemon
from nubis.daemons.storage.config import AuditorConfig, NodeSettings, StorageConfig
from nubis.daemons.storage.diskfile import CHUNK, DiskFile, ObjectDevice, ObjectRecord, checksum

#: Records read per LMDB read transaction.
BATCH = 256


class ObjectAuditor(NodeDaemon):
    """Verify stored objects and quarantine the corrupt ones."""

    name = "object-auditor"
    counters = ("objects_checked", "bytes_checked", "quarantined")

    def __init__(self, section: AuditorConfig, storage: StorageConfig, cluster: ClusterConfig,
                 ring_dir: Path, node: NodeSettings) -> None:
        super().__init__(section, storage, cluster, ring_dir, node)
        self.bytes_limit = RateLimiter(section.bytes_per_second)
        self.objects_limit = RateLimiter(section.objects_per_second)

    async def run_once(self) -> dict[str, int]:
        """Audit every object of every device once."""
        stats: Counter[str] = Counter()
        for device in self.devices.all():
            after = b""
            while True:
                batch = device.records(after, BATCH)
                if not batch:
                    break
                after = batch[-1][0]
                for key, rec in batch:
                    if rec.deleted:
                        continue
                    await self.objects_limit.consume(1)
                    problem = await self.verify(device, key, rec, stats)
                    current = device.get(key[0], key[1:].hex()) if problem else None
                    if current is not None and current.ts == rec.ts:  # not replaced meanwhile
                        df = DiskFile(device, key[0], rec.part, key[1:].hex())
                        await df.quarantine(rec, f"auditor: {problem}")
                        stats["quarantined"] += 1
        return dict(stats)

    async def verify(self, device: ObjectDevice, key: bytes, rec: ObjectRecord,
                     stats: Counter[str]) -> str:
        """Return what is wrong with one object ("" when it is sound)."""
        stats["objects_checked"] += 1
        if rec.inline is not None:
            stats["bytes_checked"] += len(rec.inline)
            if len(rec.inline) != rec.size:
                return "inline body has the wrong length"
            if rec.size and (not rec.sums or checksum(rec.inline) != rec.sums[0]):
                return "inline checksum mismatch"
            return ""
        path = device.data_path(key[0], rec, key[1:].hex())
        chunks = (rec.size + CHUNK - 1) // CHUNK
        if len(rec.sums) != chunks:
            return "wrong number of chunk checksums"
        for index in range(chunks):
            want = min(CHUNK, rec.size - index * CHUNK)
            await self.bytes_limit.consume(want)
            try:
                data: bytes = await device.run(device.read_range, path, index * CHUNK, want)
            except OSError as exc:
                return f"cannot read {path.name}: {exc.strerror}"
            stats["bytes_checked"] += len(data)
            if len(data) != want:
                return f"{path.name} is short"
            if checksum(data) != rec.sums[index]:
                return f"chunk {index} checksum mismatch"
        return ""


def run(section: AuditorConfig, storage: StorageConfig, cluster: ClusterConfig,
        ring_dir: Path, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon object-auditor``); node from the environment."""
    return run_node_daemon(ObjectAuditor, section, storage, cluster, ring_dir, once)
