"""Typed HTTP clients of the compute API's peers: scheduler, image service, compute hosts.

The compute API imports none of them: it talks to the scheduler as Nova's
conductor does (``select_destinations``, allocation release, host list), reads
image records from the image service with the caller's token, and drives compute
daemons over their internal API with the shared service token. All calls go
through the process's pooled :class:`~nubis.common.httpclient.HTTPClient`.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from nubis.common.errors import NubisError
from nubis.common.httpclient import HTTPClient, HTTPClientError


class PeerError(NubisError):
    """A peer refused a call or could not be reached (``status`` 0 when unreachable)."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class NoValidHostError(PeerError):
    """The scheduler found no host; the message names the filters and counts."""


@dataclass(frozen=True)
class Endpoint:
    """A peer's base URL split for the HTTP client."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Split ``http://host:port/base``."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http URL: {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))


async def call(http: HTTPClient, url: str, method: str, path: str,
               headers: dict[str, str], body: Any = None,
               timeout: float | None = 60.0) -> tuple[int, bytes]:
    """Send one JSON request; return (status, body). Raises PeerError when unreachable."""
    ep = Endpoint.parse(url)
    data = b"" if body is None else json.dumps(body).encode()
    hdrs = {"Accept": "application/json", **headers}
    if body is not None:
        hdrs["Content-Type"] = "application/json"
    try:
        resp = await http.request(ep.host, ep.port, method, f"{ep.path}{path}",
                                  list(hdrs.items()), data, timeout=timeout)
        raw = await resp.read()
    except (HTTPClientError, OSError, TimeoutError) as exc:
        raise PeerError(f"{url} unreachable: {exc or type(exc).__name__}") from None
    return resp.status, raw


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _message(raw: bytes) -> str:
    doc = _json(raw)
    if isinstance(doc, dict) and doc:
        inner = next(iter(doc.values()))
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
        if isinstance(inner, list) and inner and isinstance(inner[0], dict):
            return str(inner[0].get("detail", inner[0]))
    return raw[:300].decode(errors="replace")


class SchedulerClient:
    """``select_destinations``, allocation release and the host list."""

    def __init__(self, http: HTTPClient, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.headers = {"X-Service-Token": token}
        self._hosts: dict[str, dict[str, Any]] = {}
        self._hosts_at = 0.0

    async def select(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Place and claim; return the selections or raise NoValidHostError."""
        status, raw = await call(self.http, self.url, "POST", "/v1/select_destinations",
                                 self.headers, {"request_spec": spec}, timeout=120)
        doc = _json(raw)
        if status == 409 and isinstance(doc, dict) and "noValidHost" in doc:
            nvh = doc["noValidHost"]
            raise NoValidHostError(no_valid_host_message(nvh), status, nvh)
        if status != 200 or not isinstance(doc, dict):
            raise PeerError(f"scheduler: {status} {_message(raw)}", status)
        dests: list[dict[str, Any]] = doc["destinations"]
        return dests

    async def release(self, uuid: str) -> None:
        """Release an instance's allocations (idempotent)."""
        status, raw = await call(self.http, self.url, "DELETE", f"/v1/instances/{uuid}",
                                 self.headers)
        if status not in (200, 204, 404):
            raise PeerError(f"scheduler release: {status} {_message(raw)}", status)

    async def hosts(self, max_age: float = 5.0) -> dict[str, dict[str, Any]]:
        """Return the compute hosts by name (cached ``max_age`` seconds)."""
        if time.monotonic() - self._hosts_at > max_age:
            status, raw = await call(self.http, self.url, "GET", "/v1/hosts", self.headers)
            doc = _json(raw)
            if status != 200 or not isinstance(doc, dict):
                raise PeerError(f"scheduler hosts: {status} {_message(raw)}", status)
            self._hosts = {h["host"]: h for h in doc["hosts"]}
            self._hosts_at = time.monotonic()
        return self._hosts


def no_valid_host_message(nvh: dict[str, Any]) -> str:
    """Return Nova's NoValidHost text with the per-filter counts."""
    reason = str(nvh.get("message") or "").strip()
    text = reason if reason.startswith("No valid host") else (
        f"No valid host was found. {reason}".strip())
    missing = [f"{f['name']} removed {f['removed']} of {f['entered']} hosts"
               for f in nvh.get("filters") or []
               if f.get("removed") and str(f.get("name")) not in reason]
    if missing:
        text += " (" + "; ".join(missing) + ")"
    return text


