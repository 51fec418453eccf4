"""A storage node's object, container and account servers in one process.

``[storage] shared_process = true`` makes the supervisor start one
``nubis daemon storage-server`` per node instead of the three server daemons:
the three servers keep their own ports, code, thread pools and metrics, but
share one process and one event loop, so a PUT's container update from the
object server to the container server of the same node crosses loopback
without a context switch between processes.
"""

from __future__ import annotations

from typing import Any

from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import run_uvloop
from nubis.common.metrics import PassCollector
from nubis.daemons.storage.accountserver import AccountServer
from nubis.daemons.storage.config import StorageConfig, node_from_env, node_settings
from nubis.daemons.storage.containerserver import ContainerServer
from nubis.daemons.storage.objectserver import ObjectServer
from nubis.daemons.storage.runner import StorageApp, serve_all

#: The servers of a node, in start order (account first: the others update it).
SERVERS = (AccountServer, ContainerServer, ObjectServer)


def run_shared_node(storage: StorageConfig, cluster: ClusterConfig,
                    node: int | None = None) -> int:
    """Serve node ``node``'s three servers in this process until stopped."""
    settings = node_settings(storage, cluster.state_dir,
                             node_from_env() if node is None else node)
    settings.devices.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        apps: list[tuple[StorageApp, str, int]] = []
        for server in SERVERS:
            app: Any = server.for_node(storage, cluster, settings)
            kind = server.port_name.removesuffix("_port")
            app.metrics.registry.register(PassCollector(cluster.state_dir, f"{kind}-",
                                                        settings.index))
            apps.append((app, settings.bind_ip, getattr(settings, server.port_name)))
        await serve_all(apps, max_connections=storage.max_connections)

    run_uvloop(main())
    return 0


def run(storage: StorageConfig, cluster: ClusterConfig, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon storage-server``); node from the environment."""
    del once
    return run_shared_node(storage, cluster)
