"""Typed HTTP clients of the volume API's peers: the volume daemon and the image service.

The volume API imports neither: it drives the volume daemon over its internal
API with the shared service token and reads image records with the caller's
token, through the process's pooled :class:`~nubis.common.httpclient.HTTPClient`.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from nubis.common.errors import NubisError
from nubis.common.httpclient import HTTPClient, HTTPClientError


class PeerError(NubisError):
    """A peer refused a call or could not be reached (``status`` 0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _split(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http URL: {url!r}")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


def _message(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace")
    if isinstance(doc, dict) and doc:
        inner = next(iter(doc.values()))
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
    return raw[:300].decode(errors="replace")


class JsonPeer:
    """One JSON-over-HTTP peer at a base URL."""

    def __init__(self, http: HTTPClient, url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.url = url
        self.headers = headers

    async def call(self, method: str, path: str, body: Any = None, *,
                   headers: dict[str, str] | None = None,
                   timeout: float | None = 60.0) -> tuple[int, Any]:
        """Send one request; return (status, parsed JSON or None). PeerError if unreachable."""
        host, port, base = _split(self.url)
        hdrs = {"Accept": "application/json", **self.headers, **(headers or {})}
        data = b"" if body is None else json.dumps(body).encode()
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            resp = await self.http.request(host, port, method, f"{base}{path}",
                                           list(hdrs.items()), data, timeout=timeout)
            raw = await resp.read()
        except (HTTPClientError, OSError, TimeoutError) as exc:
            raise PeerError(f"{self.url} unreachable: {exc or type(exc).__name__}") from None
        if resp.status >= 400:
            raise PeerError(_message(raw), resp.status)
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, None


class VolumeDaemonClient(JsonPeer):
    """The internal API of a volume daemon (see ``nubis.daemons.volume.server``)."""

    def __init__(self, http: HTTPClient, url: str, token: str, timeout: float) -> None:
        super().__init__(http, url, {"X-Service-Token": token})
        self.timeout = timeout

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a volume file; return the daemon's answer."""
        _, doc = await self.call("POST", "/v1/volumes", body, timeout=self.timeout)
        return dict(doc or {})

    async def delete(self, volume_id: str) -> None:
        """Delete a volume file (idempotent)."""
        await self.call("DELETE", f"/v1/volumes/{volume_id}", timeout=self.timeout)

    async def action(self, volume_id: str, action: str, body: dict[str, Any]) -> Any:
        """Run ``extend``, ``snapshots``, ``revert``, ``backup`` or ``restore`` on a volume."""
        _, doc = await self.call("POST", f"/v1/volumes/{volume_id}/{action}", body,
                                 timeout=self.timeout)
        return doc

    async def delete_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Delete a snapshot (idempotent)."""
        await self.call("DELETE", f"/v1/volumes/{volume_id}/snapshots/{snapshot_id}",
                        timeout=self.timeout)

    async def delete_backup(self, body: dict[str, Any]) -> None:
        """Delete a backup's objects."""
        await self.call("POST", "/v1/backups/delete", body, timeout=self.timeout)

    async def connection(self, volume_id: str) -> dict[str, Any]:
        """Return the connection info of a volume (the file to attach)."""
        _, doc = await self.call("GET", f"/v1/volumes/{volume_id}/connection")
        return dict(doc or {})

    async def volumes(self) -> dict[str, Any]:
        """Return the daemon's volume files."""
        _, doc = await self.call("GET", "/v1/volumes")
        return dict((doc or {}).get("volumes") or {})

    async def capacity(self) -> dict[str, Any]:
        """Return the pool's capacity."""
        _, doc = await self.call("GET", "/v1/capacity")
        return dict(doc or {})


class ImageClient(JsonPeer):
    """Image records from the image service, read and written with the caller's token."""

    async def create(self, record: dict[str, Any], token: str) -> dict[str, Any]:
        """Create a queued image record; return it (PeerError with the service's answer)."""
        _, doc = await self.call("POST", "/v2/images", record,
                                 headers={"X-Auth-Token": token})
        return dict(doc or {})

    async def delete(self, image_id: str, token: str) -> None:
        """Delete an image (a failed upload's); a missing one is fine."""
        try:
            await self.call("DELETE", f"/v2/images/{urllib.parse.quote(image_id)}",
                            headers={"X-Auth-Token": token})
        except PeerError as exc:
            if exc.status != 404:
                raise

    async def get(self, image_id: str, token: str) -> dict[str, Any] | None:
        """Return the image record, or None when the caller cannot see it."""
        try:
            _, doc = await self.call("GET", f"/v2/images/{urllib.parse.quote(image_id)}",
                                     headers={"X-Auth-Token": token})
        except PeerError as exc:
            if exc.status in (403, 404):
                return None
            raise
        return dict(doc or {})
