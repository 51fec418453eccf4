"""The object server: Swift's backend object protocol over :mod:`diskfile`.

``PUT/GET/HEAD/DELETE/POST /<device>/<partition>/<account>/<container>/<object>``;
see :mod:`nubis.daemons.storage` for the headers. Replies follow Swift's
object server: 201 PUT, 204/404 DELETE, 202 POST, 404 with
``X-Backend-Timestamp`` for tombstones, 409 for stale timestamps, 412 for
``If-None-Match: *`` on an existing object, 422 for an ETag mismatch, 507
for a missing device.

PERF: the 4 KiB PUT/GET path (``python -m nubis.bench swift``) avoids
threads for inline objects: LMDB lookups run on the event loop, only the
group commit goes to a thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from nubis.common import backend as hdr
from nubis.common.cluster import ClusterConfig
from nubis.common.httpclient import HTTPClient
from nubis.common.httpserver import BodyError, Request, Response, joined_headers, plain
from nubis.daemons.storage import ecfrag, replication
from nubis.daemons.storage import protocol as proto
from nubis.daemons.storage.background import open_object_device
from nubis.daemons.storage.config import NodeSettings, StorageConfig
from nubis.daemons.storage.diskfile import (
    ConflictError,
    CorruptDataError,
    DiskFile,
    DiskFileWriter,
    ObjectDevice,
    ObjectRecord,
    PendingUpdate,
)
from nubis.daemons.storage.protocol import ProtocolError, Timestamp
from nubis.daemons.storage.runner import run_node
from nubis.daemons.storage.server import (
    INSUFFICIENT_STORAGE,
    StorageServer,
    method_not_allowed,
)
from nubis.daemons.storage.updates import UpdateSender
from nubis.fastpath.hashpath import cluster_seed, hash_path_hex
from prometheus_client import Counter

LOG = logging.getLogger(__name__)

_ALLOWED = "DELETE, GET, HEAD, POST, PUT"


def _parse_range(value: str, size: int) -> tuple[int, int] | bool | None:
    """Return ``(start, end_inclusive)`` for one satisfiable range.

    ``None`` means "ignore the header" (multiple ranges or malformed);
    ``False`` means unsatisfiable (416).
    """
    if not value.startswith("bytes=") or "," in value:
        return None
    first, sep, last = value[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return False
            return (max(0, size - n), size - 1) if size else False
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return False
    if start < 0 or end < start:
        return None
    return start, min(end, size - 1)


def _etag_matches(header: str, etag: str) -> bool:
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.strip('"') == etag:
            return True
    return False


class ObjectServer(StorageServer[ObjectDevice]):
    """Handle backend object requests for the devices of one node."""

    port_name = "object_port"
    thread_name = "objio"

    def __init__(self, storage: StorageConfig, devices_dir: Path, seed: int, *,
                 local_sockets: bool = False) -> None:
        super().__init__(storage, devices_dir)
        self.seed = seed
        # Container updates reach this host's container servers by Unix socket
        # when ``local_sockets`` (``[cluster] local_sockets``).
        self.client = HTTPClient(connect_timeout=storage.update_timeout,
                                 timeout=storage.update_timeout, local_sockets=local_sockets)
        self.updates = UpdateSender(self.client, storage.update_timeout)
        self.pendings_queued = Counter(
            "nubis_object_async_pendings_queued",
            "Container updates still queued when their request was answered (for the updater)",
            registry=self.metrics.registry)

    @classmethod
    def for_node(cls, storage: StorageConfig, cluster: ClusterConfig,
                 node: NodeSettings) -> Self:
        """Build the object server of ``node`` (with the cluster's hash seed)."""
        seed = int(cluster_seed(cluster.hash_path_prefix.encode(),
                                cluster.hash_path_suffix.encode()))
        return cls(storage, node.devices, seed, local_sockets=cluster.local_sockets)

    def open_device(self, path: Path) -> ObjectDevice:
        """Open a device's LMDB environment and data files."""
        return open_object_device(path, self.executor, self.storage)

    async def stop(self) -> None:
        """Flush and close everything."""
        await self.updates.close()
        await self.client.close()
        await super().stop()

    # -- dispatch ----------------------------------------------------------------
    async def dispatch(self, req: Request) -> Response:
        """Answer one backend request."""
        method = req.method
        if method == "GET" or method == "HEAD":
            return await self.get(req)
        if replication.is_replication_path(req.path):
            device = req.path.split("/", 2)[1]
            if method == "POST" and self.devices.short_of_space(
                    device, self.storage.reserve_percent):
                return INSUFFICIENT_STORAGE  # the replicator sends to a handoff instead
            return await replication.handle(req, self.devices.get(device),
                                            self.seed, self.storage.inline_threshold)
        if ecfrag.is_fetch_path(req.path):
            return await ecfrag.serve_archive(req, self.devices.get(req.path.split("/", 2)[1]))
        if method == "PUT":
            return await self.put(req)
        if method == "DELETE":
            return await self.delete(req)
        if method == "POST":
            return await self.post(req)
        return method_not_allowed(_ALLOWED)

    def _locate(self, req: Request) -> tuple[proto.BackendPath, DiskFile | None]:
        """Return the request's path and its object's place (None: no such device, 507)."""
        p = proto.parse_path(req.path, 3, 3, proto.allows_reserved(req.headers))
        dev = self.devices.get(p.device)
        if dev is None:
            return p, None
        name = f"/{p.account}/{p.container}/{p.obj}"
        return p, DiskFile(dev, proto.policy_index(req.headers), p.partition,
                           hash_path_hex(self.seed, name.encode("utf-8")))

    # -- GET / HEAD ------------------------------------------------------------------
    async def get(self, req: Request) -> Response:
        """Return an object's body (GET) or headers (HEAD), verified."""
        _, df = self._locate(req)
        if df is None:
            return INSUFFICIENT_STORAGE
        rec = df.record()
        missing = self._missing(rec, proto.opens_expired(req.headers))
        if missing is not None:
            return missing
        assert rec is not None
        headers = _object_headers(rec)
        hdrs = req.headers
        if "if-match" in hdrs and not _etag_matches(hdrs["if-match"], rec.etag):
            return Response(412, headers, b"", content_length=0)
        if "if-none-match" in hdrs and _etag_matches(hdrs["if-none-match"], rec.etag):
            return Response(304, headers, b"")
        rng: Any = None
        if "range" in hdrs:
            rng = _parse_range(hdrs["range"], rec.size)
            if rng is False:
                headers.append(("Content-Range", f"bytes */{rec.size}"))
                return Response(416, headers, b"")
        status = 200
        start, end = 0, rec.size - 1
        if rng:
            start, end = rng
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{rec.size}"))
        length = end - start + 1
        if req.method == "HEAD":
            return Response(status, headers, b"", content_length=length)
        body = await df.reader(rec).read(start, length)
        if body is None:
            return self._not_found()
        if isinstance(body, bytes):
            return Response(status, headers, body)
        return Response(status, headers, _drop_on_corruption(body), content_length=length)

    def _missing(self, rec: ObjectRecord | None, open_expired: bool = False) -> Response | None:
        """Return the 404 for no object, a tombstone or an expired object, else None.

        ``open_expired`` (``X-Backend-Open-Expired`` on a GET, HEAD or POST): an
        object past its ``X-Delete-At`` that the expirer has not deleted yet is
        still there.
        """
        if rec is None:
            return self._not_found()
        if rec.deleted:
            return self._not_found(rec.ts)
        delete_at = rec.meta.get("x-delete-at")
        if not open_expired and delete_at is not None and delete_at.isdigit() \
                and int(delete_at) <= time.time():
            return self._not_found(rec.ts)
        return None

    @staticmethod
    def _not_found(ts: str | None = None) -> Response:
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if ts is not None:
            headers.append((hdr.X_BACKEND_TIMESTAMP, ts))
        return Response(404, headers, b"Not Found")

    # -- PUT -------------------------------------------------------------------------
    async def put(self, req: Request) -> Response:
        """Store an object durably, then queue and send its container update."""
        p, df = self._locate(req)
        if df is None:
            return INSUFFICIENT_STORAGE
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs)
        if "content-length" not in hdrs and "chunked" not in hdrs.get("transfer-encoding", ""):
            return plain(411, "Length Required")
        length_header = "content-length" if "content-length" in hdrs \
            else hdr.X_OBJ_CONTENT_LENGTH
        if self.devices.short_of_space(p.device, self.storage.reserve_percent,
                                       proto.parse_int_header(hdrs, length_header)):
            return INSUFFICIENT_STORAGE
        meta = proto.metadata_from_headers(hdrs, proto.OBJECT_META_PREFIXES,
                                           proto.OBJECT_STORED_HEADERS)
        _check_delete_at(meta)
        if hdrs.get(hdr.X_EC_MULTIPHASE) == "yes":
            meta[ecfrag.NONDURABLE] = "yes"  # until phase 2 (see ecfrag)
        existing = df.record()
        if existing is not None:
            if existing.ts >= ts.internal:
                return plain(409, "Conflict", [(hdr.X_BACKEND_TIMESTAMP, existing.ts)])
            if hdrs.get("if-none-match") == "*" and self._missing(existing) is None:
                return plain(412, "Precondition Failed")
        # PERF: a nubis proxy sends the MD5 it computed plus an xxh3 of the
        # body (as headers, or in the trailer of a streamed body): the body is
        # checked with the xxh3 (cheap) and the MD5 is not computed again on
        # every replica (python -m nubis.bench swift, 1 MiB PUT; bench s3
        # --multipart-mib for streamed bodies).
        vouched = hdrs.get(hdr.X_SUMS_IN_FOOTER) == "yes" or (
            hdr.X_BODY_XXH3 in hdrs and _is_md5_hex(hdrs.get("etag", "")))
        writer = df.writer(self.storage.inline_threshold, hash_md5=not vouched)
        try:
            try:
                await _receive(req, writer)
            except BodyError:
                return plain(499, "Client Disconnect")
            return await self._store(req, p, df, ts, meta, writer)
        finally:
            await writer.discard()

    async def _store(self, req: Request, p: proto.BackendPath, df: DiskFile, ts: Timestamp,
                     meta: dict[str, str], writer: DiskFileWriter) -> Response:
        hdrs = req.headers
        want = hdrs.get("etag")
        if writer.md5 is not None:
            etag = writer.md5.hexdigest()
            if want is not None and want.strip('"').lower() != etag:
                return plain(422, "Unprocessable Entity")
        else:
            sums = _vouched_sums(req)
            if sums is None or (want is not None and want.strip('"').lower() != sums[0]) \
                    or not _xxh3_matches(sums[1], writer.body_xxh3()):
                return plain(422, "Unprocessable Entity")
            etag = sums[0]
        for name in ("content-length", hdr.X_OBJ_CONTENT_LENGTH):
            if name in hdrs and hdrs[name].isdigit() and int(hdrs[name]) != writer.size:
                return plain(499, "Client Disconnect")
        footer = metadata_footer(req)
        ctype = footer.pop("content-type", None) or hdrs.get("content-type",
                                                            "application/octet-stream")
        meta.update(footer)
        rec = ObjectRecord(ts.internal, writer.size, etag, ctype, meta, False,
                           p.partition, f"/{p.account}/{p.container}/{p.obj}",
                           tuple(writer.sums), writer.body if writer.inline else None)
        updates = self._container_updates(req, p, df.policy, rec) \
            if ecfrag.is_durable(rec) else []
        try:
            old, keys = await writer.commit(rec, updates)
        except ConflictError as exc:
            return plain(409, "Conflict", [(hdr.X_BACKEND_TIMESTAMP, exc.existing_ts)])
        await self._send_updates(df, keys, updates)
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("ETag", etag)]
        report = hdrs.get(hdr.X_REPORT_REPLACED)
        # Only a durable object was ever acknowledged (an EC archive whose commit
        # never came names an upload its client may still complete).
        if report and old is not None and not old.deleted and report in old.meta \
                and ecfrag.is_durable(old):
            headers.append((hdr.X_REPLACED, old.meta[report]))
        return Response(201, headers, b"")

    async def _send_updates(self, df: DiskFile, keys: list[bytes],
                            updates: list[PendingUpdate]) -> None:
        """Send committed container updates; wait for them at most ``update_timeout``."""
        futures = self.updates.send(df.device, list(zip(keys, updates, strict=True)))
        if not await self.updates.wait(futures):
            self.pendings_queued.inc(sum(not (f.done() and f.result()) for f in futures))

    def _container_updates(self, req: Request, p: proto.BackendPath, policy: int,
                           rec: ObjectRecord | None, ts: Timestamp | None = None,
                           ) -> list[PendingUpdate]:
        targets = proto.split_hosts(req.headers, hdr.X_CONTAINER_HOST,
                                    hdr.X_CONTAINER_PARTITION, hdr.X_CONTAINER_DEVICE)
        if not targets:
            return []
        path = quote(f"/{p.account}/{p.container}/{p.obj}")
        headers = {hdr.X_POLICY_INDEX: str(policy),
                   "User-Agent": "nubis-object-server"}
        trans = req.headers.get(hdr.X_TRANS_ID)
        if trans:
            headers["X-Trans-Id"] = trans
        if p.container.startswith("\x00") or p.obj.startswith("\x00"):
            headers[hdr.X_ALLOW_RESERVED] = "true"
        if rec is not None and ts is None:
            method = "PUT"
            headers.update({"X-Timestamp": rec.ts, "X-Size": str(rec.size),
                            "X-Content-Type": rec.content_type, "X-Etag": rec.etag})
            _apply_overrides(headers, req.headers, rec.meta)
        else:
            assert ts is not None
            method = "DELETE"
            headers["X-Timestamp"] = ts.internal
        return [PendingUpdate(method, ip, port, dev, part, path, headers)
                for ip, port, part, dev in targets]

    # -- DELETE ------------------------------------------------------------------------
    async def delete(self, req: Request) -> Response:
        """Write a tombstone; 204 if an object was there, 404 if not."""
        p, df = self._locate(req)
        if df is None:
            return INSUFFICIENT_STORAGE
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs)
        existing = df.record()
        if existing is not None and existing.ts >= ts.internal:
            return plain(409, "Conflict", [(hdr.X_BACKEND_TIMESTAMP, existing.ts)])
        if_delete_at = hdrs.get("x-if-delete-at")
        if if_delete_at is not None and (
                existing is None or existing.deleted
                or existing.meta.get("x-delete-at") != if_delete_at.strip()):
            return plain(412, "Precondition Failed")
        tomb = ObjectRecord(ts.internal, deleted=True, part=p.partition,
                            name=f"/{p.account}/{p.container}/{p.obj}")
        updates = self._container_updates(req, p, df.policy, None, ts)
        try:
            old, keys = await df.delete(tomb, updates)
        except ConflictError as exc:
            return plain(409, "Conflict", [(hdr.X_BACKEND_TIMESTAMP, exc.existing_ts)])
        await self._send_updates(df, keys, updates)
        status = 204 if self._missing(old) is None else 404
        return Response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                 (hdr.X_BACKEND_TIMESTAMP, ts.internal)], b"")

    # -- POST --------------------------------------------------------------------------
    async def post(self, req: Request) -> Response:
        """Replace an object's metadata (202), or commit a fragment archive (phase 2)."""
        if hdr.X_EC_COMMIT in req.headers:
            return await self._ec_commit(req)
        p, df = self._locate(req)
        if df is None:
            return INSUFFICIENT_STORAGE
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs)
        existing = df.record()
        missing = self._missing(existing, proto.opens_expired(hdrs))
        if missing is not None:
            return missing
        assert existing is not None
        if existing.ts >= ts.internal:
            return plain(409, "Conflict", [(hdr.X_BACKEND_TIMESTAMP, existing.ts)])
        meta = proto.metadata_from_headers(hdrs, proto.OBJECT_META_PREFIXES,
                                           proto.OBJECT_STORED_HEADERS)
        _check_delete_at(meta)
        keep = {k: v for k, v in existing.meta.items()  # X-Object-Manifest is the user's
                if k.startswith("x-object-sysmeta-") or k == "x-static-large-object"}
        new_ctype = hdrs.get("content-type")

        def merge(old: ObjectRecord) -> ObjectRecord:
            merged = dict(keep)
            merged.update(meta)
            return replace(old, ts=ts.internal, meta=merged, data_ts=old.data_timestamp,
                           content_type=new_ctype or old.content_type)

        updates: list[PendingUpdate] = []
        if new_ctype and new_ctype != existing.content_type:  # the listing shows it (Swift)
            updates = self._container_updates(
                req, p, df.policy, replace(existing, ts=ts.internal, content_type=new_ctype,
                                           meta={**keep, **meta}))
        try:
            _old, keys = await df.commit(replace(existing, ts=ts.internal), updates,
                                         merge=merge)
        except ConflictError as exc:
            return plain(409, "Conflict", [(hdr.X_BACKEND_TIMESTAMP, exc.existing_ts)])
        except KeyError:
            return self._not_found()
        if updates:
            await self._send_updates(df, keys, updates)
        sysmeta = [(k, v) for k, v in keep.items() if k.startswith("x-object-sysmeta-")]
        return Response(202, [("Content-Type", "text/plain; charset=utf-8"),
                              (hdr.X_BACKEND_TIMESTAMP, ts.internal), *sysmeta], b"")


    async def _ec_commit(self, req: Request) -> Response:
        """Mark a fragment archive durable and send its container update (EC phase 2)."""
        p, df = self._locate(req)
        if df is None:
            return INSUFFICIENT_STORAGE
        ts = proto.parse_timestamp(req.headers, hdr.X_EC_COMMIT)
        sysmeta = {k: v for k, v in req.headers.items()
                   if k.startswith("x-object-sysmeta-") and k not in ecfrag.INTERNAL}
        rec, keys, updates = await ecfrag.mark_durable(
            df, ts.internal, sysmeta, req.headers.get("content-type"),
            lambda r: self._container_updates(req, p, df.policy, r))
        if rec is None:
            return self._not_found()
        await self._send_updates(df, keys, updates)
        return Response(202, [("Content-Type", "text/plain; charset=utf-8"),
                              (hdr.X_BACKEND_TIMESTAMP, rec.ts)], b"")


