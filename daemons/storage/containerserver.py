"""The container server: container records, object rows and listings over LMDB.

Paths: ``/<dev>/<part>/<account>/<container>`` (container PUT/HEAD/GET/POST/
DELETE) and ``/<dev>/<part>/<account>/<container>/<object>`` (object rows
PUT/DELETE, sent by the object servers). Replies follow Swift's container
server: PUT 201 (created) / 202 (existed), DELETE 204 / 404 / 409 (not
empty), HEAD 204, GET 200 (204 for an empty plain listing), POST 204, rows
201 / 204, 404 for a missing container.

Account updates: container PUT/DELETE send one right away (like Swift);
object-row changes only mark the container dirty (durably, in the same
transaction) and a flusher sends the latest stats every
``account_update_interval`` seconds -- many row changes, one update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgpack
from nubis.common import backend as hdr
from nubis.common.cluster import ClusterConfig
from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.common.httpserver import BodyError, Request, Response, plain
from nubis.daemons.storage import protocol as proto
from nubis.daemons.storage.config import StorageConfig
from nubis.daemons.storage.containerdb import (
    DBS,
    ContainerDB,
    ContainerInfo,
    ContainerNotFoundError,
    NotEmptyError,
    PolicyConflictError,
    RowUpdate,
    container_id,
    unpack_row,
)
from nubis.daemons.storage.dbcommon import metadata_headers, parse_listing, render_listing
from nubis.daemons.storage.lmdbstore import GroupCommitter
from nubis.daemons.storage.protocol import ProtocolError, Timestamp
from nubis.daemons.storage.runner import run_node
from nubis.daemons.storage.server import (
    INSUFFICIENT_STORAGE,
    DatabaseServer,
    method_not_allowed,
)

LOG = logging.getLogger(__name__)


def _container_headers(info: ContainerInfo) -> list[tuple[str, str]]:
    put = Timestamp.parse(info.put_ts)
    created = Timestamp.parse(info.created or info.put_ts)
    headers = [("X-Container-Object-Count", str(info.count)),
               ("X-Container-Bytes-Used", str(info.nbytes)),
               ("X-Timestamp", created.normal), ("X-PUT-Timestamp", put.normal),
               ("X-Backend-Timestamp", info.created or info.put_ts),
               ("X-Backend-PUT-Timestamp", info.put_ts),
               ("X-Backend-Delete-Timestamp", info.delete_ts or "0000000000.00000"),
               ("X-Backend-Status-Changed-At", info.status_changed or info.put_ts),
               (hdr.X_POLICY_INDEX, str(info.policy))]
    headers.extend(metadata_headers(info.meta))
    return headers


def _row_from_item(device: str, item: Any) -> RowUpdate | None:
    """Validate one batch item ``[method, quoted "/a/c/o", headers]``."""
    try:
        method, path, headers = item
        if method not in ("PUT", "DELETE") or not isinstance(headers, dict):
            return None
        # object servers checked the names: rows may be in the reserved namespace
        p = proto.parse_path(f"/{device}/0{path}", 3, 3, allow_reserved=True)
        hdrs = {str(k).lower(): str(v) for k, v in headers.items()}
        ts = proto.parse_timestamp(hdrs).internal
        if method == "DELETE":
            return RowUpdate("DELETE", p.account, p.container, p.obj, ts)
        return RowUpdate("PUT", p.account, p.container, p.obj, ts,
                         proto.parse_int_header(hdrs, hdr.X_SIZE),
                         hdrs.get(hdr.X_CONTENT_TYPE, "application/octet-stream"),
                         hdrs.get(hdr.X_ETAG, ""))
    except (ValueError, TypeError, ProtocolError):
        return None


def header_text(value: str) -> str:
    """Return a header value received as latin-1 as the text its UTF-8 bytes spell.

    A ``Content-Type`` of UTF-8 bytes is listed as text, as Swift's container
    server does; bytes that are not UTF-8 are listed as received.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _object_row(name: str, raw: bytes, account: str = "") -> dict[str, Any]:
    ts, size, ctype, etag = unpack_row(raw)
    if not ctype.isascii():
        ctype = header_text(ctype)
    row = {"name": name, "hash": etag, "bytes": size, "content_type": ctype,
           "last_modified": proto.listing_isoformat(ts)}
    if ";" in ctype or ";" in etag:
        _row_params(row, ctype, etag, account)
    return row


def _row_params(row: dict[str, Any], ctype: str, etag: str, account: str) -> None:
    """Apply Swift's listing parameters: ``swift_bytes``, ``slo_etag``, symlinks.

    A ``;swift_bytes=N`` content-type parameter replaces ``bytes`` (Swift's
    ``override_bytes_from_content_type``); an ``; slo_etag=E`` ETag parameter
    becomes the ``slo_etag`` field (``"E"``), as Swift's slo middleware shows it;
    ``symlink_target*`` parameters become ``symlink_path``/``_etag``/``_bytes``
    (Swift's symlink middleware).
    """
    base, *params = ctype.split(";")
    kept = []
    for param in params:
        key, _, value = param.strip().partition("=")
        if key == "swift_bytes" and value.isdigit():
            row["bytes"] = int(value)
        else:
            kept.append(";" + param)
    row["content_type"] = base + "".join(kept)
    base, *params = etag.split(";")
    kept = []
    link: dict[str, str] = {}
    for param in params:
        key, _, value = param.strip().partition("=")
        if key == "slo_etag":
            row["slo_etag"] = f'"{value.strip()}"'
        elif key.startswith("symlink_target"):
            link[key] = value.strip()
        else:
            kept.append(f"; {param.strip()}")
    row["hash"] = base.strip() + "".join(kept)
    if "symlink_target_etag" in link:
        row["symlink_etag"] = link["symlink_target_etag"]
    if link.get("symlink_target_bytes", "").isdigit():
        row["symlink_bytes"] = int(link["symlink_target_bytes"])
    if "symlink_target" in link:
        acct = link.get("symlink_target_account") or quote(account)
        row["symlink_path"] = f"/v1/{acct}/{link['symlink_target']}"