class ImageClient:
    """Image records from the image service, read with the caller's token."""

    def __init__(self, http: HTTPClient, url: str) -> None:
        self.http = http
        self.url = url

    async def get(self, image_id: str, token: str) -> dict[str, Any] | None:
        """Return the image record, or None when the caller cannot see it."""
        status, raw = await call(self.http, self.url, "GET",
                                 f"/v2/images/{urllib.parse.quote(image_id, safe='')}",
                                 {"X-Auth-Token": token})
        if status == 404:
            return None
        doc = _json(raw)
        if status != 200 or not isinstance(doc, dict):
            raise PeerError(f"image service: {status} {_message(raw)}", status)
        return doc


    async def create(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        """Create an image record (``queued``); return it."""
        status, raw = await call(self.http, self.url, "POST", "/v2/images",
                                 {"X-Auth-Token": token}, body)
        doc = _json(raw)
        if status != 201 or not isinstance(doc, dict):
            raise PeerError(f"image service: {status} {_message(raw)}", status)
        return doc

    async def delete(self, image_id: str, token: str) -> None:
        """Delete an image record (idempotent)."""
        status, raw = await call(self.http, self.url, "DELETE",
                                 f"/v2/images/{urllib.parse.quote(image_id, safe='')}",
                                 {"X-Auth-Token": token})
        if status not in (204, 404):
            raise PeerError(f"image service: {status} {_message(raw)}", status)


class ComputeClient:
    """The internal API of the compute daemons."""

    def __init__(self, http: HTTPClient, token: str, build_timeout: float,
                 action_timeout: float) -> None:
        self.http = http
        self.headers = {"X-Service-Token": token}
        self.build_timeout = build_timeout
        self.action_timeout = action_timeout

    async def _call(self, url: str, method: str, path: str, body: Any = None,
                    timeout: float | None = 60.0) -> tuple[int, bytes]:
        status, raw = await call(self.http, url, method, path, self.headers, body, timeout)
        if status >= 400 and not (status == 404 and method == "DELETE"):
            raise PeerError(_message(raw), status, _json(raw))
        return status, raw

    async def build(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """Build an instance on the host at ``url``; return its answer."""
        _status, raw = await self._call(url, "POST", "/v1/instances", body, self.build_timeout)
        doc: dict[str, Any] = _json(raw) or {}
        return doc

    async def action(self, url: str, uuid: str, action: str, hard: bool = False) -> int:
        """Run ``start``/``stop``/``reboot``; return the power state after it."""
        _status, raw = await self._call(url, "POST", f"/v1/instances/{uuid}/{action}",
                                        {"hard": hard}, self.action_timeout)
        return int((_json(raw) or {}).get("power_state", 0))

    async def lifecycle(self, url: str, uuid: str, action: str, body: dict[str, Any],
                        timeout: float | None = None) -> dict[str, Any]:
        """Run a lifecycle action (pause, resize, snapshot, ...); return the host's answer."""
        _status, raw = await self._call(url, "POST", f"/v1/instances/{uuid}/{action}", body,
                                        timeout or self.action_timeout)
        doc: dict[str, Any] = _json(raw) or {}
        return doc

    async def power_state(self, url: str, uuid: str) -> int:
        """Return the power state of an instance."""
        _status, raw = await self._call(url, "GET", f"/v1/instances/{uuid}")
        return int((_json(raw) or {}).get("power_state", 0))

    async def instances(self, url: str) -> dict[str, int]:
        """Return the host's instances and their power states."""
        _status, raw = await self._call(url, "GET", "/v1/instances")
        doc = _json(raw) or {}
        return {str(k): int(v) for k, v in (doc.get("instances") or {}).items()}

    async def delete(self, url: str, uuid: str) -> None:
        """Destroy and remove an instance (idempotent)."""
        await self._call(url, "DELETE", f"/v1/instances/{uuid}", timeout=self.action_timeout)

    async def console(self, url: str, uuid: str) -> str:
        """Return the serial console log."""
        _status, raw = await self._call(url, "GET", f"/v1/instances/{uuid}/console")
        return raw.decode(errors="replace")

    async def host(self, url: str) -> dict[str, Any]:
        """Return the hypervisor facts of the host."""
        _status, raw = await self._call(url, "GET", "/v1/host")
        doc: dict[str, Any] = _json(raw) or {}
        return doc
