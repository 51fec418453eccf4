"""The metadata proxy: ``169.254.169.254:80`` inside each DHCP namespace, relayed to compute.

The agent opens the listening socket *inside* the namespace (``setns`` around
``socket()``/``bind()`` only; a socket keeps the namespace it was made in) and serves
it from its own event loop in the root namespace. A guest's request is matched to
its instance by the source address on that subnet (the port's ``device_id``) and
relayed over loopback to the compute API's metadata endpoint with the compute
service token; an address without an instance gets a 404. Only ``GET`` of bounded
requests is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from nubis.common.httpclient import HTTPClient, HTTPClientError
from nubis.daemons.network.linux import METADATA_IP
from pyroute2 import netns

LOG = logging.getLogger("nubis.daemons.network")
MAX_HEAD = 8192
#: Instance id for (subnet id, guest address), or None.
Lookup = Callable[[str, str], str | None]


@dataclass(frozen=True)
class Upstream:
    """Where the compute API's metadata endpoint is and the token it wants."""

    host: str
    port: int
    path: str
    token: str

    @classmethod
    def parse(cls, url: str, token: str) -> Upstream:
        """Split ``http://host:port/compute`` into its parts."""
        u = urllib.parse.urlsplit(url)
        return cls(u.hostname or "127.0.0.1", u.port or 80, u.path.rstrip("/"), token)


def listen_in(namespace: str, port: int = 80) -> socket.socket:
    """Return a listening TCP socket on the metadata address inside ``namespace``."""
    netns.pushns(namespace)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((METADATA_IP, port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
    finally:
        netns.popns()
    return sock


class MetadataProxy:
    """One listening server per DHCP namespace, all relaying to one upstream."""

    def __init__(self, upstream: Upstream, lookup: Lookup, http: HTTPClient) -> None:
        self.upstream = upstream
        self.lookup = lookup
        self.http = http
        self.servers: dict[str, asyncio.Server] = {}

    async def ensure(self, subnet_id: str, namespace: str) -> bool:
        """Serve a subnet's namespace (idempotent); return whether it was started now."""
        if subnet_id in self.servers:
            return False
        sock = listen_in(namespace)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(subnet_id, reader, writer)

        self.servers[subnet_id] = await asyncio.start_server(handle, sock=sock)
        return True

    async def stop(self, subnet_id: str) -> None:
        """Stop serving a subnet."""
        server = self.servers.pop(subnet_id, None)
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def stop_all(self) -> None:
        """Stop every server."""
        for subnet_id in list(self.servers):
            await self.stop(subnet_id)

    async def _serve(self, subnet_id: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await self._answer(subnet_id, reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError):
            status, ctype, body = 400, "text/plain", b"Bad Request\n"
        head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        with contextlib.suppress(OSError):
            writer.write(head + body)
            await writer.drain()
            writer.close()

    async def _answer(self, subnet_id: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> tuple[int, str, bytes]:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if len(raw) > MAX_HEAD:
            return 400, "text/plain", b"Bad Request\n"
        method, path, _version = raw.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method != "GET" or not path.startswith("/") or ".." in path:
            return 405, "text/plain", b"Method Not Allowed\n"
        peer = writer.get_extra_info("peername")
        guest_ip = str(peer[0]) if peer else ""
        instance = self.lookup(subnet_id, guest_ip)
        if instance is None:
            return 404, "text/plain", b"Not Found\n"
        return await self._relay(path, instance, guest_ip)

    async def _relay(self, path: str, instance: str, guest_ip: str) -> tuple[int, str, bytes]:
        up = self.upstream
        headers = [("X-Service-Token", up.token), ("X-Instance-ID", instance),
                   ("X-Forwarded-For", guest_ip)]
        try:
            resp = await self.http.request(up.host, up.port, "GET",
                                           f"{up.path}/metadata{path}", headers, b"",
                                           timeout=30)
            body = await resp.read()
        except (HTTPClientError, OSError, TimeoutError) as exc:
            LOG.warning("metadata relay for %s failed: %s", instance, exc)
            return 502, "text/plain", b"Bad Gateway\n"
        ctype = resp.headers.get("content-type", "text/plain")
        return resp.status, ctype, body
