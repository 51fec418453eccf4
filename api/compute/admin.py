"""Instance actions, hypervisors and availability zones.

Hypervisors (and services, :mod:`nubis.api.compute.os_services`) come from the
scheduler's host list (what each compute daemon reported: capacity, usage, its
URL) and each daemon's ``/v1/host`` (domain type, libvirt version, running
guests); a daemon that does not answer is ``down``.
"""

from __future__ import annotations

import asyncio
import socket
import uuid as uuidlib
from typing import Any

import falcon.asgi
from nubis.api.compute.clients import PeerError
from nubis.api.compute.servers import ServiceUnavailableError, find_server
from nubis.api.compute.service import ComputeService, auth, mv_of
from nubis.api.compute.views import iso
from nubis.api.shared.errors import NotFoundError

NAMESPACE = uuidlib.UUID("6f7d1f8e-4a35-4c70-9a0e-2b1a0c6c9d11")
#: Nova's zone of its control services (``internal_service_availability_zone``).
INTERNAL_ZONE = "internal"
#: The control services listed there: the scheduler, and this API as Nova's conductor.
INTERNAL_SERVICES = ("nova-scheduler", "nova-conductor")


def control_host() -> str:
    """Return the host name the control services are listed on (this host's)."""
    return socket.gethostname()


def _action_view(row: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    out = {"action": row["action"], "instance_uuid": row["instance_uuid"],
           "request_id": row["request_id"], "user_id": row["user_id"],
           "project_id": row["project_id"], "start_time": iso(row["start_time"]),
           "message": row["message"]}
    if mv >= (2, 58):
        out["updated_at"] = iso(row["updated_at"])
    return out


class InstanceActions:
    """``/servers/{id}/os-instance-actions[/{request_id}]``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """List the server's actions, newest first."""
        inst = find_server(self.svc, req, server_id)
        mv = mv_of(req)
        resp.media = {"instanceActions": [_action_view(a, mv)
                                          for a in self.svc.store.list_actions(inst.uuid)]}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         server_id: str, request_id: str) -> None:
        """Show one action with its events (timings of each build phase)."""
        inst = find_server(self.svc, req, server_id)
        action = self.svc.store.get_action(inst.uuid, request_id)
        if action is None:
            raise NotFoundError(f"Action {request_id} not found")
        mv, admin = mv_of(req), auth(req).is_admin
        out = _action_view(action, mv)
        if admin or mv >= (2, 51):
            events = []
            for e in action["events"]:
                ev = {"event": e["event"], "start_time": iso(e["start_time"]),
                      "finish_time": iso(e["finish_time"]), "result": e["result"],
                      "start_time_precise": e["start_time"].isoformat(),
                      "finish_time_precise": e["finish_time"].isoformat()
                      if e["finish_time"] else None}
                if admin:
                    ev["traceback"] = e["details"]
                    if mv >= (2, 62):
                        ev["host"] = inst.host
                events.append(ev)
            out["events"] = events
        resp.media = {"instanceAction": out}


async def compute_hosts(svc: ComputeService) -> list[dict[str, Any]]:
    """Return every compute host the scheduler knows, with its daemon's facts (or down)."""
    try:
        hosts = await svc.scheduler.hosts(max_age=0.0)
    except PeerError as exc:
        raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None

    async def facts(h: dict[str, Any]) -> dict[str, Any]:
        url = (h.get("stats") or {}).get("compute_url")
        info: dict[str, Any] = {}
        if url:
            try:
                info = await asyncio.wait_for(svc.computes.host(str(url)), 10)
            except (PeerError, TimeoutError):
                info = {}
        return {**h, "facts": info, "up": bool(info)}
    return list(await asyncio.gather(*(facts(h) for h in hosts.values())))


def stable_id(key: str, mv: tuple[int, int]) -> Any:
    """Return a stable id: a UUID from 2.53, a small integer before."""
    value = uuidlib.uuid5(NAMESPACE, key)
    return str(value) if mv >= (2, 53) else value.int % 1000000 + 1


def _usage(h: dict[str, Any], rc: str) -> tuple[int, int]:
    res = (h.get("resources") or {}).get(rc) or {}
    return int(res.get("capacity", 0)), int(res.get("used", 0))


