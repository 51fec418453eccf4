"""What the three storage servers share: the process runner and small replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nubis.common.httpserver import HTTPServer, Request, Response, plain, run_uvloop
from nubis.daemons.storage.config import NodeSettings, node_from_env, node_settings
from nubis.fastpath.hashpath import cluster_seed

LOG = logging.getLogger(__name__)

#: PERF: the health check reply is built once (``python -m nubis.bench swift``).
HEALTH_OK = Response(200, [("Content-Type", "text/plain")], b"OK")


class StorageApp(Protocol):
    """A storage server: one request handler plus start/stop hooks."""

    async def handle(self, req: Request) -> Response:
        """Answer one request."""

    async def start(self) -> None:
        """Start background work (in the serving event loop)."""

    async def stop(self) -> None:
        """Stop background work and close stores."""


def seed_from_config(config: Any) -> int:
    """Return the cluster hash seed from ``[cluster]`` prefix and suffix."""
    cluster = config.cluster
    return int(cluster_seed(cluster.hash_path_prefix.encode(),
                            cluster.hash_path_suffix.encode()))


def resolve_node(config: Any, node: int | None) -> NodeSettings:
    """Return the settings of ``node`` (default: ``$NUBIS_STORAGE_NODE``)."""
    index = node_from_env() if node is None else node
    return node_settings(config.storage, config.cluster.state_dir, index)


async def serve(app: StorageApp, host: str, port: int, *, max_connections: int,
                ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT (or ``stop`` is set)."""
    await serve_all([(app, host, port)], max_connections=max_connections,
                    ready=(lambda ports: ready(ports[0])) if ready else None, stop=stop)


async def serve_all(apps: list[tuple[StorageApp, str, int]], *, max_connections: int,
                    ready: Callable[[list[int]], None] | None = None,
                    stop: asyncio.Event | None = None) -> None:
    """Serve several apps (one port each) in this event loop until a stop signal."""
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
            server = HTTPServer(app.handle, host, port, backlog=min(max_connections, 4096),
                                max_connections=max_connections)
            servers.append(server)
            bound = await server.start()
            LOG.info("listening on %s:%d", host, bound)
        if ready is not None:
            ready([srv.port for srv in servers])
        await stop_event.wait()
    finally:
        for server in servers:
            await server.close()
        for app in started:
            await app.stop()


def run_app(make_app: Callable[[], StorageApp], host: str, port: int,
            max_connections: int) -> int:
    """Run a storage server in this process on uvloop; return the exit code."""
    async def main() -> None:
        await serve(make_app(), host, port, max_connections=max_connections)

    run_uvloop(main())
    return 0


def run_node_server(config: Any, node: int | None,
                    build: Callable[[NodeSettings], StorageApp],
                    port_of: Callable[[NodeSettings], int]) -> int:
    """Run one storage server of node ``node`` (default ``$NUBIS_STORAGE_NODE``)."""
    settings = resolve_node(config, node)
    settings.devices.mkdir(parents=True, exist_ok=True)
    return run_app(lambda: build(settings), settings.bind_ip, port_of(settings),
                   config.storage.max_connections)


async def sync_loop(devices: Any, interval: float) -> None:
    """Flush unsynced LMDB environments of every open device every ``interval`` s."""
    while True:
        await asyncio.sleep(interval)
        await sync_all(devices)


async def sync_all(devices: Any) -> None:
    """Flush every open device's LMDB environment now (if it changed)."""
    for db in list(devices.open.values()):
        try:
            await db.committer.sync()
        except Exception:
            LOG.exception("LMDB sync failed")


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def method_not_allowed(allowed: str) -> Response:
    """Return a 405 with ``Allow``."""
    return plain(405, "Method Not Allowed", [("Allow", allowed)])


Handler = Callable[[Request], Awaitable[Response]]
