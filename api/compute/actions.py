"""``POST /servers/{id}/action``: power actions and the console log; limits and quotas.

Pause, suspend, rebuild, resize and createImage are in ``lifecycle.py``.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi
from nubis.api.compute.build import Builder
from nubis.api.compute.clients import PeerError
from nubis.api.compute.lifecycle import ACTIONS as LIFECYCLE_ACTIONS
from nubis.api.compute.lifecycle import LifecycleActions, begin_task, record_action
from nubis.api.compute.model import Instance
from nubis.api.compute.servers import ServiceUnavailableError, find_server
from nubis.api.compute.service import (
    LEGACY_QUOTAS,
    NETWORK_QUOTAS,
    QUOTA_RESOURCES,
    ComputeService,
    auth,
    body_of,
    mv_of,
    project_of,
)
from nubis.api.shared.errors import BadRequestError, ConflictError
from nubis.api.shared.rest import read_json

#: action -> (allowed vm_states, task_state while it runs)
_POWER = {
    "os-stop": (("active", "error"), "powering-off"),
    "os-start": (("stopped",), "powering-on"),
}


class Action:
    """``POST /servers/{id}/action``."""

    def __init__(self, svc: ComputeService, builder: Builder) -> None:
        self.svc = svc
        self.builder = builder
        self.lifecycle = LifecycleActions(svc, builder)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      server_id: str) -> None:
        """Dispatch one action (the body's single key)."""
        inst = find_server(self.svc, req, server_id)
        body = await read_json(req)
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequestError("Malformed request body")
        name, arg = next(iter(body.items()))
        if name in _POWER:
            self._power(req, inst, name)
            resp.status = 202
        elif name == "reboot":
            self._reboot(req, inst, arg)
            resp.status = 202
        elif name == "os-getConsoleOutput":
            resp.media = {"output": await self._console(inst, arg)}
        elif name in LIFECYCLE_ACTIONS:
            await self.lifecycle.dispatch(req, resp, inst, name, arg)
        else:
            raise BadRequestError(f"There is no such action: {name}")

    def _record(self, req: falcon.asgi.Request, inst: Instance, action: str) -> int:
        return record_action(self.svc, req, inst, action)

    def _begin(self, inst: Instance, action: str, vm_states: tuple[str, ...],
               task_state: str) -> Instance:
        return begin_task(self.svc, inst, action, vm_states, task_state)

    def _power(self, req: falcon.asgi.Request, inst: Instance, name: str) -> None:
        vm_states, task = _POWER[name]
        action = name.removeprefix("os-")
        moved = self._begin(inst, action, vm_states, task)
        action_id = self._record(req, inst, action)
        self.svc.spawn(self.builder.power(moved, action, task, action_id=action_id),
                       f"{action} {inst.uuid}")

    def _reboot(self, req: falcon.asgi.Request, inst: Instance, arg: Any) -> None:
        kind = arg.get("type") if isinstance(arg, dict) else None
        if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
            raise BadRequestError("Invalid input for field/attribute type. Value: "
                                  f"{kind}. '{kind}' is not one of ['HARD', 'Hard', "
                                  "'SOFT', 'Soft']")
        hard = kind.upper() == "HARD"
        states = ("active", "stopped", "error", "paused", "suspended") if hard else (
            "active",)
        task = "rebooting_hard" if hard else "rebooting"
        moved = self._begin(inst, "reboot", states, task)
        action_id = self._record(req, inst, "reboot")
        self.svc.spawn(self.builder.power(moved, "reboot", task, hard, action_id),
                       f"reboot {inst.uuid}")

    async def _console(self, inst: Instance, arg: Any) -> str:
        length = arg.get("length") if isinstance(arg, dict) else None
        if isinstance(length, str) and length.lstrip("-").isdigit():
            length = int(length)
        if length is not None and (not isinstance(length, int) or isinstance(length, bool)
                                   or length < -1):
            raise BadRequestError("Invalid input for field/attribute length. "
                                  f"Value: {length}. must be an integer >= -1")
        if not inst.host or inst.vm_state == "building":
            raise ConflictError(f"Instance {inst.uuid} is not ready")
        try:
            text = await self.svc.computes.console(
                await self.builder.host_url(inst.host), inst.uuid)
        except PeerError as exc:
            if exc.status == 404:
                raise ConflictError(f"Instance {inst.uuid} has no console log") from None
            raise ServiceUnavailableError(f"The compute host is unavailable: {exc}") from None
        if length is not None and length >= 0:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-length:]) if length else ""
        return text


