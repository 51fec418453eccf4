"""What every storage server does: health check, device lookup, 507, start/stop.

:class:`StorageServer` is the base of the object, container and account
servers. It answers ``/healthcheck``, turns a malformed request into its
:class:`~nubis.daemons.storage.protocol.ProtocolError` reply and a full or
read-only device into 507 (the one place that mapping lives), and owns the
node's :class:`~nubis.daemons.storage.devices.DeviceSet` and I/O threads. A
subclass opens its device type and answers requests (:meth:`dispatch`).
:class:`DatabaseServer` adds what the container and account servers share: an
LMDB database per device, flushed every ``db_sync_interval`` seconds.

How a server runs (event loop, sockets, signals, one process per node) is
:mod:`nubis.daemons.storage.runner`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar

import lmdb
import msgpack
from nubis.common.cluster import ClusterConfig
from nubis.common.httpserver import BodyError, Request, Response, plain
from nubis.common.metrics import Metrics
from nubis.daemons.storage import dbsync
from nubis.daemons.storage.config import NodeSettings, StorageConfig
from nubis.daemons.storage.devices import Device, DeviceSet
from nubis.daemons.storage.lmdbstore import GroupCommitter, open_env
from nubis.daemons.storage.protocol import ProtocolError

LOG = logging.getLogger(__name__)

#: PERF: the health check reply is built once (``python -m nubis.bench swift``).
HEALTH_OK = Response(200, [("Content-Type", "text/plain")], b"OK")
INSUFFICIENT_STORAGE = plain(507, "Insufficient Storage")
#: errnos that mean "this device cannot take the write" (answered 507).
_DEVICE_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

D = TypeVar("D", bound=Device)


def method_not_allowed(allowed: str) -> Response:
    """Return a 405 with ``Allow``."""
    return plain(405, "Method Not Allowed", [("Allow", allowed)])


class StorageServer(ABC, Generic[D]):
    """One storage server of one node: its devices, I/O threads and request handling."""

    #: The :class:`NodeSettings` attribute holding this server's port.
    port_name: ClassVar[str]
    #: Prefix of the I/O threads' names.
    thread_name: ClassVar[str] = "io"

    def __init__(self, storage: StorageConfig, devices_dir: Path) -> None:
        self.storage = storage
        self.executor = ThreadPoolExecutor(self.io_threads(storage),
                                           thread_name_prefix=self.thread_name)
        self.devices: DeviceSet[D] = DeviceSet(devices_dir, self.open_device,
                                               mount_check=storage.mount_check)
        #: ``GET /metrics`` (served by the runner); add the server's own counters here.
        self.metrics = Metrics(getattr(self, "port_name", "storage").replace("_port", "-server"))

    @classmethod
    def for_node(cls, storage: StorageConfig, cluster: ClusterConfig,
                 node: NodeSettings) -> Self:
        """Build the server of ``node``."""
        del cluster
        return cls(storage, node.devices)

    @classmethod
    def io_threads(cls, storage: StorageConfig) -> int:
        """Return how many I/O threads the server runs."""
        return storage.io_threads

    @abstractmethod
    def open_device(self, path: Path) -> D:
        """Open the device directory ``path`` (called once per device, lazily)."""

    @abstractmethod
    async def dispatch(self, req: Request) -> Response:
        """Answer one backend request (errors are mapped by :meth:`handle`)."""

    async def handle(self, req: Request) -> Response:
        """Answer one request: health check, protocol errors and full devices here."""
        if req.path == "/healthcheck":
            return HEALTH_OK
        try:
            return await self.dispatch(req)
        except ProtocolError as exc:
            return exc.response()
        except (lmdb.MapFullError, lmdb.DiskError) as exc:
            LOG.error("device full: %s", exc)
            return INSUFFICIENT_STORAGE
        except lmdb.Error as exc:
            # An unsynced environment's commit reports a short write to a full
            # device as EIO ("Input/output error"): the device cannot take it.
            if os.strerror(errno.EIO) not in str(exc):
                raise
            LOG.error("device failed: %s", exc)
            return INSUFFICIENT_STORAGE
        except OSError as exc:
            if exc.errno in _DEVICE_FULL:
                LOG.error("device full or read-only: %s", exc)
                return INSUFFICIENT_STORAGE
            raise

    def committer(self, env: Any, durable: bool) -> GroupCommitter:
        """Return the group committer of a device's LMDB environment."""
        s = self.storage
        return GroupCommitter(env, self.executor, window=s.group_commit_ms / 1000.0,
                              max_batch=s.group_commit_max, in_loop=not durable)

    async def start(self) -> None:
        """Start background work (in the serving event loop)."""

    async def stop(self) -> None:
        """Close every device and the I/O threads."""
        await self.devices.close()
        self.executor.shutdown(wait=True)


