"""Glance's ``web-download`` import: the image service fetches the image from a URL.

A URI is checked twice. When the import is asked for (Glance's
``validate_import_uri``, a 400 when it fails): its scheme, port and host
against ``import_allowed_*`` / ``import_disallowed_hosts``, and an address
literal against ``import_blocked_networks``. When the download starts, and
again for every redirect: the host is resolved, every address it resolves to
must lie outside the blocked networks, and the connection goes to the address
that was checked (a name cannot resolve somewhere else in between). By default
that keeps the image service away from loopback services and the link-local
cloud metadata address; operators can narrow it further with the allow lists.

The download is plain HTTP/1.1 (``https`` verified against the system's CAs)
over one connection per hop, at most :data:`MAX_REDIRECTS` redirects, each read
bounded by ``import_timeout``; the body is streamed (``Content-Length``, chunked
or to the end of the connection) into the image store like an upload.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from nubis.api.image.config import ImageConfig

#: Most redirects a download follows.
MAX_REDIRECTS = 5
#: Largest response head (status line and headers) accepted.
MAX_HEAD = 64 * 1024
#: Bytes read from the connection at a time.
READ_SIZE = 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = (301, 302, 303, 307, 308)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebDownloadError(Exception):
    """The image could not be downloaded (the message says why)."""


class UriRefused(WebDownloadError):  # noqa: N818 (reads as the outcome)
    """The URI (or a redirect) does not pass the import filters."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"{uri} does not pass the import filters")
        self.uri = uri


@dataclass(frozen=True)
class Target:
    """One URI that passed the filters: where to connect and what to ask for."""

    uri: str
    scheme: str
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class UriFilter:
    """The ``import_*`` settings of ``[image]``, parsed once."""

    schemes: tuple[str, ...]
    ports: tuple[int, ...]
    allowed_hosts: tuple[str, ...]
    disallowed_hosts: tuple[str, ...]
    blocked: tuple[IPNetwork, ...]

    @classmethod
    def of(cls, cfg: ImageConfig) -> UriFilter:
        """Return the filter of an ``[image]`` section."""
        return cls(tuple(s.lower() for s in cfg.import_allowed_schemes),
                   cfg.import_allowed_ports,
                   tuple(h.lower() for h in cfg.import_allowed_hosts),
                   tuple(h.lower() for h in cfg.import_disallowed_hosts),
                   tuple(ipaddress.ip_network(n) for n in cfg.import_blocked_networks))

    def check(self, uri: str) -> Target:
        """Return the target of ``uri``, or raise :class:`UriRefused`."""
        if not uri.isascii() or any(c <= " " or c == "\x7f" for c in uri):
            raise UriRefused(uri)
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            raise UriRefused(uri) from None
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = port if port is not None else _DEFAULT_PORTS.get(scheme, 0)
        if scheme not in self.schemes or not host or port not in self.ports \
                or parts.username is not None or host in self.disallowed_hosts \
                or (self.allowed_hosts and host not in self.allowed_hosts):
            raise UriRefused(uri)
        literal = _address(host)
        if literal is not None and self.is_blocked(literal):
            raise UriRefused(uri)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(uri, scheme, host, port, path)

    def is_blocked(self, address: IPAddress) -> bool:
        """Tell whether ``address`` lies in a blocked network."""
        return any(address.version == net.version and address in net for net in self.blocked)

    async def resolve(self, target: Target, timeout: float = 30.0) -> str:
        """Return the address to connect to; refuse a host resolving into a blocked network."""
        literal = _address(target.host)
        if literal is not None:
            return str(literal)
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM), timeout)
        except (OSError, TimeoutError) as exc:
            raise WebDownloadError(f"cannot resolve {target.host}: {exc or 'timed out'}") \
                from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses or any(self.is_blocked(a) for a in addresses):
            raise UriRefused(target.uri)
        return str(addresses[0])


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass
class Download:
    """An open download: the final response's length (if known) and its body."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    length: int | None
    chunked: bool
    timeout: float

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body; raise :class:`WebDownloadError` if it ends early."""
        try:
            if self.chunked:
                async for piece in self._chunked():
                    yield piece
                return
            left = self.length
            while left is None or left > 0:
                size = READ_SIZE if left is None else min(READ_SIZE, left)
                data = await self._read(self.reader.read(size))
                if not data:
                    if left is not None:
                        raise WebDownloadError("the download ended before its Content-Length")
                    return
                if left is not None:
                    left -= len(data)
                yield data
        finally:
            self.close()

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._read(self.reader.readuntil(b"\r\n"))
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise WebDownloadError("a malformed chunked body") from None
            if size == 0:
                return
            while size > 0:
                data = await self._read(self.reader.read(min(size, READ_SIZE)))
                if not data:
                    raise WebDownloadError("the download ended inside a chunk")
                size -= len(data)
                yield data
            if await self._read(self.reader.readexactly(2)) != b"\r\n":
                raise WebDownloadError("a malformed chunked body")

    async def _read(self, op: Awaitable[bytes]) -> bytes:
        try:
            return await asyncio.wait_for(op, self.timeout)
        except TimeoutError:
            raise WebDownloadError(f"no data for {self.timeout:g} s") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            raise WebDownloadError(f"the download broke off: {exc}") from None

    def close(self) -> None:
        """Drop the connection."""
        self.writer.close()


async def open_download(uri: str, filt: UriFilter, timeout: float) -> Download:
    """Connect to ``uri`` (following redirects); return the 200 answer's body stream."""
    target = filt.check(uri)
    for _ in range(MAX_REDIRECTS + 1):
        reader, writer = await _connect(target, await filt.resolve(target, timeout), timeout)
        try:
            status, headers = await _exchange(reader, writer, target, timeout)
        except BaseException:
            writer.close()
            raise
        if status in _REDIRECTS and "location" in headers:
            writer.close()
            target = filt.check(urljoin(target.uri, headers["location"]))
            continue
        if status != 200:
            writer.close()
            raise WebDownloadError(f"{target.uri} answered {status}")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = None
        if not chunked and "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                writer.close()
                raise WebDownloadError("a malformed Content-Length") from None
        return Download(reader, writer, length, chunked, timeout)
    raise WebDownloadError(f"more than {MAX_REDIRECTS} redirects")


async def _connect(target: Target, address: str, timeout: float
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tls = ssl.create_default_context() if target.scheme == "https" else None
    try:
        return await asyncio.wait_for(asyncio.open_connection(
            address, target.port, ssl=tls, server_hostname=target.host if tls else None,
            limit=MAX_HEAD), timeout)
    except TimeoutError:
        raise WebDownloadError(f"cannot connect to {target.host}: timed out") from None
    except (OSError, ssl.SSLError) as exc:
        raise WebDownloadError(f"cannot connect to {target.host}: {exc}") from None


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    target: Target, timeout: float) -> tuple[int, dict[str, str]]:
    """Send the GET; return the answer's status and (lower-cased) headers."""
    default = _DEFAULT_PORTS.get(target.scheme)
    host = target.host if ":" not in target.host else f"[{target.host}]"
    hostport = host if target.port == default else f"{host}:{target.port}"
    writer.write(f"GET {target.path} HTTP/1.1\r\nHost: {hostport}\r\n"
                 "User-Agent: nubis-image-import\r\nAccept: */*\r\n"
                 "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode("latin-1"))
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except TimeoutError:
        raise WebDownloadError(f"{target.host} sent no answer for {timeout:g} s") from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
        raise WebDownloadError(f"{target.host} sent no usable answer: {exc}") from None
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
        raise WebDownloadError(f"{target.host} does not speak HTTP/1.1")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers
