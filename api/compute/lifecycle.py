"""Server actions beyond power: pause, suspend, rebuild, resize, createImage.

Each action checks the instance's state as Nova's ``check_instance_state``
does, moves ``task_state`` with a compare-and-swap, records an instance action
(``os-instance-actions``) and answers; the work on the compute host runs in the
background and ends in the state Nova reports (``PAUSED``, ``SUSPENDED``,
``VERIFY_RESIZE`` ...), or, when the host fails, with the action's event in
``Error`` (and ``ERROR`` + a fault where Nova does that: rebuild, resize).

Resize happens on the instance's own host. As Nova does it, the allocation the
instance had is moved to the migration's uuid in Placement and the new flavor
is claimed for the instance (capacity checked by Placement); confirming
releases the migration's allocation, reverting gives it back to the instance.
"""

from __future__ import annotations

import logging
import secrets
import uuid as uuidlib
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import falcon.asgi
from nubis.api.compute.build import Builder, BuildPlan, encode_user_data, fault
from nubis.api.compute.clients import PeerError
from nubis.api.compute.errors import QuotaExceededError
from nubis.api.compute.migrations import Migration, placement_call
from nubis.api.compute.model import Flavor, Instance
from nubis.api.compute.servers import (
    Servers,
    ServiceUnavailableError,
    check_metadata,
)
from nubis.api.compute.service import ComputeService, auth, mv_of
from nubis.api.compute.store import utcnow
from nubis.api.compute.views import server_detail
from nubis.api.shared.errors import BadRequestError, ConflictError, NotFoundError

LOG = logging.getLogger("nubis.api.compute")

#: action -> (vm_states it may start from, task_state while it runs, host action, event)
SIMPLE = {
    "pause": (("active",), "pausing", "pause", "compute_pause_instance"),
    "unpause": (("paused",), "unpausing", "unpause", "compute_unpause_instance"),
    "suspend": (("active",), "suspending", "suspend", "compute_suspend_instance"),
    "resume": (("suspended",), "resuming", "resume", "compute_resume_instance"),
}
#: Every action this module answers (the ``POST /servers/{id}/action`` body key).
ACTIONS = frozenset({*SIMPLE, "rebuild", "resize", "confirmResize", "revertResize",
                     "createImage"})
_AFTER = {"pause": "paused", "unpause": "active", "suspend": "suspended",
          "resume": "active"}
#: Image properties a snapshot inherits from the instance's image (it must boot the same).
_INHERITED = ("kernel_id", "ramdisk_id", "os_command_line", "os_distro", "os_type",
              "architecture")


def _rebuild_keys(mv: tuple[int, int]) -> tuple[str, ...]:
    """Return the keys Nova's rebuild schema allows at microversion ``mv``."""
    keys = ["imageRef", "name", "adminPass", "metadata", "preserve_ephemeral",
            "OS-DCF:diskConfig", "accessIPv4", "accessIPv6"]
    keys += ["personality"] if mv < (2, 57) else ["user_data"]
    for since, key in (((2, 19), "description"), ((2, 54), "key_name"),
                       ((2, 63), "trusted_image_certificates"), ((2, 90), "hostname")):
        if mv >= since:
            keys.append(key)
    return tuple(keys)


def _only(arg: dict[str, Any], allowed: tuple[str, ...], field: str) -> None:
    """Raise Nova's 400 for a key the action's schema does not allow."""
    for key in arg:
        if key not in allowed:
            raise BadRequestError(f"Invalid input for field/attribute {field}. Additional "
                                  f"properties are not allowed ('{key}' was unexpected)")


def _flavor_resources(flavor: dict[str, Any]) -> dict[str, int]:
    res = {"VCPU": int(flavor["vcpus"]), "MEMORY_MB": int(flavor["ram"]),
           "DISK_GB": int(flavor["disk"]) + int(flavor.get("ephemeral") or 0)}
    return {k: v for k, v in res.items() if v > 0}


