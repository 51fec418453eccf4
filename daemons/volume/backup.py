"""Volume backups into the object store, as Cinder's chunked Swift backup driver makes them.

A backup reads the volume's guest-visible bytes in fixed chunks
(``backup_chunk_size``); each chunk that is not all zeros is compressed (zlib, or
stored as is with ``none``) and PUT as the object
``volume_<vol>/backup_<id>/chunk-<n>`` of the project's backup container, with
its sha256 in the JSON metadata object ``volume_<vol>/backup_<id>/metadata``. An
incremental backup reads its parent's metadata and uploads only the chunks whose
sha256 changed; its metadata points unchanged chunks at the parent's objects, so
a restore needs only the newest metadata. A restore downloads every chunk,
checks its sha256 before writing it, and fails (leaving the volume as it was)
on the first mismatch. Requests go to the proxy with the caller's token.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubis.daemons.volume.errors import BackupError
from nubis.daemons.volume.extents import Reader

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Target:
    """Where a backup lives: the project's storage URL, the caller's token, the container."""

    storage_url: str
    token: str
    container: str
    timeout: float = 600.0


@dataclass(frozen=True)
class BackupSpec:
    """One backup to make."""

    backup_id: str
    volume_id: str
    chunk_size: int
    compression: str
    #: The metadata object of the parent (incremental), or empty for a full backup.
    parent_metadata: str = ""
    concurrency: int = 4


def prefix(volume_id: str, backup_id: str) -> str:
    """Return the object name prefix of one backup."""
    return f"volume_{volume_id}/backup_{backup_id}/"


def metadata_name(volume_id: str, backup_id: str) -> str:
    """Return the name of a backup's metadata object."""
    return prefix(volume_id, backup_id) + "metadata"


