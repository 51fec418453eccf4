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

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import xxhash
from nubis.common.cluster import ClusterConfig
from nubis.common.httpclient import HTTPClient
from nubis.common.httpserver import BodyError, Request, Response, plain
from nubis.daemons.storage import protocol as proto
from nubis.daemons.storage.config import NodeSettings, StorageConfig
from nubis.daemons.storage.diskfile import (
    CHUNK,
    ConflictError,
    ObjectDevice,
    ObjectRecord,
    PendingUpdate,
    checksum,
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

LOG = logging.getLogger(__name__)

_ALLOWED = "DELETE, GET, HEAD, POST, PUT"


class _Upload:
    """A body being received: in memory while small, then in a temp file.

    PERF: past the inline threshold, MD5, the chunk checksums and the write
    run in an I/O thread (hashlib releases the GIL), one batch at a time and in
    order, so a 1 MiB PUT costs the event loop almost nothing
    (``python -m nubis.bench swift``).
    """

    def __init__(self, device: ObjectDevice, inline_max: int, hash_md5: bool = True) -> None:
        self.device = device
        self.inline_max = inline_max
        #: None when the sender vouches for the MD5 (see :data:`proto.X_BODY_XXH3`).
        self.md5 = hashlib.md5(usedforsecurity=False) if hash_md5 else None
        #: xxh3-64 of the whole body (kept when the MD5 is not computed here).
        self.whole = None if hash_md5 else xxhash.xxh3_64()
        self.sums: list[int] = []
        self.parts: list[bytes] = []
        self.pending = 0
        self.size = 0
        self.body = b""
        self.fd = -1
        self.tmp_path = ""
        #: Past the inline threshold: the body goes to a temp file.
        self.spilling = False
        self._writer: asyncio.Future[None] | None = None
        self._chunk_hash = xxhash.xxh3_64()
        self._chunk_fill = 0

    async def receive(self, req: Request) -> None:
        """Read the whole request body, spilling to a temp file past the threshold."""
        while True:
            chunk = await req.read_chunk()
            if not chunk:
                break
            self.size += len(chunk)
            self.parts.append(chunk)
            self.pending += len(chunk)
            if not self.spilling:
                if self.size <= self.inline_max:
                    continue
                self.spilling = True  # the first write job creates the temp file
            if self.pending >= CHUNK:
                await self._spill(final=False)
        if self.spilling:
            await self.finish()
            return
        body = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        self.parts = []
        if self.md5 is not None:
            self.md5.update(body)
        if body:
            self.sums.append(checksum(body))
        self.body = body

    async def _spill(self, final: bool) -> None:
        parts, self.parts, self.pending = self.parts, [], 0
        if self._writer is not None:
            await self._writer  # keeps order and bounds memory to ~2 batches
            self._writer = None
        if parts:
            self._writer = asyncio.get_running_loop().run_in_executor(
                self.device.executor, self._write, parts)

    def _write(self, parts: list[bytes]) -> None:
        """Hash and write one batch of received pieces (runs in an I/O thread).

        PERF: the pieces are joined first (one memcpy), so MD5, xxh3 and the
        write each release and retake the GIL once per batch instead of once
        per received piece: per-piece hashing made the I/O threads and the
        event loop trade the GIL (futex storms, ~4 ms of system time per
        1 MiB replica write, ``python -m nubis.bench swift`` 1 MiB PUT).
        """
        if self.fd < 0:
            self.fd, self.tmp_path = self.device.new_temp()
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if self.md5 is not None:
            self.md5.update(data)
        else:
            assert self.whole is not None
            self.whole.update(data)
        view = memoryview(data)
        while view:
            room = CHUNK - self._chunk_fill
            piece, view = view[:room], view[room:]
            self._chunk_hash.update(piece)
            self._chunk_fill += len(piece)
            if self._chunk_fill == CHUNK:
                self._close_chunk()
        self.device.write_all(self.fd, data)

    def _close_chunk(self) -> None:
        self.sums.append(int(self._chunk_hash.intdigest()))
        self._chunk_hash.reset()
        self._chunk_fill = 0

    async def finish(self) -> None:
        """Wait for the last write and seal the last partial chunk."""
        await self._spill(final=True)
        if self._writer is not None:
            await self._writer
            self._writer = None
        if self._chunk_fill:
            self._close_chunk()

    def body_xxh3(self) -> int:
        """Return the xxh3-64 of the whole body (only when the MD5 is not computed)."""
        if not self.spilling:
            return self.sums[0] if self.sums else checksum(b"")
        assert self.whole is not None
        return int(self.whole.intdigest())

    @property
    def pending_write(self) -> bool:
        """Tell whether a write job (which may create the temp file) is still queued."""
        return self._writer is not None

    @property
    def inline(self) -> bool:
        """Tell whether the body is kept in memory (stored in LMDB)."""
        return not self.spilling

    async def place(self, dest_dir: Path, filename: str) -> None:
        """Move the finished temp file into place, durably."""
        fd, self.fd = self.fd, -2
        path, self.tmp_path = self.tmp_path, ""
        await self.device.place(fd, path, dest_dir, filename)

    async def discard(self) -> None:
        """Remove the temp file of an upload that will not be stored."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        fd, path = self.fd, self.tmp_path
        self.fd, self.tmp_path = -3, ""
        if path:
            await self.device.run(_remove_temp, fd, path)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _remove_temp(fd: int, path: str) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(path)


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

    def __init__(self, storage: StorageConfig, devices_dir: Path, seed: int) -> None:
        super().__init__(storage, devices_dir)
        self.seed = seed
        self.client = HTTPClient(connect_timeout=storage.update_timeout,
                                 timeout=storage.update_timeout)
        self.updates = UpdateSender(self.client, storage.update_timeout,
                                    storage.update_sweep_interval)

    @classmethod
    def for_node(cls, storage: StorageConfig, cluster: ClusterConfig,
                 node: NodeSettings) -> Self:
        """Build the object server of ``node`` (with the cluster's hash seed)."""
        seed = int(cluster_seed(cluster.hash_path_prefix.encode(),
                                cluster.hash_path_suffix.encode()))
        return cls(storage, node.devices, seed)

    def open_device(self, path: Path) -> ObjectDevice:
        """Open a device's LMDB environment and data files."""
        s = self.storage
        return ObjectDevice(path, self.executor, fsync=s.fsync, map_mib=s.lmdb_map_mib,
                            window=s.group_commit_ms / 1000.0, max_batch=s.group_commit_max)

    async def start(self) -> None:
        """Start the pending-update sweeper."""
        self.updates.start_sweeper(self.devices)

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
        if method == "PUT":
            return await self.put(req)
        if method == "DELETE":
            return await self.delete(req)
        if method == "POST":
            return await self.post(req)
        return method_not_allowed(_ALLOWED)

    def _locate(self, req: Request) -> tuple[proto.BackendPath, ObjectDevice | None, int, str]:
        p = proto.parse_path(req.path, 3, 3)
        dev = self.devices.get(p.device)
        policy = proto.policy_index(req.headers)
        name = f"/{p.account}/{p.container}/{p.obj}"
        return p, dev, policy, hash_path_hex(self.seed, name.encode("utf-8"))

    # -- GET / HEAD ------------------------------------------------------------------
    async def get(self, req: Request) -> Response:
        """Return an object's body (GET) or headers (HEAD), verified."""
        _, dev, policy, h = self._locate(req)
        if dev is None:
            return INSUFFICIENT_STORAGE
        rec = dev.get(policy, h)
        missing = self._missing(rec)
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
        if rec.inline is not None:
            if rec.size and (len(rec.inline) != rec.size or checksum(rec.inline) != rec.sums[0]):
                await dev.quarantine(policy, h, rec, "inline checksum mismatch")
                return self._not_found()
            body = rec.inline if status == 200 else rec.inline[start:end + 1]
            return Response(status, headers, body)
        return await self._get_file(dev, policy, h, rec, status, headers, start, length)

    async def _get_file(self, dev: ObjectDevice, policy: int, h: str, rec: ObjectRecord,
                        status: int, headers: list[tuple[str, str]], start: int,
                        length: int) -> Response:
        path = dev.data_path(policy, rec, h)
        first = start // CHUNK
        last = (start + length - 1) // CHUNK if length else first
        if last == first:
            data = await self._read_chunk(dev, path, rec, first)
            if data is None:
                await dev.quarantine(policy, h, rec, "data checksum mismatch or missing")
                return self._not_found()
            off = start - first * CHUNK
            body = data if (off == 0 and length == len(data)) else data[off:off + length]
            return Response(status, headers, body)
        # Verify the first chunk before committing to a 200.
        head = await self._read_chunk(dev, path, rec, first)
        if head is None:
            await dev.quarantine(policy, h, rec, "data checksum mismatch or missing")
            return self._not_found()
        stream = self._stream(dev, policy, h, rec, path, head, start, length)
        return Response(status, headers, stream, content_length=length)

    async def _read_chunk(self, dev: ObjectDevice, path: Path, rec: ObjectRecord,
                          index: int) -> bytes | None:
        """Read and verify chunk ``index``; None when corrupt or missing."""
        want = min(CHUNK, rec.size - index * CHUNK)
        try:
            data: bytes = await dev.run(dev.read_range, path, index * CHUNK, want)
        except OSError:
            return None
        if len(data) != want or index >= len(rec.sums) or checksum(data) != rec.sums[index]:
            return None
        return data

    async def _stream(self, dev: ObjectDevice, policy: int, h: str, rec: ObjectRecord,
                      path: Path, head: bytes, start: int, length: int) -> AsyncIterator[bytes]:
        index = start // CHUNK
        data: bytes | None = head
        sent = 0
        off = start - index * CHUNK
        while sent < length:
            assert data is not None
            nxt = None
            if sent + len(data) - off < length:
                # PERF: read ahead the next chunk while this one is sent.
                nxt = asyncio.ensure_future(self._read_chunk(dev, path, rec, index + 1))
            piece = data[off:off + (length - sent)] if off or len(data) - off > length - sent \
                else data
            yield piece
            sent += len(piece)
            off = 0
            index += 1
            if nxt is None:
                break
            data = await nxt
            if data is None:
                await dev.quarantine(policy, h, rec, f"chunk {index} checksum mismatch")
                raise BodyError("corrupt object data: connection dropped")

    def _missing(self, rec: ObjectRecord | None) -> Response | None:
        if rec is None:
            return self._not_found()
        if rec.deleted:
            return self._not_found(rec.ts)
        delete_at = rec.meta.get("x-delete-at")
        if delete_at is not None and delete_at.isdigit() and int(delete_at) <= time.time():
            return self._not_found(rec.ts)
        return None

    @staticmethod
    def _not_found(ts: str | None = None) -> Response:
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if ts is not None:
            headers.append((proto.X_BACKEND_TIMESTAMP, ts))
        return Response(404, headers, b"Not Found")

    # -- PUT -------------------------------------------------------------------------
    async def put(self, req: Request) -> Response:
        """Store an object durably, then queue and send its container update."""
        p, dev, policy, h = self._locate(req)
        if dev is None:
            return INSUFFICIENT_STORAGE
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs)
        if "content-length" not in hdrs and "chunked" not in hdrs.get("transfer-encoding", ""):
            return plain(411, "Length Required")
        meta = proto.metadata_from_headers(hdrs, proto.OBJECT_META_PREFIXES,
                                           proto.OBJECT_STORED_HEADERS)
        _check_delete_at(meta)
        existing = dev.get(policy, h)
        if existing is not None:
            if existing.ts >= ts.internal:
                return plain(409, "Conflict", [(proto.X_BACKEND_TIMESTAMP, existing.ts)])
            if hdrs.get("if-none-match") == "*" and self._missing(existing) is None:
                return plain(412, "Precondition Failed")
        # PERF: a nubis proxy sends the MD5 it computed plus an xxh3 of the
        # body: the body is checked with the xxh3 (cheap) and the MD5 is not
        # computed again on every replica (python -m nubis.bench swift, 1 MiB PUT).
        vouched = proto.X_BODY_XXH3 in hdrs and _is_md5_hex(hdrs.get("etag", ""))
        upload = _Upload(dev, self.storage.inline_threshold, hash_md5=not vouched)
        try:
            try:
                await upload.receive(req)
            except BodyError:
                return plain(499, "Client Disconnect")
            return await self._store(req, p, dev, policy, h, ts, meta, upload)
        finally:
            if upload.tmp_path or upload.pending_write:
                await upload.discard()

    async def _store(self, req: Request, p: proto.BackendPath, dev: ObjectDevice, policy: int,
                     h: str, ts: Timestamp, meta: dict[str, str], upload: _Upload) -> Response:
        hdrs = req.headers
        want = hdrs.get("etag")
        if upload.md5 is not None:
            etag = upload.md5.hexdigest()
            if want is not None and want.strip('"').lower() != etag:
                return plain(422, "Unprocessable Entity")
        else:
            assert want is not None
            etag = want.strip('"').lower()
            if not _xxh3_matches(hdrs[proto.X_BODY_XXH3], upload.body_xxh3()):
                return plain(422, "Unprocessable Entity")
        if "content-length" in hdrs and hdrs["content-length"].isdigit() \
                and int(hdrs["content-length"]) != upload.size:
            return plain(499, "Client Disconnect")
        rec = ObjectRecord(ts.internal, upload.size, etag,
                           hdrs.get("content-type", "application/octet-stream"), meta, False,
                           p.partition, f"/{p.account}/{p.container}/{p.obj}",
                           tuple(upload.sums), upload.body if upload.inline else None)
        filename = f"{ts.internal}.data"
        if not upload.inline:
            await upload.place(dev.hash_dir(policy, p.partition, h), filename)
        updates = self._container_updates(req, p, policy, rec)
        try:
            old, keys = await dev.commit_record(policy, h, rec, updates)
        except ConflictError as exc:
            if not upload.inline and exc.existing_ts != ts.internal:
                # a newer write won meanwhile: our file is garbage
                dev.executor.submit(_unlink_quietly,
                                    dev.hash_dir(policy, p.partition, h) / filename)
            return plain(409, "Conflict", [(proto.X_BACKEND_TIMESTAMP, exc.existing_ts)])
        if old is not None and (old.inline is None or not upload.inline):
            # PERF: only touch the filesystem when a file may exist
            dev.executor.submit(dev.cleanup, dev.hash_dir(policy, p.partition, h), ts.internal)
        await self.updates.wait(self.updates.send(dev, list(zip(keys, updates, strict=True))))
        return Response(201, [("Content-Type", "text/plain; charset=utf-8"), ("ETag", etag)],
                        b"")

    def _container_updates(self, req: Request, p: proto.BackendPath, policy: int,
                           rec: ObjectRecord | None, ts: Timestamp | None = None,
                           ) -> list[PendingUpdate]:
        targets = proto.split_hosts(req.headers, proto.X_CONTAINER_HOST,
                                    proto.X_CONTAINER_PARTITION, proto.X_CONTAINER_DEVICE)
        if not targets:
            return []
        path = quote(f"/{p.account}/{p.container}/{p.obj}")
        headers = {"X-Backend-Storage-Policy-Index": str(policy),
                   "User-Agent": "nubis-object-server"}
        trans = req.headers.get(proto.X_TRANS_ID)
        if trans:
            headers["X-Trans-Id"] = trans
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
        p, dev, policy, h = self._locate(req)
        if dev is None:
            return INSUFFICIENT_STORAGE
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs)
        existing = dev.get(policy, h)
        if existing is not None and existing.ts >= ts.internal:
            return plain(409, "Conflict", [(proto.X_BACKEND_TIMESTAMP, existing.ts)])
        if_delete_at = hdrs.get("x-if-delete-at")
        if if_delete_at is not None and (
                existing is None or existing.deleted
                or existing.meta.get("x-delete-at") != if_delete_at.strip()):
            return plain(412, "Precondition Failed")
        hash_dir = dev.hash_dir(policy, p.partition, h)
        await dev.run(dev.write_tombstone, hash_dir, ts.internal)
        tomb = ObjectRecord(ts.internal, deleted=True, part=p.partition,
                            name=f"/{p.account}/{p.container}/{p.obj}")
        updates = self._container_updates(req, p, policy, None, ts)
        try:
            old, keys = await dev.commit_record(policy, h, tomb, updates)
        except ConflictError as exc:
            return plain(409, "Conflict", [(proto.X_BACKEND_TIMESTAMP, exc.existing_ts)])
        dev.executor.submit(dev.cleanup, hash_dir, ts.internal)
        await self.updates.wait(self.updates.send(dev, list(zip(keys, updates, strict=True))))
        status = 204 if self._missing(old) is None else 404
        return Response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                 (proto.X_BACKEND_TIMESTAMP, ts.internal)], b"")

    # -- POST --------------------------------------------------------------------------
    async def post(self, req: Request) -> Response:
        """Replace an object's metadata (202)."""
        _, dev, policy, h = self._locate(req)
        if dev is None:
            return INSUFFICIENT_STORAGE
        hdrs = req.headers
        ts = proto.parse_timestamp(hdrs)
        existing = dev.get(policy, h)
        missing = self._missing(existing)
        if missing is not None:
            return missing
        assert existing is not None
        if existing.ts >= ts.internal:
            return plain(409, "Conflict", [(proto.X_BACKEND_TIMESTAMP, existing.ts)])
        meta = proto.metadata_from_headers(hdrs, proto.OBJECT_META_PREFIXES,
                                           proto.OBJECT_STORED_HEADERS)
        _check_delete_at(meta)
        keep = {k: v for k, v in existing.meta.items()
                if k.startswith("x-object-sysmeta-") or k in ("x-static-large-object",
                                                              "x-object-manifest")}
        new_ctype = hdrs.get("content-type")

        def merge(old: ObjectRecord) -> ObjectRecord:
            merged = dict(keep)
            merged.update(meta)
            return replace(old, ts=ts.internal, meta=merged, data_ts=old.data_timestamp,
                           content_type=new_ctype or old.content_type)

        try:
            await dev.commit_record(policy, h, replace(existing, ts=ts.internal), [],
                                    merge=merge)
        except ConflictError as exc:
            return plain(409, "Conflict", [(proto.X_BACKEND_TIMESTAMP, exc.existing_ts)])
        except KeyError:
            return self._not_found()
        return Response(202, [("Content-Type", "text/plain; charset=utf-8"),
                              (proto.X_BACKEND_TIMESTAMP, ts.internal)], b"")


