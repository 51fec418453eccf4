"""Glance's errors: the exception tree of the image API and its one HTTP mapping.

Handlers raise :class:`~nubis.api.shared.errors.ApiError` subclasses (the shared tree,
plus the two statuses only Glance uses here). :func:`install_glance_errors`
renders every error as Glance does — webob's error page, negotiated on
``Accept`` between HTML (the default, also for ``*/*``), JSON
(``{"message", "code": "404 Not Found", "title"}``) and plain text — and turns
anything unexpected into a 500 without a traceback.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

import falcon
import falcon.asgi
import sqlalchemy as sa
from nubis.api.shared.errors import ApiError

LOG = logging.getLogger("nubis.api.image")


class GoneError(ApiError):
    """The image went away while its data was being uploaded (410)."""

    status = 410
    title = "Gone"


class UnsupportedMediaTypeError(ApiError):
    """The request body has a media type this resource does not take (415)."""

    status = 415
    title = "Unsupported Media Type"


class RangeNotSatisfiableError(ApiError):
    """A ``Range`` outside the image (416)."""

    status = 416
    title = "Requested Range Not Satisfiable"


class ServiceUnavailableError(ApiError):
    """The object store could not take or give the image data (503)."""

    status = 503
    title = "Service Unavailable"


class NoContent(ApiError):  # noqa: N818 - a status, as webob names it
    """The image has no data (Glance answers ``204 No Content`` to a download)."""

    status = 204
    title = "No Content"


TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 411: "Length Required",
          413: "Request Entity Too Large", 415: "Unsupported Media Type",
          416: "Requested Range Not Satisfiable", 500: "Internal Server Error",
          503: "Service Unavailable"}


def _media(accept: str) -> str:
    """Pick webob's error format: text/html, application/json, else text/plain."""
    best, best_q = "text/plain", 0.0
    for part in accept.split(","):
        kind, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = kind.strip().lower()
        for offer in ("text/html", "application/json"):
            matches = kind in (offer, "*/*", offer.split("/")[0] + "/*")
            if matches and q > best_q:
                best, best_q = offer, q
                break
    return best


def render(status: int, message: str, accept: str) -> tuple[str, bytes]:
    """Return ``(content type, body)`` of Glance's error page for ``status``."""
    title = TITLES.get(status, "Error")
    line = f"{status} {title}"
    media = _media(accept or "*/*")
    if media == "application/json":
        doc = {"message": f"{message}\n\n\n\n", "code": line, "title": title}
        return "application/json", json.dumps(doc).encode()
    if media == "text/html":
        page = (f"<html>\n <head>\n  <title>{line}</title>\n </head>\n <body>\n  <h1>{line}"
                f"</h1>\n  {html.escape(message)}<br /><br />\n\n\n\n </body>\n</html>")
        return "text/html; charset=UTF-8", page.encode()
    return "text/plain; charset=UTF-8", f"{line}\n\n{message}\n\n\n\n".encode()


def install_glance_errors(app: falcon.asgi.App[Any, Any]) -> None:
    """Render every error raised under ``app`` as Glance does."""

    def finish(req: falcon.asgi.Request, resp: falcon.asgi.Response, status: int,
               message: str, headers: dict[str, str] | None = None) -> None:
        resp.status = status
        for key, value in (headers or {}).items():
            resp.set_header(key, value)
        if status == 204:
            resp.data = b""
            return
        resp.content_type, resp.data = render(status, message, req.get_header("Accept") or "")

    async def on_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                           ex: ApiError, params: dict[str, Any]) -> None:
        finish(req, resp, ex.status, ex.message, ex.headers)

    async def on_http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: falcon.HTTPError, params: dict[str, Any]) -> None:
        status = ex.status_code
        default = "The resource could not be found." if status == 404 else TITLES.get(
            status, "Error")
        finish(req, resp, status, str(ex.description or default), dict(ex.headers or {}))

    async def on_unstorable(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: sa.exc.DataError, params: dict[str, Any]) -> None:
        LOG.info("refused a value on %s %s: %s", req.method, req.path, ex.orig)
        finish(req, resp, 400, "Invalid input: a value cannot be stored "
               "(NUL character, too long or out of range).")

    async def on_unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            ex: Exception, params: dict[str, Any]) -> None:
        LOG.exception("unexpected error on %s %s", req.method, req.path)
        finish(req, resp, 500, "The server has either erred or is incapable of performing "
               "the requested operation.")

    app.add_error_handler(Exception, on_unexpected)
    app.add_error_handler(sa.exc.DataError, on_unstorable)
    app.add_error_handler(falcon.HTTPError, on_http_error)
    app.add_error_handler(ApiError, on_api_error)
