"""The object replication protocol: suffix hashes, entry lists, object pushes.

A nubis extension of the backend protocol (like Swift's ``REPLICATE`` verb
plus ssync, on paths our HTTP parser accepts):

* ``POST /<dev>/_replicate/<policy>`` with a msgpack list of partitions
  answers ``{partition: {suffix: hash}}`` (the replicator's first question,
  many partitions per request);
* ``POST /<dev>/_replicate/<policy>/<part>`` with a msgpack body:
  ``nil`` answers ``{suffix: hash}`` of the partition (see
  :mod:`nubis.daemons.storage.partindex`); a list of suffixes answers
  ``{object hash: [timestamp, deleted]}`` of the objects in those suffixes.
* ``PUT /<dev>/_replicate/<policy>/<part>/<hash>`` stores one object exactly
  as the sender has it: ``X-Backend-Replication-Record`` carries the record
  (base64 msgpack: timestamps, metadata, ETag, chunk checksums) and the body
  follows. The receiver checks the name hashes to ``<hash>``, writes through
  the same :class:`~nubis.daemons.storage.diskfile.DiskFileWriter` as a PUT
  and refuses (422) a body whose chunk checksums differ from the record's; a
  tombstone record is stored as a tombstone. Nothing is sent to container
  servers (the original write did that). An older record answers 409.

:class:`ReplicationClient` is the sending side, used by the replicator.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import msgpack
from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.common.httpserver import BodyError, Request, Response, plain
from nubis.daemons.storage.diskfile import (
    ConflictError,
    DiskFile,
    ObjectDevice,
    ObjectRecord,
)
from nubis.daemons.storage.protocol import ProtocolError, StorageError
from nubis.fastpath.hashpath import hash_path_hex

LOG = logging.getLogger(__name__)

#: The path segment after the device that marks a replication request.
SEGMENT = "_replicate"
#: Header carrying a pushed object's record.
RECORD_HEADER = "X-Backend-Replication-Record"
_MSGPACK = [("Content-Type", "application/x-msgpack")]


class ReplicationError(StorageError):
    """Another object server refused or failed a replication request."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        #: The HTTP status answered (0: no answer); 507: the device is full or gone.
        self.status = status


def is_replication_path(path: str) -> bool:
    """Tell whether a request path is a replication request."""
    parts = path.split("/", 3)
    return len(parts) > 2 and parts[2] == SEGMENT


def _parse(path: str) -> tuple[str, int, int, str]:
    """Split ``/<dev>/_replicate/<policy>[/<part>[/<hash>]]`` (no partition: -1)."""
    parts = path.split("/")
    if len(parts) not in (4, 5, 6) or parts[2] != SEGMENT:
        raise ProtocolError(400, "Invalid path")
    dev, policy = parts[1], parts[3]
    part = parts[4] if len(parts) > 4 else "-1"
    obj = parts[5] if len(parts) == 6 else ""
    if part == "-1" and len(parts) == 4:
        part_ok = True
    else:
        part_ok = part.isdigit() and part.isascii() and int(part) < 1 << 32
    if not (policy.isdigit() and policy.isascii() and int(policy) < 256 and part_ok):
        raise ProtocolError(400, "Invalid policy or partition")
    if obj and (len(obj) != 32 or obj.strip("0123456789abcdef")):
        raise ProtocolError(400, "Invalid object hash")
    return dev, int(policy), int(part), obj


def pack_record(rec: ObjectRecord) -> str:
    """Encode a record (without an inline body) for :data:`RECORD_HEADER`."""
    return base64.b64encode(replace(rec, inline=None).pack()).decode("ascii")


def unpack_record(value: str) -> ObjectRecord:
    """Decode :data:`RECORD_HEADER`.

    Raises:
        ProtocolError: 400 when it is not a record.
    """
    try:
        rec = ObjectRecord.unpack(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, TypeError, IndexError,
            msgpack.UnpackException) as exc:
        raise ProtocolError(400, f"Invalid replication record: {exc}") from None
    if not isinstance(rec.ts, str) or not isinstance(rec.name, str) \
            or not isinstance(rec.meta, dict) or rec.inline is not None:
        raise ProtocolError(400, "Invalid replication record")
    return rec


async def handle(req: Request, device: ObjectDevice | None, seed: int,
                 inline_max: int) -> Response:
    """Answer one replication request for ``device`` (None: 507)."""
    _, policy, part, obj = _parse(req.path)
    if device is None:
        return plain(507, "Insufficient Storage")
    if req.method == "POST" and part < 0:
        return await _bulk_hashes(req, device, policy)
    if req.method == "POST" and not obj:
        return await _hashes(req, device, policy, part)
    if req.method == "PUT" and obj:
        return await _receive_object(req, DiskFile(device, policy, part, obj), seed, inline_max)
    return plain(405, "Method Not Allowed", [("Allow", "POST, PUT")])


async def _hashes(req: Request, device: ObjectDevice, policy: int, part: int) -> Response:
    try:
        body = await req.read(1 << 20)
    except BodyError:
        return plain(413, "Request Entity Too Large")
    try:
        want = msgpack.unpackb(body) if body else None
    except (ValueError, msgpack.UnpackException):
        raise ProtocolError(400, "Invalid msgpack body") from None
    if want is None:
        out: Any = device.suffix_hashes(policy, part)
    elif isinstance(want, list) and all(isinstance(s, str) and len(s) == 3 for s in want):
        out = {h: [ts, deleted] for h, (ts, deleted)
               in device.entries(policy, part, set(want)).items()}
    else:
        raise ProtocolError(400, "Body must be nil or a list of suffixes")
    return Response(200, _MSGPACK, msgpack.packb(out))