#: Container-update overrides, in Swift's order: a stored
#: ``X-Object-Sysmeta-Container-Update-Override-<key>`` wins over the request's
#: ``X-Backend-Container-Update-Override-<key>``; ``<key>`` replaces the
#: update's ``X-<Key>`` (``size``, ``etag``, ``content-type``).
_OVERRIDE_BACKEND = "x-backend-container-update-override-"
_OVERRIDE_SYSMETA = "x-object-sysmeta-container-update-override-"


def _apply_overrides(update: dict[str, str], headers: dict[str, str],
                     meta: dict[str, str]) -> None:
    """Apply container-update overrides from the request and the stored sysmeta."""
    for source, prefix in ((headers, _OVERRIDE_BACKEND), (meta, _OVERRIDE_SYSMETA)):
        for key, value in source.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                update[proto.title_header("x-" + key[len(prefix):])] = value


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
    headers = [("Content-Type", rec.content_type), ("ETag", rec.etag),
               ("Last-Modified", Timestamp.parse(data_ts).http_date),
               ("X-Timestamp", ts.normal), (proto.X_BACKEND_TIMESTAMP, rec.ts),
               ("X-Backend-Data-Timestamp", data_ts), ("X-Backend-Durable-Timestamp", data_ts),
               ("Accept-Ranges", "bytes")]
    for k, v in rec.meta.items():
        headers.append((proto.title_header(k), v))
    return headers


def run(storage: StorageConfig, cluster: ClusterConfig, once: bool = False) -> int:
    """Daemon entry point (``nubis daemon object-server``); node from the environment."""
    del once
    return run_node(ObjectServer, storage, cluster)
