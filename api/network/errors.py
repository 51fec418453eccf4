"""Neutron's JSON faults, in one place for the network API.

Every error under ``/network`` is ``{"NeutronError": {"type", "message", "detail"}}``
with Neutron's exception class names as ``type`` (``NetworkNotFound``,
``IpAddressGenerationFailure``, ``InvalidInput``, ...); a 401 is keystonemiddleware's
``{"error": {...}}``. Unexpected exceptions are logged and answered as a generic 500
without a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon
import falcon.asgi
from nubis.api.shared.errors import ApiError, install_fault_errors

LOG = logging.getLogger("nubis.api.network")

#: The ``type`` of errors that carry none of their own, by status.
GENERIC_TYPES = {400: "HTTPBadRequest", 403: "PolicyNotAuthorized", 404: "HTTPNotFound",
                 405: "HTTPMethodNotAllowed", 409: "HTTPConflict", 413: "HTTPRequestEntityTooLarge",
                 415: "HTTPUnsupportedMediaType", 500: "HTTPInternalServerError"}


class NeutronError(ApiError):
    """A Neutron exception: HTTP status, Neutron's class name and its message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def not_found(kind: str, message: str) -> NeutronError:
    """Return a 404 of Neutron type ``kind`` (``NetworkNotFound``, ...)."""
    return NeutronError(404, kind, message)


def network_not_found(net_id: str) -> NeutronError:
    """Return Neutron's NetworkNotFound."""
    return not_found("NetworkNotFound", f"Network {net_id} could not be found.")


def subnet_not_found(subnet_id: str) -> NeutronError:
    """Return Neutron's SubnetNotFound."""
    return not_found("SubnetNotFound", f"Subnet {subnet_id} could not be found.")


def port_not_found(port_id: str) -> NeutronError:
    """Return Neutron's PortNotFound."""
    return not_found("PortNotFound", f"Port {port_id} could not be found.")


def group_not_found(sg_id: str) -> NeutronError:
    """Return Neutron's SecurityGroupNotFound."""
    return not_found("SecurityGroupNotFound", f"Security group {sg_id} does not exist")


def rule_not_found(rule_id: str) -> NeutronError:
    """Return Neutron's SecurityGroupRuleNotFound."""
    return not_found("SecurityGroupRuleNotFound", f"Security group rule {rule_id} does not exist")


def invalid_input(message: str) -> NeutronError:
    """Return Neutron's InvalidInput (400)."""
    return NeutronError(400, "InvalidInput", f"Invalid input for operation: {message}.")


def bad_request(resource: str, message: str) -> NeutronError:
    """Return Neutron's attribute-validation 400 (``HTTPBadRequest``)."""
    return NeutronError(400, "HTTPBadRequest",
                        f"Invalid input for {resource}. Reason: {message}.")


def conflict(kind: str, message: str) -> NeutronError:
    """Return a 409 of Neutron type ``kind``."""
    return NeutronError(409, kind, message)


def policy_denied(action: str) -> NeutronError:
    """Return Neutron's PolicyNotAuthorized (403)."""
    return NeutronError(403, "PolicyNotAuthorized", f"({action}) is disallowed by policy")


def over_quota(resource: str) -> NeutronError:
    """Return Neutron's OverQuota (409)."""
    return NeutronError(409, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")


def fault_body(status: int, kind: str, message: str) -> bytes:
    """Render Neutron's fault document (keystonemiddleware's for a 401)."""
    if status == 401:
        doc: dict[str, Any] = {"error": {"code": 401, "title": "Unauthorized",
                                         "message": message}}
    else:
        doc = {"NeutronError": {"type": kind, "message": message, "detail": ""}}
    return json.dumps(doc).encode()


def install_neutron_errors(app: falcon.asgi.App[Any, Any]) -> None:
    """Render every error raised under ``app`` as a Neutron fault.

    The shared installer does Falcon's 404/405 and the 500; Neutron's own errors
    carry their exception class name (``type``), so their handler is replaced.
    """
    install_fault_errors(
        app, lambda status, message: fault_body(status, GENERIC_TYPES.get(status, "HTTPError"),
                                                message),
        LOG, "Request Failed: internal server error while processing your request.")

    async def on_api_error(req: falcon.asgi.Request, resp: falcon.asgi.Response,
                           ex: ApiError, params: dict[str, Any]) -> None:
        kind = getattr(ex, "kind", None) or GENERIC_TYPES.get(ex.status, "HTTPError")
        resp.status = ex.status
        resp.content_type = "application/json"
        resp.data = fault_body(ex.status, kind, ex.message)
        for key, value in (ex.headers or {}).items():
            resp.set_header(key, value)

    app.add_error_handler(ApiError, on_api_error)
