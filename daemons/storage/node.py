"""A whole storage node in one process: object, container and account servers.

``nubis daemon storage-node`` serves the three servers of node
``$NUBIS_STORAGE_NODE`` on their usual ports from one event loop, instead of
three processes. Same protocol, same files; fewer processes means fewer
context switches on small machines (an all-in-one on 2 cores).
"""

from __future__ import annotations

from typing import Any

from nubis.daemons.storage import accountserver, containerserver, objectserver
from nubis.daemons.storage.app import StorageApp, resolve_node, run_apps


def run_node(config: Any, node: int | None = None) -> int:
    """Run all three servers of storage node ``node`` in the foreground."""
    settings = resolve_node(config, node)
    settings.devices.mkdir(parents=True, exist_ok=True)

    def make() -> list[tuple[StorageApp, str, int]]:
        ip = settings.bind_ip
        return [(objectserver.make_server(config, settings), ip, settings.object_port),
                (containerserver.make_server(config, settings), ip, settings.container_port),
                (accountserver.make_server(config, settings), ip, settings.account_port)]

    return run_apps(make, config.storage.max_connections)


def run(config: Any, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon storage-node``); node from the environment."""
    del once
    return run_node(config)
