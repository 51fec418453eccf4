"""OpenStack JSON errors for the control-plane APIs, mapped to HTTP in one place.

Every error a control-plane handler raises on purpose is an :class:`ApiError`
(status + title + message). :func:`install_keystone_errors` registers the Falcon
handlers that render them — and Falcon's own errors (unknown route, bad JSON,
wrong method) and anything unexpected — as Keystone's
``{"error": {"code", "title", "message"}}``. Unexpected exceptions become a
generic 500 whose body never carries a traceback; the traceback goes to the log.
Other APIs (Nova's ``{"itemNotFound": {...}}`` shape, ...) add a renderer here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import falcon
import falcon.asgi
from nubis.common.errors import NubisError

LOG = logging.getLogger("nubis.api")


class ApiError(NubisError):
    """A client-visible control-plane error with an HTTP status."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequestError(ApiError):
    """The request body or query is malformed (400)."""

    status = 400
    title = "Bad Request"


class UnauthorizedError(ApiError):
    """No valid credentials were supplied (401)."""

    status = 401
    title = "Unauthorized"

    def __init__(self, message: str = "The request you have made requires authentication.",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers)


class ForbiddenError(ApiError):
    """The caller is known but may not do this (403)."""

    status = 403
    title = "Forbidden"


class NotFoundError(ApiError):
    """The addressed entity does not exist (404)."""

    status = 404
    title = "Not Found"


class MethodNotAllowedError(ApiError):
    """The resource exists but not with this method (405)."""

    status = 405
    title = "Method Not Allowed"


class NotAcceptableError(ApiError):
    """The requested representation or microversion is not offered (406)."""

    status = 406
    title = "Not Acceptable"


class ConflictError(ApiError):
    """The write collides with an existing entity (409)."""

    status = 409
    title = "Conflict"


class PayloadTooLargeError(ApiError):
    """The request body exceeds the size limit (413)."""

    status = 413
    title = "Request Entity Too Large"


class TooManyRequestsError(ApiError):
    """The caller is being rate-limited (429)."""

    status = 429
    title = "Too Many Requests"


def not_found(kind: str, ident: str) -> NotFoundError:
    """Return Keystone's 'Could not find <kind>: <id>.' error."""
    return NotFoundError(f"Could not find {kind}: {ident}.")


def forbidden_action(action: str) -> ForbiddenError:
    """Return Keystone's policy-denial error for ``action``."""
    return ForbiddenError(f"You are not authorized to perform the requested action: {action}.")


def keystone_body(status: int, title: str, message: str) -> bytes:
    """Render Keystone's error document."""
    doc = {"error": {"code": status, "title": title, "message": message}}
    return json.dumps(doc).encode()


def install_keystone_errors(app: falcon.asgi.App[Any, Any], www_authenticate: str) -> None:
    """Render every error raised under ``app`` as Keystone JSON.

    Args:
        app: the identity sub-application.
        www_authenticate: value of the ``WWW-Authenticate`` header on 401s
            (``Keystone uri="<public identity url>"``), as Keystone sends it.
    """

    def finish(resp: falcon.asgi.Response, status: int, title: str, message: str,
               headers: dict[str, str] | None = None) -> None:
        resp.status = status
        resp.content_type = "application/json"
        resp.data = keystone_body(status, title, message)
        for key, value in (headers or {}).items():
            resp.set_header(key, value)
        if status == 401:
            resp.set_header("WWW-Authenticate", www_authenticate)

    async def on_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                           ex: ApiError, params: dict[str, Any]) -> None:
        finish(resp, ex.status, ex.title, ex.message, ex.headers)

    async def on_http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: falcon.HTTPError, params: dict[str, Any]) -> None:
        status = ex.status_code
        title = _STATUS_TITLES.get(status, str(ex.title or "Error"))
        message = str(ex.description or ex.title or title)
        if status == 404 and not ex.description:
            message = "The resource could not be found."
        finish(resp, status, title, message, dict(ex.headers or {}))

    async def on_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: Exception, params: dict[str, Any]) -> None:
        LOG.exception("unexpected error on %s %s", req.method, req.path)
        finish(resp, 500, "Internal Server Error",
               "An unexpected error prevented the server from fulfilling your request.")

    app.add_error_handler(Exception, on_unexpected)
    app.add_error_handler(falcon.HTTPError, on_http_error)
    app.add_error_handler(ApiError, on_api_error)


def install_fault_errors(app: falcon.asgi.App[Any, Any], render: Callable[[int, str], bytes],
                        log: logging.Logger, unexpected: str) -> None:
    """Render every error raised under ``app`` with ``render(status, message)``.

    The shape Nova and Cinder share: ``{"<faultName>": {"code", "message"}}``
    documents (``render`` picks the names), Falcon's own 404/405 with the
    services' wording, and a 500 saying ``unexpected`` (traceback to ``log`` only).
    """

    def finish(resp: falcon.asgi.Response, status: int, message: str,
               headers: dict[str, str] | None = None) -> None:
        resp.status = status
        resp.content_type = "application/json"
        resp.data = render(status, message)
        for key, value in (headers or {}).items():
            resp.set_header(key, value)

    async def on_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                           ex: ApiError, params: dict[str, Any]) -> None:
        finish(resp, ex.status, ex.message, ex.headers)

    async def on_http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: falcon.HTTPError, params: dict[str, Any]) -> None:
        status = ex.status_code
        message = str(ex.description or ex.title or "Error")
        if status == 404 and not ex.description:
            message = "The resource could not be found."
        elif status == 405:
            message = "The method is not allowed for the requested URL."
        finish(resp, status, message, dict(ex.headers or {}))

    async def on_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: Exception, params: dict[str, Any]) -> None:
        log.exception("unexpected error on %s %s", req.method, req.path)
        finish(resp, 500, unexpected)

    app.add_error_handler(Exception, on_unexpected)
    app.add_error_handler(falcon.HTTPError, on_http_error)
    app.add_error_handler(ApiError, on_api_error)


_STATUS_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}
