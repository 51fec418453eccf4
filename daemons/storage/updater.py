"""The object updater: sends the container updates the object servers queued.

An object PUT/DELETE commits its container update into the device's durable
``pending`` queue with the object, then sends it and waits at most
``update_timeout`` (see :mod:`nubis.daemons.storage.updates`). Whatever the
container server did not acknowledge then (it was down, slow, or full) stays
queued; the object server does not retry it. This daemon drains the queue:
each pass sends every queued update of each device of its node, batched per
container server, and forgets those acknowledged (a 404 -- the container is
gone -- counts as settled, as in Swift). The rest wait for the next pass.
"""

from __future__ import annotations

from pathlib import Path

from nubis.common.cluster import ClusterConfig
from nubis.daemons.storage.background import NodeDaemon, run_node_daemon
from nubis.daemons.storage.config import NodeSettings, StorageConfig, UpdaterConfig
from nubis.daemons.storage.updates import UpdateSender


class ObjectUpdater(NodeDaemon):
    """Apply queued container updates once the container servers answer."""

    name = "object-updater"
    counters = ("pending", "applied", "failed")

    def __init__(self, section: UpdaterConfig, storage: StorageConfig, cluster: ClusterConfig,
                 ring_dir: Path, node: NodeSettings) -> None:
        super().__init__(section, storage, cluster, ring_dir, node)
        self.batch_size = section.batch_size
        self.sender = UpdateSender(self.client, section.http_timeout, down_interval=0.0)

    async def run_once(self) -> dict[str, int]:
        """Send every queued update of every device once; count what happened."""
        stats = {"pending": 0, "applied": 0, "failed": 0}
        for device in self.devices.all():
            seen: set[bytes] = set()
            while True:
                batch = [(k, u) for k, u in device.pending_updates(self.batch_size + len(seen))
                         if k not in seen]
                if not batch:
                    break
                seen.update(k for k, _ in batch)
                applied = await self.sender.sweep(device, items=batch)
                stats["pending"] += len(batch)
                stats["applied"] += applied
                stats["failed"] += len(batch) - applied
        return stats


def run(section: UpdaterConfig, storage: StorageConfig, cluster: ClusterConfig,
        ring_dir: Path, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon object-updater``); node from the environment."""
    return run_node_daemon(ObjectUpdater, section, storage, cluster, ring_dir, once)
