"""The ring file: a versioned, checksummed, mmap-friendly binary format (no pickle).

Layout (all integers little-endian)::

    offset 0   8 bytes   magic  b"NUBISRNG"
    offset 8   u32       format version (FORMAT_VERSION)
    offset 12  u32       header length H in bytes
    offset 16  16 bytes  xxh3_128 digest of the header bytes
    offset 32  H bytes   header: UTF-8 JSON object (see below)
    ...        padding   spaces (part of the header) up to a multiple of 64
    32 + H               the replica rows, concatenated, each ``row_lengths[r]``
                         items of ``dtype``

Header keys: ``part_power``, ``replicas``, ``version`` (the ring's own version,
bumped by the builder), ``dtype`` (``"<u1"``, ``"<u2"`` or ``"<u4"``),
``row_lengths``, ``devs`` (index == device id, ``null`` for a removed device),
``arrays_nbytes`` and ``arrays_xxh3_128`` (hex digest of the
array bytes). The header digest covers the array digest, so any flipped byte in
either part is detected.

Files are written atomically: temp file in the same directory, fsync, rename,
fsync of the directory. They are loaded with ``mmap``; the rows are read-only
numpy views over the mapping.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xxhash
from nubis.common.fileutil import atomic_write
from nubis.ring.errors import RingFileError

MAGIC = b"NUBISRNG"
FORMAT_VERSION = 1
#: magic, format version, header length, header digest.
PREAMBLE = struct.Struct("<8sII16s")
ARRAY_ALIGN = 64
#: Largest part_power a ring may have (partitions index a uint32).
MAX_PART_POWER = 32
#: Allowed on-disk dtypes for the replica→partition→device table.
DTYPES: dict[str, np.dtype[Any]] = {
    "<u1": np.dtype("<u1"), "<u2": np.dtype("<u2"), "<u4": np.dtype("<u4"),
}
#: Keys a device dict has (the builder writes all of them).
DEV_KEYS = ("id", "region", "zone", "ip", "port", "device", "weight", "meta",
            "replication_ip", "replication_port")
#: Keys a ring file's devices must have for lookups to work.
REQUIRED_DEV_KEYS = ("id", "region", "zone", "ip", "port", "device")


@dataclass(frozen=True)
class RingData:
    """Everything a ring file holds: the assignment table and the devices.

    Attributes:
        part_power: The ring has ``2 ** part_power`` partitions.
        replicas: Replica count; fractional like Swift's (last row shorter).
        replica2part2dev: One row per replica; row ``r`` maps partition → device id.
        devs: Device dicts; list index == device id; ``None`` for removed devices.
        version: The ring's version, bumped by the builder on every write.
    """

    part_power: int
    replicas: float
    replica2part2dev: list[np.ndarray[Any, Any]]
    devs: list[dict[str, Any] | None]
    version: int = 0

    @property
    def partition_count(self) -> int:
        """Return the number of partitions (``2 ** part_power``)."""
        return 1 << self.part_power


def smallest_dtype(max_value: int) -> np.dtype[Any]:
    """Return the smallest unsigned little-endian dtype that holds ``max_value``."""
    for name in ("<u1", "<u2", "<u4"):
        if max_value <= np.iinfo(DTYPES[name]).max:
            return DTYPES[name]
    raise ValueError(f"device id {max_value} does not fit in 32 bits")


def _dtype_name(dtype: np.dtype[Any]) -> str:
    """Return the header name (``"<u1"``, ``"<u2"``, ``"<u4"``) of ``dtype``."""
    return f"<u{dtype.itemsize}"


def expected_row_lengths(part_power: int, replicas: float) -> list[int]:
    """Return the row lengths a ring of this shape has (Swift's rule for fractions).

    Whole replicas get full rows; a fractional part ``f`` adds one row of
    ``int(parts * f)`` entries, exactly as swift-ring-builder sizes it.
    """
    parts = 1 << part_power
    frac, whole = math.modf(replicas)
    lengths = [parts] * int(whole)
    if frac:
        lengths.append(int(parts * frac))
    return lengths


# --------------------------------------------------------------------- writing


def write_ring_file(path: str | os.PathLike[str], data: RingData) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + dir fsync).

    Raises:
        RingFileError: the data is inconsistent or the file cannot be written.
    """
    path = Path(path)
    dtype, rows = _normalized_rows(path, data)
    header, arrays = _encode(path, data, dtype, rows)
    _atomic_write(path, header, arrays)


def _normalized_rows(path: Path, data: RingData) -> tuple[np.dtype[Any], list[npt.NDArray[Any]]]:
    """Check the shape of ``data`` and cast its rows to one compact dtype."""
    if not isinstance(data.part_power, int) or not 0 <= data.part_power <= MAX_PART_POWER:
        raise RingFileError(f"{path}: part_power {data.part_power!r} not in 0..{MAX_PART_POWER}")
    if not data.replicas >= 1 or math.isinf(data.replicas):
        raise RingFileError(f"{path}: replicas {data.replicas!r} must be a number >= 1")
    rows = [np.asarray(row) for row in data.replica2part2dev]
    lengths = [len(r) for r in rows]
    _check_row_lengths(path, data.part_power, data.replicas, lengths)
    for r in rows:
        if r.ndim != 1 or r.dtype.kind not in "ui":
            raise RingFileError(f"{path}: replica rows must be 1-d integer arrays")
    top = max((int(r.max()) for r in rows if len(r)), default=0)
    low = min((int(r.min()) for r in rows if len(r)), default=0)
    if low < 0:
        raise RingFileError(f"{path}: negative device id {low} in replica table")
    _check_devs(path, data.devs)
    if top >= len(data.devs):
        raise RingFileError(f"{path}: replica table names device {top} but only "
                            f"{len(data.devs)} devices exist")
    dtype = smallest_dtype(max(top, len(data.devs) - 1, 0))
    return dtype, [np.ascontiguousarray(r, dtype=dtype) for r in rows]


def _check_row_lengths(path: Path, part_power: int, replicas: float, lengths: list[int]) -> None:
    """Raise unless the rows have the lengths this part_power/replicas needs."""
    want = expected_row_lengths(part_power, replicas)
    if lengths != want:
        raise RingFileError(f"{path}: replica rows have lengths {lengths}, expected {want} "
                            f"for part_power {part_power} and replicas {replicas}")


def _check_devs(path: Path, devs: list[dict[str, Any] | None]) -> None:
    """Raise unless every device dict sits at the index of its own id and has lookup keys."""
    for index, dev in enumerate(devs):
        if dev is None:
            continue
        if not isinstance(dev, dict) or dev.get("id") != index:
            raise RingFileError(f"{path}: device at index {index} has id "
                                f"{dev.get('id') if isinstance(dev, dict) else dev!r}")
        missing = [key for key in REQUIRED_DEV_KEYS if key not in dev]
        if missing:
            raise RingFileError(f"{path}: device {index} lacks {', '.join(missing)}")


def _encode(path: Path, data: RingData, dtype: np.dtype[Any],
            rows: list[npt.NDArray[Any]]) -> tuple[bytes, list[memoryview]]:
    """Return the header bytes (with padding) and the array payloads (no copies)."""
    arrays = [r.data.cast("B") for r in rows]
    digest = xxhash.xxh3_128()
    for a in arrays:
        digest.update(a)
    fields: dict[str, Any] = {
        "part_power": data.part_power,
        "replicas": float(data.replicas),
        "version": int(data.version),
        "dtype": _dtype_name(dtype),
        "row_lengths": [len(r) for r in rows],
        "devs": data.devs,
        "arrays_nbytes": sum(a.nbytes for a in arrays),
        "arrays_xxh3_128": digest.hexdigest(),
    }
    body = _dump(path, fields)
    body += b" " * (_align(PREAMBLE.size + len(body)) - PREAMBLE.size - len(body))
    pre = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body), xxhash.xxh3_128_digest(body))
    return pre + body, arrays