class DatabaseServer(StorageServer[D]):
    """A container or account server: one LMDB database per device, flushed periodically."""

    #: The device's LMDB environment directory and sub-databases.
    env_name: ClassVar[str]
    dbs: ClassVar[tuple[str, ...]]

    def __init__(self, storage: StorageConfig, devices_dir: Path) -> None:
        super().__init__(storage, devices_dir)
        self._tasks: list[asyncio.Task[None]] = []

    def open_device(self, path: Path) -> D:
        """Open the device's database (synchronous commits only with ``db_fsync``)."""
        s = self.storage
        durable = s.fsync and s.db_fsync
        env = open_env(path / self.env_name, self.dbs, map_mib=s.lmdb_map_mib, sync=durable)
        return self.make_db(path, env, self.committer(env, durable))

    @abstractmethod
    def make_db(self, path: Path, env: Any, committer: GroupCommitter) -> D:
        """Wrap an opened environment in the server's database type."""

    @abstractmethod
    def scope_key(self, names: list[str]) -> bytes:
        """Return the database key of a replicated scope (``[account, container]``...)."""

    #: How many names identify a replicated scope (2 for containers, 1 for accounts).
    scope_names: ClassVar[int]

    async def replication_request(self, req: Request) -> Response | None:
        """Answer ``POST /<dev>/_dbsync`` and ``/_dbmerge`` (:mod:`dbsync`); else None."""
        if req.method != "POST":
            return None
        path = req.path
        if path.endswith(dbsync.SYNC_SUFFIX):
            suffix = dbsync.SYNC_SUFFIX
        elif path.endswith(dbsync.MERGE_SUFFIX):
            suffix = dbsync.MERGE_SUFFIX
        else:
            return None
        device = path[1:-len(suffix)]
        if "/" in device:
            return None  # a container or account named like the suffix
        db: Any = self.devices.get(device)
        if db is None:
            return INSUFFICIENT_STORAGE
        try:
            body = msgpack.unpackb(await req.read(dbsync.MAX_BODY), raw=False)
        except (ValueError, msgpack.UnpackException, BodyError):
            return plain(400, "Bad replication body")
        if suffix == dbsync.MERGE_SUFFIX:
            try:
                await db.merge(body)
            except ValueError as exc:
                return plain(400, str(exc))
            return Response(204)
        items = dbsync.parse_sync_items(body, self.scope_names)
        if items is None:
            return plain(400, "Bad replication body")

        def compare() -> list[bool]:
            return [db.digest(self.scope_key(names)) == digest for names, digest in items]

        answer = await asyncio.get_running_loop().run_in_executor(self.executor, compare)
        return Response(200, [("Content-Type", "application/x-msgpack")], dbsync.packb(answer))

    def spawn(self, work: Any) -> None:
        """Run background coroutine ``work`` until :meth:`stop`."""
        self._tasks.append(asyncio.get_running_loop().create_task(work))

    async def start(self) -> None:
        """Start the database syncer."""
        self.spawn(self._sync_loop())

    async def stop(self) -> None:
        """Stop background work, flush, sync and close every device."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.before_stop()
        await self.devices.close(before_close=self.sync_all)
        self.executor.shutdown(wait=True)

    async def before_stop(self) -> None:
        """Last work with open devices (after background tasks stopped)."""

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.storage.db_sync_interval)
            await self.sync_all()

    async def sync_all(self) -> None:
        """Flush every open device's LMDB environment now (if it changed)."""
        for db in list(self.devices.open.values()):
            try:
                await db.committer.sync()
            except Exception:
                LOG.exception("LMDB sync failed")
