"""Nova's JSON faults, and microversion negotiation, in one place for the compute API.

Every error under ``/compute`` is ``{"<faultName>": {"code": N, "message": "..."}}``
with Nova's fault names (``badRequest``, ``itemNotFound``, ``conflictingRequest``,
``forbidden``, ``overLimit``, ``computeFault``, ...); a 401 is keystonemiddleware's
``{"error": {...}}``. Unexpected exceptions are logged and answered as a generic
``computeFault`` 500 without a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import falcon
import falcon.asgi
from nubis.api.shared.errors import (
    ApiError,
    BadRequestError,
    NotAcceptableError,
    install_fault_errors,
)

LOG = logging.getLogger("nubis.api.compute")

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)
Version = tuple[int, int]

FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden",
               404: "itemNotFound", 405: "badMethod", 409: "conflictingRequest",
               413: "overLimit", 415: "badMediaType", 429: "overLimit",
               501: "notImplemented", 503: "serviceUnavailable"}


class QuotaExceededError(ApiError):
    """A request would exceed a project quota (Nova answers 403)."""

    status = 403
    title = "Forbidden"


def invalid_field(field: str, why: str) -> BadRequestError:
    """Return Nova's 400 for a request field that fails validation."""
    return BadRequestError(f"Invalid input for field/attribute {field}. {why}")


def fault_body(status: int, message: str) -> bytes:
    """Render Nova's fault document."""
    if status == 401:
        doc: dict[str, Any] = {"error": {"code": 401, "title": "Unauthorized",
                                         "message": message}}
    else:
        doc = {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    return json.dumps(doc).encode()


def install_nova_errors(app: falcon.asgi.App[Any, Any]) -> None:
    """Render every error raised under ``app`` as a Nova fault."""
    install_fault_errors(app, fault_body, LOG, "Unexpected API Error. Please report this "
                         "at https://github.com/nubis and attach the compute API log if "
                         "possible.")


_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def _parse(value: str) -> Version:
    value = value.strip()
    if value.lower() == "latest":
        return MAX_VERSION
    m = _VERSION.match(value)
    if m is None:
        raise BadRequestError(f"Invalid API version request string {value}")
    ver = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= ver <= MAX_VERSION:
        raise NotAcceptableError(
            f"Version {value} is not supported by the API. Minimum is "
            f"{MIN_VERSION[0]}.{MIN_VERSION[1]} and maximum is "
            f"{MAX_VERSION[0]}.{MAX_VERSION[1]}.")
    return ver


def requested_version(new_header: str | None, legacy: str | None) -> Version:
    """Return the microversion a request asks for (``compute X.Y``, else the legacy header)."""
    if new_header:
        for part in new_header.split(","):
            words = part.split(None, 1)
            if len(words) == 2 and words[0].lower() == "compute":
                return _parse(words[1])
    if legacy:
        return _parse(legacy)
    return MIN_VERSION


class Microversions:
    """Negotiate the compute microversion; echo it in both headers with ``Vary``."""

    def __init__(self, prefix: str) -> None:
        self.api_prefix = f"{prefix}/v2.1"

    async def process_request(self, req: falcon.asgi.Request,
                              resp: falcon.asgi.Response) -> None:
        """Store ``req.context.mv`` (406 outside 2.1-2.96)."""
        req.context.mv = MIN_VERSION
        req.context.request_id = f"req-{uuid.uuid4()}"
        if req.path.startswith(self.api_prefix):
            req.context.mv = requested_version(req.get_header("OpenStack-API-Version"),
                                               req.get_header("X-OpenStack-Nova-API-Version"))

    async def process_response(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                               resource: Any, ok: bool) -> None:
        """Echo the version (the request's, or 2.1 when it was refused)."""
        request_id = getattr(req.context, "request_id", "")
        if request_id:
            resp.set_header("X-OpenStack-Request-ID", request_id)
            resp.set_header("X-Compute-Request-ID", request_id)
        if not req.path.startswith(self.api_prefix):
            return
        major, minor = getattr(req.context, "mv", MIN_VERSION)
        resp.set_header("OpenStack-API-Version", f"compute {major}.{minor}")
        resp.set_header("X-OpenStack-Nova-API-Version", f"{major}.{minor}")
        resp.set_header("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")
