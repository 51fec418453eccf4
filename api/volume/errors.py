"""Cinder's JSON faults for the volume API, in one place.

Every error under ``/volume`` is ``{"<faultName>": {"code": N, "message": "..."}}``
with Cinder's (webob's) fault names; 413 carries ``retryAfter`` as Cinder's
``overLimit`` does. A 401 is keystonemiddleware's ``{"error": {...}}``. Unexpected
exceptions are logged and answered as a generic ``computeFault`` 500 (Cinder's
name for it) without a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import falcon.asgi
from nubis.api.shared.errors import ApiError, install_fault_errors

LOG = logging.getLogger("nubis.api.volume")

FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden",
               404: "itemNotFound", 405: "badMethod", 406: "notAcceptable",
               409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
               501: "notImplemented", 503: "serviceUnavailable"}


class OverQuotaError(ApiError):
    """A request would exceed a project quota (Cinder answers 413)."""

    status = 413
    title = "Request Entity Too Large"


class InvalidStateError(ApiError):
    """The resource is not in a state that allows the action (Cinder's 400 ``Invalid*``)."""

    status = 400
    title = "Bad Request"


def fault_body(status: int, message: str) -> bytes:
    """Render Cinder's fault document."""
    if status == 401:
        doc: dict[str, Any] = {"error": {"code": 401, "title": "Unauthorized",
                                         "message": message}}
    else:
        inner: dict[str, Any] = {"code": status, "message": message}
        if status == 413:
            inner["retryAfter"] = "0"
        doc = {FAULT_NAMES.get(status, "computeFault"): inner}
    return json.dumps(doc).encode()


def install_cinder_errors(app: falcon.asgi.App[Any, Any]) -> None:
    """Render every error raised under ``app`` as a Cinder fault."""
    install_fault_errors(app, fault_body, LOG, "The server has either erred or is incapable "
                         "of performing the requested operation.")
