"""The account server: account records, container rows and listings over LMDB.

Paths: ``/<dev>/<part>/<account>`` (PUT/HEAD/GET/POST/DELETE) and
``/<dev>/<part>/<account>/<container>`` (container stats reports from the
container servers: ``X-Put-Timestamp``, ``X-Delete-Timestamp``,
``X-Object-Count``, ``X-Bytes-Used``, ``X-Backend-Storage-Policy-Index``).
Replies follow Swift's account server: PUT 201/202 (403 if deleted), HEAD
204, GET 200 (204 for an empty plain listing), POST 204, DELETE 204, 404 for
a missing account; container reports 201 (live) / 204 (deleted). Unlike
Swift, the first container report creates the account (container updates are
asynchronous here, so the account must not depend on their order).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lmdb
from nubis.common.httpserver import Request, Response, plain
from nubis.daemons.storage import protocol as proto
from nubis.daemons.storage.accountdb import (
    DBS,
    AccountDB,
    AccountDeletedError,
    AccountInfo,
    AccountNotFoundError,
    unpack_row,
)
from nubis.daemons.storage.app import (
    HEALTH_OK,
    cancel,
    method_not_allowed,
    run_node_server,
    sync_all,
    sync_loop,
)
from nubis.daemons.storage.config import NodeSettings, StorageConfig
from nubis.daemons.storage.dbcommon import (
    metadata_headers,
    parse_listing,
    render_listing,
    timestamp_or,
)
from nubis.daemons.storage.diskfile import DeviceSet
from nubis.daemons.storage.lmdbstore import GroupCommitter, open_env
from nubis.daemons.storage.protocol import ZERO, ProtocolError, Timestamp

LOG = logging.getLogger(__name__)

_INSUFFICIENT = plain(507, "Insufficient Storage")


def _account_headers(info: AccountInfo) -> list[tuple[str, str]]:
    headers = [("X-Account-Container-Count", str(info.containers)),
               ("X-Account-Object-Count", str(info.objects)),
               ("X-Account-Bytes-Used", str(info.nbytes)),
               ("X-Timestamp", Timestamp.parse(info.created or info.put_ts).normal),
               ("X-PUT-Timestamp", Timestamp.parse(info.put_ts).normal),
               ("X-Backend-Timestamp", info.created or info.put_ts)]
    headers.extend(metadata_headers(info.meta))
    return headers


def _container_row(name: str, raw: bytes) -> dict[str, Any]:
    put_ts, _, count, nbytes, _ = unpack_row(raw)
    return {"name": name, "count": count, "bytes": nbytes,
            "last_modified": Timestamp.parse(put_ts).isoformat}


class AccountServer:
    """Handle backend account requests for the devices of one node."""

    def __init__(self, storage: StorageConfig, devices_dir: Path) -> None:
        self.storage = storage
        self.executor = ThreadPoolExecutor(2, thread_name_prefix="acctio")
        self._syncer: asyncio.Task[None] | None = None
        self.devices = DeviceSet(devices_dir, self._open_device,
                                 mount_check=storage.mount_check)

    def _open_device(self, path: Path) -> AccountDB:
        s = self.storage
        durable = s.fsync and s.db_fsync
        env = open_env(path / "accounts.lmdb", DBS, map_mib=s.lmdb_map_mib, sync=durable)
        committer = GroupCommitter(env, self.executor, window=s.group_commit_ms / 1000.0,
                                   max_batch=s.group_commit_max, in_loop=not durable)
        return AccountDB(env, committer)

    async def start(self) -> None:
        """Start the database syncer."""
        self._syncer = asyncio.get_running_loop().create_task(
            sync_loop(self.devices, self.storage.db_sync_interval))

    async def stop(self) -> None:
        """Sync and close every device."""
        await cancel(self._syncer)
        for db in list(self.devices.open.values()):
            await db.committer.close()
        await sync_all(self.devices)
        for db in list(self.devices.open.values()):
            db.env.close()
        self.devices.open.clear()
        self.executor.shutdown(wait=True)

    async def handle(self, req: Request) -> Response:
        """Answer one backend request."""
        if req.path == "/healthcheck":
            return HEALTH_OK
        try:
            p = proto.parse_path(req.path, 1, 2)
            db = self.devices.get(p.device)
            if db is None:
                return _INSUFFICIENT
            if p.container:
                if req.method != "PUT":
                    return method_not_allowed("PUT")
                return await self._container_report(req, db, p)
            return await self._account(req, db, p)
        except ProtocolError as exc:
            return exc.response()
        except (lmdb.MapFullError, lmdb.DiskError) as exc:
            LOG.error("device full: %s", exc)
            return _INSUFFICIENT
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                LOG.error("device full or read-only: %s", exc)
                return _INSUFFICIENT
            raise

    async def _container_report(self, req: Request, db: AccountDB,
                                p: proto.BackendPath) -> Response:
        hdrs = req.headers
        put_ts = timestamp_or(hdrs.get(proto.X_PUT_TIMESTAMP), ZERO)
        del_ts = timestamp_or(hdrs.get(proto.X_DELETE_TIMESTAMP), ZERO)
        if put_ts == ZERO and del_ts == ZERO:
            put_ts = proto.parse_timestamp(hdrs)
        try:
            live = await db.put_container(
                p.account, p.container, put_ts.internal,
                del_ts.internal if del_ts != ZERO else "",
                proto.parse_int_header(hdrs, proto.X_OBJECT_COUNT),
                proto.parse_int_header(hdrs, proto.X_BYTES_USED), proto.policy_index(hdrs))
        except AccountDeletedError:
            return plain(404, "Not Found")
        return plain(201, "") if live else Response(204)

    async def _account(self, req: Request, db: AccountDB, p: proto.BackendPath) -> Response:
        method = req.method
        if method == "GET" or method == "HEAD":
            return self._get(req, db, p)
        meta = proto.metadata_from_headers(req.headers, proto.ACCOUNT_META_PREFIXES,
                                       proto.ACCOUNT_STORED_HEADERS)
        if method == "PUT":
            ts = proto.parse_timestamp(req.headers).internal
            try:
                created = await db.put_account(p.account, ts, meta)
            except AccountDeletedError:
                return plain(403, "Recently deleted")
            return plain(201 if created else 202, "")
        if method == "POST":
            ts = proto.parse_timestamp(req.headers).internal
            try:
                await db.post_account(p.account, ts, meta)
            except AccountNotFoundError:
                return plain(404, "Not Found")
            return Response(204)
        if method == "DELETE":
            ts = proto.parse_timestamp(req.headers).internal
            try:
                await db.delete_account(p.account, ts)
            except AccountNotFoundError:
                return plain(404, "Not Found")
            return Response(204)
        return method_not_allowed("DELETE, GET, HEAD, POST, PUT")

    def _get(self, req: Request, db: AccountDB, p: proto.BackendPath) -> Response:
        info = db.info(p.account)
        if info is None:
            return plain(404, "Not Found")
        if info.deleted:
            return plain(404, "Not Found", [("X-Account-Status", "Deleted")])
        headers = _account_headers(info)
        if req.method == "HEAD":
            return Response(204, [*headers, ("Content-Type", "text/plain; charset=utf-8")])
        listing = parse_listing(req, self.storage.listing_limit)
        entries = db.listing(p.account, listing.params)
        return render_listing(entries, listing.content_type, headers, "account", p.account,
                              "container", _container_row)


def make_server(config: Any, node: NodeSettings) -> AccountServer:
    """Build the account server of ``node``."""
    return AccountServer(config.storage, node.devices)


def run_node(config: Any, node: int | None = None) -> int:
    """Run the account server of storage node ``node`` in the foreground."""
    return run_node_server(config, node, lambda s: make_server(config, s),
                           lambda s: s.account_port)


def run(config: Any, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon account-server``)."""
    del once
    return run_node(config)
