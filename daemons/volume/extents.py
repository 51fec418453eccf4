"""A volume's guest-visible bytes read straight from its qcow2 file (no raw export).

``qemu-img map --output=json`` lists the image's extents: for each, whether it
reads as zeros and, for data, where it lies in the file (``offset``). A backup
reads its chunks with ``pread`` at those offsets and never reads zero extents,
instead of first copying the whole volume to a raw scratch file. A file whose
data cannot be read that way (compressed clusters, a backing chain) is not
mapped: :func:`open_volume` then answers None and the caller exports to raw.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from nubis.daemons.volume import qemuimg


@dataclass(frozen=True)
class Extent:
    """``length`` guest bytes at ``start``: at ``host`` in the file, or zeros (None)."""

    start: int
    length: int
    host: int | None


def parse_map(doc: object) -> list[Extent] | None:
    """Return the extents of a ``qemu-img map`` answer (None if not plainly readable)."""
    if not isinstance(doc, list):
        return None
    out = []
    for item in doc:
        if not isinstance(item, dict) or (int(item.get("depth", 0)) != 0 and item.get("data")):
            return None
        start, length = int(item["start"]), int(item["length"])
        if item.get("zero") or not item.get("data"):
            out.append(Extent(start, length, None))
        elif "offset" in item and not item.get("compressed"):
            out.append(Extent(start, length, int(item["offset"])))
        else:
            return None
    return out


class Reader:
    """Reads guest byte ranges of one file (``raw`` files map to themselves)."""

    def __init__(self, path: Path, extents: list[Extent], size: int) -> None:
        self.path = path
        self.extents = extents
        self.size = size
        self._fd = os.open(path, os.O_RDONLY)

    def read(self, offset: int, length: int) -> bytes | None:
        """Return the bytes of ``[offset, offset+length)``, or None if all are zeros."""
        end = min(offset + length, self.size)
        parts: list[bytes] = []
        any_data = False
        for ext in self.extents:
            lo, hi = max(ext.start, offset), min(ext.start + ext.length, end)
            if lo >= hi:
                continue
            if ext.host is None:
                parts.append(bytes(hi - lo))
            else:
                parts.append(os.pread(self._fd, hi - lo, ext.host + lo - ext.start))
                any_data = True
        data = b"".join(parts)
        if len(data) != end - offset:
            raise OSError(f"{self.path}: short read at {offset}")
        return data if any_data else None

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_raw(path: Path) -> Reader:
    """Return a reader of a raw file (every byte is data)."""
    size = path.stat().st_size
    return Reader(path, [Extent(0, size, 0)], size)


def open_volume(path: Path, fmt: str = "qcow2") -> Reader | None:
    """Return a reader of an image file's guest bytes, or None if it cannot be mapped."""
    info = qemuimg.info(path)
    if info.get("backing-filename") or info.get("format") != fmt:
        return None
    if (info.get("format-specific") or {}).get("data", {}).get("data-file"):
        return None
    extents = parse_map(json.loads(qemuimg.run("map", "--output=json", "-U", "-f", fmt,
                                               str(path))))
    if extents is None:
        return None
    return Reader(path, extents, int(info["virtual-size"]))