class Limits:
    """``GET /limits``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return the project's absolute limits and usage."""
        project = project_of(req)
        if auth(req).is_admin and req.get_param("tenant_id"):
            project = str(req.get_param("tenant_id"))
        limits = self.svc.limits(project)
        used = self.svc.store.usage(project)
        absolute: dict[str, Any] = {
            "maxTotalInstances": limits["instances"], "maxTotalCores": limits["cores"],
            "maxTotalRAMSize": limits["ram"], "maxTotalKeypairs": limits["key_pairs"],
            "maxServerMeta": limits["metadata_items"],
            "maxServerGroups": limits["server_groups"],
            "maxServerGroupMembers": limits["server_group_members"],
            "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"],
            "totalRAMUsed": used["ram"], "totalServerGroupsUsed": 0}
        if mv_of(req) < (2, 57):
            absolute.update({"maxPersonality": 5, "maxPersonalitySize": 10240})
        if mv_of(req) < (2, 36):
            absolute.update({"maxSecurityGroups": -1, "maxSecurityGroupRules": -1,
                             "maxTotalFloatingIps": -1, "totalFloatingIpsUsed": 0,
                             "totalSecurityGroupsUsed": 0})
        resp.media = {"limits": {"rate": [], "absolute": absolute}}


class QuotaSets:
    """``/os-quota-sets/{project}[/defaults|/detail]``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _shape(self, req: falcon.asgi.Request, values: dict[str, Any]) -> dict[str, Any]:
        out = dict(values)
        mv = mv_of(req)
        if mv < (2, 57):
            out.update(LEGACY_QUOTAS)
        if mv < (2, 36):
            out.update(NETWORK_QUOTAS)
        return out

    def _check_read(self, req: falcon.asgi.Request, project_id: str) -> None:
        if project_id != project_of(req):
            self.svc.require_admin(req, "os_compute_api:os-quota-sets:show")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     project_id: str) -> None:
        """Show a project's quotas."""
        self._check_read(req, project_id)
        resp.media = {"quota_set": {"id": project_id,
                                    **self._shape(req, self.svc.limits(project_id))}}

    async def on_get_defaults(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                              project_id: str) -> None:
        """Show the default quotas."""
        resp.media = {"quota_set": {"id": project_id,
                                    **self._shape(req, self.svc.defaults())}}

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            project_id: str) -> None:
        """Show quotas with usage."""
        self._check_read(req, project_id)
        limits = self.svc.limits(project_id)
        used = self.svc.store.usage(project_id)
        used["key_pairs"] = self.svc.store.count_keypairs(auth(req).user_id)
        detail = {r: {"limit": limits[r], "in_use": used.get(r, 0), "reserved": 0}
                  for r in QUOTA_RESOURCES}
        resp.media = {"quota_set": {"id": project_id, **detail}}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     project_id: str) -> None:
        """Set quotas (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-quota-sets:update")
        body = body_of(await read_json(req), "quota_set")
        if not isinstance(body, dict):
            raise BadRequestError("Invalid input for field/attribute quota_set.")
        updates: dict[str, int] = {}
        for key, value in body.items():
            if key == "force":
                continue
            if key not in QUOTA_RESOURCES and key not in LEGACY_QUOTAS and (
                    key not in NETWORK_QUOTAS):
                raise BadRequestError(f"Invalid input for field/attribute quota_set. "
                                      f"Additional properties are not allowed ('{key}' was "
                                      "unexpected)")
            if isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise BadRequestError(f"Invalid input for field/attribute {key}. "
                                      f"Value: {value}. must be an integer >= -1")
            if key in QUOTA_RESOURCES:
                updates[key] = value
        self.svc.store.set_quotas(project_id, updates)
        resp.media = {"quota_set": self._shape(req, self.svc.limits(project_id))}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        project_id: str) -> None:
        """Revert to the defaults (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-quota-sets:delete")
        self.svc.store.delete_quotas(project_id)
        resp.status = 202
