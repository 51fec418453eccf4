"""``POST /v3/volumes/{id}/action`` and the 3.27+ attachment API.

Actions: ``os-extend`` (offline; online from 3.42 for attached volumes is refused
as the hypervisor cannot grow a hot-plugged file disk here), ``os-reset_status``
(admins), ``os-set_bootable``, ``os-update_readonly_flag``, ``os-force_delete``,
``os-retype``,
and the legacy attach protocol the compute side speaks (``os-reserve``,
``os-initialize_connection``, ``os-attach``, ``os-begin_detaching``,
``os-detach``, ``os-unreserve``, ``os-roll_detaching``, ``os-terminate_connection``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import falcon.asgi
from nubis.api.shared.errors import BadRequestError, NotFoundError
from nubis.api.shared.rest import read_json
from nubis.api.volume import qos, toimage
from nubis.api.volume.clients import PeerError
from nubis.api.volume.errors import InvalidStateError
from nubis.api.volume.service import VolumeService, body_of, mv_of, project_of, size_of
from nubis.api.volume.store import Record
from nubis.api.volume.volumes import delete_volume, fail

STATUSES = ("available", "error", "creating", "deleting", "in-use", "attaching",
            "detaching", "error_deleting", "maintenance", "reserved", "error_extending",
            "error_restoring", "backing-up", "restoring-backup", "reverting")


#: Actions Cinder answers 202 with a body (the others: 202 without one, or 200).
_ACCEPTED_WITH_BODY = frozenset({"os-volume_upload_image"})


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class VolumeActions:
    """``/v3/volumes/{id}/action``."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      volume_id: str) -> None:
        """Run the one action the body names."""
        doc = await read_json(req)
        if not isinstance(doc, dict) or len(doc) != 1:
            raise BadRequestError("Invalid request body: exactly one action is expected.")
        action, arg = next(iter(doc.items()))
        rec = self.svc.find(req, "volume", volume_id, "Volume")
        handler = getattr(self, "do_" + action.removeprefix("os-").replace("-", "_"), None)
        if handler is None:
            raise BadRequestError(f"There is no such action: {action}")
        result = await handler(req, rec, arg if isinstance(arg, dict) else {})
        if result is None or action in _ACCEPTED_WITH_BODY:
            resp.status = 202
        if result is not None:
            resp.media = result

    async def do_extend(self, req: falcon.asgi.Request, rec: Record,
                        arg: dict[str, Any]) -> None:
        """Grow the volume (400 when not larger, or not available)."""
        new_size = size_of(arg.get("new_size"), "new_size")
        old = int(rec.get("size"))
        # Cinder extends attached volumes from 3.42 (the guest is told through libvirt).
        allowed = ("available", "in-use") if mv_of(req) >= (3, 42) else ("available",)
        if rec.status not in allowed:
            need = "' or '".join(allowed)
            raise InvalidStateError(f"Invalid volume: Volume {rec.id} status must be "
                                    f"'{need}' to extend, currently {rec.status}.")
        if new_size <= old:
            raise BadRequestError(f"Invalid input received: New size for extend must be "
                                  f"greater than current size. (current: {old}, extended: "
                                  f"{new_size}).")
        self.svc.check_quota(rec.project_id, gigabytes=new_size - old)
        cur = self.svc.store.update(rec, status="extending", expected=(rec.status,))
        if cur is None:
            raise InvalidStateError("Invalid volume: the volume changed state.")
        back = rec.status

        async def work() -> None:
            try:
                await self.svc.daemon.action(rec.id, "extend", {"size": new_size})
            except PeerError as exc:
                await fail(self.svc, cur, "extend volume", str(exc), "error_extending")
                return
            self.svc.store.update(cur, status=back, size=new_size)
        self.svc.spawn(work(), f"extend volume {rec.id}")

    async def do_revert(self, req: falcon.asgi.Request, rec: Record,
                        arg: dict[str, Any]) -> None:
        """Revert an available volume to its latest snapshot (3.40; the snapshot stays)."""
        if mv_of(req) < (3, 40):
            raise BadRequestError("There is no such action: revert")
        snap_id = arg.get("snapshot_id")
        snaps = [sn for sn in self.svc.store.select("snapshot", rec.project_id)
                 if sn.get("volume_id") == rec.id]
        latest = max(snaps, key=lambda sn: (sn.created_at, sn.id), default=None)
        if latest is None or latest.id != snap_id:
            raise BadRequestError(f"Specified snapshot {snap_id} is None or not the latest "
                                  f"one of volume {rec.id}.")
        if int(latest.get("size")) != int(rec.get("size")):
            raise BadRequestError(f"Can't revert volume {rec.id} to its latest snapshot "
                                  f"{latest.id}. The volume size must be equal to the "
                                  "snapshot size.")
        if latest.status != "available":
            raise InvalidStateError(f"Invalid snapshot: Snapshot {latest.id} status must be "
                                    f"available, currently {latest.status}.")
        cur = self.svc.store.update(rec, status="reverting", expected=("available",))
        if cur is None:
            raise InvalidStateError(f"Invalid volume: Volume {rec.id} status must be "
                                    f"available to revert, currently {rec.status}.")
        snap = self.svc.store.update(latest, status="restoring", expected=("available",))

        async def work() -> None:
            try:
                await self.svc.daemon.action(rec.id, "revert", {"snapshot_id": latest.id})
            except PeerError as exc:
                await fail(self.svc, cur, "revert volume", str(exc))
            else:
                self.svc.store.update(cur, status="available", expected=("reverting",))
            if snap is not None:
                self.svc.store.update(snap, status="available", expected=("restoring",))
        self.svc.spawn(work(), f"revert volume {rec.id}")

    async def do_retype(self, req: falcon.asgi.Request, rec: Record,
                        arg: dict[str, Any]) -> None:
        """Change the volume's type (``os-retype``; one backend: never a migration).

        Every type maps to the one volume daemon and its qcow2 files, so a retype is
        what Cinder's same-backend retype with nothing to change is: the type only.
        """
        wanted = arg.get("new_type")
        if not isinstance(wanted, str) or not wanted:
            raise BadRequestError("New volume type must be specified.")
        policy = arg.get("migration_policy") or "never"
        if policy not in ("on-demand", "never"):
            raise BadRequestError(f"Invalid input received: migration_policy must be "
                                  f"'on-demand' or 'never', passed: {policy}")
        if rec.status not in ("available", "in-use"):
            raise InvalidStateError(
                f"Invalid volume: Unable to update type due to incorrect status: "
                f"{rec.status} on volume: {rec.id}. Volume status must be available or "
                "in-use.")
        try:
            vtype = self.svc.volume_type(req, wanted)
        except NotFoundError:
            raise BadRequestError(f"Invalid input received: Invalid volume_type passed: "
                                  f"{wanted}.") from None
        if vtype.id == rec.get("volume_type_id"):
            raise BadRequestError(f"Invalid input received: New volume_type same as "
                                  f"original: {wanted}.")
        cur = self.svc.store.update(rec, volume_type=vtype.name, volume_type_id=vtype.id,
                                    expected=(rec.status,))
        if cur is None:
            raise InvalidStateError("Invalid volume: the volume changed state.")

    async def do_volume_upload_image(self, req: falcon.asgi.Request, rec: Record,
                                     arg: dict[str, Any]) -> dict[str, Any]:
        """Make an image of the volume's bytes (see :mod:`nubis.api.volume.toimage`)."""
        return await toimage.upload(self.svc, req, rec, arg)

    async def do_reset_status(self, req: falcon.asgi.Request, rec: Record,
                              arg: dict[str, Any]) -> None:
        """Set the status (and attach status) as an admin says."""
        self.svc.require_admin(req, "volume_extension:volume_admin_actions:reset_status")
        status = arg.get("status")
        if status not in STATUSES:
            raise BadRequestError(f"Invalid input received: Must specify a valid status "
                                  f"(got {status!r}).")
        changes: dict[str, Any] = {}
        if arg.get("attach_status") == "detached":
            changes["attachments"] = []
        self.svc.store.update(rec, status=status, **changes)

    async def do_force_delete(self, req: falcon.asgi.Request, rec: Record,
                              arg: dict[str, Any]) -> None:
        """Delete whatever the status (admins)."""
        self.svc.require_admin(req, "volume_extension:volume_admin_actions:force_delete")
        await delete_volume(self.svc, rec, cascade=True, force=True)

    async def do_set_bootable(self, req: falcon.asgi.Request, rec: Record,
                              arg: dict[str, Any]) -> None:
        """Set the bootable flag."""
        value = arg.get("bootable")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise BadRequestError("Invalid input received: bootable must be a boolean.")
        self.svc.store.update(rec, bootable=value)

    async def do_update_readonly_flag(self, req: falcon.asgi.Request, rec: Record,
                                      arg: dict[str, Any]) -> None:
        """Set the read-only flag (kept in the volume's admin metadata)."""
        if not isinstance(arg.get("readonly"), bool):
            raise BadRequestError("Invalid input received: readonly must be a boolean.")
        self.svc.store.update(rec, readonly=arg["readonly"])

    # --- the legacy attach protocol -----------------------------------------------------

    async def do_reserve(self, req: falcon.asgi.Request, rec: Record,
                         arg: dict[str, Any]) -> None:
        """Available → attaching."""
        if self.svc.store.update(rec, status="attaching", expected=("available",)) is None:
            raise InvalidStateError(f"Invalid volume: Volume status must be available to "
                                    f"reserve, but the current status is: {rec.status}.")

    async def do_unreserve(self, req: falcon.asgi.Request, rec: Record,
                           arg: dict[str, Any]) -> None:
        """Attaching → available."""
        self.svc.store.update(rec, status="available", expected=("attaching", "reserved"))

    async def do_initialize_connection(self, req: falcon.asgi.Request, rec: Record,
                                       arg: dict[str, Any]) -> dict[str, Any]:
        """Return the connection info (the volume's file on its host)."""
        return {"connection_info": await connection_info(self.svc, rec)}

    async def do_terminate_connection(self, req: falcon.asgi.Request, rec: Record,
                                      arg: dict[str, Any]) -> None:
        """Nothing to tear down for a file volume."""

    async def do_attach(self, req: falcon.asgi.Request, rec: Record,
                        arg: dict[str, Any]) -> None:
        """Record the attachment: → in-use."""
        server = arg.get("instance_uuid")
        if not isinstance(server, str) and not arg.get("host_name"):
            raise BadRequestError("Invalid request to attach volume to an invalid target")
        mountpoint = arg.get("mountpoint")
        attach = new_attachment(rec, str(server or ""), arg.get("host_name"), mountpoint,
                                arg.get("mode") or "rw")
        cur = self.svc.store.update(rec, status="in-use",
                                    expected=("available", "attaching", "reserved"),
                                    attachments=[attach])
        if cur is None:
            raise InvalidStateError(f"Invalid volume: volume status must be available or "
                                    f"attaching, currently {rec.status}.")

    async def do_begin_detaching(self, req: falcon.asgi.Request, rec: Record,
                                 arg: dict[str, Any]) -> None:
        """in-use → detaching."""
        if self.svc.store.update(rec, status="detaching", expected=("in-use",)) is None:
            raise InvalidStateError(f"Invalid volume: Unable to detach volume. Volume "
                                    f"status must be 'in-use' and attach_status must be "
                                    f"'attached' to detach. (status: {rec.status})")

    async def do_roll_detaching(self, req: falcon.asgi.Request, rec: Record,
                                arg: dict[str, Any]) -> None:
        """Detaching → in-use."""
        self.svc.store.update(rec, status="in-use", expected=("detaching",))

    async def do_detach(self, req: falcon.asgi.Request, rec: Record,
                        arg: dict[str, Any]) -> None:
        """Drop the attachment: → available."""
        if rec.status not in ("in-use", "detaching", "attaching"):
            raise InvalidStateError(f"Invalid volume: Volume {rec.id} is not attached.")
        self.svc.store.update(rec, status="available", attachments=[])
        for att in self.svc.store.select("attachment", rec.project_id):
            if att.get("volume_id") == rec.id:
                self.svc.store.delete(att.id)


