"""A small typed async client for the object store, as the image service's account.

Like Glance's single-tenant Swift store: the service user (``[image]
service_user`` in ``service_project``) logs in to identity with its password,
takes the ``object-store`` endpoint from its token's catalog (interface
``internal``) and keeps the token until shortly before it expires. Requests go
over HTTP to the proxy through the pooled :class:`~nubis.common.httpclient.HTTPClient`:
streaming PUT (``Content-Length`` when known, chunked otherwise), SLO manifest
PUT, streaming GET with ranges, DELETE. Nothing imports the proxy.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from nubis.common.errors import NubisError
from nubis.common.httpclient import ClientResponse, Exchange, HTTPClient, HTTPClientError

#: Re-authenticate when the token has less than this many seconds left.
TOKEN_MARGIN = 300.0


class StoreError(NubisError):
    """The object store refused or failed a request (``status`` 0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """An ``http://host:port/path`` URL split for the HTTP client."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Split ``url`` (only ``http``: every nubis service is on loopback or a LAN)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise StoreError(f"unsupported object-store or identity URL: {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))


@dataclass(frozen=True)
class Login:
    """A token of the service user and the storage URL it may use."""

    token: str
    storage: Endpoint
    expires_at: float


@dataclass(frozen=True)
class ServiceCredentials:
    """How the image service logs in (from ``[image]``)."""

    auth_url: str
    user: str
    password: str
    project: str
    domain: str = "Default"
    swift_url: str = ""


class ServiceAuth:
    """Password login of the service user; the token is cached until near expiry."""

    def __init__(self, http: HTTPClient, creds: ServiceCredentials) -> None:
        self.http = http
        self.creds = creds
        self._login: Login | None = None

    def forget(self) -> None:
        """Drop the cached token (after the object store refused it)."""
        self._login = None

    async def login(self) -> Login:
        """Return a live token and storage URL, logging in when needed."""
        if self._login is not None and self._login.expires_at - time.time() > TOKEN_MARGIN:
            return self._login
        c = self.creds
        ident = Endpoint.parse(c.auth_url)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": c.user, "domain": {"name": c.domain}, "password": c.password}}},
            "scope": {"project": {"name": c.project, "domain": {"name": c.domain}}}}}
        try:
            resp = await self.http.fetch(
                ident.host, ident.port, "POST", f"{ident.path}/auth/tokens",
                {"Content-Type": "application/json"}, json.dumps(body).encode())
        except HTTPClientError as exc:
            raise StoreError(f"identity unreachable: {exc}") from None
        if resp.status != 201:
            raise StoreError(f"service login refused by identity ({resp.status})", resp.status)
        token = json.loads(resp.body)["token"]
        url = c.swift_url or _catalog_url(token, "object-store")
        expires = _parse_expiry(token.get("expires_at", ""))
        self._login = Login(resp.headers["x-subject-token"], Endpoint.parse(url), expires)
        return self._login


def _catalog_url(token: dict[str, Any], service_type: str) -> str:
    for service in token.get("catalog", []):
        if service.get("type") != service_type:
            continue
        by_interface = {ep.get("interface"): ep.get("url") for ep in service["endpoints"]}
        url = by_interface.get("internal") or by_interface.get("public")
        if url:
            return str(url)
    raise StoreError(f"no {service_type} endpoint in the service user's catalog")


def _parse_expiry(text: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 600


def quote(name: str) -> str:
    """Quote an object or container name for a request path."""
    return urllib.parse.quote(name, safe="")


class Upload:
    """One streaming object PUT in progress."""

    def __init__(self, exchange: Exchange, name: str) -> None:
        self.exchange = exchange
        self.name = name

    async def write(self, data: bytes) -> None:
        """Send a piece of the object."""
        try:
            await self.exchange.write(data)
        except HTTPClientError as exc:
            raise StoreError(f"object store dropped the upload of {self.name}: {exc}") from None

    async def finish(self) -> str:
        """End the body; return the object's ETag (the store's MD5 of what it got)."""
        try:
            await self.exchange.finish()
            resp = await self.exchange.response()
            await resp.read()
        except HTTPClientError as exc:
            raise StoreError(f"object store failed the upload of {self.name}: {exc}") from None
        if resp.status != 201:
            raise StoreError(f"object store refused {self.name}: {resp.status}", resp.status)
        return resp.headers.get("etag", "").strip('"')

    def abort(self) -> None:
        """Drop the connection so the store commits nothing."""
        self.exchange.abort()


class SwiftClient:
    """Objects of the service account's image container."""

    def __init__(self, http: HTTPClient, auth: ServiceAuth, container: str) -> None:
        self.http = http
        self.auth = auth
        self.container = container
        self._container_ready = False
        self._max_file_size: int | None = None

    async def _headers(self, extra: dict[str, str] | None = None) -> tuple[Login, dict[str, str]]:
        login = await self.auth.login()
        return login, {"X-Auth-Token": login.token, **(extra or {})}

    def _path(self, login: Login, name: str = "") -> str:
        base = f"{login.storage.path}/{quote(self.container)}"
        return f"{base}/{quote(name)}" if name else base

    async def _call(self, method: str, name: str, headers: dict[str, str] | None = None,
                    body: bytes = b"", query: str = "") -> ClientResponse:
        """Send one small request, logging in again once if the token was refused."""
        for attempt in range(2):
            login, hdrs = await self._headers(headers)
            path = self._path(login, name) + (f"?{query}" if query else "")
            try:
                resp = await self.http.fetch(login.storage.host, login.storage.port, method,
                                             path, hdrs, body)
            except HTTPClientError as exc:
                raise StoreError(f"object store unreachable: {exc}") from None
            if resp.status != 401 or attempt:
                return resp
            self.auth.forget()
        raise AssertionError("unreachable")  # pragma: no cover

    async def max_file_size(self) -> int:
        """Return the store's largest single object (``/info``; cached)."""
        if self._max_file_size is None:
            login = await self.auth.login()
            try:
                resp = await self.http.fetch(login.storage.host, login.storage.port, "GET",
                                             "/info")
                size = int(json.loads(resp.body)["swift"]["max_file_size"])
            except (HTTPClientError, ValueError, KeyError, TypeError):
                size = 5 * 1024 ** 3  # Swift's default
            self._max_file_size = size
        return self._max_file_size

    async def ensure_container(self) -> None:
        """Create the image container once per process."""
        if self._container_ready:
            return
        resp = await self._call("PUT", "")
        if resp.status not in (201, 202, 204):
            raise StoreError(f"cannot create container {self.container}: {resp.status}",
                             resp.status)
        self._container_ready = True

    async def open_put(self, name: str, length: int | None,
                       headers: dict[str, str] | None = None) -> Upload:
        """Start a streaming PUT of ``name`` (chunked when ``length`` is None)."""
        login, hdrs = await self._headers({"Content-Type": "application/octet-stream",
                                           **(headers or {})})
        try:
            ex = await self.http.open(login.storage.host, login.storage.port, "PUT",
                                      self._path(login, name), hdrs, content_length=length,
                                      fresh=True)
        except HTTPClientError as exc:
            raise StoreError(f"object store unreachable: {exc}") from None
        return Upload(ex, name)

    async def put_manifest(self, name: str, segments: list[dict[str, Any]]) -> str:
        """Write an SLO manifest over ``segments`` (``path``, ``etag``, ``size_bytes``)."""
        resp = await self._call("PUT", name, {"Content-Type": "application/octet-stream"},
                                json.dumps(segments).encode(), "multipart-manifest=put")
        if resp.status != 201:
            raise StoreError(f"object store refused manifest {name}: {resp.status} "
                             f"{resp.body[:200]!r}", resp.status)
        return resp.headers.get("etag", "").strip('"')

    def segment_path(self, name: str) -> str:
        """Return ``/container/name`` as an SLO manifest names a segment."""
        return f"/{self.container}/{name}"

    async def get(self, name: str, range_header: str | None = None) -> ClientResponse:
        """Open a streaming GET of ``name`` (the caller reads or closes the body)."""
        for attempt in range(2):
            login, hdrs = await self._headers({"Range": range_header} if range_header else None)
            try:
                resp = await self.http.request(login.storage.host, login.storage.port, "GET",
                                               self._path(login, name), hdrs)
            except HTTPClientError as exc:
                raise StoreError(f"object store unreachable: {exc}") from None
            if resp.status != 401 or attempt:
                return resp
            await resp.release()
            self.auth.forget()
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, name: str, manifest: bool = False) -> bool:
        """Delete ``name`` (an SLO with its segments when ``manifest``); False if absent."""
        resp = await self._call("DELETE", name,
                                query="multipart-manifest=delete" if manifest else "")
        if resp.status in (200, 204):
            return True
        if resp.status == 404:
            return False
        raise StoreError(f"object store refused to delete {name}: {resp.status}", resp.status)

    async def head(self, name: str) -> int:
        """Return the status of a HEAD on ``name`` (tests and cleanup checks)."""
        return (await self._call("HEAD", name)).status