#: Container-update overrides, in Swift's order: a stored
#: ``X-Object-Sysmeta-Container-Update-Override-<key>`` wins over the request's
#: ``X-Backend-Container-Update-Override-<key>``; ``<key>`` replaces the
#: update's ``X-<Key>`` (``size``, ``etag``, ``content-type``).
_OVERRIDE_SYSMETA = "x-object-sysmeta-container-update-override-"


def _apply_overrides(update: dict[str, str], headers: dict[str, str],
                     meta: dict[str, str]) -> None:
    """Apply container-update overrides from the request and the stored sysmeta."""
    for source, prefix in ((headers, hdr.X_OVERRIDE_PREFIX), (meta, _OVERRIDE_SYSMETA)):
        for key, value in source.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                update[proto.title_header("x-" + key[len(prefix):])] = value


def metadata_footer(req: Request) -> dict[str, str]:
    """Return the metadata a PUT's chunked-body trailer adds (read the body first).

    Only with ``X-Backend-Obj-Metadata-Footer: yes``, and only sysmeta and
    ``Content-Type``: a trailer never carries user metadata or anything internal.
    """
    if req.headers.get(hdr.X_METADATA_FOOTER) != "yes" or not req.trailers:
        return {}
    return {k: v for k, v in joined_headers(req.trailers).items()
            if (k.startswith("x-object-sysmeta-") and k not in ecfrag.INTERNAL)
            or k == "content-type"}


