"""Falcon helpers every OpenStack-style REST service shares.

* :func:`read_json` -- the request body as safe JSON (bounded, strict UTF-8, see
  :mod:`nubis.common.jsonbody`), 400 when absent, malformed or too large;
* :class:`MicroversionMiddleware` -- ``OpenStack-API-Version: <service> X.Y``
  negotiation (``latest`` = the newest), stored in ``req.context.mv`` and echoed
  on the response with ``Vary``;
* :func:`error_body` -- the API-WG error document ``{"errors": [{status, title,
  detail, code, request_id}]}`` (Placement, Cinder, ...).

Errors are raised as :class:`~nubis.api.shared.errors.ApiError` subclasses; each
service renders them in its own error shape (one handler per API).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError, NotAcceptableError
from nubis.common.jsonbody import JSONBodyError, parse_json

#: Largest JSON body :func:`read_json` accepts by default.
MAX_BODY = 1024 * 1024

Version = tuple[int, int]


async def read_json(req: falcon.asgi.Request, max_bytes: int = MAX_BODY) -> Any:
    """Return the JSON request body (400 when absent, malformed or too large)."""
    raw = await req.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise BadRequestError("Request body too large")
    if not raw.strip():
        raise BadRequestError("JSON body required")
    try:
        return parse_json(raw)
    except JSONBodyError as exc:
        raise BadRequestError(str(exc)) from None


def parse_microversion(header: str | None, service: str, minimum: Version,
                       maximum: Version) -> Version:
    """Return the microversion ``header`` asks of ``service`` (default ``minimum``).

    Raises:
        NotAcceptableError: a version outside ``minimum..maximum`` (406).
        BadRequestError: a malformed version for ``service`` (400).
    """
    if not header:
        return minimum
    pattern = re.compile(rf"^\s*{re.escape(service)}\s+(latest|\d+\.\d+)\s*$", re.IGNORECASE)
    for part in header.split(","):
        m = pattern.match(part)
        if m is None:
            continue
        if m.group(1).lower() == "latest":
            return maximum
        major, minor = (int(x) for x in m.group(1).split("."))
        if not minimum <= (major, minor) <= maximum:
            raise NotAcceptableError(f"Unacceptable version header: {m.group(1)}")
        return major, minor
    if service in header.lower():
        raise BadRequestError(f"invalid version string: {header}")
    return minimum


class MicroversionMiddleware:
    """Negotiate ``OpenStack-API-Version`` for the routes under ``prefix``."""

    def __init__(self, service: str, prefix: str, minimum: Version,
                 maximum: Version) -> None:
        self.service = service
        self.prefix = prefix
        self.minimum = minimum
        self.maximum = maximum

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Store ``req.context.mv``."""
        req.context.mv = self.minimum
        if req.path.startswith(self.prefix):
            req.context.mv = parse_microversion(req.get_header("OpenStack-API-Version"),
                                                self.service, self.minimum, self.maximum)

    async def process_response(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, ok: bool) -> None:
        """Add the version headers."""
        if not req.path.startswith(self.prefix):
            return
        mv = getattr(req.context, "mv", self.minimum)
        resp.set_header("OpenStack-API-Version", f"{self.service} {mv[0]}.{mv[1]}")
        resp.set_header("Vary", "openstack-api-version")


def error_body(status: int, title: str, detail: str, code: str) -> dict[str, Any]:
    """Return the API-WG error document (Placement's error JSON)."""
    return {"errors": [{"status": status, "title": title, "detail": detail, "code": code,
                        "request_id": f"req-{uuid.uuid4()}"}]}
