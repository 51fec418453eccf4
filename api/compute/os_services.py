"""``/os-services``: list the compute services, disable them or force them down.

Every compute host the scheduler knows has a ``nova-compute`` service; the
scheduler (``nova-scheduler``) and this API process, which plays Nova's
conductor (``nova-conductor``), are listed in the ``internal`` zone, as Nova
lists them. What an operator sets on a ``nova-compute`` service -- disabled
(with a reason) or forced down -- is kept by the scheduler, which then leaves
that host out of scheduling as Nova's ComputeFilter does; a forced-down
service also shows as ``down``.

Updates come in Nova's two shapes: from microversion 2.53
``PUT /os-services/{uuid}`` with ``status``/``disabled_reason``/``forced_down``,
and before it ``PUT /os-services/{enable|disable|disable-log-reason|force-down}``
naming ``host`` and ``binary`` (``force-down`` from 2.11). ``DELETE
/os-services/{id}`` makes the scheduler forget a compute host that runs no
instances (its daemon, if it still runs, registers it again, as in Nova).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import falcon
import falcon.asgi
from nubis.api.compute import schema
from nubis.api.compute.admin import (
    INTERNAL_SERVICES,
    INTERNAL_ZONE,
    compute_hosts,
    control_host,
    stable_id,
)
from nubis.api.compute.clients import PeerError, call
from nubis.api.compute.servers import ServiceUnavailableError
from nubis.api.compute.service import ComputeService, mv_of
from nubis.api.shared.errors import BadRequestError, ConflictError, NotFoundError
from nubis.api.shared.rest import read_json

COMPUTE = "nova-compute"
_LEGACY_ACTIONS = ("enable", "disable", "disable-log-reason", "force-down")
_MAX_REASON = 255


def _reason(body: dict[str, Any]) -> str | None:
    """Return ``disabled_reason`` of a body (1-255 characters) or None."""
    if "disabled_reason" not in body:
        return None
    reason = body["disabled_reason"]
    if not isinstance(reason, str) or not 1 <= len(reason) <= _MAX_REASON:
        raise BadRequestError("Invalid input for field/attribute disabled_reason. "
                              "Value must be a string of 1-255 characters.")
    return reason


def _allowed(body: Any, fields: set[str]) -> dict[str, Any]:
    """Return ``body`` as a dict, refusing fields Nova's schema does not allow."""
    if not isinstance(body, dict):
        raise BadRequestError("Invalid input: the request body must be an object.")
    extra = sorted(set(body) - fields)
    if extra:
        raise BadRequestError("Additional properties are not allowed "
                              f"('{extra[0]}' was unexpected)")
    return body


def _forced(body: dict[str, Any]) -> bool | None:
    if "forced_down" not in body:
        return None
    if not isinstance(body["forced_down"], bool):
        raise BadRequestError("Invalid input for field/attribute forced_down. "
                              "Value must be a boolean.")
    return bool(body["forced_down"])