def _dump(path: Path, fields: dict[str, Any]) -> bytes:
    """Serialize the header deterministically."""
    try:
        return json.dumps(fields, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise RingFileError(f"{path}: ring header is not JSON-serializable: {exc}") from exc


def _align(n: int) -> int:
    """Round ``n`` up to the array alignment."""
    return -(-n // ARRAY_ALIGN) * ARRAY_ALIGN


def _atomic_write(path: Path, head: bytes, arrays: list[memoryview]) -> None:
    """Write head + arrays atomically (temp file, fsync, rename, fsync the dir)."""
    try:
        atomic_write(path, [head, *arrays])
    except OSError as exc:
        raise RingFileError(f"{path}: cannot write ring file: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------- reading


def load_ring_file(path: str | os.PathLike[str], verify: bool = True) -> RingData:
    """Load a ring file; the rows are read-only numpy views over an mmap.

    Args:
        path: The ring file.
        verify: Check the array checksum and device ids (reads the whole table).

    Raises:
        RingFileError: missing, truncated, tampered, wrong magic or unknown version.
    """
    path = Path(path)
    mm = _map(path)
    header = _read_header(path, mm)
    rows = _read_rows(path, mm, header)
    data = RingData(part_power=header["part_power"], replicas=header["replicas"],
                    replica2part2dev=rows, devs=header["devs"], version=header["version"])
    if verify:
        _verify_arrays(path, mm, header, rows, len(data.devs))
    return data


def _map(path: Path) -> mmap.mmap:
    """Map the whole file read-only."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < PREAMBLE.size:
                raise RingFileError(f"{path}: not a ring file (truncated: {size} bytes)")
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise RingFileError(f"{path}: cannot read ring file: {exc.strerror or exc}") from exc


def _read_header(path: Path, mm: mmap.mmap) -> dict[str, Any]:
    """Check magic, version and header digest; return the parsed header."""
    magic, version, hlen, hdigest = PREAMBLE.unpack_from(mm, 0)
    if magic != MAGIC:
        raise RingFileError(f"{path}: not a nubis ring file (bad magic {magic[:8]!r})")
    if version != FORMAT_VERSION:
        raise RingFileError(f"{path}: unsupported ring format version {version} "
                            f"(this nubis reads version {FORMAT_VERSION})")
    end = PREAMBLE.size + hlen
    if end > len(mm):
        raise RingFileError(f"{path}: truncated ring file (header needs {end} bytes, "
                            f"file has {len(mm)})")
    body = mm[PREAMBLE.size:end]
    if xxhash.xxh3_128_digest(body) != hdigest:
        raise RingFileError(f"{path}: ring header checksum mismatch (file corrupt or tampered)")
    try:
        header = json.loads(body)
    except ValueError as exc:
        raise RingFileError(f"{path}: ring header is not valid JSON: {exc}") from exc
    _check_header(path, header)
    header["arrays_offset"] = end
    return header  # type: ignore[no-any-return]


def _check_header(path: Path, h: Any) -> None:
    """Raise unless the header has every field with a sane type."""
    if not isinstance(h, dict):
        raise RingFileError(f"{path}: ring header is not a JSON object")
    needed = {"part_power": int, "replicas": (int, float), "version": int, "dtype": str,
              "row_lengths": list, "devs": list, "arrays_nbytes": int,
              "arrays_xxh3_128": str}
    for key, kind in needed.items():
        if not isinstance(h.get(key), kind):  # type: ignore[arg-type]
            raise RingFileError(f"{path}: ring header field {key!r} missing or malformed")
    if not 0 <= h["part_power"] <= MAX_PART_POWER:
        raise RingFileError(f"{path}: ring header part_power {h['part_power']} out of range")
    if h["dtype"] not in DTYPES:
        raise RingFileError(f"{path}: ring header dtype {h['dtype']!r} not supported")
    _check_row_lengths(path, h["part_power"], float(h["replicas"]), h["row_lengths"])
    itemsize = DTYPES[h["dtype"]].itemsize
    if h["arrays_nbytes"] != itemsize * sum(h["row_lengths"]):
        raise RingFileError(f"{path}: ring header arrays_nbytes disagrees with row lengths")
    _check_devs(path, h["devs"])


def _read_rows(path: Path, mm: mmap.mmap, h: dict[str, Any]) -> list[npt.NDArray[Any]]:
    """Return the replica rows as numpy views over the mapping."""
    end = h["arrays_offset"] + h["arrays_nbytes"]
    if end > len(mm):
        raise RingFileError(f"{path}: truncated ring file (expected {end} bytes, "
                            f"file has {len(mm)})")
    if end < len(mm):
        raise RingFileError(f"{path}: ring file has {len(mm) - end} trailing bytes")
    dtype = DTYPES[h["dtype"]]
    rows: list[npt.NDArray[Any]] = []
    offset = h["arrays_offset"]
    for n in h["row_lengths"]:
        rows.append(np.frombuffer(mm, dtype=dtype, count=n, offset=offset))
        offset += n * dtype.itemsize
    return rows


def _verify_arrays(path: Path, mm: mmap.mmap, h: dict[str, Any],
                   rows: list[npt.NDArray[Any]], ndevs: int) -> None:
    """Check the array digest and that every device id names a device."""
    start = h["arrays_offset"]
    view = memoryview(mm)[start:start + h["arrays_nbytes"]]
    try:
        digest = xxhash.xxh3_128_hexdigest(view)
    finally:
        view.release()
    if digest != h["arrays_xxh3_128"]:
        raise RingFileError(f"{path}: ring table checksum mismatch (file corrupt or tampered)")
    top = max((int(r.max()) for r in rows if len(r)), default=-1)
    if top >= ndevs:
        raise RingFileError(f"{path}: replica table names device {top} but only "
                            f"{ndevs} devices exist")