def begin_task(svc: ComputeService, inst: Instance, action: str,
               vm_states: tuple[str, ...], task_state: str | None) -> Instance:
    """Check the instance may run ``action`` and set ``task_state`` (compare-and-swap).

    Raises:
        ConflictError: locked, in another vm_state, hostless, or a task in flight (409).
    """
    if inst.locked:
        raise ConflictError(f"Instance {inst.uuid} is locked")
    if inst.vm_state not in vm_states or not inst.host:
        raise ConflictError(f"Cannot '{action}' instance {inst.uuid} while it is in "
                            f"vm_state {inst.vm_state}")
    moved = svc.store.update_instance(inst.uuid, expected_task_state=None,
                                      expected_vm_states=vm_states, task_state=task_state)
    if moved is None:
        raise ConflictError(f"Cannot '{action}' instance {inst.uuid} while it is in "
                            f"task_state {inst.task_state}")
    return moved


def record_action(svc: ComputeService, req: falcon.asgi.Request, inst: Instance,
                  action: str) -> int:
    """Record a user action on the instance (``os-instance-actions``); return its id."""
    return svc.store.start_action(inst.uuid, action, req.context.request_id,
                                  inst.project_id, auth(req).user_id)


class LifecycleActions:
    """The part of ``POST /servers/{id}/action`` that lives in this module."""

    def __init__(self, svc: ComputeService, builder: Builder) -> None:
        self.svc = svc
        self.builder = builder
        self.migrations = builder.migrations

    # --- dispatch and shared steps ------------------------------------------------------

    async def dispatch(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                       inst: Instance, name: str, arg: Any) -> None:
        """Run action ``name`` with its argument ``arg`` (the body's value)."""
        if name in SIMPLE:
            self._simple(req, inst, name)
            resp.status = 202
        elif name == "rebuild":
            resp.media = await self._rebuild(req, inst, arg)
            resp.status = 202
        elif name == "resize":
            self._resize(req, inst, arg)
            resp.status = 202
        elif name == "confirmResize":
            await self._confirm(req, inst)
            resp.status = 204
        elif name == "revertResize":
            self._revert(req, inst)
            resp.status = 202
        else:
            await self._create_image(req, resp, inst, arg)

    def _begin(self, inst: Instance, action: str, vm_states: tuple[str, ...],
               task_state: str | None) -> Instance:
        return begin_task(self.svc, inst, action, vm_states, task_state)

    def _record(self, req: falcon.asgi.Request, inst: Instance, action: str) -> int:
        return record_action(self.svc, req, inst, action)

    def _failed(self, inst: Instance, action_id: int, event: str, start: datetime,
                message: str, expected_task: str) -> None:
        """Record the event's error; put the instance in ERROR with a fault."""
        self._event(action_id, event, start, message)
        self.svc.store.update_instance(inst.uuid, expected_task_state=expected_task,
                                       vm_state="error", task_state=None,
                                       fault=fault(message))

    def _event(self, action_id: int, event: str, start: datetime, error: str | None = None
               ) -> None:
        self.svc.store.add_event(action_id, event, start, utcnow(),
                                 "Error" if error else "Success", error)

    async def _host(self, inst: Instance, action: str, body: Any = None,
                    timeout: float | None = None) -> dict[str, Any]:
        """Run ``action`` on the instance's compute host; return its answer."""
        assert inst.host is not None
        url = await self.builder.host_url(inst.host)
        return await self.svc.computes.lifecycle(url, inst.uuid, action, body or {}, timeout)

    def _run(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        self.svc.spawn(coro, what)

    # --- pause / unpause / suspend / resume ------------------------------------------------

    def _simple(self, req: falcon.asgi.Request, inst: Instance, name: str) -> None:
        vm_states, task, host_action, event = SIMPLE[name]
        moved = self._begin(inst, name, vm_states, task)
        action_id = self._record(req, inst, name)
        self._run(self._simple_bg(moved, name, task, host_action, event, action_id),
                  f"{name} {inst.uuid}")

    async def _simple_bg(self, inst: Instance, name: str, task: str, host_action: str,
                         event: str, action_id: int) -> None:
        t0 = utcnow()
        try:
            answer = await self._host(inst, host_action)
        except PeerError as exc:
            LOG.warning("%s of %s failed: %s", name, inst.uuid, exc)
            self._event(action_id, event, t0, str(exc))
            self.svc.store.update_instance(inst.uuid, expected_task_state=task,
                                           task_state=None)
            return
        self._event(action_id, event, t0)
        self.svc.store.update_instance(inst.uuid, expected_task_state=task,
                                       vm_state=_AFTER[name], task_state=None,
                                       power_state=int(answer.get("power_state", 0)))

    # --- rebuild ----------------------------------------------------------------------

    async def _rebuild(self, req: falcon.asgi.Request, inst: Instance, arg: Any
                       ) -> dict[str, Any]:
        if not isinstance(arg, dict) or "imageRef" not in arg:
            raise BadRequestError("Invalid input for field/attribute rebuild. "
                                  "'imageRef' is a required property")
        ref = arg["imageRef"]
        if not isinstance(ref, str) or not ref.strip():
            raise BadRequestError("Invalid input for field/attribute imageRef. "
                                  f"Value: {ref}. must be a non-empty string")
        _only(arg, _rebuild_keys(mv_of(req)), "rebuild")
        image_id = ref.rstrip("/").rsplit("/", 1)[-1]
        if not inst.image_ref:  # volume-backed: the root volume would be replaced
            raise BadRequestError("Unable to rebuild a volume-backed server on this cloud.")
        values: dict[str, Any] = {}
        if "key_name" in arg:
            values.update(self._key(req, arg["key_name"]))
        if "user_data" in arg:
            values["user_data"] = encode_user_data(arg["user_data"])
        if "name" in arg:
            if not isinstance(arg["name"], str) or not arg["name"].strip():
                raise BadRequestError("Invalid input for field/attribute name.")
            values["name"] = arg["name"]
        if "metadata" in arg:
            values["metadata"] = check_metadata(arg["metadata"])
        if "description" in arg and mv_of(req) >= (2, 19):
            values["description"] = arg["description"]
        token = req.get_header("X-Auth-Token") or ""
        flavor = Flavor(0, str(inst.flavor.get("id")), str(inst.flavor.get("name")),
                        inst.vcpus, inst.memory_mb, inst.root_gb, 0, 0, 1.0, True, False,
                        None)
        image, kernel, ramdisk = await Servers(self.svc, self.builder)._images(
            image_id, token, flavor)
        was_stopped = inst.vm_state == "stopped"
        moved = self._begin(inst, "rebuild", ("active", "stopped", "error"), "rebuilding")
        moved = self.svc.store.update_instance(
            inst.uuid, expected_task_state="rebuilding", image_ref=image["id"],
            kernel_id=image.get("kernel_id") or "", ramdisk_id=image.get("ramdisk_id") or "",
            **values) or moved
        action_id = self._record(req, inst, "rebuild")
        plan = BuildPlan(token=token, image=image, kernel=kernel, ramdisk=ramdisk,
                         cmdline=str(image.get("os_command_line") or ""),
                         public_keys={moved.key_name: moved.key_data}
                         if moved.key_name and moved.key_data else {})
        self._run(self._rebuild_bg(moved, plan, was_stopped, action_id),
                  f"rebuild {inst.uuid}")
        view = server_detail(moved, self.svc.base_url, mv_of(req), auth(req).is_admin)
        return {"server": {**view, "adminPass": secrets.token_urlsafe(9)}}

    async def _rebuild_bg(self, inst: Instance, plan: BuildPlan, was_stopped: bool,
                          action_id: int) -> None:
        t0 = utcnow()
        body = {**self.builder._build_body(inst, plan), "power_on": not was_stopped}
        try:
            answer = await self._host(inst, "rebuild", body,
                                      timeout=self.svc.computes.build_timeout)
        except PeerError as exc:
            self._failed(inst, action_id, "compute_rebuild_instance", t0,
                         f"Rebuild of instance {inst.uuid} failed: {exc}", "rebuilding")
            return
        self._event(action_id, "compute_rebuild_instance", t0)
        self.svc.store.update_instance(
            inst.uuid, expected_task_state="rebuilding",
            vm_state="stopped" if was_stopped else "active", task_state=None,
            power_state=int(answer.get("power_state", 0)), launched_at=utcnow())

    def _key(self, req: falcon.asgi.Request, name: Any) -> dict[str, Any]:
        """Return the key columns for a rebuild's ``key_name`` (``None`` unsets it)."""
        if name is None:
            return {"key_name": None, "key_data": None}
        kp = self.svc.store.get_keypair(auth(req).user_id, name) if isinstance(
            name, str) else None
        if kp is None:
            raise BadRequestError("Invalid key_name provided.")
        return {"key_name": kp.name, "key_data": kp.public_key}

    # --- resize -----------------------------------------------------------------------

    def _resize(self, req: falcon.asgi.Request, inst: Instance, arg: Any) -> None:
        if not isinstance(arg, dict) or "flavorRef" not in arg:
            raise BadRequestError("Invalid input for field/attribute resize. "
                                  "'flavorRef' is a required property")
        _only(arg, ("flavorRef", "OS-DCF:diskConfig"), "resize")
        ref = arg["flavorRef"]
        if not isinstance(ref, str | int) or isinstance(ref, bool) or not str(ref).strip():
            raise BadRequestError("Invalid input for field/attribute flavorRef.")
        try:
            new = self.svc.flavor(req, str(ref).rstrip("/").rsplit("/", 1)[-1])
        except NotFoundError:
            raise BadRequestError(f"Flavor {ref} could not be found.") from None
        if new.flavorid == str(inst.flavor.get("id")):
            raise BadRequestError("When resizing, instances must change flavor!")
        if new.root_gb < inst.root_gb:
            raise BadRequestError("Resize error: Unable to resize disk down.")
        if new.disabled:
            raise BadRequestError(f"Flavor {ref} is disabled.")
        self._check_quota(inst, new)
        was_running = inst.vm_state == "active"
        moved = self._begin(inst, "resize", ("active", "stopped"), "resize_prep")
        action_id = self._record(req, inst, "resize")
        migration = str(uuidlib.uuid4())
        self.migrations.create(migration, inst.uuid, inst.host, dict(inst.flavor),
                               new.snapshot(), was_running)
        self._run(self._resize_bg(moved, migration, new, was_running, action_id),
                  f"resize {inst.uuid}")

    def _check_quota(self, inst: Instance, new: Flavor) -> None:
        used = self.svc.store.usage(inst.project_id)
        for res, delta in (("cores", new.vcpus - inst.vcpus),
                           ("ram", new.memory_mb - inst.memory_mb)):
            limit = self.svc.limit_for(inst.project_id, res)
            if delta > 0 and used[res] + delta > limit:
                raise QuotaExceededError(f"Quota exceeded for {res}: Requested {delta}, but "
                                         f"already used {used[res]} of {limit} {res}")

    async def _placement(self, method: str, consumer: str, body: Any = None
                         ) -> tuple[int, Any]:
        return await placement_call(self.svc.scheduler, method, consumer, body)

    async def _swap_allocations(self, inst: Instance, migration: str, new: Flavor
                                ) -> dict[str, Any]:
        """Move the instance's allocation to the migration; claim ``new`` for it."""
        status, doc = await self._placement("GET", inst.uuid)
        old = {rp: {"resources": v["resources"]} for rp, v in
               ((doc or {}).get("allocations") or {}).items()} if status == 200 else {}
        if not old:
            raise PeerError(f"instance {inst.uuid} has no allocations to resize from")
        owner = {"project_id": inst.project_id, "user_id": inst.user_id}
        status, doc = await self._placement("PUT", migration, {"allocations": old, **owner})
        if status != 204:
            raise PeerError(f"could not move the allocation to migration {migration}: "
                            f"{status} {doc}", status)
        rp = next(iter(old))
        status, doc = await self._placement("PUT", inst.uuid, {
            "allocations": {rp: {"resources": _flavor_resources(new.snapshot())}}, **owner})
        if status != 204:
            await self._placement("DELETE", migration)
            raise PeerError(f"the host cannot fit flavor {new.name}: {status} {doc}", status)
        return old

    async def _give_back(self, inst: Instance, migration: str, old: dict[str, Any]) -> None:
        """Give the pre-resize allocation back to the instance; drop the migration's."""
        await self._placement("PUT", inst.uuid, {
            "allocations": old, "project_id": inst.project_id, "user_id": inst.user_id})
        await self._placement("DELETE", migration)

    async def _resize_bg(self, inst: Instance, migration: str, new: Flavor,
                         was_running: bool, action_id: int) -> None:
        t0 = utcnow()
        try:
            old = await self._swap_allocations(inst, migration, new)
        except PeerError as exc:
            self._event(action_id, "conductor_migrate_server", t0, str(exc))
            self.migrations.update(migration, "error")
            self.svc.store.update_instance(inst.uuid, expected_task_state="resize_prep",
                                           task_state=None)
            return
        self._event(action_id, "conductor_migrate_server", t0)
        self.migrations.update(migration, "migrating", old)
        self.svc.store.update_instance(inst.uuid, expected_task_state="resize_prep",
                                       task_state="resize_migrating")
        t1 = utcnow()
        try:
            answer = await self._host(inst, "resize", {
                "vcpus": new.vcpus, "memory_mb": new.memory_mb, "root_gb": new.root_gb,
                "power_on": was_running})
        except PeerError as exc:
            await self._give_back(inst, migration, old)
            self.migrations.update(migration, "error")
            self._failed(inst, action_id, "compute_resize_instance", t1,
                         f"Resize of instance {inst.uuid} failed: {exc}", "resize_migrating")
            return
        self._event(action_id, "compute_resize_instance", t1)
        self.migrations.update(migration, "finished")
        self.svc.store.update_instance(
            inst.uuid, expected_task_state="resize_migrating", vm_state="resized",
            task_state=None, power_state=int(answer.get("power_state", 0)),
            flavor=new.snapshot(), vcpus=new.vcpus, memory_mb=new.memory_mb,
            root_gb=new.root_gb)

    def _open_resize(self, inst: Instance, action: str) -> Migration:
        migration = self.migrations.open_for(inst.uuid)
        if inst.vm_state != "resized" or migration is None:
            raise ConflictError(f"Cannot '{action}' instance {inst.uuid} while it is in "
                                f"vm_state {inst.vm_state}")
        return migration

    async def _confirm(self, req: falcon.asgi.Request, inst: Instance) -> None:
        migration = self._open_resize(inst, "confirmResize")
        action_id = self._record(req, inst, "confirmResize")
        t0 = utcnow()
        try:
            answer = await self._host(inst, "confirm_resize")
        except PeerError as exc:
            self._event(action_id, "compute_confirm_resize", t0, str(exc))
            raise ServiceUnavailableError(f"The compute host is unavailable: {exc}") from None
        await self._placement("DELETE", migration.uuid)
        self.migrations.update(migration.uuid, "confirmed")
        state = int(answer.get("power_state", 0))
        self.svc.store.update_instance(inst.uuid, expected_task_state=None,
                                       expected_vm_states=("resized",),
                                       vm_state="active" if state == 1 else "stopped",
                                       power_state=state)
        self._event(action_id, "compute_confirm_resize", t0)

    def _revert(self, req: falcon.asgi.Request, inst: Instance) -> None:
        migration = self._open_resize(inst, "revertResize")
        moved = self._begin(inst, "revertResize", ("resized",), "resize_reverting")
        action_id = self._record(req, inst, "revertResize")
        self._run(self._revert_bg(moved, migration, action_id), f"revert {inst.uuid}")

    async def _revert_bg(self, inst: Instance, migration: Migration, action_id: int) -> None:
        t0 = utcnow()
        try:
            answer = await self._host(inst, "revert_resize",
                                      {"power_on": migration.was_running})
        except PeerError as exc:
            self._failed(inst, action_id, "compute_revert_resize", t0,
                         f"Revert of the resize of instance {inst.uuid} failed: {exc}",
                         "resize_reverting")
            return
        await self._give_back(inst, migration.uuid, migration.old_allocations)
        self.migrations.update(migration.uuid, "reverted")
        old = migration.old_flavor
        self.svc.store.update_instance(
            inst.uuid, expected_task_state="resize_reverting",
            vm_state="active" if migration.was_running else "stopped", task_state=None,
            power_state=int(answer.get("power_state", 0)), flavor=old,
            vcpus=int(old["vcpus"]), memory_mb=int(old["ram"]), root_gb=int(old["disk"]))
        self._event(action_id, "compute_revert_resize", t0)

    # --- createImage ------------------------------------------------------------------

    async def _create_image(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            inst: Instance, arg: Any) -> None:
        if not isinstance(arg, dict) or not isinstance(arg.get("name"), str) or not (
                arg["name"].strip()):
            raise BadRequestError("Invalid input for field/attribute createImage. "
                                  "'name' is a required property")
        _only(arg, ("name", "metadata"), "createImage")
        meta = check_metadata(arg.get("metadata") or {})
        token = req.get_header("X-Auth-Token") or ""
        states = ("active", "stopped", "paused", "suspended")
        moved = self._begin(inst, "createImage", states, "image_snapshot")
        try:
            image = await self._queued_image(inst, arg["name"], meta, token)
        except PeerError as exc:
            self.svc.store.update_instance(inst.uuid, expected_task_state="image_snapshot",
                                           task_state=None)
            raise ServiceUnavailableError(f"The image service is unavailable: {exc}") from None
        action_id = self._record(req, inst, "createImage")
        self._run(self._snapshot_bg(moved, image["id"], token, action_id),
                  f"snapshot {inst.uuid}")
        resp.status = 202
        if mv_of(req) >= (2, 45):
            resp.media = {"image_id": image["id"]}
        else:
            resp.set_header("Location", f"{self.svc.images.url}/v2/images/{image['id']}")

    async def _queued_image(self, inst: Instance, name: str, meta: dict[str, str],
                            token: str) -> dict[str, Any]:
        base = await self.svc.images.get(inst.image_ref, token) if inst.image_ref else None
        props = {k: str(base[k]) for k in _INHERITED if base and base.get(k)}
        body = {"name": name, "container_format": "bare", "disk_format": "qcow2",
                "visibility": "private", "min_disk": inst.root_gb,
                "min_ram": int((base or {}).get("min_ram") or 0), **props, **meta,
                "instance_uuid": inst.uuid, "image_type": "snapshot",
                "base_image_ref": inst.image_ref, "user_id": inst.user_id}
        return await self.svc.images.create(body, token)

    async def _snapshot_bg(self, inst: Instance, image_id: str, token: str,
                           action_id: int) -> None:
        t0 = utcnow()
        self.svc.store.update_instance(inst.uuid, expected_task_state="image_snapshot",
                                       task_state="image_uploading")
        try:
            await self._host(inst, "snapshot", {
                "image_id": image_id, "image_url": self.svc.images.url, "token": token},
                timeout=self.svc.computes.build_timeout)
        except PeerError as exc:
            LOG.warning("snapshot of %s failed: %s", inst.uuid, exc)
            self._event(action_id, "compute_snapshot_instance", t0, str(exc))
            await self._forget_image(image_id, token)
        else:
            self._event(action_id, "compute_snapshot_instance", t0)
        self.svc.store.update_instance(inst.uuid, expected_task_state="image_uploading",
                                       task_state=None)

    async def _forget_image(self, image_id: str, token: str) -> None:
        try:
            await self.svc.images.delete(image_id, token)
        except PeerError as exc:
            LOG.warning("could not delete the failed snapshot %s: %s", image_id, exc)

