"""What the object-side background daemons share: one node's devices, rings, HTTP.

Each background daemon (replicator, auditor, updater, expirer) runs once per
storage node, like the servers (``$NUBIS_STORAGE_NODE`` selects the node), and
opens that node's object devices itself: LMDB lets the object server and the
daemons write the same environment from separate processes (writes serialize
on LMDB's lock). How passes are scheduled is :mod:`nubis.common.daemon`'s.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nubis.common.cluster import ClusterConfig
from nubis.common.daemon import Daemon, run_daemon, status_path
from nubis.common.httpclient import HTTPClient
from nubis.daemons.storage.config import NodeSettings, StorageConfig, node_from_env, node_settings
from nubis.daemons.storage.devices import DeviceSet
from nubis.daemons.storage.diskfile import ObjectDevice
from nubis.fastpath.hashpath import cluster_seed
from nubis.ring.ring import DevDict, Ring

LOG = logging.getLogger(__name__)


def open_object_device(path: Path, executor: ThreadPoolExecutor,
                       storage: StorageConfig) -> ObjectDevice:
    """Open a device's object store as the ``[storage]`` section says."""
    return ObjectDevice(path, executor, fsync=storage.fsync, map_mib=storage.lmdb_map_mib,
                        window=storage.group_commit_ms / 1000.0,
                        max_batch=storage.group_commit_max)


def status_file(cluster: ClusterConfig, daemon: str, node: int) -> Path:
    """Return where a daemon of ``node`` records its passes."""
    return status_path(cluster.state_dir, f"{daemon}-{node}")


class NodeDaemon(Daemon):
    """A background daemon over the object devices of one storage node."""

    #: The :class:`NodeSettings` port of the server whose devices the daemon tends.
    port_name = "object_port"

    def __init__(self, section: Any, storage: StorageConfig, cluster: ClusterConfig,
                 ring_dir: Path, node: NodeSettings) -> None:
        super().__init__(float(section.interval))
        http_timeout = float(getattr(section, "http_timeout", 10.0))
        self.storage = storage
        self.cluster = cluster
        self.node = node
        self.ring_dir = ring_dir
        self.seed = int(cluster_seed(cluster.hash_path_prefix.encode(),
                                     cluster.hash_path_suffix.encode()))
        self.executor = ThreadPoolExecutor(4, thread_name_prefix=self.name)
        self.devices: DeviceSet[ObjectDevice] = DeviceSet(
            node.devices, lambda p: open_object_device(p, self.executor, storage),
            mount_check=storage.mount_check)
        self.client = HTTPClient(connect_timeout=min(http_timeout, 5.0), timeout=http_timeout)
        self._rings: dict[str, Ring | None] = {}
        #: The cluster's storage policies (the reconstructor handles EC ones,
        #: the replicator the others).
        self.policies = cluster.policies()

    def ring(self, kind: str) -> Ring | None:
        """Return the ring ``<ring_dir>/<kind>.ring`` (None when it does not exist)."""
        if kind not in self._rings:
            path = self.ring_dir / f"{kind}.ring"
            self._rings[kind] = Ring(path, seed=self.seed) if path.exists() else None
        return self._rings[kind]

    def object_ring(self, policy: int) -> Ring | None:
        """Return the object ring of a storage policy."""
        return self.ring("object" if policy == 0 else f"object-{policy}")

    def is_local(self, dev: DevDict, device: str) -> bool:
        """Tell whether ring device ``dev`` is ``device`` of this node's server."""
        port = int(getattr(self.node, self.port_name))
        return (dev.get("device") == device and int(dev.get("port", -1)) == port
                and dev.get("ip") in (self.node.bind_ip, "127.0.0.1", "localhost", "::1"))

    async def close(self) -> None:
        """Close the devices (flushing queued writes), the client and the threads."""
        await self.devices.close()
        await self.client.close()
        self.executor.shutdown(wait=True)


def run_node_daemon(cls: type[NodeDaemon], section: Any, storage: StorageConfig,
                    cluster: ClusterConfig, ring_dir: Path, once: bool) -> int:
    """Run daemon ``cls`` for the node of ``$NUBIS_STORAGE_NODE``."""
    node = node_settings(storage, cluster.state_dir, node_from_env())
    return run_daemon(lambda: cls(section, storage, cluster, ring_dir, node), once=once,
                      status_file=status_file(cluster, cls.name, node.index))
