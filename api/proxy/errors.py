"""The proxy's exception tree and its one mapping to Swift-style HTTP answers.

Every error the proxy raises on purpose is an :class:`HTTPError` carrying the
status Swift would answer and a short plain-text body. :func:`error_response`
is the single place that turns any exception into a response triple, so no
client mistake ever becomes a traceback or a 500.
"""

from __future__ import annotations

import logging

from nubis.common.errors import NubisError

log = logging.getLogger("nubis.proxy")

#: Reason phrases for the statuses the proxy answers.
REASONS: dict[int, str] = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    206: "Partial Content", 304: "Not Modified", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
    416: "Requested Range Not Satisfiable", 422: "Unprocessable Entity",
    499: "Client Disconnect", 500: "Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Gateway Timeout",
}

#: Default bodies, worded like Swift's.
DEFAULT_BODIES: dict[int, str] = {
    401: "Unauthorized: this server could not verify that you are authorized "
         "to access the document you requested.",
    403: "Forbidden: access was denied to this resource.",
    404: "Not Found: the resource could not be found.",
    405: "Method Not Allowed: the method is not allowed for this resource.",
    411: "Length Required",
    412: "Precondition Failed: a precondition for this request was not met.",
    413: "Your request is too large.",
    416: "Requested Range Not Satisfiable: the Range requested is not available.",
    422: "Unprocessable Entity: the request body did not match its ETag.",
    499: "Client Disconnect",
    503: "Service Unavailable: the server is currently unavailable. "
         "Please try again at a later time.",
    504: "Gateway Timeout: a storage node did not answer in time.",
}


class ProxyError(NubisError):
    """Base class of every proxy error."""


class HTTPError(ProxyError):
    """An answer that is not a success: status, plain body, extra headers."""

    def __init__(self, status: int, body: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body if body is not None else DEFAULT_BODIES.get(
            status, REASONS.get(status, "Error"))
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.body}")


class ClientDisconnectError(ProxyError):
    """The client went away (or sent less than it announced) mid-request."""


class BackendUnavailableError(ProxyError):
    """Not enough storage nodes answered to reach quorum."""


def error_response(exc: BaseException) -> tuple[int, dict[str, str], bytes]:
    """Turn any exception into ``(status, headers, body)``; the only mapping."""
    if isinstance(exc, HTTPError):
        status, body, headers = exc.status, exc.body, dict(exc.headers)
    elif isinstance(exc, ClientDisconnectError):
        status, body, headers = 499, DEFAULT_BODIES[499], {}
    elif isinstance(exc, BackendUnavailableError):
        status, body, headers = 503, DEFAULT_BODIES[503], {}
    elif isinstance(exc, TimeoutError):
        status, body, headers = 504, DEFAULT_BODIES[504], {}
    else:
        log.exception("unexpected proxy error")
        status, body, headers = 500, "Internal Error: the server failed to answer.", {}
    data = body.encode("utf-8")  # Swift's bodies end without a newline
    headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
    return status, headers, data