async def _bulk_hashes(req: Request, device: ObjectDevice, policy: int) -> Response:
    """Answer ``{partition: {suffix: hash}}`` for a msgpack list of partitions."""
    try:
        want = msgpack.unpackb(await req.read(1 << 20))
    except BodyError:
        return plain(413, "Request Entity Too Large")
    except (ValueError, msgpack.UnpackException):
        raise ProtocolError(400, "Invalid msgpack body") from None
    if not isinstance(want, list) or len(want) > 4096 or not all(
            isinstance(p, int) and 0 <= p < 1 << 32 for p in want):
        raise ProtocolError(400, "Body must be a list of at most 4096 partitions")
    out = {p: device.suffix_hashes(policy, p) for p in want}
    return Response(200, _MSGPACK, msgpack.packb(out))


async def _receive_object(req: Request, df: DiskFile, seed: int, inline_max: int) -> Response:
    rec = unpack_record(req.headers.get(RECORD_HEADER.lower(), ""))
    if hash_path_hex(seed, rec.name.encode("utf-8")) != df.hash_hex or rec.part != df.part:
        raise ProtocolError(400, "Record does not name this object")
    existing = df.record()
    if existing is not None and existing.ts >= rec.ts:
        return plain(409, "Conflict")
    try:
        if rec.deleted:
            await df.delete(rec, [])
            return plain(201, "Created")
        return await _store_body(req, df, rec, inline_max)
    except ConflictError:
        return plain(409, "Conflict")


async def _store_body(req: Request, df: DiskFile, rec: ObjectRecord,
                      inline_max: int) -> Response:
    writer = df.writer(inline_max, hash_md5=False)
    try:
        try:
            while chunk := await req.read_chunk():
                await writer.write(chunk)
            await writer.close()
        except BodyError:
            return plain(499, "Client Disconnect")
        if writer.size != rec.size or tuple(writer.sums) != rec.sums:
            return plain(422, "Unprocessable Entity")
        new = replace(rec, inline=writer.body if writer.inline else None)
        await writer.commit(new, [])
        return plain(201, "Created")
    finally:
        await writer.discard()


class ReplicationClient:
    """Ask another object server for hashes and push objects to it."""

    def __init__(self, client: HTTPClient) -> None:
        self.client = client

    async def _post(self, node: dict[str, Any], policy: int, part: int, body: Any) -> Any:
        return await self._request(node, f"/{node['device']}/{SEGMENT}/{policy}/{part}", body)

    async def _request(self, node: dict[str, Any], path: str, body: Any) -> Any:
        try:
            resp = await self.client.fetch(node["ip"], int(node["port"]), "POST", path,
                                           {"Content-Type": "application/x-msgpack"},
                                           msgpack.packb(body))
        except (HTTPClientError, OSError) as exc:
            raise ReplicationError(f"{node['ip']}:{node['port']}: {exc}") from exc
        if resp.status != 200:
            raise ReplicationError(f"{node['ip']}:{node['port']}/{node['device']}: "
                                   f"{resp.status}", resp.status)
        try:
            return msgpack.unpackb(resp.body, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise ReplicationError(f"bad answer from {node['ip']}: {exc}") from exc

    async def suffix_hashes(self, node: dict[str, Any], policy: int,
                            part: int) -> dict[str, str]:
        """Return the remote partition's ``{suffix: hash}``."""
        out = await self._post(node, policy, part, None)
        return {str(k): str(v) for k, v in out.items()}

    async def bulk_hashes(self, node: dict[str, Any], policy: int,
                          parts: list[int]) -> dict[int, dict[str, str]]:
        """Return ``{partition: {suffix: hash}}`` of many remote partitions."""
        path = f"/{node['device']}/{SEGMENT}/{policy}"
        out = await self._request(node, path, parts)
        return {int(p): {str(k): str(v) for k, v in h.items()} for p, h in out.items()}

    async def entries(self, node: dict[str, Any], policy: int, part: int,
                      suffixes: list[str]) -> dict[str, tuple[str, bool]]:
        """Return the remote ``{object hash: (timestamp, deleted)}`` of some suffixes."""
        out = await self._post(node, policy, part, sorted(suffixes))
        return {str(k): (str(v[0]), bool(v[1])) for k, v in out.items()}

    async def push(self, node: dict[str, Any], df: DiskFile, rec: ObjectRecord) -> bool:
        """Send one object (or tombstone) as stored here; True when the remote has it now.

        A local body that fails its checksums is quarantined by the reader and
        not sent (False).
        """
        body: bytes | AsyncIterator[bytes] = b""
        if not rec.deleted and rec.size:
            read = await df.reader(rec).read(0, rec.size)
            if read is None:
                return False
            body = read
        path = f"/{node['device']}/{SEGMENT}/{df.policy}/{df.part}/{df.hash_hex}"
        try:
            resp = await self.client.request(node["ip"], int(node["port"]), "PUT", path,
                                             {RECORD_HEADER: pack_record(rec)}, body,
                                             content_length=len(body)
                                             if isinstance(body, bytes) else rec.size)
            await resp.read()
        except (HTTPClientError, OSError) as exc:
            raise ReplicationError(f"{node['ip']}:{node['port']}: {exc}") from exc
        if resp.status in (201, 409):
            return True
        LOG.warning("pushing %s to %s:%s/%s: %d", rec.name, node["ip"], node["port"],
                    node["device"], resp.status)
        return False

