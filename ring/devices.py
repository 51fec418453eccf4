"""Ring devices: the record, and parsing of swift-ring-builder's device strings.

Three string forms come from the command line, exactly as swift-ring-builder
takes them:

* add values: ``r1z1-127.0.0.1:6200R10.0.0.1:6300/sdb1_meta`` (region,
  zone, ip, port, optional replication ip:port, device name, optional meta);
* search values: any subset of ``d<id>r<region>z<zone>-<ip>:<port>R<rip>:<rport>/<dev>_<meta>``,
  e.g. ``d74``, ``z1``, ``127.0.0.1:6200``, ``/sdb1``;
* change values (``set_info``): ``<ip>:<port>R<rip>:<rport>/<dev>_<meta>``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nubis.ring.errors import DeviceError

#: Keys a search may filter on, in swift-ring-builder's order.
SEARCH_KEYS = ("id", "region", "zone", "ip", "port", "replication_ip", "replication_port",
               "device", "weight", "meta")
#: Keys ``set_info`` may change.
CHANGE_KEYS = ("ip", "port", "replication_ip", "replication_port", "device", "meta")
MAX_PORT = 65535
_HOSTNAME = re.compile(r"(?!-)[A-Za-z\d-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Device:
    """One storage device of a ring.

    Attributes:
        id: Unique device id; also its index in the builder's device list.
        region: Region number (the widest failure domain).
        zone: Zone number within the region.
        ip: Address of the storage server (normalized).
        port: TCP port of the storage server.
        device: The device's directory name on its server (``sdb1``).
        weight: Relative capacity; 0 drains the device.
        meta: Free-form operator text.
        replication_ip: Address replication traffic uses (defaults to ``ip``).
        replication_port: Port replication traffic uses (defaults to ``port``).
    """

    id: int
    region: int
    zone: int
    ip: str
    port: int
    device: str
    weight: float
    meta: str = ""
    replication_ip: str = ""
    replication_port: int = 0

    def __post_init__(self) -> None:
        if not self.replication_ip:
            object.__setattr__(self, "replication_ip", self.ip)
        if not self.replication_port:
            object.__setattr__(self, "replication_port", self.port)

    def to_dict(self) -> dict[str, Any]:
        """Return the device as a plain dict (the ring file's device record)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Device:
        """Build a device from a dict with exactly the record's keys.

        Raises:
            DeviceError: a key is missing or has the wrong type.
        """
        names = {f.name for f in fields(cls)}
        missing = names - set(raw) - {"meta", "replication_ip", "replication_port"}
        if missing:
            raise DeviceError(f"device record lacks {', '.join(sorted(missing))}")
        try:
            return cls(id=int(raw["id"]), region=int(raw["region"]), zone=int(raw["zone"]),
                       ip=str(raw["ip"]), port=int(raw["port"]), device=str(raw["device"]),
                       weight=float(raw["weight"]), meta=str(raw.get("meta", "")),
                       replication_ip=str(raw.get("replication_ip") or ""),
                       replication_port=int(raw.get("replication_port") or 0))
        except (TypeError, ValueError) as exc:
            raise DeviceError(f"device record is malformed: {exc}") from exc

    def with_changes(self, **changes: Any) -> Device:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)

    def describe(self) -> str:
        """Return the form swift-ring-builder prints (``d1r1z1-ip:portRip:port/dev_"meta"``)."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        rip = f"[{self.replication_ip}]" if ":" in self.replication_ip else self.replication_ip
        return (f"d{self.id}r{self.region}z{self.zone}-{ip}:{self.port}"
                f'R{rip}:{self.replication_port}/{self.device}_"{self.meta}"')


# ------------------------------------------------------------------- addresses


def normalize_address(address: str) -> str:
    """Return ``address`` as a normalized IP (IPv6 fully expanded) or lower-case host name.

    Raises:
        DeviceError: it is neither a valid IP address nor a valid host name.
    """
    bare = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        host = bare.lower().removesuffix(".")
        if (not address.startswith("[") and 0 < len(host) <= 255
                and not re.fullmatch(r"[\d.]+", host)
                and all(_HOSTNAME.match(label) for label in host.split("."))):
            return host
        raise DeviceError(f"invalid address {address!r}") from None
    return ip.exploded if ip.version == 6 else str(ip)


def _check_port(port: int, what: str = "port") -> int:
    """Return ``port`` if it is a valid TCP port."""
    if not 0 < port <= MAX_PORT:
        raise DeviceError(f"invalid {what} {port} (must be 1..{MAX_PORT})")
    return port


# --------------------------------------------------------------- string parsing


class _Scanner:
    """A cursor over a device string, with the small lexers all three forms share."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def rest(self) -> str:
        return self.text[self.pos:]

    def peek(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def number(self, prefix: str) -> int | None:
        """Consume ``prefix`` followed by digits; return the number or None if absent."""
        if not self.peek(prefix):
            return None
        match = re.compile(r"\d+").match(self.text, self.pos + len(prefix))
        if match is None:
            raise DeviceError(f"expected a number after {prefix!r} in {self.text!r}")
        self.pos = match.end()
        return int(match.group())

    def address(self) -> str | None:
        """Consume an IPv4 address, a host name or a bracketed IPv6 address."""
        if self.peek("["):
            end = self.text.find("]", self.pos)
            if end < 0:
                raise DeviceError(f"unterminated '[' in {self.text!r}")
            raw = self.text[self.pos:end + 1]
            self.pos = end + 1
            return normalize_address(raw)
        if self.rest()[:1].isdigit():  # like Swift: a leading digit means an IPv4 address
            match = re.compile(r"[0-9.]+").match(self.text, self.pos)
        else:
            match = re.compile(r"[A-Za-z][A-Za-z0-9.\-]*").match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return normalize_address(match.group())

    def device_and_meta(self) -> tuple[str | None, str | None]:
        """Consume ``/device`` and ``_meta`` if present."""
        device = meta = None
        if self.peek("/"):
            end = self.text.find("_", self.pos)
            end = len(self.text) if end < 0 else end
            device = self.text[self.pos + 1:end]
            self.pos = end
        if self.peek("_"):
            meta = self.text[self.pos + 1:]
            self.pos = len(self.text)
        return device, meta


def parse_add_value(value: str) -> dict[str, Any]:
    """Parse an add value like ``r1z1-127.0.0.1:6200/sdb1_meta`` into device fields.

    The region defaults to 1 when the string starts with ``z``, like
    swift-ring-builder (which warns).

    Raises:
        DeviceError: the string is malformed (with the offending value named).
    """
    scan = _Scanner(value)
    region = scan.number("r")
    zone = scan.number("z")
    if zone is None:
        raise DeviceError(f"invalid add value {value!r}: expected r<region>z<zone>-<ip>:"
                          "<port>/<device>, e.g. r1z1-127.0.0.1:6200/sdb1")
    if not scan.peek("-"):
        raise DeviceError(f"invalid add value {value!r}: missing '-' after the zone")
    scan.pos += 1
    ip = scan.address()
    port = scan.number(":")
    if ip is None or port is None:
        raise DeviceError(f"invalid add value {value!r}: expected <ip>:<port> after the zone")
    rep_ip, rep_port = ip, port
    if scan.peek("R"):
        scan.pos += 1
        rep_ip = scan.address() or ip
        rep_port = scan.number(":") or port
    device, meta = scan.device_and_meta()
    if not device or scan.rest():
        raise DeviceError(f"invalid add value {value!r}: expected /<device> after the port")
    return {"region": 1 if region is None else region, "zone": zone, "ip": ip,
            "port": _check_port(port), "replication_ip": rep_ip,
            "replication_port": _check_port(rep_port, "replication port"),
            "device": device, "meta": meta or ""}


def parse_search_value(value: str) -> dict[str, Any]:
    """Parse a search value (``d74``, ``r1z2``, ``z1-1.2.3.4:6200/sdb1``, ``_meta``...).

    Raises:
        DeviceError: the value is empty or malformed.
    """
    scan = _Scanner(value)
    match: dict[str, Any] = {}
    for key, prefix in (("id", "d"), ("region", "r"), ("zone", "z")):
        number = scan.number(prefix)
        if number is not None:
            match[key] = number
    if scan.peek("-"):
        scan.pos += 1
    ip = scan.address() if (scan.peek("[") or scan.rest()[:1].isdigit()) else None
    if ip is not None:
        match["ip"] = ip
    port = scan.number(":")
    if port is not None:
        match["port"] = port
    if scan.peek("R"):
        scan.pos += 1
        rep_ip = scan.address()
        if rep_ip is not None:
            match["replication_ip"] = rep_ip
        rep_port = scan.number(":")
        if rep_port is not None:
            match["replication_port"] = rep_port
    device, meta = scan.device_and_meta()
    if device is not None:
        match["device"] = device
    if meta is not None:
        match["meta"] = meta
    if scan.rest() or not match:
        raise DeviceError(f"invalid search value {value!r}")
    return match


def parse_change_value(value: str) -> dict[str, Any]:
    """Parse a ``set_info`` change value: ``<ip>:<port>R<rip>:<rport>/<device>_<meta>``.

    Raises:
        DeviceError: the value is empty or malformed.
    """
    scan = _Scanner(value)
    change: dict[str, Any] = {}
    if not scan.peek(":") and not scan.peek("R") and not scan.peek("/") and not scan.peek("_"):
        ip = scan.address()
        if ip is None:
            raise DeviceError(f"invalid change value {value!r}")
        change["ip"] = ip
    port = scan.number(":")
    if port is not None:
        change["port"] = _check_port(port)
    if scan.peek("R"):
        scan.pos += 1
        rep_ip = scan.address()
        if rep_ip is not None:
            change["replication_ip"] = rep_ip
        rep_port = scan.number(":")
        if rep_port is not None:
            change["replication_port"] = _check_port(rep_port, "replication port")
    device, meta = scan.device_and_meta()
    if device is not None:
        if not device:
            raise DeviceError(f"invalid change value {value!r}: empty device name")
        change["device"] = device
    if meta is not None:
        change["meta"] = meta
    if scan.rest() or not change:
        raise DeviceError(f"invalid change value {value!r}")
    return change


def matches(dev: Device, search: dict[str, Any]) -> bool:
    """Tell whether ``dev`` matches every key of a parsed search (meta is a substring)."""
    for key, want in search.items():
        have = getattr(dev, key)
        if key == "meta":
            if want not in have:
                return False
        elif have != want:
            return False
    return True
