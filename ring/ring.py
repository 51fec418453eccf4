"""Ring lookup: which devices hold an account, container or object.

:class:`Ring` loads a ring file (see :mod:`nubis.ring.ringdata`), hashes names
with the cluster's keyed xxh3 and maps partitions to devices like Swift's
``Ring``: ``get_part``, ``get_nodes``, ``get_part_nodes`` and the handoff
generator ``get_more_nodes``. Batch calls (``get_partitions``,
``get_primary_dev_ids``, ``get_batch_nodes``) run compiled loops without the GIL.

The ring reloads itself when the file's mtime changes, checked at most every
``reload_time`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.fastpath import hashpath, ringlookup
from nubis.ring.errors import RingError, RingFileError
from nubis.ring.ringdata import RingData, load_ring_file

#: Seconds between checks of the ring file's mtime (Swift's default).
DEFAULT_RELOAD_TIME = 15.0

DevDict = dict[str, Any]


@dataclass(frozen=True)
class _Loaded:
    """One loaded ring file, in the shapes the kernels want."""

    data: RingData
    mtime_ns: int
    kernel: Any                             # ringlookup.RingTable (compiled or twin)
    nodes: list[list[DevDict] | None]       # per dev id: dict(dev, index=i) per replica index


def build_path(account: str | bytes, container: str | bytes | None = None,
               obj: str | bytes | None = None) -> bytes:
    """Return ``/account[/container[/object]]`` as UTF-8 bytes (Swift's hash_path rule)."""
    # PERF: the all-str cases skip the generic join (bench: python -m nubis.bench.ring_lookup).
    if type(account) is str:
        if obj is None:
            if container is None:
                return f"/{account}".encode()
            if type(container) is str:
                return f"/{account}/{container}".encode()
        elif type(container) is str and type(obj) is str:
            return f"/{account}/{container}/{obj}".encode()
    if obj is not None and container is None:
        raise ValueError("an object name needs a container name")
    parts = [account] if container is None else [account, container]
    if obj is not None:
        parts.append(obj)
    raw = [p if isinstance(p, bytes) else p.encode("utf-8") for p in parts]
    return b"/" + b"/".join(raw)


def _encoded(names: Sequence[bytes] | Sequence[str]) -> list[bytes]:
    """Return ``names`` as UTF-8 bytes."""
    return [n.encode("utf-8") if isinstance(n, str) else n for n in names]


def _owner(array: npt.NDArray[Any]) -> Any:
    """Return the buffer object (the mmap) a ``np.frombuffer`` array views."""
    base = array.base
    return base.obj if isinstance(base, memoryview) else base


def _table(data: RingData) -> tuple[npt.NDArray[np.unsignedinteger], npt.NDArray[np.int64]]:
    """Return the rows as one ``(replicas, parts)`` array, zero-copy when possible."""
    rows = data.replica2part2dev
    parts = data.partition_count
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    if not rows:
        raise RingFileError("ring has no replica rows")
    dtype = rows[0].dtype
    if all(len(r) == parts and r.dtype == dtype for r in rows):
        first = rows[0].__array_interface__["data"][0]
        step = parts * dtype.itemsize
        base = _owner(rows[0])
        if base is not None and all(
                _owner(r) is base and r.__array_interface__["data"][0] == first + i * step
                for i, r in enumerate(rows)):
            # PERF: consecutive mmap'd rows viewed as one matrix, no copy
            # (bench: python -m nubis.bench.ring_lookup).
            offset = first - np.frombuffer(base, np.uint8, count=1).__array_interface__["data"][0]
            table = np.frombuffer(base, dtype=dtype, count=len(rows) * parts, offset=offset)
            return table.reshape(len(rows), parts), lengths
    table = np.zeros((len(rows), parts), dtype=dtype)
    for r, row in enumerate(rows):
        table[r, : len(row)] = row
    return table, lengths


def _tiers(devs: Sequence[DevDict | None]) -> npt.NDArray[np.int32]:
    """Give each device dense region, zone and server ids (``-1`` for removed devices).

    A server is ``(region, zone, ip, port)``: in a real cluster the devices of one
    node share ip and port, and on an all-in-one every port is its own server.
    """
    tiers = np.full((ringlookup.TIER_LEVELS, len(devs)), -1, dtype=np.int32)
    ids: list[dict[tuple[Any, ...], int]] = [{} for _ in range(ringlookup.TIER_LEVELS)]
    for i, dev in enumerate(devs):
        if dev is None:
            continue
        keys = ((dev["region"],), (dev["region"], dev["zone"]),
                (dev["region"], dev["zone"], dev["ip"], dev["port"]))
        for level, key in enumerate(keys):
            tiers[level, i] = ids[level].setdefault(key, len(ids[level]))
    return tiers


def _load(path: Path) -> _Loaded:
    """Load ``path`` and prepare the kernel inputs."""
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except OSError as exc:
        raise RingFileError(f"{path}: cannot read ring file: {exc.strerror}") from exc
    data = load_ring_file(path)
    table, lengths = _table(data)
    try:
        kernel = ringlookup.RingTable(table, lengths, _tiers(data.devs))
    except (TypeError, ValueError) as exc:
        raise RingFileError(f"{path}: unusable ring table: {exc}") from exc
    reps = len(data.replica2part2dev)
    # PERF: node dicts prepared per (device, index); lookups copy them
    # (bench: python -m nubis.bench.ring_lookup).
    nodes = [None if dev is None else [dict(dev, index=i) for i in range(reps)]
             for dev in data.devs]
    return _Loaded(data, mtime_ns, kernel, nodes)


class Ring:
    """A ring file, ready for lookups; reloads when the file changes.

    Args:
        path: The ring file (``object.ring`` and so on).
        hash_path_prefix: The cluster's secret hash prefix.
        hash_path_suffix: The cluster's secret hash suffix.
        seed: A precomputed :func:`~nubis.fastpath.hashpath.cluster_seed`
            (overrides prefix and suffix).
        reload_time: Seconds between checks of the file's mtime.
    """

    def __init__(self, path: str | os.PathLike[str], hash_path_prefix: bytes = b"",
                 hash_path_suffix: bytes = b"nubis", *, seed: int | None = None,
                 reload_time: float = DEFAULT_RELOAD_TIME) -> None:
        self.path = Path(path)
        self.seed = (hashpath.cluster_seed(hash_path_prefix, hash_path_suffix)
                     if seed is None else seed)
        self.reload_time = reload_time
        self._ring = _load(self.path)
        self._next_check = time.monotonic() + reload_time
        #: The error of the last failed automatic reload (``None`` once one succeeds).
        self.reload_error: RingFileError | None = None

    # ----------------------------------------------------------- reloading

    def _current(self) -> _Loaded:
        """Return the loaded ring, reloading it if the file changed."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.reload_time
            if self.has_changed():
                try:
                    self._ring = _load(self.path)
                    self.reload_error = None
                except RingFileError as exc:
                    # Like Swift: a running server keeps its ring when the new
                    # file is bad, and tries again at the next check.
                    self.reload_error = exc
        return self._ring

    def has_changed(self) -> bool:
        """Tell whether the file's mtime differs from the loaded ring's."""
        try:
            return os.stat(self.path).st_mtime_ns != self._ring.mtime_ns
        except OSError:
            return False  # keep serving the ring we have

    def reload(self) -> None:
        """Reload the ring file now."""
        self._ring = _load(self.path)
        self._next_check = time.monotonic() + self.reload_time

    # ---------------------------------------------------------- properties

    @property
    def part_power(self) -> int:
        """Return the ring's part power."""
        return int(self._current().data.part_power)

    @property
    def replica_count(self) -> float:
        """Return the replica count (fractional like Swift's)."""
        return float(self._current().data.replicas)

    @property
    def partition_count(self) -> int:
        """Return the number of partitions."""
        return int(self._current().data.partition_count)

    @property
    def version(self) -> int:
        """Return the ring's version."""
        return int(self._current().data.version)

    @property
    def devs(self) -> list[DevDict | None]:
        """Return the devices; index == id, ``None`` for removed ones."""
        devs: list[DevDict | None] = self._current().data.devs
        return devs

    @property
    def device_count(self) -> int:
        """Return the number of live devices."""
        return sum(1 for d in self.devs if d is not None)

    # ------------------------------------------------------------- lookups

    def get_part(self, account: str | bytes, container: str | bytes | None = None,
                 obj: str | bytes | None = None) -> int:
        """Return the partition of an account, container or object."""
        ring = self._current()
        return int(hashpath.partition(self.seed, build_path(account, container, obj),
                                      ring.data.part_power))

    def get_part_nodes(self, part: int) -> list[DevDict]:
        """Return the primary devices of ``part`` (each once, with ``index``)."""
        ring = self._current()
        self._check_part(ring, part)
        return self._nodes(ring, part)

    def get_nodes(self, account: str | bytes, container: str | bytes | None = None,
                  obj: str | bytes | None = None) -> tuple[int, list[DevDict]]:
        """Return ``(partition, primary device dicts)`` of a name."""
        ring = self._current()
        part = int(hashpath.partition(self.seed, build_path(account, container, obj),
                                      ring.data.part_power))
        return part, self._nodes(ring, part)

    def get_more_nodes(self, part: int) -> Iterator[DevDict]:
        """Yield handoff devices for ``part`` in Swift's order.

        First devices in regions no primary uses, then in new zones, then on
        new servers, then every other device holding partitions; each once. The
        order is a deterministic walk over the ring from a per-partition start,
        so it stays mostly the same across ring changes. Dicts carry
        ``handoff_index``.
        """
        ring = self._current()
        self._check_part(ring, part)
        devs = ring.data.devs
        for i, dev_id in enumerate(ring.kernel.handoffs(part)):
            node = dict(devs[dev_id])  # type: ignore[arg-type]
            node["handoff_index"] = i
            yield node

    # ---------------------------------------------------------- batch calls

    def get_partitions(self, names: Sequence[bytes] | Sequence[str]) -> npt.NDArray[np.uint32]:
        """Return the partitions of many ``/account[/container[/object]]`` paths."""
        part_power = self.part_power
        try:
            # PERF: bytes go straight to the kernel, no per-name Python loop
            # (bench: python -m nubis.bench.ring_lookup).
            out: npt.NDArray[np.uint32] = hashpath.batch_partitions(self.seed, names,
                                                                    part_power)
        except TypeError:
            out = hashpath.batch_partitions(self.seed, _encoded(names), part_power)
        return out

    def get_primary_dev_ids(self, parts: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """Return the ``(len(parts), replicas)`` primary device ids; ``-1`` = none."""
        ring = self._current()
        try:
            out: npt.NDArray[np.int32] = ring.kernel.primary_devs(parts)
        except IndexError as exc:
            raise RingError(f"{exc} (ring has {ring.data.partition_count} partitions)") from exc
        return out

    def get_batch_nodes(self, names: Sequence[bytes] | Sequence[str],
                        ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int32]]:
        """Return ``(partitions, primary device id matrix)`` of many paths in one pass."""
        kernel = self._current().kernel
        try:
            parts, devs = kernel.batch_nodes(self.seed, names)
        except TypeError:
            parts, devs = kernel.batch_nodes(self.seed, _encoded(names))
        return parts, devs

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _check_part(ring: _Loaded, part: int) -> None:
        if not 0 <= part < ring.data.partition_count:
            raise RingError(f"partition {part} out of range 0..{ring.data.partition_count - 1}")

    @staticmethod
    def _nodes(ring: _Loaded, part: int) -> list[DevDict]:
        """Return copies of the node dicts of ``part``'s distinct live primaries."""
        nodes: list[DevDict] = ring.kernel.primary_nodes(part, ring.nodes)
        return nodes
