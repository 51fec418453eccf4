"""Builder files: save and load a :class:`RingBuilder` without pickle.

Layout (integers little-endian)::

    offset 0   8 bytes   magic b"NUBISBLD"
    offset 8   u32       format version (FORMAT_VERSION)
    offset 12  u32       header length H
    offset 16  H bytes   header: UTF-8 JSON (scalars, devices, array descriptors)
    16 + H     ...       the arrays' raw bytes, in header order
    end - 32   32 bytes  SHA-256 of everything before it

The arrays are the assignment table (``int32``, ``rows x parts``, ``-1`` =
unassigned) and the hours since each partition last moved (``uint8``).
Writes are atomic: temp file in the same directory, fsync, rename, directory
fsync. Any problem loading gives :class:`RingBuilderError` with one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
from nubis.common.fileutil import atomic_write
from nubis.ring.builder import RingBuilder
from nubis.ring.devices import Device
from nubis.ring.errors import DeviceError, RingBuilderError

MAGIC = b"NUBISBLD"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sII")
DIGEST_SIZE = 32
_DTYPES: dict[str, np.dtype[Any]] = {"<i4": np.dtype("<i4"), "<u1": np.dtype("<u1"),
                                     "|u1": np.dtype("<u1")}


def save_builder(builder: RingBuilder, path: str | os.PathLike[str]) -> None:
    """Write ``builder`` to ``path`` atomically.

    Raises:
        RingBuilderError: the file cannot be written.
    """
    path = Path(path)
    arrays: list[tuple[str, np.ndarray[Any, Any]]] = []
    history = builder.move_history()
    if history is not None:
        arrays.append(("last_part_moves", np.ascontiguousarray(history, dtype="<u1")))
    if builder.table is not None:
        arrays.append(("table", np.ascontiguousarray(builder.table, dtype="<i4")))
    header = {
        "part_power": builder.part_power,
        "replicas": builder.replicas,
        "min_part_hours": builder.min_part_hours,
        "overload": builder.overload,
        "version": builder.version,
        "id": builder.id,
        "devs_changed": builder.devs_changed,
        "dispersion": builder.dispersion,
        "last_part_moves_epoch": builder.last_part_moves_epoch,
        "remove_devs": list(builder.remove_devs),
        "devs": [d.to_dict() if d else None for d in builder.devs],
        "arrays": [{"name": name, "dtype": a.dtype.str, "shape": list(a.shape)}
                   for name, a in arrays],
    }
    body = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    digest = hashlib.sha256()
    chunks: list[Any] = [PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body)), body]
    # PERF: the arrays' own buffers, not byte copies (bench: ring scale, peak RSS)
    chunks += [a.data.cast("B") for _, a in arrays]
    for chunk in chunks:
        digest.update(chunk)
    chunks.append(digest.digest())
    _atomic_write(path, chunks)


def _atomic_write(path: Path, chunks: list[Any]) -> None:
    """Write the chunks atomically (temp file, fsync, rename, fsync the directory)."""
    try:
        atomic_write(path, chunks)
    except OSError as exc:
        raise RingBuilderError(f"{path}: cannot write builder file: "
                               f"{exc.strerror or exc}") from exc


def load_builder(path: str | os.PathLike[str]) -> RingBuilder:
    """Load a builder file written by :func:`save_builder`.

    The file is read twice in bounded chunks — once for the checksum, once straight
    into the arrays — so loading needs no memory beyond the arrays themselves.

    Raises:
        RingBuilderError: missing, unreadable, truncated, corrupt or of another format.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _load(path, f)
    except FileNotFoundError:
        raise RingBuilderError(f"{path}: builder file does not exist") from None
    except OSError as exc:
        raise RingBuilderError(f"{path}: cannot read builder file: "
                               f"{exc.strerror or exc}") from exc


#: Bytes hashed per read while checking a builder file.
READ_CHUNK = 1 << 22


def _load(path: Path, f: io.BufferedReader) -> RingBuilder:
    """Check the checksum of the open file ``f``, then restore the builder from it."""
    size = os.fstat(f.fileno()).st_size
    preamble = f.read(PREAMBLE.size)
    if size < PREAMBLE.size + DIGEST_SIZE or not preamble.startswith(MAGIC):
        raise RingBuilderError(f"{path}: not a nubis builder file")
    # PERF: streamed checksum, no whole-file copy (bench: ring scale, peak RSS)
    digest = hashlib.sha256(preamble)
    left = size - DIGEST_SIZE - PREAMBLE.size
    while left > 0:
        chunk = f.read(min(READ_CHUNK, left))
        if not chunk:
            raise RingBuilderError(f"{path}: builder file is truncated")
        digest.update(chunk)
        left -= len(chunk)
    if digest.digest() != f.read(DIGEST_SIZE):
        raise RingBuilderError(f"{path}: builder file is corrupt (checksum mismatch)")
    _magic, version, hlen = PREAMBLE.unpack_from(preamble, 0)
    if version != FORMAT_VERSION:
        raise RingBuilderError(f"{path}: unsupported builder format version {version}")
    try:
        f.seek(PREAMBLE.size)
        header = json.loads(f.read(hlen))
        return _restore(header, f, PREAMBLE.size + hlen, size - DIGEST_SIZE)
    except (ValueError, KeyError, TypeError, DeviceError, RingBuilderError) as exc:
        raise RingBuilderError(f"{path}: builder file is malformed: {exc}") from exc


def _restore(header: dict[str, Any], f: io.BufferedReader, offset: int, end: int) -> RingBuilder:
    """Rebuild the builder from its header and the array bytes of ``f[offset:end]``."""
    builder = RingBuilder(int(header["part_power"]), float(header["replicas"]),
                          int(header["min_part_hours"]), float(header["overload"]))
    builder.version = int(header["version"])
    builder.id = str(header["id"])
    builder.devs_changed = bool(header["devs_changed"])
    builder.dispersion = float(header["dispersion"])
    builder.last_part_moves_epoch = int(header["last_part_moves_epoch"])
    builder.remove_devs = [int(i) for i in header["remove_devs"]]
    builder.devs = [Device.from_dict(d) if d is not None else None for d in header["devs"]]
    for index, dev in enumerate(builder.devs):
        if dev is not None and dev.id != index:
            raise ValueError(f"device at index {index} has id {dev.id}")
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for spec in header["arrays"]:
        dtype = _DTYPES[spec["dtype"]]
        shape = tuple(int(x) for x in spec["shape"])
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset + nbytes > end:
            raise ValueError(f"array {spec['name']!r} runs past the end of the file")
        array = np.empty(shape, dtype=dtype)
        if f.readinto(array.data.cast("B")) != nbytes:
            raise ValueError(f"array {spec['name']!r} is truncated")
        arrays[spec["name"]] = array
        offset += nbytes
    if offset != end:
        raise ValueError("unexpected bytes after the arrays")
    moves = arrays.get("last_part_moves")
    if moves is not None:
        if moves.shape != (builder.parts,):
            raise ValueError(f"last_part_moves has shape {moves.shape}")
        builder.last_part_moves = moves.astype(np.uint8, copy=False)
    table = arrays.get("table")
    if table is not None:
        if table.ndim != 2 or table.shape[1] != builder.parts:
            raise ValueError(f"assignment table has shape {table.shape}")
        if table.size and (table.min() < -1 or table.max() >= max(len(builder.devs), 1)):
            raise ValueError("assignment table names an unknown device")
        builder.table = table.astype(np.int32, copy=False)
    return builder