class Services:
    """``GET /os-services`` and ``PUT /os-services/{service_id}`` (admin)."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def _rows(self, mv: tuple[int, int]) -> list[dict[str, Any]]:
        """Return every service (ids as Nova's at ``mv``; ``forced_down`` always there)."""
        zones = self.svc.store.host_zones()
        default = self.svc.cfg.default_availability_zone
        out = []
        host = control_host()
        for name in INTERNAL_SERVICES:
            out.append({"id": stable_id(f"svc:{host}:{name}", mv), "binary": name,
                        "host": host, "zone": INTERNAL_ZONE, "status": "enabled",
                        "state": "up", "updated_at": None, "disabled_reason": None,
                        "forced_down": False})
        for h in await compute_hosts(self.svc):
            down = bool(h.get("forced_down", False))
            out.append({"id": stable_id("svc:" + h["host"], mv), "binary": COMPUTE,
                        "host": h["host"], "zone": zones.get(h["host"], default),
                        "status": "enabled" if h.get("enabled", True) else "disabled",
                        "state": "up" if h["up"] and not down else "down",
                        "updated_at": None, "disabled_reason": h.get("disabled_reason"),
                        "forced_down": down})
        return out

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the services, optionally of one ``host`` and/or ``binary``."""
        self.svc.require_admin(req, "os_compute_api:os-services:list")
        binary, host = req.get_param("binary"), req.get_param("host")
        mv = mv_of(req)
        hidden = () if mv >= (2, 11) else ("forced_down",)  # a 2.11 field
        resp.media = {"services": [{k: v for k, v in s.items() if k not in hidden}
                                   for s in await self._rows(mv)
                                   if (not binary or s["binary"] == binary)
                                   and (not host or s["host"] == host)]}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         service_id: str) -> None:
        """Update a ``nova-compute`` service (by id from 2.53, by action before)."""
        self.svc.require_admin(req, "os_compute_api:os-services:update")
        mv = mv_of(req)
        body = await read_json(req)
        if mv >= (2, 53):
            resp.media = {"service": await self._update(service_id, body, mv)}
        else:
            resp.media = {"service": await self._legacy(service_id, body, mv)}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            service_id: str) -> None:
        """Delete a ``nova-compute`` service: the scheduler forgets its host (204).

        Refused (409, Nova's words) while instances live on the host; the control
        services cannot be deleted (400).
        """
        self.svc.require_admin(req, "os_compute_api:os-services:delete")
        row = await self._compute_row(
            service_id, mv_of(req), f"Service {service_id} not found.",
            "{binary} is part of this cloud's control plane and cannot be deleted.")
        if self.svc.store.list_instances(None, where=(schema.instances.c.host == row["host"],)):
            raise ConflictError("Unable to delete compute service that is hosting "
                                "instances. Migrate or delete the instances first.")
        sched = self.svc.scheduler
        try:
            status, raw = await call(sched.http, sched.url, "DELETE",
                                     f"/v1/hosts/{quote(row['host'], safe='')}",
                                     sched.headers)
        except PeerError as exc:
            raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None
        if status == 409:
            raise ConflictError("Unable to delete compute service: the scheduler still "
                                f"holds allocations on host {row['host']}.")
        if status not in (204, 404):
            raise ServiceUnavailableError(
                f"The scheduler refused the delete: {status} {raw[:200]!r}")
        resp.status = falcon.HTTP_204

    async def _compute_row(self, service_id: str, mv: tuple[int, int], missing: str,
                           refused: str) -> dict[str, Any]:
        """Return the ``nova-compute`` service ``service_id``.

        Raises 404 ``missing`` when there is none, 400 ``refused`` (formatted
        with ``{binary}``) for a control service.
        """
        row = {str(r["id"]): r for r in await self._rows(mv)}.get(service_id)
        if row is None:
            raise NotFoundError(missing)
        if row["binary"] != COMPUTE:
            raise BadRequestError(refused.format(binary=row["binary"]))
        return row

    async def _update(self, service_id: str, body: Any, mv: tuple[int, int]
                      ) -> dict[str, Any]:
        """Apply 2.53's ``{status, disabled_reason, forced_down}``; return the service."""
        row = await self._compute_row(
            service_id, mv, f"Service with id {service_id} could not be found.",
            "Updating a {binary} service is not supported. Only nova-compute services can "
            "be updated.")
        body = _allowed(body, {"status", "disabled_reason", "forced_down"})
        status, reason, down = body.get("status"), _reason(body), _forced(body)
        if status not in (None, "enabled", "disabled"):
            raise BadRequestError("Invalid input for field/attribute status. "
                                  f"Value: {status}. '{status}' is not one of "
                                  "['enabled', 'disabled']")
        if status == "enabled" and reason:
            raise BadRequestError("Specifying 'disabled_reason' with status 'enabled' "
                                  "is invalid.")
        if status is None and down is None:
            raise BadRequestError("No updates were requested. Fields 'status' or "
                                  "'forced_down' should be specified.")
        disabled = row["status"] == "disabled" if status is None else status == "disabled"
        reason = (reason if status is not None else row["disabled_reason"]) \
            if disabled else None
        await self._push(row["host"], disabled, reason,
                         row["forced_down"] if down is None else down)
        return {r["host"]: r for r in await self._rows(mv) if r["binary"] == COMPUTE
                }[row["host"]]

    async def _legacy(self, action: str, body: Any, mv: tuple[int, int]) -> dict[str, Any]:
        """Apply a pre-2.53 action naming ``host`` and ``binary``; return Nova's echo."""
        if action not in _LEGACY_ACTIONS or (action == "force-down" and mv < (2, 11)):
            raise NotFoundError("Unknown action")
        fields = {"host", "binary", "disabled_reason"} | (
            {"forced_down"} if mv >= (2, 11) else set())
        body = _allowed(body, fields)
        host, binary = body.get("host"), body.get("binary")
        if not isinstance(host, str) or not isinstance(binary, str):
            raise BadRequestError("Invalid input: 'host' and 'binary' are required strings.")
        rows = [r for r in await self._rows(mv) if r["host"] == host and r["binary"] == binary]
        if not rows:
            raise NotFoundError(f"Could not find binary {binary} on host {host}.")
        row = rows[0]
        if binary != COMPUTE:
            raise BadRequestError(f"Updating a {binary} service is not supported. "
                                  "Only nova-compute services can be updated.")
        reason, down = _reason(body), _forced(body)
        echo: dict[str, Any] = {"host": host, "binary": binary}
        if action == "force-down":
            if down is None:
                raise BadRequestError("Missing forced_down field")
            await self._push(host, row["status"] == "disabled", row["disabled_reason"], down)
            return {**echo, "forced_down": down}
        if action == "disable-log-reason" and reason is None:
            raise BadRequestError("Missing disabled reason field")
        disabled = action != "enable"
        reason = reason if disabled else None
        await self._push(host, disabled, reason, bool(row["forced_down"]))
        echo["status"] = "disabled" if disabled else "enabled"
        if reason:
            echo["disabled_reason"] = reason
        return echo

    async def _push(self, host: str, disabled: bool, reason: str | None, down: bool) -> None:
        """Store the service's status in the scheduler (503 when it cannot)."""
        sched = self.svc.scheduler
        try:
            status, raw = await call(sched.http, sched.url, "PUT",
                                     f"/v1/hosts/{quote(host, safe='')}/service", sched.headers,
                                     {"disabled": disabled, "disabled_reason": reason,
                                      "forced_down": down})
        except PeerError as exc:
            raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None
        if status == 404:
            raise NotFoundError(f"Compute host {host} could not be found.")
        if status != 200:
            raise ServiceUnavailableError(
                f"The scheduler refused the service update: {status} {raw[:200]!r}")
