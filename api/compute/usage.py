"""``/os-simple-tenant-usage``: instance-hours per project over a time window.

Computed from the instances table as Nova does (``_hours_for``): an instance
counts from ``launched_at`` (never launched: not at all) to ``terminated_at`` or
the window's end, clipped to the window. Instances are soft-deleted
(``deleted`` = 1 with ``terminated_at``), so deleted servers inside the window
are included. Index is admin only (every project); show is for the project's own
members or an admin. Paging (``limit``/``marker`` over instance ids) from 2.40.
``detailed`` takes Nova's ``1`` and also ``true`` (what openstacksdk sends).
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from typing import Any

import falcon.asgi
from nubis.api.compute import schema as s
from nubis.api.compute.model import Instance
from nubis.api.compute.service import ComputeService, auth, mv_of
from nubis.api.shared.errors import BadRequestError, ForbiddenError

_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def parse_time(raw: str | None) -> datetime:
    """Parse ``start``/``end`` as Nova does (naive UTC; now when absent)."""
    if not raw:
        return _now()
    for fmt in _FORMATS:
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequestError("Datetime is in invalid format") from None
    if value.utcoffset() is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def hours_for(inst: Instance, start: datetime, stop: datetime) -> float:
    """Return the hours an instance ran inside ``[start, stop]``."""
    launched, ended = inst.launched_at, inst.terminated_at
    if launched is None or (ended is not None and ended < start) or launched > stop:
        return 0.0
    end = min(stop, ended) if ended is not None else stop
    return max((end - max(launched, start)).total_seconds(), 0.0) / 3600.0


def server_usage(inst: Instance, start: datetime, stop: datetime,
                 now: datetime) -> dict[str, Any]:
    """Return one entry of ``server_usages``."""
    flavor = inst.flavor
    ended = inst.terminated_at
    state = "terminated" if ended else inst.vm_state
    uptime = (ended if ended else now) - (inst.launched_at or now)
    return {"hours": hours_for(inst, start, stop), "flavor": flavor.get("name", ""),
            "instance_id": inst.uuid, "name": inst.name, "tenant_id": inst.project_id,
            "memory_mb": inst.memory_mb,
            "local_gb": inst.root_gb + int(flavor.get("ephemeral", 0) or 0),
            "vcpus": inst.vcpus, "started_at": _ts(inst.launched_at or now),
            "ended_at": _ts(ended) if ended else None, "state": state,
            "uptime": int(uptime.total_seconds())}


def summarize(usages: list[dict[str, Any]], start: datetime, stop: datetime,
              detailed: bool) -> list[dict[str, Any]]:
    """Group server usages by project with Nova's totals."""
    out: dict[str, dict[str, Any]] = {}
    for u in usages:
        tenant = out.get(u["tenant_id"])
        if tenant is None:
            tenant = out[u["tenant_id"]] = {
                "tenant_id": u["tenant_id"], "total_local_gb_usage": 0.0,
                "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0, "total_hours": 0.0,
                "start": _ts(start), "stop": _ts(stop)}
            if detailed:
                tenant["server_usages"] = []
        tenant["total_local_gb_usage"] += u["local_gb"] * u["hours"]
        tenant["total_vcpus_usage"] += u["vcpus"] * u["hours"]
        tenant["total_memory_mb_usage"] += u["memory_mb"] * u["hours"]
        tenant["total_hours"] += u["hours"]
        if detailed:
            tenant["server_usages"].append(u)
    return list(out.values())


class TenantUsage:
    """``GET /os-simple-tenant-usage`` and ``/os-simple-tenant-usage/{tenant_id}``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _window(self, req: falcon.asgi.Request) -> tuple[datetime, datetime, bool]:
        start = parse_time(req.get_param("start"))
        stop = parse_time(req.get_param("end"))
        if not start < stop:
            raise BadRequestError("Invalid start time. The start time cannot occur after "
                                  "the end time.")
        return start, min(stop, _now()), (req.get_param("detailed") or "").lower() in (
            "1", "true", "yes")

    def _instances(self, project: str | None, start: datetime,
                   stop: datetime) -> list[Instance]:
        """Return live and deleted instances that ran inside the window, oldest first."""
        t = s.instances
        where = [t.c.launched_at.is_not(None), t.c.launched_at < stop,
                 (t.c.terminated_at.is_(None)) | (t.c.terminated_at > start)]
        rows = [*self.svc.store.list_instances(project, where=where, sort_dir="asc"),
                *self.svc.store.list_instances(project, deleted=True, where=where,
                                               sort_dir="asc")]
        return sorted(rows, key=lambda i: (i.created_at, i.uuid))

    def _usages(self, req: falcon.asgi.Request, project: str | None, start: datetime,
                stop: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Return the page's server usages and the links to the next page."""
        insts = self._instances(project, start, stop)
        links: list[dict[str, Any]] = []
        if mv_of(req) >= (2, 40):
            insts = self.svc.page(req, insts, lambda i: i.uuid, "instance")
            if insts and getattr(req.context, "page_full", False):
                params = {k: v for k, v in req.params.items() if k != "marker"}
                params["marker"] = insts[-1].uuid
                path = req.path.split("/v2.1/", 1)[-1]
                links = [{"rel": "next", "href": f"{self.svc.base_url}/{path}?"
                          f"{urllib.parse.urlencode(params)}"}]
        now = _now()
        return [server_usage(i, start, stop, now) for i in insts], links

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Return every project's usage in the window (admin)."""
        self.svc.require_admin(req, "os_compute_api:os-simple-tenant-usage:list")
        start, stop, detailed = self._window(req)
        usages, links = self._usages(req, None, start, stop)
        out: dict[str, Any] = {"tenant_usages": summarize(usages, start, stop, detailed)}
        if links:
            out["tenant_usages_links"] = links
        resp.media = out

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         tenant_id: str) -> None:
        """Return one project's usage with its servers (its members or an admin)."""
        ctx = auth(req)
        if not ctx.is_admin and ctx.project_id != tenant_id:
            raise ForbiddenError("Policy doesn't allow os_compute_api:os-simple-tenant-usage:"
                                 "show to be performed.")
        start, stop, _detailed = self._window(req)
        usages, links = self._usages(req, tenant_id, start, stop)
        summary = summarize(usages, start, stop, True)
        out: dict[str, Any] = {"tenant_usage": summary[0] if summary else {}}
        if links:
            out["tenant_usage_links"] = links
        resp.media = out
