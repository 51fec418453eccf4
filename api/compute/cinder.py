"""The compute API's client of the volume API (Cinder v3 attachments, 3.44).

Calls go with the caller's token to ``/volume/v3`` of this cloud; Cinder's faults
come back as :class:`CinderError` with its status and message, for the handlers
to turn into Nova's.
"""

from __future__ import annotations

import json
from typing import Any

from nubis.api.compute.clients import PeerError, call
from nubis.common.httpclient import HTTPClient

CINDER_VERSION = "volume 3.44"


class CinderError(PeerError):
    """The volume API refused a call (``status`` is its HTTP status, 0 if unreachable)."""


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def fault_message(raw: bytes) -> str:
    """Return the message of an OpenStack JSON fault (else the start of the body)."""
    doc = _json(raw)
    if isinstance(doc, dict) and doc:
        inner = next(iter(doc.values()))
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
    return raw[:300].decode(errors="replace")


class CinderClient:
    """Attachments and volume listings of the volume API."""

    def __init__(self, http: HTTPClient, url: str) -> None:
        self.http = http
        #: ``http://host:port/volume/v3``.
        self.url = url

    async def request(self, token: str, method: str, path: str, body: Any = None) -> Any:
        """Send one call; return the parsed answer or raise CinderError."""
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": CINDER_VERSION}
        try:
            status, raw = await call(self.http, self.url, method, path, headers, body)
        except PeerError as exc:
            raise CinderError(str(exc)) from None
        if status >= 400:
            raise CinderError(fault_message(raw), status)
        return _json(raw)

    async def attachments(self, token: str, instance_id: str,
                          volume_id: str | None = None) -> list[dict[str, Any]]:
        """Return an instance's attachments (of one volume when given)."""
        query = f"?instance_id={instance_id}"
        if volume_id:
            query += f"&volume_id={volume_id}"
        doc = await self.request(token, "GET", f"/attachments{query}")
        return list((doc or {}).get("attachments") or [])

    async def release(self, token: str, instance_id: str) -> int:
        """Delete every attachment of a (deleted) instance; return how many."""
        atts = await self.attachments(token, instance_id)
        for att in atts:
            await self.request(token, "DELETE", f"/attachments/{att['id']}")
        return len(atts)


def cinder_for(http: HTTPClient, compute_root_url: str) -> CinderClient:
    """Return the client of the volume API mounted beside compute in ``nubis api``."""
    return CinderClient(http, compute_root_url.rsplit("/compute", 1)[0] + "/volume/v3")
