"""How a storage server runs: one node per process, on uvloop, until a stop signal.

The daemon entry points (``nubis daemon object-server`` ...) call
:func:`run_node` with their server class, the ``[storage]`` and ``[cluster]``
sections; the node comes from ``$NUBIS_STORAGE_NODE`` (see
:mod:`nubis.daemons.storage.config`). :func:`serve_all` runs several servers
in one event loop (tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any, Protocol

from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import HTTPServer, Request, Response, run_uvloop
from nubis.common.metrics import Metrics, PassCollector, instrument
from nubis.common.net import local_socket_name
from nubis.daemons.storage.config import StorageConfig, node_from_env, node_settings
from nubis.daemons.storage.server import StorageServer

LOG = logging.getLogger(__name__)


class StorageApp(Protocol):
    """A storage server: one request handler plus start/stop hooks."""

    async def handle(self, req: Request) -> Response:
        """Answer one request."""

    async def start(self) -> None:
        """Start background work (in the serving event loop)."""

    async def stop(self) -> None:
        """Stop background work and close stores."""


async def serve(app: StorageApp, host: str, port: int, *, max_connections: int,
                ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None, local_sockets: bool = False) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT (or ``stop`` is set)."""
    await serve_all([(app, host, port)], max_connections=max_connections,
                    ready=(lambda ports: ready(ports[0])) if ready else None, stop=stop,
                    local_sockets=local_sockets)


async def serve_all(apps: list[tuple[StorageApp, str, int]], *, max_connections: int,
                    ready: Callable[[list[int]], None] | None = None,
                    stop: asyncio.Event | None = None, local_sockets: bool = False) -> None:
    """Serve several apps (one port each) in this event loop until a stop signal.

    With ``local_sockets`` each also listens on its Unix socket
    (:func:`~nubis.common.net.local_socket_name`), for the proxy of this host.
    """
    stop_event = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop_event.set)
    servers: list[HTTPServer] = []
    started: list[StorageApp] = []
    try:
        for app, host, port in apps:
            await app.start()
            started.append(app)
            metrics = getattr(app, "metrics", None) or Metrics(type(app).__name__.lower())
            server = HTTPServer(instrument(app.handle, metrics), host, port,
                                backlog=min(max_connections, 4096),
                                max_connections=max_connections)
            servers.append(server)
            bound = await server.start()
            LOG.info("listening on %s:%d", host, bound)
            if local_sockets:
                await server.start_local(local_socket_name(host, bound))
        if ready is not None:
            ready([srv.port for srv in servers])
        await stop_event.wait()
    finally:
        for server in servers:
            await server.close()
        for app in started:
            await app.stop()


def run_node(server: type[StorageServer[Any]], storage: StorageConfig, cluster: ClusterConfig,
             node: int | None = None) -> int:
    """Run ``server`` for node ``node`` (default ``$NUBIS_STORAGE_NODE``) until stopped."""
    settings = node_settings(storage, cluster.state_dir,
                             node_from_env() if node is None else node)
    settings.devices.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        app = server.for_node(storage, cluster, settings)
        # The node's background daemons of this server's kind (object-*, ...)
        # are scraped here: they have no port of their own.
        kind = server.port_name.removesuffix("_port")
        app.metrics.registry.register(PassCollector(cluster.state_dir, f"{kind}-",
                                                    settings.index))
        await serve(app, settings.bind_ip, getattr(settings, server.port_name),
                    max_connections=storage.max_connections,
                    local_sockets=cluster.local_sockets)

    run_uvloop(main())
    return 0