async def _receive(req: Request, writer: DiskFileWriter) -> None:
    """Read the whole request body into ``writer``."""
    while True:
        chunk = await req.read_chunk()
        if not chunk:
            break
        await writer.write(chunk)
    await writer.close()


async def _drop_on_corruption(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Stream ``body``; a corrupt chunk drops the connection (never a corrupt byte)."""
    try:
        async for piece in body:
            yield piece
    except CorruptDataError:
        raise BodyError("corrupt object data: connection dropped") from None


def _vouched_sums(req: Request) -> tuple[str, str] | None:
    """Return the MD5 (hex) and xxh3 (hex) the proxy sent for the body, if well formed.

    They come from the trailer when the PUT says :data:`hdr.X_SUMS_IN_FOOTER`,
    else from the headers.
    """
    if req.headers.get(hdr.X_SUMS_IN_FOOTER) == "yes":
        source = joined_headers(req.trailers) if req.trailers else {}
    else:
        source = req.headers
    etag, body_sum = source.get("etag", ""), source.get(hdr.X_BODY_XXH3)
    if body_sum is None or not _is_md5_hex(etag):
        return None
    return etag.strip('"').lower(), body_sum


def _is_md5_hex(value: str) -> bool:
    value = value.strip('"')
    return len(value) == 32 and not value.strip("0123456789abcdefABCDEF")


def _xxh3_matches(header: str, digest: int) -> bool:
    """Tell whether an ``X-Backend-Body-Xxh3`` value (hex) names ``digest``."""
    try:
        return int(header.strip(), 16) == digest
    except ValueError:
        return False


def _check_delete_at(meta: dict[str, str]) -> None:
    raw = meta.get("x-delete-at")
    if raw is None:
        return
    if not raw.strip().isdigit():
        raise ProtocolError(400, "Non-integer X-Delete-At")
    meta["x-delete-at"] = raw.strip()


def _object_headers(rec: ObjectRecord) -> list[tuple[str, str]]:
    ts = Timestamp.parse(rec.ts)
    data_ts = rec.data_timestamp
    # PERF: bench s3 -- the body's timestamp is usually the record's: parsed once.
    data = ts if data_ts == rec.ts else Timestamp.parse(data_ts)
    headers = [("Content-Type", rec.content_type), ("ETag", rec.etag),
               ("Last-Modified", data.http_date),
               ("X-Timestamp", ts.normal), (hdr.X_BACKEND_TIMESTAMP, rec.ts),
               ("X-Backend-Data-Timestamp", data_ts), ("Accept-Ranges", "bytes")]
    if ecfrag.is_durable(rec):
        headers.append(("X-Backend-Durable-Timestamp", data_ts))
    else:
        headers.append((hdr.X_EC_DURABLE, "no"))
    for k, v in rec.meta.items():
        if k not in ecfrag.INTERNAL:
            headers.append((proto.title_header(k), v))
    return headers


def run(storage: StorageConfig, cluster: ClusterConfig, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon object-server``); node from the environment."""
    del once
    return run_node(ObjectServer, storage, cluster)