class ObjectStore:
    """The few Swift calls a backup makes (blocking ``urllib``; called from threads)."""

    def __init__(self, target: Target) -> None:
        self.t = target

    def _url(self, name: str = "") -> str:
        path = urllib.parse.quote(self.t.container, safe="")
        if name:
            path += "/" + urllib.parse.quote(name)
        return f"{self.t.storage_url.rstrip('/')}/{path}"

    def _call(self, method: str, name: str = "", data: bytes | None = None,
              ok: tuple[int, ...] = (200, 201, 202, 204)) -> bytes:
        req = urllib.request.Request(self._url(name), data=data, method=method,
                                     headers={"X-Auth-Token": self.t.token})
        try:
            with urllib.request.urlopen(req, timeout=self.t.timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return b""
            raise BackupError(f"object store: {method} {name or self.t.container}: "
                              f"{exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise BackupError(f"object store unreachable: {exc}") from None

    def ensure_container(self) -> None:
        """Create the backup container (idempotent)."""
        self._call("PUT")

    def put(self, name: str, data: bytes) -> None:
        """Store one object."""
        self._call("PUT", name, data)

    def get(self, name: str) -> bytes:
        """Read one object."""
        return self._call("GET", name)

    def delete(self, name: str) -> None:
        """Delete one object (a missing one is fine)."""
        self._call("DELETE", name, ok=(200, 204, 404))


#: Bytes of a chunk compressed first to judge whether compressing it pays.
SAMPLE = 64 * 1024
#: A chunk is stored as is when its sample does not shrink below this fraction.
WORTH = 0.9


def compress(data: bytes, algorithm: str) -> tuple[bytes, str]:
    """Compress one chunk; return the bytes stored and how (``none`` if it did not pay).

    PERF (python -m nubis.bench volume): data that does not compress (media,
    encrypted or random bytes) costs zlib ~20x more than its upload; a 64 KiB
    sample decides first, as backup tools with an "auto" compression mode do.
    """
    if algorithm != "zlib":
        return data, "none"
    if len(data) > 2 * SAMPLE and len(zlib.compress(data[:SAMPLE], 1)) > WORTH * SAMPLE:
        return data, "none"
    packed = zlib.compress(data, 1)
    return (packed, "zlib") if len(packed) < len(data) else (data, "none")


def _decompress(data: bytes, algorithm: str) -> bytes:
    try:
        return zlib.decompress(data) if algorithm == "zlib" else data
    except zlib.error as exc:
        raise BackupError(f"corrupt backup chunk: {exc}") from None


def load_metadata(store: ObjectStore, name: str) -> dict[str, Any]:
    """Read and check a backup's metadata object."""
    try:
        doc = json.loads(store.get(name))
    except ValueError:
        raise BackupError(f"backup metadata {name} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise BackupError(f"backup metadata {name} has an unknown format")
    return doc


def _parent_chunks(store: ObjectStore, spec: BackupSpec) -> dict[str, tuple[str, str]]:
    """Return the parent's stored chunks: ``offset:sha256`` -> (object, compression)."""
    if not spec.parent_metadata:
        return {}
    parent_doc = load_metadata(store, spec.parent_metadata)
    if parent_doc["chunk_size"] != spec.chunk_size:
        raise BackupError("the parent backup was made with another chunk size")
    how = str(parent_doc["compression"])
    return {f"{c['offset']}:{c['sha256']}": (c["object"], c.get("compression", how))
            for c in parent_doc["chunks"] if c["object"]}


def backup(source: Reader, spec: BackupSpec, store: ObjectStore) -> dict[str, Any]:
    """Back up the guest bytes ``source`` reads; return the metadata document stored.

    Each chunk is read, hashed, compressed and uploaded in a worker thread
    (``spec.concurrency`` of them; hashlib and zlib release the GIL), at most
    twice that many chunks in flight; chunks that read as zeros are not stored.
    """
    store.ensure_container()
    parent = _parent_chunks(store, spec)
    base = prefix(spec.volume_id, spec.backup_id)
    zero_sha: dict[int, str] = {}

    def one(n: int, offset: int) -> dict[str, Any]:
        data = source.read(offset, spec.chunk_size)
        length = min(spec.chunk_size, source.size - offset)
        entry: dict[str, Any] = {"offset": offset, "length": length, "object": None}
        if data is None or data.count(0) == len(data):
            if length not in zero_sha:
                zero_sha[length] = hashlib.sha256(bytes(length)).hexdigest()
            entry["sha256"] = zero_sha[length]
            return entry
        entry["sha256"] = sha = hashlib.sha256(data).hexdigest()
        known = parent.get(f"{offset}:{sha}")
        if known is not None:
            entry["object"], how = known
        else:
            entry["object"] = f"{base}chunk-{n:05d}"
            packed, how = compress(data, spec.compression)
            store.put(entry["object"], packed)
            entry["stored"] = True
        if how != spec.compression:
            entry["compression"] = how
        return entry

    chunks: list[dict[str, Any]] = []
    with ThreadPoolExecutor(spec.concurrency) as pool:
        pending: list[Future[dict[str, Any]]] = []
        for n, offset in enumerate(range(0, source.size, spec.chunk_size)):
            pending.append(pool.submit(one, n, offset))
            if len(pending) >= 2 * spec.concurrency:
                chunks.append(pending.pop(0).result())
        chunks.extend(fut.result() for fut in pending)
    stored = sum(1 for c in chunks if c.pop("stored", False))
    doc = {"version": FORMAT_VERSION, "backup_id": spec.backup_id,
           "volume_id": spec.volume_id, "parent": spec.parent_metadata or None,
           "chunk_size": spec.chunk_size, "compression": spec.compression,
           "size_bytes": source.size, "chunks": chunks, "stored_chunks": stored}
    store.put(metadata_name(spec.volume_id, spec.backup_id), json.dumps(doc).encode())
    return doc


def restore(metadata: str, raw: Path, store: ObjectStore, concurrency: int = 4) -> int:
    """Write a backup's bytes into the sparse raw file ``raw``; return its size in bytes."""
    doc = load_metadata(store, metadata)
    algorithm = str(doc["compression"])

    def fetch(entry: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        data = _decompress(store.get(entry["object"]), entry.get("compression", algorithm))
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["length"]:
            raise BackupError(f"backup chunk {entry['object']} does not match its sha256")
        return entry, data

    with raw.open("wb") as out, ThreadPoolExecutor(concurrency) as pool:
        out.truncate(int(doc["size_bytes"]))
        wanted = [c for c in doc["chunks"] if c["object"]]
        for start in range(0, len(wanted), 2 * concurrency):
            for entry, data in pool.map(fetch, wanted[start:start + 2 * concurrency]):
                out.seek(int(entry["offset"]))
                out.write(data)
    return int(doc["size_bytes"])


def delete(metadata: str, volume_id: str, backup_id: str, store: ObjectStore) -> None:
    """Delete a backup's own objects (chunks a child still points at belong to this one)."""
    try:
        doc = load_metadata(store, metadata)
    except BackupError:
        return
    own = prefix(volume_id, backup_id)
    for entry in doc["chunks"]:
        if entry["object"] and str(entry["object"]).startswith(own):
            store.delete(entry["object"])
    store.delete(metadata)
