"""The backend storage protocol: timestamps, paths, replies (header names: common.backend).

Mirrors Swift's internal protocol so a Swift-style proxy can talk to the
nubis storage servers. Request paths are percent-encoded
``/<device>/<partition>/<account>[/<container>[/<object>]]``.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from urllib.parse import unquote

from nubis.common.backend import X_ALLOW_RESERVED, X_OPEN_EXPIRED, X_POLICY_INDEX, X_TIMESTAMP
from nubis.common.errors import NubisError
from nubis.common.httpserver import Response, plain

#: nubis extension: ``POST /<device>/_rows`` on a container server applies a
#: msgpack list of ``[method, quoted "/a/c/o", headers]`` row updates in one
#: transaction and answers 200 with a msgpack list of per-row statuses.
ROWS_BATCH_SUFFIX = "/_rows"
ROWS_BATCH_MAX_BYTES = 16 << 20

#: Object headers stored with the object besides ``X-Object-Meta-*``.
OBJECT_STORED_HEADERS = frozenset({
    "content-disposition", "content-encoding", "content-language", "cache-control",
    "expires", "x-delete-at", "x-object-manifest", "x-static-large-object", "x-robots-tag",
})
#: Prefixes of object headers stored as metadata.
OBJECT_META_PREFIXES = ("x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")
#: Container headers stored as metadata (with their own timestamps).
CONTAINER_META_PREFIXES = ("x-container-meta-", "x-container-sysmeta-")
CONTAINER_STORED_HEADERS = frozenset({
    "x-container-read", "x-container-write", "x-container-sync-key", "x-container-sync-to",
    "x-versions-location", "x-history-location",
})
ACCOUNT_META_PREFIXES = ("x-account-meta-", "x-account-sysmeta-")
ACCOUNT_STORED_HEADERS = frozenset({"x-account-access-control"})

#: Timestamp resolution: 10 microseconds, like Swift.
_TICKS = 100000


class StorageError(NubisError):
    """Root of the storage tier's exceptions."""


class ProtocolError(StorageError):
    """A backend request is malformed; ``status`` says how to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        """Return the plain-text reply for this error."""
        return plain(self.status, self.message)


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """A Swift timestamp: 10-µs ticks plus an optional offset (``_<hex>``)."""

    ticks: int
    offset: int = 0

    @classmethod
    def parse(cls, value: str) -> Timestamp:
        """Parse ``1700000000.12345`` / ``1700000000.12345_000000000000000a``.

        Raises:
            ValueError: not a timestamp.
        """
        base, _, off = value.strip().partition("_")
        seconds = float(base)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"bad timestamp {value!r}")
        ticks = round(seconds * _TICKS)
        offset = int(off, 16) if off else 0
        if ticks >= 10 ** 15 or offset < 0:
            raise ValueError(f"bad timestamp {value!r}")
        return cls(ticks, offset)

    @classmethod
    def now(cls) -> Timestamp:
        """Return the current time as a Timestamp."""
        return cls(round(time.time() * _TICKS))

    @property
    def normal(self) -> str:
        """Return ``0000001700.00000``-style: 10 digits, point, 5 digits."""
        sec, frac = divmod(self.ticks, _TICKS)
        return f"{sec:010d}.{frac:05d}"

    @property
    def internal(self) -> str:
        """Return the normal form plus ``_<16 hex>`` when there is an offset."""
        if self.offset:
            return f"{self.normal}_{self.offset:016x}"
        return self.normal

    @property
    def seconds(self) -> float:
        """Return the time as float seconds."""
        return self.ticks / _TICKS

    @property
    def isoformat(self) -> str:
        """Return ``2023-11-14T22:13:20.000000`` (UTC, microseconds), like Swift."""
        sec, frac = divmod(self.ticks, _TICKS)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac * 10:06d}"

    @property
    def http_date(self) -> str:
        """Return the ``Last-Modified`` form (rounded up to the second, like Swift)."""
        return _http_date_seconds(-(-self.ticks // _TICKS))


ZERO = Timestamp(0)


@functools.lru_cache(maxsize=4096)
def _http_date_seconds(sec: int) -> str:
    """Return an HTTP date; PERF: cached, every object GET/HEAD formats one (bench s3)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(sec))


