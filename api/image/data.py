"""Image bytes: stream an upload into the object store, and stream it back.

:class:`ImageWriter` is the upload pipeline: each piece of the request body is
hashed (MD5 = Glance's ``checksum``, SHA-512 = ``os_hash_value``), counted
against the size cap, and written on to the object store — one object when the
announced size fits in a segment, otherwise ``<id>-00001``, ``<id>-00002``, ...
segments under an SLO manifest named ``<id>``. Nothing is ever held whole in
memory. :meth:`ImageWriter.abort` deletes whatever was stored, so an interrupted
or refused upload leaves no bytes behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any

from nubis.api.image.swift import StoreError, SwiftClient, Upload
from nubis.api.shared.errors import PayloadTooLargeError

LOG = logging.getLogger("nubis.api.image")

HASH_ALGO = "sha512"
QCOW2_MAGIC = b"QFI\xfb"
#: Bytes of the image kept to read its header (qcow2 needs the first 32).
HEADER_BYTES = 512
#: Bytes hashed per job on a worker thread. PERF(bench image: upload): hashlib
#: releases the GIL, so MD5 + SHA-512 of one batch run beside the event loop
#: forwarding the next; a job per received packet would cost more than it saves.
HASH_BATCH = 4 * 1024 * 1024


def virtual_size(disk_format: str | None, header: bytes, size: int) -> int | None:
    """Return the guest-visible size: qcow2's header field, a raw image's length."""
    if disk_format == "qcow2":
        if len(header) >= 32 and header[:4] == QCOW2_MAGIC:
            value: int = struct.unpack(">Q", header[24:32])[0]
            return value
        return None
    if disk_format == "raw":
        return size
    return None


def too_large(cap: int) -> PayloadTooLargeError:
    """Return Glance's 413 for an image over ``[image] size_cap``."""
    return PayloadTooLargeError(
        f"The incoming image is too large: The provided image is too large. "
        f"(limit {cap} bytes)")


@dataclass(frozen=True)
class StoredImage:
    """What an upload produced."""

    location: str
    segments: int
    size: int
    checksum: str
    os_hash_value: str
    virtual_size: int | None


class ImageWriter:
    """Stream one image's bytes into the object store (see the module docstring)."""

    def __init__(self, swift: SwiftClient, image_id: str, *, length: int | None,
                 segment_size: int, size_cap: int, disk_format: str | None) -> None:
        self.swift = swift
        self.image_id = image_id
        self.length = length
        self.segment_size = segment_size
        self.size_cap = size_cap
        self.disk_format = disk_format
        self.segmented = length is None or length > segment_size
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.sha512()
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._hashing: asyncio.Future[None] | None = None
        self.size = 0
        self.header = b""
        self._upload: Upload | None = None
        self._in_segment = 0
        self._written: list[dict[str, Any]] = []

    def _segment_name(self, index: int) -> str:
        return f"{self.image_id}-{index:05d}"

    async def _open_next(self) -> None:
        if not self.segmented:
            self._upload = await self.swift.open_put(self.image_id, self.length)
            return
        index = len(self._written) + 1
        remaining = None if self.length is None else self.length - self.size
        length = None if remaining is None else min(self.segment_size, remaining)
        self._upload = await self.swift.open_put(self._segment_name(index), length)
        self._in_segment = 0

    async def _close_segment(self) -> None:
        assert self._upload is not None
        upload, self._upload = self._upload, None
        etag = await upload.finish()
        self._written.append({"path": self.swift.segment_path(upload.name), "etag": etag,
                              "size_bytes": self._in_segment})

    async def write(self, data: bytes) -> None:
        """Hash, count and store one piece of the body."""
        if self.size + len(data) > self.size_cap:
            raise too_large(self.size_cap)
        if len(self.header) < HEADER_BYTES:
            self.header += data[:HEADER_BYTES - len(self.header)]
        self._batch.append(data)
        self._batch_bytes += len(data)
        if self._batch_bytes >= HASH_BATCH:
            await self._hash_batch()
        view = memoryview(data)
        while view:
            if self._upload is None:
                await self._open_next()
                assert self._upload is not None
            room = self.segment_size - self._in_segment if self.segmented else len(view)
            piece = view[:room]
            await self._upload.write(bytes(piece) if len(piece) != len(data) else data)
            self._in_segment += len(piece)
            self.size += len(piece)
            view = view[len(piece):]
            if self.segmented and self._in_segment >= self.segment_size:
                await self._close_segment()

    def _hash(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.md5.update(piece)
            self.sha.update(piece)

    async def _hash_batch(self) -> None:
        """Start hashing the batch on a thread once the previous batch is done."""
        if self._hashing is not None:
            await self._hashing
        pieces, self._batch, self._batch_bytes = self._batch, [], 0
        self._hashing = asyncio.get_running_loop().run_in_executor(None, self._hash, pieces)

    async def _digests(self) -> tuple[str, str]:
        await self._hash_batch()
        assert self._hashing is not None
        await self._hashing
        self._hashing = None
        return self.md5.hexdigest(), self.sha.hexdigest()

    async def finish(self) -> StoredImage:
        """Complete the object (or the last segment and the manifest)."""
        checksum, sha512 = await self._digests()
        if self.segmented and self.size == 0 and self._upload is None:
            self.segmented = False  # an empty body of unknown length: one empty object
        if not self.segmented:
            if self._upload is None:
                await self._open_next()
            assert self._upload is not None
            upload, self._upload = self._upload, None
            etag = await upload.finish()
            self._written.append({"path": upload.name, "etag": etag, "size_bytes": self.size})
            if etag and etag != checksum:
                raise StoreError(f"object store stored {etag}, the image hashed to {checksum}")
            segments = 0
        else:
            if self._upload is not None or not self._written:
                if self._upload is None:
                    await self._open_next()
                await self._close_segment()
            await self.swift.put_manifest(self.image_id, self._written)
            segments = len(self._written)
        return StoredImage(self.image_id, segments, self.size, checksum, sha512,
                           virtual_size(self.disk_format, self.header, self.size))

    async def abort(self) -> None:
        """Drop the open PUT and delete every stored piece (best effort, logged)."""
        if self._hashing is not None:
            await asyncio.wait([self._hashing])
            self._hashing = None
        if self._upload is not None:
            self._upload.abort()
            self._upload = None
        names = [w["path"].rsplit("/", 1)[-1] for w in self._written]
        if self.segmented:
            names.append(self.image_id)  # a manifest may have been written
        for name in names:
            try:
                await self.swift.delete(name)
            except StoreError as exc:
                LOG.warning("could not delete %s of image %s: %s", name, self.image_id, exc)
        self._written.clear()


async def delete_image_data(swift: SwiftClient, location: str | None, segments: int) -> None:
    """Delete an image's stored bytes (its SLO segments too); absent is fine."""
    if not location:
        return
    await swift.delete(location, manifest=segments > 0)
