"""``/servers/{id}/os-volume_attachments``: hot-plug block storage volumes into servers.

Nova's new-style attach flow, over HTTP to both peers: a Cinder attachment is
created with the server's host as connector (3.44, with the caller's token), the
compute daemon of that host plugs the connection's file into the domain and
answers the guest device, the attachment is updated with that mountpoint and
completed (the volume becomes ``in-use``). Detach runs it backwards. A failure
on the host deletes the attachment again, so the volume returns to ``available``.
"""

from __future__ import annotations

import json
from typing import Any

import falcon.asgi
from nubis.api.compute.build import Builder
from nubis.api.compute.cinder import CinderError, cinder_for, fault_message
from nubis.api.compute.clients import PeerError, call
from nubis.api.compute.servers import ServiceUnavailableError, find_server
from nubis.api.compute.service import ComputeService, body_of, mv_of
from nubis.api.shared.errors import BadRequestError, ConflictError, NotFoundError
from nubis.api.shared.rest import read_json


class VolumeAttachments:
    """``/v2.1/servers/{server_id}/os-volume_attachments[/{volume_id}]``."""

    def __init__(self, svc: ComputeService, builder: Builder) -> None:
        self.svc = svc
        self.builder = builder
        self.cinder = cinder_for(svc.computes.http, svc.root_url)

    async def _cinder(self, req: falcon.asgi.Request, method: str, path: str,
                      body: Any = None) -> Any:
        try:
            return await self.cinder.request(req.get_header("X-Auth-Token") or "", method,
                                             path, body)
        except CinderError as exc:
            if exc.status == 0:
                raise ServiceUnavailableError(
                    f"The volume service is unavailable: {exc}") from None
            if exc.status == 404:
                raise NotFoundError(str(exc)) from None
            raise BadRequestError(str(exc)) from None

    async def _host(self, method: str, url: str, path: str, body: Any = None) -> Any:
        status, raw = await call(self.svc.computes.http, url, method, path,
                                 self.svc.computes.headers, body,
                                 timeout=self.svc.computes.action_timeout)
        if status >= 400:
            raise PeerError(fault_message(raw), status)
        return json.loads(raw) if raw else None

    def _view(self, req: falcon.asgi.Request, server_id: str, volume_id: str,
              device: str | None, attachment_id: str | None,
              delete_on_termination: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {"device": device, "serverId": server_id, "volumeId": volume_id}
        mv = mv_of(req)
        if mv < (2, 89):
            view["id"] = volume_id
        if mv >= (2, 70):
            view["tag"] = None
        if mv >= (2, 79):
            view["delete_on_termination"] = delete_on_termination
        if mv >= (2, 89):
            view["attachment_id"] = attachment_id
            view["bdm_uuid"] = attachment_id
        return view

    async def _attached(self, req: falcon.asgi.Request,
                        server_id: str) -> list[dict[str, Any]]:
        doc = await self._cinder(req, "GET", "/volumes/detail")
        dot = {m.volume_id for m in self.builder.mappings.of(server_id)
               if m.delete_on_termination}
        out = []
        for vol in (doc or {}).get("volumes") or []:
            for att in vol.get("attachments") or []:
                if att.get("server_id") == server_id:
                    out.append(self._view(req, server_id, vol["id"], att.get("device"),
                                          att.get("attachment_id"), vol["id"] in dot))
        return out

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """List the server's volumes."""
        inst = find_server(self.svc, req, server_id)
        resp.media = {"volumeAttachments": await self._attached(req, inst.uuid)}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         server_id: str, volume_id: str) -> None:
        """Show one attachment."""
        inst = find_server(self.svc, req, server_id)
        for view in await self._attached(req, inst.uuid):
            if view["volumeId"] == volume_id:
                resp.media = {"volumeAttachment": view}
                return
        raise NotFoundError(f"Volume {volume_id} is not attached to server {server_id}")

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      server_id: str) -> None:
        """Attach a volume to a running (or stopped) server."""
        inst = find_server(self.svc, req, server_id)
        body = body_of(await read_json(req), "volumeAttachment")
        volume_id = body.get("volumeId")
        if not isinstance(volume_id, str) or not volume_id:
            raise BadRequestError("Invalid input for field/attribute volumeId.")
        if inst.vm_state not in ("active", "stopped") or not inst.host or inst.task_state:
            raise ConflictError(f"Cannot 'attach_volume' instance {inst.uuid} while it is "
                                f"in vm_state {inst.vm_state}")
        connector = {"host": inst.host, "mountpoint": None, "platform": "x86_64"}
        made = await self._cinder(req, "POST", "/attachments", {"attachment": {
            "volume_uuid": volume_id, "instance_uuid": inst.uuid, "connector": connector}})
        att = made["attachment"]
        try:
            url = await self.builder.host_url(inst.host)
            done = await self._host("POST", url, f"/v1/instances/{inst.uuid}/volumes", {
                "volume_id": volume_id, "connection_info": att["connection_info"]})
        except PeerError as exc:
            await self._cinder(req, "DELETE", f"/attachments/{att['id']}")
            raise ServiceUnavailableError(f"Attaching volume {volume_id} failed on the "
                                          f"compute host: {exc}") from None
        device = str(done["device"])
        await self._cinder(req, "PUT", f"/attachments/{att['id']}", {"attachment": {
            "connector": {**connector, "mountpoint": device}}})
        await self._cinder(req, "POST", f"/attachments/{att['id']}/action",
                           {"os-complete": None})
        resp.media = {"volumeAttachment": self._view(req, inst.uuid, volume_id, device,
                                                     att["id"])}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            server_id: str, volume_id: str) -> None:
        """Detach a volume; 202."""
        inst = find_server(self.svc, req, server_id)
        atts = (await self._cinder(req, "GET", f"/attachments?instance_id={inst.uuid}"
                                   f"&volume_id={volume_id}") or {}).get("attachments") or []
        if not atts:
            raise NotFoundError(f"volume_id not found: {volume_id}")
        if any(m.volume_id == volume_id and m.boot_index == 0
               for m in self.builder.mappings.of(inst.uuid)):
            raise BadRequestError("Cannot detach a root device volume")
        if inst.host:
            try:
                url = await self.builder.host_url(inst.host)
                await self._host("DELETE", url,
                                 f"/v1/instances/{inst.uuid}/volumes/{volume_id}")
            except PeerError as exc:
                if exc.status != 404:
                    raise ServiceUnavailableError(f"Detaching volume {volume_id} failed on "
                                                  f"the compute host: {exc}") from None
        for att in atts:
            await self._cinder(req, "DELETE", f"/attachments/{att['id']}")
        self.builder.mappings.remove(inst.uuid, volume_id)
        resp.status = 202