@functools.lru_cache(maxsize=4096)
def _iso_seconds(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def listing_isoformat(value: str) -> str:
    """Return :attr:`Timestamp.isoformat` of a stored timestamp string, fast.

    PERF: one call per listed row (``python -m nubis.bench scale``): the plain
    ``1700000000.12345`` form skips the float parse and reuses the formatted
    second (rows of one container share seconds).

    Raises:
        ValueError: not a timestamp.
    """
    if len(value) == 16 and value[10] == "." and value[:10].isdigit() \
            and value[11:].isdigit():
        return f"{_iso_seconds(int(value[:10]))}.{int(value[11:]) * 10:06d}"
    return Timestamp.parse(value).isoformat


def parse_timestamp(headers: dict[str, str], name: str = X_TIMESTAMP) -> Timestamp:
    """Return the required timestamp header ``name``.

    Raises:
        ProtocolError: 400 when missing or malformed.
    """
    raw = headers.get(name)
    if raw is None:
        raise ProtocolError(400, "Missing timestamp")
    try:
        return Timestamp.parse(raw)
    except ValueError:
        raise ProtocolError(400, f"X-Timestamp should be a UNIX timestamp float value; "
                                 f"was {raw!r}") from None


def parse_int_header(headers: dict[str, str], name: str, default: int = 0) -> int:
    """Return a non-negative integer header (400 if malformed)."""
    raw = headers.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProtocolError(400, f"Invalid {name}") from None
    if value < 0:
        raise ProtocolError(400, f"Invalid {name}")
    return value


def policy_index(headers: dict[str, str], name: str = X_POLICY_INDEX) -> int:
    """Return ``X-Backend-Storage-Policy-Index`` (or header ``name``; default 0; 0..255)."""
    value = parse_int_header(headers, name, 0)
    if value > 255:
        raise ProtocolError(400, f"Invalid {name}")
    return value


@dataclass(frozen=True, slots=True)
class BackendPath:
    """A parsed backend path; ``container``/``obj`` empty when absent."""

    device: str
    partition: int
    account: str
    container: str = ""
    obj: str = ""


def parse_path(raw_path: str, min_segs: int, max_segs: int,
               allow_reserved: bool = False) -> BackendPath:
    """Split ``/<dev>/<part>/<acct>[/<cont>[/<obj>]]`` (the object keeps its slashes).

    ``min_segs``/``max_segs`` count account, container and object (1..3). NUL is
    refused unless ``allow_reserved`` (the request carried ``X-Backend-Allow-Reserved-
    Names: true``): then container and object names may start with it (Swift's
    reserved namespace), nothing else may hold it.

    Raises:
        ProtocolError: 400 for a malformed path, bad UTF-8 or a bad device/partition.
    """
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise ProtocolError(412, "Invalid UTF8 or contains NULL") from None
    if "\x00" in path and not (allow_reserved and _reserved_ok(path)):
        raise ProtocolError(412, "Invalid UTF8 or contains NULL")
    if not path.startswith("/"):
        raise ProtocolError(400, "Invalid path")
    parts = path[1:].split("/", 4)
    if len(parts) < 2 + min_segs or len(parts) > 2 + max_segs:
        raise ProtocolError(400, "Invalid path")
    names = parts[2:]
    if "" in names or not parts[0]:  # PERF: bench s3 -- no generator per request
        raise ProtocolError(400, "Invalid path")
    device, part = parts[0], parts[1]
    if device in (".", "..") or not part.isdigit() or not part.isascii():
        raise ProtocolError(400, "Invalid device or partition")
    names += [""] * (3 - len(names))
    return BackendPath(device, int(part), names[0], names[1], names[2])


def _reserved_ok(path: str) -> bool:
    """Return whether NULs sit only in reserved container/object names."""
    parts = path[1:].split("/", 4)
    if any("\x00" in p for p in parts[:3]):
        return False
    return all(p.startswith("\x00") for p in parts[3:] if "\x00" in p)


def allows_reserved(headers: dict[str, str]) -> bool:
    """Return whether a request may name the reserved namespace."""
    return headers.get(X_ALLOW_RESERVED, "").lower() == "true"


def opens_expired(headers: dict[str, str]) -> bool:
    """Return whether a request reaches an object past its ``X-Delete-At``.

    Swift's ``is_backend_open_expired``: ``X-Backend-Open-Expired`` is a true value.
    """
    return headers.get(X_OPEN_EXPIRED, "").strip().lower() in ("true", "1", "yes", "on", "t", "y")


def split_hosts(headers: dict[str, str], host_h: str, part_h: str,
                dev_h: str) -> list[tuple[str, int, str, str]]:
    """Return ``(ip, port, partition, device)`` targets from update headers.

    Swift sends comma-separated lists in ``X-Container-Host``/``-Device``
    (one partition for all). Malformed entries are ignored.
    """
    hosts = [h.strip() for h in headers.get(host_h, "").split(",") if h.strip()]
    devices = [d.strip() for d in headers.get(dev_h, "").split(",") if d.strip()]
    part = headers.get(part_h, "").strip()
    if not hosts or not part.isdigit() or len(devices) != len(hosts):
        return []
    out = []
    for host, dev in zip(hosts, devices, strict=True):
        ip, _, port = host.rpartition(":")
        ip = ip.strip("[]")
        if not ip or not port.isdigit():
            continue
        out.append((ip, int(port), part, dev))
    return out


def metadata_from_headers(headers: dict[str, str], prefixes: tuple[str, ...],
                          names: frozenset[str]) -> dict[str, str]:
    """Return the headers that are stored as metadata (lower-case names)."""
    return {k: v for k, v in headers.items() if k in names or k.startswith(prefixes)}


#: Canonical capitalisation for stored lower-case header names.
@functools.lru_cache(maxsize=4096)
def title_header(name: str) -> str:
    """Return ``X-Object-Meta-Color`` for ``x-object-meta-color``.

    PERF: bench s3 -- cached: every object GET/HEAD titles each stored metadata
    name (an S3 object has two sysmeta items for its checksum), 1.2 us each.
    """
    return "-".join(p[:1].upper() + p[1:] for p in name.split("-"))