def new_attachment(rec: Record, server: str, host: Any, mountpoint: Any,
                   mode: str) -> dict[str, Any]:
    """Return the ``attachments`` entry of a volume attached to ``server``."""
    return {"id": rec.id, "attachment_id": str(uuid.uuid4()), "volume_id": rec.id,
            "server_id": server, "host_name": host, "device": mountpoint,
            "attached_at": _now(), "attach_mode": mode}


async def connection_info(svc: VolumeService, rec: Record) -> dict[str, Any]:
    """Ask the volume daemon which file backs the volume."""
    try:
        info = await svc.daemon.connection(rec.id)
    except PeerError as exc:
        raise InvalidStateError(f"Invalid volume: cannot connect: {exc}") from None
    data = info.setdefault("data", {})
    data["volume_id"] = rec.id
    data["qos_specs"] = qos.front_end_specs(svc, rec)  # as Cinder's initialize_connection
    return info


def attachment_view(att: Record, conn: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render an attachment as Cinder's 3.27 API does."""
    return {"id": att.id, "status": att.status, "instance": att.get("instance_uuid"),
            "volume_id": att.get("volume_id"), "attached_at": att.get("attached_at"),
            "detached_at": None, "attach_mode": att.get("attach_mode", "rw"),
            "connection_info": conn if conn is not None else att.get("connection_info")}


class Attachments:
    """``/v3/attachments[/{id}[/action]]`` (3.27+)."""

    def __init__(self, svc: VolumeService) -> None:
        self.svc = svc

    def _check(self, req: falcon.asgi.Request) -> None:
        if req.context.mv < (3, 27):
            raise NotFoundError("The resource could not be found.")

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Reserve a volume for an instance (connected when a connector is given)."""
        self._check(req)
        body = body_of(await read_json(req), "attachment")
        vol = self.svc.find(req, "volume", str(body.get("volume_uuid")), "Volume")
        server = body.get("instance_uuid")
        if not isinstance(server, str):
            raise BadRequestError("Invalid input received: instance_uuid is required.")
        mode = body.get("mode") or "rw"
        cur = self.svc.store.update(vol, status="reserved", expected=("available",))
        if cur is None:
            raise InvalidStateError(f"Invalid volume: Volume {vol.id} status must be "
                                    f"available or downloading to reserve, but the current "
                                    f"status is {vol.status}.")
        conn = await connection_info(self.svc, vol) if body.get("connector") else None
        att = self.svc.store.insert("attachment", str(uuid.uuid4()), vol.project_id, None,
                                    "attaching" if conn else "reserved",
                                    {"volume_id": vol.id, "instance_uuid": server,
                                     "attach_mode": mode, "connection_info": conn,
                                     "connector": body.get("connector")})
        resp.media = {"attachment": attachment_view(att)}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         attachment_id: str) -> None:
        """Give the connector: return the connection info."""
        self._check(req)
        att = self.svc.find(req, "attachment", attachment_id, "Attachment")
        body = body_of(await read_json(req), "attachment")
        vol = self.svc.find(req, "volume", att.get("volume_id"), "Volume")
        conn = await connection_info(self.svc, vol)
        connector = body.get("connector")
        if not isinstance(connector, dict):
            raise BadRequestError("Invalid input received: connector is required.")
        new = self.svc.store.update(att, status="attaching", connection_info=conn,
                                    connector=connector)
        resp.media = {"attachment": attachment_view(new or att, conn)}

    async def on_post_action(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                             attachment_id: str) -> None:
        """``os-complete`` (3.44): the volume is in use."""
        self._check(req)
        att = self.svc.find(req, "attachment", attachment_id, "Attachment")
        doc = await read_json(req)
        if not isinstance(doc, dict) or "os-complete" not in doc:
            raise BadRequestError("There is no such action.")
        vol = self.svc.find(req, "volume", att.get("volume_id"), "Volume")
        self.svc.store.update(att, status="attached", attached_at=_now())
        connector = att.get("connector") or {}
        entry = new_attachment(vol, att.get("instance_uuid"), connector.get("host"),
                               connector.get("mountpoint"), att.get("attach_mode", "rw"))
        entry["attachment_id"] = att.id
        self.svc.store.update(vol, status="in-use", attachments=[entry])
        resp.status = 204

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            attachment_id: str) -> None:
        """Remove the attachment: the volume is available again."""
        self._check(req)
        att = self.svc.find(req, "attachment", attachment_id, "Attachment")
        vol = self.svc.store.get("volume", att.get("volume_id"))
        self.svc.store.delete(att.id)
        if vol is not None:
            self.svc.store.update(vol, status="available", attachments=[])
        resp.media = {"attachments": []}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         attachment_id: str) -> None:
        """Show one attachment."""
        self._check(req)
        att = self.svc.find(req, "attachment", attachment_id, "Attachment")
        resp.media = {"attachment": attachment_view(att)}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's attachments."""
        self._check(req)
        recs = self.svc.store.select("attachment", project_of(req))
        vol, server = req.get_param("volume_id"), req.get_param("instance_id")
        resp.media = {"attachments": [
            attachment_view(a) for a in recs
            if (vol is None or a.get("volume_id") == vol)
            and (server is None or a.get("instance_uuid") == server)]}

    on_get_detail = on_get