def _hypervisor(h: dict[str, Any], mv: tuple[int, int], detail: bool) -> dict[str, Any]:
    hid = stable_id(h["host"], mv)
    out: dict[str, Any] = {"id": hid, "hypervisor_hostname": h["host"],
                           "state": "up" if h["up"] else "down",
                           "status": "enabled" if h.get("enabled", True) else "disabled"}
    if not detail:
        return out
    f = h["facts"]
    out.update({"hypervisor_type": f.get("hypervisor_type", "QEMU"),
                "hypervisor_version": f.get("hypervisor_version", 0), "host_ip": "127.0.0.1",
                "service": {"host": h["host"], "id": hid,
                            "disabled_reason": h.get("disabled_reason")}})
    if mv < (2, 88):
        vcpus, vcpus_used = _usage(h, "VCPU")
        mem, mem_used = _usage(h, "MEMORY_MB")
        disk, disk_used = _usage(h, "DISK_GB")
        out.update({"vcpus": f.get("vcpus", vcpus), "vcpus_used": vcpus_used,
                    "memory_mb": f.get("memory_mb", mem), "memory_mb_used": mem_used,
                    "local_gb": f.get("local_gb", disk), "local_gb_used": disk_used,
                    "free_ram_mb": f.get("memory_mb", mem) - mem_used,
                    "free_disk_gb": f.get("free_disk_gb", disk - disk_used),
                    "current_workload": 0, "running_vms": f.get("running_vms",
                                                                h.get("num_instances", 0)),
                    "disk_available_least": f.get("free_disk_gb", 0),
                    "cpu_info": {"arch": f.get("cpu_arch", "x86_64"),
                                 "domain_type": f.get("domain_type", "qemu")}})
    else:
        out["uptime"] = None
    return out


class Hypervisors:
    """``/os-hypervisors``, ``/detail``, ``/statistics``, ``/{id}`` (admin)."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def _list(self, req: falcon.asgi.Request, detail: bool) -> list[dict[str, Any]]:
        self.svc.require_admin(req, "os_compute_api:os-hypervisors:list")
        mv = mv_of(req)
        return [_hypervisor(h, mv, detail) for h in await compute_hosts(self.svc)]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List hypervisors."""
        resp.media = {"hypervisors": await self._list(req, False)}

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List hypervisors with capacity and usage."""
        resp.media = {"hypervisors": await self._list(req, True)}

    async def on_get_statistics(self, req: falcon.asgi.Request,
                                resp: falcon.asgi.Response) -> None:
        """Sum capacity and usage over every hypervisor (before 2.88)."""
        if mv_of(req) >= (2, 88):
            raise NotFoundError("The resource could not be found.")
        hvs = await self._list(req, True)
        keys = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
                "local_gb_used", "free_ram_mb", "free_disk_gb", "current_workload",
                "running_vms", "disk_available_least")
        stats = {k: sum(int(h.get(k, 0)) for h in hvs) for k in keys}
        resp.media = {"hypervisor_statistics": {"count": len(hvs), **stats}}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         hypervisor_id: str) -> None:
        """Show one hypervisor."""
        for h in await self._list(req, True):
            if str(h["id"]) == hypervisor_id:
                resp.media = {"hypervisor": h}
                return
        raise NotFoundError(f"Hypervisor with ID '{hypervisor_id}' could not be found.")


class AvailabilityZones:
    """``GET /os-availability-zone[/detail]``.

    As in Nova, a compute host is in its aggregate's ``availability_zone`` or else
    in the default zone; a zone is available while one of its hosts is enabled,
    and zones whose hosts are all disabled are listed after them as unavailable.
    """

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _zones(self, hosts: list[dict[str, Any]]) -> list[tuple[str, bool, list[dict[str, Any]]]]:
        """Return ``(zone, available, hosts)``: available zones first, each by name."""
        zones = self.svc.store.host_zones()
        default = self.svc.cfg.default_availability_zone
        members: dict[str, list[dict[str, Any]]] = {}
        for h in hosts:
            members.setdefault(zones.get(h["host"], default), []).append(h)
        listed = [(name, any(h.get("enabled", True) for h in group), group)
                  for name, group in sorted(members.items())]
        return [z for z in listed if z[1]] + [z for z in listed if not z[1]]

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the zones of the compute hosts (no hosts shown)."""
        try:
            hosts = list((await self.svc.scheduler.hosts()).values())
        except PeerError:
            hosts = []
        resp.media = {"availabilityZoneInfo": [
            {"zoneName": name, "zoneState": {"available": available}, "hosts": None}
            for name, available, _group in self._zones(hosts)]}

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List zones with their hosts and services (admin), Nova's ``internal`` one too."""
        self.svc.require_admin(req, "os_compute_api:os-availability-zone:detail")
        zones = [{
            "zoneName": name, "zoneState": {"available": available},
            "hosts": {h["host"]: {"nova-compute": {
                "available": h["up"] and not h.get("forced_down", False),
                "active": h.get("enabled", True), "updated_at": None}}
                for h in group}}
            for name, available, group in self._zones(await compute_hosts(self.svc))]
        zones.insert(0, {"zoneName": INTERNAL_ZONE, "zoneState": {"available": True},
                         "hosts": {control_host(): {name: {
                             "available": True, "active": True, "updated_at": None}
                             for name in INTERNAL_SERVICES}}})
        resp.media = {"availabilityZoneInfo": zones}


_POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


def group_view(g: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    """Return a server group as Nova shows it for the microversion."""
    out: dict[str, Any] = {"id": g["uuid"], "name": g["name"], "members": g["members"]}
    if mv >= (2, 64):
        out.update({"policy": g["policy"], "rules": g["rules"]})
    else:
        out.update({"policies": [g["policy"]], "metadata": {}})
    if mv >= (2, 13):
        out.update({"project_id": g["project_id"], "user_id": g["user_id"]})
    return out


def parse_group(body: Any, mv: tuple[int, int]) -> dict[str, Any]:
    """Validate ``POST /os-server-groups``; return name, policy and rules."""
    from nubis.api.shared.errors import BadRequestError

    g = body.get("server_group") if isinstance(body, dict) else None
    if not isinstance(g, dict):
        raise BadRequestError("Invalid input for field/attribute server_group. "
                              "'server_group' is a required property")
    name = g.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not name.strip():
        raise BadRequestError("Invalid input for field/attribute name.")
    if mv >= (2, 64):
        policy, rules = g.get("policy"), g.get("rules", {})
    else:
        policies = g.get("policies")
        if not isinstance(policies, list) or len(policies) != 1:
            raise BadRequestError("Invalid input for field/attribute policies.")
        policy, rules = policies[0], {}
    allowed = _POLICIES if mv >= (2, 15) else _POLICIES[:2]
    if policy not in allowed:
        raise BadRequestError(f"Invalid input for field/attribute policy. Value: {policy}.")
    if not isinstance(rules, dict) or set(rules) - {"max_server_per_host"} or (
            rules and policy != "anti-affinity"):
        raise BadRequestError("Invalid input for field/attribute rules.")
    per_host = rules.get("max_server_per_host")
    if per_host is not None and (not isinstance(per_host, int) or isinstance(per_host, bool)
                                 or per_host < 1):
        raise BadRequestError("Invalid input for field/attribute max_server_per_host.")
    return {"name": name, "policy": policy, "rules": rules}


class ServerGroups:
    """``/os-server-groups`` and ``/os-server-groups/{id}``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the project's groups (every project's with ``all_projects`` for admins)."""
        from nubis.api.compute.service import project_of

        ctx = auth(req)
        everyone = ctx.is_admin and (req.get_param("all_projects") or "").lower() in (
            "1", "true", "yes")
        groups = self.svc.store.list_groups(None if everyone else project_of(req))
        groups = self.svc.page(req, groups, lambda g: str(g["uuid"]), "server group")
        resp.media = {"server_groups": [group_view(g, mv_of(req)) for g in groups]}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Create a group."""
        from nubis.api.compute.errors import QuotaExceededError
        from nubis.api.compute.service import project_of
        from nubis.api.shared.rest import read_json

        mv = mv_of(req)
        project = project_of(req)
        values = parse_group(await read_json(req), mv)
        if self.svc.store.count_groups(project) >= self.svc.limit_for(project,
                                                                      "server_groups"):
            raise QuotaExceededError("Quota exceeded, too many server groups.")
        group = self.svc.store.create_group({**values, "uuid": str(uuidlib.uuid4()),
                                             "project_id": project,
                                             "user_id": auth(req).user_id})
        resp.media = {"server_group": group_view(group, mv)}

    def _find(self, req: falcon.asgi.Request, group_id: str) -> dict[str, Any]:
        group = self.svc.store.get_group(group_id)
        ctx = auth(req)
        if group is None or (group["project_id"] != ctx.project_id and not ctx.is_admin):
            raise NotFoundError(f"Instance group {group_id} could not be found.")
        return group

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         group_id: str) -> None:
        """Show a group."""
        resp.media = {"server_group": group_view(self._find(req, group_id), mv_of(req))}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            group_id: str) -> None:
        """Delete a group (its servers keep running)."""
        self.svc.store.delete_group(self._find(req, group_id)["uuid"])
        resp.status = 204