class ContainerServer(DatabaseServer[ContainerDB]):
    """Handle backend container requests for the devices of one node."""

    port_name = "container_port"
    thread_name = "contio"
    env_name = "containers.lmdb"
    dbs = DBS

    def __init__(self, storage: StorageConfig, devices_dir: Path) -> None:
        super().__init__(storage, devices_dir)
        self.client = HTTPClient(connect_timeout=storage.update_timeout,
                                 timeout=storage.update_timeout)

    @classmethod
    def io_threads(cls, storage: StorageConfig) -> int:
        """Return half the configured I/O threads (at least 2)."""
        return max(2, storage.io_threads // 2)

    def make_db(self, path: Path, env: Any, committer: GroupCommitter) -> ContainerDB:
        """Wrap a device's environment."""
        db = ContainerDB(env, committer)
        db.name = path.name  # type: ignore[attr-defined]
        return db

    async def start(self) -> None:
        """Start the account-update flusher and the database syncer."""
        await super().start()
        self.spawn(self._flush_loop())

    async def before_stop(self) -> None:
        """Send what account updates can be sent, then close the client."""
        for db in list(self.devices.open.values()):
            with contextlib.suppress(Exception):
                await self.flush_account_updates(db)

    async def stop(self) -> None:
        """Flush what can be flushed and close."""
        await super().stop()
        await self.client.close()

    scope_names = 2

    def scope_key(self, names: list[str]) -> bytes:
        """Return a container's id."""
        return container_id(names[0], names[1])

    async def dispatch(self, req: Request) -> Response:
        """Answer one backend request."""
        if req.method == "POST":
            if req.path.endswith(proto.ROWS_BATCH_SUFFIX):
                return await self._rows_batch(req)
            answer = await self.replication_request(req)
            if answer is not None:
                return answer
        p = proto.parse_path(req.path, 2, 3, proto.allows_reserved(req.headers))
        db = self.devices.get(p.device)
        if db is None:
            return INSUFFICIENT_STORAGE
        if p.obj:
            return await self._object_row(req, db, p)
        return await self._container(req, db, p)

    async def _object_row(self, req: Request, db: ContainerDB, p: proto.BackendPath) -> Response:
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs).internal
        try:
            if req.method == "PUT":
                await db.put_object(p.account, p.container, p.obj, ts,
                                    proto.parse_int_header(hdrs, hdr.X_SIZE),
                                    hdrs.get(hdr.X_CONTENT_TYPE, "application/octet-stream"),
                                    hdrs.get(hdr.X_ETAG, ""))
                return plain(201, "")
            if req.method == "DELETE":
                await db.delete_object(p.account, p.container, p.obj, ts)
                return Response(204)
        except ContainerNotFoundError:
            return plain(404, "Not Found")
        return method_not_allowed("DELETE, PUT")

    async def _rows_batch(self, req: Request) -> Response:
        """Apply a batch of object-row updates (nubis extension, see protocol)."""
        device = req.path[1:-len(proto.ROWS_BATCH_SUFFIX)]
        db = self.devices.get(device)
        if db is None:
            return INSUFFICIENT_STORAGE
        try:
            items = msgpack.unpackb(await req.read(proto.ROWS_BATCH_MAX_BYTES), raw=False)
        except (ValueError, msgpack.UnpackException, BodyError):
            return plain(400, "Bad batch")
        if not isinstance(items, list):
            return plain(400, "Bad batch")
        statuses: list[int] = [400] * len(items)
        rows: list[RowUpdate] = []
        where: list[int] = []
        for i, item in enumerate(items):
            row = _row_from_item(device, item)
            if row is not None:
                rows.append(row)
                where.append(i)
        if rows:
            for i, status in zip(where, await db.apply_rows(rows), strict=True):
                statuses[i] = status
        return Response(200, [("Content-Type", "application/x-msgpack")],
                        msgpack.packb(statuses))

    async def _container(self, req: Request, db: ContainerDB, p: proto.BackendPath) -> Response:
        method = req.method
        if method == "GET" or method == "HEAD":
            return self._get(req, db, p)
        if method == "PUT":
            return await self._put(req, db, p)
        if method == "DELETE":
            return await self._delete(req, db, p)
        if method == "POST":
            ts = proto.parse_timestamp(req.headers).internal
            meta = proto.metadata_from_headers(req.headers, proto.CONTAINER_META_PREFIXES,
                                           proto.CONTAINER_STORED_HEADERS)
            try:
                await db.post_container(p.account, p.container, ts, meta)
            except ContainerNotFoundError:
                return plain(404, "Not Found")
            return Response(204)
        return method_not_allowed("DELETE, GET, HEAD, POST, PUT")

    def _get(self, req: Request, db: ContainerDB, p: proto.BackendPath) -> Response:
        info = db.info(p.account, p.container)
        if info is None or info.deleted:
            headers = [] if info is None else [
                ("X-Backend-Delete-Timestamp", info.delete_ts),
                ("X-Backend-PUT-Timestamp", info.put_ts),
                ("X-Backend-Timestamp", info.created or info.put_ts),
                ("X-Backend-Status-Changed-At", info.status_changed),
                (hdr.X_POLICY_INDEX, str(info.policy))]
            return plain(404, "Not Found", headers)
        headers = _container_headers(info)
        if req.method == "HEAD":
            return Response(204, [*headers, ("Content-Type", "text/plain; charset=utf-8")])
        listing = parse_listing(req, self.storage.listing_limit)
        entries = db.listing(p.account, p.container, listing.params)
        return render_listing(entries, listing.content_type, headers, "container", p.container,
                              "object", lambda name, raw: _object_row(name, raw, p.account))

    async def _put(self, req: Request, db: ContainerDB, p: proto.BackendPath) -> Response:
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs).internal
        policy = proto.policy_index(hdrs) if hdr.X_POLICY_INDEX in hdrs else None
        default = proto.policy_index(hdrs, hdr.X_POLICY_DEFAULT) \
            if hdr.X_POLICY_DEFAULT in hdrs else 0
        meta = proto.metadata_from_headers(hdrs, proto.CONTAINER_META_PREFIXES,
                                           proto.CONTAINER_STORED_HEADERS)
        hosts = proto.split_hosts(hdrs, hdr.X_ACCOUNT_HOST, hdr.X_ACCOUNT_PARTITION,
                                  hdr.X_ACCOUNT_DEVICE)
        targets = [list(t) for t in hosts]
        try:
            created = await db.put_container(p.account, p.container, ts, policy, meta, targets,
                                             default)
        except PolicyConflictError as exc:
            return plain(409, "Conflict",
                         [(hdr.X_POLICY_INDEX, str(exc.policy))])
        if await self._account_update_now(db, p) == 404:
            return plain(404, "Not Found")
        return plain(201 if created else 202, "")

    async def _delete(self, req: Request, db: ContainerDB, p: proto.BackendPath) -> Response:
        ts = proto.parse_timestamp(req.headers).internal
        try:
            await db.delete_container(p.account, p.container, ts)
        except ContainerNotFoundError:
            return plain(404, "Not Found")
        except NotEmptyError:
            return plain(409, "Conflict")
        await self._account_update_now(db, p)
        return Response(204)

    # -- account updates ------------------------------------------------------------
    async def _account_update_now(self, db: ContainerDB, p: proto.BackendPath) -> int:
        """Send this container's stats to its account servers; return the worst status."""
        cid = container_id(p.account, p.container)
        info = db.info_by_id(cid)
        rev = db.dirty_rev(cid)
        if info is None or not info.accounts:
            return 0
        status = await self._send_account_update(info)
        if 200 <= status < 300 and rev is not None:
            db.clear_dirty([(cid, rev)])
        return status

    async def _send_account_update(self, info: ContainerInfo) -> int:
        headers = {"X-Put-Timestamp": info.put_ts,
                   "X-Delete-Timestamp": info.delete_ts or "0000000000.00000",
                   "X-Object-Count": str(info.count), "X-Bytes-Used": str(info.nbytes),
                   "X-Timestamp": info.put_ts,
                   hdr.X_POLICY_INDEX: str(info.policy),
                   "User-Agent": "nubis-container-server"}
        if info.container.startswith("\x00"):
            headers[hdr.X_ALLOW_RESERVED] = "true"
        path = quote(f"/{info.account}/{info.container}")
        worst = 204

        async def one(target: list[Any]) -> int:
            ip, port, part, dev = target
            try:
                resp = await self.client.fetch(ip, int(port), "PUT", f"/{dev}/{part}{path}",
                                               headers, timeout=self.storage.update_timeout)
            except (HTTPClientError, OSError) as exc:
                LOG.info("account update %s to %s:%s failed: %s", path, ip, port, exc)
                return 503
            return resp.status

        for status in await asyncio.gather(*(one(t) for t in info.accounts)):
            if status == 404 or (status >= 300 and worst != 404):
                worst = status
        return worst

    async def flush_account_updates(self, db: ContainerDB) -> int:
        """Send the stats of every dirty container of ``db``; return how many were sent."""
        dirty = [(c, r) for c, r in db.dirty_containers() if db.acked.get(c) != r]
        if not dirty:
            return 0
        sem = asyncio.Semaphore(32)
        done: list[tuple[bytes, int]] = []

        async def one(cid: bytes, rev: int) -> None:
            info = db.info_by_id(cid)
            if info is None or not info.accounts:
                done.append((cid, rev))
                return
            async with sem:
                status = await self._send_account_update(info)
            if 200 <= status < 300 or status == 404:
                done.append((cid, rev))

        await asyncio.gather(*(one(c, r) for c, r in dirty))
        if done:
            db.clear_dirty(done)
        return len(done)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.storage.account_update_interval)
            for db in self.devices.all():
                try:
                    await self.flush_account_updates(db)
                except Exception:
                    LOG.exception("account update flush failed")


def run(storage: StorageConfig, cluster: ClusterConfig, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon container-server``); node from the environment."""
    del once
    return run_node(ContainerServer, storage, cluster)
